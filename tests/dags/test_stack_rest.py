"""`powerops up` / `down` (what `make up` / `make down` run), the real scheduler, REST API v2.

Starts the real stack (Airflow: API server, scheduler, DAG processor, triggerer;
and the MLflow UI) on free loopback ports in a throwaway workspace. The API refuses a call
without a valid token; with a JWT from /auth/token the test unpauses the DAGs, lets the
scheduler backfill four months and train on the Asset events, triggers runs, clears tasks one
by one and checks the workspace's state after each rerun (a cleared publish tells nobody),
triggers a month by name, rolls back through `power_rollback`, checks that `power_monitor` ran
on the Asset events and on the data's clock; then, in a real browser, the model-operations
view: a double click rolls back once, a stale rollback is refused and alerts until a rollback
succeeds, and every link resolves. Last, no successful task logged an ERROR line, nothing
listens beyond loopback, and everything stops by process group with nothing left.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from powerops.core.config import Params, load_params
from powerops.data.datasets import day_after_latest
from powerops.model import registry
from powerops.ops import stack
from tests.conftest import REPO, wait_for, workspace_state

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

# Where the browser test keeps its screenshots (kept after the run; .run/ is not committed).
ARTIFACTS = Path(os.environ.get("POWEROPS_TEST_ARTIFACTS", REPO / ".run" / "test-artifacts"))
# Headless, and no background connections: this machine's network is closed.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def call(method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            is_json = "json" in response.headers.get("Content-Type", "")
            return response.status, json.loads(payload) if is_json and payload else payload
    except urllib.error.HTTPError as error:
        return error.code, None


def gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


class Api:
    """Airflow's REST API v2 with a JWT, as the UI and scripts use it."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def get(self, path: str) -> Any:
        status, body = call("GET", f"{self.url}/api/v2/{path}", self.token)
        assert status == 200, (path, status)
        return body

    def send(self, method: str, path: str, body: Any) -> Any:
        status, answer = call(method, f"{self.url}/api/v2/{path}", self.token, body)
        assert status == 200, (method, path, status, answer)
        return answer

    def trigger(self, dag_id: str, conf: dict[str, Any], run_id: str) -> None:
        self.send(
            "POST",
            f"dags/{dag_id}/dagRuns",
            {"logical_date": None, "dag_run_id": run_id, "conf": conf},
        )

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.get(f"dags/{dag_id}/dagRuns?order_by=logical_date")[
            "dag_runs"
        ]
        return runs

    def idle(self, dag_id: str) -> bool:
        """Every run of the DAG finished, and none failed."""
        states = [run["state"] for run in self.runs(dag_id)]
        assert "failed" not in states, f"a {dag_id} run failed: {states}"
        return bool(states) and all(state == "success" for state in states)

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        ti: dict[str, Any] = self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return ti

    def clear_and_wait(
        self, dag_id: str, run_id: str, task_id: str, outcome: str = "success"
    ) -> None:
        """Clear one task instance (not its downstream) and wait for the scheduler to rerun it
        to `outcome`."""
        before = self.task(dag_id, run_id, task_id)["try_number"]
        cleared = self.send(
            "POST",
            f"dags/{dag_id}/clearTaskInstances",
            {
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": [task_id],
                "only_failed": False,
                "include_downstream": False,
                "include_upstream": False,
            },
        )
        assert [ti["task_id"] for ti in cleared["task_instances"]] == [task_id]

        def rerun() -> bool:
            ti = self.task(dag_id, run_id, task_id)
            assert ti["state"] != "failed", f"{dag_id}.{task_id} failed when run again"
            # Done once the scheduler has also finished the run: a clear sent while it marks
            # the run successful can be lost (seen once: the next task cleared never ran).
            run = self.get(f"dags/{dag_id}/dagRuns/{run_id}")["state"]
            return bool(ti["try_number"] > before and ti["state"] == outcome and run == "success")

        wait_for(rerun, 180, f"{dag_id}.{task_id} to run again")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by the project's script when missing."""
    found = subprocess.run(
        ["bash", str(REPO / "scripts" / "chromium.sh")], capture_output=True, text=True
    )
    assert found.returncode == 0, f"scripts/chromium.sh: {found.stderr.strip()[-500:]}"
    return found.stdout.strip().splitlines()[-1]


