"""MLlib fits with a native BLAS/LAPACK (Debian's OpenBLAS) against Spark's Java ones.

Each mode runs in its own JVM: netlib picks its implementation once per process. In `native`
mode netlib loads the system libblas.so.3 / liblapack.so.3; in `java` mode the native library
names point nowhere and netlib falls back to its Java implementations. Each line names the
implementation that loaded. The project does not install OpenBLAS (it did not pay, see
bench/RESULTS.md); to repeat the comparison:

    apt-get install libopenblas0-pthread
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/blas_fits.py --rows 500000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import functions as F

from segmentation.config import load_config
from segmentation.spark import get_spark

JAVA_ONLY = (
    "-Ddev.ludovic.netlib.blas.nativeLib=libmissing-blas.so "
    "-Ddev.ludovic.netlib.lapack.nativeLib=libmissing-lapack.so"
)
DIMENSIONS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--mode", choices=["native", "java"], help="run one mode in this process")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.mode is None:
        for mode in ("native", "java"):
            command = [sys.executable, __file__, "--rows", str(args.rows), "--mode", mode]
            subprocess.run([*command, *[f"--set={o}" for o in args.overrides]], check=True)
        return

    java_only = f"spark.extra_conf={{spark.driver.extraJavaOptions: '{JAVA_ONLY}'}}"
    extra = [java_only] if args.mode == "java" else []
    cfg = load_config(None, [*args.overrides, *extra])
    spark = get_spark(cfg.spark)
    # The one private Spark handle left in the project, kept because nothing public replaces it:
    # which implementation netlib loaded (JNIBLAS, VectorBLAS, F2jBLAS...) is known only inside
    # the driver JVM, and no PySpark API or Spark log line reports it. Bench code only; library
    # and job code never touch `_jvm`.
    netlib = spark.sparkContext._jvm.dev.ludovic.netlib
    blas = netlib.blas.BLAS.getInstance().getClass().getSimpleName()
    lapack = netlib.lapack.LAPACK.getInstance().getClass().getSimpleName()

    # Four blobs in 4-D from hashed uniforms: reproducible whatever the partitioning.
    def coordinate(d: int):
        u = (F.xxhash64(F.lit(d), F.col("id")).bitwiseAND(F.lit((1 << 30) - 1)) + 0.5) / float(1 << 30)
        return (F.col("id") % 4 * 3 + u).alias(f"x{d}")

    vectors = VectorAssembler(inputCols=[f"x{d}" for d in range(DIMENSIONS)], outputCol="features").transform(
        spark.range(args.rows, numPartitions=4).select(*[coordinate(d) for d in range(DIMENSIONS)])
    )
    estimators = {
        "kmeans k=8": KMeans(k=8, maxIter=20, tol=0.0, seed=1),
        "bisecting_kmeans k=8": BisectingKMeans(k=8, maxIter=20, seed=1),
        "gaussian_mixture k=6": GaussianMixture(k=6, maxIter=20, tol=0.0, seed=1),
    }
    for name, estimator in estimators.items():
        started = time.perf_counter()
        estimator.fit(vectors)
        seconds = time.perf_counter() - started
        print(f"{args.mode:<6} BLAS {blas:<14} LAPACK {lapack:<16} {name:<22} {seconds:7.1f} s", flush=True)


if __name__ == "__main__":
    main()
