"""`powerops up` / `down` (what `make up` / `make down` run), the real scheduler, REST API v2.

Starts the real stack (Airflow standalone: API server, scheduler, DAG processor, triggerer;
and the MLflow UI) on free loopback ports in a throwaway workspace. The API refuses a call
without a valid token; with a JWT from /auth/token the test unpauses the DAGs, lets the
scheduler backfill four months and train on the Asset events, triggers runs, clears tasks one
by one and checks the workspace's state after each rerun, rolls back through `power_rollback`,
checks that `power_monitor` ran on the Asset events and wrote its report, then stops
everything by process group and checks nothing is left.
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

import pytest

from powerops.core.config import Params, load_params
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

    def clear_and_wait(self, dag_id: str, run_id: str, task_id: str) -> None:
        """Clear one task instance (not its downstream) and wait for the scheduler to rerun it."""
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
            return bool(ti["try_number"] > before and ti["state"] == "success" and run == "success")

        wait_for(rerun, 180, f"{dag_id}.{task_id} to run again")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by the project's script when missing."""
    found = subprocess.run(
        ["bash", str(REPO / "scripts" / "chromium.sh")], capture_output=True, text=True
    )
    assert found.returncode == 0, f"scripts/chromium.sh: {found.stderr.strip()[-500:]}"
    return found.stdout.strip().splitlines()[-1]


def browse_model_operations(
    url: str, password: str, params: Params, api: Api, chromium: str
) -> None:
    """In a real browser: log in to Airflow, open "Model operations" from the navigation,
    check the champion and SLO panels against the registry and the monitoring report, keep a
    screenshot, and roll back from the page: the alias history shows it."""
    from playwright.sync_api import sync_playwright

    champion = registry.alias_version(params, registry.CHAMPION)
    assert champion is not None
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
            assert f"Champion: v{champion.version} of" in view.locator("#champion").inner_text()
            slos = view.locator("#slos tr")
            assert slos.count() == 1 + len(params.monitor.slos)
            assert "forecast_accuracy" in slos.nth(1).inner_text()
            assert "% of " in slos.nth(2).inner_text()  # data_freshness has events: a real SLI
            assert view.locator("svg").count() >= 2  # plots drawn by the monitor run
            assert view.locator("#models tr").count() == 1 + len(registry.versions(params))
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "model-operations.png"), full_page=True)

            runs = len(api.runs("power_rollback"))
            view.locator("input[name=reason]").fill("browser: rollback from the view")
            view.get_by_role("button", name="Roll back").click()
            view.locator("#rollback-result").filter(has_text="triggered").wait_for()
            wait_for(
                lambda: len(api.runs("power_rollback")) == runs + 1 and api.idle("power_rollback"),
                120,
                "the rollback triggered from the view",
            )
            moved = registry.audit_log(params)[-1]
            assert moved.alias == "champion" and moved.from_version == str(champion.version)
            assert "browser: rollback from the view" in moved.reason
            assert moved.by == "airflow:admin"  # the user logged in to the browser
            page.reload()
            history = page.frame_locator("iframe").locator("#aliases")
            assert "browser: rollback from the view" in history.inner_text()
            page.goto(f"{url}/powerops/")  # the page alone, to keep all of it in one picture
            page.screenshot(path=str(ARTIFACTS / "model-operations-full.png"), full_page=True)
        finally:
            browser.close()


def test_scheduler_backfill_rest_trigger_clear_and_rerun(
    training_workspace: Path, chromium: str
) -> None:
    """The real scheduler replays four months (catchup), trains on the Asset events, and every
    task cleared through the API runs again without changing the workspace's state; then the
    model-operations view in a browser."""
    workspace = training_workspace
    params = load_params(workspace / "params.yaml")
    started = stack.up(params, free_port(), free_port())
    try:
        with pytest.raises(stack.StackError, match="already running"):
            stack.up(params)
        assert call("GET", f"{started.airflow_url}/api/v2/dags")[0] == 401
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
        for dag_id in ("power_train", "power_monitor", "power_ingest", "power_rollback"):
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
        for task_id in ("ingest", "validate", "publish"):
            train_runs = len(api.runs("power_train"))
            api.clear_and_wait("power_ingest", march, task_id)
            # publish updates the Asset again: the power_train run it schedules has no work.
            expected = train_runs + (task_id == "publish")
            wait_for(
                lambda n=expected: len(api.runs("power_train")) == n and api.idle("power_train"),
                240,
                "power_train to settle",
            )
            assert workspace_state(workspace) == state, f"power_ingest.{task_id} changed state"

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
        latest = params.monitor_reports_dir / "latest" / "report.json"
        assert json.loads(latest.read_text())["champion"]["version"] in ("1", "2")

        # The model-operations view (plugins/powerops_view.py) takes Airflow's login.
        view = f"{started.airflow_url}/powerops/"
        assert call("GET", view)[0] == 401
        status, page = call("GET", view, api.token)
        assert status == 200 and b"powerops model operations" in page, status
        browse_model_operations(started.airflow_url, password, params, api, chromium)
    finally:
        assert stack.down(params)
    assert gone(started.airflow_pid) and gone(started.mlflow_pid)
    assert stack.status(params) is None
    assert not stack.down(params)
