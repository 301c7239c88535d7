"""Running it all: the `powerops` command (cli), the workspace lock, the cluster profile's
shared state, `make up` (stack), the test cluster and the Airflow view. Uses every layer."""
