"""A completed stage's part of the record: its graph facts and files, and the reports its facts call for."""

from __future__ import annotations

from typing import Any

from torch.fx import GraphModule

from fxflow.config.errors import first_line
from fxflow.config.schema import ReportSpec
from fxflow.nodes import graph_facts
from fxflow.record.graphs import write_stage_graph
from fxflow.record.writer import RunRecord
from fxflow.reports.stage import reports_for
from fxflow.run_state import RunState
from fxflow.stages import StageFacts
from fxflow.steps import RECORD, StepError


def record_stage(record: RunRecord, state: RunState, index: int, name: str, before: Any, after: Any,
                 options: ReportSpec, typed: StageFacts | None = None) -> None:
    """Write stage `name` (the `index`-th) into the record, with the reports for the type of its
    facts (`typed`); a write that fails is the record step's error."""
    facts = state.facts.setdefault(name, {})
    facts["graph"] = graph_facts(after)
    files: list[str] = []
    try:
        if isinstance(after, GraphModule):
            files += write_stage_graph(record, index, name, after)
        for report in reports_for(typed):
            files += report.write(record, name, facts, before, after, options)
            state.report.extend(report.terminal(name, facts))
    except Exception as exc:  # noqa: BLE001
        raise StepError(RECORD.name, f"writing the record of stage {name} into {record.run_dir} (hydra.run.dir) "
                        f"failed: {type(exc).__name__}: {first_line(exc)}", exc) from exc
    state.files[name] = files
