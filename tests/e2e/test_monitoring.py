"""Monitoring on real readings, a real MLflow registry and real models.

* A degraded champion burns the forecast-accuracy error budget: the burn-rate alert fires,
  once, and resolves after a rollback, when the days that follow are forecast well again.
* Replaying the real months from 2008-01 to 2008-09 flags August 2008 (the household was
  away: the load fell to a third) as drift, and raises no drift alert for ordinary months.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from powerops.core import alerts
from powerops.core.config import load_params
from powerops.data import stages
from powerops.model import registry, testset, training
from powerops.monitor import monitoring
from tests.conftest import REPO, make_workspace, set_params

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

BURN = "slo:forecast_accuracy:fast_burn"


def published(workspace: Path) -> None:
    params = load_params(workspace / "params.yaml")
    stages.ingest(params)
    stages.validate(params)
    stages.publish(params)


def test_a_degraded_champion_fires_the_burn_rate_alert_and_rollback_resolves_it(
    training_workspace: Path,
) -> None:
    published(training_workspace)
    params = load_params(training_workspace / "params.yaml")
    good = training.train(params, 3, by="test")[0]
    assert good.promoted

    # A model that forecasts a constant 3 kW, promoted by hand past the gate.
    set_params(
        training_workspace,
        train={
            "estimator": "sklearn.dummy.DummyRegressor",
            "estimator_params": {"strategy": "constant", "constant": 3.0},
            # DummyRegressor does not declare that it takes missing values (its tags).
            "preprocess": "impute",
        },
    )
    degraded_params = load_params(training_workspace / "params.yaml")
    bad = training.train(degraded_params, 3, by="test")[0]
    assert not bad.promoted
    registry.promote(params, bad.model_version, "test: a bad model promoted by hand", "test")

    report = monitoring.monitor(params, date(2007, 3, 20))
    assert report.champion.version == bad.model_version
    accuracy = next(s for s in report.slos if s.name == "forecast_accuracy")
    assert accuracy.events == 19  # 1..19 March: after the champion's training data
    assert accuracy.bad >= 17  # a constant 3 kW is right on a busy day or two
    assert BURN in report.alerts.raised
    assert report.live.benefit_kwh < 0  # worse than "same hour last week"

    # Running the same date again raises nothing new: alerts are deduplicated.
    again = monitoring.monitor(params, date(2007, 3, 20))
    assert again.alerts.raised == [] and BURN in again.alerts.firing
    log = alerts.read_log(params.resolve(params.alerts.log))
    assert [e["status"] for e in log if e["key"] == BURN] == ["firing"]
    # A scheduled run for a day already judged for this champion is old news.
    assert "already judged" in (monitoring.already_judged(params, date(2007, 3, 20)) or "")
    assert monitoring.already_judged(params, date(2007, 3, 21)) is None

    manifest = testset.load_manifest(params)
    assert manifest is not None
    audit = registry.audit_log(params)
    # A rollback decided on another champion (a second click, a stale page) changes nothing.
    with pytest.raises(registry.ChampionMovedError, match=f"not version {good.model_version}"):
        registry.rollback(
            params, "stale", None, manifest.sha256, expected_champion=good.model_version
        )
    assert registry.audit_log(params) == audit
    registry.rollback(
        params,
        "test: constant forecasts",
        None,
        manifest.sha256,
        expected_champion=bad.model_version,
    )
    # Another champion makes the same day news again.
    assert monitoring.already_judged(params, date(2007, 3, 20)) is None
    after = monitoring.monitor(params, date(2007, 4, 1))
    assert after.champion.version == good.model_version
    assert BURN in after.alerts.resolved and BURN not in after.alerts.firing
    days = {d.day: d.model_version for d in after.live.days}
    # Days keep the champion that forecast them: the rollback shows in the days after it.
    assert days["2007-03-19"] == bad.model_version
    assert days["2007-03-31"] == good.model_version
    log = alerts.read_log(params.resolve(params.alerts.log))
    assert [e["status"] for e in log if e["key"] == BURN] == ["firing", "resolved"]

    # The reports: JSON and a self-contained HTML page per date, the latest at a fixed path.
    folder = params.monitor_reports_dir
    page = (folder / "2007-04-01" / "report.html").read_text()
    assert page.count("<svg") >= 4 and "<script" not in page and 'src="http' not in page
    assert (folder / "latest" / "report.html").read_text() == page
    assert f"Champion <b>v{good.model_version}</b>" in page


def test_replaying_2008_flags_august_and_leaves_ordinary_months_quiet(tmp_path: Path) -> None:
    source = load_params(REPO / "params.yaml").source_path()
    workspace = make_workspace(tmp_path / "ws", source, through="2008-09")
    published(workspace)
    params = load_params(workspace / "params.yaml")
    champion = training.train(params, 13, by="test")[0]  # data through 2007-12
    assert champion.promoted

    raised: dict[str, list[str]] = {}
    for month in params.ingest.months[13:]:  # 2008-01 .. 2008-09
        end = month.end
        report = monitoring.monitor(params, date(end.year, end.month, end.day))
        raised[str(month)] = [k for k in report.alerts.raised if k.startswith("drift:")]
        if str(month) == "2008-08":
            august = report
    print("drift alerts raised per month:", raised)
    assert raised["2008-08"] and "drift:data" in raised["2008-08"]
    assert "load_kw" in august.drift.drifted
    live = august.live
    assert live.wape is not None and live.naive_wape is not None
    assert live.wape > live.naive_wape  # nobody home to forecast
    quiet = {month: keys for month, keys in raised.items() if month != "2008-08"}
    assert all(keys == [] for keys in quiet.values()), quiet
