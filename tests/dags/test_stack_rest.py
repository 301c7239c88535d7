"""`powerops up` / `down` (what `make up` / `make down` run) and a UI trigger through REST v2.

Starts the real stack (Airflow standalone: API server, scheduler, DAG processor, triggerer;
and the MLflow UI) on free loopback ports in a throwaway workspace, checks that the API
refuses a call without a token, gets a JWT from /auth/token, triggers `power_train` and waits
for it to succeed, then stops everything by process group and checks nothing is left.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from powerops import stack
from powerops.config import load_params
from tests.conftest import make_workspace


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


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_up_trigger_through_rest_and_down(real_source_csv: Path, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "ws", real_source_csv, through="2007-03")
    params = load_params(workspace / "params.yaml")
    started = stack.up(params, free_port(), free_port())
    try:
        with pytest.raises(stack.StackError, match="already running"):
            stack.up(params)
        api = started.airflow_url
        assert call("GET", f"{api}/api/v2/dags")[0] == 401
        password = json.loads(started.password_file.read_text())["admin"]
        status, body = call(
            "POST", f"{api}/auth/token", body={"username": "admin", "password": password}
        )
        assert status in (200, 201)
        token = body["access_token"]
        wait_for(
            lambda: call("GET", f"{api}/api/v2/dags/power_train", token)[0] == 200,
            120,
            "the DAG processor to parse power_train",
        )
        assert (
            call("PATCH", f"{api}/api/v2/dags/power_train", token, {"is_paused": False})[0] == 200
        )
        status, run = call(
            "POST",
            f"{api}/api/v2/dags/power_train/dagRuns",
            token,
            {"logical_date": None, "dag_run_id": "rest_trigger"},
        )
        assert status == 200, run

        def finished() -> str | None:
            _, current = call("GET", f"{api}/api/v2/dags/power_train/dagRuns/rest_trigger", token)
            state = current["state"] if current else None
            return state if state in ("success", "failed") else None

        assert wait_for(finished, 240, "the triggered run") == "success"
        assert call("GET", f"{started.mlflow_url}/health")[0] == 200
    finally:
        assert stack.down(params)
    assert gone(started.airflow_pid) and gone(started.mlflow_pid)
    assert stack.status(params) is None
    assert not stack.down(params)
