"""The serving endpoint with a real champion from a real MLflow registry.

In-process through FastAPI's test client (the real app, lifespan included): every bad-input
class gets its status and a message naming the field; metrics and the prediction log are
populated and monitoring reads the log. Then `powerops serve` as a real process on a free
loopback port: a rollback under load is served within the polling interval, with no failed
request.
"""

from __future__ import annotations

import json
import operator
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.core.faults import FAIL_ENV, STALL_ENV
from powerops.data import stages
from powerops.model import registry, testset, training
from powerops.monitor import events, monitoring
from powerops.serve import predictionlog, scoring
from tests.conftest import set_params

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def request_rows(first_day: str = "2007-03-10", forecast_hours: int = 24) -> list[dict[str, Any]]:
    """Eight days of real history from the workspace's dataset, then hours to forecast."""
    start = pd.Timestamp(first_day) - pd.Timedelta(hours=192)
    history = pd.date_range(start, periods=192, freq="h")
    rows = [
        {"timestamp": t.isoformat(), "load_kw": 1.0 + (t.hour % 12) / 10, "coverage": 1.0}
        for t in history
    ]
    rows += [
        {
            "timestamp": (history[-1] + pd.Timedelta(hours=h)).isoformat(),
            "load_kw": None,
            "coverage": 1.0,
        }
        for h in range(1, forecast_hours + 1)
    ]
    return rows


@pytest.fixture
def served_workspace(training_workspace: Path) -> Params:
    """Four real months published; models v1 (data v3) and v2 (data v4), v2 the champion."""
    set_params(training_workspace, serve={"poll_seconds": 0.5, "max_rows": 400})
    params = load_params(training_workspace / "params.yaml")
    stages.ingest(params)
    stages.validate(params)
    stages.publish(params)
    results = training.train(params, by="test")
    assert [r.model_version for r in results] == ["1", "2"]
    return params


