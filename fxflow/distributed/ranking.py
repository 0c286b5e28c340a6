"""How far a measurement can order candidate plans, and how a cost model's order agrees with it.

Other work on a machine only ever adds time, so several timed rounds of each plan (the plans
interleaved, in a new order each round) are read one of two ways: "min", the fastest of all rounds
(the least disturbed), or "median", the median of the rounds. The same figure from the even rounds
and from the odd rounds (two independent halves) brackets what the measurement can tell: two plans
whose brackets overlap are a tie it cannot order, and only the other pairs count for or against
the model's order.

    figure, bracket = split_half(seconds_per_round, "min")
    agreement = rank_agreement(predicted, measured, brackets)   # Spearman, ties, pairs agreeing...
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Literal

from scipy.stats import spearmanr

Statistic = Literal["min", "median"]


def aggregate(values: Sequence[float], statistic: Statistic) -> float:
    """The fastest value ("min") or the median ("median")."""
    if statistic == "min":
        return min(values)
    if statistic == "median":
        return statistics.median(values)
    raise ValueError(f"statistic must be 'min' or 'median', not {statistic!r}")


def split_half(rounds: Sequence[float], statistic: Statistic) -> tuple[float, tuple[float, float]]:
    """The figure over all rounds and its bracket: the same figure from the even rounds and from
    the odd rounds (one round: a bracket of width 0)."""
    if not rounds:
        raise ValueError("no rounds to read a figure from")
    halves = [aggregate(rounds[k::2], statistic) for k in (0, 1) if rounds[k::2]]
    return aggregate(rounds, statistic), (min(halves), max(halves))


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Two brackets the measurement cannot order."""
    return a[0] <= b[1] and b[0] <= a[1]


def rank_agreement(predicted: Sequence[float], measured: Sequence[float],
                   brackets: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """How the predicted order of plans agrees with the measured one.

    `spearman`: over every plan. `ties`: plan pairs whose brackets overlap; `ordered_agree`: of the
    other pairs, how many the prediction orders the same way. `chain`: plans each distinguishable
    from the one before, walked fastest first from the measurements alone, and `spearman_chain`
    over them (None under 3). `chosen_over_best`: the measured figure of the plan predicted fastest
    over the fastest measured, and `chosen_tied_with_best`: whether the two brackets overlap."""
    n = len(predicted)
    if n < 2 or len(measured) != n or len(brackets) != n:
        raise ValueError(f"need at least 2 plans with a prediction, a figure and a bracket each "
                         f"(got {n}, {len(measured)}, {len(brackets)})")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    ordered = [(i, j) for i, j in pairs if not overlaps(brackets[i], brackets[j])]
    agree = sum((predicted[i] - predicted[j]) * (measured[i] - measured[j]) > 0 for i, j in ordered)
    chain: list[int] = []
    for i in sorted(range(n), key=lambda k: measured[k]):
        if not chain or brackets[i][0] > brackets[chain[-1]][1]:
            chain.append(i)
    chosen = min(range(n), key=lambda i: predicted[i])
    best = min(range(n), key=lambda i: measured[i])
    spread = [(hi - lo) / m for (lo, hi), m in zip(brackets, measured)]
    return {"spearman": float(spearmanr(predicted, measured).statistic),
            "pairs": len(pairs), "ties": len(pairs) - len(ordered), "ordered_agree": agree,
            "chain": chain, "spearman_chain": float(spearmanr([predicted[i] for i in chain],
                                                              [measured[i] for i in chain]).statistic)
            if len(chain) >= 3 else None,
            "chosen": chosen, "best": best, "chosen_over_best": measured[chosen] / measured[best],
            "chosen_tied_with_best": overlaps(brackets[chosen], brackets[best]),
            "spread_median": statistics.median(spread), "spread_max": max(spread)}
