"""`powerops monitor --date D`: the service level indicators of the champion and of the data
flowing in, over the window of `monitor.window_days` days before D, against the reference the
champion was trained on. Run daily by the power_monitor DAG, and by `dvc repro`.

What one run does:

1. loads the champion from MLflow, with its reference profiles and outlier detector
   (`powerops.model.reference`, stored with the model version at training time);
2. reads the window's readings (plus the history the features need) from the current dataset
   version, builds the modelling table and the features with the champion's own transformers,
   and forecasts every day of the window day-ahead, exactly as it would have been served;
3. scores drift (features, target, prediction; by effect size, against the same season),
   the outlier rate, schema skew against the training signature, and feature skew and latency
   from the prediction log when there is one;
4. scores the forecasts of days the champion never trained on against their actuals (live
   error) and against the seasonal-naive baseline (the benefit, in kWh and money);
5. records each day's events, evaluates every SLO's error budget and multi-window burn rates,
   raises and resolves alerts (deduplicated) through `powerops.core.alerts`;
6. writes `reports/monitor/<D>/report.json`, `report.html` and `figures.json` (the plots as
   SVG), and copies them to `reports/monitor/latest/`.

A day's events are recorded the first time a run sees the day with actuals, under the champion
of that run: the forecasts served that day were that champion's. A later rollback does not
rewrite history; it shows in the days that follow.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core import alerts
from powerops.core.config import Params, SloConfig
from powerops.core.storage import atomic_write_text
from powerops.data.table import TARGET
from powerops.model import drift, registry
from powerops.model.reference import PREDICTION, Reference

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SOURCE = "powerops.monitor"
EVENTS_FILE = "events.json"
HISTORY_FILE = "history.json"
ALERT_STATE_FILE = "alert_state.json"
LATEST = "latest"
FIGURES_FILE = "figures.json"  # the report's plots as SVG, for the Airflow view


class MonitorError(RuntimeError):
    """Monitoring cannot run: no champion, or no data in the window."""


class NoChampionError(MonitorError):
    """No model holds the champion alias yet: there is nothing to monitor."""


@dataclass(frozen=True)
class Champion:
    version: str
    data_version: str
    test_wape: str
    pipeline: Any
    reference: Reference


def load_champion(params: Params) -> Champion:
    """The champion's pipeline and its stored reference, from MLflow."""
    from powerops.model.reference import MissingReferenceError, load_model_version

    version = registry.alias_version(params, registry.CHAMPION)
    if version is None:
        raise NoChampionError(
            f"{params.mlflow.model_name} has no champion yet: train and promote a model first"
        )
    try:
        pipeline, reference = load_model_version(params, version)
    except MissingReferenceError as exc:
        raise MonitorError(str(exc)) from None
    return Champion(
        version=str(version.version),
        data_version=version.tags.get("data_version", "?"),
        test_wape=version.tags.get("test_wape", "?"),
        pipeline=pipeline,
        reference=reference,
    )


# ---------------------------------------------------------------------------------------------
# SLI events, recorded per day


def load_json(path: Path, default: Any) -> Any:
    """A JSON file's content, or `default` when the file is not there."""
    return json.loads(path.read_text()) if path.is_file() else default


def _day_events(
    table: pd.DataFrame,
    in_window: pd.Series,
    predictions: pd.Series,
    naive: pd.Series,
    outliers: pd.Series,
    schema_bad: bool,
    training_end: pd.Timestamp,
    champion: str,
) -> dict[str, dict[str, Any]]:
    """Per day of the window with readings: live error (out of sample only), outliers, schema."""
    import numpy as np

    days: dict[str, dict[str, Any]] = {}
    frame = table.loc[in_window, ["timestamp", TARGET]].assign(
        prediction=predictions, naive=naive, outlier=outliers
    )
    for day, part in frame.groupby(frame["timestamp"].dt.date):
        actual = part[TARGET]
        scored = part[actual.notna() & part["prediction"].notna()]
        scored = scored[scored["timestamp"] > training_end]
        record: dict[str, Any] = {
            "model_version": champion,
            "rows": len(part),
            "outliers": {
                "rows": int(part["outlier"].notna().sum()),
                "bad": int((part["outlier"] == 1).sum()),
            },
            "schema": {"rows": len(part), "bad": len(part) if schema_bad else 0},
        }
        if len(scored):
            error = np.abs(scored["prediction"] - scored[TARGET])
            both = scored["naive"].notna()
            naive_error = np.abs(scored.loc[both, "naive"] - scored.loc[both, TARGET])
            actual_kwh = float(scored[TARGET].abs().sum())  # kW over one hour = kWh
            record["live"] = {
                "hours": len(scored),
                "actual_kwh": actual_kwh,
                "abs_error_kwh": float(error.sum()),
                "wape": float(error.sum() / actual_kwh) if actual_kwh > 0 else None,
                "naive_abs_error_kwh": float(naive_error.sum()),
                "benefit_kwh": float(naive_error.sum() - error[both].sum()),
            }
        days[str(day)] = record
    return days