def test_predict_bad_input_metrics_and_prediction_log(
    served_workspace: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from powerops.serve import serving

    params = served_workspace
    champion = registry.alias_version(params, registry.CHAMPION)
    assert champion is not None
    version = str(champion.version)
    with TestClient(serving.create_app(params)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json() == {"ready": True, "model_version": version}

        good = client.post("/predict", json={"rows": request_rows()})
        assert good.status_code == 200, good.text
        answer = good.json()
        assert answer["model_version"] == version and answer["request_id"]
        assert len(answer["predictions"]) == 24
        assert all(0 < p["load_kw"] < 10 for p in answer["predictions"])
        assert "warnings" not in answer  # the whole history, plausible loads

        # Served, and told what is wrong with it: no history, a load no household meter reads.
        bare = client.post("/predict", json={"rows": request_rows()[192:]})
        assert bare.status_code == 200 and len(bare.json()["predictions"]) == 24
        assert bare.json()["warnings"] == [
            "history: 0 of the 192 periods before the first forecast are given; the features "
            "that read the missing ones are empty, and the forecast less accurate"
        ]
        odd = request_rows()
        odd[10]["load_kw"], odd[11]["load_kw"] = -1.0, 5000.0  # W sent as kW
        flagged = client.post("/predict", json={"rows": odd}).json()["warnings"]
        assert len(flagged) == 1 and "load_kw: 2 values below 0 or above" in flagged[0]

        def refused(body: Any, status: int, *words: str, raw: bool = False) -> None:
            if raw:
                response = client.post(
                    "/predict", content=body, headers={"content-type": "application/json"}
                )
            else:
                response = client.post("/predict", json=body)
            assert response.status_code == status, (response.status_code, response.text)
            detail = response.json()["detail"]
            for word in words:
                assert word in detail, detail

        rows = request_rows()
        refused(
            {"rows": [{k: v for k, v in rows[0].items() if k != "coverage"}, *rows[1:]]},
            422,
            "rows[0].coverage: missing",
        )
        refused({"rows": [rows[0] | {"voltage": 230.0}, *rows[1:]]}, 422, "voltage")
        refused({"rows": [rows[0] | {"load_kw": "high"}, *rows[1:]]}, 422, "rows[0].load_kw")
        refused({"rows": [rows[0] | {"timestamp": 1173484800}, *rows[1:]]}, 422, "timestamp")
        text = json.dumps({"rows": rows})
        nan = text.replace('"load_kw": 1.0', '"load_kw": NaN', 1)
        refused(nan, 422, "NaN", raw=True)
        refused(text.replace('"load_kw": 1.0', '"load_kw": Infinity', 1), 422, "NaN", raw=True)
        refused({"rows": request_rows(forecast_hours=300)}, 413, "limit is 400")
        refused("x" * (params.serve.max_bytes + 1), 413, "bytes", raw=True)
        refused('{"rows": [', 400, "not valid JSON", raw=True)
        refused({"rows": [r for r in rows if r["load_kw"] is not None]}, 422, "no row to forecast")
        refused({"rows": [*rows, rows[-1]]}, 422, "timestamp: X has duplicate timestamps")
        aware = rows[0] | {"timestamp": rows[0]["timestamp"] + "+01:00"}
        refused({"rows": [aware, *rows[1:]]}, 422, "rows[0].timestamp: naive local time")
        refused([1, 2], 422, "rows")
        # Rows three centuries apart would overflow the transformers' int64 nanoseconds.
        ancient = [{"timestamp": "1700-01-01T00:00:00", "load_kw": 1.0, "coverage": 1.0}]
        refused({"rows": ancient + rows}, 422, "span more than 292 years")
        # Limits before work: a declared size over the limit, a chunked body that grows past
        # it (a generator has no Content-Length), and a body that is not JSON.
        limit = params.serve.max_bytes
        huge = client.post(
            "/predict",
            content=b"x",
            headers={"content-type": "application/json", "content-length": str(limit + 1)},
        )
        assert huge.status_code == 413, huge.text
        chunks = (b" " * 65_536 for _ in range(limit // 65_536 + 2))
        streamed = client.post(
            "/predict", content=chunks, headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413 and "more than" in streamed.json()["detail"]
        plain = client.post("/predict", content=text, headers={"content-type": "text/plain"})
        assert plain.status_code == 415, plain.text
        # A client's request id is echoed only when it is a short token.
        tagged = client.post("/predict", json={"rows": rows}, headers={"x-request-id": "abc-1"})
        assert tagged.json()["request_id"] == "abc-1" == tagged.headers["x-request-id"]
        long_id = client.post("/predict", json={"rows": rows}, headers={"x-request-id": "y" * 5000})
        assert len(long_id.json()["request_id"]) == 32

        metrics = client.get("/metrics").text
        assert 'powerops_requests_total{status="200"} 5.0' in metrics
        assert "powerops_implausible_rows_total 2.0" in metrics
        assert 'powerops_requests_total{status="422"} 11.0' in metrics
        assert 'powerops_requests_total{status="413"} 4.0' in metrics
        assert 'powerops_requests_total{status="415"} 1.0' in metrics
        assert 'powerops_requests_total{status="400"} 1.0' in metrics
        for field in ("coverage", "unknown_field", "load_kw", "timestamp"):
            assert f'powerops_schema_skew_rejections_total{{field="{field}"}} 1.0' in metrics
        # Names a client makes up never become series, nor long messages.
        for number in range(300):
            name = f"field_{number:03d}_" + "z" * 2000
            refused({"rows": [rows[0] | {name: 1.0}, *rows[1:]]}, 422, "(2010 chars)")
        grown = client.get("/metrics").text
        assert len(grown) - len(metrics) < 200, len(grown) - len(metrics)
        assert 'powerops_schema_skew_rejections_total{field="unknown_field"} 301.0' in grown
        # The skew ratio's numerator counts requests, not fields: at most one per request.
        assert "powerops_schema_skew_requests_total 305.0" in grown
        assert "powerops_prediction_kw_count 120.0" in metrics
        assert "powerops_request_latency_seconds_bucket" in metrics
        # Only the requests the model answered are latency events, not the fast refusals.
        assert "powerops_request_latency_seconds_count 5.0" in metrics
        info = f'powerops_model_info{{name="{params.mlflow.model_name}",version="{version}"}} 1.0'
        assert info in metrics

        # A failure inside the handler (a bug, a dependency): a 500 that is counted, logged
        # and leaves the server serving.
        monkeypatch.setenv(FAIL_ENV, "serve.predict")
        broken = client.post("/predict", json={"rows": rows})
        assert broken.status_code == 500 and "server log" in broken.json()["detail"]
        monkeypatch.delenv(FAIL_ENV)
        assert client.post("/predict", json={"rows": rows}).status_code == 200
        counted = client.get("/metrics").text
        assert 'powerops_requests_total{status="500"} 1.0' in counted

        monkeypatch.setenv(params.serve.api_key_env, "s3cret")
    # The API key is read when the app is made.
    with TestClient(serving.create_app(params)) as client:
        assert client.post("/predict", json={"rows": rows}).status_code == 401
        # A key in Latin-1 (HTTP headers are bytes): a 401, never a 500.
        wrong = client.post(
            "/predict", json={"rows": rows}, headers={"x-api-key": "s3crét".encode("latin-1")}
        )
        assert wrong.status_code == 401, wrong.text
        # The key is checked before the body is read: an unauthenticated client cannot make
        # the server buffer anything, nor learn the limit.
        chunks = (b" " * 65_536 for _ in range(params.serve.max_bytes // 65_536 + 2))
        blind = client.post(
            "/predict", content=chunks, headers={"content-type": "application/json"}
        )
        assert blind.status_code == 401, blind.text
        keyed = client.post("/predict", json={"rows": rows}, headers={"x-api-key": "s3cret"})
        assert keyed.status_code == 200

    # The log holds every request; monitoring recomputes the served features: no skew.
    now = datetime.now(UTC)
    logged = predictionlog.read(params, now - timedelta(hours=1), now + timedelta(minutes=1))
    assert len(logged) == 328  # 324 requests, then 4 with the API key set
    assert set(logged["status"]) == {200, 400, 401, 413, 415, 422, 500}
    served = logged[logged["status"] == 200]
    assert list(served["rows"]) == [216, 24, 216, 216, 216, 216, 216]
    pipeline = serving.load(params, champion).pipeline
    days = events.log_indicators(
        params, now - timedelta(hours=1), now + timedelta(minutes=1), pipeline
    )
    day = days[str(now.date())]
    # The default sample: the first of this journal's two blocks of 256 records (6 of the 7
    # served requests), and the other journals' one block each.
    assert (day.feature_skew.rows, day.feature_skew.bad) == (144, 0)
    every = params.model_copy(
        update={"monitor": params.monitor.model_copy(update={"skew_sample_rate": 1.0})}
    )
    window = (now - timedelta(hours=1), now + timedelta(minutes=1))
    whole = events.log_indicators(every, *window, pipeline)[str(now.date())]
    assert (whole.feature_skew.rows, whole.feature_skew.bad) == (168, 0)
    assert day.schema_.bad == 305 and day.schema_.fields["coverage"] == 1
    assert day.latency.events == 7

    # power_score's batch forecast: the day after the data, versioned, logged, idempotent.
    batch = scoring.score(params, date(2026, 11, 28))
    assert (batch.day, batch.periods, batch.written) == (date(2007, 4, 1), 24, True)
    assert batch.path.name == f"model-v{version}.parquet"
    forecast = pd.read_parquet(batch.path)
    assert forecast["timestamp"].min() == pd.Timestamp("2007-04-01")
    assert forecast["load_kw"].between(0, 10).all()
    again = scoring.score(params, date(2007, 4, 1))
    assert not again.written and again.path == batch.path
    logged = predictionlog.read(params, now - timedelta(hours=1), datetime.now(UTC))
    assert list(logged["source"]).count("batch") == 1

    # Monitoring scores the batch forecasts of its window against the actuals.
    scoring.score(params, date(2007, 3, 20))
    report = monitoring.monitor(params, date(2007, 4, 1))
    assert [b.day for b in report.batch_forecasts] == ["2007-03-20"]
    wape = report.batch_forecasts[0].wape
    assert wape is not None and 0 < wape < 1

    # The log cannot be written for a while (a full disk): nothing is lost, the failures are
    # counted, and the records are written once it can be.
    monkeypatch.delenv(params.serve.api_key_env)
    with TestClient(serving.create_app(params)) as client:
        journal = client.app.state.log  # type: ignore[attr-defined]
        monkeypatch.setenv(FAIL_ENV, "predictionlog.write")
        ids = [f"disk-full-{n}" for n in range(5)]
        for request_id in ids:
            headers = {"x-request-id": request_id}
            assert client.post("/predict", json={"rows": rows}, headers=headers).status_code == 200
        assert journal.flush() == len(ids)  # held in memory, not lost
        time.sleep(2.5 * params.serve.log_flush_seconds)  # the writer thread retries, fails
        counted = re.search(
            r"^powerops_prediction_log_write_failures_total (\S+)$",
            client.get("/metrics").text,
            re.MULTILINE,
        )
        assert counted and float(counted[1]) >= 2, counted  # this flush and the thread's
        assert "powerops_prediction_log_held 5.0" in client.get("/metrics").text
        monkeypatch.delenv(FAIL_ENV)
        assert journal.flush() == 0
    logged = predictionlog.read(params, now - timedelta(hours=1), datetime.now(UTC))
    assert set(ids) <= set(logged["request_id"])
    assert logged["request_id"].isin(ids).sum() == len(ids)  # each once, none twice

    # An error that escapes the handler (here in admission, before the body is read): the
    # client gets Starlette's 500; the outermost layer counts and logs it all the same.
    monkeypatch.setenv(FAIL_ENV, "serve.admit")
    with TestClient(serving.create_app(params), raise_server_exceptions=False) as client:
        assert client.post("/predict", json={"rows": rows}).status_code == 500
        assert 'powerops_requests_total{status="500"} 1.0' in client.get("/metrics").text
        monkeypatch.delenv(FAIL_ENV)
        # A request that holds the event loop (a stall where the model runs, as a slow
        # model would): the loop's lag shows the wait other requests' clocks cannot see.
        monkeypatch.setenv(STALL_ENV, "serve.predict:0.4")
        assert client.post("/predict", json={"rows": rows}).status_code == 200
        monkeypatch.delenv(STALL_ENV)
        time.sleep(0.3)
        lag = client.get("/metrics").text
        late = re.search(r'^powerops_event_loop_lag_seconds_bucket\{le="0.25"\} (\S+)$', lag, re.M)
        ticks = re.search(r"^powerops_event_loop_lag_seconds_count (\S+)$", lag, re.M)
        assert late and ticks and float(late[1]) < float(ticks[1]), lag
    logged = predictionlog.read(params, now - timedelta(hours=1), datetime.now(UTC))
    assert (logged["status"] == 500).sum() == 2  # this one and the handler's own above

    # Any input at all: never a 500, and the server keeps serving. (No API key: every request
    # gets as far as the model's checks.)
    with TestClient(serving.create_app(params)) as client:
        hostile_requests_get_no_500(client)
        assert client.post("/predict", json={"rows": rows}).status_code == 200
        memory_stays_flat(client)


def memory_stays_flat(client: Any) -> None:
    """600 requests whose rows span a unique range of years (200 to 260 years: keys of the
    holiday cache, each worth ~20 KB of dates) and 1,100 with a unique unknown field: the
    app's traced memory and /metrics stay flat once the first 100 of each have been seen."""
    import gc
    import tracemalloc

    def spanning(number: int) -> dict[str, Any]:
        first, years = 1700 + number % 250, 200 + number // 250 * 20
        moments = [f"{first}-06-01T00:00:00", f"{first + years}-06-01T00:00:00"]
        # Both forecast: the calendar features read the years of the rows they forecast.
        return {"rows": [{"timestamp": t, "load_kw": None, "coverage": 1.0} for t in moments]}

    def named(number: int) -> dict[str, Any]:
        return {"rows": [spanning(0)["rows"][0] | {f"made_up_{number}": 1.0}]}

    def send(bodies: list[dict[str, Any]], status: int) -> None:
        for body in bodies:
            answer = client.post("/predict", json=body)
            assert answer.status_code == status, answer.text

    send([spanning(n) for n in range(100)], 200)  # the cache is full (64) after these
    send([named(n) for n in range(100)], 422)
    metrics = len(client.get("/metrics").text)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        send([spanning(n) for n in range(100, 600)], 200)
        send([named(n) for n in range(100, 1100)], 422)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Unbounded, the cache alone grew by ~10 MB here (19 MB for 900 spans).
    assert grown < 4_000_000, f"{grown / 1e6:.1f} MB more after 1,500 unique requests"
    assert len(client.get("/metrics").text) - metrics < 200


# What /predict may answer; a 5xx would be the server's fault, whatever the client sent.
CLIENT_ERRORS = {200, 400, 401, 413, 415, 422}


def hostile_requests_get_no_500(client: Any) -> None:
    """Hypothesis sends bodies built from a good request with rows replaced by arbitrary
    ones (any year, NaN, huge numbers, strings, unknown fields), arbitrary JSON, and raw
    bytes, under arbitrary headers; every answer must be one of CLIENT_ERRORS."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    base = request_rows()
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    anything = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )
    moments = st.datetimes().map(datetime.isoformat) | scalars
    numbers = st.floats() | st.integers(-(10**30), 10**30) | scalars
    # The model's fields, each maybe missing, plus fields nobody knows, named anything.
    known = st.fixed_dictionaries(
        {}, optional={"timestamp": moments, "load_kw": numbers, "coverage": numbers}
    )
    wild = st.builds(
        operator.or_, known, st.dictionaries(st.text(max_size=300), anything, max_size=2)
    )
    # Rows of the right types with any values get past the schema to the features and model.
    typed = st.fixed_dictionaries(
        {
            "timestamp": st.datetimes().map(datetime.isoformat),
            "load_kw": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "coverage": st.floats(allow_nan=False, allow_infinity=False),
        }
    )
    row = typed | typed.map(dict) | wild
    edits = st.lists(st.tuples(st.integers(0, len(base) - 1), row), max_size=4)

    def edited(changes: list[tuple[int, dict[str, Any]]], keep: int) -> bytes:
        rows = [dict(r) for r in base[:keep]] or [dict(base[0])]
        for number, replacement in changes:
            rows[number % len(rows)] = replacement
        return json.dumps({"rows": rows}).encode()

    bodies = (
        st.builds(edited, edits, st.integers(1, len(base)))
        | anything.map(lambda value: json.dumps(value).encode())
        | st.binary(max_size=300)
    )
    printable = st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f")
    headers = st.fixed_dictionaries(
        {},
        optional={
            "content-type": st.sampled_from(["application/json", "text/plain", "", "a/b; x=y"]),
            "x-request-id": st.text(printable, max_size=200).map(lambda t: t.encode("latin-1")),
            "x-api-key": st.text(printable, max_size=40).map(lambda t: t.encode("latin-1")),
        },
    )

    @settings(max_examples=500, deadline=None, database=None)
    @given(body=bodies, sent=headers)
    def answered(body: bytes, sent: dict[str, Any]) -> None:
        sent = {"content-type": "application/json"} | sent
        response = client.post("/predict", content=body, headers=sent)
        assert response.status_code in CLIENT_ERRORS, (response.status_code, response.text[:500])

    answered()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_a_rollback_under_load_is_served_within_the_interval(served_workspace: Params) -> None:
    params = served_workspace
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # TMPDIR: the metrics folder of the workers, left behind by the SIGKILL at the end.
    env = os.environ | {"PYTHONUNBUFFERED": "1", "TMPDIR": str(params.root)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "powerops",
            "--params",
            str(params.root / "params.yaml"),
            "serve",
            "--port",
            str(port),
        ],
        cwd=params.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.5)

        body = json.dumps({"rows": request_rows()}).encode()
        seen: list[tuple[float, int, str]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                status, answer = post(f"{url}/predict", body)
                seen.append((time.monotonic(), status, answer.get("model_version", "")))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(2)
        manifest = testset.load_manifest(params)
        assert manifest is not None
        rolling = time.monotonic()  # a worker may serve the move before rollback() returns
        registry.rollback(params, "test: rollback under load", None, manifest.sha256)
        rolled_back = time.monotonic()
        time.sleep(5)
        stop.set()
        for worker in workers:
            worker.join()
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        answered = killed_under_load(server, f"{url}/predict", body)
    finally:
        stop_group(server)

    assert seen and all(status == 200 for _, status, _ in seen), {s for _, s, _ in seen}
    before = [v for t, _, v in seen if t < rolling]
    assert set(before) == {"2"}
    # Every worker process serves the rollback within the polling interval (the rollback
    # target was kept loaded), plus a request's time; then only the rollback target.
    last_old = max(t for t, _, v in seen if v == "2")
    assert last_old - rolled_back < params.serve.poll_seconds + 1.5
    assert {v for t, _, v in seen if t > last_old} == {"1"}
    # The two worker processes (serve.workers) both answered; /metrics adds up their counts.
    journals = list(params.predictions_dir.glob("*/journal-*.jsonl"))
    assert len({path.name.split("-")[2] for path in journals}) == params.serve.workers == 2
    assert f'powerops_requests_total{{status="200"}} {float(len(seen))}' in metrics, metrics
    name = params.mlflow.model_name
    assert f'powerops_model_info{{name="{name}",version="1"}} 1.0' in metrics
    assert f'powerops_model_info{{name="{name}",version="2"}} 0.0' in metrics
    print(
        f"{len(seen)} requests, none failed; every worker served the rollback "
        f"{last_old - rolled_back:.2f} s after it"
    )

    # SIGKILL under load (supervisor and workers): every answered request is in the log
    # (docs/serving.md: a killed process loses none), readable, then compacted intact.
    window = (datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1))
    logged = set(predictionlog.read(params, *window, ("request_id",))["request_id"])
    lost = answered - logged
    assert len(answered) > 50 and not lost, f"{len(lost)} of {len(answered)} answered lost"
    assert predictionlog.compact(params)  # the dead workers' journals are no one's now
    assert not list(params.predictions_dir.glob("*/journal-*.jsonl"))
    assert set(predictionlog.read(params, *window, ("request_id",))["request_id"]) == logged
    print(f"SIGKILL under load: {len(answered)} answered, {len(lost)} lost")


def killed_under_load(server: subprocess.Popen[bytes], url: str, body: bytes) -> set[str]:
    """SIGKILL the server's process group while four clients send requests; the ids of the
    requests answered 200 before it died."""
    answered: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                status, answer = post(url, body)
            except OSError:  # the server is gone
                return
            if status == 200:
                answered.add(answer["request_id"])

    clients = [threading.Thread(target=load) for _ in range(4)]
    for client in clients:
        client.start()
    time.sleep(1.5)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    stop.set()
    for client in clients:
        client.join()
    return answered


def stop_group(server: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session, and its workers, if still running."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
