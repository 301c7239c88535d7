"""A fitted HistGradientBoostingRegressor's trees as flat NumPy arrays, evaluated in lockstep:
the same predictions, bit for bit, for a fraction of the time on a few rows.

scikit-learn predicts tree by tree: one compiled call per tree, about 15 us each, so 200 trees
cost ~3 ms whatever the number of rows. The online service forecasts 1 to 24 rows a request,
where that per-tree overhead is nearly all the cost. Here every tree's nodes sit in one set of
arrays, and all trees descend one level per step for all rows at once: about 20 NumPy steps
for the deepest tree instead of 200 calls (docs/benchmarks.md). For many rows the per-tree
loop wins again, so callers use `predict` only up to `MAX_ROWS`.

The descent follows scikit-learn's own rule (sklearn/ensemble/_hist_gradient_boosting/
_predictor.pyx): a missing value goes where `missing_go_to_left` says, any other value left
when `value <= num_threshold`. The leaf values are summed in tree order starting from the
baseline, as scikit-learn adds them, so the sums are identical, not merely close.

It reads the estimator's private fitted attributes (`_predictors`, `_baseline_prediction`,
`_loss`), which the pinned scikit-learn version defines; tests/unit/test_flatforest.py checks
the predictions against `estimator.predict` so an upgrade that changes them fails loudly.
Models it does not cover (categorical splits, several trees per iteration, any other
estimator) get None from `compile_forest`, and the caller uses the estimator itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_ROWS = 32  # above this, scikit-learn's per-tree loop is as fast (docs/benchmarks.md)


@dataclass(frozen=True)
class FlatForest:
    """All trees' nodes in flat arrays; node numbers are global, a leaf is its own child."""

    feature: npt.NDArray[np.intp]
    threshold: npt.NDArray[np.float64]
    missing_left: npt.NDArray[np.bool_]
    children: npt.NDArray[np.intp]  # (nodes, 2): the left child, the right child
    value: npt.NDArray[np.float64]
    roots: npt.NDArray[np.intp]
    depth: int
    baseline: float
    inverse_link: Any  # raw prediction -> prediction (the identity for absolute error)

    def predict(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The estimator's predictions of the rows of X (n, features)."""
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots)))
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            right = ~((x <= self.threshold[node]) | (self.missing_left[node] & np.isnan(x)))
            node = self.children[node, right.view(np.int8)]
        # Cumulative sums add left to right: ((baseline + tree 1) + tree 2) + ..., the order
        # scikit-learn adds its trees in.
        leaves = np.column_stack([np.full(len(X), self.baseline), self.value[node]])
        raw = np.cumsum(leaves, axis=1)[:, -1]
        predictions: npt.NDArray[np.float64] = self.inverse_link(raw)
        return predictions


def compile_forest(estimator: Any) -> FlatForest | None:
    """The estimator's trees as a FlatForest, or None for a model it does not cover."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if not isinstance(estimator, HistGradientBoostingRegressor):
        return None
    predictors = getattr(estimator, "_predictors", None)
    if not predictors or any(len(iteration) != 1 for iteration in predictors):
        return None
    nodes_of = [iteration[0].nodes for iteration in predictors]
    nodes = np.concatenate(nodes_of)
    if nodes["is_categorical"].any():
        return None
    sizes = np.array([len(tree) for tree in nodes_of])
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    offset = np.repeat(roots, sizes)
    leaf = nodes["is_leaf"].astype(bool)
    number = np.arange(len(nodes), dtype=np.intp)
    left = np.where(leaf, number, nodes["left"].astype(np.intp) + offset)
    right = np.where(leaf, number, nodes["right"].astype(np.intp) + offset)
    return FlatForest(
        feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        children=np.stack([left, right], axis=1),
        value=nodes["value"].astype(np.float64),
        roots=roots,
        depth=int(nodes["depth"].max()),
        baseline=float(np.ravel(estimator._baseline_prediction)[0]),
        inverse_link=estimator._loss.link.inverse,
    )
