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
from segmentation.assign import (
    ASSIGNMENT_ID,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_ID,
    SEGMENT_MEMBERSHIP,
    SEGMENT_NAME,
    SEGMENT_PROFILES,
)
from segmentation.config import load_config
from segmentation.features import CUSTOMER_ID
from segmentation.history import MigrationSummary, assignment_versions, migration, previous_assignment_id
from segmentation.io import read_assignments, read_table, table_exists, table_history, table_ref
from segmentation.report import HEADLINE_FEATURES, segment_table
from segmentation.spark import get_spark

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
# MAGIC row per segment and assignment, with the lineage of the model that scored it. The
# MAGIC previous assignment is the one assigned most recently before this one, the one segment
# MAGIC identities were matched against.

# COMMAND ----------

assignment_id, assignments = read_assignments(spark, cfg.lake, assignment_id)
all_profiles = read_table(spark, table_ref(cfg.lake, SEGMENT_PROFILES))
profiles = all_profiles.filter(F.col(ASSIGNMENT_ID) == F.lit(assignment_id)).orderBy(SEGMENT_ID)
profile_rows = profiles.collect()  # one row per segment
first = profile_rows[0]
previous_id = previous_assignment_id(all_profiles, first.assigned_at)
customers = sum(p.customers for p in profile_rows)
print(
    "\n".join(
        [
            f"assignment {assignment_id}: {customers:,} customers in {len(profile_rows)} segments",
            f"  scored by {first.model_name} version {first.model_version} ({first.algorithm}), "
            f"MLflow run {first.mlflow_run_id}",
            f"  features as of {first.features_as_of_date} (customer_features version "
            f"{first.features_table_version}), assigned {first.assigned_at} UTC",
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

print("\n".join(segment_table(profile_rows, matched=previous_id is not None)))
show(
    profiles.select(
        SEGMENT_ID,
        SEGMENT_NAME,
        "description",
        "customers",
        F.round("customer_share", 4).alias("customer_share"),
        F.round("revenue", 2).alias("revenue"),
        F.round("revenue_share", 4).alias("revenue_share"),
        "previous_segment_id",
        F.round("match_jaccard", 3).alias("match_jaccard"),
    )
)
labels = [f"{p[SEGMENT_ID]} {p[SEGMENT_NAME]}" for p in profile_rows]
show_figure(
    plots.segment_sizes(
        labels,
        np.array([p.customers for p in profile_rows], dtype=float),
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

fidelity = first.rules_fidelity
print(f"rules fidelity: {fidelity:.1%}" if fidelity is not None else "rules fidelity: -")
for p in profile_rows:
    print(f"  {p[SEGMENT_ID]} {p[SEGMENT_NAME]}: {p.rule}")
show(
    profiles.select(
        SEGMENT_ID,
        SEGMENT_NAME,
        "rule",
        F.round("rule_recall", 3).alias("recall"),
        F.round("rule_precision", 3).alias("precision"),
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

available = {s.feature for s in first.feature_stats}
headline = [feature for feature in HEADLINE_FEATURES if feature in available]
stats = profiles.select(SEGMENT_ID, SEGMENT_NAME, F.explode("feature_stats").alias("stat")).filter(
    F.col("stat.feature").isin(headline)
)
show(
    stats.groupBy(SEGMENT_ID, SEGMENT_NAME)
    .pivot("stat.feature", headline)
    .agg(F.first(F.round("stat.median", 2)))
    .orderBy(SEGMENT_ID)
)
z_scores = np.array(
    [[{s.feature: s.z_score for s in p.feature_stats}[f] or 0.0 for f in headline] for p in profile_rows]
)
show_figure(
    plots.profile_heatmap(labels, z_scores, headline, f"segment means, population z-scores, {assignment_id}"),
    "profile_heatmap",
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## How sure the model is
# MAGIC
# MAGIC `segment_probability` is the maximum posterior for a Gaussian mixture and the distance
# MAGIC confidence d_next / (d_own + d_next) for K-means (0.5 on the boundary with the next
# MAGIC segment); `distance_to_centroid` is in the model's scaled feature space.

# COMMAND ----------

show(
    assignments.groupBy(SEGMENT_ID, SEGMENT_NAME)
    .agg(
        F.count(F.lit(1)).alias("customers"),
        F.round(F.avg("segment_probability"), 3).alias("mean_probability"),
        F.round(F.percentile_approx("segment_probability", 0.1), 3).alias("probability_p10"),
        F.round(F.avg(F.when(F.col("segment_probability") < 0.6, 1.0).otherwise(0.0)), 3).alias(
            "share_below_0_6"
        ),
        F.round(F.avg("distance_to_centroid"), 3).alias("mean_distance"),
    )
    .orderBy(SEGMENT_ID)
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Sizes over time
# MAGIC
# MAGIC Every assignment version: the Delta commits of `segment_assignments` that wrote one, then
# MAGIC customers per segment in each assignment (from `segment_profiles`), ordered by the
# MAGIC as-of date of the features and then by when it was assigned.

# COMMAND ----------

versions = assignment_versions(table_history(spark, table_ref(cfg.lake, SEGMENT_ASSIGNMENTS)))
show(
    spark.createDataFrame(
        [
            (
                v["version"],
                v["timestamp"],
                v[ASSIGNMENT_ID],
                f"{v['model_name']} v{v['model_version']}",
                str(v["as_of_date"]),
                v["customers"],
            )
            for v in versions
        ],
        "delta_version long, written timestamp, assignment_id string, model string, as_of_date string, "
        "customers long",
    )
)

segment_sizes = all_profiles.withColumn(
    "segment", F.concat_ws(" ", F.col(SEGMENT_ID).cast("string"), F.col(SEGMENT_NAME))
)
sizes = (
    segment_sizes.select(
        ASSIGNMENT_ID, "features_as_of_date", "assigned_at", SEGMENT_ID, "segment", "customers"
    )
    .orderBy("features_as_of_date", "assigned_at", SEGMENT_ID)
    .collect()  # one row per segment and assignment
)
order = list(dict.fromkeys(row[ASSIGNMENT_ID] for row in sizes))
segments = list(dict.fromkeys(row.segment for row in sorted(sizes, key=lambda row: row[SEGMENT_ID])))
show(
    segment_sizes.groupBy(ASSIGNMENT_ID, "features_as_of_date", "assigned_at")
    .pivot("segment", segments)
    .agg(F.first("customers"))
    .orderBy("features_as_of_date", "assigned_at")
)

customers_at = {(row[ASSIGNMENT_ID], row.segment): row.customers for row in sizes}
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
    _, before = read_assignments(spark, cfg.lake, previous_id)
    cells = migration(before, assignments)
    summary = MigrationSummary.from_cells([row.asDict() for row in cells.collect()])  # (k + 1)^2 rows
    retention = ", ".join(
        f"{segment} {summary.names[segment]} {share:.0%}"
        for segment, share in sorted(summary.retention.items())
    )
    print(
        "\n".join(
            [
                f"migration {previous_id} -> {assignment_id} (rows: before, columns: now; share of the row)",
                *summary.matrix_lines(),
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
    print(f"no {SEGMENT_MEMBERSHIP} table yet at {membership_ref}")
else:
    membership = read_table(spark, membership_ref)
    show(
        membership.filter(F.col("is_current"))
        .groupBy(SEGMENT_ID, SEGMENT_NAME, "valid_from")
        .agg(F.count(F.lit(1)).alias("current_members"))
        .orderBy(SEGMENT_ID)
    )
    show(
        membership.groupBy(CUSTOMER_ID)
        .agg(F.count(F.lit(1)).alias("periods"), F.max(F.col("is_current").cast("int")).alias("current"))
        .groupBy("periods")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum("current").alias("still_current"),
        )
        .orderBy("periods")
    )
