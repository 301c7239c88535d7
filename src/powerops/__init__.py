"""powerops: household electricity forecasting run like a production service."""

__version__ = "0.1.0"
