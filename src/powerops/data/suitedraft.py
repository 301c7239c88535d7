"""`powerops suite draft`: a new meter's two suites, drafted from its file for review.

Reads the source as params.yaml describes it and writes, in `validation.expectations_dir`:
- the raw suite (`validation.raw_suite`): the columns in order, their types, completeness,
  unique and increasing timestamps inside the batch's month, and each column's observed range
  widened by a margin (or its observed values, for a column of a few whole numbers);
- the table suite (`table.suite`): the modelling table's schema and grid, the target's range
  from the hourly (`table.frequency`) means of this file, widened the same way, and coverage.

It also prints what it measured for params.yaml: the readings' frequency, the first and last
reading (`validation.collection_start`/`collection_end`), the lowest monthly completeness.
A draft is a starting point: every range is what this file shows, not what the meter can do.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.errors import PowerOpsError
from powerops.core.faults import crash_point
from powerops.core.storage import atomic_write_text
from powerops.data.source import read_source
from powerops.data.table import TARGET, exogenous_columns, table_for
from powerops.data.validation import with_derived_columns

if TYPE_CHECKING:
    import pandas as pd

    from powerops.core.config import Params

# A column with at most this many distinct whole-number values is a code (a flag, a
# category): its suite lists the values instead of a range.
MAX_CODES = 10


class DraftError(PowerOpsError):
    """The draft cannot be written (a suite exists, or the file is empty)."""


@dataclass
class Draft:
    """The two suites and what the file showed."""

    raw: dict[str, Any]
    table: dict[str, Any]
    findings: list[str] = field(default_factory=list)
    columns_yaml: str = ""  # a dataset.columns draft, for the user to fill in units


def _expect(kind: str, notes: str = "", **kwargs: Any) -> dict[str, Any]:
    """One expectation; `notes` (what the file showed) reach Data Docs and failure messages."""
    found: dict[str, Any] = {"type": f"expect_{kind}", "kwargs": kwargs}
    if notes:
        found["meta"] = {"notes": notes}
    return found


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _bounds(values: pd.Series, margin: float) -> tuple[float, float]:
    """The observed range widened by `margin` of its span on each side (by `margin` of the
    value when the span is 0); a column never seen negative stays at 0 or above."""
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * margin or abs(high) * margin or margin
    lower = low - pad
    if low >= 0:
        lower = max(0.0, lower)
    return _round(lower, up=False), _round(high + pad, up=True)


def _round(value: float, up: bool) -> float:
    """A bound a reviewer reads easily, four significant digits, rounded outwards so that it
    never excludes a value the file shows."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    decimals = 3 - math.floor(math.log10(abs(value)))
    scale = 10.0**decimals
    rounded = (math.ceil if up else math.floor)(value * scale) / scale
    return round(rounded, max(decimals, 0))


def _column_expectations(frame: pd.DataFrame, column: str, margin: float) -> list[dict[str, Any]]:
    """Type, completeness, range (or codes) and a not-stuck check for one value column."""
    values = frame[column].dropna()
    present = len(values) / len(frame) if len(frame) else 0.0
    checks = [_expect("column_values_to_be_of_type", column=column, type_="float64")]
    if present >= 1.0:
        checks.append(_expect("column_values_to_not_be_null", column=column))
    else:  # as complete as this file, rounded down to a whole percent
        mostly = int(present * 100) / 100
        notes = f"{present:.2%} of the file's readings have a value"
        checks.append(_expect("column_values_to_not_be_null", notes, column=column, mostly=mostly))
    if values.empty:
        return checks
    distinct = values.unique()
    if len(distinct) <= MAX_CODES and (distinct == distinct.round()).all():
        codes = sorted(float(v) for v in distinct)
        notes = "a code: the only values the file shows"
        checks.append(_expect("column_values_to_be_in_set", notes, column=column, value_set=codes))
    else:
        low, high = _bounds(values, margin)
        notes = f"the file shows {values.min():.4g} .. {values.max():.4g}, widened by {margin:.0%}"
        checks.append(
            _expect(
                "column_values_to_be_between", notes, column=column, min_value=low, max_value=high
            )
        )
    if len(distinct) >= 2:
        checks.append(
            _expect("column_unique_value_count_to_be_between", column=column, min_value=2)
        )
    return checks


