"""The model-operations page: SLOs and error budget, live error, benefit, the champion and its
alias history, every model version on the pinned test set, dataset versions and quarantine,
drift and open alerts, on one page with a rollback action.

Airflow serves it (plugins/powerops_view.py mounts `create_app` under the API server and adds
it to the navigation; Airflow's login guards it). A request only reads what the pipeline has
already written: the latest monitoring report and its plots (`reports/monitor/latest/`, drawn
by the monitor run), the alert state, the alias audit log, the trainings' records
(`data/training/*/job.json`), the catalog and the quarantine. Nothing is computed or plotted
on request, and nothing here queries MLflow.

The rollback form triggers the `power_rollback` DAG through Airflow's REST API from the
browser, with the user's own session: Airflow checks the user's permission to trigger it and
records the run in its audit log; the DAG records the reason in the alias audit log.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params

if TYPE_CHECKING:
    from powerops.monitor.result import MonitorReport

ROLLBACK_DAG = "power_rollback"


def gather(params: Params) -> dict[str, Any]:
    """Everything the page shows, read from the workspace's files."""
    from powerops.data.catalog import Catalog
    from powerops.data.quarantine import Quarantine
    from powerops.model import registry
    from powerops.model.training import RECORD_FILE
    from powerops.monitor import alerting, events, monitoring
    from powerops.monitor.result import MonitorReport

    reports = params.monitor_reports_dir
    latest = reports / monitoring.LATEST
    models = []
    for path in sorted(params.training_dir.glob(f"*/{RECORD_FILE}")):
        record = json.loads(path.read_text())
        if "register" not in record:
            continue  # a training that did not get as far as a model version
        metrics = record.get("evaluate", {}).get("metrics", {})
        models.append(
            {
                "version": str(record["register"]["model_version"]),
                "data_version": record["build_table"]["data_version"],
                "test_set_hash": record["build_table"]["test_set_hash"],
                "test_set_version": record["build_table"].get("test_set_version"),
                "metrics": {k: v for k, v in metrics.items() if k.startswith("test_")},
                "promoted": record.get("gate", {}).get("promote"),
                "verdict": record.get("gate", {}).get("verdict", []),
            }
        )
    models.sort(key=lambda m: int(m["version"]))
    catalog = Catalog(params.catalog_dir)
    name = params.dataset.name
    versions = catalog.load(name).versions if catalog.exists(name) else []
    quarantine = Quarantine(params.quarantine_dir)
    quarantined = [record for month in quarantine.months() if (record := quarantine.load(month))]
    moves = registry.audit_log(params)
    champion = next((m for m in reversed(moves) if m.alias == registry.CHAMPION), None)
    return {
        "report": MonitorReport.read(report)
        if (report := latest / "report.json").is_file()
        else None,
        "plots": events.load_json(latest / monitoring.FIGURES_FILE, {}),
        "alerts": events.load_json(reports / alerting.ALERT_STATE_FILE, {}),
        "moves": moves,
        "champion": champion.to_version if champion else None,
        "models": models,
        "datasets": versions,
        "quarantined": quarantined,
    }


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    """An HTML table; cells are HTML already."""
    if not rows:
        return f"<p class=muted>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _slos(report: MonitorReport) -> str:
    rows = []
    for slo in report.slos:
        budget = slo.budget_remaining
        if budget is not None:
            budget = round(budget, 9) + 0.0  # -2e-16 is an exhausted budget, not a negative one
        cells = [
            f"<b>{_e(slo.name)}</b><br><span class=muted>{_e(slo.description)}</span>",
            f"{slo.objective:.1%}",
            "-" if slo.sli is None else f"{slo.sli:.1%} of {slo.events}",
            f"<span class={'bad' if budget is not None and budget < 0 else 'ok'}>"
            f"{_num(budget, '.0%')}</span>",
        ]
        for rule in slo.burn:
            firing = " <b class=bad>firing</b>" if rule.firing else ""
            cells.append(
                f"{_num(rule.short_burn, '.2f')} ({rule.short_days} d) / "
                f"{_num(rule.long_burn, '.2f')} ({rule.long_days} d), "
                f"alert at {rule.threshold}x{firing}"
            )
        rows.append(cells)
    rules = [b.rule for b in report.slos[0].burn] if report.slos else []
    headers = ["SLO", "objective", "SLI", "error budget left"]
    headers += [f"{rule}: short / long burn rate" for rule in rules]
    return _table(headers, rows, "No SLO is configured.")


