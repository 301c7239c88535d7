"""Drift by effect size: the binned distances against exact ones, seasons, and the rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from powerops.model import drift

RNG = np.random.default_rng(7)
REFERENCE = RNG.gamma(2.0, 0.5, 200_000)


@pytest.fixture(scope="module")
def profile() -> drift.ColumnProfile:
    return drift.build_column(REFERENCE)


@pytest.mark.parametrize(
    ("name", "current"),
    [
        ("same", RNG.gamma(2.0, 0.5, 100_000)),
        ("shifted", RNG.gamma(2.0, 0.5, 100_000) + 0.4),
        ("scaled", RNG.gamma(2.0, 0.5, 100_000) * 1.6),
        ("beyond the reference's range", np.r_[RNG.gamma(2.0, 0.5, 99_000), np.full(1000, 40.0)]),
        ("below it", RNG.gamma(2.0, 0.5, 100_000) - 3.0),
    ],
)
def test_binned_wasserstein_matches_the_exact_distance(
    profile: drift.ColumnProfile, name: str, current: np.ndarray
) -> None:
    score = drift.score_column(name, profile, current, None, 0.2, 0.4)
    exact = wasserstein_distance(REFERENCE, current) / REFERENCE.std()
    assert score.wasserstein == pytest.approx(exact, rel=0.01, abs=0.002)


def test_a_large_shift_drifts_and_a_tiny_one_on_many_rows_does_not(
    profile: drift.ColumnProfile,
) -> None:
    large = drift.score_column("x", profile, RNG.gamma(2.0, 0.5, 100_000) + 0.5, None, 0.2, 0.4)
    tiny = drift.score_column("x", profile, RNG.gamma(2.0, 0.5, 100_000) + 0.02, None, 0.2, 0.4)
    same = drift.score_column("x", profile, RNG.gamma(2.0, 0.5, 100_000), None, 0.2, 0.4)
    assert large.drifted and large.psi >= 0.2 and large.wasserstein >= 0.4
    assert not tiny.drifted and tiny.wasserstein < 0.05
    assert not same.drifted and same.psi < 0.01 and same.wasserstein < 0.02


def test_both_effect_sizes_must_reach_their_threshold(profile: drift.ColumnProfile) -> None:
    # Outliers far out move the mass a long way (Wasserstein) but barely change the bins (PSI).
    current = np.r_[RNG.gamma(2.0, 0.5, 99_000), np.full(1000, 40.0)]
    score = drift.score_column("x", profile, current, None, 0.2, 0.4)
    assert score.wasserstein > 0.4 and score.psi < 0.2 and not score.drifted


def test_a_seasonal_reference_judges_summer_against_summer() -> None:
    months = np.repeat(np.arange(1, 13), 2000)
    level = np.where((months >= 5) & (months <= 9), 0.6, 1.8)  # low load May..September
    values = RNG.normal(level, 0.2)
    profile = drift.build_profile({"load": values}, months)
    august = RNG.normal(0.6, 0.2, 2000)
    seasons = drift.season_window([8])
    assert seasons == [7, 8, 9]
    same_season = drift.compare(profile, {"load": august}, seasons, 0.2, 0.4)[0]
    whole_year = drift.compare(profile, {"load": august}, None, 0.2, 0.4)[0]
    assert not same_season.drifted
    assert whole_year.drifted
    away = drift.compare(profile, {"load": august * 0.3}, seasons, 0.2, 0.4)[0]
    assert away.drifted


def test_season_window_wraps_around_the_year() -> None:
    assert drift.season_window([12]) == [1, 11, 12]
    assert drift.season_window([1], spread=0) == [1]
    assert drift.season_window([1, 2], spread=2) == [1, 2, 3, 4, 11, 12]


def test_scale_by_measures_a_column_in_another_columns_spread() -> None:
    load = RNG.normal(1.0, 0.5, 50_000)
    smooth = RNG.normal(1.0, 0.05, 50_000)  # a weekly mean: same unit, far narrower
    profile = drift.build_profile({"load": load, "smooth": smooth})
    current = {"smooth": smooth + 0.1}
    own = drift.compare(profile, current, None, 0.2, 0.4)[0]
    in_load_units = drift.compare(profile, current, None, 0.2, 0.4, {"smooth": "load"})[0]
    assert own.wasserstein == pytest.approx(2.0, rel=0.05)
    assert in_load_units.wasserstein == pytest.approx(0.2, rel=0.05)


def test_profiles_round_trip_and_handle_edge_cases() -> None:
    months = np.array([1, 1, 2, 2, 2])
    profile = drift.build_profile({"a": [1.0, 2.0, np.nan, 4.0, 5.0], "c": [3.0] * 5}, months)
    again = drift.Profile.from_dict(profile.to_dict())
    assert again == profile
    assert again.columns["a"].moments[2][0] == 2  # the NaN is not counted
    constant = drift.score_column("c", again.columns["c"], [3.0] * 10, None, 0.2, 0.4)
    assert constant.wasserstein == 0 and not constant.drifted
    empty = drift.score_column("a", again.columns["a"], [np.nan], None, 0.2, 0.4)
    assert empty.current_rows == 0 and not empty.drifted
    with pytest.raises(ValueError, match="no data for seasons"):
        again.columns["a"].pooled([7])
    with pytest.raises(ValueError, match="no finite values"):
        drift.build_column([np.nan, np.inf])
