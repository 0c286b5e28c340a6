"""Partitioning a sized graph over a device list: latency models, and the backends the
`PartitionOverDevices` transform drives (torch's accelerator Partitioner today)."""

# Key of the partition facts a partitioned module carries in its `meta` dict (`GraphModule.meta`):
# the JSON facts the partition stage recorded (`partitions[*].{id, devices, logical_device_ids,
# parents, children, latency}`, `critical_path_latency`, ...). Stages after partitioning read
# the placement from there instead of from the partitioner that made it.
PARTITION_FACTS = "fxflow.partitions"
