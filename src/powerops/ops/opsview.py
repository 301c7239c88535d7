"""The model-operations page: SLOs and error budget, live error, benefit, the champion and its
alias history, every model version on the pinned test set, dataset versions and quarantine,
drift, monitor runs and open alerts, on one page with a rollback action and links to where
each thing came from.

Airflow serves it (plugins/powerops_view.py mounts `create_app` under the API server and adds
it to the navigation; Airflow's login guards it, and the monitor reports and Data Docs it links
to are served by the same app, behind the same login). A request only reads what the pipeline
has already written: the latest monitoring report and its plots (`reports/monitor/latest/`,
drawn by the monitor run), the alert state and log, the alias audit log, the trainings' records
(`data/training/*/job.json`), the catalog and the quarantine. Nothing is computed or plotted
on request, and nothing here queries MLflow: its links point at the MLflow UI of `make up`.

The rollback form triggers the `power_rollback` DAG through Airflow's REST API from the
browser, with the user's own session: Airflow checks the user's permission to trigger it and
records the run in its audit log; the DAG records the reason in the alias audit log. The form
sends the champion it showed, so a second click (or a rollback someone made meanwhile) is
refused instead of undoing the first.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from powerops.core.config import Params, energy_text

if TYPE_CHECKING:
    from powerops.monitor.result import MonitorReport

ROLLBACK_DAG = "power_rollback"
# MLflow 3's UI opens experiments on its GenAI overview unless a link asks for the classic one
# (it remembers the choice in the browser).
_CLASSIC = "?workflowType=machine_learning"
# Who moved an alias or ran a monitor: `airflow:power_train/<run>`, `airflow:admin via
# power_rollback/<run>`; the DAG and run id make a link to the run in Airflow's UI.
_AIRFLOW_RUN = re.compile(r"^airflow:(?:\S+ via )?(power_\w+)/(\S+)$")
MONITOR_RUNS_SHOWN = 10


def gather(params: Params) -> dict[str, Any]:
    """Everything the page shows, read from the workspace's files."""
    from powerops.data.catalog import Catalog
    from powerops.data.quarantine import Quarantine
    from powerops.model import registry
    from powerops.monitor import events, monitoring
    from powerops.monitor.result import MonitorReport

    latest = params.monitor_reports_dir / monitoring.LATEST
    catalog = Catalog(params.catalog_dir)
    name = params.dataset.name
    quarantine = Quarantine(params.quarantine_dir)
    moves = registry.audit_log(params)
    champion = next((m for m in reversed(moves) if m.alias == registry.CHAMPION), None)
    return {
        "report": MonitorReport.read(report)
        if (report := latest / "report.json").is_file()
        else None,
        "plots": events.load_json(latest / monitoring.FIGURES_FILE, {}),
        "alerts": open_alerts(params),
        "moves": moves,
        "champion": champion.to_version if champion else None,
        "models": _trained_models(params),
        "datasets": catalog.load(name).versions if catalog.exists(name) else [],
        "quarantined": [r for month in quarantine.months() if (r := quarantine.load(month))],
        "monitor_runs": _monitor_runs(params),
        "mlflow": mlflow_ui(params),
        "data_docs": params.resolve(params.validation.data_docs)
        if params.validation.data_docs
        else None,
    }


def _trained_models(params: Params) -> list[dict[str, Any]]:
    """One entry per registered model version, from the trainings' records."""
    from powerops.model.training import RECORD_FILE

    models = []
    for path in sorted(params.training_dir.glob(f"*/{RECORD_FILE}")):
        record = json.loads(path.read_text())
        if "register" not in record:
            continue  # a training that did not get as far as a model version
        metrics = record.get("evaluate", {}).get("metrics", {})
        models.append(
            {
                "version": str(record["register"]["model_version"]),
                "run_id": record["register"].get("run_id"),
                "data_version": record["build_table"]["data_version"],
                "test_set_hash": record["build_table"]["test_set_hash"],
                "test_set_version": record["build_table"].get("test_set_version"),
                "metrics": {k: v for k, v in metrics.items() if k.startswith("test_")},
                "promoted": record.get("gate", {}).get("promote"),
                "verdict": record.get("gate", {}).get("verdict", []),
            }
        )
    models.sort(key=lambda m: int(m["version"]))
    return models