def log_indicators(params: Params, start: datetime, end: datetime, pipeline: Any) -> dict[str, Any]:
    """Per day of the prediction log: latency, schema rejections, feature skew."""
    import numpy as np

    from powerops.model import skew
    from powerops.serve import predictionlog

    records = predictionlog.read(params, start, end)
    days: dict[str, Any] = {}
    threshold = next((s.threshold for s in params.monitor.slos if s.indicator == "latency"), None)
    for day, part in records.groupby(records["at"].dt.date) if len(records) else []:
        served = part[part["status"] == 200]
        rejected = part["schema_issues"].map(lambda text: bool(json.loads(text or "[]")))
        fields: dict[str, int] = {}
        for text in part.loc[rejected, "schema_issues"]:
            for issue in json.loads(text):
                name = str(issue).split(":")[0]
                fields[name] = fields.get(name, 0) + 1
        latency = served["latency_ms"].to_numpy(dtype=np.float64)
        skewed = compared = 0
        for inputs, features in zip(served["inputs"], served["features"], strict=True):
            if not inputs or not features:
                continue
            found = skew.feature_skew(
                pipeline,
                predictionlog.frame_of(inputs),
                predictionlog.frame_of(features),
                params.monitor.feature_skew_tolerance,
            )
            compared += found.rows
            skewed += found.skewed_rows
        days[str(day)] = {
            "requests": len(part),
            "latency": {
                "events": len(latency),
                "bad": int((latency > threshold).sum()) if threshold else 0,
                "p95_ms": float(np.percentile(latency, 95)) if len(latency) else None,
            },
            "schema": {"events": len(part), "bad": int(rejected.sum()), "fields": fields},
            "feature_skew": {"rows": compared, "bad": skewed},
        }
    return days


# ---------------------------------------------------------------------------------------------
# SLOs and burn rates


# SLIs recorded as counts per day: (events section, SLI key, key of the event count).
COUNTED_SLIS = {
    "outlier_rate": [("data_days", "outliers", "rows")],
    "schema_skew": [("data_days", "schema", "rows"), ("log_days", "schema", "events")],
    "latency": [("log_days", "latency", "events")],
}


def _slo_events(slo: SloConfig, events: dict[str, Any], first: date, last: date) -> tuple[int, int]:
    """(events, bad) of one SLI over the days first..last inclusive."""
    total = bad = 0

    def days(section: str) -> list[dict[str, Any]]:
        return [v for k, v in events[section].items() if first <= date.fromisoformat(k) <= last]

    if slo.indicator == "live_wape":
        assert slo.threshold is not None
        for day in days("data_days"):
            live = day.get("live")
            if live and live["wape"] is not None:
                total += 1
                bad += live["wape"] > slo.threshold
    elif slo.indicator == "freshness":
        for run in days("runs"):
            total += 1
            bad += run["age_days"] is None or run["age_days"] > (slo.threshold or 0)
    else:
        for section, sli, events_key in COUNTED_SLIS[slo.indicator]:
            for day in days(section):
                total += day[sli][events_key]
                bad += day[sli]["bad"]
    return total, int(bad)


