"""Customer segmentation on Apache Spark: bronze -> silver -> sweep -> gold.

Versions are pinned here and only here. Spark 4.1 is the Spark of Databricks Runtime 18 LTS;
Delta 4.4.0 is the newest Delta for it whose jars Maven Central serves (delta-spark's jar is
built per Spark line, delta-spark_4.1_2.13). The Makefile fetches the Delta jars of the same
versions with Maven (segmentation/jars.py lists them).
"""

from setuptools import find_packages, setup

PYSPARK_VERSION = "4.1.4"
DELTA_VERSION = "4.4.0"

setup(
    name="customer-segmentation",
    version="0.1.0",
    description="Customer segmentation on Apache Spark, Delta Lake and MLflow",
    python_requires=">=3.10,<3.13",
    # The top-level conf/ ships inside the package as segmentation/conf (see config.py).
    # jobs/ holds spark-submit scripts, passed to spark-submit as files; it is not a package.
    packages=[*find_packages(include=["segmentation*"]), "segmentation.conf"],
    package_dir={"segmentation.conf": "conf"},
    package_data={"segmentation.conf": ["*.yaml"]},
    # Spark itself is not a requirement of the wheel: a cluster or a Databricks runtime brings
    # its own pyspark and Delta, and installing another over it breaks the runtime. The local
    # set-up installs them with the `spark` extra (Makefile).
    install_requires=[
        "mlflow==3.17.2",
        "numpy==2.2.6",
        "pandas==2.3.3",
        "matplotlib==3.11.2",
        "pydantic==2.14.3",
        "pydantic-core==2.50.4",
        "typing-extensions==4.16.0",
        "pyyaml==6.0.2",
        "scipy==1.17.1",
    ],
    extras_require={
        # With Spark Connect's client libraries (pyspark's `connect` extra: grpcio, zstandard,
        # ..., pinned in constraints.txt): `segment` runs as a client of a Spark Connect server
        # when SPARK_REMOTE or spark.remote names one.
        "spark": [
            f"pyspark[connect]=={PYSPARK_VERSION}",
            f"delta-spark=={DELTA_VERSION}",
        ],
        "dev": [
            "pytest==8.4.2",
            "pytest-timeout==2.4.0",
            "hypothesis==6.140.2",
            "ruff==0.13.3",
            "scikit-learn==1.7.2",
            "deltalake==1.1.4",
            "databricks-sdk==0.156.0",
        ],
    },
    entry_points={
        # One entry point; a scheduler passes the stage as the first argument (Databricks
        # python_wheel_task: parameters ["assign", "--conf", "databricks", ...]).
        "console_scripts": ["segment=segmentation.cli:main"],
    },
)
