"""Planted customer bases for the segment-recovery benchmark, written apart from the project's
own generator so that recovering them says something about the algorithm, not about a generator
tuned to it.

Each dataset imitates a kind of retailer: transaction lines in that retailer's own column names,
timestamp format and currency scale, with every customer drawn from one planted persona (or
from none: noise customers, labelled -1). A persona is a purchase process, not a point: each
customer gets a first-purchase date drawn from the persona's tenure range, an order rate drawn
from a gamma distribution around the persona's rate (gamma-Poisson heterogeneity; `regularity`
above 1 makes the gaps more regular than Poisson), an optional lapse date after which the
customer buys no more, a typical order value drawn lognormally around the persona's, and
per-order values around that (lognormal, or Pareto for heavy tails). Orders continue after
`as_of_date`, up to 180 days, for customers who have not lapsed, so a later next-period
evaluation has something to predict.

    from bench.recovery.generators import DATASETS, best_achievable_ari, write
    dataset = DATASETS["fashion_webshop"](seed=1)
    write(dataset, Path("/tmp/fashion"))       # transactions/part-0.csv and labels.csv
    best_achievable_ari(dataset)              # {'kmeans': ..., 'gmm': ...}

`best_achievable_ari` is the yardstick the benchmark reports beside the product's result: what
plain K-means and a Gaussian mixture reach on log1p recency, frequency, average order value and
tenure computed here with pandas.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pandas as pd

Separation = Literal["well_separated", "overlapping"]
LOGICAL_COLUMNS = ("customer_id", "order_ts", "amount", "order_id", "quantity", "category", "channel")
POST_PERIOD_DAYS = 180
NOISE_PERSONA = -1
REFERENCE_FEATURES = ("recency_days", "frequency", "avg_order_value", "tenure_days")

# The Spark datetime patterns these datasets write, and the strftime format that writes them.
STRFTIME = {
    "yyyy-MM-dd HH:mm:ss": "%Y-%m-%d %H:%M:%S",
    "yyyy-MM-dd'T'HH:mm:ss": "%Y-%m-%dT%H:%M:%S",
    "dd/MM/yyyy HH:mm": "%d/%m/%Y %H:%M",
    "dd.MM.yyyy HH:mm": "%d.%m.%Y %H:%M",
    "MM/dd/yyyy HH:mm": "%m/%d/%Y %H:%M",
    "yyyy/MM/dd HH:mm": "%Y/%m/%d %H:%M",
    "yyyy-MM-dd": "%Y-%m-%d",
    "yyyyMMdd": "%Y%m%d",
    "MM/dd/yyyy": "%m/%d/%Y",
}


@dataclass(frozen=True)
class PlantedDataset:
    """Transactions with the persona each customer was drawn from; `columns` maps the project's
    logical input names onto this dataset's columns (None where it has no such column)."""

    name: str
    description: str
    planted_k: int
    separation: Separation
    transactions: pd.DataFrame
    labels: pd.DataFrame
    as_of_date: dt.date
    columns: dict[str, Optional[str]]
    timestamp_format: Optional[str]


@dataclass(frozen=True)
class Persona:
    """One persona's purchase process; ranges are uniform per-customer draws, in days before
    `as_of_date`. `orders_per_year` is the mean of a gamma with shape `rate_shape`;
    `order_value` the median of the customers' typical order values (lognormal, sigma
    `value_spread`); orders vary around a customer's value with lognormal sigma `basket_sigma`
    or, when `tail_alpha` is set, a Pareto tail of that index."""

    name: str
    share: float
    tenure_days: tuple[float, float]
    orders_per_year: float
    order_value: float
    rate_shape: float = 4.0
    value_spread: float = 0.3
    basket_sigma: float = 0.4
    tail_alpha: Optional[float] = None
    lapsed_days: Optional[tuple[float, float]] = None
    regularity: float = 1.0
    extra_lines: float = 0.0
    extra_units: float = 0.5
    category_weights: tuple[float, ...] = ()
    channel_weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class _Vocabulary:
    """How one retailer's export spells things."""

    customer_id: str
    order_ts: str
    amount: str
    timestamp_format: str
    id_prefix: str
    order_id: Optional[str] = None
    quantity: Optional[str] = None
    category: Optional[str] = None
    channel: Optional[str] = None
    order_prefix: str = ""
    decimals: int = 2


@dataclass(frozen=True)
class _Design:
    name: str
    description: str
    separation: Separation
    as_of_date: dt.date
    vocabulary: _Vocabulary
    personas: tuple[Persona, ...]
    noise_share: float = 0.0
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Customers:
    """Per-customer parameters of one group (a persona, or the noise customers)."""

    start: np.ndarray
    end: np.ndarray
    rate: np.ndarray
    typical_value: np.ndarray
    channel_probs: np.ndarray


# --- writing -----------------------------------------------------------------------------------


def write(dataset: PlantedDataset, folder: Path) -> None:
    """`folder/transactions/part-0.csv` and `folder/labels.csv`, comma-separated with a header."""
    (folder / "transactions").mkdir(parents=True, exist_ok=True)
    dataset.transactions.to_csv(folder / "transactions" / "part-0.csv", index=False)
    dataset.labels.to_csv(folder / "labels.csv", index=False)


# --- the reference yardstick -------------------------------------------------------------------


def reference_features(dataset: PlantedDataset) -> pd.DataFrame:
    """Recency, frequency, average order value and tenure per customer as of `as_of_date`, from
    lines dated on or before it: an order is a distinct order id, or a distinct purchase day
    when the dataset has none; an order's day is its earliest line's."""
    names = dataset.columns
    raw = dataset.transactions
    pattern = dataset.timestamp_format
    stamps = pd.to_datetime(raw[names["order_ts"]], format=STRFTIME[pattern] if pattern else "ISO8601")
    lines = pd.DataFrame(
        {
            "customer_id": raw[names["customer_id"]].astype(str),
            "day": stamps.dt.normalize(),
            "amount": raw[names["amount"]].astype(float),
        }
    )
    lines["order"] = raw[names["order_id"]].astype(str) if names["order_id"] else lines["day"]
    as_of = pd.Timestamp(dataset.as_of_date)
    lines = lines[lines["day"] <= as_of]
    orders = lines.groupby(["customer_id", "order"]).agg(day=("day", "min"), amount=("amount", "sum"))
    per_customer = orders.groupby(level="customer_id").agg(
        first=("day", "min"), last=("day", "max"), frequency=("amount", "size"), monetary=("amount", "sum")
    )
    return pd.DataFrame(
        {
            "recency_days": (as_of - per_customer["last"]).dt.days,
            "frequency": per_customer["frequency"],
            "avg_order_value": per_customer["monetary"] / per_customer["frequency"],
            "tenure_days": (as_of - per_customer["first"]).dt.days,
        }
    ).reset_index()


