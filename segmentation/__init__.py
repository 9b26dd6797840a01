"""Customer segmentation on Apache Spark, Delta Lake and MLflow.

Pure DataFrame transforms live here, one module per stage (ingest, features, ...);
`jobs/` reads config, gets the session, does the I/O and calls them.
"""