def open_alerts(params: Params) -> list[dict[str, Any]]:
    """The monitoring conditions that fire, and the Airflow tasks whose last try failed and
    that have not succeeded since."""
    from powerops.core import alerts
    from powerops.monitor import alerting, events

    state = events.load_json(params.monitor_reports_dir / alerting.ALERT_STATE_FILE, {})
    found = [
        {"key": key, "severity": a["severity"], "since": a["since"], "summary": a["summary"]}
        for key, a in sorted(state.items())
    ]
    for key, event in sorted(alerts.open_alerts(params, alerts.TASK_PREFIX).items()):
        details = event.get("details", {})
        run = details.get("run_id")
        found.append(
            {
                "key": key,
                "severity": event["severity"],
                "since": event["at"][:19].replace("T", " "),
                "summary": event["summary"],
                "link": airflow_run_path(details["dag_id"], run, details.get("task_id"))
                if run and "dag_id" in details
                else None,
            }
        )
    return found


def _monitor_runs(params: Params) -> list[dict[str, Any]]:
    """The latest monitor runs, newest first, from the history the plots read."""
    from powerops.monitor import events, monitoring

    history = events.load_json(params.monitor_reports_dir / monitoring.HISTORY_FILE, {})
    runs = []
    for day in sorted(history, reverse=True)[:MONITOR_RUNS_SHOWN]:
        point = history[day]
        page = params.monitor_reports_dir / day / "report.html"
        runs.append(
            point
            | {"date": day, "report": f"reports/{day}/report.html" if page.is_file() else None}
        )
    return runs


def mlflow_ui(params: Params) -> str:
    """The MLflow UI `make up` started, else where it starts by default."""
    from powerops.ops import stack

    running = stack.status(params)
    return running.mlflow_url if running else f"http://127.0.0.1:{params.stack.mlflow_port}"


