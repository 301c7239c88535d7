"""Benchmark: `powerops serve` under load against `mlflow models serve` of the same model version.

In a temporary workspace holding the first four real months (the source CSV cut before
2007-04-01, as the tests do) and two trained model versions, the champion is served twice,
each server a real process bound to a free loopback port:
- `powerops serve --workers W` (FastAPI on uvicorn), POST /predict {"rows": [...]};
- `mlflow models serve -m models:/<name>/<version> --env-manager local -w W` (MLflow's own
  scoring server, FastAPI on uvicorn too), POST /invocations in MLflow's scoring format
  {"dataframe_split": {"columns": [...], "data": [...]}}.

Both get the same rows: 192 hourly rows of history and 1 or 24 rows to forecast (`load_kw`
null), built as tests/e2e/test_serving.py's `request_rows` does. MLflow gets the columns of
the logged signature (`timestamp` as an ISO string, `load_kw`; `coverage`, which the pipeline
does not read, is left out) and predicts every row it is sent, history included; ours returns
the forecast rows only. One request of each size first checks that both give the same
forecasts.

First, 3 s of single requests to each server (lazy imports, the first prediction-log write).
Then each cell, ours then MLflow's: concurrency 1, 8 and 32 threads, each with its own
keep-alive `http.client.HTTPConnection` and the body encoded once, a warm-up of a few requests
per thread, then --seconds of closed-loop load (a thread sends its next request when the
answer arrives, so latency is about concurrency / throughput). Measured: p50, p95 and p99
latency of the answered requests, throughput (answered requests per second), errors (non-2xx
answers and exceptions, by kind). The issue's targets, printed as met or not: single-row p99
<= 50 ms at concurrency 8, throughput >= 2x MLflow's in every cell, zero errors.

The machine has 2 cores and the load generator runs on them too, beside the server it
measures: absolute figures understate a dedicated server. Both servers face the same
generator, so the ratios are fair. Both inherit the environment, OpenMP settings included
(`OMP_NUM_THREADS=1 .venv/bin/python bench/serve.py` measures both with one thread). Timings
never fail the run; exit code 1 when our service answers an error or its forecasts differ
from MLflow's.

    make bench-serve         # or: .venv/bin/python bench/serve.py [--seconds 20]

Last, our p99 as the server logged it (the prediction log, what the latency SLI reads) beside
the clients' p99 for each cell: the gap is the queueing the server cannot see.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = (1, 24)  # rows to forecast per request, after the history
CONCURRENCY = (1, 8, 32)
WARMUP = 2  # requests per thread before each measured cell
SERVER_WARMUP_S = 3.0  # of single requests to each server first: lazy imports, first log write
P99_TARGET_MS = 50.0
THROUGHPUT_TARGET = 2.0
READY_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class Target:
    """One server's endpoint and the bodies it is sent, by rows to forecast."""

    name: str
    port: int
    path: str
    bodies: dict[int, bytes]


@dataclass(frozen=True)
class Cell:
    """The outcome of one load cell."""

    requests: int  # answered, of those sent in the window
    errors: Counter[str]  # by HTTP status or exception name, of those sent in the window
    completed: int  # answered within the window
    seconds: float  # the window
    p50: float
    p95: float
    p99: float
    opened: datetime  # the window, by the wall clock the prediction log keeps
    closed: datetime

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(root: Path) -> Path:
    """The four-month workspace with models v1 and v2 trained (as the serving tests make it)."""
    from tests.conftest import SMALL_SOURCE_END, make_training_workspace

    from powerops.core.config import load_params
    from powerops.data import stages
    from powerops.data.source import read_source
    from powerops.model import training

    params = load_params(REPO / "params.yaml")
    frame = read_source(params.source_path(), params.source, progress=False)
    small = frame[frame["date_time"] < SMALL_SOURCE_END]
    source = root / "householdpower_small.csv"
    small.to_csv(source, index=False, date_format="%Y-%m-%d %H:%M:%S")
    workspace = make_training_workspace(root / "ws", source)
    params = load_params(workspace / "params.yaml")
    stages.ingest(params)
    stages.validate(params)
    stages.publish(params, push=False)
    training.train(params, by="bench")
    return workspace


