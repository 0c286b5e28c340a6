"""Partitioning a sized graph over a device list: latency models, and the backends the
`PartitionOverDevices` transform drives (torch's accelerator Partitioner today)."""