def task_log(home: Path, dag_id: str, run_id: str, task_id: str, attempt: int) -> list[Any]:
    """A task try's log lines as Airflow 3 writes them (JSON per line)."""
    path = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    lines = (path / f"attempt={attempt}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def successful_task_logs(api: Api, home: Path) -> dict[str, list[Any]]:
    """The log of every task try that succeeded, by task instance."""
    found = {}
    for dag_id in ("power_ingest", "power_train", "power_monitor", "power_rollback"):
        for run in api.runs(dag_id):
            instances = api.get(
                f"dags/{dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances"
            )["task_instances"]
            for ti in instances:
                if ti["state"] == "success":
                    name = f"{dag_id}.{ti['task_id']} {run['dag_run_id']}"
                    found[name] = task_log(
                        home, dag_id, run["dag_run_id"], ti["task_id"], ti["try_number"]
                    )
    return found


def roll_back_in_view(page: Any, reason: str, double: bool = False) -> Any:
    """Fill in the view's rollback form and press the button (twice, quickly, if `double`);
    wait until the view reports the run's success. The view's frame."""
    view = page.frame_locator("iframe")
    view.locator("input[name=reason]").fill(reason)
    button = view.get_by_role("button", name="Roll back")
    button.dblclick() if double else button.click()
    view.locator("#rollback-result").filter(has_text="succeeded").wait_for(timeout=180_000)
    return view


def follow_links(page: Any, url: str, api: Api, mlflow: str) -> dict[str, int]:
    """Resolve every link of the view: Airflow runs and tasks through the REST API, MLflow
    versions and runs through MLflow's API, reports and Data Docs through the view's own
    routes with the browser's session. How many links of each kind."""
    view = page.frame_locator("iframe")
    hrefs = view.locator("a").evaluate_all("(links) => links.map((a) => a.getAttribute('href'))")
    kinds: dict[str, int] = {}
    for href in sorted(set(hrefs)):
        if href.startswith("/dags/"):
            parts = href.split("/")  # "", dags, dag, runs, run[, tasks, task]
            run = f"dags/{parts[2]}/dagRuns/{parts[4]}"
            api.get(f"{run}/taskInstances/{parts[6]}" if len(parts) > 5 else run)
            kind = "airflow"
        elif href.startswith(f"{mlflow}/#/"):
            route = href.split("#/", 1)[1].partition("?")[0].split("/")
            query = (
                f"model-versions/get?name={route[1]}&version={route[3]}"
                if route[0] == "models"
                else f"runs/get?run_id={route[1]}"
            )
            status, _ = call("GET", f"{mlflow}/api/2.0/mlflow/{query}")
            assert status == 200, (href, status)
            kind = f"mlflow {route[0]}"
        else:
            answer = page.request.get(f"{url}/powerops/{href}")
            assert answer.status == 200 and "<html" in answer.text()[:3000].lower(), href
            kind = unquote(href).split("/")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def browse_model_operations(
    url: str, password: str, params: Params, api: Api, chromium: str, mlflow: str
) -> None:
    """In a real browser: log in to Airflow, open "Model operations" from the navigation,
    check the champion and SLO panels against the registry and the monitoring report, keep
    screenshots; roll back with a double click (one move), see a stale rollback refused and
    alerting until a rollback succeeds, and follow every link."""
    from playwright.sync_api import sync_playwright

    champion = registry.alias_version(params, registry.CHAMPION)
    assert champion is not None
    first = str(champion.version)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{url}/")
            page.get_by_role("link", name="Model operations").click()
            view = page.frame_locator("iframe")
            assert f"Champion: v{first} of" in view.locator("#champion").inner_text()
            slos = view.locator("#slos tr")
            assert slos.count() == 1 + len(params.monitor.slos)
            assert "forecast_accuracy" in slos.nth(1).inner_text()
            assert "% of " in slos.nth(2).inner_text()  # data_freshness has events: a real SLI
            assert view.locator("svg").count() >= 2  # plots drawn by the monitor run
            assert view.locator("#models tr").count() == 1 + len(registry.versions(params))
            assert view.locator("#paused").is_hidden()  # power_rollback is not paused
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "model-operations.png"), full_page=True)

            # A double click on "Roll back": one run, one move.
            runs, moves = len(api.runs("power_rollback")), len(registry.audit_log(params))
            view = roll_back_in_view(page, "browser: rollback from the view", double=True)
            assert len(api.runs("power_rollback")) == runs + 1
            log = registry.audit_log(params)
            moved = log[-1]
            assert len(log) == moves + 2  # champion and previous, once
            assert moved.alias == "champion" and moved.from_version == first
            assert "browser: rollback from the view" in moved.reason
            # The user logged in to the browser, and the run: the view links to it.
            assert moved.by.startswith("airflow:admin via power_rollback/")
            result = view.locator("#rollback-result a").get_attribute("href") or ""
            assert result.startswith("/dags/power_rollback/runs/"), result
            assert view.get_by_role("button", name="Roll back").is_disabled()
            view.locator("#rollback-result").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "model-operations-rolled-back.png"))

            # A rollback decided on the old champion (a stale page, a late click): refused,
            # nothing moves, and the failure is an open alert in the view.
            api.trigger(
                "power_rollback", {"reason": "a stale page", "expected_champion": first}, "stale"
            )
            wait_for(lambda: api.run_state("power_rollback", "stale") == "failed", 120, "refusal")
            assert registry.audit_log(params) == log
            page.reload()
            alerts = page.frame_locator("iframe").locator("#alerts").inner_text()
            assert "airflow/power_rollback/rollback" in alerts, alerts

            # A rollback from the page as it is now succeeds, and resolves that alert.
            roll_back_in_view(page, "browser: back to the first champion")
            assert registry.audit_log(params)[-1].to_version == first
            page.reload()
            view = page.frame_locator("iframe")
            assert "airflow/power_rollback/rollback" not in view.locator("#alerts").inner_text()
            history = view.locator("#aliases").inner_text()
            assert "browser: rollback from the view" in history
            kinds = follow_links(page, url, api, mlflow)
            expected = {"airflow", "mlflow models", "mlflow runs", "reports", "data-docs"}
            assert set(kinds) == expected, kinds
            print(f"links followed from the view: {kinds}")
            page.goto(f"{url}/powerops/")  # the page alone, to keep all of it in one picture
            page.screenshot(path=str(ARTIFACTS / "model-operations-full.png"), full_page=True)
        finally:
            browser.close()


