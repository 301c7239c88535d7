"""FlatForest predicts exactly what scikit-learn's HistGradientBoostingRegressor predicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from powerops.serve.flatforest import compile_forest


def data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Five features, two with missing values (so splits send NaN both ways), one integer."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5))
    X[:, 3] = rng.integers(0, 24, rows)
    X[rng.random(rows) < 0.2, 1] = np.nan
    X[rng.random(rows) < 0.05, 4] = np.nan
    y = np.abs(X[:, 0] * 2 + np.nan_to_num(X[:, 1]) + np.sin(X[:, 3]) + rng.normal(size=rows))
    return X, y


@pytest.mark.parametrize("loss", ["absolute_error", "squared_error", "poisson"])
def test_predictions_are_identical_to_scikit_learns(loss: str) -> None:
    X, y = data(3000)
    with threadpool_limits(1):
        model = HistGradientBoostingRegressor(loss=loss, max_iter=60, random_state=0).fit(X, y)
    forest = compile_forest(model)
    assert forest is not None
    unseen, _ = data(64, seed=1)
    unseen[:8] = np.nan  # every feature missing
    # Values exactly on split thresholds: `<=` must send them left, as scikit-learn does.
    nodes = np.concatenate([iteration[0].nodes for iteration in model._predictors])
    splits = nodes[(nodes["is_leaf"] == 0) & (nodes["feature_idx"] == 0)]["num_threshold"][:32]
    assert len(splits) == 32
    unseen[8:40, 0] = splits
    for rows in (unseen[:1], unseen[:24], unseen):
        np.testing.assert_array_equal(forest.predict(rows), model.predict(rows))


def test_a_served_sized_model_agrees_on_every_row_of_its_training_data() -> None:
    X, y = data(2000, seed=2)
    with threadpool_limits(1):
        model = HistGradientBoostingRegressor(
            loss="absolute_error", max_iter=200, max_leaf_nodes=31, random_state=0
        ).fit(X, y)
    forest = compile_forest(model)
    assert forest is not None and forest.depth > 5
    np.testing.assert_array_equal(forest.predict(X), model.predict(X))


def test_models_it_does_not_cover_get_none() -> None:
    X, y = data(500)
    with threadpool_limits(1):
        categorical = HistGradientBoostingRegressor(
            max_iter=10, categorical_features=[3], random_state=0
        ).fit(X, y)
        classifier = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(
            X, (y > np.median(y)).astype(int) + (y > np.percentile(y, 90))
        )
    assert compile_forest(categorical) is None
    assert compile_forest(classifier) is None
    assert compile_forest(Ridge().fit(np.nan_to_num(X), y)) is None
    assert compile_forest(HistGradientBoostingRegressor()) is None  # not fitted
