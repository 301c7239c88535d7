"""The DAGs on the cluster profile, with real servers and no shared disk (`make test-cluster`).

Started here, each as this test's own process on loopback, stopped by PID at the end:
PostgreSQL (Airflow's metadata database and MLflow's store), Redis (Celery's broker), an
OpenSSH server (SFTP: the shared DVC remote), an MLflow tracking server with proxied
artifacts, and Airflow's api-server, scheduler and dag-processor with two Celery workers.

Every "host" has a workspace of its own: a laptop that publishes the first three months, the
scheduler's, and one per worker (`--concurrency 1`, the same queue). They share only the
DVC remote, the MLflow server and Airflow's database: powerops.ops.shared moves the state.

One month goes through power_ingest and then power_train. While it runs, a worker is
SIGKILLed mid-task (its task is retried on the other worker) and PostgreSQL is restarted.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from powerops.core.config import Params, load_params
from powerops.core.months import parse_month
from powerops.data import stages
from powerops.data.catalog import Catalog
from powerops.model import registry
from powerops.ops import cluster, shared
from tests.conftest import REPO, make_training_workspace, set_params, use_remote, wait_for

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

WORKERS = ("w1", "w2")
ARTIFACTS = Path(os.environ.get("POWEROPS_TEST_ARTIFACTS", REPO / ".run" / "test-artifacts"))
AIRFLOW = str(Path(sys.executable).parent / "airflow")
# The month the DAGs ingest (the laptop published the three before it).
MONTH = "2007-03"
SEEDED = ("2006-12", "2007-01", "2007-02")


@dataclass
class Cluster:
    root: Path
    postgres: cluster.Server
    mlflow_url: str
    database: str  # libpq DSN of Airflow's database
    env: dict[str, str]  # the scheduler host's Airflow environment
    hosts: dict[str, Path]  # workspace per host
    workers: dict[str, cluster.Server] = field(default_factory=dict)
    started: list[cluster.Server] = field(default_factory=list)
    # Airflow's api-server, scheduler and dag-processor, by name: how to start each again.
    components: dict[str, list[str]] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)

    def supervise(self) -> None:
        """Start again any Airflow component that exited, as systemd (`Restart=always`) or
        Kubernetes would: the scheduler exits when its database refuses a connection."""
        for index, server in enumerate(self.started):
            if server.name in self.components and server.process.poll() is not None:
                self.restarts.append(f"{server.name} (exit {server.process.returncode})")
                self.started[index] = cluster.start_process(
                    server.name, self.components[server.name], server.log, self.env
                )

    def workers_alive(self) -> set[str]:
        return {name for name, server in self.workers.items() if server.process.poll() is None}

    def params(self, host: str) -> Params:
        return load_params(self.hosts[host] / "params.yaml")

    def airflow(self, *args: str) -> str:
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"airflow {args}: {done.stderr[-2000:]}"
        return done.stdout

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.database) as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def tries(self, dag_id: str) -> list[tuple[str, int, str, str]]:
        """(task, try, state, worker) of every try of the DAG's tasks, finished or not."""
        query = (
            "SELECT task_id, try_number, state, hostname FROM {} WHERE dag_id = %s"
            " AND hostname IS NOT NULL AND hostname <> ''"
        )
        found = self.rows(query.format("task_instance"), dag_id)
        found += self.rows(query.format("task_instance_history"), dag_id)
        return sorted(set(found), key=lambda row: (row[0], row[1]))


def wait(stack: Cluster, check: Callable[[], Any], timeout: float, what: str) -> Any:
    """conftest.wait_for, failing with the tail of every Airflow component's log."""

    def logs() -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((stack.root / "logs").glob("*.log"))
        )

    def supervised() -> Any:
        stack.supervise()
        return check()

    return wait_for(supervised, timeout, what, details=logs)


