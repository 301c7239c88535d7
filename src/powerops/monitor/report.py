"""The monitoring report as one self-contained HTML page: plots are inline SVG, no scripts, no
network, so it opens from disk in any browser and can be mailed or archived as one file."""

from __future__ import annotations

import html
import io
from datetime import date
from typing import Any

from powerops.core.config import Params, energy_in, energy_text, periods_text
from powerops.data.table import TARGET
from powerops.model.reference import PREDICTION
from powerops.monitor.result import MonitorReport
from powerops.monitor.slo import format_budget

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.25em .6em;border-bottom:1px solid #eee;
text-align:left}th{background:#f6f6f6}.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b}
.muted{color:#777}.grid{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}
"""


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float = 5.2, height: float = 2.8) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _dates(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _distribution_plots(report: MonitorReport) -> str:
    parts = []
    drifted = set(report.drift.drifted)
    for column, data in report.drift.distributions.items():
        fig, ax = _figure(3.6, 2.4)
        ax.stairs(data.reference, data.edges, label="reference (same season)", color="#888")
        ax.stairs(data.current, data.edges, label="current window", color="#c0392b")
        ax.set_title(column + (" (drifted)" if column in drifted else ""), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
        parts.append(f"<figure>{_svg(fig)}</figure>")
    return '<div class="grid">' + "".join(parts) + "</div>"


def _drift_over_time(history: dict[str, Any], threshold: float) -> str:
    dates = [date.fromisoformat(d) for d in sorted(history)]
    if not dates:
        return "<p class=muted>No history yet.</p>"
    fig, ax = _figure()
    runs = [history[d.isoformat()]["drift"] for d in dates]
    for column in (TARGET, PREDICTION):
        ax.plot(dates, [r.get(column) for r in runs], marker=".", label=column)
    features = [
        max((v for k, v in r.items() if k.startswith("history__")), default=None) for r in runs
    ]
    ax.plot(dates, features, marker=".", label="features (largest)")
    ax.axhline(threshold, color="#b00020", linestyle="--", linewidth=1, label="threshold")
    ax.set_ylabel("Wasserstein / reference std")
    _dates(ax)
    ax.legend(fontsize=7)
    return _svg(fig)


def _live_days(events: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(day, live error record) of every day scored against its actuals, oldest first."""
    return sorted((d, v["live"]) for d, v in events["data_days"].items() if "live" in v)


def _live_error(events: dict[str, Any], params: Params) -> str:
    days = _live_days(events)
    if not days:
        return "<p class=muted>No day after the champion's training data has actuals yet.</p>"
    slo = next((s for s in params.monitor.slos if s.indicator == "live_wape"), None)
    fig, ax = _figure(7.5, 2.8)
    when = [date.fromisoformat(d) for d, _ in days]
    ax.plot(when, [v["wape"] for _, v in days], marker=".", linewidth=0.8, label="daily WAPE")
    naive = [
        v["naive_abs_error_kwh"] / v["actual_kwh"] if v["actual_kwh"] else None for _, v in days
    ]
    ax.plot(when, naive, linewidth=0.8, color="#999", label="seasonal naive")
    if slo is not None and slo.threshold is not None:
        ax.axhline(
            slo.threshold,
            color="#b00020",
            linestyle="--",
            linewidth=1,
            label=f"SLO: a day is good at WAPE <= {slo.threshold}",
        )
    ax.set_ylabel("WAPE")
    _dates(ax)
    ax.legend(fontsize=7)
    return _svg(fig)


def _budget_over_time(history: dict[str, Any]) -> str:
    dates = sorted(history)
    names = sorted({n for d in dates for n, v in history[d]["budget"].items() if v is not None})
    if not names:
        return "<p class=muted>No SLO has events yet.</p>"
    fig, ax = _figure(7.5, 2.6)
    when = [date.fromisoformat(d) for d in dates]
    for name in names:
        ax.plot(when, [history[d]["budget"].get(name) for d in dates], marker=".", label=name)
    ax.axhline(0, color="#b00020", linewidth=1)
    ax.set_ylabel("error budget left")
    _dates(ax)
    ax.legend(fontsize=7)
    return _svg(fig)


def _benefit(events: dict[str, Any], params: Params) -> str:
    import numpy as np

    days = _live_days(events)
    if not days:
        return "<p class=muted>No benefit measured yet.</p>"
    fig, ax = _figure(7.5, 2.6)
    when = [date.fromisoformat(d) for d, _ in days]
    unit = params.monitor.energy_unit
    total = np.cumsum([energy_in(v["benefit_kwh"], unit) for _, v in days])
    ax.plot(when, total, color="#1b7f3b")
    ax.fill_between(when, total, alpha=0.15, color="#1b7f3b")
    cost = params.monitor.cost_per_kwh
    money = sum(v["benefit_kwh"] for _, v in days) * cost
    ax.set_ylabel(f"{unit} of error avoided")
    ax.set_title(
        f"cumulative: {total[-1]:,.1f} {unit} = {money:,.2f} "
        f"{params.monitor.currency} at {cost} per kWh",
        fontsize=9,
    )
    _dates(ax)
    return _svg(fig)


def _fmt(value: Any, spec: str = ".3f", unit: str = "") -> str:
    """`value` formatted, then `unit` ("x"): a missing value is "n/a", without the unit."""
    if value is None:
        return "<span class=muted>n/a</span>"
    text = format(value, spec) if isinstance(value, float) else html.escape(str(value))
    return text + unit


def _slo_table(report: MonitorReport) -> str:
    rows = []
    for slo in report.slos:
        remaining = None if slo.budget_remaining is None else format_budget(slo.budget_remaining)
        css = "bad" if remaining is not None and remaining.startswith("-") else "ok"
        burns = "<br>".join(
            f"{'<b class=bad>FIRING</b> ' if r.firing else ''}{r.rule}: "
            f"{_fmt(r.long_burn, '.2f', 'x')} / {r.long_days} d, "
            f"{_fmt(r.short_burn, '.2f', 'x')} / {r.short_days} d (>= {r.threshold}x)"
            for r in slo.burn
        )
        rows.append(
            f"<tr><td>{html.escape(slo.name)}<br><span class=muted>"
            f"{html.escape(slo.description)}</span></td><td>{slo.objective:.0%}</td>"
            f"<td>{_fmt(slo.sli, '.2%')}</td><td>{slo.bad} / {slo.events}</td>"
            f"<td class={css}>{_fmt(remaining)}</td><td>{burns}</td></tr>"
        )
    return (
        "<table><tr><th>SLO</th><th>objective</th><th>SLI</th><th>bad / events</th>"
        "<th>budget left</th><th>burn rate (long, short)</th></tr>" + "".join(rows) + "</table>"
    )


def _drift_table(report: MonitorReport) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.column)}</td><td>{r.group}</td><td>{r.psi:.3f}</td>"
        f"<td>{r.wasserstein:.3f}</td><td>{r.reference_mean:.3f}</td>"
        f"<td>{r.current_mean:.3f}</td>"
        + ("<td class=bad>drifted</td></tr>" if r.drifted else "<td class=ok>ok</td></tr>")
        for r in report.drift.columns
    )
    return (
        "<table><tr><th>column</th><th>kind</th><th>PSI</th><th>Wasserstein / std</th>"
        "<th>reference mean</th><th>current mean</th><th></th></tr>" + rows + "</table>"
    )


