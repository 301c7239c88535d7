"""Benchmark: the Airflow model-operations page (`powerops.ops.opsview`) with 48 months of history.

A temporary workspace holds what four years of the pipeline leave behind: 48 dataset versions
in the catalog (each with its validation), 2 quarantined batches, 16 trainings' records (one
every third month), 40 alias moves, 2 open alerts, and a monitoring report whose plots were
drawn by `monitor_report.figures` from 1,461 days of live error and 48 monthly monitor runs
(the plotting happens here, once, as the monitor run does it; the page only inlines it).

Measured in the same run, median of --repeat:
- the page: `gather` (read the files) + `render` (the HTML), what one request costs;
- the baseline: reading the same files and parsing them (json.loads, yaml.safe_load), the
  least any page showing them could cost.

The issue's target is a page under 1 s; it prints the ratio to the baseline. Timings never
fail the run.

    make bench-opsview       # or: .venv/bin/python bench/opsview.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from powerops.core.config import Params, load_params
from powerops.data.catalog import Catalog, DatasetRecord, VersionRecord
from powerops.model import registry
from powerops.monitor import alerting, monitoring
from powerops.monitor import report as monitor_report
from powerops.monitor.result import (
    AlertChanges,
    Burn,
    ChampionInfo,
    DataInfo,
    Distribution,
    Drift,
    DriftColumn,
    Live,
    MonitorReport,
    Outliers,
    Schema,
    SloStatus,
    Window,
)
from powerops.ops import opsview

REPO = Path(__file__).resolve().parents[1]
MONTHS = 48
TARGET_MS = 1000.0


def month(n: int) -> str:
    year, index = divmod(11 + n, 12)
    return f"{2006 + year}-{index + 1:02d}"


def build(params: Params) -> None:
    """Four years of the pipeline's files, synthetic but shaped like the real ones."""
    rng = np.random.default_rng(5)
    versions = [
        VersionRecord(
            version=n,
            content_hash=f"{n:064x}",
            dvc_md5=f"{n:032x}.dir",
            parent=n - 1 if n > 1 else None,
            added={
                "month": month(n),
                "file": f"{month(n)}.parquet",
                "sha256": "0" * 64,
                "raw_sha256": "0" * 64,
                "rows": 43_200,
            },
            first_month=month(1),
            last_month=month(n),
            month_count=n,
            rows=43_200 * n,
            created_at="2026-11-28T00:00:00+00:00",
            validation={"suite": "raw_batch", "success": True, "evaluated": 38, "failed": 0},
        )
        for n in range(1, MONTHS + 1)
    ]
    Catalog(params.catalog_dir).save(
        DatasetRecord(
            name=params.dataset.name, description="bench", owner="bench", versions=versions
        )
    )
    for held in (month(20), month(33)):
        folder = params.quarantine_dir / held
        folder.mkdir(parents=True)
        record = {
            "month": held,
            "status": "quarantined",
            "raw_sha256": "0" * 64,
            "reason": "3 expectations failed",
            "summary": {},
            "history": [],
        }
        (folder / "quarantine.json").write_text(json.dumps(record))
    for model in range(1, 17):
        job = params.training_dir / f"v{3 * model:04d}-bench"
        job.mkdir(parents=True)
        metrics = {f"test_{m}": float(rng.uniform(0.3, 0.6)) for m in ("wape", "mae", "rmse")}
        record = {
            "build_table": {"data_version": str(3 * model), "test_set_hash": "a" * 64},
            "evaluate": {
                "metrics": metrics | {"test_seasonal_naive_wape": 0.56},
                "backtest": {"steps": [{"step": s, "wape": 0.4} for s in range(24)]},
            },
            "gate": {"promote": bool(model % 2), "verdict": ["pass: ..."] * 3},
            "register": {"model_version": str(model)},
        }
        (job / "job.json").write_text(json.dumps(record))
    for n in range(40):
        registry._append_audit(
            params,
            registry.AliasMove(
                f"2026-11-28T00:{n:02d}:00+00:00",
                "m",
                "champion",
                str(n // 3) if n else None,
                str(n // 3 + 1),
                "gate passed",
                "bench",
            ),
        )
    days = [date(2007, 1, 1) + timedelta(days=d) for d in range(1461)]
    events: dict[str, Any] = {"data_days": {}, "log_days": {}, "runs": {}}
    for day in days:
        actual = float(rng.uniform(20, 40))
        error = actual * float(rng.uniform(0.2, 0.9))
        naive = actual * float(rng.uniform(0.3, 0.9))
        events["data_days"][day.isoformat()] = {
            "live": {
                "wape": error / actual,
                "actual_kwh": actual,
                "abs_error_kwh": error,
                "naive_abs_error_kwh": naive,
                "benefit_kwh": naive - error,
            }
        }
    columns = ["load_kw", "prediction"] + [f"history__lag_{k}" for k in (24, 48, 168)]
    history: dict[str, Any] = {}
    for n in range(1, MONTHS + 1):
        history[f"{month(n)}-01"] = {
            "drift": {c: float(rng.uniform(0, 0.6)) for c in columns},
            "budget": {s.name: float(rng.uniform(-0.5, 1)) for s in params.monitor.slos},
        }
    edges = list(np.linspace(0, 5, 41))
    shape = {"edges": edges, "reference": [1 / 40] * 40, "current": [1 / 40] * 40}
    report = MonitorReport(
        date="2010-12-01",
        window=Window(start="2010-11-01T00:00:00", end="2010-12-01T00:00:00"),
        champion=ChampionInfo(
            version="16",
            data_version="46",
            test_wape="0.4400",
            training_end="2010-08-31T23:00:00",
            age_days=91.0,
        ),
        data=DataInfo(
            hours=720, latest_reading="2010-11-30T23:59:00", age_days=0.0, quarantined=[]
        ),
        drift=Drift(
            seasons=[10, 11, 12],
            note=None,
            columns=[
                DriftColumn(
                    column=c,
                    group="features",
                    psi=0.1,
                    wasserstein=0.2,
                    drifted=False,
                    reference_rows=2000,
                    current_rows=720,
                    reference_mean=1.0,
                    current_mean=1.1,
                )
                for c in columns
            ],
            drifted=[],
            feature_share=params.monitor.drift.feature_share,
            distributions={c: Distribution.model_validate(shape) for c in columns},
        ),
        outliers=Outliers(hours=720, outliers=7, rate=0.01, training_rate=0.01),
        schema=Schema(issues=[]),
        log={},
        live=Live(
            days=[],
            out_of_sample_after="2010-08-31T23:00:00",
            wape=0.45,
            naive_wape=0.6,
            benefit_kwh=120.0,
            benefit_money=30.0,
            currency="EUR",
        ),
        batch_forecasts=[],
        slos=[
            SloStatus(
                name=s.name,
                indicator=s.indicator,
                description=s.description,
                objective=s.objective,
                threshold=s.threshold,
                sli=0.9,
                events=30,
                bad=3,
                budget_remaining=0.5,
                burn=[
                    Burn(
                        rule=r.name,
                        severity=r.severity,
                        threshold=r.burn_rate,
                        long_days=r.long_days,
                        short_days=r.short_days,
                        long_burn=0.5,
                        short_burn=0.2,
                        firing=False,
                    )
                    for r in params.monitor.burn_rules
                ],
            )
            for s in params.monitor.slos
        ],
        alerts=AlertChanges(firing=[], raised=[], resolved=[]),
    )
    latest = params.monitor_reports_dir / monitoring.LATEST
    latest.mkdir(parents=True)
    (latest / "report.json").write_text(report.to_json())
    plots = monitor_report.figures(report, history, events, params)
    (latest / monitoring.FIGURES_FILE).write_text(json.dumps(plots))
    alerts = {
        f"drift:{k}": {"severity": "warning", "since": "2010-12-01", "summary": "drifted"}
        for k in ("data", "prediction")
    }
    (params.monitor_reports_dir / alerting.ALERT_STATE_FILE).write_text(json.dumps(alerts))


def read_files(params: Params) -> int:
    """The baseline: every file the page reads, read and parsed, nothing else."""
    parsed: list[Any] = []
    for path in params.root.rglob("*"):
        if path.suffix == ".json":
            parsed.append(json.loads(path.read_text()))
        elif path.suffix == ".jsonl":
            parsed += [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".yaml" and path.parent == params.catalog_dir:
            parsed.append(yaml.safe_load(path.read_text()))
    return len(parsed)


def median_ms(work: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="powerops-bench-opsview-") as root:
        params = load_params(REPO / "params.yaml").model_copy(update={"root": Path(root)})
        build(params)
        opsview.render(opsview.gather(params), params)  # imports, first reads
        page = opsview.render(opsview.gather(params), params)
        data = opsview.gather(params)
        page_ms = median_ms(lambda: opsview.render(opsview.gather(params), params), args.repeat)
        base_ms = median_ms(lambda: read_files(params), args.repeat)
    print(
        f"{MONTHS} months: {len(data['datasets'])} dataset versions, {len(data['models'])} "
        f"model versions, {len(data['moves'])} alias moves, {len(data['quarantined'])} "
        f"quarantined, page {len(page) / 1e6:.2f} MB"
    )
    print(f"page (gather + render), median of {args.repeat}: {page_ms:8.1f} ms")
    print(f"baseline (read and parse the files):    {base_ms:8.1f} ms")
    print(f"ratio page / baseline: {page_ms / base_ms:.2f}")
    verdict = "met" if page_ms < TARGET_MS else "NOT met"
    print(f"target page < {TARGET_MS:.0f} ms: {page_ms:.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
