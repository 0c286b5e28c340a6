"""Graph transforms: one step `GraphModule -> GraphModule` per module, each a pydantic component.

Importing this package registers every shipped transform, so config validation can list
them when a `_target_` is wrong.
"""

from fxflow.transforms.base import StageContext, Transform
from fxflow.transforms.partition import Partition
from fxflow.transforms.replace_targets import ReplaceTargets
from fxflow.transforms.sizing import SizeNodes

__all__ = ["Partition", "ReplaceTargets", "SizeNodes", "StageContext", "Transform"]