def evaluate_slos(
    params: Params, events: dict[str, Any], data_end: date, today: date
) -> list[dict[str, Any]]:
    """Each SLO over its window: SLI, budget left, burn rates, and which burn-rate rules fire
    (both their windows burning at least that fast). Data SLIs count days before `data_end`;
    the freshness SLI counts monitor runs up to `today`."""
    config = params.monitor
    out = []
    for slo in config.slos:
        allowed = 1.0 - slo.objective
        until = today if slo.indicator == "freshness" else data_end - timedelta(days=1)
        total, bad = _slo_events(
            slo, events, until - timedelta(days=config.slo_window_days - 1), until
        )
        sli = None if total == 0 else 1.0 - bad / total
        remaining = None if total == 0 else 1.0 - (bad / total) / allowed

        def burn(
            days: int, slo: SloConfig = slo, allowed: float = allowed, until: date = until
        ) -> float | None:
            n, b = _slo_events(slo, events, until - timedelta(days=days - 1), until)
            return None if n == 0 else (b / n) / allowed

        rules = []
        for rule in config.burn_rules:
            long, short = burn(rule.long_days), burn(rule.short_days)
            firing = (
                long is not None
                and short is not None
                and long >= rule.burn_rate
                and short >= rule.burn_rate
            )
            rules.append(
                {
                    "rule": rule.name,
                    "severity": rule.severity,
                    "threshold": rule.burn_rate,
                    "long_days": rule.long_days,
                    "short_days": rule.short_days,
                    "long_burn": long,
                    "short_burn": short,
                    "firing": firing,
                }
            )
        out.append(
            {
                "name": slo.name,
                "indicator": slo.indicator,
                "description": slo.description,
                "objective": slo.objective,
                "threshold": slo.threshold,
                "events": total,
                "bad": bad,
                "sli": sli,
                "budget_remaining": remaining,
                "burn": rules,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Alerts: raised on a transition to firing, resolved on the transition back


def _conditions(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for slo in report["slos"]:
        for rule in slo["burn"]:
            if rule["firing"]:
                found[f"slo:{slo['name']}:{rule['rule']}"] = {
                    "severity": rule["severity"],
                    "summary": (
                        f"{slo['name']} burns its error budget {rule['long_burn']:.1f}x over "
                        f"{rule['long_days']} d and {rule['short_burn']:.1f}x over "
                        f"{rule['short_days']} d (rule {rule['rule']}: >= {rule['threshold']}x)"
                    ),
                    "details": {"budget_remaining": slo["budget_remaining"], "sli": slo["sli"]},
                }
    for key, (drifted, why) in _drift_alerts(report["drift"]).items():
        found[key] = {
            "severity": "warning",
            "summary": why,
            "details": {s["column"]: {k: s[k] for k in ("psi", "wasserstein")} for s in drifted},
        }
    skew_rows = sum(d["feature_skew"]["bad"] for d in report["log"].values())
    if skew_rows:
        found["feature_skew"] = {
            "severity": "critical",
            "summary": f"{skew_rows} served rows had features that training would compute "
            "differently",
            "details": {},
        }
    return found


def _drift_alerts(section: dict[str, Any]) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """The drift alerts and their drifted columns.

    * `drift:data`: the load drifted, or at least `feature_share` of the history features did.
      The features all derive from the load, so a real change moves most of them; one alone
      (a weekly peak) moves from one year to the next and is shown, not alerted on.
    * `drift:prediction`: the forecasts drifted.
    """
    columns = section["columns"]
    features = [c for c in columns if c["group"] == "features"]
    moved = [c for c in features if c["drifted"]]
    target = [c for c in columns if c["group"] == "target" and c["drifted"]]
    prediction = [c for c in columns if c["group"] == "prediction" and c["drifted"]]
    alerts_: dict[str, tuple[list[dict[str, Any]], str]] = {}
    share = len(moved) / len(features) if features else 0.0
    if target or share >= section["feature_share"]:
        drifted = target + moved
        alerts_["drift:data"] = (
            drifted,
            "the data drifted against the same season of the champion's training data: "
            + ", ".join(c["column"] for c in drifted),
        )
    if prediction:
        alerts_["drift:prediction"] = (
            prediction,
            "the forecasts drifted against the champion's forecasts on its training data",
        )
    return alerts_


def _raise_and_resolve(params: Params, report: dict[str, Any]) -> dict[str, list[str]]:
    path = params.monitor_reports_dir / ALERT_STATE_FILE
    state: dict[str, Any] = load_json(path, {})
    now = _conditions(report)
    raised, resolved = [], []
    for key, condition in now.items():
        if key not in state:
            alerts.emit(
                alerts.Alert(
                    key=key,
                    severity=condition["severity"],
                    source=SOURCE,
                    summary=f"{report['date']}: {condition['summary']}",
                    details=condition["details"] | {"date": report["date"]},
                ),
                params,
            )
            state[key] = {"since": report["date"], **condition}
            raised.append(key)
    for key in sorted(set(state) - set(now)):
        alerts.emit(
            alerts.Alert(
                key=key,
                severity=state[key]["severity"],
                source=SOURCE,
                summary=f"{report['date']}: resolved: {state[key]['summary']}",
                details={"date": report["date"], "since": state[key]["since"]},
                status="resolved",
            ),
            params,
        )
        del state[key]
        resolved.append(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(state, indent=2, sort_keys=True))
    return {"firing": sorted(state), "raised": raised, "resolved": resolved}


# ---------------------------------------------------------------------------------------------


def monitor(params: Params, today: date) -> dict[str, Any]:
    """Monitor the window before `today`; write the reports; return the report."""
    import numpy as np
    import pandas as pd

    from powerops.data.datasets import day_after_latest, read_window
    from powerops.data.quarantine import Quarantine
    from powerops.data.table import table_for
    from powerops.model import forecasting, skew
    from powerops.model.forecasting import compute_threads, history_span

    started = time.perf_counter()
    config = params.monitor
    run_day = datetime(today.year, today.month, today.day)
    # The window ends at the run's date, or at the end of the data if that is earlier (a
    # replay of old months, or a feed that stopped): freshness still counts from the run date.
    end = min(run_day, datetime.combine(day_after_latest(params), datetime.min.time()))
    start = end - timedelta(days=config.window_days)
    champion = load_champion(params)
    reference = champion.reference

    readings = read_window(params, start - history_span(params), end)
    if readings.empty or readings[params.source.timestamp_column].max() < start:
        raise MonitorError(f"no readings between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
    table = table_for(params, readings)
    in_window = table["timestamp"] >= start
    schema_issues = skew.schema_issues(skew.frame_schema(table), reference.input_schema)
    with compute_threads(params):
        features = champion.pipeline[:-1].transform(table)
        current = features.loc[in_window]
        predictions = pd.Series(champion.pipeline[-1].predict(current), index=current.index)
        complete = current[reference.features].notna().all(axis=1)
        flags = pd.Series(np.nan, index=current.index)
        if complete.any():
            scored = reference.detector.predict(
                current.loc[complete, reference.features].to_numpy()
            )
            flags[complete] = (scored < 0).astype(float)
    naive = forecasting.baselines(table, params)["seasonal_naive"].loc[in_window]

    # Drift against the same season of the training data.
    months = sorted(set(table.loc[in_window, "timestamp"].dt.month))
    seasons = drift.season_window(months, config.drift.season_spread)
    available = set(next(iter(reference.profile.columns.values())).counts)
    note = None
    if not available & set(seasons):
        note = f"the champion's training data has no months {seasons}: compared with all of it"
        chosen: list[int] | None = None
    else:
        chosen = seasons
    columns = {c: current[c].to_numpy() for c in reference.features}
    columns[TARGET] = table.loc[in_window, TARGET].to_numpy()
    columns[PREDICTION] = predictions.to_numpy()
    # History features are made of the load: their distances are measured in the load's
    # spread, so a smoothed feature (a weekly mean) is not judged on its own narrow range.
    scores = drift.compare(
        reference.profile,
        columns,
        chosen,
        config.drift.psi,
        config.drift.wasserstein,
        scale_by={c: TARGET for c in reference.features},
    )
    groups = {TARGET: "target", PREDICTION: "prediction"}
    drift_rows = [s.to_dict() | {"group": groups.get(s.column, "features")} for s in scores]
    distributions = {
        s.column: _distribution(reference.profile.columns[s.column], chosen, columns[s.column])
        for s in scores
        if s.drifted or s.column in (TARGET, PREDICTION)
    }

    # Events: days first seen with actuals keep the champion that served them.
    events_path = params.monitor_reports_dir / EVENTS_FILE
    events = load_json(events_path, {"data_days": {}, "log_days": {}, "runs": {}})
    new_days = _day_events(
        table,
        in_window,
        predictions,
        naive,
        flags,
        bool(schema_issues),
        reference.training_end,
        champion.version,
    )
    for day, record in new_days.items():
        known = events["data_days"].get(day)
        if known is None or ("live" not in known and "live" in record):
            events["data_days"][day] = record
    log_days = log_indicators(params, start, end, champion.pipeline)
    events["log_days"].update(log_days)
    latest = readings[params.source.timestamp_column].max()
    age_days = (run_day - latest.to_pydatetime()).total_seconds() / 86400
    events["runs"][today.isoformat()] = {"age_days": age_days, "champion": champion.version}
    events_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(events_path, json.dumps(events, indent=1, sort_keys=True))

    window_days = [
        {"day": day} | events["data_days"][day]
        for day in sorted(events["data_days"])
        if start.date() <= date.fromisoformat(day) < end.date()
    ]
    live = [d for d in window_days if "live" in d]
    abs_error = sum(d["live"]["abs_error_kwh"] for d in live)
    naive_error = sum(d["live"]["naive_abs_error_kwh"] for d in live)
    actual = sum(d["live"]["actual_kwh"] for d in live)
    benefit = sum(d["live"]["benefit_kwh"] for d in live)
    served = score_batch_forecasts(params, table, start, end)
    quarantine = Quarantine(params.quarantine_dir)
    window_months = {f"{m.year}-{m.month:02d}" for m in pd.period_range(start, end, freq="M")}
    report: dict[str, Any] = {
        "date": today.isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "champion": {
            "version": champion.version,
            "data_version": champion.data_version,
            "test_wape": champion.test_wape,
            "training_end": reference.training_end.isoformat(),
            # Model aging: how far the window's end is from the last hour it learnt from.
            "age_days": round((end - reference.training_end.to_pydatetime()).days, 1),
        },
        "data": {
            "hours": int(in_window.sum()),
            "latest_reading": latest.isoformat(),
            "age_days": round(age_days, 2),
            "quarantined": sorted(m for m in quarantine.months() if m in window_months),
        },
        "drift": {
            "seasons": chosen or sorted(available),
            "note": note,
            "columns": drift_rows,
            "drifted": [r["column"] for r in drift_rows if r["drifted"]],
            "feature_share": config.drift.feature_share,
            "distributions": distributions,
        },
        "outliers": {
            "hours": int(flags.notna().sum()),
            "outliers": int((flags == 1).sum()),
            "rate": float((flags == 1).sum() / max(int(flags.notna().sum()), 1)),
            "training_rate": reference.document["outlier_rate_training"],
        },
        "schema": {"issues": [str(i) for i in schema_issues]},
        "log": log_days,
        "live": {
            "days": [
                {"day": d["day"], **d["live"], "model_version": d["model_version"]} for d in live
            ],
            "out_of_sample_after": reference.training_end.isoformat(),
            "wape": abs_error / actual if actual else None,
            "naive_wape": naive_error / actual if actual else None,
            "benefit_kwh": benefit,
            "benefit_money": benefit * config.cost_per_kwh,
            "currency": config.currency,
        },
        "batch_forecasts": served,
        "slos": evaluate_slos(params, events, end.date(), today),
    }
    report["alerts"] = _raise_and_resolve(params, report)
    report["seconds"] = round(time.perf_counter() - started, 2)
    _write(params, report, events)
    return report


def score_batch_forecasts(
    params: Params, table: pd.DataFrame, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """power_score's forecasts of the window's days (data/forecasts/), scored against the
    actuals: what was really delivered, beside the champion's forward backtest."""
    import pandas as pd

    actual = table.set_index("timestamp")[TARGET]
    scored = []
    for path in sorted(params.forecasts_dir.glob("*/*.parquet")):
        day = date.fromisoformat(path.parent.name)
        if not start.date() <= day < end.date():
            continue
        forecast = pd.read_parquet(path)
        truth = actual.reindex(forecast["timestamp"]).to_numpy()
        known = ~pd.isna(truth)
        if not known.any():
            continue
        error = abs(forecast[TARGET].to_numpy()[known] - truth[known]).sum()
        total = abs(truth[known]).sum()
        scored.append(
            {
                "day": day.isoformat(),
                "model_version": str(forecast["model_version"].iloc[0]),
                "hours": int(known.sum()),
                "wape": float(error / total) if total else None,
            }
        )
    return scored


def _distribution(
    profile: drift.ColumnProfile, seasons: list[int] | None, values: Any
) -> dict[str, Any]:
    """Reference and current shares on 40 even bins over the reference's range, to plot."""
    import numpy as np

    counts, _, _, _ = profile.pooled(seasons)
    edges = np.asarray(profile.edges)
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    low = min(edges[0], finite.min()) if len(finite) else edges[0]
    high = max(edges[-1], finite.max()) if len(finite) else edges[-1]
    grid = np.linspace(low, high, 41)
    centres = (edges[:-1] + edges[1:]) / 2
    reference, _ = np.histogram(centres, bins=grid, weights=counts)
    current, _ = np.histogram(finite, bins=grid)
    return {
        "edges": [round(float(e), 5) for e in grid],
        "reference": [round(float(v), 6) for v in reference / max(reference.sum(), 1)],
        "current": [round(float(v), 6) for v in current / max(current.sum(), 1)],
    }


def _write(params: Params, report: dict[str, Any], events: dict[str, Any]) -> None:
    """The run's JSON and HTML, the history the plots read, and the `latest` copies."""
    from powerops.monitor import report as monitor_report

    root = params.monitor_reports_dir
    history_path = root / HISTORY_FILE
    history = load_json(history_path, {})
    history[report["date"]] = {
        "champion": report["champion"]["version"],
        "model_age_days": report["champion"]["age_days"],
        "drift": {r["column"]: r["wasserstein"] for r in report["drift"]["columns"]},
        "drifted": report["drift"]["drifted"],
        "live_wape": report["live"]["wape"],
        "benefit_kwh": report["live"]["benefit_kwh"],
        "budget": {s["name"]: s["budget_remaining"] for s in report["slos"]},
        "alerts": report["alerts"]["firing"],
    }
    atomic_write_text(history_path, json.dumps(history, indent=1, sort_keys=True))
    folder = root / report["date"]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "report.json", json.dumps(report, indent=1, default=str))
    plots = monitor_report.figures(report, history, events, params)
    atomic_write_text(folder / FIGURES_FILE, json.dumps(plots))
    atomic_write_text(folder / "report.html", monitor_report.render(report, plots, params))
    latest = root / LATEST
    latest.mkdir(exist_ok=True)
    for name in ("report.json", "report.html", FIGURES_FILE):
        shutil.copyfile(folder / name, latest / name)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few lines for the CLI and the task log."""
    live = report["live"]
    lines = [
        f"monitor {report['date']}: champion v{report['champion']['version']} "
        f"({report['champion']['age_days']:.0f} days past its training data), window "
        f"{report['window']['start'][:10]}..{report['window']['end'][:10]}, "
        f"{report['data']['hours']} hours, data age {report['data']['age_days']:.1f} d",
        "drifted: "
        + (", ".join(report["drift"]["drifted"]) or "none")
        + (f" ({report['drift']['note']})" if report["drift"]["note"] else ""),
        f"outliers: {report['outliers']['rate']:.1%} of {report['outliers']['hours']} hours "
        f"(training {report['outliers']['training_rate']:.1%}); schema issues: "
        + ("; ".join(report["schema"]["issues"]) or "none"),
    ]
    if live["wape"] is not None:
        lines.append(
            f"live WAPE {live['wape']:.3f} vs seasonal naive {live['naive_wape']:.3f} on "
            f"{len(live['days'])} days; benefit {live['benefit_kwh']:.1f} kWh = "
            f"{live['benefit_money']:.2f} {live['currency']}"
        )
    else:
        lines.append("live error: no day after the champion's training data yet")
    for slo in report["slos"]:
        if slo["sli"] is None:
            lines.append(f"SLO {slo['name']}: no events yet")
            continue
        firing = [r["rule"] for r in slo["burn"] if r["firing"]]
        lines.append(
            f"SLO {slo['name']}: {slo['sli']:.1%} good of {slo['events']} (objective "
            f"{slo['objective']:.0%}), budget left {slo['budget_remaining']:.0%}"
            + (f", FIRING {', '.join(firing)}" if firing else "")
        )
    alerts_ = report["alerts"]
    lines.append(
        f"alerts: firing {alerts_['firing'] or 'none'}; raised {alerts_['raised'] or 'none'}; "
        f"resolved {alerts_['resolved'] or 'none'}"
    )
    return lines
