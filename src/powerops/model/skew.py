"""Training/serving skew, the two kinds monitoring counts.

* **Schema skew**: an input frame whose columns differ from the training signature (a column
  missing, an extra one, or one whose type changed).
* **Feature skew**: the features a prediction was made from differ from what the training-time
  transformers compute from the same inputs (a serving path that computes features its own
  way, a changed library, a stale cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SchemaIssue:
    field: str
    problem: str  # "missing" | "extra" | "retyped"
    expected: str | None
    found: str | None

    def __str__(self) -> str:
        if self.problem == "missing":
            return f"{self.field}: missing (expected {self.expected})"
        if self.problem == "extra":
            return f"{self.field}: not in the training signature (found {self.found})"
        return f"{self.field}: type {self.found}, the training signature has {self.expected}"


def kind(dtype: str) -> str:
    """Types that are interchangeable for the model compare equal: any float width, any
    integer width, any datetime resolution."""
    for prefix, kind in (("float", "float"), ("int", "integer"), ("datetime64", "datetime")):
        if dtype.startswith(prefix):
            return kind
    return dtype


def schema_issues(columns: dict[str, str], expected: dict[str, str]) -> list[SchemaIssue]:
    """Differences between an input's column types and the training signature's."""
    issues = [
        SchemaIssue(name, "missing", dtype, None)
        for name, dtype in expected.items()
        if name not in columns
    ]
    for name, dtype in columns.items():
        if name not in expected:
            issues.append(SchemaIssue(name, "extra", None, dtype))
        elif kind(dtype) != kind(expected[name]):
            issues.append(SchemaIssue(name, "retyped", expected[name], dtype))
    return issues


def frame_schema(frame: pd.DataFrame) -> dict[str, str]:
    return {str(name): str(dtype) for name, dtype in frame.dtypes.items()}


@dataclass(frozen=True)
class FeatureSkew:
    rows: int  # rows compared
    skewed_rows: int  # rows with at least one feature beyond the tolerance
    by_feature: dict[str, int]  # feature -> rows beyond the tolerance
    max_difference: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "skewed_rows": self.skewed_rows,
            "by_feature": self.by_feature,
            "max_difference": self.max_difference,
        }


def feature_skew(
    pipeline: Any, inputs: pd.DataFrame, served: pd.DataFrame, tolerance: float
) -> FeatureSkew:
    """Recompute the features of `inputs` with the pipeline's training-time transformers and
    compare them with the `served` features (same index: the rows that were predicted).
    Both missing counts as equal; one missing, or a difference above `tolerance`, as skew."""
    import numpy as np

    from powerops.model.forecasting import features_of

    recomputed = features_of(pipeline).transform(inputs).loc[served.index]
    by_feature: dict[str, int] = {}
    skewed = np.zeros(len(served), dtype=bool)
    largest = 0.0
    for column in served.columns:
        if column not in recomputed.columns:
            by_feature[str(column)] = len(served)
            skewed[:] = True
            continue
        a = served[column].to_numpy(dtype=np.float64)
        b = recomputed[column].to_numpy(dtype=np.float64)
        both_missing = np.isnan(a) & np.isnan(b)
        difference = np.where(both_missing, 0.0, np.abs(a - b))
        bad = np.isnan(difference) | (difference > tolerance)
        if bad.any():
            by_feature[str(column)] = int(bad.sum())
            skewed |= bad
        finite = difference[np.isfinite(difference)]
        if len(finite):
            largest = max(largest, float(finite.max()))
    return FeatureSkew(len(served), int(skewed.sum()), by_feature, largest)
