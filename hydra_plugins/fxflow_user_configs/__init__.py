"""Puts the user's fxflow config folders (./fxflow_conf, --config-dir) ahead of fxflow's own on
Hydra's search path, for fxflow's application only.

Hydra finds search-path plugins under the `hydra_plugins` namespace; its own `--config-dir` and
`hydra.searchpath` add folders *after* the application's, so a user's file could never replace
a shipped one of the same name. This plugin inserts them before.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin


class FxflowUserConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        try:
            from fxflow.paths import conf_dir, user_config_dirs
        except ImportError:  # an fxflow without user config folders shadows this plugin's own
            return

        shipped = str(conf_dir())
        if not any(e.provider == "main" and e.path.removeprefix("file://") == shipped for e in search_path.get_path()):
            return  # another Hydra application
        for folder in user_config_dirs():  # each goes just before the shipped folder: highest precedence first
            search_path.prepend("fxflow-user", f"file://{folder}", anchor=SearchPathQuery(provider="main"))
