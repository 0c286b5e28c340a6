"""fxflow's places on Hydra's search path, for fxflow's application only.

- The user's config folders (./fxflow_conf, --config-dir) go *ahead of* the shipped configs.
  Hydra's own `--config-dir` and `hydra.searchpath` add folders after the application's, so a
  user's file could never replace a shipped one of the same name.
- The user's folders are read by `UserConfigSource` (user_source.py), which refuses a file over
  fxflow's size and alias limits before Hydra's file source would expand it.
- Recipe folders (`recipes/` at the top level, and each user folder's `recipes/`) are the
  `recipe` group, read by `RecipeSource` (recipe_source.py) straight from their files.

Hydra finds these under the `hydra_plugins` namespace.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

from hydra_plugins.fxflow_configs.recipe_source import RecipeSource
from hydra_plugins.fxflow_configs.user_source import UserConfigSource


class FxflowSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        try:
            from fxflow.paths import conf_dir, recipe_dirs, user_config_dirs
        except ImportError:  # an fxflow without these folders shadows this plugin's own
            return

        shipped = str(conf_dir())
        if not any(e.provider == "main" and e.path.removeprefix("file://") == shipped for e in search_path.get_path()):
            return  # another Hydra application
        for folder in user_config_dirs():  # each goes just before the shipped folder: highest precedence first
            search_path.prepend("fxflow-user", f"{UserConfigSource.scheme()}://{folder}",
                               anchor=SearchPathQuery(provider="main"))
        anchor = SearchPathQuery(provider="main")
        for folder in recipe_dirs():  # after the configs, highest precedence first
            search_path.append("fxflow-recipes", f"{RecipeSource.scheme()}://{folder}", anchor=anchor)
            anchor = SearchPathQuery(provider="fxflow-recipes", path=f"{RecipeSource.scheme()}://{folder}")