def figures(
    report: MonitorReport, history: dict[str, Any], events: dict[str, Any], params: Params
) -> dict[str, str]:
    """The report's plots as inline SVG (or a note where there is nothing to plot yet). The
    monitor run stores them beside the report, so the Airflow view shows them without
    plotting anything on request."""
    return {
        "live_error": _live_error(events, params),
        "budget": _budget_over_time(history),
        "benefit": _benefit(events, params),
        "distributions": _distribution_plots(report),
        "drift_over_time": _drift_over_time(history, params.monitor.drift.wasserstein),
    }


def render(report: MonitorReport, plots: dict[str, str], params: Params) -> str:
    """The whole report page, with the plots `figures` made."""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>powerops monitor {report.date}</title><style>{STYLE}</style></head><body>
<h1>powerops monitoring, {report.date}</h1>
{_overview(report)}
<h2>Service level objectives and error budget ({params.monitor.slo_window_days} days)</h2>
{_slo_table(report)}
<h3>Live error against the budget</h3>{plots["live_error"]}
<h3>Error budget left, per monitor run</h3>{plots["budget"]}
<p>Batch forecasts (power_score) scored against their actuals: {html.escape(_batch(report))}.</p>
<h2>Benefit delivered against the seasonal-naive baseline</h2>
<p>{_live_line(report)}.</p>{plots["benefit"]}
{_drift_part(report, params)}
<h3>Reference and current distributions</h3>{plots["distributions"]}
<h3>Drift over time</h3>{plots["drift_over_time"]}
{_outliers_and_skew(report)}
<p class=muted>Generated in {report.seconds} s by powerops monitor.</p>
</body></html>
"""


def _overview(report: MonitorReport) -> str:
    champion, data, changes = report.champion, report.data, report.alerts
    firing = ", ".join(changes.firing) or "none"
    return f"""<p>Window {report.window.start[:10]} to {report.window.end[:10]} (exclusive):
{periods_text(data.hours, report.window.frequency)}; latest reading {data.latest_reading}
({data.age_days:.1f} days old).
Champion <b>v{champion.version}</b> (data v{champion.data_version}, pinned-test WAPE
{champion.test_wape}, trained on data through {champion.training_end[:10]}: the window
ends {champion.age_days:.0f} days later).</p>
<p>Alerts firing: <b class={"bad" if changes.firing else "ok"}>{html.escape(firing)}</b>;
raised now: {html.escape(", ".join(changes.raised) or "none")};
resolved now: {html.escape(", ".join(changes.resolved) or "none")}.
Quarantined batches in the window: {html.escape(", ".join(data.quarantined) or "none")}.</p>"""


def _live_line(report: MonitorReport) -> str:
    live = report.live
    if live.wape is None or live.naive_wape is None:
        return "no day after the champion's training data has actuals in this window"
    return (
        f"live WAPE {live.wape:.3f} against seasonal naive {live.naive_wape:.3f} over "
        f"{len(live.days)} days after the champion's training data; error avoided "
        f"{energy_text(live.benefit_kwh, live.energy_unit)} = {live.benefit_money:,.2f} "
        f"{live.currency}"
    )


def _batch(report: MonitorReport) -> str:
    scored = [
        f"{b.day} by v{b.model_version}: WAPE {b.wape:.3f}"
        for b in report.batch_forecasts
        if b.wape is not None
    ]
    return ", ".join(scored) or "none in this window"


def _drift_part(report: MonitorReport, params: Params) -> str:
    config, section = params.monitor.drift, report.drift
    note = " " + html.escape(section.note) if section.note else ""
    return f"""<h2>Drift (against the champion's training data in months {section.seasons})</h2>
<p>A column is drifted when PSI &ge; {config.psi} and the Wasserstein distance &ge;
{config.wasserstein} reference standard deviations.{note}
Drifted: <b>{html.escape(", ".join(section.drifted) or "none")}</b>.</p>
{_drift_table(report)}"""


def _outliers_and_skew(report: MonitorReport) -> str:
    outliers = report.outliers
    schema = "; ".join(report.schema_.issues) or "matches"
    requests = sum(day.requests for day in report.log.values())
    skewed = sum(day.feature_skew.bad for day in report.log.values())
    return f"""<h2>Outliers and skew</h2>
<p>Outliers (IsolationForest fitted with the model): {outliers.rate:.1%} of
{periods_text(outliers.hours, report.window.frequency)} (training:
{outliers.training_rate:.1%}).
Schema against the training signature: {html.escape(schema)}.
Prediction log: {requests} requests in the window, {skewed} rows with feature skew.</p>"""
