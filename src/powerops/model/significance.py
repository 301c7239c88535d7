"""Is a challenger's gain over the champion real? A paired test on their daily losses.

The Diebold-Mariano test compares two forecasts scored on the same days: with d_t the
challenger's loss minus the champion's on day t, it asks whether the mean of d is below zero.
Daily losses are autocorrelated (a cold spell lasts; a test week is seven days in a row), so
the variance of the mean is the Newey-West (HAC) long-run variance, not the iid one, and the
statistic gets the Harvey-Leybourne-Newbold small-sample correction and a Student-t reference
with n - 1 degrees of freedom (Harvey, Leybourne and Newbold 1997, "Testing the equality of
prediction mean squared errors").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_DAYS = 3


@dataclass(frozen=True)
class PairedTest:
    """The challenger's gain over the champion on the same days, and how sure it is."""

    days: int
    lag: int
    mean_difference: float  # challenger's mean daily loss minus the champion's
    statistic: float  # HLN-corrected DM statistic; negative when the challenger is better
    p_value: float  # one-sided: the chance of so large a gain if there were none
    gain: float  # 1 - challenger's mean loss / champion's
    gain_low: float  # the gain's confidence interval
    gain_high: float
    confidence: float


def default_lag(days: int) -> int:
    """Newey-West's rule of thumb: floor(n^(1/3)) days (4 for the 84 days of 12 test weeks)."""
    lag = 1
    while (lag + 1) ** 3 <= days:
        lag += 1
    return lag


def hac_variance(values: Sequence[float], lag: int, ordinals: Sequence[int] | None = None) -> float:
    """The Newey-West long-run variance of `values`: autocovariances up to `lag` with Bartlett
    weights 1 - k / (lag + 1).

    With `ordinals` (day numbers), lag k pairs only values exactly k days apart, so the test
    set's separate weeks are not read as one run of days; the missing days count as zeros of
    the centred series, which keeps the estimate non-negative.
    """
    x = np.asarray(values, dtype="float64")
    n = len(x)
    where = np.arange(n) if ordinals is None else np.asarray(ordinals, dtype="int64")
    if len(where) != n or len(set(where.tolist())) != n:
        raise ValueError("ordinals must be distinct, one per value")
    grid = np.zeros(int(where.max() - where.min()) + 1)
    grid[where - where.min()] = x - x.mean()
    variance = float(grid @ grid) / n
    for k in range(1, min(lag, len(grid) - 1) + 1):
        variance += 2 * (1 - k / (lag + 1)) * float(grid[k:] @ grid[:-k]) / n
    return max(variance, 0.0)


def diebold_mariano(
    challenger: Sequence[float],
    champion: Sequence[float],
    ordinals: Sequence[int] | None = None,
    lag: int | None = None,
    confidence: float = 0.95,
) -> PairedTest:
    """One-sided DM test of "the challenger's daily loss is lower", with the gain's interval.

    The HLN correction treats the differences as dependent up to `lag` days, as those of a
    (lag + 1)-step forecast are: DM * sqrt((n + 1 - 2h + h(h - 1) / n) / n), h = lag + 1.
    """
    from scipy import stats

    ours = np.asarray(challenger, dtype="float64")
    theirs = np.asarray(champion, dtype="float64")
    n = len(ours)
    if n != len(theirs) or n < MIN_DAYS:
        raise ValueError(
            f"need the same {MIN_DAYS} or more days of both losses, got {n} and {len(theirs)}"
        )
    lag = default_lag(n) if lag is None else lag
    h = min(lag + 1, n // 2)
    correction = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    difference = ours - theirs
    mean = float(difference.mean())
    error = math.sqrt(hac_variance(difference, lag, ordinals) / n) / correction
    # Identical losses, or the same difference every day: no spread to scale the mean by.
    flat = math.copysign(math.inf, mean) if mean else 0.0
    statistic = mean / error if error > 0 else flat
    p_value = float(stats.t.cdf(statistic, df=n - 1)) if mean or error else 1.0
    quantile = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1))
    scale = float(theirs.mean()) or math.nan  # a champion without error: no relative gain
    return PairedTest(
        days=n,
        lag=lag,
        mean_difference=mean,
        statistic=statistic,
        p_value=p_value,
        gain=-mean / scale,
        gain_low=(-mean - quantile * error) / scale,
        gain_high=(-mean + quantile * error) / scale,
        confidence=confidence,
    )
