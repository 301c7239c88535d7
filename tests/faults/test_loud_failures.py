"""Faults that must be loud: a store that cannot be asked is an error, never "no champion";
a busy workspace names its writer; a copied workspace works on its own files."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from powerops.data.datasets import day_after_latest
from powerops.model import registry
from powerops.monitor import monitoring
from powerops.monitor.monitoring import NoChampionError
from powerops.serve import scoring
from tests.conftest import VENV_BIN, set_params, wait_for
from tests.faults.conftest import copy, params_of, powerops, registry_state

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

# Fail at once instead of retrying a refused connection for minutes (MLflow's defaults).
NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The command failed (exit 1) with one `powerops: error:` line naming `words`."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("powerops: error")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def test_unreachable_mlflow_fails_every_command_and_promotes_nothing(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = copy(trained, tmp_path / "ws")
    before = registry_state(workspace)
    url = f"http://127.0.0.1:{closed_port()}"
    set_params(workspace, mlflow={"tracking_uri": url})
    for command in (["train"], ["monitor"], ["score"], ["model", "list"]):
        result = powerops(workspace, *command, env=NO_RETRIES, check=False)
        one_line_error(result, f"MLflow at {url} could not", "server")
        assert "nothing to" not in result.stdout
    # What the power_monitor and power_score tasks call: an error, not "no champion".
    for name, value in NO_RETRIES.items():
        monkeypatch.setenv(name, value)
    params = params_of(workspace)
    with pytest.raises(registry.RegistryUnavailableError):
        monitoring.load_champion(params)
    with pytest.raises(registry.RegistryUnavailableError):
        scoring.score(params, day_after_latest(params))
    set_params(workspace, mlflow={"tracking_uri": None})
    assert registry_state(workspace) == before


def test_a_deleted_store_is_not_an_empty_one(trained: Path, tmp_path: Path) -> None:
    workspace = copy(trained, tmp_path / "ws")
    shutil.rmtree(workspace / "mlflow")
    for command in (["train"], ["monitor"], ["model", "list"]):
        result = powerops(workspace, *command, check=False)
        one_line_error(result, "mlflow.db is missing", "alias move")
    assert not (workspace / "mlflow").exists()  # no new, empty store in its place


def test_a_replaced_store_is_refused(trained: Path, tmp_path: Path) -> None:
    """Another store (empty here) behind mlflow.tracking_uri, while the audit log names a
    champion: say so and stop."""
    workspace = copy(trained, tmp_path / "ws")
    set_params(workspace, mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'other.db'}"})
    one_line_error(powerops(workspace, "train", check=False), "does not hold")
    one_line_error(powerops(workspace, "monitor", check=False), "holds no champion")


def test_a_store_that_is_a_file_is_one_line(trained: Path, tmp_path: Path) -> None:
    workspace = copy(trained, tmp_path / "ws")
    shutil.rmtree(workspace / "mlflow")
    (workspace / "mlflow").write_text("not a folder")
    one_line_error(powerops(workspace, "model", "list", check=False), "is a file")


def test_a_read_only_store_is_one_line(trained: Path, tmp_path: Path) -> None:
    """The store mounted read-only (as root cannot be kept out by file modes): training,
    which must record its run, fails with one line and no traceback."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -m` (root) to mount the store read-only")
    workspace = copy(trained, tmp_path / "ws")
    store = workspace / "mlflow"
    script = f"mount --bind -o ro {store} {store} && exec {VENV_BIN / 'powerops'} train"
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=workspace, capture_output=True, text=True
    )
    one_line_error(result, "MLflow at sqlite:///", "writable")


def test_a_copied_workspace_works_on_its_own_files(trained: Path, tmp_path: Path) -> None:
    """`cp -a` of a trained workspace, then the original deleted: the copy still scores with
    its champion, and a new training's artifacts land in the copy."""
    original = copy(trained, tmp_path / "original")
    moved = copy(original, tmp_path / "copy")
    shutil.rmtree(original)
    assert "model v1" in powerops(moved, "score").stdout
    powerops(moved, "train")
    params = params_of(moved)
    client = registry.client(params)
    for version in registry.versions(params):
        uri = client.get_run(version.run_id).info.artifact_uri
        assert uri.startswith((moved / "mlflow").resolve().as_uri()), uri
    assert not original.exists()


def test_a_second_writer_waits_then_names_the_holder_and_readers_never_wait(
    trained: Path, tmp_path: Path
) -> None:
    workspace = copy(trained, tmp_path / "ws")
    set_params(workspace, state={"lock_wait_seconds": 1})
    hold = (
        "import sys, time\n"
        "from powerops.core.config import load_params\n"
        "from powerops.ops.lock import workspace_lock\n"
        "with workspace_lock(load_params('params.yaml'), 'powerops publish (the holder)'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold], cwd=workspace, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        busy = powerops(workspace, "publish", check=False)
        assert busy.returncode == 75, busy.stderr
        assert f"`powerops publish (the holder)` (pid {holder.pid}" in busy.stderr
        assert busy.stderr.count("powerops: error") == 1
        assert powerops(workspace, "catalog", "list").returncode == 0  # a reader: no wait
        assert powerops(workspace, "model", "list").returncode == 0
        holder.send_signal(signal.SIGKILL)  # a killed holder's lock is released by the OS
        holder.wait(timeout=10)
        wait_for(lambda: powerops(workspace, "publish", check=False).returncode == 0, 20, "lock")
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_true_absence_is_still_no_champion(tmp_path: Path, trained: Path) -> None:
    """Before the first promotion there is no champion, and that is not an error."""
    workspace = copy(trained, tmp_path / "ws")
    shutil.rmtree(workspace / "mlflow")
    (workspace / "registry" / "alias_audit.jsonl").unlink()
    with pytest.raises(NoChampionError):
        monitoring.load_champion(params_of(workspace))
    assert "nothing to monitor yet" in powerops(workspace, "monitor").stdout
