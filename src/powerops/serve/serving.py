"""`powerops serve`: the champion behind an HTTP API (FastAPI on uvicorn). The CLI imports
this module only for `serve`: FastAPI is imported at the top because it resolves the
endpoints' annotations from the module's globals.

* `POST /predict` takes `{"rows": [...]}` in the model's input schema (the training signature
  stored with the model version): `timestamp`, `load_kw`, `coverage`. Rows whose `load_kw` is
  null are forecast; the others are the history their features read (168 hours before the
  forecast day's midnight for the default lags). The answer carries the forecasts, the model
  version and a request id.
* Bad input never yields a 500: a missing, extra or mistyped field is a 422 naming the field
  and counted as schema skew; NaN or infinity a 422; too many rows or bytes a 413; a body that
  is not JSON a 400. Before a byte of the body is read: a wrong X-API-Key is a 401, a
  Content-Length over `serve.max_bytes` a 413, a Content-Type other than JSON a 415; a body
  streamed past the limit is cut off with 413. A client's X-Request-Id is kept only if it is
  a short token (64 characters of letters, digits and `._:-`), else replaced.
* The `champion` alias is polled every `serve.poll_seconds`; a new champion is loaded beside
  the old one and swapped in with one assignment. A request uses the model it started with, so
  a swap never fails or mixes a request in flight.
* `/metrics` (Prometheus), `/health` (the process is up), `/ready` (a model is loaded).
* Every request is appended to the prediction log (`powerops.serve.predictionlog`), which
  monitoring reads for latency, schema skew and feature skew.

Speed: a small request is answered on the event loop (a hop to a worker thread and back
would cost more than the work); bodies above INLINE_BYTES go to a worker thread. The body is
validated by pydantic-core straight from the JSON bytes into NumPy columns; the features and
the trees run on arrays (`Served`); the log keeps the body as received. The figures are in
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from powerops.core.config import Params
from powerops.core.faults import crash_point
from powerops.data.table import TARGET
from powerops.model import registry, skew
from powerops.serve import predictionlog
from powerops.serve.flatforest import MAX_ROWS, FlatForest
from powerops.serve.journal import Journal

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from powerops.model.reference import Reference

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by `serve` for several workers
PARAMS_ENV = "POWEROPS_SERVE_PARAMS"  # the params, as JSON, for each worker process
INLINE_BYTES = 64_000  # bodies up to this size (~900 rows) are answered on the event loop
_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_NS_LIMIT_US = 2**63 // 1000  # datetime64[ns] spans 1677-09-21 .. 2262-04-11
# A client's X-Request-Id is echoed and logged: only a short token is kept, else a new id.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
CLOCK, COUNTED = "powerops.started", "powerops.counted"  # keys Outermost puts in the scope
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class RequestError(Exception):
    """A request the service refuses: an HTTP status, a message, and the fields at fault."""

    def __init__(self, status: int, message: str, skewed: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.skewed = skewed or []


def body_model(schema: dict[str, str], max_rows: int) -> type[BaseModel]:
    """The request body model, derived from the training signature: `{"rows": [...]}` of
    1..max_rows rows. Datetime columns take ISO 8601 text, numeric ones finite numbers or
    null (null `load_kw` marks a row to forecast). Strict: no field is coerced from another
    JSON type, and an unknown field is refused."""
    from datetime import datetime as datetime_type

    from pydantic import ConfigDict, Field, create_model

    types = {"datetime": datetime_type, "float": float | None, "integer": float | None}
    fields: dict[str, Any] = {
        name: (types.get(skew.kind(dtype), str), ...) for name, dtype in schema.items()
    }
    strict = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    row: Any = create_model("Row", __config__=strict, **fields)
    body: type[BaseModel] = create_model(
        "Body", __config__=strict, rows=(list[row], Field(min_length=1, max_length=max_rows))
    )
    return body


@dataclass(frozen=True)
class Answer:
    """A request's status and JSON content, and what the prediction log keeps of it."""

    status: int
    content: dict[str, Any]
    outputs: list[float] = field(default_factory=list)
    skewed: list[str] = field(default_factory=list)
    rows: int = 0
    inputs: str | None = None  # the body as received, for a served request
    features: str | None = None  # split JSON (predictionlog.split_json)
    implausible: int = 0  # rows whose load no meter of this kind reads


