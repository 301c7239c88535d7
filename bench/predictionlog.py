"""Benchmark: a day of the prediction log (powerops.serve.predictionlog), written and read.

A day of 100,000 served requests (the size of a busy single-household service, ~1.2 a
second), each as `powerops serve` logs it: a one-hour forecast after 192 hours of history (the
body as received, ~14 KB, with loads drawn afresh for each request), one row of 45 features,
one output. Measured in the same run, best of --repeat:

- writing: `Journal.add` per record (the cost each request pays before its answer leaves),
  with `serve.log_fsync` interval and always;
- the baseline: the layout before journals, one Parquet part per second of traffic and worker,
  read whole by the old reader (`pd.read_parquet` per part): here 400 parts of 250 records
  (what two workers under ~125 requests a second wrote, the layout's best case), and 1,000
  one-record parts (what it wrote at this day's ~1.2 a second), extrapolated to the day;
- the day's journals read as they are (today, before compaction), compacted, then the
  compacted day read: whole, the SLI columns, and what `powerops monitor` reads (the SLI
  columns of every request and the bulk of a `monitor.skew_sample_rate` sample).

Target (issue 18): what monitoring reads of the day in under 1 s. Timings never fail the run
(the machine is shared and noisy); the exit code is 1 if a read loses or invents a record.

    make bench-predictionlog   # or: .venv/bin/python bench/predictionlog.py [--requests N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from powerops.core.config import Params, load_params
from powerops.serve import predictionlog
from powerops.serve.journal import Journal
from timing import best_of

ROOT = Path(__file__).resolve().parents[1]
DAY = datetime(2026, 11, 28, tzinfo=UTC)


def day_of_records(count: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(18)
    hours = pd.date_range("2007-03-02", periods=193, freq="h").strftime("%Y-%m-%dT%H:%M:%S")
    names = [f"feature_{n}" for n in range(45)]
    records = []
    for number in range(count):
        loads = np.round(rng.gamma(2.0, 0.6, 193), 3).tolist()
        rows = [
            {"timestamp": hour, "load_kw": load, "coverage": 1.0}
            for hour, load in zip(hours, loads, strict=True)
        ]
        rows[-1]["load_kw"] = None
        at = DAY + timedelta(seconds=number * 86_400 / count)
        records.append(
            predictionlog.record(
                f"req-{number}",
                at,
                "online",
                "9",
                200,
                float(rng.gamma(2.0, 1.5)),
                json.dumps({"rows": rows}),
                predictionlog.split_json(names, [192], rng.random((1, 45))),
                [float(loads[-2])],
                rows=193,
            )
        )
    return records


def workspace(base: Path, name: str, fsync: str = "interval") -> Params:
    params = load_params(ROOT / "params.yaml")
    serve = params.serve.model_copy(update={"log_fsync": fsync})
    return params.model_copy(update={"root": base / name, "serve": serve})


def write_journals(params: Params, records: list[dict[str, Any]]) -> float:
    """Two workers' journals (records alternate between them); seconds per record."""
    workers = [Journal(params), Journal(params)]
    started = time.perf_counter()
    for number, item in enumerate(records):
        workers[number % 2].add(item)
    seconds = (time.perf_counter() - started) / len(records)
    for worker in workers:
        worker.close()
    return seconds


def write_parts(params: Params, records: list[dict[str, Any]], size: int = 250) -> None:
    for start in range(0, len(records), size):
        predictionlog.append(params, records[start : start + size])


def read_parts(params: Params) -> pd.DataFrame:
    folder = predictionlog.day_folder(params, DAY.date())
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))])


def monitoring_read(params: Params) -> int:
    end = DAY + timedelta(days=1)
    every = predictionlog.read(params, DAY, end, predictionlog.SLI_COLUMNS)
    bulk = ("at", "status", "inputs", "features")
    rate = params.monitor.skew_sample_rate
    sample = predictionlog.read(params, DAY, end, bulk, sample=rate, ordered=False)
    return len(every) + len(sample)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"building {args.requests:,} logged requests ...", flush=True)
    records = day_of_records(args.requests)
    end = DAY + timedelta(days=1)
    with tempfile.TemporaryDirectory(prefix="powerops-bench-log-") as base:
        journals, synced, parts = (
            workspace(Path(base), "journals"),
            workspace(Path(base), "synced", "always"),
            workspace(Path(base), "parts"),
        )
        per_record = write_journals(journals, records)
        per_synced = write_journals(synced, records[: min(2000, len(records))])
        write_parts(parts, records)
        baseline, old = best_of(args.repeat, lambda: read_parts(parts))
        singles = workspace(Path(base), "singles")
        write_parts(singles, records[:1000], size=1)
        per_part = best_of(args.repeat, lambda: read_parts(singles))[0] / 1000
        uncompacted, raw = best_of(1, lambda: predictionlog.read(journals, DAY, end))
        today, _ = best_of(1, lambda: monitoring_read(journals))
        compaction, twins = best_of(1, lambda: predictionlog.compact(journals))
        whole, full = best_of(args.repeat, lambda: predictionlog.read(journals, DAY, end))
        sli, _ = best_of(
            args.repeat,
            lambda: predictionlog.read(journals, DAY, end, predictionlog.SLI_COLUMNS),
        )
        monitor, _ = best_of(args.repeat, lambda: monitoring_read(journals))
        size = sum(p.stat().st_size for p in twins) / 1e6
    problems = [
        f"{name}: {len(frame)} records, {len(records)} logged"
        for name, frame in (("parts", old), ("journals", raw), ("compacted", full))
        if len(frame) != len(records) or frame["request_id"].nunique() != len(records)
    ]
    print(f"\nwrite, per request (Journal.add): {per_record * 1e6:.0f} us with log_fsync interval,")
    print(f"  {per_synced * 1e6:.0f} us with log_fsync always (an fsync each)")
    print(f"compaction of the day's 2 journals: {compaction:.2f} s, {size:.0f} MB of Parquet")
    print(f"\nreading the day ({args.requests:,} requests), best of {args.repeat}:")
    label = f"baseline: {-(-args.requests // 250)} parts, read whole"
    print(f"  {label:52s} {baseline:7.3f} s   1.00x")
    rows = (
        ("journals before compaction, whole", uncompacted),
        ("journals before compaction, what monitoring reads", today),
        ("compacted, whole", whole),
        ("compacted, SLI columns", sli),
        ("compacted, what monitoring reads", monitor),
    )
    for name, seconds in rows:
        print(f"  {name:52s} {seconds:7.3f} s   {seconds / baseline:.3f}x")
    print(
        f"  (at ~1.2 requests a second the old layout wrote about a part per request: reading "
        f"1,000 one-record parts took {per_part * 1000:.2f} s, so the day's would take "
        f"~{per_part * args.requests:.0f} s)"
    )
    verdict = "met" if monitor < 1 else "NOT met"
    print(f"\ntarget: monitoring reads a day of {args.requests:,} requests in under 1 s: {verdict}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
