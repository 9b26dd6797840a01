"""The grid and the champion rule, on hand-built fit results with known answers and as properties."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyspark.ml.linalg import Vectors

from segmentation.config import SelectionConfig, load_config
from segmentation.errors import ConfigError
from segmentation.evaluation import ClusterMetrics
from segmentation.sweep import (
    FitResult,
    FitStarts,
    GridPoint,
    MixtureMetrics,
    Verdict,
    champion_order,
    fit_point,
    grid_points,
    leaderboard,
    regularized,
    select_champion,
)

RULE = SelectionConfig(
    min_segment_share=0.02, min_stability=0.8, stability_candidates=2, silhouette_decimals=3
)


def fit(
    index: int, k: int, silhouette: float | None, min_share: float, algorithm: str = "kmeans"
) -> FitResult:
    metrics = ClusterMetrics(
        rows=1000,
        clusters=k,
        silhouette=silhouette,
        silhouette_rows=1000,
        davies_bouldin=1.0,
        calinski_harabasz=10.0,
        within_ss=5.0,
        min_segment_share=min_share,
        max_segment_share=0.5,
        size_entropy=1.0,
    )
    return FitResult(GridPoint(algorithm, {"k": k}, index), model=None, metrics=metrics, fit_seconds=0.1)


def test_grid_is_every_combination_per_algorithm_in_a_stable_order():
    grid = {
        "kmeans": {"k": [2, 3], "initMode": ["k-means||", "random"]},
        "gaussian_mixture": {"k": [4]},
    }
    points = grid_points(grid, ["gaussian_mixture", "kmeans"])
    assert [(p.algorithm, p.params) for p in points] == [
        ("kmeans", {"k": 2, "initMode": "k-means||"}),
        ("kmeans", {"k": 2, "initMode": "random"}),
        ("kmeans", {"k": 3, "initMode": "k-means||"}),
        ("kmeans", {"k": 3, "initMode": "random"}),
        ("gaussian_mixture", {"k": 4}),
    ]
    assert [p.index for p in points] == [0, 1, 2, 3, 4]
    assert [p.name for p in points][1:] == [
        "kmeans k=2 initMode=random",
        "kmeans k=3 initMode=k-means||",
        "kmeans k=3 initMode=random",
        "gaussian_mixture k=4",
    ]


def test_champion_rule_filters_small_segments_and_instability_then_takes_best_silhouette():
    results = [
        fit(0, 3, 0.70, 0.10),
        fit(1, 4, 0.90, 0.01),  # best silhouette but a 1% segment
        fit(2, 5, 0.85, 0.05),  # unstable
        fit(3, 6, 0.80, 0.05),  # the champion
        fit(4, 7, 0.75, 0.05),
        fit(5, 1, None, 1.0),  # one cluster: no silhouette
    ]
    stabilities = {2: 0.5, 3: 0.95, 4: 0.9, 0: 0.99}
    measured = []

    def stability_of(result):
        measured.append(result.point.index)
        return stabilities[result.point.index]

    selection = select_champion(results, RULE, stability_of)
    assert selection.champion.point.index == 3
    verdicts = selection.verdicts
    assert verdicts[1].reason == "smallest segment 1.00% < 2.00%"
    assert verdicts[2].reason == "stability 0.500 < 0.8" and not verdicts[2].eligible
    assert verdicts[3].reason == "champion" and verdicts[3].stability == 0.95
    assert verdicts[5].reason == "only 1 cluster: no silhouette"
    # The two leading candidates are always measured, then only until one passes.
    assert measured == [2, 3]
    assert verdicts[4].reason == "stability not measured: ranked below the champion"
    assert "champion kmeans k=6" in selection.reasoning

    board = leaderboard(results, selection)
    assert board[0]["verdict"] == "champion" and board[0]["k"] == 6
    assert {row["grid_index"] for row in board} == set(range(6))


def test_equal_silhouettes_at_the_configured_decimals_go_to_fewer_clusters():
    results = [fit(0, 8, 0.8004, 0.05), fit(1, 5, 0.7996, 0.05), fit(2, 6, 0.8001, 0.05)]
    selection = select_champion(results, RULE, lambda result: 1.0)
    assert selection.champion.point.k == 5


def test_no_fit_eligible_means_no_champion_and_says_why():
    results = [fit(0, 3, 0.7, 0.01), fit(1, 4, 0.6, 0.05)]
    selection = select_champion(results, RULE, lambda result: 0.3)
    assert selection.champion is None
    assert selection.reasoning.startswith("no champion: none of the 2 fits met the rule")
    assert selection.verdicts[1].reason == "stability 0.300 < 0.8"


fits = st.lists(
    st.tuples(
        st.integers(2, 12),
        st.one_of(st.none(), st.floats(-1, 1)),
        st.floats(0, 0.5),
        st.floats(0, 1),
    ),
    min_size=1,
    max_size=15,
)


@given(fits)
def test_champion_is_eligible_and_no_eligible_fit_beats_it(specs):
    results = [fit(i, k, silhouette, share) for i, (k, silhouette, share, _) in enumerate(specs)]
    stabilities = {i: stable for i, (*_, stable) in enumerate(specs)}
    selection = select_champion(results, RULE, lambda result: stabilities[result.point.index])

    def passes(result):
        m = result.metrics
        return (
            m.silhouette is not None
            and m.min_segment_share >= RULE.min_segment_share
            and stabilities[result.point.index] >= RULE.min_stability
        )

    qualified = [result for result in results if passes(result)]
    assert len(selection.verdicts) == len(results)
    if not qualified:
        assert selection.champion is None
        return
    champion = selection.champion
    assert passes(champion)
    best = max(round(r.metrics.silhouette, 3) for r in qualified)
    assert round(champion.metrics.silhouette, 3) == best
    assert champion.metrics.clusters == min(
        r.metrics.clusters for r in qualified if round(r.metrics.silhouette, 3) == best
    )


def scored(index, algorithm, k, *, silhouette, ch, db, within, bic=None, icl=None, clusters=None):
    """A fit with every criterion the rules read set by hand."""
    metrics = ClusterMetrics(
        rows=1000,
        clusters=k if clusters is None else clusters,
        silhouette=silhouette,
        silhouette_rows=1000,
        davies_bouldin=db,
        calinski_harabasz=ch,
        within_ss=within,
        min_segment_share=0.1,
        max_segment_share=0.5,
        size_entropy=1.0,
    )
    mixture = (
        None
        if bic is None
        else MixtureMetrics(
            log_likelihood=0.0, aic=0.0, bic=bic, mean_max_posterior=0.9, entropy=icl - bic, icl=icl
        )
    )
    return FitResult(GridPoint(algorithm, {"k": k}, index), None, metrics, 0.1, mixture=mixture)


# Within-SS of kmeans falls steeply to k=4 and then flattens (the knee is 4); silhouette
# prefers k=2, Calinski-Harabasz k=5, Davies-Bouldin k=3, BIC the mixture with k=5, ICL k=4.
RULE_FITS = [
    scored(0, "kmeans", 2, silhouette=0.70, ch=100.0, db=0.90, within=100.0),
    scored(1, "kmeans", 3, silhouette=0.60, ch=150.0, db=0.50, within=60.0),
    scored(2, "kmeans", 4, silhouette=0.65, ch=180.0, db=0.60, within=20.0),
    scored(3, "kmeans", 5, silhouette=0.55, ch=200.0, db=0.80, within=18.0),
    scored(4, "kmeans", 6, silhouette=0.50, ch=170.0, db=1.00, within=17.0),
    scored(5, "gaussian_mixture", 4, silhouette=0.40, ch=90.0, db=1.20, within=40.0, bic=900.0, icl=950.0),
    scored(6, "gaussian_mixture", 5, silhouette=0.30, ch=80.0, db=1.40, within=35.0, bic=850.0, icl=1000.0),
]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("silhouette", [0, 2, 1, 3, 4, 5, 6]),
        ("calinski_harabasz", [3, 2, 4, 1, 0, 5, 6]),
        ("davies_bouldin", [1, 2, 3, 0, 4, 5, 6]),
        ("bic", [6, 5]),  # mixtures only
        ("icl", [5, 6]),  # the k=5 mixture's components overlap: more entropy
        # rank sums (silhouette + CH + DB) over all seven: k=4 3, k=3 5, k=5 5 (tie: fewer
        # clusters first), k=2 7, k=6 10, the mixtures 15 and 18
        ("rank", [2, 1, 3, 0, 4, 5, 6]),
        # knees: kmeans k=4; the mixture curve has two points only, so no knee
        ("knee", [2, 0, 1, 3, 4, 5, 6]),
        ("largest_stable_k", [4, 3, 6, 2, 5, 1, 0]),
    ],
)
def test_each_champion_rule_orders_the_fits_by_its_criterion(rule, expected):
    settings = RULE.model_copy(update={"rule": rule})
    inputs = [{"algorithm": r.point.algorithm, "k": r.point.k, **r.metric_values()} for r in RULE_FITS]
    assert champion_order(settings, inputs) == expected
    selection = select_champion(RULE_FITS, settings, lambda result: 1.0)
    assert selection.champion.point.index == expected[0]
    assert f"rule {rule}:" in selection.reasoning
    unranked = set(range(len(RULE_FITS))) - set(expected)
    assert all(selection.verdicts[i].reason == f"not ranked by the {rule} rule" for i in unranked)


def rule_inputs(results):
    return [{"algorithm": r.point.algorithm, "k": r.point.k, **r.metric_values()} for r in results]


def test_ties_go_to_fewer_clusters_found_and_equal_values_share_a_rank():
    # Asked for 6, the bisecting fit found 4 clusters: it wins the silhouette tie with k=5.
    asked_six = scored(0, "bisecting_kmeans", 6, silhouette=0.6, ch=100.0, db=1.0, within=9.0, clusters=4)
    five = scored(1, "kmeans", 5, silhouette=0.6, ch=100.0, db=1.0, within=9.0)
    for rule in ("silhouette", "rank", "calinski_harabasz", "davies_bouldin"):
        settings = RULE.model_copy(update={"rule": rule})
        assert champion_order(settings, rule_inputs([five, asked_six])) == [1, 0], rule
    settings = RULE.model_copy(update={"rule": "largest_stable_k"})
    assert champion_order(settings, rule_inputs([five, asked_six])) == [0, 1]


def test_a_fit_without_a_criterion_is_left_out_of_the_rules_that_read_it():
    no_ch = replace(
        scored(0, "kmeans", 3, silhouette=0.9, ch=1.0, db=0.5, within=1.0),
        metrics=replace(RULE_FITS[0].metrics, calinski_harabasz=None, clusters=3),
    )
    fits = [no_ch, *RULE_FITS[1:3]]
    assert champion_order(RULE.model_copy(update={"rule": "calinski_harabasz"}), rule_inputs(fits)) == [2, 1]
    assert champion_order(RULE.model_copy(update={"rule": "rank"}), rule_inputs(fits)) == [2, 1]
    assert champion_order(RULE, rule_inputs(fits))[0] == 0


def test_the_knee_reads_each_ks_lowest_within_ss_and_marks_every_variant_there():
    variants = [
        *RULE_FITS[:5],
        replace(RULE_FITS[2], point=GridPoint("kmeans", {"k": 4, "initMode": "random"}, 7)),
        scored(8, "kmeans", 3, silhouette=0.2, ch=1.0, db=3.0, within=90.0),  # a worse start at k=3
    ]
    order = champion_order(RULE.model_copy(update={"rule": "knee"}), rule_inputs(variants))
    assert order[:2] == [2, 5]


def test_an_unstable_leader_passes_the_choice_down_the_rules_order():
    settings = RULE.model_copy(update={"rule": "knee"})
    selection = select_champion(RULE_FITS, settings, lambda result: 0.5 if result.point.k == 4 else 0.9)
    assert selection.champion.point.index == 0  # after the kmeans knee, highest silhouette
    assert selection.verdicts[2].reason == "stability 0.500 < 0.8"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sweep.grid.kmeans.k=[1, 2]", "config key 'sweep.grid.kmeans.k[0]' must be at least 2, got 1"),
        ("sweep.grid.kmean={k: [2]}", "unknown config key 'sweep.grid.kmean'"),
        ("sweep.algorithms=[kmeans, dbscan]", "config key 'sweep.algorithms[1]' must be one of"),
        (
            "model.log1p_columns=[email]",
            "config key 'model.log1p_columns' names 'email', not a feature column",
        ),
        ("selection.min_stability=1.5", "config key 'selection.min_stability' must be in [0, 1], got 1.5"),
        ("sweep.restarts=0", "config key 'sweep.restarts' must be at least 1, got 0"),
        ("selection.rule=elbow", "config key 'selection.rule' must be one of"),
    ],
)
def test_bad_sweep_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert message in str(error.value)


def test_the_bic_rule_needs_mixtures_in_the_sweep():
    assert load_config(None, ["selection.rule=bic"]).selection.rule == "bic"
    with pytest.raises(ConfigError, match=r"'selection\.rule' is bic, which ranks Gaussian mixtures only"):
        load_config(None, ["selection.rule=bic", "sweep.algorithms=[kmeans, bisecting_kmeans]"])


def test_mixture_log_likelihood_aic_and_bic_match_numpy(spark):
    """Spark's summary log-likelihood is the total over the (regularised) training rows, which
    AIC and BIC need; the mean maximum posterior is over the customers as scored."""
    rng = np.random.default_rng(3)
    points = np.vstack([rng.normal(0, 1, (120, 2)), rng.normal(6, 1.5, (80, 2))])
    vectors = spark.createDataFrame(
        [(f"{i:03d}", Vectors.dense(row)) for i, row in enumerate(points)], ["customer_id", "features"]
    )
    result = fit_point(vectors, GridPoint("gaussian_mixture", {"k": 2}, 0), seed=1, silhouette_max_rows=1000)
    training = np.array(
        [row.features.toArray() for row in regularized(vectors, seed=1).orderBy("customer_id").collect()]
    )
    assert 0 < np.abs(training - points).max() <= np.sqrt(3e-6)  # the regularising noise

    def weighted_densities(x):
        densities = []
        for weight, gaussian in zip(result.model.weights, result.model.gaussians, strict=True):
            mean, cov = gaussian.mean.toArray(), gaussian.cov.toArray()
            centred = x - mean
            mahalanobis = np.einsum("ij,jk,ik->i", centred, np.linalg.inv(cov), centred)
            densities.append(
                weight * np.exp(-mahalanobis / 2) / np.sqrt((2 * np.pi) ** 2 * np.linalg.det(cov))
            )
        return np.array(densities)

    log_likelihood = np.log(weighted_densities(training).sum(axis=0)).sum()
    free_parameters = 1 + 2 * 2 + 2 * 3
    mixture = result.mixture
    assert mixture.log_likelihood == pytest.approx(log_likelihood, rel=1e-6)
    assert mixture.aic == pytest.approx(2 * free_parameters - 2 * log_likelihood, rel=1e-6)
    assert mixture.bic == pytest.approx(free_parameters * np.log(200) - 2 * log_likelihood, rel=1e-6)
    densities = weighted_densities(points)
    posteriors = densities / densities.sum(axis=0)
    assert mixture.mean_max_posterior == pytest.approx(posteriors.max(axis=0).mean(), rel=1e-6)
    entropy = -(posteriors * np.log(np.where(posteriors > 0, posteriors, 1.0))).sum()
    assert mixture.entropy == pytest.approx(entropy, rel=1e-6, abs=1e-9)
    assert mixture.icl == pytest.approx(mixture.bic + 2 * entropy, rel=1e-9)


def test_a_fit_past_its_deadline_is_interrupted_and_left_out_of_the_champion_rule(spark):
    """Spark's Gaussian mixture can spin forever in LAPACK; a start past `timeout` is
    interrupted through its job tag, and a point with no finished start is a failed result that
    the champion rule excludes, while the session goes on running jobs."""
    rows = [(f"c{i}", Vectors.dense([float(i % 7), float(i % 3)])) for i in range(400)]
    vectors = spark.createDataFrame(rows, ["customer_id", "features"])
    point = GridPoint("kmeans", {"k": 3, "maxIter": 50}, 0)
    started = time.perf_counter()
    failed = fit_point(vectors, point, seed=1, silhouette_max_rows=1000, starts=FitStarts(timeout=0.001))
    assert failed.model is None and failed.metrics is None
    assert failed.failure == "fit failed: no start of 1 finished within 0.001 s"
    assert time.perf_counter() - started < 120
    assert failed.metric_values() == {"fit_seconds": failed.fit_seconds}
    finished = fit_point(vectors, point, seed=1, silhouette_max_rows=1000, starts=FitStarts(timeout=120.0))
    assert finished.failure is None and finished.metrics.clusters == 3
    selection = select_champion(
        [failed, replace(finished, point=replace(point, index=1))], RULE, lambda r: 1.0
    )
    assert selection.verdicts[0] == Verdict(False, failed.failure)
    assert selection.champion.point.index == 1