def host_workspace(root: Path, source: Path, sftp: cluster.Sftp, mlflow_url: str) -> Path:
    """A host's own copy of the project, configured for the cluster profile and nothing else:
    the shared state on, the MLflow server, and the DVC remote with this host's key."""
    workspace = make_training_workspace(root, source)
    set_params(
        workspace,
        ingest={"start": MONTH, "through": MONTH},
        state={"shared": True},
        mlflow={"tracking_uri": mlflow_url},
    )
    use_remote(workspace, sftp.url, sftp.keyfile)
    return workspace


@pytest.fixture(scope="module")
def stack(real_source_csv: Path) -> Iterator[Cluster]:
    installed = subprocess.run(
        ["bash", str(REPO / "scripts" / "cluster_packages.sh")], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-500:]
    root = Path(tempfile.mkdtemp(prefix="powerops-cluster-dags-"))
    root.chmod(0o755)  # PostgreSQL runs as `postgres` when we are root
    started: list[cluster.Server] = []
    state: dict[str, Any] = {}
    try:
        passwords = {"airflow": cluster.password(), "mlflow": cluster.password()}
        postgres = cluster.start_postgres(root / "postgres", cluster.free_port(), passwords)
        started.append(postgres)
        redis = cluster.start_redis(root / "redis", cluster.free_port())
        started.append(redis)
        sftp = cluster.start_sftp(root / "sftp", cluster.free_port())
        started.append(sftp.server)

        def url(name: str, driver: str = "postgresql+psycopg2") -> str:
            return f"{driver}://{name}:{passwords[name]}@127.0.0.1:{postgres.port}/{name}"

        mlflow = cluster.start_mlflow(root / "mlflow", cluster.free_port(), url("mlflow"))
        started.append(mlflow)
        mlflow_url = f"http://127.0.0.1:{mlflow.port}"

        hosts = {
            name: host_workspace(root / name, real_source_csv, sftp, mlflow_url)
            for name in ("laptop", "scheduler", *WORKERS)
        }
        # The laptop publishes the first three months to the shared state, as `powerops`
        # commands would in the cluster profile.
        laptop = load_params(hosts["laptop"] / "params.yaml")
        with shared.synced(laptop, "laptop"):
            months = [parse_month(month) for month in SEEDED]
            stages.ingest(laptop, months)
            stages.validate(laptop, months)
            stages.publish(laptop, months)

        api_port = cluster.free_port()
        common = {
            key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")
        } | {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url("airflow"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + url("airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # Shared by every component: workers' task tokens are checked by the api-server.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "powerops.ops.cluster.worker_hostname",
            # A task whose worker died is failed (and retried) after 10 s without a heartbeat.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        }

        def env_of(host: str) -> dict[str, str]:
            workspace = hosts[host]
            return common | {
                "AIRFLOW_HOME": str(root / "airflow" / host),
                "AIRFLOW__CORE__DAGS_FOLDER": str(workspace / "dags"),
                "POWEROPS_WORKSPACE": str(workspace),
                "POWEROPS_WORKER": host,
            }

        env = env_of("scheduler")
        stack = Cluster(
            root,
            postgres,
            mlflow_url,
            f"host=127.0.0.1 port={postgres.port} dbname=airflow user=airflow "
            f"password={passwords['airflow']}",
            env,
            hosts,
            started=started,
        )
        state["stack"] = stack
        stack.airflow("db", "migrate")
        stack.airflow("pools", "set", "powerops_workspace", "1", "one writer of the state")
        logs = root / "logs"
        api = [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port)]
        for name, command in (
            ("api-server", [*api, "--workers", "1"]),
            ("scheduler", [AIRFLOW, "scheduler"]),
            ("dag-processor", [AIRFLOW, "dag-processor"]),
        ):
            started.append(cluster.start_process(name, command, logs / f"{name}.log", env))
            stack.components[name] = command
        for name in WORKERS:
            worker_env = env_of(name) | {
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(cluster.free_port())
            }
            command = [AIRFLOW, "celery", "worker", "--concurrency", "1"]
            command += ["--celery-hostname", f"{name}@%h"]
            worker = cluster.start_process(name, command, logs / f"{name}.log", worker_env)
            started.append(worker)
            stack.workers[name] = worker
        parsed = "SELECT dag_id FROM dag WHERE dag_id IN ('power_ingest', 'power_train')"
        wait(stack, lambda: len(stack.rows(parsed)) == 2, 240, "the DAGs to be parsed")
        for worker in stack.workers.values():
            log = worker.log
            wait(stack, lambda log=log: "ready." in log.read_text(), 240, f"{worker.name} ready")
        yield stack
    finally:
        for server in reversed(started):
            if server.name in WORKERS:
                cluster.kill(server)
            elif server.process.poll() is None:
                cluster.stop(server)
        shutil.rmtree(root, ignore_errors=True)


def restart_postgres(stack: Cluster) -> None:
    # Down for 5 s, as a failover takes: long enough for the scheduler to meet a refused
    # connection, which makes it exit (so the supervisor's restart is exercised too).
    restarted = cluster.restart_postgres(stack.postgres, down_s=5)
    stack.started[stack.started.index(stack.postgres)] = restarted
    stack.postgres = restarted


def test_a_month_through_power_ingest_and_power_train_on_two_workers(stack: Cluster) -> None:
    started = time.monotonic()
    stack.airflow("dags", "unpause", "power_train")
    stack.airflow("dags", "unpause", "power_ingest")  # catchup: the run for MONTH

    def running(task: str) -> str | None:
        found = stack.rows(
            "SELECT hostname FROM task_instance WHERE dag_id = 'power_train' AND task_id = %s"
            " AND state = 'running' AND hostname IN %s",
            task,
            WORKERS,
        )
        return found[0][0] if found else None

    # Kill a worker mid-task, so that its task is retried on the other one. The victim is the
    # worker that runs build_table if it also ran publish, so that the retry also proves a
    # hand-over between hosts; otherwise build_table's own move proves it, and fit's worker
    # is killed.
    building = wait(stack, lambda: running("build_table"), 600, "build_table to run")
    published = {
        worker
        for task, _, state, worker in stack.tries("power_ingest")
        if task == "publish" and state == "success"
    }
    task = "build_table"
    if building not in published:
        task = "fit"
        building = wait(stack, lambda: running("fit"), 300, "fit to run")
    cluster.kill(stack.workers[building])
    killed, killed_at = time.monotonic(), datetime.now(UTC)
    survivor = next(name for name in WORKERS if name != building)

    # Restart PostgreSQL while `register` writes to MLflow (whose store is on it too) and
    # moves the champion alias: the step most able to leave a half-promoted model behind.
    wait(stack, lambda: running("register"), 300, "register to run")
    restart_postgres(stack)
    restarted = time.monotonic()

    def finished(dag_id: str) -> list[tuple[Any, ...]]:
        runs = stack.rows("SELECT run_id, state FROM dag_run WHERE dag_id = %s", dag_id)
        done = [row for row in runs if row[1] in ("success", "failed")]
        return done if done and len(done) == len(runs) else []

    ingest_runs = wait(stack, lambda: finished("power_ingest"), 600, "power_ingest")
    train_runs = wait(stack, lambda: finished("power_train"), 600, "power_train")
    took = time.monotonic() - started
    assert [state for _, state in train_runs] == ["success"], train_runs
    assert "success" in {state for _, state in ingest_runs}, ingest_runs

    # The killed try was retried on the other worker, and the run went on there.
    tries = stack.tries("power_train")
    attempts = [(number, state, worker) for name, number, state, worker in tries if name == task]
    assert attempts[0][2] == building and attempts[-1] == (attempts[-1][0], "success", survivor)
    assert len(attempts) >= 2, attempts
    workers = {worker for *_, worker in stack.tries("power_ingest") + tries}
    assert workers == set(WORKERS), tries

    # What the run left, seen from the scheduler's workspace, which ran no task: the new
    # dataset version, restored byte for byte from the remote, and the models in MLflow.
    params = stack.params("scheduler")
    assert not params.raw_dir.exists()
    shared.pull(params)
    record = Catalog(params.catalog_dir).load(params.dataset.name)
    assert [v.version for v in record.versions] == [1, 2, 3, 4]
    assert record.versions[-1].first_month == SEEDED[0] and record.versions[-1].last_month == MONTH
    stages.checkout(params, 4)  # restored from the SFTP remote; content hash checked
    versions = registry.versions(params)
    assert sorted(v.tags["data_version"] for v in versions) == ["3", "4"]  # none twice
    assert len({v.tags["test_set_hash"] for v in versions}) == 1
    champion = registry.alias_version(params, registry.CHAMPION)
    assert champion is not None
    moves = [m for m in registry.audit_log(params) if m.alias == registry.CHAMPION]
    assert moves and moves[-1].to_version == str(champion.version)  # nothing half-promoted
    (retried,) = stack.rows(
        "SELECT start_date FROM task_instance WHERE dag_id = 'power_train' AND task_id = %s",
        task,
    )[0]
    report = timings(stack)
    recovery = (retried - killed_at).total_seconds()
    report.append(f"the killed task's retry started {recovery:.1f} s after the kill")
    report.append(
        f"power_ingest and power_train on the cluster: {took:.0f} s from unpausing; "
        f"{task} on {building} killed at {killed - started:.0f} s; PostgreSQL restarted at "
        f"{restarted - started:.0f} s; Airflow components restarted after exiting: "
        f"{', '.join(stack.restarts) or 'none'}"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "cluster-timings.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    # Every Airflow component runs at the end (restarted by the supervisor if it had exited).
    stack.supervise()
    assert all(s.process.poll() is None for s in stack.started if s.name in stack.components)


def timings(stack: Cluster) -> list[str]:
    """Each try of each task: its worker, its wait in the queue, its duration, and the part of
    that spent pulling and pushing the shared state (from the task's own log)."""
    pattern = re.compile(r"shared state: (pulled|pushed|unchanged at) generation \d+ in ([\d.]+) s")
    lines = [
        f"{'task':<28} {'try':>3} {'worker':<6} {'state':<14} {'queued':>7} {'ran':>7} "
        f"{'pull':>6} {'push':>6}"
    ]
    for table in ("task_instance_history", "task_instance"):
        rows = stack.rows(
            f"SELECT dag_id, run_id, task_id, try_number, hostname, state, queued_dttm,"
            f" start_date, end_date FROM {table} WHERE hostname IN %s ORDER BY start_date",
            WORKERS,
        )
        for dag_id, run_id, task_id, number, worker, state, queued, start, end in rows:
            log = (
                stack.root
                / "airflow"
                / worker
                / "logs"
                / f"dag_id={dag_id}"
                / f"run_id={run_id}"
                / f"task_id={task_id}"
                / f"attempt={number}.log"
            )
            spent = {"pulled": 0.0, "pushed": 0.0}
            if log.is_file():
                for kind, seconds in pattern.findall(log.read_text(errors="replace")):
                    spent["pulled" if kind == "pulled" else "pushed"] += float(seconds)
            wait = (start - queued).total_seconds() if start and queued else float("nan")
            if table == "task_instance_history" and worker not in stack.workers_alive():
                state = f"{state} (killed)"
            ran = (end - start).total_seconds() if start and end else float("nan")
            lines.append(
                f"{dag_id + '.' + task_id:<28} {number:>3} {worker:<6} {state:<14} {wait:>7.2f} "
                f"{ran:>7.2f} {spent['pulled']:>6.2f} {spent['pushed']:>6.2f}"
            )
    return lines
