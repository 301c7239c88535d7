"""Drift judged by effect size, from reference profiles computed once at training time.

A reference profile holds, for each monitored column, a histogram of the training data on a
fine grid of quantile edges, kept separately for each *season* (the calendar month, for this
strongly seasonal load), plus the moments needed to normalise. Monitoring then reads only the
current window: one `searchsorted` pass per column, no sort, no access to the training data.

Two effect sizes, both computed from those histograms:

* **normalised Wasserstein distance**: the earth mover's distance between the current window
  and the reference, divided by the reference's standard deviation. It answers "how far did
  the mass move, in units of the usual spread", and does not grow with the sample size.
* **PSI** (population stability index) over the reference's deciles: how much mass changed
  bins. It reacts to any reshuffle, even one that moves values very little.

A column is *drifted* when both exceed their thresholds (params.yaml `monitor.drift`): the
distribution changed (PSI) and it moved far (Wasserstein). p-values are not used: on a month
of hourly rows (and even more on 1M rows) a p-value test flags differences nobody cares about.

The season matters. Monthly mean load ranges from 0.6 kW in summer to 1.9 kW in winter, so a
summer month compared with a whole year of training data always looks drifted. The window is
compared with the reference's same calendar months (the window's months and one on each side),
which is what "normal for this time of year" means. See docs/monitoring.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ColumnProfile", "DriftScore", "Profile", "build_profile", "compare", "score_column"]

FloatArray = npt.NDArray[np.float64]
# Quantile bins and as many evenly spaced ones: see `build_column`.
DEFAULT_BINS = 200
PSI_GROUPS = 10
# Empty PSI bins are floored at this share, so one empty bin cannot make the index infinite.
PSI_FLOOR = 1e-4


@dataclass
class ColumnProfile:
    """One column's reference: `edges` (bins + 1 values, strictly increasing) and, per season,
    the bin counts plus count, sum and sum of squares of the values."""

    edges: list[float]
    counts: dict[int, list[int]] = field(default_factory=dict)
    moments: dict[int, list[float]] = field(default_factory=dict)

    def pooled(self, seasons: Iterable[int] | None) -> tuple[FloatArray, float, float, float]:
        """Counts, n, mean and standard deviation over the chosen seasons (all if None)."""
        keys = sorted(self.counts) if seasons is None else [s for s in seasons if s in self.counts]
        if not keys:
            raise ValueError(f"the reference has no data for seasons {sorted(seasons or [])}")
        counts = np.sum([np.asarray(self.counts[k], dtype=np.float64) for k in keys], axis=0)
        n, total, squares = np.sum([self.moments[k] for k in keys], axis=0)
        mean = total / n
        std = float(np.sqrt(max(squares / n - mean**2, 0.0)))
        return counts, float(n), float(mean), std

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges,
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
            "moments": {str(k): v for k, v in sorted(self.moments.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        return cls(
            edges=[float(e) for e in data["edges"]],
            counts={int(k): [int(c) for c in v] for k, v in data["counts"].items()},
            moments={int(k): [float(m) for m in v] for k, v in data["moments"].items()},
        )


@dataclass
class Profile:
    """Reference profiles of several columns, keyed by column name."""

    columns: dict[str, ColumnProfile]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": {name: p.to_dict() for name, p in sorted(self.columns.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls({name: ColumnProfile.from_dict(p) for name, p in data["columns"].items()})


@dataclass(frozen=True)
class DriftScore:
    column: str
    psi: float
    wasserstein: float  # normalised by the reference's standard deviation
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_mean: float
    current_mean: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "psi": round(self.psi, 4),
            "wasserstein": round(self.wasserstein, 4),
            "drifted": self.drifted,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reference_mean": round(self.reference_mean, 4),
            "current_mean": round(self.current_mean, 4),
        }


def _finite(values: Any) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def build_column(
    values: Any, seasons: Any | None = None, bins: int = DEFAULT_BINS
) -> ColumnProfile:
    """Profile one column; `seasons` gives each value's season (None: one season, 0)."""
    array = np.asarray(values, dtype=np.float64)
    keys = np.zeros(len(array), dtype=np.int64) if seasons is None else np.asarray(seasons)
    keep = np.isfinite(array)
    array, keys = array[keep], keys[keep]
    if len(array) == 0:
        raise ValueError("no finite values to profile")
    # Quantile edges put bins where the mass is; evenly spaced ones keep the sparse tails from
    # falling into a few very wide bins, inside which the distance could not be resolved.
    edges = np.unique(
        np.concatenate(
            [
                np.quantile(array, np.linspace(0.0, 1.0, bins + 1)),
                np.linspace(array.min(), array.max(), bins + 1),
            ]
        )
    )
    if len(edges) < 2:  # a constant column: one bin around the value
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    profile = ColumnProfile(edges=[float(e) for e in edges])
    for key in np.unique(keys):
        part = array[keys == key]
        profile.counts[int(key)] = _bin_counts(part, edges)[1:-1].astype(int).tolist()
        profile.moments[int(key)] = [float(len(part)), float(part.sum()), float(part @ part)]
    return profile


