"""The stages: one `run_<stage>(cfg, spark)` per command, returning a frozen result object.

A stage reads its input tables, calls the pure transforms of the library, writes its output
tables and returns what it did (tables written with their Delta versions, counts, the champion,
the assignment id); it prints nothing. The `segment` CLI (`segmentation.cli`), the spark-submit
scripts in `jobs/` and the Databricks wheel tasks all call these functions, and
`run_pipeline` composes their results.
"""
