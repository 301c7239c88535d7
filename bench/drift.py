"""Benchmark: the drift step (powerops.model.drift) against a per-column scipy.stats KS test.

1M reference rows and 1M current rows of 20 synthetic columns (numpy default_rng, fixed seed),
mixing normal, skewed (lognormal, gamma, exponential, Weibull), heavy-tailed, uniform, bimodal
and integer-valued columns. The current rows are fresh draws from the same distributions,
except for:

- three planted, meaningful shifts, which the drift step must flag:
  normal_2    mean shifted by +0.5 reference standard deviations (N(100, 15) -> N(107.5, 15));
  gamma_1     scale multiplied by 1.5 (Gamma(k=2, theta=1) -> Gamma(k=2, theta=1.5));
  bimodal_1   mixture weight of the left mode 0.5 -> 0.2 (modes N(-2, 1) and N(2, 1));
- two tiny but real shifts, which it must not flag (a p-value test on 1M rows does):
  normal_3    mean shifted by +0.02 standard deviations;
  poisson_1   rate 3 -> 3.05 (+0.03 standard deviations).

Measured in the same run, best of --repeat:
- `build_profile` on the reference: paid once, at training time, reported separately;
- `compare` of the current rows with that profile (seasons=None, thresholds from params.yaml
  `monitor.drift`): the monitoring step;
- the baseline: `scipy.stats.ks_2samp(reference, current)` per column, flagged at p < 0.05;
- for reference, `scipy.stats.wasserstein_distance` per column (the exact distance).

Exit code 1 when the drift step does not flag exactly the planted columns. Timings never fail
the run: the machine is shared and noisy, the figure to compare is the ratio.

    make bench-drift         # or: .venv/bin/python bench/drift.py [--repeat 3] [--rows N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import stats

from powerops.core.config import load_params
from powerops.model.drift import DriftScore, build_profile, compare
from timing import best_of

REPO = Path(__file__).resolve().parents[1]

SEED = 20240611
ROWS = 1_000_000
KS_ALPHA = 0.05
PLANTED = {
    "normal_2": "mean +0.5 sd",
    "gamma_1": "scale x1.5",
    "bimodal_1": "weight 0.5->0.2",
}
TINY = {"normal_3": "mean +0.02 sd", "poisson_1": "rate 3->3.05"}

FloatArray = npt.NDArray[np.float64]
Columns = dict[str, FloatArray]


def _mixture(
    rng: np.random.Generator,
    n: int,
    weight: float,
    left: tuple[float, float],
    right: tuple[float, float],
) -> FloatArray:
    """A two-component normal mixture: `weight` of the rows from N(*left), the rest N(*right)."""
    pick = rng.random(n) < weight
    return np.where(pick, rng.normal(*left, n), rng.normal(*right, n))


def draw(rng: np.random.Generator, n: int, current: bool) -> Columns:
    """The 20 columns; `current` applies the planted and tiny shifts (see the docstring)."""
    c = current
    columns = {
        "normal_1": rng.normal(0.0, 1.0, n),
        "normal_2": rng.normal(100.0 + (0.5 * 15.0 if c else 0.0), 15.0, n),
        "normal_3": rng.normal(-3.0 + (0.02 * 0.2 if c else 0.0), 0.2, n),
        "normal_4": rng.normal(5.0, 2.0, n),
        "lognormal_1": rng.lognormal(0.0, 0.5, n),
        "lognormal_2": rng.lognormal(2.0, 1.0, n),
        "gamma_1": rng.gamma(2.0, 1.5 if c else 1.0, n),
        "gamma_2": rng.gamma(0.5, 4.0, n),
        "exponential": rng.exponential(3.0, n),
        "weibull": 10.0 * rng.weibull(1.5, n),
        "student_t4": rng.standard_t(4, n),
        "laplace": rng.laplace(0.0, 1.0, n),
        "uniform_1": rng.uniform(0.0, 1.0, n),
        "uniform_2": rng.uniform(-50.0, 50.0, n),
        "beta": rng.beta(2.0, 5.0, n),
        "bimodal_1": _mixture(rng, n, 0.2 if c else 0.5, (-2.0, 1.0), (2.0, 1.0)),
        "bimodal_2": _mixture(rng, n, 0.3, (0.0, 1.0), (6.0, 2.0)),
        "poisson_1": rng.poisson(3.05 if c else 3.0, n),
        "poisson_2": rng.poisson(40.0, n),
        "negbinomial": rng.negative_binomial(5, 0.3, n),
    }
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def ks_per_column(reference: Columns, current: Columns) -> dict[str, tuple[float, float]]:
    """KS statistic and p-value of each column."""
    out = {}
    for name, values in reference.items():
        result = stats.ks_2samp(values, current[name])
        out[name] = (float(result.statistic), float(result.pvalue))
    return out


def wasserstein_per_column(reference: Columns, current: Columns) -> dict[str, float]:
    """Exact earth mover's distance of each column, in reference standard deviations."""
    return {
        name: float(stats.wasserstein_distance(values, current[name]) / values.std())
        for name, values in reference.items()
    }


