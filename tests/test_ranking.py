"""fxflow.distributed.ranking: a figure and its even/odd bracket from timed rounds, and how a
predicted order of plans agrees with a measured one once the pairs the measurement cannot order
are set aside."""

from __future__ import annotations

import pytest

from fxflow.distributed.ranking import overlaps, rank_agreement, split_half


def test_a_figure_and_its_bracket_come_from_all_rounds_and_from_each_half():
    rounds = [5.0, 3.0, 4.0, 6.0]  # even rounds 5, 4; odd rounds 3, 6
    assert split_half(rounds, "min") == (3.0, (3.0, 4.0))
    assert split_half(rounds, "median") == (4.5, (4.5, 4.5))
    assert split_half([2.0], "min") == (2.0, (2.0, 2.0))
    with pytest.raises(ValueError, match="statistic must be 'min' or 'median', not 'mean'"):
        split_half(rounds, "mean")  # type: ignore[arg-type]


def test_brackets_that_touch_cannot_be_ordered():
    assert overlaps((1.0, 2.0), (2.0, 3.0)) and overlaps((1.0, 4.0), (2.0, 3.0))
    assert not overlaps((1.0, 1.9), (2.0, 3.0))


def test_pairs_the_measurement_cannot_order_are_ties_not_disagreements():
    """Plans 0 and 1 overlap: the prediction orders them the other way, which is a tie, not a miss;
    the five other pairs are ordered and the prediction agrees with all of them."""
    measured = [1.0, 2.0, 3.0, 4.0]
    brackets = [(0.9, 1.1), (1.0, 2.1), (2.9, 3.1), (3.9, 4.1)]
    figures = rank_agreement([2.0, 1.0, 3.0, 5.0], measured, brackets)
    assert figures["spearman"] == pytest.approx(0.8)
    assert (figures["pairs"], figures["ties"], figures["ordered_agree"]) == (6, 1, 5)
    assert figures["chain"] == [0, 2, 3] and figures["spearman_chain"] == pytest.approx(1.0)
    assert (figures["chosen"], figures["best"], figures["chosen_over_best"]) == (1, 0, 2.0)
    assert figures["chosen_tied_with_best"]
    assert figures["spread_max"] == pytest.approx(1.1 / 2.0)
    # the same prediction against brackets that do order plans 0 and 1: a disagreement
    apart = rank_agreement([2.0, 1.0, 3.0, 5.0], measured, [(0.9, 1.1), (1.9, 2.1), (2.9, 3.1), (3.9, 4.1)])
    assert (apart["ties"], apart["ordered_agree"], apart["chosen_tied_with_best"]) == (0, 5, False)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match=r"need at least 2 plans .* \(got 2, 1, 2\)"):
        rank_agreement([1.0, 2.0], [1.0], [(1.0, 1.0), (2.0, 2.0)])