def start(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> float:
    """Seconds until `url` answers 200; raises with the server's output if it never does."""
    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() - started > READY_TIMEOUT_S:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{url} never became ready (exit code {process.poll()}):\n{tail}")
        time.sleep(0.25)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL to what is left of it after STOP_TIMEOUT_S (the
    group outlives its leader: mlflow runs uvicorn as a child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_S)
    try:
        while time.monotonic() < deadline:
            os.killpg(process.pid, 0)
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def post(port: int, path: str, body: bytes) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def run_cell(target: Target, size: int, concurrency: int, seconds: float) -> Cell:
    """`concurrency` threads in a closed loop. The measured window opens once every thread has
    sent its WARMUP requests, and lasts `seconds`; the threads never pause in between, so no
    connection idles past the server's keep-alive timeout and none is opened in the window."""
    body = target.bodies[size]
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "X-Request-Id": cell_tag(size, concurrency),  # finds the cell in our prediction log
    }
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[Counter[str]] = [Counter() for _ in range(concurrency)]
    warmed = threading.Semaphore(0)
    window = [(math.inf, math.inf)]  # (opens, closes), set once by the main thread
    completed = [0] * concurrency
    clock = time.perf_counter

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        own, failed, sent = latencies[index], errors[index], 0
        while clock() < window[0][1]:
            began = clock()
            try:
                connection.request("POST", target.path, body, headers)
                response = connection.getresponse()
                response.read()
                error = None if 200 <= response.status < 300 else str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
                connection.close()  # reconnects on the next request
            ended = clock()
            if error is None and window[0][0] <= ended <= window[0][1]:
                completed[index] += 1
            if began >= window[0][0]:
                if error is None:
                    own.append(ended - began)
                else:
                    failed[error] += 1
            sent += 1
            if sent == WARMUP:
                warmed.release()
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    give_up = time.monotonic() + READY_TIMEOUT_S
    for _ in range(concurrency):
        warmed.acquire(timeout=max(0.0, give_up - time.monotonic()))
    opens, opened = clock(), datetime.now(UTC)
    window[0] = (opens, opens + seconds)
    for thread in threads:
        thread.join()
    closed = opened + timedelta(seconds=seconds)

    import numpy as np

    answered = np.concatenate([np.asarray(own) for own in latencies]) * 1000
    p50, p95, p99 = (
        (float(v) for v in np.percentile(answered, [50, 95, 99]))
        if answered.size
        else (float("nan"),) * 3
    )
    return Cell(
        int(answered.size),
        sum(errors, Counter()),
        sum(completed),
        seconds,
        p50,
        p95,
        p99,
        opened,
        closed,
    )


def cell_tag(size: int, concurrency: int) -> str:
    return f"bench-{size}-{concurrency}"


def server_p99(params: Any, results: dict[tuple[str, int, int], Cell]) -> dict[Any, float]:
    """Our server's own p99 per cell, from the latency its prediction log recorded for the
    requests answered in the cell's window: what the latency SLI sees, against the client's."""
    import numpy as np

    from powerops.serve import predictionlog

    cells = {key[1:]: cell for key, cell in results.items() if key[0] == "powerops"}
    start = min(cell.opened for cell in cells.values())
    end = max(cell.closed for cell in cells.values())
    logged = predictionlog.read(params, start, end, ("request_id", "at", "status", "latency_ms"))
    found = {}
    for (size, concurrency), cell in cells.items():
        mine = logged[
            (logged["request_id"] == cell_tag(size, concurrency))
            & (logged["status"] == 200)
            & (logged["at"] >= cell.opened)
            & (logged["at"] <= cell.closed)
        ]
        latency = mine["latency_ms"].to_numpy(dtype=np.float64)
        found[size, concurrency] = float(np.percentile(latency, 99)) if latency.size else math.nan
    return found


