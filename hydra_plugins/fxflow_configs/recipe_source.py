"""A Hydra config source that serves a folder of recipe files as the `recipe` group.

Recipes sit at the top level of the project (one reviewed file per experiment), not inside
`conf/`, so no file source sees them as a group. This source maps `recipe/NAME` to
`FOLDER/NAME.yaml`, always with the `_global_` package (a recipe sets keys anywhere in the
config). Reading the files where they are keeps composition as cheap as for any other group.

One broken recipe file must not break every command: a file that does not load, is not a
mapping, has an unsafe name or sets Hydra's own settings is served as a stand-in holding only
its name and the reason with file and line (fxflow.recipes.load_recipe); choosing it gives that
message as a config problem, and every other recipe works as before.
"""

from __future__ import annotations

import os
from typing import List, Optional

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource

GROUP = "recipe"


class RecipeSource(ConfigSource):
    @staticmethod
    def scheme() -> str:
        return "fxflow-recipes"

    @property
    def folder(self) -> str:
        return self.path.removeprefix(f"{self.scheme()}://")

    def available(self) -> bool:
        return os.path.isdir(self.folder)

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") in ("", GROUP) and self.available()

    def is_config(self, config_path: str) -> bool:
        file = self._file(config_path)
        return file is not None and os.path.isfile(file)

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        path = config_path.strip("/")
        if path == "" and results_filter in (None, ObjectType.GROUP) and self.available():
            return [GROUP]
        if path != GROUP or results_filter == ObjectType.GROUP or not self.available():
            return []
        return sorted(name[:-5] for name in os.listdir(self.folder) if name.endswith(".yaml"))

    def load_config(self, config_path: str) -> ConfigResult:
        from fxflow.recipes import recipe_or_stand_in

        file = self._file(config_path)
        if file is None or not os.path.isfile(file):
            raise ConfigLoadError(f"Config not found : {config_path} in {self.folder}")
        return ConfigResult(config=recipe_or_stand_in(file), path=self.path, provider=self.provider,
                            header={"package": "_global_"})

    def _file(self, config_path: str) -> str | None:
        group, _, name = self._normalize_file_name(config_path.strip("/")).rpartition("/")
        return os.path.join(self.folder, name) if group == GROUP and name else None
