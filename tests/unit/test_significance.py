"""The gate's paired test: Diebold-Mariano with a Newey-West variance on daily loss differences,
checked against a hand computation, and how the gate uses it."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from powerops.core.config import load_params
from powerops.model.forecasting import Evaluation
from powerops.model.significance import default_lag, diebold_mariano, hac_variance
from powerops.model.training import gate_verdict

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
# The pinned test set's days: 12 weeks of 7 days, a week from each month of 2007.
DAYS = [
    f"{date(2007, month, 8) + timedelta(days=day):%Y-%m-%d}"
    for month in range(1, 13)
    for day in range(7)
]


def test_dm_statistic_matches_a_hand_computation() -> None:
    # d = challenger - champion = [-1, -2, 0, -1, -1]: mean -1, centred [0, -1, 1, 0, 0].
    challenger, champion = [1.0, 0.0, 2.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0]
    # gamma0 = 2/5, gamma1 = (0*-1 + -1*1 + 1*0 + 0*0)/5 = -1/5; Bartlett weight at lag 1 = 1/2.
    assert hac_variance([-1, -2, 0, -1, -1], lag=1) == pytest.approx(2 / 5 + 2 * 0.5 * (-1 / 5))
    test = diebold_mariano(challenger, champion, lag=1)
    # DM = -1 / sqrt(0.2 / 5) = -5; HLN with h = 2: sqrt((5 + 1 - 4 + 2/5) / 5) = sqrt(0.48).
    statistic = -5 * math.sqrt(0.48)
    assert test.statistic == pytest.approx(statistic)
    assert test.p_value == pytest.approx(stats.t.cdf(statistic, df=4))
    assert test.gain == pytest.approx(0.5)  # mean loss 1 against 2
    half = stats.t.ppf(0.975, df=4) * math.sqrt(0.2 / 5) / math.sqrt(0.48) / 2
    assert (test.gain_low, test.gain_high) == pytest.approx((0.5 - half, 0.5 + half))
    assert default_lag(84) == 4 and default_lag(64) == 4 and default_lag(63) == 3


def test_lags_pair_only_days_that_far_apart() -> None:
    # Two runs of days a month apart: lag 1 must not pair the last of one with the first of the
    # next. On a calendar grid it equals the sequence with the gap filled by centred zeros.
    values = [1.0, 3.0, 2.0, 5.0, 4.0, 6.0]
    ordinals = [0, 1, 2, 30, 31, 32]
    centred = np.array(values) - np.mean(values)
    gamma1 = (centred[0] * centred[1] + centred[1] * centred[2]) / 6
    gamma1 += (centred[3] * centred[4] + centred[4] * centred[5]) / 6
    expected = centred @ centred / 6 + 2 * 0.5 * gamma1
    assert hac_variance(values, 1, ordinals) == pytest.approx(expected)
    assert hac_variance(values, 1) != pytest.approx(expected)


def test_autocorrelated_differences_widen_the_interval() -> None:
    rng = np.random.default_rng(7)
    champion = 20 + rng.normal(0, 1, 84)
    iid = rng.normal(-0.3, 1, 84)
    # The same marginal spread, but runs of similar days (an AR(1) with coefficient 0.8).
    persistent = np.empty(84)
    persistent[0] = iid[0]
    for t in range(1, 84):
        persistent[t] = 0.8 * persistent[t - 1] + math.sqrt(1 - 0.8**2) * rng.normal(0, 1)
    persistent = persistent - persistent.mean() + iid.mean()
    persistent *= iid.std() / persistent.std()

    def width(differences: np.ndarray, lag: int | None = None) -> float:
        test = diebold_mariano(champion + differences, champion, lag=lag)
        return test.gain_high - test.gain_low

    assert width(persistent) > 1.3 * width(iid)
    assert width(persistent) > 1.3 * width(persistent, lag=0)  # lag 0: the iid variance


def evaluation(wape: float, losses: list[float], naive: float = 0.6) -> Evaluation:
    """Scores whose daily absolute errors are `losses` (WAPE = their sum over 1,000 kW)."""
    return Evaluation(
        model={"wape": wape, "mae": wape, "rmse": wape},
        baselines={
            "seasonal_naive": {"wape": naive, "mae": naive, "rmse": naive},
            "persistence": {"wape": 0.7, "mae": 0.7, "rmse": 0.7},
        },
        rows=84 * 24,
        days=DAYS,
        daily_loss={"absolute": losses, "squared": [loss**2 for loss in losses]},
    )


def daily(seed: int) -> np.ndarray:
    """A champion's daily absolute errors: seasonal level, autocorrelated within each week."""
    rng = np.random.default_rng(seed)
    level = 10 + 3 * np.sin(np.arange(84) / 84 * 2 * np.pi)
    weekly = np.repeat(rng.normal(0, 1.5, 12), 7)
    return level + weekly + rng.normal(0, 1, 84)


def test_a_clear_gain_passes_and_noise_fails() -> None:
    base = daily(1)
    champion = evaluation(float(base.sum()) / 2000, base.tolist())

    better = base * 0.9 + np.random.default_rng(2).normal(0, 0.1, 84)
    ok, reasons = gate_verdict(
        PARAMS, evaluation(float(better.sum()) / 2000, better.tolist()), champion
    )
    assert ok, reasons
    assert "gain +" in reasons[2] and "< 0.05: significant" in reasons[2]

    # The champion's errors plus tiny perturbations: a lower WAPE, but no evidence of a gain.
    noise = base + np.random.default_rng(3).normal(0, 0.05, 84) - 0.001
    assert noise.sum() < base.sum()
    ok, reasons = gate_verdict(
        PARAMS, evaluation(float(noise.sum()) / 2000, noise.tolist()), champion
    )
    assert not ok
    assert reasons[2].startswith("FAIL: wape") and ">= 0.05: not significant)" in reasons[2]
    assert "95% CI -" in reasons[2] and "p=" in reasons[2]

    # The same challenger passes with the test switched off: the point rule alone.
    off = PARAMS.model_copy(update={"gate": PARAMS.gate.model_copy(update={"significance": None})})
    assert gate_verdict(off, evaluation(float(noise.sum()) / 2000, noise.tolist()), champion)[0]


def test_a_champion_without_daily_losses_is_no_pass() -> None:
    base = daily(4)
    bare = Evaluation(model={"wape": 0.5, "mae": 0.5, "rmse": 0.5}, baselines={}, rows=2016)
    ok, reasons = gate_verdict(PARAMS, evaluation(0.3, (base * 0.5).tolist()), bare)
    assert not ok and "no paired test: not scored on the same rows and days" in reasons[2]
