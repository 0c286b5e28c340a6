"""The run's pause of Python's cyclic collector: off during the stages, back on after, the cycles
left behind collected (or, for a process that ends with its run, frozen for the exit)."""

from __future__ import annotations

import gc
import weakref

from fxflow.capture import collector_paused


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_the_collector_is_off_inside_and_the_cycles_made_there_are_collected_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        left = weakref.ref(_Node())
        assert left() is not None, "reference counting alone freed a cycle"
    assert gc.isenabled()
    assert left() is None


def test_a_process_that_ends_with_its_run_freezes_what_is_left_instead_of_collecting_it():
    before = gc.get_freeze_count()
    try:
        with collector_paused(collect_after=False):
            left = weakref.ref(_Node())
        assert gc.isenabled()
        assert gc.get_freeze_count() > before
        gc.collect()
        assert left() is not None, "a frozen object was collected"
    finally:
        gc.unfreeze()
        gc.collect()
    assert left() is None


def test_a_collector_the_caller_turned_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
