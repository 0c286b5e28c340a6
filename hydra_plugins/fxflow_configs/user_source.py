"""The Hydra config source of the user's config folders (./fxflow_conf, --config-dir).

Hydra's own file source hands any YAML file to OmegaConf, which expands every alias: a few
hundred bytes of nested anchors ("billion laughs") then hang composition. The user's folders are
read by this source instead, which first checks each file against fxflow's limits
(fxflow.bounded_load: size, alias expansion, nesting) and refuses it with the file named. Once a
file passes, Hydra's file source reads it as always.
"""

from __future__ import annotations

import os

import yaml
from hydra._internal.core_plugins.file_config_source import FileConfigSource
from hydra.errors import ConfigCompositionException
from hydra.plugins.config_source import ConfigResult


class UserConfigSource(FileConfigSource):
    @staticmethod
    def scheme() -> str:
        return "fxflow-file"

    def load_config(self, config_path: str) -> ConfigResult:
        from fxflow.bounded_load import FileRefused, check_yaml, read_text, yaml_problem

        file = os.path.realpath(os.path.join(self.path, self._normalize_file_name(config_path)))
        if os.path.isfile(file):
            try:
                check_yaml(read_text(file), file)
            except FileRefused as exc:
                raise ConfigCompositionException(str(exc)) from None
            except yaml.YAMLError as exc:
                raise ConfigCompositionException(yaml_problem(file, exc)) from None
        return super().load_config(config_path)
