"""Customer segmentation on Apache Spark, Delta Lake and MLflow.

The library: pure DataFrame transforms, one module per step of the data flow (ingest,
features, models, sweep, assign, profiles, history, ...); `tables` (every table's contract),
`config` (the typed configuration) and `io` (the only module that touches storage); and
`stages`, one `run_<stage>(cfg, spark)` per command, returning typed results. `cli` parses
arguments and prints those results; `jobs/` holds thin spark-submit scripts that call it.
"""