def raw_suite(frame: pd.DataFrame, params: Params, margin: float) -> dict[str, Any]:
    """The raw batch suite for readings like `frame` (the whole source, derived columns added)."""
    stamp = params.source.timestamp_column
    derived = [f"derived__{name}" for name in params.validation.derived_columns]
    columns = [stamp, *params.source.columns, *derived]
    expectations = [
        _expect("table_columns_to_match_ordered_list", column_list=columns),
        _expect(
            "table_row_count_to_be_between",
            min_value=_param("min_rows"),
            max_value=_param("max_rows"),
        ),
        _expect("column_values_to_be_of_type", column=stamp, type_="datetime64"),
        _expect("column_values_to_not_be_null", column=stamp),
        _expect("column_values_to_be_unique", column=stamp),
        _expect("column_values_to_be_increasing", column=stamp, strictly=True),
        _expect(
            "column_values_to_be_between",
            column=stamp,
            min_value=_param("month_start"),
            max_value=_param("month_end"),
            strict_max=True,
        ),
        _expect("column_max_to_be_between", column=stamp, max_value=_param("now")),
    ]
    for column in columns[1:]:
        expectations += _column_expectations(frame, column, margin)
    return {
        "name": params.validation.raw_suite,
        "meta": {
            "notes": (
                f"Drafted by `powerops suite draft` from {len(frame):,} readings of "
                f"{params.source_path().name} (ranges widened by {margin:.0%} of their span; "
                "a column never negative here stays at 0 or above: widen it for one that can "
                "be, a temperature say); review before committing. Suite parameters "
                "(month_start, month_end, now, min_rows, max_rows) are supplied per batch by "
                "powerops."
            )
        },
        "expectations": expectations,
    }


def table_suite(table: pd.DataFrame, params: Params, margin: float) -> dict[str, Any]:
    """The modelling-table suite: schema, a regular grid, the target's range, coverage."""
    low, high = _bounds(table[TARGET].dropna(), margin)
    expectations = [
        _expect(
            "table_columns_to_match_ordered_list",
            column_list=["timestamp", TARGET, "coverage", *exogenous_columns(params)],
        ),
        _expect("table_row_count_to_equal", value=_param("expected_rows")),
        _expect("column_values_to_be_of_type", column="timestamp", type_="datetime64"),
        _expect("column_values_to_be_of_type", column=TARGET, type_="float64"),
        _expect("column_values_to_be_of_type", column="coverage", type_="float64"),
        *(
            _expect("column_values_to_not_be_null", column=c)
            for c in ("timestamp", TARGET, "coverage")
        ),
        _expect("column_values_to_be_unique", column="timestamp"),
        _expect("column_values_to_be_increasing", column="timestamp", strictly=True),
        _expect(
            "column_min_to_be_between",
            column="timestamp",
            min_value=_param("first_period"),
            max_value=_param("first_period"),
        ),
        _expect(
            "column_max_to_be_between",
            column="timestamp",
            min_value=_param("last_period"),
            max_value=_param("last_period"),
        ),
        _expect(
            "column_values_to_be_between",
            f"the file's {params.table.frequency} means span {table[TARGET].min():.4g} .. "
            f"{table[TARGET].max():.4g}, widened by {margin:.0%}",
            column=TARGET,
            min_value=low,
            max_value=high,
        ),
        _expect("column_values_to_be_between", column="coverage", min_value=0, max_value=1),
        _expect(
            "column_values_to_be_between",
            column="coverage",
            min_value=0.5,
            max_value=1,
            mostly=0.99,
        ),
        _expect("column_unique_value_count_to_be_between", column=TARGET, min_value=2),
    ]
    for name in exogenous_columns(params):  # table.known and table.observed
        expectations += _column_expectations(table, name, margin)
    notes = (
        f"Drafted by `powerops suite draft`: {TARGET} is the {params.table.frequency} mean of "
        f"`{params.table.target_column}` ({params.dataset.target_unit}); its range is this "
        f"file's, widened by {margin:.0%}. Suite parameters expected_rows, first_period and "
        "last_period are supplied by powerops."
    )
    return {"name": params.table.suite, "meta": {"notes": notes}, "expectations": expectations}


