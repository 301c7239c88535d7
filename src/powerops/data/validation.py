"""Great Expectations gate: run a reviewed suite from `expectations/` against one batch.

Suites are GE 1.x JSON files. Values that depend on the batch (its month, the current time,
the expected row count) are GE suite parameters (`{"$PARAMETER": "month_start"}`) filled in
here, so one suite serves every month. Before validation, the derived columns configured in
params.yaml (cross-column physics checks) are appended to the frame, and the suite run gets a
not-null expectation for each of them.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core import logs
from powerops.core.config import Params, expression_columns
from powerops.core.errors import PowerOpsError
from powerops.core.months import Month
from powerops.core.text import printable

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DERIVED_PREFIX = "derived__"


class BatchReadError(PowerOpsError):
    """A batch file cannot be read at all (truncated, corrupt, not Parquet)."""


class SuiteError(PowerOpsError):
    """A suite file is missing or is not a valid Great Expectations suite."""


@dataclass(frozen=True)
class Failure:
    """One failed expectation, in words: which column, which rule, what was observed."""

    expectation: str
    column: str | None
    rule: str
    observed: str
    notes: str = ""

    def __str__(self) -> str:
        where = f"column `{self.column}`" if self.column else "table"
        return f"{where}: {self.expectation} ({self.rule}): observed {self.observed}"


@dataclass
class ValidationReport:
    """The outcome of validating one batch against one suite."""

    suite: str
    batch: str
    file_sha256: str
    success: bool
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    validated_at: str = ""
    data_docs: str | None = None
    notes: list[str] = field(default_factory=list)  # flagged, not failed (clock changes)

    def summary(self) -> dict[str, Any]:
        """The small record kept in the catalog and in validation and quarantine files."""
        return {
            "suite": self.suite,
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": len(self.failures),
            "validated_at": self.validated_at,
            "data_docs": self.data_docs,
            "file_sha256": self.file_sha256,
            "failures": [str(failure) for failure in self.failures],
            **({"notes": self.notes} if self.notes else {}),
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def message(self) -> str:
        """Every failed expectation on its own line, under a one-line headline."""
        lines = [
            f"batch {self.batch}: {len(self.failures)} of {self.evaluated} expectations of "
            f"suite `{self.suite}` failed"
        ]
        lines += [f"  - {failure}" for failure in self.failures]
        return "\n".join(lines)


def read_batch(path: Path) -> pd.DataFrame:
    """Read a batch file; anything unreadable becomes one `BatchReadError` naming the file."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        repeated = next((name for name in names if names.count(name) > 1), None)
        if repeated is not None:
            raise BatchReadError(
                f"{path.name}: column `{printable(repeated)}` appears {names.count(repeated)} "
                "times in the schema; a repeated column is ambiguous: fix the batch"
            )
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        detail = printable(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        raise BatchReadError(f"{path.name}: not a readable Parquet batch ({detail})") from None


def load_suite_json(params: Params, name: str) -> dict[str, Any]:
    path = params.resolve(params.validation.expectations_dir) / f"{name}.json"
    if not path.is_file():
        raise SuiteError(f"suite `{name}` not found: expected {path}")
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: not valid JSON: {exc}") from None
    return data


def with_derived_columns(frame: pd.DataFrame, derived: dict[str, str]) -> pd.DataFrame:
    """The frame plus each derived column; NaN where an input column is absent or a value is
    not finite, so that the suite's not-null check on the column fails (see `run_suite`)."""
    import numpy as np
    import pandas as pd

    numeric = pd.DataFrame({c: pd.to_numeric(frame[c], errors="coerce") for c in frame.columns})
    columns = {}
    for name, expression in derived.items():
        if expression_columns(expression) <= set(frame.columns):
            # An expression pandas cannot evaluate raises: config checked it, so it is a bug.
            result = numeric.eval(expression, engine="python")
            values = pd.Series(result, index=frame.index, dtype="float64")
            values = values.where(np.isfinite(values))  # inf from a division by zero
        else:
            # The suite's schema expectation names the absent column.
            values = pd.Series(np.nan, index=frame.index, dtype="float64")
        columns[DERIVED_PREFIX + name] = values
    return frame.assign(**columns)


def with_derived_not_null(suite: dict[str, Any], derived: list[str]) -> dict[str, Any]:
    """The suite plus a not-null expectation on each derived column that has none."""
    expectation = "expect_column_values_to_not_be_null"
    present = {
        (item.get("type"), (item.get("kwargs") or {}).get("column"))
        for item in suite.get("expectations", [])
    }
    added = [
        {
            "type": expectation,
            "kwargs": {"column": DERIVED_PREFIX + name},
            "meta": {
                "notes": "Added by powerops for each validation.derived_columns key: a null "
                "means an input column was missing or not a number, or the result was infinite."
            },
        }
        for name in derived
        if (expectation, DERIVED_PREFIX + name) not in present
    ]
    return {**suite, "expectations": [*suite.get("expectations", []), *added]}


def suite_parameters(params: Params, month: Month, now: datetime) -> dict[str, Any]:
    """Per-batch values for the suite's `$PARAMETER`s."""
    import pandas as pd

    config = params.validation
    step = pd.Timedelta(params.source.frequency)
    start = pd.Timestamp(month.start)
    end = pd.Timestamp(month.end)
    covered_start = (
        max(start, pd.Timestamp(config.collection_start)) if config.collection_start else start
    )
    covered_end = (
        min(end, pd.Timestamp(config.collection_end) + step) if config.collection_end else end
    )
    expected = max(0, int((covered_end - covered_start) / step))
    return {
        "month_start": start,
        "month_end": end,
        "now": pd.Timestamp(now.astimezone(UTC).replace(tzinfo=None)),
        "min_rows": max(1, math.ceil(config.min_completeness * expected)),
        "max_rows": int((end - start) / step),
    }


class _SuiteRunner:
    """A Great Expectations context holding one suite, ready to validate many batches.

    Building the context, suite, asset and checkpoint costs about as much as validating a
    month, so a process builds it once per suite and reuses it for every batch.
    """

    def __init__(self, suite_json: str, suite_name: str, docs_dir: str | None) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.checkpoint.actions import UpdateDataDocsAction, ValidationAction
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logs.quiet()  # importing GE set one of its loggers back to INFO
        try:
            suite = gx.ExpectationSuite(**json.loads(suite_json))
        except Exception as exc:  # GE raises several unrelated types for a malformed suite
            raise SuiteError(f"suite `{suite_name}` is not a valid GE suite: {exc}") from None
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        actions: list[ValidationAction] = []
        if docs_dir:
            self.context.add_data_docs_site(
                site_name="powerops",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": docs_dir,
                    },
                    # GE's own builder deletes the pages of other processes' results.
                    "site_index_builder": {
                        "class_name": "KeepingSiteIndexBuilder",
                        "module_name": "powerops.data.gxdocs",
                    },
                },
            )
            actions.append(UpdateDataDocsAction(name="data_docs", site_names=["powerops"]))
        suite = self.context.suites.add(suite)
        asset = self.context.data_sources.add_pandas("powerops").add_dataframe_asset(suite_name)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(
                data=asset.add_batch_definition_whole_dataframe("batch"),
                suite=suite,
                name=suite_name,
            )
        )
        self.checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=suite_name,
                validation_definitions=[definition],
                actions=actions,
                result_format="SUMMARY",
            )
        )
        self.docs = bool(docs_dir)

    def run(
        self, frame: pd.DataFrame, parameters: dict[str, Any], run_name: str, now: datetime
    ) -> tuple[Any, str | None]:
        from great_expectations.core.run_identifier import RunIdentifier

        result = self.checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=run_name, run_time=now),
        )
        identifier, run = next(iter(result.run_results.items()))
        page = None
        if self.docs:
            urls = self.context.get_docs_sites_urls(
                resource_identifier=identifier, site_names=["powerops"]
            )
            page = str(urls[0]["site_url"]).removeprefix("file://") if urls else None
        return run, page