def _speed(baseline: float, ours: float) -> str:
    ratio = baseline / ours
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each step; best is kept")
    parser.add_argument("--rows", type=int, default=ROWS, help="rows of reference and current")
    args = parser.parse_args()
    thresholds = load_params(REPO / "params.yaml").monitor.drift

    rng = np.random.default_rng(SEED)
    reference, current = draw(rng, args.rows, current=False), draw(rng, args.rows, current=True)
    print(
        f"{args.rows:,} reference + {args.rows:,} current rows x {len(reference)} columns, "
        f"seed {SEED}; best of {args.repeat}"
    )
    print(
        f"thresholds (params.yaml monitor.drift): psi >= {thresholds.psi}, "
        f"wasserstein >= {thresholds.wasserstein} sd; KS baseline: p < {KS_ALPHA}"
    )

    profile_s, profile = best_of(args.repeat, lambda: build_profile(reference))
    compare_s, scores = best_of(
        args.repeat,
        lambda: compare(profile, current, None, thresholds.psi, thresholds.wasserstein),
    )
    ks_s, ks = best_of(args.repeat, lambda: ks_per_column(reference, current))
    wd_s, exact = best_of(args.repeat, lambda: wasserstein_per_column(reference, current))

    by_name: dict[str, DriftScore] = {s.column: s for s in scores}
    print()
    print(
        f"{'column':<13} {'shift':<20} {'psi':>7} {'W/sd':>7} {'exact W':>8} {'drift':>6} "
        f"{'KS D':>8} {'KS p':>9} {'KS':>4}"
    )
    for name in reference:
        score = by_name[name]
        shift = PLANTED.get(name) or (f"tiny: {TINY[name]}" if name in TINY else "")
        statistic, pvalue = ks[name]
        print(
            f"{name:<13} {shift:<20} {score.psi:>7.4f} {score.wasserstein:>7.4f} "
            f"{exact[name]:>8.4f} {'YES' if score.drifted else '-':>6} {statistic:>8.5f} "
            f"{pvalue:>9.1e} {'YES' if pvalue < KS_ALPHA else '-':>4}"
        )

    ours = [s.column for s in scores if s.drifted]
    ks_flagged = [name for name, (_, p) in ks.items() if p < KS_ALPHA]
    expected = [name for name in reference if name in PLANTED]
    worst = max(abs(by_name[name].wasserstein - exact[name]) for name in reference)
    print()
    print(f"profile, once at training time (build_profile): {profile_s:.3f} s")
    print(
        f"drift step (compare): {compare_s:.3f} s; scipy ks_2samp per column: {ks_s:.3f} s; "
        f"ratio {ks_s / compare_s:.1f} = {_speed(ks_s, compare_s)}"
    )
    print(
        f"scipy wasserstein_distance per column: {wd_s:.3f} s; ratio {wd_s / compare_s:.1f} = "
        f"{_speed(wd_s, compare_s)}; binned vs exact W, largest difference {worst:.2e} sd"
    )
    print(f"flagged by drift step: {ours} (expected {expected})")
    print(f"flagged by ks_2samp p < {KS_ALPHA}: {ks_flagged}")
    if set(ours) == set(expected):
        print("OK: the drift step flags exactly the planted columns")
        return 0
    missed = [name for name in expected if name not in ours]
    extra = [name for name in ours if name not in expected]
    for name in missed:
        s = by_name[name]
        print(
            f"MISSED {name} ({PLANTED[name]}): psi {s.psi:.4f} vs {thresholds.psi}, "
            f"wasserstein {s.wasserstein:.4f} vs {thresholds.wasserstein} (both must reach)"
        )
    for name in extra:
        s = by_name[name]
        print(f"UNEXPECTED {name}: psi {s.psi:.4f}, wasserstein {s.wasserstein:.4f}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