def _findings(frame: pd.DataFrame, params: Params) -> list[str]:
    """What the file shows about the keys params.yaml sets by hand."""
    import pandas as pd

    stamp = frame[params.source.timestamp_column]
    steps = stamp.diff().dropna()
    step = steps.mode().iloc[0] if not steps.empty else None
    configured = pd.Timedelta(params.source.frequency)
    found = [
        f"readings {stamp.min()} .. {stamp.max()}: {len(frame):,} rows",
        f"most common step {_frequency(step)} (source.frequency is {params.source.frequency}"
        + ("" if step == configured else ": CHECK IT")
        + ")",
    ]
    if (duplicates := int(stamp.duplicated().sum())) > 0:
        found.append(f"{duplicates:,} duplicate timestamps: the raw suite will refuse them")
    monthly = frame.groupby(stamp.dt.to_period("M")).size()
    expected = {
        month: (month.end_time.ceil("min") - month.start_time) / configured
        for month in monthly.index
    }
    inner = monthly.iloc[1:-1] if len(monthly) > 2 else monthly
    if not inner.empty:
        worst = min(inner.index, key=lambda m: inner[m] / expected[m])
        found.append(
            f"lowest completeness of a full month: {inner[worst] / expected[worst]:.1%} "
            f"({worst}; validation.min_completeness is {params.validation.min_completeness})"
        )
    found.append(
        f'first and last reading for validation.collection_start/_end: "{stamp.min()}", '
        f'"{stamp.max()}"'
    )
    return found


def _frequency(step: pd.Timedelta | None) -> str:
    """A step in params.yaml's words (`30min`, `1h`); `none` for a single reading."""
    from pandas.tseries.frequencies import to_offset

    if step is None:
        return "none"
    text = str(to_offset(step).freqstr)
    return text if text[0].isdigit() else f"1{text}"


def draft(params: Params, margin: float = 0.2) -> Draft:
    """Draft both suites from the whole source file."""
    frame = read_source(params.source_path(), params.source)
    if frame.empty:
        raise DraftError(f"{params.source_path()}: the source has no rows to draft from")
    frame = with_derived_columns(frame, params.validation.derived_columns)
    table = table_for(params, frame)
    return Draft(
        raw=raw_suite(frame, params, margin),
        table=table_suite(table, params, margin),
        findings=_findings(frame, params),
        columns_yaml=_columns_yaml(frame, params),
    )


def _columns_yaml(frame: pd.DataFrame, params: Params) -> str:
    """`dataset.columns` as YAML, each column described by what the file shows."""
    stamp = params.source.timestamp_column
    lines = [
        f'  - {{name: {stamp}, unit: "", description: "{frame[stamp].min()} .. '
        f'{frame[stamp].max()}"}}'
    ]
    for column in params.source.columns:
        values = frame[column]
        lines.append(
            f'  - {{name: {column}, unit: "", description: "observed {values.min():.4g} .. '
            f'{values.max():.4g}"}}'
        )
    return "dataset:\n  columns:\n" + "\n".join(lines) + "\n"


def suite_paths(params: Params) -> tuple[Path, Path]:
    folder = params.resolve(params.validation.expectations_dir)
    return folder / f"{params.validation.raw_suite}.json", folder / f"{params.table.suite}.json"


def write(result: Draft, params: Params, force: bool = False) -> list[Path]:
    """Write both suites, each atomically; refuse to replace a suite that says something else
    unless `force` (the same draft again, after a crash between the two, is rewritten)."""
    texts = [
        json.dumps(suite, indent=2, default=str) + "\n" for suite in (result.raw, result.table)
    ]
    paths = suite_paths(params)
    if not force:
        edited = [p for p, t in zip(paths, texts, strict=True) if p.exists() and p.read_text() != t]
        if edited:
            names = ", ".join(str(p) for p in edited)
            raise DraftError(f"{names}: already exists; review it, or pass --force to replace it")
    for path, text in zip(paths, texts, strict=True):
        crash_point("suite_draft.write")
        atomic_write_text(path, text)
    return list(paths)
