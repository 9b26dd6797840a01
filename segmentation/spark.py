"""The one place that creates a SparkSession.

Under spark-submit or on Databricks a session (or its gateway) already exists and owns
master, memory and cluster settings: we return it untouched. With a Spark Connect server
named (`SPARK_REMOTE`, or `spark.remote`) we are its client and never start a JVM of our own:
Databricks serverless and standard access mode run jobs that way. Only otherwise, on a laptop,
do we build a `local[*]` session with Delta's jars, taken offline from the local Maven
repository where `make setup` put them.
"""

from __future__ import annotations

import gc
import os
import sys
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import SparkSession

from segmentation.config import SparkConfig
from segmentation.errors import ConfigError
from segmentation.jars import delta_coordinates, jar_path

# What every session of ours needs beyond the jars. A local session sets these itself; under
# spark-submit they are `--conf` arguments (see deploy/standalone_cluster.py), because the
# launcher owns the session; Databricks runtimes already have Delta and run in UTC.
SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
}


def get_spark(spark_cfg: SparkConfig) -> SparkSession:
    """Return the active session when one exists or is provided by the launcher, else a local one."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    remote = os.environ.get("SPARK_REMOTE") or spark_cfg.remote
    if remote:
        # pyspark 4.1's client can hang for good when the cyclic garbage collector runs a fitted
        # model's finalizer, which sends an RPC to free the server's copy, on the thread that is
        # inside another RPC (SPARK-55020, SPARK-57655; unfixed in 4.1.4, seen here in the sweep
        # of `segment pipeline`). A client process holds no data, so it does without the cyclic
        # collector: models are freed by reference counting as before, and what cycles hold on the
        # server goes when the session ends.
        gc.disable()
        # The server's own settings hold (Delta's extension is its business); only the session
        # time zone is ours, as in every other session.
        return (
            SparkSession.builder.remote(remote)
            .config("spark.sql.session.timeZone", SESSION_CONF["spark.sql.session.timeZone"])
            .getOrCreate()
        )
    if is_managed_environment():
        return SparkSession.builder.getOrCreate()
    return _local_session(spark_cfg)


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect client session: no SparkContext, no JVM in this process."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def on_databricks() -> bool:
    """True on a Databricks runtime, classic or serverless."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def is_managed_environment() -> bool:
    """True under spark-submit (its gateway is handed to Python) or on a Databricks runtime."""
    return "PYSPARK_GATEWAY_PORT" in os.environ or on_databricks()


def delta_jars(maven_repo: str) -> list[Path]:
    """Paths of the Delta jars matching the installed pyspark and delta-spark, in the local Maven
    repository."""
    repo = Path(os.path.expanduser(maven_repo))
    try:
        coordinates = delta_coordinates(version("pyspark"), version("delta-spark"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    jars = [jar_path(repo, coordinate) for coordinate in coordinates]
    missing = [str(jar) for jar in jars if not jar.is_file()]
    if missing:
        raise ConfigError(
            f"Delta Lake jars not found: {', '.join(missing)} "
            f"(spark.maven_repo={maven_repo}); run `make setup` to fetch them with Maven"
        )
    return jars


def default_shuffle_partitions() -> int:
    """A few tasks per core: enough parallelism, few tiny files; AQE coalesces further."""
    return max(4, 4 * (os.cpu_count() or 1))


def local_session_conf(spark_cfg: SparkConfig) -> dict[str, str]:
    """Every setting of a session this process starts on this machine; a Spark Connect server
    started here for it (deploy/connect_server.py) gets the same, so that both compute alike."""
    conf = {
        "spark.master": spark_cfg.master,
        "spark.app.name": spark_cfg.app_name,
        "spark.jars": ",".join(str(jar) for jar in delta_jars(spark_cfg.maven_repo)),
        **SESSION_CONF,
        "spark.driver.memory": spark_cfg.driver_memory,
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.shuffle.partitions": str(spark_cfg.shuffle_partitions or default_shuffle_partitions()),
        "spark.ui.enabled": str(spark_cfg.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.snapshotPartitions": "2",
    }
    if spark_cfg.local_dir:
        conf["spark.local.dir"] = spark_cfg.local_dir
    return conf | spark_cfg.extra_conf


def _local_session(spark_cfg: SparkConfig) -> SparkSession:
    # A laptop session stays on loopback rather than on whatever the hostname resolves to, and
    # its Python workers (pandas UDFs) run this interpreter, whose packages they need.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = SparkSession.builder.config(map=local_session_conf(spark_cfg)).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
