"""powerops: household electricity forecasting run like a production service."""

from powerops.core import logs as _logs

__version__ = "0.1.0"

# Here rather than in each entry point: every process that runs powerops code (Airflow task,
# CLI, `dvc repro`, `make demo`, the server) imports this package first, and it costs nothing.
_logs.quiet()
