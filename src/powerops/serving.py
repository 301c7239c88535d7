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
  is not JSON a 400.
* The `champion` alias is polled every `serve.poll_seconds`; a new champion is loaded beside
  the old one and swapped in with one assignment. A request uses the model it started with, so
  a swap never fails or mixes a request in flight.
* `/metrics` (Prometheus), `/health` (the process is up), `/ready` (a model is loaded).
* Every request is appended to the prediction log (`powerops.predictionlog`), which
  monitoring reads for latency, schema skew and feature skew.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from powerops import predictionlog, registry, skew
from powerops.config import Params

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import BaseModel

    from powerops.reference import Reference

log = logging.getLogger(__name__)

TARGET = "load_kw"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class RequestError(Exception):
    """A request the service refuses: an HTTP status, a message, and the fields at fault."""

    def __init__(self, status: int, message: str, skewed: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.skewed = skewed or []


def _iso_timestamp(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 timestamp string")
    return value


def _number(value: Any) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("expected a number or null")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinity are not allowed")
    return value


def row_model(schema: dict[str, str]) -> type[BaseModel]:
    """The request row model, derived from the training signature: datetime columns take ISO
    strings, numeric ones finite numbers or null (null `load_kw` marks a row to forecast)."""
    from datetime import datetime as datetime_type

    from pydantic import BeforeValidator, ConfigDict, create_model

    fields: dict[str, Any] = {}
    for name, dtype in schema.items():
        kind = skew.kind(dtype)
        if kind == "datetime":
            fields[name] = (Annotated[datetime_type, BeforeValidator(_iso_timestamp)], ...)
        elif kind in ("float", "integer"):
            fields[name] = (Annotated[float | None, BeforeValidator(_number)], ...)
        else:
            fields[name] = (str, ...)
    model: type[BaseModel] = create_model("Row", __config__=ConfigDict(extra="forbid"), **fields)
    return model


@dataclass(frozen=True)
class Served:
    """One loaded model version; replaced whole on a swap, never changed."""

    version: str
    pipeline: Any
    reference: Reference
    rows: Any  # pydantic TypeAdapter of list[Row]
    loaded_at: float


def load(params: Params, version: Any) -> Served:
    from pydantic import TypeAdapter

    from powerops.reference import load_model_version

    pipeline, reference = load_model_version(params, version)
    row: Any = row_model(reference.input_schema)
    adapter: Any = TypeAdapter(list[row])
    return Served(str(version.version), pipeline, reference, adapter, time.time())


class ModelHolder:
    """The served model; a background thread follows the `champion` alias. The `previous`
    version (the rollback target) is kept loaded too, so a rollback swaps at the next poll
    instead of waiting for MLflow to load it."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.current: Served | None = None
        self.swaps = 0
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
            self.swaps += 1
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


class LogBuffer:
    """Prediction log records, written in batches by a background thread."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)

    def flush(self) -> int:
        with self._lock:
            records, self._records = self._records, []
        if records:
            predictionlog.append(self.params, records)
        return len(records)

    def follow(self, stop: threading.Event) -> None:
        while not stop.wait(self.params.serve.log_flush_seconds):
            try:
                self.flush()
            except Exception:
                log.exception("could not write the prediction log")


class Metrics:
    """The serving SLIs, in their own Prometheus registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, Info

        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "powerops_request_latency_seconds",
            "Time to answer /predict, from the body read to the response.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "powerops_requests",
            "/predict requests by HTTP status.",
            ["status"],
            registry=self.registry,
        )
        self.schema_skew = Counter(
            "powerops_schema_skew_rejections",
            "Requests rejected because a field was missing, extra or mistyped, by field.",
            ["field"],
            registry=self.registry,
        )
        self.predictions = Histogram(
            "powerops_prediction_kw",
            "Forecast values served (kW).",
            buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
            registry=self.registry,
        )
        self.model = Info(
            "powerops_model", "The model version being served.", registry=self.registry
        )


def parse(body: bytes, served: Served, params: Params) -> pd.DataFrame:
    """The request body as the model's input frame, or a RequestError."""
    import pandas as pd
    from pydantic import ValidationError

    if len(body) > params.serve.max_bytes:
        raise RequestError(413, f"body of {len(body)} bytes; the limit is {params.serve.max_bytes}")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise RequestError(422, 'rows: expected {"rows": [...]}', ["rows"])
    if extra := sorted(set(document) - {"rows"}):
        raise RequestError(422, f"{extra[0]}: unknown top-level field", extra)
    rows = document["rows"]
    if not rows:
        raise RequestError(422, "rows: empty", ["rows"])
    if len(rows) > params.serve.max_rows:
        raise RequestError(413, f"{len(rows)} rows; the limit is {params.serve.max_rows}")
    try:
        parsed = served.rows.validate_python(rows)
    except ValidationError as exc:
        problems, skewed = [], []
        for error in exc.errors()[:10]:
            where = ".".join(str(part) for part in error["loc"][1:]) or "row"
            field = str(error["loc"][-1]) if len(error["loc"]) > 1 else "row"
            what = {"missing": "missing", "extra_forbidden": "not in the model's schema"}.get(
                error["type"], str(error["msg"]).removeprefix("Value error, ")
            )
            problems.append(f"rows[{error['loc'][0]}].{where}: {what}")
            if "NaN" not in what:
                skewed.append(field)
        raise RequestError(422, "; ".join(problems), sorted(set(skewed))) from None
    schema = served.reference.input_schema
    records = [row.model_dump() for row in parsed]
    for number, record in enumerate(records):
        for name, value in record.items():
            if isinstance(value, datetime) and value.tzinfo is not None:
                raise RequestError(
                    422, f"rows[{number}].{name}: naive local time expected, got {value}", []
                )
    frame = pd.DataFrame(records, columns=list(schema)).astype(schema)
    for name, dtype in schema.items():
        if skew.kind(dtype) == "datetime" and frame[name].duplicated().any():
            first = frame.loc[frame[name].duplicated(), name].iloc[0]
            raise RequestError(422, f"{name}: {first} appears more than once", [])
    return frame


def create_app(params: Params, holder: ModelHolder | None = None) -> FastAPI:
    from contextlib import asynccontextmanager

    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.concurrency import run_in_threadpool
    from threadpoolctl import threadpool_limits

    holder = holder or ModelHolder(params)
    buffer = LogBuffer(params)
    metrics = Metrics()
    stop = threading.Event()
    api_key = os.environ.get(params.serve.api_key_env) or None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        # One OpenMP thread per prediction (train.threads): with the default, each of the
        # model's trees waits for threads on every core, and a busy machine made one request
        # take 107 ms instead of 4.9 ms (measured by bench/serve.py's author).
        threadpool_limits(limits=params.train.threads)
        if holder.current is None:
            holder.refresh()
        threads = [
            threading.Thread(target=holder.follow, args=(stop,), daemon=True),
            threading.Thread(target=buffer.follow, args=(stop,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            buffer.flush()

    app = FastAPI(title="powerops forecasts", lifespan=lifespan)
    app.state.holder, app.state.log, app.state.metrics = holder, buffer, metrics

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
        served = holder.current
        if served is not None:
            metrics.model.info({"version": served.version, "name": params.mlflow.model_name})
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        served = holder.current  # this request's model, whatever a swap does meanwhile
        version = served.version if served else ""
        body = await request.body()
        # The CPU work runs on a worker thread: the event loop keeps accepting connections
        # and answering /health and /metrics meanwhile.
        status, answer, inputs, features, outputs, skewed = await run_in_threadpool(
            answer_request, served, body, request.headers.get("x-api-key", "")
        )
        answer = {"request_id": request_id, "model_version": version} | answer
        for value in outputs or []:
            metrics.predictions.observe(value)
        for field in skewed:
            metrics.schema_skew.labels(field=field).inc()
        seconds = time.perf_counter() - started
        metrics.latency.observe(seconds)
        metrics.requests.labels(status=str(status)).inc()
        buffer.add(
            predictionlog.record(
                request_id,
                datetime.now(UTC),
                "online",
                version,
                status,
                seconds * 1000,
                inputs if status == 200 else None,
                features,
                outputs,
                [f"{field}: {answer.get('detail', '')}" for field in skewed],
            )
        )
        return JSONResponse(answer, status_code=status, headers={"x-request-id": request_id})

    def answer_request(served: Served | None, body: bytes, key: str) -> tuple[Any, ...]:
        """(status, answer, inputs, features, outputs, skewed fields) for one request."""
        inputs = features = outputs = None
        try:
            if api_key and not hmac.compare_digest(key, api_key):
                raise RequestError(401, "missing or wrong X-API-Key")
            if served is None:
                raise RequestError(503, "no champion loaded yet")
            inputs = parse(body, served, params)
            forecast = inputs[TARGET].isna()
            if not forecast.any():
                raise RequestError(
                    422, f"{TARGET}: no row to forecast (rows with {TARGET} null are forecast)"
                )
            try:
                features = served.pipeline[:-1].transform(inputs).loc[forecast]
                outputs = [float(v) for v in served.pipeline[-1].predict(features)]
            except (ValueError, TypeError) as exc:  # the transformers' own input checks
                raise RequestError(422, f"timestamp: {exc}", []) from None
            predictions = [
                {"timestamp": when.isoformat(), TARGET: value}
                for when, value in zip(inputs.loc[forecast, "timestamp"], outputs, strict=True)
            ]
            return 200, {"predictions": predictions}, inputs, features, outputs, []
        except RequestError as exc:
            return exc.status, {"detail": exc.message}, inputs, None, None, exc.skewed

    return app


def serve(params: Params, host: str | None = None, port: int | None = None) -> None:
    """Run the service until interrupted."""
    import uvicorn

    app = create_app(params)
    host, port = host or params.serve.host, port or params.serve.port
    print(f"serving {params.mlflow.model_name}@champion on http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