def _models(models: list[dict[str, Any]], champion: str | None) -> str:
    rows = []
    for model in reversed(models):
        m = model["metrics"]
        mark = " <b class=ok>champion</b>" if model["version"] == champion else ""
        rows.append(
            [
                f"v{_e(model['version'])}{mark}",
                f"v{_e(model['data_version'])}",
                f"<code>{_e(model['test_set_hash'][:12])}</code>",
                _num(m.get("test_wape")),
                _num(m.get("test_mae")),
                _num(m.get("test_rmse")),
                _num(m.get("test_seasonal_naive_wape")),
                "yes" if model["promoted"] else "no",
            ]
        )
    hashes = {m["test_set_hash"] for m in models}
    note = (
        "<p>All versions were scored on the same pinned test set.</p>"
        if len(hashes) == 1
        else f"<p class=bad>{len(hashes)} different test sets: compare within one only.</p>"
        if hashes
        else ""
    )
    headers = ["model", "data", "test set (sha256)", "WAPE", "MAE", "RMSE", "naive WAPE", "gate"]
    return note + _table(headers, rows, "No model version yet.")


def _moves(moves: list[Any]) -> str:
    rows = [
        [
            _e(move.at[:19].replace("T", " ")),
            _e(move.alias),
            f"{_e(move.from_version or '-')} &rarr; {_e(move.to_version)}",
            _e(move.reason),
            f"<span class=muted>{_e(move.by)}</span>",
        ]
        for move in reversed(moves)
    ]
    return _table(["when (UTC)", "alias", "version", "reason", "by"], rows, "No alias moved yet.")


def _datasets(versions: list[Any], quarantined: list[Any]) -> str:
    rows = []
    for version in reversed(versions):
        check = version.validation
        status = (
            "-"
            if check is None
            else f"<span class=ok>passed {check.get('evaluated')} checks</span>"
            if check.get("success")
            else f"<span class=bad>failed {check.get('failed')}</span>"
        )
        rows.append(
            [
                f"v{version.version}",
                _e(f"{version.first_month} .. {version.last_month}"),
                f"{version.rows:,}",
                status,
                f"<code>{_e(version.content_hash[:12])}</code>",
            ]
        )
    table = _table(["version", "months", "rows", "validation", "content hash"], rows, "None yet.")
    held = _table(
        ["month", "status", "reason"],
        [[_e(r.month), _e(r.status), _e(r.reason)] for r in quarantined],
        "No batch is in quarantine.",
    )
    return f"{table}<h3>Quarantined batches</h3>{held}"


def _drift(report: MonitorReport) -> str:
    rows = [
        [
            _e(c.column),
            _num(c.psi),
            _num(c.wasserstein),
            "<b class=bad>drifted</b>" if c.drifted else "<span class=ok>no</span>",
        ]
        for c in report.drift.columns
    ]
    return _table(["column", "PSI", "Wasserstein (sd)", "drift"], rows, "No drift measured.")