@functools.cache
def _runner(suite_json: str, suite_name: str, docs_dir: str | None) -> _SuiteRunner:
    return _SuiteRunner(suite_json, suite_name, docs_dir)


def run_suite(
    frame: pd.DataFrame,
    params: Params,
    suite_name: str,
    parameters: dict[str, Any],
    run_name: str,
    now: datetime,
    derived_columns: dict[str, str] | None = None,
) -> tuple[Any, str | None]:
    """Validate a frame (plus any derived columns) against a suite with explicit parameters.

    Each derived column must also be non-null: the suite run gets that expectation added.
    Returns GE's validation result and the Data Docs page (relative to the workspace root).
    """
    suite = load_suite_json(params, suite_name)
    if derived_columns:
        # Range checks skip nulls: without this, a NaN derived column would pass them all.
        suite = with_derived_not_null(suite, list(derived_columns))
        frame = with_derived_columns(frame, derived_columns)
    docs_dir = params.validation.data_docs
    # The same suite and derived columns give the same JSON, so the cached runner is reused.
    suite_json = json.dumps(suite)
    runner = _runner(suite_json, suite_name, str(params.resolve(docs_dir)) if docs_dir else None)
    run, page = runner.run(frame, parameters, run_name, now)
    if page and page.startswith(str(params.root)):
        page = os.path.relpath(page, params.root)
    return run, page


