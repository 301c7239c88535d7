"""The embedded stack for people who use the UIs: Airflow standalone and the MLflow UI.

`up` starts both in their own process groups, bound to 127.0.0.1, with Airflow's parallelism
sized for a small machine, and records their PIDs in `.run/stack.json`; `down` stops every
process group it started (SIGTERM, then SIGKILL after a grace period), so nothing is left
behind. Logs go to `.run/logs/`. No credentials are stored in the repository: Airflow's
simple auth manager generates the admin password into AIRFLOW_HOME on first start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from powerops.core.config import Params
from powerops.core.errors import PowerOpsError

PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"


class StackError(PowerOpsError):
    """The stack is already running, failed to start, or could not be stopped."""


@dataclass(frozen=True)
class Stack:
    airflow_pid: int
    mlflow_pid: int
    airflow_url: str
    mlflow_url: str
    airflow_home: str

    @property
    def password_file(self) -> Path:
        return Path(self.airflow_home) / PASSWORD_FILE


def state_file(params: Params) -> Path:
    return params.run_dir / "stack.json"


def airflow_env(params: Params, home: Path, port: int) -> dict[str, str]:
    """Environment for every Airflow process of this workspace."""
    return {
        # standalone starts its components as `airflow ...` subprocesses, found on PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(params.resolve("dags")),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(params.resolve("plugins")),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": str(params.stack.parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(params.stack.parallelism),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "POWEROPS_WORKSPACE": str(params.root),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "False",
        "DVC_NO_ANALYTICS": "1",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(params: Params) -> Stack | None:
    """The running stack, or None (a state file whose processes are gone is removed)."""
    path = state_file(params)
    if not path.is_file():
        return None
    stack = Stack(**json.loads(path.read_text()))
    if _alive(stack.airflow_pid) or _alive(stack.mlflow_pid):
        return stack
    path.unlink()
    return None


def _spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: `down` stops it and its children
        )
    return process.pid


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def wait_healthy(url: str, timeout: float, pid: int) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise StackError(f"the process serving {url} exited; see .run/logs/")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise StackError(f"{url} was not healthy after {timeout:.0f} s; see .run/logs/")


def up(
    params: Params,
    airflow_port: int | None = None,
    mlflow_port: int | None = None,
    timeout: float = 180,
) -> Stack:
    """Start Airflow standalone and the MLflow UI; wait until both answer."""
    running = status(params)
    if running is not None:
        raise StackError(
            f"the stack is already running (Airflow {running.airflow_url}, MLflow "
            f"{running.mlflow_url}); `make down` stops it"
        )
    airflow_port = airflow_port or params.stack.airflow_port
    mlflow_port = mlflow_port or params.stack.mlflow_port
    home = params.run_dir / "airflow"
    logs = params.run_dir / "logs"
    env = airflow_env(params, home, airflow_port)
    _prepare_airflow(params, env)
    airflow_pid = _spawn([_bin("airflow"), "standalone"], env, logs / "airflow.log", params.root)
    mlflow_pid = _start_mlflow_ui(params, mlflow_port, logs)
    stack = Stack(
        airflow_pid,
        mlflow_pid,
        f"http://127.0.0.1:{airflow_port}",
        f"http://127.0.0.1:{mlflow_port}",
        str(home),
    )
    state_file(params).write_text(json.dumps(asdict(stack), indent=2))
    try:
        wait_healthy(f"{stack.airflow_url}/api/v2/monitor/health", timeout, airflow_pid)
        wait_healthy(f"{stack.mlflow_url}/health", timeout, mlflow_pid)
    except StackError:
        down(params)
        raise
    return stack


def _prepare_airflow(params: Params, env: dict[str, str]) -> None:
    """Airflow's metadata database, migrated, and the pool the workspace's tasks share."""
    setup = {**os.environ, **env}
    for command in (
        ["db", "migrate"],
        ["pools", "set", "powerops_workspace", "1", "DVC allows one writer"],
    ):
        subprocess.run(
            [_bin("airflow"), *command], env=setup, check=True, capture_output=True, cwd=params.root
        )


def _start_mlflow_ui(params: Params, port: int, logs: Path) -> int:
    """The MLflow UI on the workspace's store, one worker, no job runner; its PID."""
    from powerops.model import registry

    registry.client(params)  # create the SQLite store before the UI opens it
    return _spawn(
        [
            _bin("mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            params.tracking_uri,
        ],
        {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
        logs / "mlflow.log",
        params.root,
    )


def _stop_group(pid: int, grace: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def down(params: Params, grace: float = 30) -> bool:
    """Stop every process group `up` started; return False if nothing was running."""
    path = state_file(params)
    if not path.is_file():
        return False
    stack = Stack(**json.loads(path.read_text()))
    for pid in (stack.mlflow_pid, stack.airflow_pid):
        _stop_group(pid, grace)
    # Reap the direct children if this process started them (tests do).
    for pid in (stack.mlflow_pid, stack.airflow_pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    path.unlink()
    return True
