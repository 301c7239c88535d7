"""From a dataset version to a registered model: shared transformers (features), the Pipeline
and baselines (forecasting), the pinned test set, the training steps, the registry and its
MLflow store, and the reference a model carries for monitoring (reference, drift, skew).
Uses core and data."""
