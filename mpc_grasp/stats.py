"""The statistics of an evaluation: success rates with Wilson 95% intervals and medians that skip unknowns.

Used by the episode summaries (:func:`mpc_grasp.control.episodes.summarize_episodes`), the RL baselines and
the benchmark reports, so every success rate the package prints carries the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import NormalDist

__all__ = ["median", "success_rate", "wilson_interval"]


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for ``successes`` out of ``trials`` (sane at 0 and at ``trials``)."""
    if int(trials) != trials or trials <= 0:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    if int(successes) != successes or not 0 <= successes <= trials:
        raise ValueError(f"successes must be an integer in [0, trials={trials}], got {successes!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    n, p = float(trials), successes / trials
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends despite round-off
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


def success_rate(flags: Iterable[bool | None]) -> tuple[float | None, list[float] | None, int]:
    """``(rate, Wilson 95% interval, count)`` over the flags that are not None; ``(None, None, 0)`` if none are."""
    known = [bool(flag) for flag in flags if flag is not None]
    if not known:
        return None, None, 0
    return sum(known) / len(known), list(wilson_interval(sum(known), len(known))), len(known)


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None (None if there are none)."""
    known = sorted(float(value) for value in values if value is not None)
    if not known:
        return None
    middle = len(known) // 2
    return known[middle] if len(known) % 2 else 0.5 * (known[middle - 1] + known[middle])