@dataclass(frozen=True)
class Served:
    """One loaded model version; replaced whole on a swap, never changed.

    Requests run the pipeline on NumPy arrays: the feature union's transformers through their
    `transform_arrays` (the code their `transform` runs in training) and, for a few rows, the
    trees as a FlatForest (the estimator's own predictions, bit for bit): a pandas frame per
    request would cost more than the arithmetic. Any other model (a pipeline with
    `train.preprocess` steps, another estimator) gets the features as a frame and runs its
    own steps after the features (`predictor`), as `pipeline.predict` does.
    """

    version: str
    pipeline: Any
    reference: Reference
    body: Any  # the pydantic model of a request body
    transformers: list[Any]
    feature_names: list[str]
    forest: FlatForest | None
    predictor: Any  # the pipeline's steps after the features: preprocessing, the estimator

    def features(self, columns: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """The features of the `rows` positions, every row being history."""
        return np.hstack([t.transform_arrays(columns, rows) for t in self.transformers])

    def predict(self, features: np.ndarray) -> np.ndarray:
        if self.forest is not None and len(features) <= MAX_ROWS:
            return self.forest.predict(features)
        import pandas as pd

        predictions: np.ndarray = self.predictor.predict(
            pd.DataFrame(features, columns=self.feature_names)
        )
        return predictions


def load(params: Params, version: Any) -> Served:
    from powerops.model.reference import load_model_version

    pipeline, reference = load_model_version(params, version)
    return served_model(params, str(version.version), pipeline, reference)


def served_model(params: Params, version: str, pipeline: Any, reference: Reference) -> Served:
    """A fitted pipeline made ready to serve: `features` (a FeatureUnion of powerops.model
    .features transformers), any transformers (`train.preprocess`), then the estimator."""
    from sklearn.pipeline import FeatureUnion, Pipeline

    from powerops.model.forecasting import FEATURES_STEP, predictor_of
    from powerops.serve.flatforest import compile_forest

    steps = pipeline.steps if isinstance(pipeline, Pipeline) else []
    union = steps[0][1] if steps else None
    transformers = [t for _, t in getattr(union, "transformer_list", [])]
    if (
        len(steps) < 2
        or steps[0][0] != FEATURES_STEP
        or not isinstance(union, FeatureUnion)
        or union.transformer_weights
        or not all(hasattr(t, "transform_arrays") for t in transformers)
        or not all(hasattr(step, "transform") for _, step in steps[1:-1])
    ):
        raise ValueError(
            f"model version {version}: serving expects a Pipeline of a FeatureUnion of "
            "powerops.model.features transformers named 'features', any transformers, and "
            f"an estimator, got {pipeline}"
        )
    return Served(
        version=version,
        pipeline=pipeline,
        reference=reference,
        body=body_model(reference.input_schema, params.serve.max_rows),
        transformers=transformers,
        feature_names=[str(name) for name in union.get_feature_names_out()],
        # The trees read the features as they are only when nothing comes between.
        forest=compile_forest(pipeline[-1]) if len(steps) == 2 else None,
        predictor=predictor_of(pipeline),
    )


class ModelHolder:
    """The served model; a background thread follows the `champion` alias. The `previous`
    version (the rollback target) is kept loaded too, so a rollback swaps at the next poll
    instead of waiting for MLflow to load it."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.current: Served | None = None
        self.on_swap: Callable[[Served], None] | None = None
        self._loaded: dict[str, Served] = {}

    def _load(self, version: Any) -> Served:
        key = str(version.version)
        if key not in self._loaded:
            self._loaded[key] = load(self.params, version)
        return self._loaded[key]

    def refresh(self) -> bool:
        """Serve the champion if it is not the one served; True if the model changed."""
        champion = registry.alias_version(self.params, registry.CHAMPION)
        changed = False
        if champion is not None and (
            self.current is None or self.current.version != str(champion.version)
        ):
            loaded = self._load(champion)
            previous = self.current.version if self.current else None
            self.current = loaded  # the swap: one reference assignment
            if self.on_swap is not None:
                self.on_swap(loaded)
            changed = True
            log.warning("serving model version %s (was %s)", loaded.version, previous)
        standby = registry.alias_version(self.params, registry.PREVIOUS)
        if standby is not None:
            self._load(standby)
        keep = {self.current.version if self.current else None}
        keep.add(str(standby.version) if standby is not None else None)
        self._loaded = {k: v for k, v in self._loaded.items() if k in keep}
        return changed

    def follow(self, stop: threading.Event) -> None:
        while not stop.wait(self.params.serve.poll_seconds):
            try:
                self.refresh()
            except Exception:  # keep serving the current model; try again next interval
                log.exception("could not refresh the champion")


class Metrics:
    """The serving SLIs. With several worker processes (`serve.workers`), each process writes
    its values to files in $PROMETHEUS_MULTIPROC_DIR and /metrics adds them up across the
    live workers (prometheus_client's multiprocess mode)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = MULTIPROC_ENV in os.environ
        self.registry = CollectorRegistry()  # what /metrics exposes
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        register = None if self.multiprocess else self.registry
        self.latency = Histogram(
            "powerops_request_latency_seconds",
            "Time to answer a /predict the model served (status 200), from the handler's start.",
            buckets=LATENCY_BUCKETS,
            registry=register,
        )
        self.requests = Counter(
            "powerops_requests", "/predict requests by HTTP status.", ["status"], registry=register
        )
        self.schema_skew = Counter(
            "powerops_schema_skew_rejections",
            "Requests rejected because a field was missing, extra or mistyped, by field.",
            ["field"],
            registry=register,
        )
        # Once per request, however many fields it got wrong: the skew ratio's numerator.
        self.skewed_requests = Counter(
            "powerops_schema_skew_requests",
            "Requests rejected for schema skew (any field).",
            registry=register,
        )
        self._health_counters(register)
        self.predictions = Histogram(
            "powerops_prediction_kw",
            "Forecast values served (kW).",
            buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
            registry=register,
        )
        # A gauge, not an Info (which multiprocess mode lacks): 1 for the version served, 0
        # for one served before in this process.
        self.model = Gauge(
            "powerops_model_info",
            "The model version being served (1); versions served before read 0.",
            ["name", "version"],
            registry=register,
            multiprocess_mode="livemax",
        )
        self._version: tuple[str, str] | None = None

    def _health_counters(self, register: Any) -> None:
        """What the inputs and the prediction log went through."""
        from prometheus_client import Counter, Gauge, Histogram

        self.implausible = Counter(
            "powerops_implausible_rows",
            "Rows served whose load is below 0 or over twice the training maximum.",
            registry=register,
        )
        # Queueing no request's clock sees: how late the event loop wakes a timer.
        self.loop_lag = Histogram(
            "powerops_event_loop_lag_seconds",
            "How late the worker's event loop wakes a 100 ms timer: requests wait this long "
            "before the latency SLI's clock starts.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=register,
        )
        self.log_failures = Counter(
            "powerops_prediction_log_write_failures",
            "Prediction-log writes that failed; their records are held in memory and retried.",
            registry=register,
        )
        self.log_dropped = Counter(
            "powerops_prediction_log_dropped",
            "Held prediction-log records dropped past serve.log_max_buffered (oldest first).",
            registry=register,
        )
        self.log_held = Gauge(
            "powerops_prediction_log_held",
            "Prediction-log records held in memory until the log can be written again.",
            registry=register,
            multiprocess_mode="livesum",
        )

    def serving(self, name: str, version: str) -> None:
        """Record the version now served."""
        if self._version is not None and self._version != (name, version):
            self.model.labels(*self._version).set(0)
        self.model.labels(name, version).set(1)
        self._version = (name, version)


_PROBLEMS = {
    "missing": "missing",
    "extra_forbidden": "not in the model's schema",
    "finite_number": "NaN and infinity are not allowed",
    "float_type": "expected a number or null",
    "datetime_type": "expected an ISO 8601 timestamp string",
    "string_type": "expected a string",
    "model_type": "expected an object",
}


# The one label and log name of every field the model does not know: a client's names would
# make a metric series each, and a log entry as long as the name.
UNKNOWN_FIELD = "unknown_field"
_NAME_CHARS = 64


def _short(name: object) -> str:
    """A client's field name, bounded, for a message."""
    text = str(name)
    return text if len(text) <= _NAME_CHARS else f"{text[:_NAME_CHARS]}... ({len(text)} chars)"


def refusal(error: ValidationError, max_rows: int) -> RequestError:
    """The RequestError for a body the request model refused. Fields the model does not know
    are named (bounded) in the message and counted under one label, UNKNOWN_FIELD."""
    errors = error.errors()
    first = errors[0]
    if first["type"] == "json_invalid":
        return RequestError(400, f"the body is not valid JSON: {first['msg']}")
    for item in errors:
        if item["type"] == "too_long" and item["loc"] == ("rows",):
            rows = item.get("ctx", {}).get("actual_length", "more")
            return RequestError(413, f"{rows} rows; the limit is {max_rows}")
    problems, skewed = [], []
    for item in errors[:10]:
        where, what = item["loc"], _PROBLEMS.get(item["type"], str(item["msg"]))
        if len(where) < 2 and where[:1] in ((), ("rows",)):
            shape = "empty" if item["type"] == "too_short" else 'expected {"rows": [...]}'
            problems.append(f"rows: {shape}")
            skewed.append("rows")
        elif len(where) == 1:
            problems.append(f"{_short(where[0])}: unknown top-level field")
            skewed.append(UNKNOWN_FIELD)
        else:
            field = _short(".".join(str(part) for part in where[2:]))
            problems.append(f"rows[{where[1]}]{'.' if field else ''}{field}: {what}")
            if item["type"] == "extra_forbidden":
                skewed.append(UNKNOWN_FIELD)
            elif item["type"] != "finite_number":
                skewed.append(field or "rows")
    return RequestError(422, "; ".join(problems), sorted(set(skewed)))


def parse(body: bytes, served: Served, params: Params) -> dict[str, np.ndarray]:
    """The request body as the model's input columns, or a RequestError."""
    from pydantic import ValidationError

    try:
        rows = served.body.model_validate_json(body).rows
    except ValidationError as exc:
        raise refusal(exc, params.serve.max_rows) from None
    columns: dict[str, np.ndarray] = {}
    for name, dtype in served.reference.input_schema.items():
        values = [getattr(row, name) for row in rows]
        kind = skew.kind(dtype)
        if kind == "datetime":
            columns[name] = _datetimes(name, values)
        elif kind in ("float", "integer"):
            columns[name] = np.array(values, dtype=np.float64)  # null -> NaN
        else:
            columns[name] = np.array(values, dtype=object)
    return columns


def _datetimes(name: str, values: list[datetime]) -> np.ndarray:
    """Naive datetimes as datetime64[ns]."""
    for number, value in enumerate(values):
        if value.tzinfo is not None:
            message = f"rows[{number}].{name}: naive local time expected, got {value}"
            raise RequestError(422, message)
    microseconds = np.array([(value - _EPOCH) // _MICROSECOND for value in values])
    if len(values) and np.abs(microseconds).max() >= _NS_LIMIT_US:
        number = int(np.abs(microseconds).argmax())
        raise RequestError(
            422, f"rows[{number}].{name}: {values[number]} is outside 1677-09-22..2262-04-11"
        )
    if len(values) and microseconds.max() - microseconds.min() >= _NS_LIMIT_US:
        # Differences of such rows overflow int64 nanoseconds in the transformers.
        raise RequestError(422, f"{name}: the rows span more than 292 years")
    # Repeated timestamps, and ones off the model's grid, are refused by the transformers.
    return (microseconds.astype(np.int64) * 1000).view("datetime64[ns]")


def create_app(params: Params, holder: ModelHolder | None = None) -> FastAPI:
    """The service: /health, /ready, /metrics and /predict around the champion in `holder`."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.concurrency import run_in_threadpool

    holder = holder or ModelHolder(params)
    metrics = Metrics()
    journal = Journal(params, metrics)
    name = params.mlflow.model_name
    holder.on_swap = lambda served: metrics.serving(name, served.version)
    api_key = os.environ.get(params.serve.api_key_env) or None
    app = FastAPI(title="powerops forecasts", lifespan=_lifespan(params, holder, journal, metrics))
    app.add_middleware(Outermost, metrics=metrics, journal=journal)
    app.state.holder, app.state.log, app.state.metrics = holder, journal, metrics

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> JSONResponse:
        served = holder.current
        if served is None:
            return JSONResponse({"ready": False, "reason": "no champion loaded"}, status_code=503)
        return JSONResponse({"ready": True, "model_version": served.version})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = request.scope[CLOCK]  # when the request entered the app (Outermost)
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        served = holder.current  # this request's model, whatever a swap does meanwhile
        try:
            # The key and the declared size are checked before a byte of the body is read.
            admit(request, params, api_key)
            body = await read_body(request, params.serve.max_bytes)
        except RequestError as exc:
            answer = Answer(exc.status, {"detail": exc.message})
        else:
            if len(body) <= INLINE_BYTES:
                # A one-day request costs less CPU than handing it to a worker thread and
                # back. Larger ones run on a worker thread so that the event loop keeps
                # accepting connections and answering /health and /metrics meanwhile.
                answer = answer_request(params, served, body)
            else:
                answer = await run_in_threadpool(answer_request, params, served, body)
        seconds = time.perf_counter() - started
        _count(metrics, journal, request_id, served, answer, seconds)
        request.scope[COUNTED] = True
        version = served.version if served else ""
        content = {"request_id": request_id, "model_version": version} | answer.content
        headers = {"x-request-id": request_id}
        return JSONResponse(content, status_code=answer.status, headers=headers)

    return app


class Outermost:
    """The app's outermost layer (inside only Starlette's last-resort 500 page): it starts each
    request's clock, from which the latency SLI is measured, and counts and logs an error
    that escapes the handler's own boundary (middleware, routing, a bug in the counting
    itself) as the 500 the client gets, in the metrics and the prediction log.

    The clock cannot see what happens before the app gets the request: the kernel's accept
    queue and an event loop busy with other requests. Clients see that too; bench/serve.py
    prints the two p99s side by side (docs/serving.md)."""

    def __init__(self, app: Any, metrics: Metrics, journal: Journal) -> None:
        self.app, self.metrics, self.journal = app, metrics, journal

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[CLOCK] = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        except Exception:
            if scope["path"] == "/predict" and not scope.get(COUNTED):
                log.exception("internal error outside the request's handler")
                seconds = time.perf_counter() - scope[CLOCK]
                failed = Answer(500, {"detail": "internal error"})
                _count(self.metrics, self.journal, uuid.uuid4().hex, None, failed, seconds)
            raise


def _lifespan(params: Params, holder: ModelHolder, journal: Journal, metrics: Metrics) -> Any:
    """Start-up and shut-down of one worker process: load the champion, follow its alias and
    write the prediction log in the background, flush the log on the way out."""
    from contextlib import asynccontextmanager

    from threadpoolctl import threadpool_limits

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        # One OpenMP thread per prediction (train.threads): with more, each of the model's
        # trees waits for threads on every core, and a busy machine slows every request.
        threadpool_limits(limits=params.train.threads)
        if holder.current is None:
            holder.refresh()
        else:  # a holder loaded before the app (tests): its model was not announced yet
            metrics.serving(params.mlflow.model_name, holder.current.version)
        # Start-up leaves hundreds of thousands of long-lived objects (MLflow, pandas, the
        # model); frozen, garbage collections never pause a request to scan them again.
        gc.collect()
        gc.freeze()
        stop = threading.Event()
        threads = [
            threading.Thread(target=holder.follow, args=(stop,), daemon=True),
            threading.Thread(target=journal.follow, args=(stop,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        watch = asyncio.get_running_loop().create_task(_watch_event_loop(metrics))
        try:
            yield
        finally:
            watch.cancel()
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            journal.close()
            if metrics.multiprocess:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    return lifespan


async def _watch_event_loop(metrics: Metrics, tick: float = 0.1) -> None:
    """Observe, every `tick`, how much later than asked the event loop woke up: a loop busy
    with requests makes new ones wait before they are read (Outermost's blind spot)."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(tick)
        metrics.loop_lag.observe(max(0.0, loop.time() - asked - tick))


def _count(
    metrics: Metrics,
    journal: Journal,
    request_id: str,
    served: Served | None,
    answer: Answer,
    seconds: float,
) -> None:
    """One answered request in the metrics and the prediction log."""
    for value in answer.outputs:
        metrics.predictions.observe(value)
    for name in answer.skewed:
        metrics.schema_skew.labels(field=name).inc()
    if answer.skewed:
        metrics.skewed_requests.inc()
    if answer.implausible:
        metrics.implausible.inc(answer.implausible)
    if answer.status == 200:
        # The latency SLI's events are the requests the model answered: fast refusals would
        # pad its denominator (the monitoring SLI reads the log the same way).
        metrics.latency.observe(seconds)
    metrics.requests.labels(status=str(answer.status)).inc()
    journal.add(
        predictionlog.record(
            request_id,
            datetime.now(UTC),
            "online",
            served.version if served else "",
            answer.status,
            seconds * 1000,
            answer.inputs,
            answer.features,
            answer.outputs,
            [f"{name}: {answer.content.get('detail', '')}" for name in answer.skewed],
            rows=answer.rows,
        )
    )


def admit(request: Request, params: Params, api_key: str | None) -> None:
    """Refuse a request before its body is read: a wrong key (401), a declared body over
    `serve.max_bytes` (413), a body that is not JSON (415)."""
    crash_point("serve.admit")
    if api_key and not key_matches(request.headers.get("x-api-key", ""), api_key):
        raise RequestError(401, "missing or wrong X-API-Key")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > params.serve.max_bytes:
        raise RequestError(413, f"body of {declared} bytes; the limit is {params.serve.max_bytes}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise RequestError(415, f"Content-Type must be application/json, got {kind[:40]!r}")


def key_matches(given: str, expected: str) -> bool:
    """A constant-time comparison of the header (Latin-1 as HTTP carries it) with the key."""
    return hmac.compare_digest(given.encode("latin-1"), expected.encode())


async def read_body(request: Request, limit: int) -> bytes:
    """The body, cut off with 413 as soon as it passes `limit` bytes (chunked or lying)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body of more than {limit} bytes; the limit is {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def input_warnings(
    params: Params, served: Served, columns: dict[str, np.ndarray], forecast: np.ndarray
) -> tuple[list[str], int]:
    """What a client should know about an answer it got: history missing before the first
    forecast (the lags read nothing there), a known-in-advance column left null where it
    forecasts, and loads no meter reads (below 0, or over twice the most the model saw in
    training). The warnings, and how many rows were implausible."""
    import pandas as pd

    from powerops.model.forecasting import history_periods

    warnings = []
    period = np.timedelta64(pd.Timedelta(params.table.frequency).value, "ns")
    moments, loads = columns["timestamp"], columns[TARGET]
    first = moments[forecast].min()
    need = history_periods(params)
    given = int(np.sum((moments < first) & (moments >= first - period * need) & ~np.isnan(loads)))
    if given < need:
        warnings.append(
            f"history: {given} of the {need} periods before the first forecast are given; "
            "the features that read the missing ones are empty, and the forecast less accurate"
        )
    for transformer in served.transformers:  # KnownFeatures: the model's table.known
        for name in getattr(transformer, "known", ()):
            if missing := int(np.isnan(columns[name][forecast]).sum()):
                warnings.append(
                    f"{name}: null in {missing} of the {len(forecast)} rows forecast; it is "
                    "known in advance (table.known) and those forecasts read nothing for it"
                )
    profile = served.reference.profile.columns.get(TARGET)
    ceiling = 2 * profile.edges[-1] if profile else np.inf
    known = loads[~np.isnan(loads)]
    implausible = int(np.sum((known < 0) | (known > ceiling)))
    if implausible:
        warnings.append(
            f"{TARGET}: {implausible} values below 0 or above {ceiling:.2f} kW (twice the "
            "training maximum): check the meter's units"
        )
    return warnings, implausible


def answer_request(params: Params, served: Served | None, body: bytes) -> Answer:
    """The answer to an admitted request, with what the prediction log keeps of it."""
    try:
        if served is None:
            raise RequestError(503, "no champion loaded yet")
        columns = parse(body, served, params)
        forecast = np.flatnonzero(np.isnan(columns[TARGET]))
        if not len(forecast):
            raise RequestError(
                422, f"{TARGET}: no row to forecast (rows with {TARGET} null are forecast)"
            )
        try:
            features = served.features(columns, forecast)
        except (ValueError, TypeError) as exc:  # the transformers' own input checks
            raise RequestError(422, f"timestamp: {exc}", []) from None
        crash_point("serve.predict")
        outputs = served.predict(features).tolist()
        when = np.datetime_as_string(columns["timestamp"][forecast], unit="s").tolist()
        predictions = [
            {"timestamp": moment, TARGET: value}
            for moment, value in zip(when, outputs, strict=True)
        ]
        warnings, implausible = input_warnings(params, served, columns, forecast)
        return Answer(
            200,
            {"predictions": predictions} | ({"warnings": warnings} if warnings else {}),
            implausible=implausible,
            outputs=outputs,
            rows=len(columns[TARGET]),
            inputs=body.decode(),  # valid JSON of the model's schema: logged as received
            features=predictionlog.split_json(served.feature_names, forecast.tolist(), features),
        )
    except RequestError as exc:
        return Answer(exc.status, {"detail": exc.message}, skewed=exc.skewed)
    except Exception:
        # The request's error boundary: the traceback goes to the server log, the 500 to the
        # client, the metrics and the prediction log (the availability SLO counts it).
        log.exception("internal error answering a request")
        return Answer(500, {"detail": "internal error; the server log has the traceback"})


def serve(
    params: Params, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """Run the service until interrupted, in `serve.workers` processes."""
    import tempfile

    import uvicorn

    host, port = host or params.serve.host, port or params.serve.port
    workers = workers or params.serve.workers
    if open_without_key(host, os.environ.get(params.serve.api_key_env)):
        print(
            f"warning: serving on {host} without an API key: anyone who can reach this host "
            f"can call /predict; set ${params.serve.api_key_env}, or bind 127.0.0.1",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"serving {params.mlflow.model_name}@champion on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})",
        flush=True,
    )
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning"}
    if workers == 1:
        uvicorn.run(create_app(params), access_log=False, **options)
        return
    # Each worker process loads the champion, follows the alias and writes its own prediction
    # log parts; uvicorn's supervisor restarts a worker that dies. Metrics go through files.
    with tempfile.TemporaryDirectory(prefix="powerops-metrics-") as directory:
        os.environ[MULTIPROC_ENV] = directory
        os.environ[PARAMS_ENV] = params.model_dump_json()
        uvicorn.run(
            f"{__name__}:worker_app", factory=True, workers=workers, access_log=False, **options
        )


def open_without_key(host: str, api_key: str | None) -> bool:
    """True when the service would listen beyond loopback with no API key."""
    import ipaddress

    if api_key:
        return False
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: it may resolve to anything


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn imports this module anew in each)."""
    return create_app(Params.model_validate_json(os.environ[PARAMS_ENV]))
