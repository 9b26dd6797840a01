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
from typing import Any, Optional

from pyspark.ml import Model, Pipeline, PipelineModel
from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans
from pyspark.ml.feature import PCA, SQLTransformer, StandardScaler, VectorAssembler
from pyspark.sql import DataFrame

from segmentation.config import Algorithm, ModelConfig
from segmentation.errors import InputError
from segmentation.tables import CUSTOMER_FEATURES, MODEL_CLUSTER_ID

ASSEMBLED = "assembled_features"
SCALED = "features"
PREDICTION = MODEL_CLUSTER_ID  # the fitted model's own cluster number, not the business segment id
PROBABILITY = "segment_probabilities"
PYFUNC_OUTPUT = "prediction"  # the column MLflow's pyfunc flavour of a Spark model returns
_QUANTILE_ERROR = 0.001
_CLEAN_PREFIX = "_clean_"


@dataclass(frozen=True)
class Preprocessing:
    """What happens to the raw feature columns before clustering."""

    log1p_columns: tuple[str, ...] = ()
    winsorize_quantiles: Optional[tuple[float, float]] = (0.01, 0.99)
    standardize: bool = True
    pca_components: Optional[int] = None

    @classmethod
    def from_config(cls, model: ModelConfig) -> Preprocessing:
        quantiles = model.winsorize_quantiles
        return cls(
            log1p_columns=tuple(model.log1p_columns),
            winsorize_quantiles=(quantiles[0], quantiles[1]) if quantiles else None,
            standardize=model.standardize,
            pca_components=model.pca_components,
        )


def build_pipeline(
    features: DataFrame,
    feature_columns: Sequence[str],
    preprocessing: Preprocessing,
    *,
    algorithm: Algorithm,
    params: dict[str, Any],
    seed: int,
) -> Pipeline:
    """The unfitted pipeline for one grid point; `features` is read only for quantile bounds:
    `build_pipeline(features, ["recency_days"], Preprocessing(), algorithm="kmeans",
    params={"k": 5}, seed=42)`."""
    stages = build_preprocessing(features, feature_columns, preprocessing).getStages()
    return Pipeline(stages=[*stages, build_estimator(algorithm, params, seed), pyfunc_output()])


def scoring_model(preprocessing: PipelineModel, clustering: Model) -> PipelineModel:
    """One saved model that scores raw feature columns: the fitted preprocessing, the fitted
    clustering model and the pyfunc output column."""
    return PipelineModel(stages=[*preprocessing.stages, clustering, pyfunc_output()])


def pyfunc_output() -> SQLTransformer:
    """`segment_id` also as `prediction`, so `mlflow.pyfunc` (and `mlflow models serve`) can score."""
    return SQLTransformer(statement=f"SELECT *, {PREDICTION} AS {PYFUNC_OUTPUT} FROM __THIS__")


def build_preprocessing(
    features: DataFrame, feature_columns: Sequence[str], preprocessing: Preprocessing
) -> Pipeline:
    """Clean -> assemble -> scale -> optional PCA, ending in the `features` vector every
    estimator reads; a sweep fits it once and shares it across its grid points.

    Scaling divides by the standard deviation without centring: every algorithm and metric
    here is translation-invariant, and Spark's BisectingKMeans cannot split a cluster whose
    centre is the origin (it perturbs the centre in proportion to its norm), so on centred
    data it returns a single cluster.
    """
    missing = [column for column in feature_columns if column not in features.columns]
    if missing:
        raise InputError(
            f"table {CUSTOMER_FEATURES.name}: unknown feature column {missing[0]!r}; "
            f"available: {', '.join(sorted(features.columns))}"
        )
    stages = [
        _clean_statement(features, feature_columns, preprocessing),
        VectorAssembler(inputCols=[clean_name(column) for column in feature_columns], outputCol=ASSEMBLED),
    ]
    vector = ASSEMBLED
    if preprocessing.standardize:
        stages.append(StandardScaler(inputCol=vector, outputCol="scaled", withMean=False, withStd=True))
        vector = "scaled"
    if preprocessing.pca_components:
        stages.append(PCA(k=preprocessing.pca_components, inputCol=vector, outputCol="projected"))
        vector = "projected"
    stages.append(SQLTransformer(statement=f"SELECT *, {vector} AS {SCALED} FROM __THIS__"))
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
            raise InputError(f"table {CUSTOMER_FEATURES.name}: no rows to compute winsorising bounds from")
        for column, (lower, upper) in zip(feature_columns, bounds, strict=True):
            expressions[column] = (
                f"LEAST(GREATEST({expressions[column]}, CAST('{lower!r}' AS DOUBLE)), "
                f"CAST('{upper!r}' AS DOUBLE))"
            )
    cleaned_columns = ", ".join(f"{expr} AS `{clean_name(column)}`" for column, expr in expressions.items())
    return SQLTransformer(statement=f"SELECT *, {cleaned_columns} FROM __THIS__")


def clean_name(column: str) -> str:
    return f"{_CLEAN_PREFIX}{column}"


def feature_columns_of(model: PipelineModel) -> list[str]:
    """The raw feature columns a fitted scoring model reads, from its assembler stage."""
    for stage in model.stages:
        if isinstance(stage, VectorAssembler) and stage.getOutputCol() == ASSEMBLED:
            return [column.removeprefix(_CLEAN_PREFIX) for column in stage.getInputCols()]
    raise InputError("the model has no feature assembler stage; it was not built by this project")