def _rollback_form(models: list[dict[str, Any]], champion: str | None) -> str:
    options = '<option value="">the previous version (alias `previous`)</option>' + "".join(
        f'<option value="{_e(m["version"])}">v{_e(m["version"])}</option>'
        for m in reversed(models)
        if m["version"] != champion
    )
    return f"""<form id=rollback>
<label>Roll the champion back to <select name=to_version>{options}</select></label>
<label>because <input name=reason required minlength=5 size=40
 placeholder="why, for the alias audit log"></label>
<button type=submit>Roll back</button></form><p id=rollback-result class=muted></p>
<script>
document.getElementById("rollback").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const form = new FormData(event.target);
  const conf = {{reason: form.get("reason")}};
  if (form.get("to_version")) conf.to_version = form.get("to_version");
  const out = document.getElementById("rollback-result");
  out.textContent = "triggering {ROLLBACK_DAG} ...";
  const response = await fetch("/api/v2/dags/{ROLLBACK_DAG}/dagRuns", {{
    method: "POST", credentials: "same-origin",
    headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{logical_date: null, conf: conf}}),
  }});
  const body = await response.json().catch(() => ({{}}));
  out.textContent = response.ok
    ? "triggered {ROLLBACK_DAG} run " + body.dag_run_id + ": the alias moves when it succeeds"
    : "refused (" + response.status + "): " + JSON.stringify(body.detail);
}});
</script>"""


def render(data: dict[str, Any], params: Params) -> str:
    """The page, from what `gather` read."""
    from powerops.monitor.report import STYLE

    report, plots = data["report"], data["plots"]
    champion = data["champion"]
    alerts = data["alerts"]
    open_alerts = _table(
        ["alert", "severity", "since", "summary"],
        [
            [f"<b class=bad>{_e(key)}</b>", _e(a["severity"]), _e(a["since"]), _e(a["summary"])]
            for key, a in sorted(alerts.items())
        ],
        "No alert is open.",
    )
    if report is None:
        monitoring_html = "<p class=muted>No monitoring report yet: power_monitor has not run.</p>"
        headline = ""
    else:
        live = report.live
        benefit = (
            f"<p>Error avoided against the seasonal-naive forecast over {len(live.days)} "
            f"days after the champion's training data: <b>{live.benefit_kwh:,.1f} kWh = "
            f"{live.benefit_money:,.2f} {_e(live.currency)}</b> (live WAPE "
            f"{_num(live.wape)} against {_num(live.naive_wape)}).</p>"
            if live.wape is not None
            else "<p class=muted>No day after the champion's training data has actuals.</p>"
        )
        headline = (
            f"<p>Monitored {_e(report.date)}: window {_e(report.window.start[:10])} to "
            f"{_e(report.window.end[:10])}; the champion's training data ends "
            f"{_e(report.champion.training_end[:10])}.</p>"
        )
        monitoring_html = f"""
<h2>Service level objectives ({params.monitor.slo_window_days}-day error budget)</h2>
<div id=slos>{_slos(report)}</div>
<h3>Live error against the budget</h3>{plots.get("live_error", "")}
<h3>Error budget left, per monitor run</h3>{plots.get("budget", "")}
<h2>Benefit delivered</h2><div id=benefit>{benefit}</div>{plots.get("benefit", "")}
<h2>Drift, {_e(report.date)}</h2>{_drift(report)}
<h3>Drift over time</h3>{plots.get("drift_over_time", "")}
<h3>Reference and current distributions</h3>{plots.get("distributions", "")}"""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>powerops: model operations</title><style>{STYLE}
form label{{margin-right:1em}}</style></head><body>
<h1>powerops model operations</h1>
<p id=champion>Champion: <b>{"v" + _e(champion) if champion else "none yet"}</b> of
{_e(params.mlflow.model_name)}; {len(data["models"])} model versions,
{len(data["datasets"])} dataset versions, {len(alerts)} open alerts.</p>{headline}
<h2>Open alerts</h2><div id=alerts>{open_alerts}</div>
{monitoring_html}
<h2>Champion and alias history</h2>{_rollback_form(data["models"], champion)}
<div id=aliases>{_moves(data["moves"])}</div>
<h2>Model versions on the pinned test set</h2><div id=models>{
        _models(data["models"], champion)
    }</div>
<h2>Dataset versions</h2><div id=datasets>{_datasets(data["datasets"], data["quarantined"])}</div>
</body></html>"""


def create_app(params: Params, dependencies: Sequence[Any] = ()) -> Any:
    """The page as a FastAPI app; `dependencies` guard it (Airflow's login, in the plugin)."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="powerops model operations", dependencies=list(dependencies))

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render(gather(params), params)

    return app