def best_achievable_ari(dataset: PlantedDataset, seed: int = 0) -> dict[str, float]:
    """Adjusted Rand index against the planted personas of K-means and a Gaussian mixture with
    the planted k, on log1p + standard-scaled reference features of the non-noise customers:
    what a plain clusterer reaches when it is told k."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture

    features = reference_features(dataset).merge(dataset.labels, on="customer_id", validate="one_to_one")
    features = features[features["persona"] != NOISE_PERSONA]
    logged = np.log1p(features[list(REFERENCE_FEATURES)].to_numpy(dtype=float))
    scaled = (logged - logged.mean(axis=0)) / np.where(logged.std(axis=0) > 0, logged.std(axis=0), 1.0)
    k = dataset.planted_k
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(scaled)
    mixture = GaussianMixture(k, n_init=5, reg_covar=1e-6, random_state=seed).fit(scaled).predict(scaled)
    truth = features["persona"].to_numpy()
    return {
        "kmeans": float(adjusted_rand_score(truth, kmeans)),
        "gmm": float(adjusted_rand_score(truth, mixture)),
    }


def summary(dataset: PlantedDataset) -> dict[str, object]:
    """The facts the benchmark's dataset table shows: size, noise and persona shares."""
    personas = dataset.labels["persona"]
    shares = personas[personas != NOISE_PERSONA].value_counts() / len(personas)
    return {
        "name": dataset.name,
        "planted_k": dataset.planted_k,
        "customers": len(personas),
        "separation": dataset.separation,
        "noise_share": float((personas == NOISE_PERSONA).mean()),
        "smallest_share": float(shares.min()),
        "largest_share": float(shares.max()),
        "lines": len(dataset.transactions),
    }


# --- the engine --------------------------------------------------------------------------------


def _build(design: _Design, seed: int, customers: int) -> PlantedDataset:
    """Draw every group's customers and orders, then spell them in the design's vocabulary."""
    rng = np.random.default_rng([seed, zlib.crc32(design.name.encode())])
    group_sizes = _group_sizes(design, customers)
    groups, orders = [], []
    first_customer = 0
    for persona_index, size in enumerate(group_sizes):
        if persona_index < len(design.personas):
            params = _persona_customers(rng, design, design.personas[persona_index], size=size)
        else:
            params = _noise_customers(rng, design, size)
        group_orders = _orders(rng, design, params, persona_index=persona_index)
        group_orders["customer"] += first_customer
        orders.append(group_orders)
        groups.append(np.full(size, persona_index if persona_index < len(design.personas) else NOISE_PERSONA))
        first_customer += size
    persona_of_customer = np.concatenate(groups)
    order_frame = pd.concat(orders, ignore_index=True)
    if design.vocabulary.order_id is None:
        order_frame = _one_order_per_day(order_frame)
    customer_ids = _customer_ids(rng, design.vocabulary.id_prefix, customers)
    transactions = _lines(rng, design, order_frame, customer_ids=customer_ids)
    names = [p.name for p in design.personas]
    labels = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "persona": persona_of_customer.astype(int),
            "persona_name": [names[p] if p >= 0 else "noise" for p in persona_of_customer],
        }
    ).sort_values("customer_id", ignore_index=True)
    vocabulary = design.vocabulary
    return PlantedDataset(
        name=design.name,
        description=design.description,
        planted_k=len(design.personas),
        separation=design.separation,
        transactions=transactions,
        labels=labels,
        as_of_date=design.as_of_date,
        columns={logical: getattr(vocabulary, logical) for logical in LOGICAL_COLUMNS},
        timestamp_format=vocabulary.timestamp_format,
    )


def _group_sizes(design: _Design, customers: int) -> list[int]:
    """Exact persona sizes by largest remainder (noise last), so shares are as designed."""
    noise = round(customers * design.noise_share)
    weights = np.array([p.share for p in design.personas])
    quotas = weights / weights.sum() * (customers - noise)
    sizes = np.floor(quotas).astype(int)
    shortfall = customers - noise - sizes.sum()
    sizes[np.argsort(sizes - quotas)[:shortfall]] += 1
    return [*sizes.tolist(), noise]


def _persona_customers(
    rng: np.random.Generator, design: _Design, persona: Persona, *, size: int
) -> _Customers:
    start = -rng.uniform(*persona.tenure_days, size)
    end = np.full(size, POST_PERIOD_DAYS + 1.0)
    if persona.lapsed_days is not None:
        end = np.maximum(-rng.uniform(*persona.lapsed_days, size), start)
    return _Customers(
        start=start,
        end=end,
        rate=rng.gamma(persona.rate_shape, persona.orders_per_year / persona.rate_shape, size),
        typical_value=persona.order_value * rng.lognormal(0.0, persona.value_spread, size),
        channel_probs=_preferences(rng, persona.channel_weights, len(design.channels), size=size),
    )


def _noise_customers(rng: np.random.Generator, design: _Design, size: int) -> _Customers:
    """Customers who follow no persona: every parameter drawn independently over the whole
    range the personas span, log-uniformly where the personas differ by factors."""
    personas = design.personas
    longest = max(p.tenure_days[1] for p in personas)
    rates = [p.orders_per_year for p in personas]
    values = [p.order_value for p in personas]
    start = -rng.uniform(0.0, longest, size)
    lapse = -rng.uniform(0.0, -start)
    end = np.where(rng.random(size) < 0.5, lapse, POST_PERIOD_DAYS + 1.0)
    return _Customers(
        start=start,
        end=end,
        rate=np.exp(rng.uniform(np.log(min(rates) / 2 + 0.1), np.log(max(rates) * 2), size)),
        typical_value=np.exp(rng.uniform(np.log(min(values) / 3), np.log(max(values) * 3), size)),
        channel_probs=_preferences(rng, (), len(design.channels), size=size),
    )


def _preferences(
    rng: np.random.Generator, weights: tuple[float, ...], levels: int, *, size: int
) -> np.ndarray:
    """Each customer's own mix of categories or channels: a Dirichlet around the persona's."""
    if levels == 0:
        return np.ones((size, 1))
    base = np.asarray(weights if weights else (1.0,) * levels, dtype=float)
    draws = rng.gamma(np.tile(base / base.sum() * 8.0, (size, 1)))
    return draws / draws.sum(axis=1, keepdims=True)