LAG_BUCKET = re.compile(r'^powerops_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)


def loop_lag(port: int) -> dict[float, float]:
    """Our workers' event-loop lag histogram (bucket bound -> cumulative count) on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {float(bound): float(count) for bound, count in LAG_BUCKET.findall(text)}


def lag_p99(before: dict[float, float], after: dict[float, float]) -> float:
    """The smallest bucket bound (ms) under which 99% of the lags observed between two
    scrapes fall: how long a request waited for the event loop before its clock started."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    total = counts.get(math.inf, 0.0)
    for bound in sorted(counts):
        if total and counts[bound] >= 0.99 * total:
            return bound * 1000
    return math.nan


def check_forecasts(ours: Target, mlflow: Target, rows: list[dict[str, Any]]) -> list[str]:
    """Problems with one request of each size: statuses, counts, ours == MLflow's forecasts."""
    problems = []
    history = sum(row["load_kw"] is not None for row in rows)
    for size in SIZES:
        status, answer = post(ours.port, ours.path, ours.bodies[size])
        mstatus, manswer = post(mlflow.port, mlflow.path, mlflow.bodies[size])
        if status != 200 or mstatus != 200:
            problems.append(f"{size} rows: status {status} (ours), {mstatus} (MLflow): {answer}")
            continue
        served = [p["load_kw"] for p in answer["predictions"]]
        predicted = manswer["predictions"][history:]
        if len(served) != size or len(predicted) != size:
            problems.append(
                f"{size} rows: {len(served)} forecasts (ours), {len(predicted)} (MLflow)"
            )
        elif max(abs(a - b) for a, b in zip(served, predicted, strict=True)) > 1e-9:
            problems.append(f"{size} rows: forecasts differ: {served[:3]} vs {predicted[:3]}")
    return problems


def bodies(rows: list[dict[str, Any]], columns: list[str]) -> tuple[dict[int, bytes], ...]:
    """Per size: our /predict body, and MLflow's dataframe_split body of the same rows."""
    history = [row for row in rows if row["load_kw"] is not None]
    ahead = [row for row in rows if row["load_kw"] is None]
    ours, theirs = {}, {}
    for size in SIZES:
        chosen = history + ahead[:size]
        ours[size] = json.dumps({"rows": chosen}).encode()
        split = {"columns": columns, "data": [[row[c] for c in columns] for row in chosen]}
        theirs[size] = json.dumps({"dataframe_split": split}).encode()
    return ours, theirs


def signature_columns(params: Any, version: Any) -> list[str]:
    """The input columns of the logged model's signature."""
    from mlflow.models import get_model_info

    from powerops.model import registry

    registry.client(params)  # sets the tracking URI
    info = get_model_info(f"models:/{params.mlflow.model_name}/{version}")
    return [str(name) for name in info.signature.inputs.input_names()]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _errors(errors: Counter[str]) -> str:
    total = sum(errors.values())
    if not total:
        return "0"
    return f"{total} ({', '.join(f'{kind}: {n}' for kind, n in errors.most_common())})"


def print_rows(results: dict[tuple[str, int, int], Cell], size: int, concurrency: int) -> None:
    """Both servers' lines of one cell; the ratios on ours."""
    ours, theirs = results["powerops", size, concurrency], results["mlflow", size, concurrency]
    for name, cell in (("powerops", ours), ("mlflow", theirs)):
        ratios = f"{'':>6} {'':>6}"
        if cell is ours and theirs.throughput > 0:
            ratios = f"{ours.throughput / theirs.throughput:>6.2f} {ours.p99 / theirs.p99:>6.2f}"
        print(
            f"{size:>3} {concurrency:>4} {name:<9} {cell.throughput:>8.1f} {cell.p50:>8.2f} "
            f"{cell.p95:>8.2f} {cell.p99:>8.2f} {cell.requests:>8} "
            f"{sum(cell.errors.values()):>6} {ratios}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per cell")
    parser.add_argument(
        "--workspace", type=Path, help="a workspace with a champion already trained (reused)"
    )
    parser.add_argument(
        "--workers", type=int, help="worker processes of each server (default: serve.workers)"
    )
    args = parser.parse_args()

    from tests.e2e.test_serving import request_rows

    from powerops.core.config import load_params
    from powerops.model import registry

    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="powerops-bench-") as tmp:
        root = Path(tmp)
        if args.workspace is None:
            print("preparing a workspace: 4 months, 2 model versions ...", flush=True)
            chatter = io.StringIO()
            try:
                logging.disable(logging.WARNING)  # Great Expectations logs at INFO
                with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                    workspace = prepare(root)
            except Exception:
                print(chatter.getvalue())
                raise
            finally:
                logging.disable(logging.NOTSET)
        else:
            workspace = args.workspace.resolve()
        params = load_params(workspace / "params.yaml")
        champion = registry.alias_version(params, registry.CHAMPION)
        assert champion is not None, "no champion in the workspace"
        version = str(champion.version)
        workers = args.workers or params.serve.workers
        columns = signature_columns(params, version)
        rows = request_rows(forecast_hours=max(SIZES))
        our_bodies, mlflow_bodies = bodies(rows, columns)

        env = os.environ | {
            "PYTHONUNBUFFERED": "1",
            "MLFLOW_TRACKING_URI": params.tracking_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            # mlflow starts `uvicorn` from PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        ours = Target("powerops", free_port(), "/predict", our_bodies)
        mlflow = Target("mlflow", free_port(), "/invocations", mlflow_bodies)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            ours_log, mlflow_log = root / "powerops-serve.log", root / "mlflow-serve.log"
            processes.append(
                start(
                    [
                        sys.executable,
                        "-m",
                        "powerops",
                        "--params",
                        str(workspace / "params.yaml"),
                        "serve",
                        "--port",
                        str(ours.port),
                        "--workers",
                        str(workers),
                    ],
                    env,
                    workspace,
                    ours_log,
                )
            )
            processes.append(
                start(
                    [
                        sys.executable,
                        "-m",
                        "mlflow",
                        "models",
                        "serve",
                        "-m",
                        f"models:/{params.mlflow.model_name}/{version}",
                        "--env-manager",
                        "local",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(mlflow.port),
                        "-w",
                        str(workers),
                    ],
                    env,
                    workspace,
                    mlflow_log,
                )
            )
            ours_up = wait_ready(processes[0], f"http://127.0.0.1:{ours.port}/ready", ours_log)
            mlflow_up = wait_ready(processes[1], f"http://127.0.0.1:{mlflow.port}/ping", mlflow_log)
            print(
                f"model {params.mlflow.model_name} version {version}, {workers} worker "
                f"process(es) each; ready after "
                f"{ours_up:.1f} s (powerops serve), {mlflow_up:.1f} s (mlflow models serve); "
                f"MLflow columns {columns}"
            )
            problems = check_forecasts(ours, mlflow, rows)
            print(
                "same forecasts from both: "
                + ("yes" if not problems else "NO\n  " + "\n  ".join(problems))
            )
            for target in (ours, mlflow):
                for size in SIZES:
                    run_cell(target, size, 1, SERVER_WARMUP_S / len(SIZES))
            print(
                f"{args.seconds:g} s per cell after a warm-up of {WARMUP} requests per thread; "
                f"N = rows to forecast, after 192 rows of history (MLflow predicts all rows); "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
                f"{os.cpu_count()} CPUs shared with the load generator"
            )
            print()
            print(
                f"{'N':>3} {'conc':>4} {'server':<9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
                f"{'p99 ms':>8} {'requests':>8} {'errors':>6} {'rps x':>6} {'p99 x':>6}"
            )
            results: dict[tuple[str, int, int], Cell] = {}
            lags: dict[tuple[int, int], float] = {}
            for size in SIZES:
                for concurrency in CONCURRENCY:
                    for target in (ours, mlflow):
                        before = loop_lag(ours.port)
                        results[target.name, size, concurrency] = run_cell(
                            target, size, concurrency, args.seconds
                        )
                        if target is ours:
                            lags[size, concurrency] = lag_p99(before, loop_lag(ours.port))
                    print_rows(results, size, concurrency)
        finally:
            for process in processes:
                stop(process)  # our workers write what their logs still buffer as they stop
        seen_by_server = server_p99(params, results)

    cells = [(size, c) for size in SIZES for c in CONCURRENCY]
    p99 = results["powerops", 1, 8].p99
    ratios = {
        cell: results[("powerops", *cell)].throughput
        / max(results[("mlflow", *cell)].throughput, 1e-9)
        for cell in cells
    }
    worst = min(ratios, key=lambda cell: ratios[cell])
    our_errors = sum((results[("powerops", *cell)].errors for cell in cells), Counter())
    mlflow_errors = sum((results[("mlflow", *cell)].errors for cell in cells), Counter())
    print()
    print(
        "powerops p99 as the clients saw it, as the server logged it (the latency SLI), and "
        "the event loop's lag (p99 bucket bound): the wait before the server's clock starts"
    )
    print(f"{'N':>3} {'conc':>4} {'client ms':>10} {'server ms':>10} {'loop lag ms':>12}")
    for size, concurrency in cells:
        print(
            f"{size:>3} {concurrency:>4} {results['powerops', size, concurrency].p99:>10.2f} "
            f"{seen_by_server[size, concurrency]:>10.2f} {'<=':>4}{lags[size, concurrency]:>8.0f}"
        )
    print()
    print("rps x = our throughput / MLflow's; p99 x = our p99 / MLflow's")
    print(
        f"target single-row p99 <= {P99_TARGET_MS:g} ms at concurrency 8: {p99:.2f} ms, "
        f"{_met(p99 <= P99_TARGET_MS)}"
    )
    print(
        f"target throughput >= {THROUGHPUT_TARGET:g}x MLflow's in every cell: lowest "
        f"{ratios[worst]:.2f}x (N={worst[0]}, concurrency {worst[1]}), "
        f"{_met(ratios[worst] >= THROUGHPUT_TARGET)}"
    )
    print(
        f"target zero errors: {_errors(our_errors)} (ours), {_errors(mlflow_errors)} (MLflow), "
        f"{_met(not our_errors)}"
    )
    return 1 if our_errors or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
