"""One Spark ML `Pipeline` per fit: preprocessing and the clustering estimator, saved whole.

    assemble the feature columns -> log1p / winsorise (SQLTransformer) -> standard scaling
    -> optional PCA -> KMeans | BisectingKMeans | GaussianMixture

Winsorising bounds come from `approxQuantile` when the pipeline is built and are written
into the SQL statement, so a saved `PipelineModel` scores with exactly the preprocessing it
was fitted with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional

from pyspark.ml import Pipeline
from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans
from pyspark.ml.feature import PCA, SQLTransformer, StandardScaler, VectorAssembler
from pyspark.sql import DataFrame

from segmentation.errors import InputError

Algorithm = Literal["kmeans", "bisecting_kmeans", "gaussian_mixture"]
ASSEMBLED = "assembled_features"
SCALED = "features"
PREDICTION = "segment_id"
PROBABILITY = "segment_probabilities"
_QUANTILE_ERROR = 0.001


@dataclass(frozen=True)
class Preprocessing:
    """What happens to the raw feature columns before clustering."""

    log1p_columns: tuple[str, ...] = ()
    winsorize_quantiles: Optional[tuple[float, float]] = (0.01, 0.99)
    standardize: bool = True
    pca_components: Optional[int] = None


def build_pipeline(
    features: DataFrame,
    feature_columns: Sequence[str],
    preprocessing: Preprocessing,
    algorithm: Algorithm,
    params: dict[str, Any],
    seed: int,
) -> Pipeline:
    """The unfitted pipeline for one grid point; `features` is read only for quantile bounds.

    >>> pipeline = build_pipeline(features, ["recency_days"], Preprocessing(), "kmeans", {"k": 5}, seed=42)
    """
    missing = [column for column in feature_columns if column not in features.columns]
    if missing:
        raise InputError(
            f"table customer_features: unknown feature column {missing[0]!r}; "
            f"available: {', '.join(sorted(features.columns))}"
        )
    stages = [
        _clean_statement(features, feature_columns, preprocessing),
        VectorAssembler(inputCols=[clean_name(column) for column in feature_columns], outputCol=ASSEMBLED),
    ]
    vector = ASSEMBLED
    if preprocessing.standardize:
        stages.append(StandardScaler(inputCol=vector, outputCol="scaled", withMean=True, withStd=True))
        vector = "scaled"
    if preprocessing.pca_components:
        stages.append(PCA(k=preprocessing.pca_components, inputCol=vector, outputCol="projected"))
        vector = "projected"
    stages.append(SQLTransformer(statement=f"SELECT *, {vector} AS {SCALED} FROM __THIS__"))
    stages.append(build_estimator(algorithm, params, seed))
    return Pipeline(stages=stages)


def build_estimator(algorithm: Algorithm, params: dict[str, Any], seed: int):
    """The clustering estimator with its grid-point parameters; unknown parameters are errors."""
    common = {"featuresCol": SCALED, "predictionCol": PREDICTION, "seed": seed}
    if algorithm == "kmeans":
        estimator = KMeans(**common)
    elif algorithm == "bisecting_kmeans":
        estimator = BisectingKMeans(**common)
    elif algorithm == "gaussian_mixture":
        estimator = GaussianMixture(probabilityCol=PROBABILITY, **common)
    else:
        raise InputError(f"unknown algorithm {algorithm!r}; use kmeans, bisecting_kmeans or gaussian_mixture")
    unknown = [name for name in params if not estimator.hasParam(name)]
    if unknown:
        raise InputError(f"{algorithm} has no parameter {unknown[0]!r}")
    return estimator.setParams(**params)


def _clean_statement(
    features: DataFrame, feature_columns: Sequence[str], preprocessing: Preprocessing
) -> SQLTransformer:
    """Nulls to 0, signed log1p for skewed columns, clipping to quantile bounds.

    Cleaned values go to new `_clean_<column>` columns, so the statement runs on any frame
    that has the feature columns, whatever else it carries.
    """
    expressions = {column: f"COALESCE(CAST(`{column}` AS DOUBLE), 0D)" for column in feature_columns}
    for column in preprocessing.log1p_columns:
        if column in expressions:
            value = expressions[column]
            expressions[column] = f"SIGN({value}) * LN(1D + ABS({value}))"
    if preprocessing.winsorize_quantiles:
        low, high = preprocessing.winsorize_quantiles
        cleaned = features.selectExpr(*[f"{expr} AS `{column}`" for column, expr in expressions.items()])
        bounds = cleaned.approxQuantile(list(feature_columns), [low, high], _QUANTILE_ERROR)
        if any(len(bound) != 2 for bound in bounds):
            raise InputError("table customer_features: no rows to compute winsorising bounds from")
        for column, (lower, upper) in zip(feature_columns, bounds, strict=True):
            expressions[column] = (
                f"LEAST(GREATEST({expressions[column]}, CAST('{lower!r}' AS DOUBLE)), "
                f"CAST('{upper!r}' AS DOUBLE))"
            )
    cleaned_columns = ", ".join(f"{expr} AS `{clean_name(column)}`" for column, expr in expressions.items())
    return SQLTransformer(statement=f"SELECT *, {cleaned_columns} FROM __THIS__")


def clean_name(column: str) -> str:
    return f"_clean_{column}"