def build_profile(
    columns: Mapping[str, Any], seasons: Any | None = None, bins: int = DEFAULT_BINS
) -> Profile:
    """Profile every column of `columns` (name -> values), with a shared `seasons` array."""
    return Profile({name: build_column(v, seasons, bins) for name, v in columns.items()})


def _bin_counts(values: FloatArray, edges: FloatArray) -> FloatArray:
    """Counts below edges[0], in each bin, and above edges[-1]: len(edges) + 1 values.
    Values equal to the last edge fall in the last bin, as np.histogram does."""
    index = np.searchsorted(edges, values, side="right")
    index[values == edges[-1]] = len(edges) - 1
    return np.bincount(index, minlength=len(edges) + 1).astype(np.float64)


def _wasserstein(
    edges: FloatArray, reference: FloatArray, current: FloatArray, tails: tuple[float, float]
) -> float:
    """Earth mover's distance between two binned distributions (shares, with the current
    one's under- and overflow), mass spread evenly inside each bin: the integral of |F - G|.
    Beyond the reference's range the reference CDF is 0 or 1, so those parts are exact:
    `tails` holds E[(edges[0] - X)+] and E[(X - edges[-1])+] of the current window."""
    ref_cdf = np.concatenate([[0.0], np.cumsum(reference)])
    cur_cdf = np.concatenate([[0.0], np.cumsum(current[1:-1])]) + current[0]
    gap = np.abs(ref_cdf - cur_cdf)
    widths = np.diff(edges)
    inside = float(np.sum(widths * (gap[:-1] + gap[1:]) / 2.0))
    return inside + tails[0] + tails[1]


def _psi(reference: FloatArray, current: FloatArray) -> float:
    """PSI over the reference's deciles: fine bins grouped where the reference's cumulative
    share crosses each tenth; the current window's under/overflow joins the outer groups."""
    cumulative = np.cumsum(reference)
    group = np.minimum((cumulative * PSI_GROUPS - 1e-9).astype(int), PSI_GROUPS - 1)
    group = np.maximum.accumulate(np.clip(group, 0, PSI_GROUPS - 1))
    ref = np.bincount(group, weights=reference, minlength=PSI_GROUPS)
    cur = np.bincount(group, weights=current[1:-1], minlength=PSI_GROUPS)
    cur[0] += current[0]
    cur[-1] += current[-1]
    used = ref > 0
    ref, cur = np.maximum(ref[used], PSI_FLOOR), np.maximum(cur[used], PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def score_column(
    name: str,
    profile: ColumnProfile,
    values: Any,
    seasons: Iterable[int] | None,
    psi_threshold: float,
    wasserstein_threshold: float,
    scale: float | None = None,
) -> DriftScore:
    """The current `values` against the reference pooled over `seasons`. The Wasserstein
    distance is divided by `scale`, or by the pooled reference's standard deviation."""
    current = _finite(values)
    counts, n, mean, std = profile.pooled(seasons)
    edges = np.asarray(profile.edges)
    if len(current) == 0:
        return DriftScore(name, 0.0, 0.0, False, int(n), 0, mean, float("nan"))
    binned = _bin_counts(current, edges) / len(current)
    tails = (
        float(np.sum(np.maximum(edges[0] - current, 0.0))) / len(current),
        float(np.sum(np.maximum(current - edges[-1], 0.0))) / len(current),
    )
    reference = counts / counts.sum()
    distance = _wasserstein(edges, reference, binned, tails)
    spread = std if scale is None else scale
    wasserstein = distance / spread if spread > 0 else (0.0 if distance == 0 else float("inf"))
    psi = _psi(reference, binned)
    drifted = psi >= psi_threshold and wasserstein >= wasserstein_threshold
    return DriftScore(
        name, psi, wasserstein, drifted, int(n), len(current), mean, float(current.mean())
    )


def compare(
    profile: Profile,
    current: Mapping[str, Any],
    seasons: Iterable[int] | None,
    psi_threshold: float,
    wasserstein_threshold: float,
    scale_by: Mapping[str, str] | None = None,
) -> list[DriftScore]:
    """Score every profiled column present in `current`, in the profile's column order.
    `scale_by` maps a column to another whose reference spread measures its distance: columns
    in the same unit (features made of the target) are then judged on one scale."""
    chosen = None if seasons is None else sorted(set(seasons))
    scale_by = scale_by or {}
    scores = []
    for name, column in profile.columns.items():
        if name not in current:
            continue
        scale = None
        if name in scale_by:
            scale = profile.columns[scale_by[name]].pooled(chosen)[3]
        scores.append(
            score_column(
                name, column, current[name], chosen, psi_threshold, wasserstein_threshold, scale
            )
        )
    return scores


def season_window(months: Iterable[int], spread: int = 1) -> list[int]:
    """The calendar months of the window plus `spread` neighbours on each side (1..12)."""
    chosen = set()
    for month in months:
        for offset in range(-spread, spread + 1):
            chosen.add((month - 1 + offset) % 12 + 1)
    return sorted(chosen)