def validate_frame(
    frame: pd.DataFrame,
    params: Params,
    suite_name: str,
    month: Month,
    file_sha256: str,
    now: datetime | None = None,
) -> ValidationReport:
    """Run one suite against one batch with Great Expectations, writing Data Docs if configured."""
    now = now or datetime.now(UTC)
    parameters = suite_parameters(params, month, now)
    derived = params.validation.derived_columns
    run, page = run_suite(frame, params, suite_name, parameters, str(month), now, derived)
    report = _report(run, page, suite_name, str(month), file_sha256, now)
    return _with_clock_changes(report, frame, params, month)


def _with_clock_changes(
    report: ValidationReport, frame: pd.DataFrame, params: Params, month: Month
) -> ValidationReport:
    """The batch's readings at its month's clock changes (`source.timezone`), as notes or, with
    `source.dst: quarantine`, as failures."""
    from powerops.data import dst

    found = dst.findings(frame, params, month)
    if params.source.dst == "flag":
        report.notes += found
        return report
    rule = "no readings at a clock change (source.dst: quarantine)"
    stamp = params.source.timestamp_column
    report.failures += [Failure("local_time_clock_change", stamp, rule, text) for text in found]
    report.evaluated += 1
    report.success = report.success and not found
    return report


def _report(
    run: Any, page: str | None, suite: str, batch: str, file_sha256: str, now: datetime
) -> ValidationReport:
    """A GE validation result, in the words and shape powerops keeps."""
    return ValidationReport(
        suite=suite,
        batch=batch,
        file_sha256=file_sha256,
        success=bool(run.success),
        evaluated=len(run.results),
        failures=[_failure(item) for item in run.results if not item.success],
        validated_at=now.isoformat(timespec="seconds"),
        data_docs=page,
    )


_RULE_KEYS = (
    "column_list",
    "column_set",
    "type_",
    "min_value",
    "max_value",
    "strictly",
    "value_set",
    "mostly",
)


def validate_table(
    table: pd.DataFrame,
    params: Params,
    first_reading: datetime,
    last_reading: datetime,
    name: str,
    now: datetime | None = None,
) -> ValidationReport:
    """Check a modelling table with the `table.suite` suite against the readings it came from."""
    import pandas as pd

    now = now or datetime.now(UTC)
    frequency = params.table.frequency
    first = pd.Timestamp(first_reading).floor(frequency)
    last = pd.Timestamp(last_reading).floor(frequency)
    parameters = {
        "first_period": first,
        "last_period": last,
        "expected_rows": int((last - first) / pd.Timedelta(frequency)) + 1,
    }
    suite = params.table.suite
    run, page = run_suite(table, params, suite, parameters, name, now)
    return _report(run, page, suite, name, "", now)


def _failure(item: Any) -> Failure:
    config = item.expectation_config
    kwargs = dict(config.kwargs)
    rule = ", ".join(f"{key}={_short(kwargs[key])}" for key in _RULE_KEYS if key in kwargs)
    if item.exception_info and item.exception_info.get("raised_exception"):
        message = str(item.exception_info.get("exception_message", ""))
        observed = "error: " + _short((message.splitlines() or [""])[0])
    else:
        observed = _observed(item.result or {})
    notes = str((config.meta or {}).get("notes", ""))
    return Failure(config.type, kwargs.get("column"), rule, observed, notes)


def _observed(result: dict[str, Any]) -> str:
    if "observed_value" in result:
        value = result["observed_value"]
        details = result.get("details") or {}
        mismatch = details.get("mismatched")
        if mismatch:
            return f"{_short(value)}; mismatched {_short(mismatch)}"
        return _short(value)
    if "unexpected_count" in result:
        sample = ", ".join(_short(v) for v in (result.get("partial_unexpected_list") or [])[:3])
        count = result["unexpected_count"]
        share = result.get("unexpected_percent")
        share_text = f" ({share:.2f}%)" if isinstance(share, int | float) else ""
        return f"{count:,} unexpected value(s){share_text}" + (f", e.g. {sample}" if sample else "")
    return _short(result)


def _short(value: Any, limit: int = 160) -> str:
    # Observed values come from the batch: a text column may hold anything.
    return printable(str(value), limit)
