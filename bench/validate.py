"""Benchmark: the raw_batch suite through Great Expectations, against the same rules in pandas.

Validates one month (2008-03, 44,640 rows) and the whole 2.07M-row history as one batch. The
baseline interprets the same suite JSON with vectorised pandas, so both sides check exactly
the same rules; it is measured in the same run, and the ratio is the figure to compare.

    make bench-validate      # or: .venv/bin/python bench/validate.py [--repeat 3]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from powerops.core.config import Params, load_params
from powerops.core.months import Month
from powerops.data.source import SourceFeed
from powerops.data.validation import (
    load_suite_json,
    run_suite,
    suite_parameters,
    with_derived_columns,
)
from timing import best_of

REPO = Path(__file__).resolve().parents[1]


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    return parameters[value["$PARAMETER"]] if isinstance(value, dict) else value


def pandas_rules(
    frame: pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any]
) -> list[bool]:
    """The suite's expectations, evaluated with vectorised pandas: one bool per expectation."""
    outcomes = []
    for expectation in suite["expectations"]:
        kind, kw = expectation["type"], expectation["kwargs"]
        column = frame[kw["column"]] if "column" in kw else None
        lo = _resolve(kw.get("min_value"), parameters)
        hi = _resolve(kw.get("max_value"), parameters)
        if kind == "expect_table_columns_to_match_ordered_list":
            ok = list(frame.columns) == kw["column_list"]
        elif kind == "expect_table_row_count_to_be_between":
            ok = lo <= len(frame) <= hi
        elif kind == "expect_column_values_to_be_of_type":
            ok = str(column.dtype).startswith(kw["type_"])
        elif kind == "expect_column_values_to_not_be_null":
            ok = not column.isna().any()
        elif kind == "expect_column_values_to_be_unique":
            ok = column.is_unique
        elif kind == "expect_column_values_to_be_increasing":
            ok = column.is_monotonic_increasing and column.is_unique
        elif kind == "expect_column_values_to_be_between":
            above = column >= lo if lo is not None else True
            below = (
                (column < hi if kw.get("strict_max") else column <= hi) if hi is not None else True
            )
            ok = bool((above & below | column.isna()).all())
        elif kind == "expect_column_max_to_be_between":
            ok = column.max() <= hi
        elif kind == "expect_column_unique_value_count_to_be_between":
            ok = column.nunique() >= lo
        else:
            raise ValueError(f"no pandas version of {kind}")
        outcomes.append(bool(ok))
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case; best is kept")
    args = parser.parse_args()
    params: Params = load_params(REPO / "params.yaml")
    params = params.model_copy(
        update={"validation": params.validation.model_copy(update={"data_docs": None})}
    )
    suite = load_suite_json(params, params.validation.raw_suite)
    feed = SourceFeed(params.source_path(), params.source, progress=False)
    now = datetime.now(UTC)
    month = Month(2008, 3)
    history = feed.frame
    cases = {
        "one month (2008-03)": (feed.month(month), suite_parameters(params, month, now)),
        "whole history": (
            history,
            {
                "month_start": history["date_time"].iloc[0],
                "month_end": history["date_time"].iloc[-1] + pd.Timedelta("1min"),
                "now": pd.Timestamp(now.replace(tzinfo=None)),
                "min_rows": 1,
                "max_rows": len(history),
            },
        ),
    }
    # Warm up: GE's import and context are paid once per process, not per batch.
    derived = params.validation.derived_columns
    month_frame, month_parameters = cases["one month (2008-03)"]
    run_suite(month_frame, params, "raw_batch", month_parameters, "warmup", now, derived)
    print(f"suite raw_batch: {len(suite['expectations'])} expectations; best of {args.repeat}")
    print(
        f"{'case':<22} {'rows':>10} {'GE s':>8} {'pandas s':>9} {'GE / pandas':>12}  same verdict"
    )
    for name, (frame, parameters) in cases.items():
        ge_s, (run, _) = best_of(
            args.repeat,
            lambda f=frame, p=parameters: run_suite(f, params, "raw_batch", p, "b", now, derived),
        )
        pd_s, outcomes = best_of(
            args.repeat,
            lambda f=frame, p=parameters: pandas_rules(
                with_derived_columns(f, params.validation.derived_columns), suite, p
            ),
        )
        same = bool(run.success) == all(outcomes)
        print(
            f"{name:<22} {len(frame):>10,} {ge_s:>8.2f} {pd_s:>9.3f} {ge_s / pd_s:>12.1f}  {same}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
