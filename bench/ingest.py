"""Benchmark: ingest all 48 months of the UCI source, against a plain pandas.read_csv of it.

Each step runs in its own process so its peak RSS is its own. The machine is shared and noisy,
so the figure to compare across runs is the ratio to the baseline measured in the same run.

    make bench-ingest        # or: .venv/bin/python bench/ingest.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEP = r"""
import json, resource, sys, time
from pathlib import Path
from powerops.core.config import load_params
step, params_file = sys.argv[1], sys.argv[2]
params = load_params(params_file)
started = time.perf_counter()
if step == "read_csv":
    import pandas as pd
    rows = len(pd.read_csv(params.source_path()))
elif step == "ingest":
    from powerops import stages
    rows = sum(r.rows for r in stages.ingest(params))
elif step == "validate":
    from powerops import stages
    import pyarrow.parquet as pq
    from powerops.data.datasets import batch_files
    assert len(stages.validate(params)) == 48
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in batch_files(params.raw_dir).values())
elif step == "publish":
    from powerops import stages
    rows = stages.publish(params)[-1].rows
seconds = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"step": step, "seconds": seconds, "rows": rows, "peak_mb": peak_mb}))
"""


def measure(step: str, params_file: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", STEP, step, str(params_file)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each step; best is kept")
    args = parser.parse_args()
    from tests.conftest import make_workspace

    from powerops.core.config import load_params

    source = load_params(REPO / "params.yaml").source_path()
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="powerops-bench-") as tmp:
            workspace = make_workspace(Path(tmp) / "ws", source, through="2010-11")
            params_file = workspace / "params.yaml"
            for step in ("read_csv", "ingest", "validate", "publish"):
                result = measure(step, params_file)
                if step not in best or result["seconds"] < best[step]["seconds"]:
                    best[step] = result
    base = best["read_csv"]
    print(f"source: {source} ({source.stat().st_size / 1e6:.0f} MB), best of {args.repeat}")
    print(f"{'step':<34} {'seconds':>8} {'rows/s':>12} {'peak MB':>8} {'time x':>7} {'mem x':>6}")
    labels = {
        "read_csv": "baseline: pandas.read_csv",
        "ingest": "powerops ingest, 48 months",
        "validate": "powerops validate, 48 batches",
        "publish": "powerops publish, 48 versions",
    }
    for step, result in best.items():
        rate = result["rows"] / result["seconds"]
        print(
            f"{labels[step]:<34} {result['seconds']:>8.2f} {rate:>12,.0f}"
            f" {result['peak_mb']:>8.0f} {result['seconds'] / base['seconds']:>7.2f}"
            f" {result['peak_mb'] / base['peak_mb']:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
