# Databricks notebook source
# MAGIC %md
# MAGIC # Explore an assignment's segments
# MAGIC
# MAGIC One assignment version of the gold tables (default: the latest): its segments' sizes,
# MAGIC names and descriptions, readable rules, feature profiles, how sure the model is, segment
# MAGIC sizes across every assignment version, the migration from the previous assignment and
# MAGIC segment membership over time.
# MAGIC
# MAGIC Parameters: on Databricks the widgets `conf` (a shipped overlay name or a YAML path,
# MAGIC default `databricks`), `set` (`;`-separated `dotted.key=value` overrides) and
# MAGIC `assignment_id` (empty: the latest). As plain Python, against the embedded default
# MAGIC (`conf/local.yaml`, tables under `./lake`), the environment variables
# MAGIC `SEGMENTATION_CONF`, `SEGMENTATION_SET` and `SEGMENTATION_ASSIGNMENT_ID`:
# MAGIC
# MAGIC     .venv/bin/python notebooks/explore_segments.py
# MAGIC
# MAGIC Plain Python prints the tables and saves the figures under `SEGMENTATION_NOTEBOOK_OUTPUT`
# MAGIC (default `reports/notebooks`), in a folder named after the assignment.
# MAGIC
# MAGIC Only per-segment and per-version aggregates reach the driver; customer rows stay in Spark.

# COMMAND ----------

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from segmentation import plots
from segmentation.cli import matrix_lines, segment_table
from segmentation.config import load_config
from segmentation.io import read_table, table_exists, table_ref
from segmentation.profiles import SegmentSummary
from segmentation.publish import previous_run, published_rows, read_assignments
from segmentation.report import HEADLINE_FEATURES
from segmentation.spark import get_spark
from segmentation.stages.history import run_history, summarize_migration
from segmentation.tables import (
    ALGORITHM,
    ASSIGNED_AT,
    ASSIGNMENT_ID,
    CUSTOMER_COUNT,
    CUSTOMER_ID,
    CUSTOMER_SHARE,
    DESCRIPTION,
    DISTANCE_TO_CENTROID,
    FEATURE,
    FEATURE_STATS,
    FEATURES_AS_OF_DATE,
    FEATURES_TABLE_VERSION,
    IS_CURRENT,
    MATCH_JACCARD,
    MEDIAN,
    MLFLOW_RUN_ID,
    MODEL_NAME,
    MODEL_VERSION,
    PREVIOUS_SEGMENT_ID,
    REVENUE,
    REVENUE_SHARE,
    RULE,
    RULE_PRECISION,
    RULE_RECALL,
    RULES_FIDELITY,
    SEGMENT_ID,
    SEGMENT_MEMBERSHIP,
    SEGMENT_NAME,
    SEGMENT_PROBABILITY,
    SEGMENT_PROFILES,
    VALID_FROM,
    Z_SCORE,
)

# COMMAND ----------

try:
    dbutils.widgets.text("conf", "databricks")
    dbutils.widgets.text("set", "")
    conf, sets = dbutils.widgets.get("conf"), dbutils.widgets.get("set")
except NameError:  # plain Python: the embedded default
    conf, sets = os.environ.get("SEGMENTATION_CONF", "local"), os.environ.get("SEGMENTATION_SET", "")
cfg = load_config([conf], [override for override in sets.split(";") if override.strip()])
spark = get_spark(cfg.spark)

try:
    dbutils.widgets.text("assignment_id", "")
    assignment_id = dbutils.widgets.get("assignment_id")
except NameError:
    assignment_id = os.environ.get("SEGMENTATION_ASSIGNMENT_ID", "")
assignment_id = assignment_id.strip() or None  # None: the latest assignment

# COMMAND ----------

# Databricks puts display() into the notebook's namespace; plain Python prints and saves.
ON_DATABRICKS = "display" in globals()
OUTPUT = Path(os.environ.get("SEGMENTATION_NOTEBOOK_OUTPUT", "reports/notebooks")).resolve()