def _orders(
    rng: np.random.Generator, design: _Design, params: _Customers, *, persona_index: int
) -> pd.DataFrame:
    """A first order on each customer's start day, then gamma-renewal gaps until the customer
    lapses or the post period ends; order values around the customer's typical value."""
    persona = design.personas[persona_index] if persona_index < len(design.personas) else None
    regularity = persona.regularity if persona else 1.0
    mean_gap = 365.0 / np.maximum(params.rate, 1e-6)
    owners, times = [np.arange(params.start.size)], [params.start.copy()]
    current, alive = params.start.copy(), np.arange(params.start.size)
    while alive.size:
        current[alive] += rng.gamma(regularity, mean_gap[alive] / regularity)
        alive = alive[current[alive] < params.end[alive]]
        owners.append(alive)
        times.append(current[alive])
    owner, time = np.concatenate(owners), np.concatenate(times)
    if persona is not None and persona.tail_alpha is not None:
        alpha = persona.tail_alpha
        spread = (1.0 + rng.pareto(alpha, owner.size)) * (alpha - 1.0) / alpha
    else:
        sigma = persona.basket_sigma if persona else rng.uniform(0.2, 1.0)
        spread = rng.lognormal(-(sigma**2) / 2, sigma, owner.size)
    return pd.DataFrame(
        {
            "customer": owner,
            "day": np.floor(time).astype(int),
            "value": params.typical_value[owner] * spread,
            "channel": _pick(rng, params.channel_probs[owner]),
            "extra_lines": persona.extra_lines
            if persona
            else np.mean([p.extra_lines for p in design.personas]),
            "extra_units": persona.extra_units if persona else 0.5,
            "persona": persona_index,
        }
    )


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One level per row from each row's probabilities (inverse CDF)."""
    cumulative = probs.cumsum(axis=1)
    drawn = rng.random(probs.shape[0])[:, None] * cumulative[:, -1:]
    return (drawn > cumulative).sum(axis=1)


def _one_order_per_day(orders: pd.DataFrame) -> pd.DataFrame:
    """Without order ids an order is a customer's purchase day: same-day orders become one."""
    return (
        orders.groupby(["customer", "day"], as_index=False, sort=False)
        .agg(
            value=("value", "sum"),
            channel=("channel", "first"),
            extra_lines=("extra_lines", "first"),
            extra_units=("extra_units", "first"),
            persona=("persona", "first"),
        )
        .assign(extra_lines=0.0)
    )


def _customer_ids(rng: np.random.Generator, prefix: str, customers: int) -> np.ndarray:
    """Shuffled numbers, so an id says nothing about the persona."""
    numbers = rng.permutation(customers) + 10_000 + int(rng.integers(0, 50_000))
    return np.char.add(prefix, numbers.astype(str))


def _lines(
    rng: np.random.Generator, design: _Design, orders: pd.DataFrame, *, customer_ids: np.ndarray
) -> pd.DataFrame:
    """Split orders into lines, then spell them: timestamps, order ids, rounded amounts."""
    vocabulary = design.vocabulary
    seconds = (
        orders["day"].to_numpy() * 86_400 + np.clip(rng.normal(14.0, 3.5, len(orders)), 7.0, 22.9) * 3600
    )
    orders = orders.assign(seconds=seconds.astype(np.int64)).sort_values(
        ["seconds", "customer"], ignore_index=True
    )
    line_counts = 1 + rng.poisson(orders["extra_lines"].to_numpy())
    order_of_line = np.repeat(np.arange(len(orders)), line_counts)
    weights = rng.gamma(2.0, 1.0, order_of_line.size)
    weights /= np.bincount(order_of_line, weights)[order_of_line]
    amount = orders["value"].to_numpy()[order_of_line] * weights
    unit = 10.0**-vocabulary.decimals
    amount = np.maximum(np.round(amount, vocabulary.decimals), unit)
    stamps = _format_timestamps(orders["seconds"].to_numpy(), design.as_of_date, vocabulary.timestamp_format)
    columns: dict[str, object] = {
        vocabulary.customer_id: customer_ids[orders["customer"].to_numpy()[order_of_line]],
        vocabulary.order_ts: stamps[order_of_line],
    }
    if vocabulary.order_id:
        numbers = (order_of_line + 100_001).astype(str)
        columns[vocabulary.order_id] = np.char.add(vocabulary.order_prefix, numbers)
    columns[vocabulary.amount] = amount.astype(int) if vocabulary.decimals == 0 else amount
    if vocabulary.quantity:
        columns[vocabulary.quantity] = 1 + rng.poisson(orders["extra_units"].to_numpy()[order_of_line])
    if vocabulary.category:
        probs = _category_probs(rng, design, orders, order_of_line=order_of_line)
        columns[vocabulary.category] = np.array(design.categories)[_pick(rng, probs)]
    if vocabulary.channel:
        columns[vocabulary.channel] = np.array(design.channels)[orders["channel"].to_numpy()[order_of_line]]
    return _distinct_lines(pd.DataFrame(columns), vocabulary)


