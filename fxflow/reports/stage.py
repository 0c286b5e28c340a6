"""The stage-report interface and the registry the pipeline consults after every stage.

A report is chosen by the type of a stage's facts (`facts_type`): a stage whose transform
declares `PartitionFacts` gets the partition report, whatever keys other stages record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel
from torch.fx import GraphModule

from fxflow.config.schema import ReportSpec
from fxflow.record.writer import RunRecord


class StageReport(ABC):
    """Renders one type of stage facts: files into the record, renderables for the terminal."""

    facts_type: ClassVar[type[BaseModel]]  # the facts model this report shows

    @abstractmethod
    def write(self, record: RunRecord, stage: str, facts: dict[str, Any], before: Any, after: Any,
              options: ReportSpec) -> list[str]:
        """Write the report's files under `<stage>/` (pictures only with `options.pictures`);
        return their paths relative to the record."""

    @abstractmethod
    def terminal(self, stage: str, facts: dict[str, Any]) -> list[Any]:
        """Rich renderables (or plain strings) for the terminal summary."""


def stage_reports() -> list[StageReport]:
    """Every report fxflow knows, in the order they print."""
    from fxflow.reports.execution import ExecutionReport
    from fxflow.reports.partition import PartitionReport

    return [PartitionReport(), ExecutionReport()]


def reports_for(facts: BaseModel | None) -> list[StageReport]:
    """The reports for a stage whose facts are `facts` (typed by the transform's facts model)."""
    return [report for report in stage_reports() if isinstance(facts, report.facts_type)]


def graph_of(module: Any) -> GraphModule | None:
    """The GraphModule behind a stage's module, if it has one."""
    return module if isinstance(module, GraphModule) else None