def test_scheduler_backfill_rest_trigger_clear_and_rerun(
    training_workspace: Path, chromium: str
) -> None:
    """The real scheduler replays four months (catchup), trains on the Asset events, and every
    task cleared through the API runs again without changing the workspace's state; a month
    triggered by name; monitoring on the data's clock; then the model-operations view in a
    browser, the task logs and the socket table."""
    workspace = training_workspace
    params = load_params(workspace / "params.yaml")
    started = stack.up(params, free_port(), free_port())
    try:
        with pytest.raises(stack.StackError, match="already running"):
            stack.up(params)
        assert call("GET", f"{started.airflow_url}/api/v2/dags")[0] == 401
        # Only its owner may read the generated admin password.
        assert started.password_file.stat().st_mode & 0o777 == 0o600
        password = json.loads(started.password_file.read_text())["admin"]
        status, body = call(
            "POST",
            f"{started.airflow_url}/auth/token",
            body={"username": "admin", "password": password},
        )
        assert status in (200, 201)
        api = Api(started.airflow_url, body["access_token"])
        # A forged token is refused too (Airflow answers 403 to a token it cannot verify).
        assert call("GET", f"{api.url}/api/v2/dags", "not-a-token")[0] == 403
        wait_for(
            lambda: (
                {"power_ingest", "power_train", "power_monitor", "power_rollback"}
                <= {dag["dag_id"] for dag in api.get("dags")["dags"]}
            ),
            120,
            "the DAG processor to parse the DAGs",
        )
        clock = time.monotonic()
        # power_rollback is created unpaused: the view's rollback must not wait in a queue.
        assert api.get("dags/power_rollback")["is_paused"] is False
        for dag_id in ("power_train", "power_monitor", "power_ingest"):
            api.send("PATCH", f"dags/{dag_id}", {"is_paused": False})

        # Catchup: one power_ingest run per month of ingest.start..through, one at a time, and
        # one for the month after, which skips; each publish updates the Asset, which
        # schedules power_train.
        def trained() -> bool:
            ingest_runs = api.runs("power_ingest")
            return (
                len(ingest_runs) == 5
                and api.idle("power_ingest")
                and api.idle("power_train")
                and {v.tags.get("data_version") for v in registry.versions(params)} == {"3", "4"}
            )

        wait_for(trained, 900, "the backfill and the trainings it schedules")
        backfill = time.monotonic() - clock
        months = [run["data_interval_start"][:7] for run in api.runs("power_ingest")]
        assert months == ["2006-12", "2007-01", "2007-02", "2007-03", "2007-04"]
        april = api.runs("power_ingest")[-1]["dag_run_id"]
        assert api.task("power_ingest", april, "ingest")["state"] == "skipped"
        state = workspace_state(workspace)
        assert [v[0] for v in state["versions"]] == [1, 2, 3, 4]
        print(f"scheduler backfill of 4 months with 2 trainings: {backfill:.0f} s")

        # A manual trigger from the API: nothing new to train, and a success.
        api.send("POST", "dags/power_train/dagRuns", {"logical_date": None, "dag_run_id": "rest"})
        wait_for(lambda: api.runs("power_train") and api.idle("power_train"), 240, "the trigger")
        assert workspace_state(workspace) == state

        # Clear each task of the run that trained data v4, then of March's ingest run.
        by = registry.versions(params)[-1].tags["trained_by"]
        train_run = by.removeprefix("airflow:power_train/")
        for task_id in ("build_table", "fit", "evaluate", "gate", "register"):
            api.clear_and_wait("power_train", train_run, task_id)
            assert workspace_state(workspace) == state, f"power_train.{task_id} changed state"
        march = api.runs("power_ingest")[-2]["dag_run_id"]
        train_runs = len(api.runs("power_train"))
        for task_id in ("ingest", "validate", "publish"):
            # A publish run again has no news: it skips and emits no Asset event.
            outcome = "skipped" if task_id == "publish" else "success"
            api.clear_and_wait("power_ingest", march, task_id, outcome)
            assert workspace_state(workspace) == state, f"power_ingest.{task_id} changed state"

        # A month by name: the param is validated at the trigger; a month already published
        # runs through and tells nobody.
        status, _ = call(
            "POST",
            f"{api.url}/api/v2/dags/power_ingest/dagRuns",
            api.token,
            {"logical_date": None, "conf": {"month": "2007-13"}},
        )
        assert status == 400, status
        api.trigger("power_ingest", {"month": "2007-02"}, "february")
        wait_for(lambda: api.run_state("power_ingest", "february") == "success", 240, "february")
        assert api.task("power_ingest", "february", "publish")["state"] == "skipped"
        assert len(api.runs("power_train")) == train_runs  # no training for old news
        assert workspace_state(workspace) == state

        # A rollback through the API: the trigger form's params, and the alias audit log.
        champion = registry.alias_version(params, registry.CHAMPION)
        assert champion is not None
        other = "1" if str(champion.version) == "2" else "2"
        api.send(
            "POST",
            "dags/power_rollback/dagRuns",
            {
                "logical_date": None,
                "dag_run_id": "undo",
                "conf": {"to_version": other, "reason": "spiky forecasts"},
            },
        )
        wait_for(lambda: api.idle("power_rollback"), 120, "the rollback")
        moved = registry.audit_log(params)[-1]
        assert (moved.alias, moved.to_version) == ("champion", other)
        assert "spiky forecasts (airflow run undo)" in moved.reason
        assert call("GET", f"{started.mlflow_url}/health")[0] == 200

        # power_monitor ran on the Asset events (and its daily schedule): once a champion
        # existed, its task succeeded and wrote the report.
        wait_for(lambda: api.idle("power_monitor"), 300, "power_monitor")
        monitored = [
            api.task("power_monitor", run["dag_run_id"], "monitor")["state"]
            for run in api.runs("power_monitor")
        ]
        assert "success" in monitored, monitored
        # A run without a date judges the day after the latest data, not the wall clock.
        api.trigger("power_monitor", {}, "no-date")
        wait_for(lambda: api.run_state("power_monitor", "no-date") == "success", 300, "no-date")
        assert api.task("power_monitor", "no-date", "monitor")["state"] == "success"
        judged = api.get(
            "dags/power_monitor/dagRuns/no-date/taskInstances/monitor/xcomEntries/return_value"
        )["value"]
        assert judged["date"] == day_after_latest(params).isoformat() == "2007-04-01", judged
        latest = json.loads((params.monitor_reports_dir / "latest" / "report.json").read_text())
        assert latest["champion"]["version"] in ("1", "2")
        history = json.loads((params.monitor_reports_dir / "history.json").read_text())
        assert max(history) == "2007-04-01", sorted(history)  # no point from today
        # One Asset event per month published, none from the clears, replays and triggers.
        events = api.get("assets/events?limit=100")["asset_events"]
        assert len(events) == 4, [(e["source_dag_id"], e["source_run_id"]) for e in events]

        # The model-operations view (plugins/powerops_view.py) takes Airflow's login.
        view = f"{started.airflow_url}/powerops/"
        assert call("GET", view)[0] == 401
        status, page = call("GET", view, api.token)
        assert status == 200 and b"powerops model operations" in page, status
        browse_model_operations(
            started.airflow_url, password, params, api, chromium, started.mlflow_url
        )
        refusal = task_log(Path(started.airflow_home), "power_rollback", "stale", "rollback", 1)
        # One line says why: the task failed, no retry, with the champion it found.
        why = [
            detail["exc_value"]
            for line in refusal
            for detail in line.get("error_detail", [])
            if detail["exc_type"] == "AirflowFailException"
        ]
        assert len(why) == 1 and "not version" in why[0] and "nothing was changed" in why[0], why

        # No successful task logged an ERROR line (third-party noise is quiet).
        logs = successful_task_logs(api, Path(started.airflow_home))
        assert len(logs) >= 30, len(logs)
        errors = {
            name: [line["event"] for line in lines if line.get("level") == "error"]
            for name, lines in logs.items()
        }
        assert not {name: lines for name, lines in errors.items() if lines}
        # Nothing of the stack listens beyond loopback.
        listening = stack.listeners(started)
        assert listening and all(stack.is_loopback(address) for address, _, _ in listening), (
            listening
        )
    finally:
        assert stack.down(params)
    assert gone(started.airflow_pid) and gone(started.mlflow_pid)
    assert stack.status(params) is None
    assert not stack.down(params)
