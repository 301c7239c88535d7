"""The `cluster` profile's servers, for real (`make test-cluster`, not part of `make test`).

PostgreSQL and Redis from Debian's packages (scripts/cluster_packages.sh) run on loopback in a
temporary directory, as this test's own processes. Against them:

- a dataset version published by workspace A to a DVC remote on a real SSH server (OpenSSH,
  SFTP, key login) is restored byte for byte in workspace B, which has no cache and no data;
- two workspaces racing to create the shared state's next head on that server have exactly
  one winner every round, and the head holds the winner's bytes;
- Airflow's metadata database migrates onto PostgreSQL, with the CeleryExecutor and Redis as
  the broker configured through the environment alone;
- an MLflow tracking server on PostgreSQL with a proxied artifact store (`--serve-artifacts`:
  clients upload and download artifacts over HTTP, so no disk is shared): workspace A trains
  and registers the champion through it, and workspace B, a separate directory with none of
  A's files, loads that champion through it and predicts the same values.

Everything started is stopped by PID in `finally` blocks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from powerops.core.config import load_params
from powerops.data import dvcstore, stages
from powerops.data.catalog import Catalog
from powerops.model import registry, training
from powerops.model.reference import load_model_version
from powerops.ops import cluster, shared
from tests import race
from tests.conftest import (
    REPO,
    dvc_workspace,
    file_hashes,
    make_training_workspace,
    set_params,
    use_remote,
)

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

# Rounds of the race for the next head: main's check-then-move let both writers win 12-22%.
HEAD_ROUNDS = 100


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, object]]:
    installed = subprocess.run(
        ["bash", str(REPO / "scripts" / "cluster_packages.sh")], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-500:]
    # PostgreSQL runs as `postgres` when we are root: its directory must be reachable.
    root = Path(tempfile.mkdtemp(prefix="powerops-cluster-"))
    root.chmod(0o755)
    secrets = {"airflow": cluster.password(), "mlflow": cluster.password()}
    started: list[cluster.Server] = []
    try:
        postgres = cluster.start_postgres(root / "postgres", cluster.free_port(), secrets)
        started.append(postgres)
        redis = cluster.start_redis(root / "redis", cluster.free_port())
        started.append(redis)
        yield {"root": root, "postgres": postgres, "redis": redis, "secrets": secrets}
    finally:
        for server in reversed(started):
            cluster.stop(server)
        shutil.rmtree(root, ignore_errors=True)
    assert all(server.process.poll() is not None for server in started)


def database_url(servers: dict[str, object], name: str) -> str:
    postgres = servers["postgres"]
    assert isinstance(postgres, cluster.Server)
    secret = servers["secrets"][name]  # type: ignore[index]
    return f"postgresql+psycopg2://{name}:{secret}@127.0.0.1:{postgres.port}/{name}"


def test_airflow_migrates_onto_postgresql_with_the_celery_executor(
    servers: dict[str, object], tmp_path: Path
) -> None:
    redis = servers["redis"]
    assert isinstance(redis, cluster.Server)
    env = os.environ | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(servers, "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url(servers, "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    migrated = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    checked = subprocess.run(
        [airflow, "db", "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
    executor = subprocess.run(
        [airflow, "config", "get-value", "core", "executor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert executor.stdout.strip() == "CeleryExecutor"


def test_mlflow_on_postgresql_serves_a_champion_to_a_workspace_without_its_file_hashes(
    servers: dict[str, object], tmp_path: Path, real_source_csv: Path
) -> None:
    store = Path(str(servers["root"])) / "mlflow"
    server = cluster.start_mlflow(store, cluster.free_port(), database_url(servers, "mlflow"))
    url = f"http://127.0.0.1:{server.port}"
    try:
        first = make_training_workspace(tmp_path / "a", real_source_csv)
        set_params(first, mlflow={"tracking_uri": url})
        params = load_params(first / "params.yaml")
        stages.ingest(params)
        stages.validate(params)
        stages.publish(params, push=False)
        results = training.train(params, by="cluster-test")
        assert [r.model_version for r in results] == ["1", "2"]
        champion = registry.alias_version(params, registry.CHAMPION)
        assert champion is not None
        assert not (first / "mlflow").exists()  # no local MLflow store in A
        assert list(store.rglob("model.pkl"))  # the server's store holds the models

        second = tmp_path / "b"  # another "host": no dataset, no trainings, no artifacts
        second.mkdir()
        shutil.copy(first / "params.yaml", second / "params.yaml")
        other = load_params(second / "params.yaml")
        served = registry.alias_version(other, registry.CHAMPION)
        assert served is not None and str(served.version) == str(champion.version)
        pipeline, _ = load_model_version(other, served)
        table = pd.read_parquet(next(first.glob("data/training/*/table.parquet")))
        original, _ = load_model_version(params, champion)
        assert (pipeline.predict(table) == original.predict(table)).all()
    finally:
        cluster.stop(server)


def test_a_dataset_version_moves_between_workspaces_through_the_sftp_remote(
    servers: dict[str, object],
    tmp_path: Path,
    real_source_csv: Path,
) -> None:
    """Workspace A publishes to a DVC remote on a real SSH server; B, with no cache and no
    data, restores the same dataset version from it, byte for byte."""
    sftp = cluster.start_sftp(Path(str(servers["root"])) / "sftp", cluster.free_port())
    try:
        first = make_training_workspace(tmp_path / "a", real_source_csv)
        use_remote(first, sftp.url, sftp.keyfile)
        params = load_params(first / "params.yaml")
        stages.ingest(params)
        stages.validate(params)
        stages.publish(params)  # pushes each version to the default remote
        version = Catalog(params.catalog_dir).load(params.dataset.name).latest
        assert version is not None and version.version == 4
        assert file_hashes(sftp.directory), "nothing reached the SFTP remote"

        second = dvc_workspace(tmp_path / "b", sftp.url, sftp.keyfile)
        dvcstore.restore(second, version.dvc_md5, second / "dataset")
        assert file_hashes(second / "dataset") == file_hashes(params.dataset_dir) != {}

    finally:
        cluster.stop(sftp.server)


def test_two_writers_racing_for_the_next_head_over_sftp_have_one_winner(
    servers: dict[str, object], tmp_path: Path
) -> None:
    """Creating the next head over SFTP is a compare-and-set: of two workspaces creating it at
    once through OpenSSH's server, one wins, every round, and the head holds its bytes."""
    sftp = cluster.start_sftp(Path(str(servers["root"])) / "sftp-race", cluster.free_port())
    try:
        roots = [dvc_workspace(tmp_path / name, sftp.url, sftp.keyfile) for name in ("a", "b")]
        started = time.perf_counter()
        outcomes = race.race(race.create_head, roots, HEAD_ROUNDS)
        print(f"{HEAD_ROUNDS} rounds in {time.perf_counter() - started:.1f} s")
        race.assert_heads_hold_the_winners(sftp.directory / shared.HEAD_FOLDER, outcomes)
        # Any other failure is an error naming the remote, not a lost race.
        (sftp.directory / "taken").write_text("a file where a folder should be")
        with pytest.raises(dvcstore.VersionStoreError, match=r"ssh://.*could not create taken/"):
            dvcstore.create_remote_file(roots[0], "taken", race.head_file(0), b"{}")
    finally:
        cluster.stop(sftp.server)
