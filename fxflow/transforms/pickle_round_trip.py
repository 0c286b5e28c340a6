"""Pickle a module to a file and load it back: the loaded module is the stage's output."""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

from pydantic import Field
from torch.fx import GraphModule

from fxflow.stages import MODULE, StageFacts
from fxflow.transforms.base import StageContext, Transform

# Attribute of the stamp the loaded module carries: the file it was loaded from and its size.
LOADED_FROM = "fxflow_loaded_from"


class PickleFacts(StageFacts):
    """The pickle's size and file."""

    bytes: int
    file: str


class PickleRoundTrip(Transform):
    """`pickle.dump` the module into the stage's artifact folder and `pickle.load` it back, so
    the equivalence check proves the loaded module computes what the model computes
    (test_meta_tracer's second half).

    Usage in a recipe::

        defaults:
          - /transform@transforms.pickle: pickle_round_trip

    Facts, from the stamp the loaded module carries: `bytes` (size of the pickle it was loaded
    from; 0 when the stage returned a module that was not loaded), `file`.
    """

    facts_model: ClassVar = PickleFacts

    takes: ClassVar = MODULE  # any module pickle can write, the package an export imported too
    gives: ClassVar = None  # what was pickled comes back: the kind it got

    protocol: int | None = Field(None, ge=0, le=pickle.HIGHEST_PROTOCOL)  # None: pickle's default

    def apply(self, gm: GraphModule, ctx: StageContext) -> Any:
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        path = ctx.artifacts / "module.pkl"
        with path.open("wb") as f:
            pickle.dump(gm, f, protocol=self.protocol)
        with path.open("rb") as f:
            loaded = pickle.load(f)  # noqa: S301 - the file was written by this step a moment ago
        setattr(loaded, LOADED_FROM, {"bytes": path.stat().st_size, "file": str(path)})
        return loaded

    def returned_facts(self, given: GraphModule, returned: Any) -> dict[str, Any]:
        """The pickle the returned module was loaded from, as the loading stamped it: none when the
        stage handed on another module (the one it was given)."""
        loaded = getattr(returned, LOADED_FROM, None) if returned is not given else None
        return dict(loaded) if loaded else {"bytes": 0}