def show(frame: DataFrame) -> None:
    """A small (k-sized) DataFrame: a table on Databricks, printed in full in plain Python."""
    if ON_DATABRICKS:
        display(frame)  # noqa: F821
    else:
        frame.show(n=1_000, truncate=False)


def show_figure(figure: Figure, name: str) -> None:
    """On Databricks, the figure inline; in plain Python a PNG under OUTPUT/<assignment id>/."""
    if ON_DATABRICKS:
        display(figure)  # noqa: F821
        return
    path = OUTPUT / assignment_id / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    print(f"figure: {path}")


# COMMAND ----------

# MAGIC %md
# MAGIC ## The assignment
# MAGIC
# MAGIC `segment_assignments` holds one row per customer and assignment; `segment_profiles` one
# MAGIC row per segment and assignment, with the lineage of the model that scored it. Both may
# MAGIC hold slices of runs still writing or killed; `published_rows` keeps the published ones
# MAGIC (`segment_runs`). The previous assignment is the one published before this one.

# COMMAND ----------

assignment_id, assignments = read_assignments(spark, cfg.lake, assignment_id=assignment_id)
all_profiles = published_rows(spark, cfg.lake, SEGMENT_PROFILES)
profiles = all_profiles.filter(F.col(ASSIGNMENT_ID) == F.lit(assignment_id)).orderBy(SEGMENT_ID)
profile_rows = profiles.collect()  # one row per segment
first = profile_rows[0]
previous = previous_run(spark, cfg.lake, assignment_id)
previous_id = previous.assignment_id if previous is not None else None
customers = sum(p[CUSTOMER_COUNT] for p in profile_rows)
print(
    "\n".join(
        [
            f"assignment {assignment_id}: {customers:,} customers in {len(profile_rows)} segments",
            f"  scored by {first[MODEL_NAME]} version {first[MODEL_VERSION]} ({first[ALGORITHM]}), "
            f"MLflow run {first[MLFLOW_RUN_ID]}",
            f"  features as of {first[FEATURES_AS_OF_DATE]} (customer_features version "
            f"{first[FEATURES_TABLE_VERSION]}), assigned {first[ASSIGNED_AT]} UTC",
            f"  previous assignment: {previous_id or 'none, this is the first'}",
        ]
    )
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Segments: sizes, names and descriptions
# MAGIC
# MAGIC Names come from the profile alone (an RFM vocabulary scored on z-scores); a segment that
# MAGIC kept its identity from the previous assignment keeps its id and name. `identity` says
# MAGIC whether it did and with what member overlap (Jaccard).

# COMMAND ----------

print("\n".join(segment_table([SegmentSummary.of(p) for p in profile_rows], matched=previous_id is not None)))
show(
    profiles.select(
        SEGMENT_ID,
        SEGMENT_NAME,
        DESCRIPTION,
        CUSTOMER_COUNT,
        F.round(CUSTOMER_SHARE, 4).alias(CUSTOMER_SHARE),
        F.round(REVENUE, 2).alias(REVENUE),
        F.round(REVENUE_SHARE, 4).alias(REVENUE_SHARE),
        PREVIOUS_SEGMENT_ID,
        F.round(MATCH_JACCARD, 3).alias(MATCH_JACCARD),
    )
)
labels = [f"{p[SEGMENT_ID]} {p[SEGMENT_NAME]}" for p in profile_rows]
show_figure(
    plots.segment_sizes(
        labels,
        np.array([p[CUSTOMER_COUNT] for p in profile_rows], dtype=float),
        f"customers per segment, {assignment_id}",
    ),
    "segment_sizes",
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Rules
# MAGIC
# MAGIC A depth-limited decision tree predicts the segment from the model's original features;
# MAGIC its leaves read as one rule per segment. Fidelity: the share of all customers the rules
# MAGIC place in their segment. Recall: the share of a segment's customers its rule covers;
# MAGIC precision: the share of the customers a rule covers that are in the segment.

# COMMAND ----------

fidelity = first[RULES_FIDELITY]
print(f"rules fidelity: {fidelity:.1%}" if fidelity is not None else "rules fidelity: -")
for p in profile_rows:
    print(f"  {p[SEGMENT_ID]} {p[SEGMENT_NAME]}: {p[RULE]}")
show(
    profiles.select(
        SEGMENT_ID,
        SEGMENT_NAME,
        RULE,
        F.round(RULE_RECALL, 3).alias("recall"),
        F.round(RULE_PRECISION, 3).alias("precision"),
    )
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Profiles
# MAGIC
# MAGIC Medians per segment in original units, then the heatmap of each segment mean's z-score
# MAGIC against the whole population. `feature_stats` in `segment_profiles` has every numeric
# MAGIC feature; the headline ones are shown here.

# COMMAND ----------

available = {s[FEATURE] for s in first[FEATURE_STATS]}
headline = [feature for feature in HEADLINE_FEATURES if feature in available]
stats = profiles.select(SEGMENT_ID, SEGMENT_NAME, F.explode(FEATURE_STATS).alias("stat")).filter(
    F.col(f"stat.{FEATURE}").isin(headline)
)
show(
    stats.groupBy(SEGMENT_ID, SEGMENT_NAME)
    .pivot(f"stat.{FEATURE}", headline)
    .agg(F.first(F.round(f"stat.{MEDIAN}", 2)))
    .orderBy(SEGMENT_ID)
)
z_scores = np.array(
    [[{s[FEATURE]: s[Z_SCORE] for s in p[FEATURE_STATS]}[f] or 0.0 for f in headline] for p in profile_rows]
)
show_figure(
    plots.profile_heatmap(
        labels, z_scores, headline, title=f"segment means, population z-scores, {assignment_id}"
    ),
    "profile_heatmap",
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## How sure the model is
# MAGIC
# MAGIC `segment_probability` is the maximum posterior for a Gaussian mixture and the distance
# MAGIC membership (1 / d²) / Σ (1 / d_j²) for K-means (0.5 between two equally distant
# MAGIC centroids); `boundary` flags customers below `assign.boundary_probability`, whose
# MAGIC runner-up is `second_segment_id`; `distance_to_centroid` is in the model's scaled
# MAGIC feature space.

# COMMAND ----------

show(
    assignments.groupBy(SEGMENT_ID, SEGMENT_NAME)
    .agg(
        F.count(F.lit(1)).alias(CUSTOMER_COUNT),
        F.round(F.avg(SEGMENT_PROBABILITY), 3).alias("mean_probability"),
        F.round(F.percentile_approx(SEGMENT_PROBABILITY, 0.1), 3).alias("probability_p10"),
        F.round(F.avg(F.when(F.col(SEGMENT_PROBABILITY) < 0.6, 1.0).otherwise(0.0)), 3).alias(
            "share_below_0_6"
        ),
        F.round(F.avg(DISTANCE_TO_CENTROID), 3).alias("mean_distance"),
    )
    .orderBy(SEGMENT_ID)
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Sizes over time
# MAGIC
# MAGIC Every published assignment (`segment_runs`, as `segment history` lists them), then
# MAGIC customers per segment in each assignment (from `segment_profiles`), ordered by the
# MAGIC as-of date of the features and then by when it was assigned.

# COMMAND ----------

history = run_history(cfg, spark)  # the same list as `segment history`
show(
    spark.createDataFrame(
        [
            (
                v.version,
                v.timestamp,
                v.assignment_id,
                f"{v.model_name} v{v.model_version}",
                str(v.as_of_date),
                v.customers,
            )
            for v in history.versions
        ],
        f"delta_version long, written timestamp, {ASSIGNMENT_ID} string, model string, as_of_date string, "
        f"{CUSTOMER_COUNT} long",
    )
)

segment_sizes = all_profiles.withColumn(
    "segment", F.concat_ws(" ", F.col(SEGMENT_ID).cast("string"), F.col(SEGMENT_NAME))
)
sizes = (
    segment_sizes.select(
        ASSIGNMENT_ID, FEATURES_AS_OF_DATE, ASSIGNED_AT, SEGMENT_ID, "segment", CUSTOMER_COUNT
    )
    .orderBy(FEATURES_AS_OF_DATE, ASSIGNED_AT, SEGMENT_ID)
    .collect()  # one row per segment and assignment
)
order = list(dict.fromkeys(row[ASSIGNMENT_ID] for row in sizes))
segments = list(dict.fromkeys(row["segment"] for row in sorted(sizes, key=lambda row: row[SEGMENT_ID])))
show(
    segment_sizes.groupBy(ASSIGNMENT_ID, FEATURES_AS_OF_DATE, ASSIGNED_AT)
    .pivot("segment", segments)
    .agg(F.first(CUSTOMER_COUNT))
    .orderBy(FEATURES_AS_OF_DATE, ASSIGNED_AT)
)

customers_at = {(row[ASSIGNMENT_ID], row["segment"]): row[CUSTOMER_COUNT] for row in sizes}
figure = Figure(figsize=(max(8, 1.6 * len(order)), 4.5), layout="constrained")
axis = figure.subplots()
for segment in segments:
    axis.plot(
        range(len(order)),
        [customers_at.get((assignment, segment), np.nan) for assignment in order],
        marker="o",
        label=segment,
    )
axis.set_xticks(range(len(order)), [assignment.replace("_", "\n", 1) for assignment in order], fontsize=8)
axis.set_xlabel("assignment (features as of, then assigned)")
axis.set_ylabel("customers")
axis.set_title("customers per segment across assignment versions")
axis.grid(alpha=0.3)
axis.legend(fontsize=8)
show_figure(figure, "sizes_over_time")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Migration from the previous assignment
# MAGIC
# MAGIC Customers per (segment before, segment now), with the share of the row; `new` and `gone`
# MAGIC are customers in only one of the two. `segment diff` prints the same and writes it to
# MAGIC `segment_migrations`; this notebook only reads.

# COMMAND ----------

if previous_id is None:
    print("this is the first assignment; there is nothing to compare with")
else:
    _, before = read_assignments(spark, cfg.lake, assignment_id=previous_id)
    summary, _ = summarize_migration(spark, before, assignments)  # (k + 1)^2 cells
    retention = ", ".join(
        f"{segment} {summary.names[segment]} {share:.0%}"
        for segment, share in sorted(summary.retention.items())
    )
    print(
        "\n".join(
            [
                f"migration {previous_id} -> {assignment_id} (rows: before, columns: now; share of the row)",
                *matrix_lines(summary),
                f"customers new: {summary.new_customers:,}; gone: {summary.gone_customers:,}",
                f"retention (same segment id now): {retention}",
            ]
        )
    )

# COMMAND ----------

# MAGIC %md
# MAGIC ## Segment membership over time
# MAGIC
# MAGIC `segment_membership` keeps each customer's segment as a slowly changing dimension
# MAGIC (type 2): a row per customer and period, `valid_from` to `valid_to`, the current one
# MAGIC flagged `is_current`. Current members per segment, then how many segments customers have
# MAGIC been in.

# COMMAND ----------

membership_ref = table_ref(cfg.lake, SEGMENT_MEMBERSHIP)
if not table_exists(spark, membership_ref):
    print(f"no {SEGMENT_MEMBERSHIP.name} table yet at {membership_ref}")
else:
    membership = read_table(spark, membership_ref)
    show(
        membership.filter(F.col(IS_CURRENT))
        .groupBy(SEGMENT_ID, SEGMENT_NAME, VALID_FROM)
        .agg(F.count(F.lit(1)).alias("current_members"))
        .orderBy(SEGMENT_ID)
    )
    show(
        membership.groupBy(CUSTOMER_ID)
        .agg(F.count(F.lit(1)).alias("periods"), F.max(F.col(IS_CURRENT).cast("int")).alias("current"))
        .groupBy("periods")
        .agg(
            F.count(F.lit(1)).alias(CUSTOMER_COUNT),
            F.sum("current").alias("still_current"),
        )
        .orderBy("periods")
    )