def _format_timestamps(seconds: np.ndarray, as_of_date: dt.date, pattern: str) -> np.ndarray:
    """Seconds from the start of `as_of_date` spelled in a Spark datetime pattern, built from
    zero-padded fields (strftime on a million stamps takes seconds; this takes a fraction)."""
    days, second_of_day = np.divmod(seconds, 86_400)
    unique_days, day_index = np.unique(days, return_inverse=True)
    dates = pd.DatetimeIndex(pd.Timestamp(as_of_date) + pd.to_timedelta(unique_days, "D"))
    padded = np.char.zfill(np.arange(100).astype(str), 2)
    fields = {
        "yyyy": dates.year.to_numpy().astype(str)[day_index],
        "MM": padded[dates.month.to_numpy()][day_index],
        "dd": padded[dates.day.to_numpy()][day_index],
        "HH": padded[second_of_day // 3600],
        "mm": padded[second_of_day // 60 % 60],
        "ss": padded[second_of_day % 60],
    }
    spelled = np.full(seconds.size, "", dtype="U1")
    for token in re.split(r"(yyyy|MM|dd|HH|mm|ss|'[^']*')", pattern):
        if token:
            spelled = np.char.add(spelled, fields.get(token, token.strip("'")))
    return spelled


def _category_probs(
    rng: np.random.Generator, design: _Design, orders: pd.DataFrame, *, order_of_line: np.ndarray
) -> np.ndarray:
    """Category mix per line: the persona's weights, sharpened or blurred per customer."""
    levels = len(design.categories)
    persona_weights = [p.category_weights or (1.0,) * levels for p in design.personas] + [(1.0,) * levels]
    table = np.array(persona_weights, dtype=float)
    persona = orders["persona"].to_numpy()[order_of_line]
    customer_tilt = rng.gamma(4.0, 0.25, (int(orders["customer"].max()) + 1, levels))
    return table[persona] * customer_tilt[orders["customer"].to_numpy()[order_of_line]]


def _distinct_lines(lines: pd.DataFrame, vocabulary: _Vocabulary) -> pd.DataFrame:
    """Identical lines within one order would be taken for duplicated exports and dropped: nudge
    the amount of the repeats by one currency unit until every line is distinct."""
    if vocabulary.order_id is None:
        return lines
    unit = 1 if vocabulary.decimals == 0 else 10.0**-vocabulary.decimals
    repeat = lines.groupby(list(lines.columns), sort=False).cumcount()
    while repeat.any():
        lines[vocabulary.amount] = lines[vocabulary.amount] + repeat * unit
        if vocabulary.decimals:
            lines[vocabulary.amount] = lines[vocabulary.amount].round(vocabulary.decimals)
        repeat = lines.groupby(list(lines.columns), sort=False).cumcount()
    return lines


# --- well-separated customer bases -------------------------------------------------------------


def fashion_webshop(seed: int, customers: int = 6000) -> PlantedDataset:
    """An online fashion shop's textbook RFM segments: champions, loyal regulars, newcomers,
    at-risk former regulars and lapsed one-off buyers. Invoices of several lines, departments
    and sales channels. Hard only where the loyal regulars' longest gaps approach the at-risk
    customers' recency, and in the one-order customers' discrete frequency."""
    return _build(
        _Design(
            name="fashion_webshop",
            description="Classic RFM segments differing in all four of recency, frequency, value and tenure.",
            separation="well_separated",
            as_of_date=dt.date(2025, 12, 31),
            vocabulary=_Vocabulary(
                "client_ref",
                "purchased_at",
                "line_total",
                "yyyy-MM-dd HH:mm:ss",
                "CL",
                order_id="invoice",
                quantity="units",
                category="dept",
                channel="source",
                order_prefix="INV-",
            ),
            personas=(
                Persona(
                    "champions",
                    0.12,
                    (700, 1400),
                    18.0,
                    160.0,
                    rate_shape=10.0,
                    regularity=2.0,
                    extra_lines=1.5,
                    channel_weights=(3, 5, 1),
                ),
                Persona(
                    "loyal_regulars",
                    0.30,
                    (400, 1400),
                    5.0,
                    60.0,
                    rate_shape=8.0,
                    regularity=4.0,
                    extra_lines=1.0,
                ),
                Persona("newcomers", 0.20, (3, 90), 3.0, 60.0, extra_lines=0.8, channel_weights=(2, 5, 1)),
                Persona(
                    "at_risk",
                    0.15,
                    (800, 1400),
                    8.0,
                    120.0,
                    rate_shape=6.0,
                    lapsed_days=(300, 500),
                    extra_lines=1.2,
                ),
                Persona(
                    "lapsed_one_offs",
                    0.23,
                    (600, 1400),
                    0.02,
                    45.0,
                    extra_lines=0.5,
                    channel_weights=(5, 1, 2),
                ),
            ),
            categories=("womenswear", "menswear", "shoes", "accessories", "kids"),
            channels=("web", "app", "store"),
        ),
        seed,
        customers,
    )


def grocery_delivery_cents(seed: int, customers: int = 3000) -> PlantedDataset:
    """A grocery delivery service billing in cents: weekly family shops, near-daily top-ups,
    monthly stock-ups and trial customers who churned. Baskets of many lines per aisle. Hard
    for anything that does not log-scale: order values in the tens of thousands of cents and
    frequencies in the hundreds."""
    return _build(
        _Design(
            name="grocery_delivery_cents",
            description="Weekly, near-daily and monthly shoppers and churned trialists, amounts in cents.",
            separation="well_separated",
            as_of_date=dt.date(2026, 3, 31),
            vocabulary=_Vocabulary(
                "shopper_id",
                "delivered_at",
                "amount_cents",
                "dd/MM/yyyy HH:mm",
                "SHP",
                order_id="basket_id",
                quantity="qty",
                category="aisle",
                order_prefix="B",
                decimals=0,
            ),
            personas=(
                Persona(
                    "weekly_family",
                    0.35,
                    (250, 450),
                    50.0,
                    9000.0,
                    rate_shape=8.0,
                    regularity=4.0,
                    extra_lines=2.0,
                ),
                Persona(
                    "top_up_regulars",
                    0.15,
                    (250, 450),
                    150.0,
                    1000.0,
                    rate_shape=8.0,
                    regularity=2.0,
                    extra_lines=1.0,
                ),
                Persona(
                    "monthly_stock_up",
                    0.30,
                    (250, 450),
                    11.0,
                    30000.0,
                    rate_shape=8.0,
                    regularity=4.0,
                    extra_lines=4.0,
                ),
                Persona(
                    "churned_trialists",
                    0.20,
                    (200, 450),
                    6.0,
                    5000.0,
                    lapsed_days=(120, 200),
                    extra_lines=2.0,
                ),
            ),
            categories=("produce", "dairy", "bakery", "pantry", "frozen", "household"),
        ),
        seed,
        customers,
    )


def b2b_wholesale(seed: int, customers: int = 3000) -> PlantedDataset:
    """A wholesaler's trade accounts: a few key accounts ordering weekly in the tens of
    thousands, regular trade customers and occasional small shops. Sales documents of many
    lines, dates without a time. Hard because the key accounts are 8% and sit far out on every
    axis, which a variance-hungry method may split instead of the bulk."""
    return _build(
        _Design(
            name="b2b_wholesale",
            description="Key accounts, regular trade and occasional shops; orders of thousands, many lines.",
            separation="well_separated",
            as_of_date=dt.date(2025, 9, 30),
            vocabulary=_Vocabulary(
                "account_no",
                "doc_date",
                "net_value",
                "yyyy-MM-dd",
                "ACC",
                order_id="doc_no",
                quantity="qty",
                category="product_group",
                order_prefix="SO",
            ),
            personas=(
                Persona(
                    "key_accounts",
                    0.08,
                    (500, 1100),
                    50.0,
                    60000.0,
                    rate_shape=8.0,
                    regularity=3.0,
                    extra_lines=6.0,
                    extra_units=20.0,
                ),
                Persona(
                    "regular_trade",
                    0.42,
                    (500, 1100),
                    12.0,
                    4000.0,
                    rate_shape=8.0,
                    regularity=2.0,
                    extra_lines=5.0,
                    extra_units=6.0,
                ),
                Persona(
                    "occasional_shops",
                    0.50,
                    (500, 1100),
                    2.5,
                    500.0,
                    regularity=2.0,
                    extra_lines=2.0,
                    extra_units=2.0,
                ),
            ),
            categories=("beverages", "dry_goods", "chilled", "cleaning", "packaging"),
        ),
        seed,
        customers,
    )


def konbini_app_yen(seed: int, customers: int = 5000) -> PlantedDataset:
    """A convenience-store chain's membership app in yen: daily commuters, lunch regulars,
    weekend families, new app installs, campaign drop-outs and rare visitors. One line per
    member and day, no receipt number, dates without a time. Hard because the daily buyers
    merge same-day visits and the drop-outs and rare visitors meet at moderate recency."""
    return _build(
        _Design(
            name="konbini_app_yen",
            description="Daily to yearly convenience-store members in yen, one line per purchase day.",
            separation="well_separated",
            as_of_date=dt.date(2026, 1, 31),
            vocabulary=_Vocabulary(
                "member_no", "purchase_date", "yen", "yyyyMMdd", "M", quantity="items", decimals=0
            ),
            personas=(
                Persona(
                    "daily_commuters",
                    0.20,
                    (300, 700),
                    220.0,
                    650.0,
                    rate_shape=8.0,
                    regularity=3.0,
                    basket_sigma=0.3,
                ),
                Persona("lunch_regulars", 0.25, (300, 700), 50.0, 1000.0, rate_shape=8.0, regularity=2.0),
                Persona(
                    "weekend_families",
                    0.15,
                    (300, 700),
                    20.0,
                    3500.0,
                    rate_shape=8.0,
                    regularity=2.0,
                    extra_units=4.0,
                ),
                Persona("new_installs", 0.15, (3, 40), 30.0, 1000.0),
                Persona("campaign_dropouts", 0.15, (400, 700), 25.0, 800.0, lapsed_days=(150, 250)),
                Persona("rare_visitors", 0.10, (300, 700), 2.0, 1500.0, regularity=2.0),
            ),
        ),
        seed,
        customers,
    )


def pharmacy_refills(seed: int, customers: int = 4000) -> PlantedDataset:
    """A pharmacy chain's dispensing records: chronic patients on monthly refills, patients
    with an acute prescription now and then (about one a year), chronic patients who moved
    away, and a 2% specialty-therapy group with very expensive monthly refills. Hard because
    one persona is 2% of customers."""
    return _build(
        _Design(
            name="pharmacy_refills",
            description="Regular monthly refills, one-off scripts, lapsed refills and a 2% specialty group.",
            separation="well_separated",
            as_of_date=dt.date(2025, 12, 31),
            vocabulary=_Vocabulary(
                "patient_key",
                "dispensed_on",
                "paid",
                "MM/dd/yyyy",
                "PT",
                order_id="rx_number",
                quantity="units",
                category="therapy_area",
                order_prefix="RX",
            ),
            personas=(
                Persona(
                    "chronic_refills",
                    0.45,
                    (700, 1500),
                    12.0,
                    35.0,
                    rate_shape=20.0,
                    regularity=10.0,
                    category_weights=(4, 4, 2, 0.2, 1, 0.1),
                ),
                Persona(
                    "acute_one_offs", 0.38, (700, 1500), 1.0, 20.0, category_weights=(0.5, 0.2, 2, 5, 4, 0.1)
                ),
                Persona(
                    "lapsed_chronic",
                    0.15,
                    (700, 1500),
                    12.0,
                    35.0,
                    rate_shape=20.0,
                    regularity=10.0,
                    lapsed_days=(150, 400),
                    category_weights=(4, 4, 2, 0.2, 1, 0.1),
                ),
                Persona(
                    "specialty_therapy",
                    0.02,
                    (100, 900),
                    12.0,
                    2500.0,
                    rate_shape=20.0,
                    regularity=8.0,
                    category_weights=(0.1, 0.1, 0.1, 0.1, 0.1, 8),
                ),
            ),
            categories=("cardio", "diabetes", "respiratory", "antibiotics", "pain", "specialty"),
        ),
        seed,
        customers,
    )


def marketplace_with_noise(seed: int, customers: int = 6000) -> PlantedDataset:
    """An online marketplace: power buyers, bargain hunters, big-ticket occasional buyers, new
    sign-ups and dormant accounts, plus 4% of accounts that follow no pattern (resellers,
    shared and test accounts). Hard because the noise customers sit between the personas."""
    return _build(
        _Design(
            name="marketplace_with_noise",
            description="Five separated marketplace personas plus 4% noise accounts with random behaviour.",
            separation="well_separated",
            as_of_date=dt.date(2026, 2, 28),
            vocabulary=_Vocabulary(
                "buyer",
                "ts",
                "gmv",
                "yyyy-MM-dd'T'HH:mm:ss",
                "u_",
                order_id="order_ref",
                quantity="qty",
                category="vertical",
                channel="device",
                order_prefix="MP",
            ),
            personas=(
                Persona(
                    "power_buyers",
                    0.10,
                    (600, 1200),
                    30.0,
                    45.0,
                    rate_shape=8.0,
                    regularity=2.0,
                    extra_lines=1.0,
                ),
                Persona("bargain_hunters", 0.30, (300, 1200), 10.0, 12.0, rate_shape=8.0, regularity=2.0),
                Persona("big_ticket_occasional", 0.15, (300, 1200), 1.5, 400.0, rate_shape=8.0),
                Persona("new_sign_ups", 0.25, (2, 60), 6.0, 35.0),
                Persona("dormant", 0.20, (700, 1200), 5.0, 30.0, lapsed_days=(400, 650)),
            ),
            noise_share=0.04,
            categories=("electronics", "home", "fashion", "toys", "books"),
            channels=("android", "ios", "desktop"),
        ),
        seed,
        customers,
    )


def travel_agency(seed: int, customers: int = 4000) -> PlantedDataset:
    """A travel agency's bookings: corporate travellers booking monthly, holidaymakers booking
    one package a year, and one-time customers from years ago. Yearly purchase rhythm, few
    orders per customer. Hard because most customers have one to five bookings."""
    return _build(
        _Design(
            name="travel_agency",
            description="Monthly corporate bookers, yearly holidaymakers and one-time past customers.",
            separation="well_separated",
            as_of_date=dt.date(2025, 10, 31),
            vocabulary=_Vocabulary(
                "traveller_id",
                "booked",
                "fare",
                "yyyy/MM/dd HH:mm",
                "TR",
                order_id="booking_ref",
                quantity="pax",
                category="product",
                channel="booked_via",
                order_prefix="BK",
            ),
            personas=(
                Persona(
                    "corporate_travellers",
                    0.25,
                    (700, 2000),
                    15.0,
                    650.0,
                    rate_shape=8.0,
                    extra_lines=0.5,
                    extra_units=0.1,
                    category_weights=(6, 3, 0.2, 1),
                    channel_weights=(4, 1, 1),
                ),
                Persona(
                    "annual_holidaymakers",
                    0.55,
                    (700, 2000),
                    1.0,
                    2800.0,
                    rate_shape=20.0,
                    regularity=6.0,
                    extra_lines=0.3,
                    extra_units=2.0,
                    category_weights=(1, 1, 6, 0.2),
                ),
                Persona("one_time_past", 0.20, (900, 2000), 0.01, 900.0, extra_units=1.0),
            ),
            categories=("flight", "hotel", "package", "rail"),
            channels=("agent", "online", "phone"),
        ),
        seed,
        customers,
    )


def pet_supplies_seven(seed: int, customers: int = 7000) -> PlantedDataset:
    """A pet-supplies shop with seven personas: autoship subscribers, breeders buying in bulk,
    treat impulse buyers, new puppy owners, lapsed autoship, one-and-done buyers and seasonal
    gift buyers. Hard by the number of personas in four features."""
    return _build(
        _Design(
            name="pet_supplies_seven",
            description="Seven pet-shop personas, each set apart by its own mix of the four features.",
            separation="well_separated",
            as_of_date=dt.date(2026, 1, 31),
            vocabulary=_Vocabulary(
                "customer_number",
                "order_date",
                "order_amount",
                "yyyy-MM-dd HH:mm:ss",
                "PET",
                order_id="order_no",
                quantity="qty_ordered",
                category="product_line",
                channel="sales_channel",
                order_prefix="P",
            ),
            personas=(
                Persona(
                    "autoship_subscribers", 0.20, (300, 1000), 12.0, 55.0, rate_shape=20.0, regularity=8.0
                ),
                Persona(
                    "bulk_breeders",
                    0.05,
                    (300, 1000),
                    20.0,
                    600.0,
                    rate_shape=8.0,
                    regularity=3.0,
                    extra_lines=3.0,
                ),
                Persona("treat_impulse", 0.20, (300, 1000), 40.0, 12.0, rate_shape=8.0, regularity=2.0),
                Persona("new_puppy", 0.15, (5, 60), 10.0, 150.0, extra_lines=2.0),
                Persona(
                    "lapsed_autoship",
                    0.15,
                    (500, 1000),
                    12.0,
                    55.0,
                    rate_shape=20.0,
                    regularity=8.0,
                    lapsed_days=(180, 300),
                ),
                Persona("one_and_done", 0.15, (500, 1000), 0.01, 35.0),
                Persona("seasonal_gifters", 0.10, (600, 1000), 1.0, 110.0, rate_shape=20.0, regularity=8.0),
            ),
            categories=("dog_food", "cat_food", "treats", "toys", "health", "aquatics"),
            channels=("web", "app", "phone"),
        ),
        seed,
        customers,
    )


# --- overlapping customer bases ----------------------------------------------------------------


def electronics_heavy_tail(seed: int, customers: int = 6000) -> PlantedDataset:
    """A consumer-electronics chain where spend is Pareto-tailed within every persona:
    accessory buyers, gadget enthusiasts, premium upgraders and gamers, plus 5% noise. Hard
    because a single laptop can make an accessory buyer look like a premium upgrader."""
    return _build(
        _Design(
            name="electronics_heavy_tail",
            description="Personas that differ in order value and frequency under Pareto-tailed spend.",
            separation="overlapping",
            as_of_date=dt.date(2025, 11, 30),
            vocabulary=_Vocabulary(
                "cust_no",
                "sale_time",
                "sale_value",
                "dd/MM/yyyy HH:mm",
                "E",
                order_id="receipt",
                quantity="qty",
                category="merch_class",
                channel="sold_via",
                order_prefix="R",
            ),
            personas=(
                Persona(
                    "accessory_buyers",
                    0.40,
                    (400, 1500),
                    2.0,
                    25.0,
                    rate_shape=8.0,
                    tail_alpha=1.5,
                    value_spread=1.0,
                ),
                Persona(
                    "gadget_enthusiasts",
                    0.25,
                    (400, 1500),
                    6.0,
                    150.0,
                    rate_shape=8.0,
                    tail_alpha=1.5,
                    value_spread=0.9,
                ),
                Persona(
                    "premium_upgraders",
                    0.20,
                    (400, 1500),
                    1.0,
                    2000.0,
                    rate_shape=8.0,
                    tail_alpha=1.6,
                    value_spread=0.9,
                ),
                Persona(
                    "gamers", 0.15, (400, 1500), 15.0, 80.0, rate_shape=8.0, tail_alpha=1.4, value_spread=1.0
                ),
            ),
            noise_share=0.05,
            categories=("phones", "laptops", "audio", "accessories", "gaming", "tv"),
            channels=("store", "online"),
        ),
        seed,
        customers,
    )


def coffee_frequency_only(seed: int, customers: int = 4000) -> PlantedDataset:
    """A coffee chain's loyalty cards: daily regulars, several-a-week and occasional guests who
    differ only in how often they come (same tenure, same spend per visit). One line per guest
    and day, no receipt id. Hard because only one feature carries the personas and per-guest
    rates are widely spread."""
    return _build(
        _Design(
            name="coffee_frequency_only",
            description="Three personas that differ only in visit frequency.",
            separation="overlapping",
            as_of_date=dt.date(2026, 3, 31),
            vocabulary=_Vocabulary("guest", "visit", "spend", "dd.MM.yyyy HH:mm", "G"),
            personas=(
                Persona("daily_regulars", 0.25, (300, 540), 250.0, 5.5, rate_shape=12.0),
                Persona("several_a_week", 0.35, (300, 540), 60.0, 5.5, rate_shape=12.0),
                Persona("occasional", 0.40, (300, 540), 15.0, 5.5, rate_shape=12.0),
            ),
        ),
        seed,
        customers,
    )


def subscription_recency_only(seed: int, customers: int = 5000) -> PlantedDataset:
    """A meal-kit subscription whose personas differ only in when subscribers stopped: active,
    cooling, lapsing, churned, with overlapping stop windows. Hard because recency (and the
    orders it cuts off) is the only signal and the windows overlap."""
    return _build(
        _Design(
            name="subscription_recency_only",
            description="Four personas that differ only in when they stopped ordering.",
            separation="overlapping",
            as_of_date=dt.date(2025, 8, 31),
            vocabulary=_Vocabulary(
                "subscriber",
                "shipped_at",
                "charge",
                "yyyy-MM-dd HH:mm:ss",
                "SUB",
                order_id="shipment_id",
                quantity="boxes",
                order_prefix="SH",
            ),
            personas=(
                Persona("active", 0.40, (400, 900), 20.0, 60.0, regularity=4.0),
                Persona("cooling", 0.20, (400, 900), 20.0, 60.0, regularity=4.0, lapsed_days=(30, 120)),
                Persona("lapsing", 0.20, (400, 900), 20.0, 60.0, regularity=4.0, lapsed_days=(100, 250)),
                Persona("churned", 0.20, (400, 900), 20.0, 60.0, regularity=4.0, lapsed_days=(220, 400)),
            ),
        ),
        seed,
        customers,
    )


def acquisition_cohorts(seed: int, customers: int = 5000) -> PlantedDataset:
    """A webshop whose personas are acquisition cohorts with overlapping sign-up windows and the
    same behaviour once acquired. Hard because tenure, and the orders that accumulate with it,
    is the only signal."""
    return _build(
        _Design(
            name="acquisition_cohorts",
            description="Five acquisition cohorts that differ only in tenure.",
            separation="overlapping",
            as_of_date=dt.date(2026, 1, 31),
            vocabulary=_Vocabulary(
                "account",
                "created",
                "order_total",
                "MM/dd/yyyy HH:mm",
                "A",
                order_id="order_number",
                quantity="items",
                order_prefix="#",
            ),
            personas=(
                Persona(
                    "cohort_latest",
                    0.25,
                    (20, 150),
                    6.0,
                    30.0,
                    rate_shape=20.0,
                    regularity=6.0,
                    value_spread=0.25,
                    basket_sigma=0.3,
                ),
                Persona(
                    "cohort_last_year",
                    0.25,
                    (150, 400),
                    6.0,
                    40.0,
                    rate_shape=20.0,
                    regularity=6.0,
                    value_spread=0.25,
                    basket_sigma=0.3,
                ),
                Persona(
                    "cohort_two_years",
                    0.20,
                    (350, 700),
                    6.0,
                    52.0,
                    rate_shape=20.0,
                    regularity=6.0,
                    value_spread=0.25,
                    basket_sigma=0.3,
                ),
                Persona(
                    "cohort_three_years",
                    0.15,
                    (650, 1000),
                    6.0,
                    66.0,
                    rate_shape=20.0,
                    regularity=6.0,
                    value_spread=0.25,
                    basket_sigma=0.3,
                ),
                Persona(
                    "cohort_founding",
                    0.15,
                    (950, 1400),
                    6.0,
                    85.0,
                    rate_shape=20.0,
                    regularity=6.0,
                    value_spread=0.25,
                    basket_sigma=0.3,
                ),
            ),
        ),
        seed,
        customers,
    )


def beauty_omnichannel(seed: int, customers: int = 5000) -> PlantedDataset:
    """A beauty retailer whose personas are mostly about channel and category (store
    loyalists, online bargain seekers, app replenishers, fragrance gift buyers) with only
    mild differences in frequency and basket. Hard because the RFM features carry little of
    what separates them."""
    return _build(
        _Design(
            name="beauty_omnichannel",
            description="Channel- and category-driven personas with mild RFM differences.",
            separation="overlapping",
            as_of_date=dt.date(2025, 12, 31),
            vocabulary=_Vocabulary(
                "member_id",
                "txn_datetime",
                "net_sales",
                "yyyy-MM-dd HH:mm:ss",
                "BM",
                order_id="ticket",
                quantity="qty",
                category="product_family",
                channel="touchpoint",
                order_prefix="T",
            ),
            personas=(
                Persona(
                    "store_loyalists",
                    0.35,
                    (300, 1200),
                    3.0,
                    90.0,
                    rate_shape=8.0,
                    channel_weights=(8, 1, 1),
                    extra_lines=1.0,
                ),
                Persona(
                    "online_bargain",
                    0.30,
                    (300, 1200),
                    12.0,
                    25.0,
                    rate_shape=8.0,
                    channel_weights=(1, 6, 3),
                    extra_lines=1.0,
                ),
                Persona(
                    "app_replenishers",
                    0.20,
                    (300, 1200),
                    24.0,
                    35.0,
                    rate_shape=8.0,
                    regularity=6.0,
                    value_spread=0.2,
                    channel_weights=(1, 2, 8),
                    category_weights=(6, 1, 0.5, 3),
                ),
                Persona(
                    "fragrance_gifters",
                    0.15,
                    (300, 1200),
                    0.8,
                    140.0,
                    rate_shape=8.0,
                    category_weights=(1, 1, 8, 1),
                ),
            ),
            categories=("skincare", "makeup", "fragrance", "haircare"),
            channels=("store", "web", "app"),
        ),
        seed,
        customers,
    )


def gaming_whales_cents(seed: int, customers: int = 6000) -> PlantedDataset:
    """A mobile game's in-app purchases in cents: whales, dolphins, minnows, battle-pass
    regulars and lapsed spenders, with Pareto-tailed purchases and 3% noise players. Hard
    because tails blur value and the lapsed spenders' stop dates run into the active ones."""
    return _build(
        _Design(
            name="gaming_whales_cents",
            description="Spender tiers under Pareto-tailed purchases, amounts in cents, 3% noise.",
            separation="overlapping",
            as_of_date=dt.date(2026, 3, 31),
            vocabulary=_Vocabulary(
                "player_id",
                "purchased",
                "price_cents",
                "yyyy-MM-dd'T'HH:mm:ss",
                "P",
                order_id="txn_id",
                category="item_type",
                channel="platform",
                order_prefix="G",
                decimals=0,
            ),
            personas=(
                Persona("whales", 0.03, (300, 700), 100.0, 5000.0, tail_alpha=1.6, value_spread=0.8),
                Persona("dolphins", 0.12, (300, 700), 30.0, 1500.0, tail_alpha=1.8, value_spread=0.8),
                Persona("minnows", 0.35, (300, 700), 3.0, 250.0, tail_alpha=2.0, value_spread=0.8),
                Persona(
                    "battle_pass_regulars", 0.20, (300, 700), 12.0, 999.0, regularity=8.0, value_spread=0.1
                ),
                Persona(
                    "lapsed_spenders",
                    0.30,
                    (300, 700),
                    10.0,
                    800.0,
                    lapsed_days=(120, 300),
                    tail_alpha=1.8,
                    value_spread=0.8,
                ),
            ),
            noise_share=0.03,
            categories=("gems", "skins", "battle_pass", "bundles"),
            channels=("ios", "android", "pc"),
        ),
        seed,
        customers,
    )


def diy_eight_personas(seed: int, customers: int = 8000) -> PlantedDataset:
    """A German DIY chain with eight personas of very different sizes (2% to 25%): trade
    professionals, garden weekenders, renovators, decor browsers, new homeowners, lapsed
    project customers, seasonal visitors and bulk contractors; 2% noise. Hard by the number of
    personas, their overlap and the small ones."""
    return _build(
        _Design(
            name="diy_eight_personas",
            description="Eight overlapping DIY personas from 2% to 25% of customers, 2% noise.",
            separation="overlapping",
            as_of_date=dt.date(2025, 6, 30),
            vocabulary=_Vocabulary(
                "kundennr",
                "belegdatum",
                "umsatz",
                "dd.MM.yyyy HH:mm",
                "K",
                order_id="beleg",
                quantity="menge",
                category="warengruppe",
                channel="kanal",
                order_prefix="BL",
            ),
            personas=(
                Persona("trade_pros", 0.06, (300, 1400), 40.0, 180.0, rate_shape=8.0, extra_lines=2.0),
                Persona("garden_weekenders", 0.20, (200, 1400), 8.0, 70.0, rate_shape=8.0, extra_lines=1.0),
                Persona(
                    "renovators",
                    0.10,
                    (60, 400),
                    12.0,
                    250.0,
                    rate_shape=8.0,
                    lapsed_days=(0, 200),
                    extra_lines=2.0,
                ),
                Persona("decor_browsers", 0.25, (100, 1400), 4.0, 40.0, rate_shape=8.0),
                Persona("new_homeowners", 0.12, (10, 150), 15.0, 150.0, rate_shape=8.0, extra_lines=1.5),
                Persona(
                    "lapsed_project", 0.15, (400, 1400), 6.0, 120.0, rate_shape=8.0, lapsed_days=(250, 700)
                ),
                Persona("seasonal_visitors", 0.10, (300, 1400), 2.0, 60.0, rate_shape=8.0),
                Persona("bulk_contractors", 0.02, (300, 1400), 20.0, 1200.0, rate_shape=8.0, extra_lines=4.0),
            ),
            noise_share=0.02,
            categories=("garden", "tools", "paint", "timber", "plumbing", "electrical", "decor"),
            channels=("filiale", "online"),
        ),
        seed,
        customers,
    )


def bookshop_long_tail(seed: int, customers: int = 6000) -> PlantedDataset:
    """An independent bookshop's card holders, persona sizes from 50% down to 2%, with
    lognormal spend spread (sigma >= 1) in every persona: casual readers, book-club members,
    students, collectors, gift buyers and libraries. One line per reader and day, no receipt
    id. Hard because heavy spend tails and a 50% persona swamp the small ones."""
    return _build(
        _Design(
            name="bookshop_long_tail",
            description="Six bookshop personas of 50% to 2%, heavy-tailed spend, one line per purchase day.",
            separation="overlapping",
            as_of_date=dt.date(2025, 12, 31),
            vocabulary=_Vocabulary(
                "reader", "date", "price", "yyyy-MM-dd", "R", quantity="copies", category="genre"
            ),
            personas=(
                Persona(
                    "casual_readers",
                    0.50,
                    (500, 1400),
                    2.0,
                    18.0,
                    rate_shape=8.0,
                    value_spread=1.0,
                    basket_sigma=1.0,
                ),
                Persona(
                    "book_club",
                    0.20,
                    (500, 1400),
                    14.0,
                    22.0,
                    rate_shape=8.0,
                    value_spread=1.0,
                    regularity=4.0,
                ),
                Persona(
                    "students",
                    0.15,
                    (60, 400),
                    6.0,
                    45.0,
                    rate_shape=8.0,
                    value_spread=1.0,
                    lapsed_days=(0, 200),
                ),
                Persona(
                    "collectors",
                    0.08,
                    (500, 1400),
                    8.0,
                    150.0,
                    rate_shape=8.0,
                    value_spread=1.2,
                    basket_sigma=1.0,
                ),
                Persona(
                    "gift_buyers",
                    0.05,
                    (500, 1400),
                    1.0,
                    40.0,
                    rate_shape=8.0,
                    value_spread=1.0,
                    regularity=4.0,
                ),
                Persona(
                    "libraries",
                    0.02,
                    (500, 1400),
                    25.0,
                    600.0,
                    rate_shape=8.0,
                    value_spread=1.0,
                    extra_units=8.0,
                ),
            ),
            categories=("fiction", "non_fiction", "children", "textbooks", "rare"),
        ),
        seed,
        customers,
    )


DATASETS: dict[str, Callable[..., PlantedDataset]] = {
    generator.__name__: generator
    for generator in (
        fashion_webshop,
        grocery_delivery_cents,
        b2b_wholesale,
        konbini_app_yen,
        pharmacy_refills,
        marketplace_with_noise,
        travel_agency,
        pet_supplies_seven,
        electronics_heavy_tail,
        coffee_frequency_only,
        subscription_recency_only,
        acquisition_cohorts,
        beauty_omnichannel,
        gaming_whales_cents,
        diy_eight_personas,
        bookshop_long_tail,
    )
}


def main() -> None:
    """Print the dataset table: sizes, shares and the best achievable ARI of each dataset."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--customers", type=int, default=None, help="default: each dataset's own")
    parser.add_argument("--only", nargs="*", default=None, help="dataset names (default: all)")
    args = parser.parse_args()
    header = f"{'dataset':28} {'k':>2} {'customers':>9} {'separation':14} {'noise':>6} {'min':>6} {'max':>6}"
    print(f"{header} {'lines':>9} {'kmeans':>7} {'gmm':>7}")
    for name in args.only or DATASETS:
        generator = DATASETS[name]
        dataset = generator(args.seed) if args.customers is None else generator(args.seed, args.customers)
        facts, ari = summary(dataset), best_achievable_ari(dataset)
        print(
            f"{name:28} {facts['planted_k']:>2} {facts['customers']:>9,} {facts['separation']:14} "
            f"{facts['noise_share']:>6.1%} {facts['smallest_share']:>6.1%} {facts['largest_share']:>6.1%} "
            f"{facts['lines']:>9,} {ari['kmeans']:>7.3f} {ari['gmm']:>7.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
