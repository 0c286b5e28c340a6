"""The run record: atomic files in the run directory, stage graphs, summary.json, sweep summaries."""
