"""Watching the champion and the data: drift, outliers, skew, live error, SLOs, burn-rate
alerts (monitoring) and the HTML report. Uses core, data, model and serve."""