def airflow_run_path(dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """A DAG run (or one of its tasks) in Airflow's UI."""
    path = f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
    return f"{path}/tasks/{quote(task_id)}" if task_id else path


def run_of(by: str) -> str | None:
    """The Airflow run a `by` names, as a path in Airflow's UI; None for a person or the CLI."""
    found = _AIRFLOW_RUN.match(by or "")
    return airflow_run_path(found[1], found[2]) if found else None


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
    from powerops.monitor.slo import format_budget

    rows = []
    for slo in report.slos:
        budget = None if slo.budget_remaining is None else format_budget(slo.budget_remaining)
        cells = [
            f"<b>{_e(slo.name)}</b><br><span class=muted>{_e(slo.description)}</span>",
            f"{slo.objective:.1%}",
            "-" if slo.sli is None else f"{slo.sli:.1%} of {slo.events}",
            f"<span class={'bad' if budget and budget.startswith('-') else 'ok'}>"
            f"{budget or '-'}</span>",
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


def _a(href: str, text: str, target: str = "_top") -> str:
    """A link; `_top` leaves the iframe Airflow shows the page in, `_blank` opens a tab."""
    return f'<a href="{_e(href)}" target={target}>{_e(text)}</a>'


def _models(models: list[dict[str, Any]], champion: str | None, mlflow: str, name: str) -> str:
    rows = []
    for model in reversed(models):
        m = model["metrics"]
        mark = " <b class=ok>champion</b>" if model["version"] == champion else ""
        version = f"{mlflow}/#/models/{quote(name)}/versions/{quote(model['version'])}{_CLASSIC}"
        run = model["run_id"]
        rows.append(
            [
                _a(version, f"v{model['version']}", "_blank") + mark,
                f"v{_e(model['data_version'])}",
                f"<code>{_e(model['test_set_hash'][:12])}</code>",
                _num(m.get("test_wape")),
                _num(m.get("test_mae")),
                _num(m.get("test_rmse")),
                _num(m.get("test_seasonal_naive_wape")),
                "yes" if model["promoted"] else "no",
                _a(f"{mlflow}/#/runs/{quote(run)}{_CLASSIC}", "run", "_blank") if run else "-",
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
    return note + _table([*headers, "MLflow"], rows, "No model version yet.")


def _by(by: str) -> str:
    """Who did it, linked to the Airflow run when it was one."""
    run = run_of(by)
    return _a(run, by) if run else f"<span class=muted>{_e(by)}</span>"


def _moves(moves: list[Any]) -> str:
    rows = [
        [
            _e(move.at[:19].replace("T", " ")),
            _e(move.alias),
            f"{_e(move.from_version or '-')} &rarr; {_e(move.to_version)}",
            _e(move.reason),
            _by(move.by),
        ]
        for move in reversed(moves)
    ]
    return _table(["when (UTC)", "alias", "version", "reason", "by"], rows, "No alias moved yet.")


def _validation(check: dict[str, Any] | None, docs: Path | None, root: Path) -> str:
    """A version's validation verdict, linked to its Data Docs page when there is one."""
    if check is None:
        return "-"
    text = (
        f"<span class=ok>passed {check.get('evaluated')} checks</span>"
        if check.get("success")
        else f"<span class=bad>failed {check.get('failed')}</span>"
    )
    page = check.get("data_docs")  # relative to the workspace, as validation wrote it
    if not page or docs is None:
        return text
    try:
        inside = (root / page).resolve().relative_to(docs.resolve())
    except ValueError:
        return text  # written elsewhere (another workspace): nothing to serve
    return f"{text} ({_a(f'data-docs/{quote(inside.as_posix())}', 'Data Docs', '_blank')})"


def _datasets(versions: list[Any], quarantined: list[Any], docs: Path | None, root: Path) -> str:
    rows = [
        [
            f"v{version.version}",
            _e(f"{version.first_month} .. {version.last_month}"),
            f"{version.rows:,}",
            _validation(version.validation, docs, root),
            f"<code>{_e(version.content_hash[:12])}</code>",
            _by(version.created_by) if version.created_by else "-",
        ]
        for version in reversed(versions)
    ]
    headers = ["version", "months", "rows", "validation", "content hash", "published by"]
    table = _table(headers, rows, "None yet.")
    held = _table(
        ["month", "status", "reason"],
        [[_e(r.month), _e(r.status), _e(r.reason)] for r in quarantined],
        "No batch is in quarantine.",
    )
    return f"{table}<h3>Quarantined batches</h3>{held}"


def _monitor_table(runs: list[dict[str, Any]]) -> str:
    rows = [
        [
            _a(run["report"], run["date"], "_blank") if run["report"] else _e(run["date"]),
            f"v{_e(run['champion'])}",
            _num(run.get("live_wape")),
            _e(", ".join(run.get("alerts", [])) or "-"),
            _by(run["by"]) if run.get("by") else "-",
        ]
        for run in runs
    ]
    headers = ["judged day (report)", "champion", "live WAPE", "alerts firing", "run by"]
    return _table(headers, rows, "power_monitor has not run yet.")


def _alerts(found: list[dict[str, Any]]) -> str:
    rows = [
        [
            f"<b class=bad>{_e(a['key'])}</b>",
            _e(a["severity"]),
            _e(a["since"]),
            _e(a["summary"]) + (f" ({_a(a['link'], 'the failed run')})" if a.get("link") else ""),
        ]
        for a in found
    ]
    return _table(["alert", "severity", "since", "summary"], rows, "No alert is open.")


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


# The rollback action. The button is disabled from the first click until the run ends, and the
# form sends the champion it showed: the DAG refuses a rollback from any other champion.
_ROLLBACK_JS = """
const dag = "__DAG__", api = "/api/v2/dags/" + dag;
const form = document.getElementById("rollback"), button = form.querySelector("button");
const out = document.getElementById("rollback-result"), paused = document.getElementById("paused");
const get = (url) => fetch(url, {credentials: "same-origin"}).then(
  async (r) => [r.ok, r.status, await r.json().catch(() => ({}))]);
function say(text, runId) {
  out.textContent = text;
  if (!runId) return;
  const link = document.createElement("a");
  link.href = "/dags/" + dag + "/runs/" + encodeURIComponent(runId);
  link.target = "_top";
  link.textContent = "run " + runId;
  out.append(" (", link, ")");
}
async function follow(runId) {
  button.disabled = true;
  for (;;) {
    const [ok, status, run] = await get(api + "/dagRuns/" + encodeURIComponent(runId));
    if (!ok) { say("cannot read the rollback run: " + status, runId); return; }
    if (run.state === "success") {
      say("rollback succeeded: reload the page to see the new champion", runId);
      return;  // the champion shown is stale now: the button stays off until a reload
    }
    if (run.state === "failed") {
      say("rollback failed, the champion did not move: read the run's log", runId);
      button.disabled = false;
      return;
    }
    say("rollback " + run.state + " ...", runId);
    await new Promise((done) => setTimeout(done, 2000));
  }
}
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (button.disabled) return;
  button.disabled = true;
  const data = new FormData(form);
  const conf = {reason: data.get("reason"), expected_champion: data.get("expected_champion")};
  if (data.get("to_version")) conf.to_version = data.get("to_version");
  say("triggering " + dag + " ...");
  const response = await fetch(api + "/dagRuns", {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({logical_date: null, conf: conf}),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    say("refused (" + response.status + "): " + JSON.stringify(body.detail));
    button.disabled = false;
    return;
  }
  follow(body.dag_run_id);
});
document.getElementById("unpause").addEventListener("click", async () => {
  const response = await fetch(api, {
    method: "PATCH", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({is_paused: false}),
  });
  if (response.ok) paused.hidden = true;
});
(async () => {
  const [ok, , info] = await get(api);
  if (ok && info.is_paused) paused.hidden = false;
  const [listed, , runs] = await get(api + "/dagRuns?state=queued&state=running");
  if (listed && runs.dag_runs.length) follow(runs.dag_runs[0].dag_run_id);
})();
"""


def _rollback_form(models: list[dict[str, Any]], champion: str | None) -> str:
    if champion is None:
        return "<p class=muted>No champion yet: nothing to roll back.</p>"
    options = '<option value="">the previous version (alias `previous`)</option>' + "".join(
        f'<option value="{_e(m["version"])}">v{_e(m["version"])}</option>'
        for m in reversed(models)
        if m["version"] != champion
    )
    return f"""<p id=paused class=bad hidden>{ROLLBACK_DAG} is paused: a rollback would wait
in the queue. <button id=unpause type=button>Unpause {ROLLBACK_DAG}</button></p>
<form id=rollback><input type=hidden name=expected_champion value="{_e(champion)}">
<label>Roll the champion (v{_e(champion)}) back to <select name=to_version>{options}</select>
</label><label>because <input name=reason required minlength=5 size=40
 placeholder="why, for the alias audit log"></label>
<button type=submit>Roll back</button></form><p id=rollback-result class=muted></p>
<script>{_ROLLBACK_JS.replace("__DAG__", ROLLBACK_DAG)}</script>"""


def _monitoring(data: dict[str, Any], params: Params) -> str:
    """The SLO, benefit and drift sections of the latest monitoring report."""
    report, plots = data["report"], data["plots"]
    if report is None:
        return "<p class=muted>No monitoring report yet: power_monitor has not run.</p>"
    live = report.live
    benefit = (
        f"<p>Error avoided against the seasonal-naive forecast over {len(live.days)} "
        f"days after the champion's training data: <b>"
        f"{energy_text(live.benefit_kwh, live.energy_unit)} = "
        f"{live.benefit_money:,.2f} {_e(live.currency)}</b> (live WAPE "
        f"{_num(live.wape)} against {_num(live.naive_wape)}).</p>"
        if live.wape is not None
        else "<p class=muted>No day after the champion's training data has actuals.</p>"
    )
    return f"""<p>Monitored {_e(report.date)}: window {_e(report.window.start[:10])} to
{_e(report.window.end[:10])}; the champion's training data ends
{_e(report.champion.training_end[:10])}.
{_a(f"reports/{report.date}/report.html", "The full report", "_blank")}.</p>
<h2>Service level objectives ({params.monitor.slo_window_days}-day error budget)</h2>
<div id=slos>{_slos(report)}</div>
<h3>Live error against the budget</h3>{plots.get("live_error", "")}
<h3>Error budget left, per monitor run</h3>{plots.get("budget", "")}
<h2>Benefit delivered</h2><div id=benefit>{benefit}</div>{plots.get("benefit", "")}
<h2>Drift, {_e(report.date)}</h2>{_drift(report)}
<h3>Drift over time</h3>{plots.get("drift_over_time", "")}
<h3>Reference and current distributions</h3>{plots.get("distributions", "")}"""


def render(data: dict[str, Any], params: Params) -> str:
    """The page, from what `gather` read."""
    from powerops.monitor.report import STYLE

    champion, mlflow, name = data["champion"], data["mlflow"], params.mlflow.model_name
    shown = (
        _a(
            f"{mlflow}/#/models/{quote(name)}/versions/{quote(champion)}{_CLASSIC}",
            f"v{champion}",
            "_blank",
        )
        if champion
        else "none yet"
    )
    models = _models(data["models"], champion, mlflow, name)
    datasets = _datasets(data["datasets"], data["quarantined"], data["data_docs"], params.root)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>powerops: model operations</title><style>{STYLE}
form label{{margin-right:1em}}</style></head><body>
<h1>powerops model operations</h1>
<p id=champion>Champion: <b>{shown}</b> of {_e(name)}; {len(data["models"])} model versions,
{len(data["datasets"])} dataset versions, {len(data["alerts"])} open alerts.</p>
<h2>Open alerts</h2><div id=alerts>{_alerts(data["alerts"])}</div>
{_monitoring(data, params)}
<h3>Monitor runs</h3><div id=monitor-runs>{_monitor_table(data["monitor_runs"])}</div>
<h2>Champion and alias history</h2>{_rollback_form(data["models"], champion)}
<div id=aliases>{_moves(data["moves"])}</div>
<h2>Model versions on the pinned test set</h2><div id=models>{models}</div>
<h2>Dataset versions</h2><div id=datasets>{datasets}</div>
</body></html>"""


def _serve_file(folder: Path, path: str) -> Any:
    """A file under `folder`; 404 for anything else (no way out through `..`)."""
    from fastapi import HTTPException
    from fastapi.responses import FileResponse

    root = folder.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, f"no such file: {path}")
    return FileResponse(target)


def create_app(params: Params, dependencies: Sequence[Any] = ()) -> Any:
    """The page as a FastAPI app, with the monitor reports and Data Docs it links to;
    `dependencies` guard all of it (Airflow's login, in the plugin)."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="powerops model operations", dependencies=list(dependencies))

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render(gather(params), params)

    @app.get("/reports/{path:path}")
    def monitor_report(path: str) -> Any:
        return _serve_file(params.monitor_reports_dir, path)

    @app.get("/data-docs/{path:path}")
    def data_docs(path: str) -> Any:
        if not params.validation.data_docs:
            raise HTTPException(404, "Data Docs are off (validation.data_docs in params.yaml)")
        return _serve_file(params.resolve(params.validation.data_docs), path)

    return app
