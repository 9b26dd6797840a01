"""Entry points: read config, get the SparkSession, read tables, call the library, write tables.

Each stage has one `run_<stage>(cfg, spark)`; the `segment` CLI, the spark-submit scripts
(`python jobs/<stage>.py`) and Databricks wheel tasks all call it.
"""
