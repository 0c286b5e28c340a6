"""Execute a partitioned module across processes (placeholder docstring, see below)."""

from fxflow.distributed.cluster import RunTimeout, Terminated, WorkerFailed, prestart
from fxflow.distributed.executor import DistributedModule, run_partitioned
from fxflow.distributed.plan import Placement, Slot, build_plan, placement_from_facts
