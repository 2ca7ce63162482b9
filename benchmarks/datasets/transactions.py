"""Synthetic card transactions with rare fraud (about 2%), generated in code by the seeded process below:
imbalanced tabular data whose true fraud probability is known, with a sensitive attribute. No files.

Each transaction is drawn independently, in this order (currency units: CU; the tables are the constants
below, indexed by age band, channel or merchant category):
  1. customer_age_band  18-29, 30-44, 45-64, 65+ with probabilities AGE_BAND_P.
  2. channel            pos, online, atm with probabilities CHANNEL_P[age band] (the young buy online more).
  3. merchant_category  atm: cash_withdrawal; pos and online: drawn from MERCHANT_P[channel].
  4. hour               0..23, local hour: with probability NIGHT_P[age band] uniform on 0..5 (night), else
                        a normal (mean 14.5, sd 3.5) rounded and clipped to 6..23.
  5. amount             CU, lognormal: exp(normal(AMOUNT_LOG_MEAN[merchant], AMOUNT_LOG_SD)), rounded to
                        cents, clipped to 0.01..50,000.
  6. foreign            "yes" with probability 0.30 for travel, 0.08 for other online purchases, else 0.03.
  7. distance_from_home_km  km, 200 + exponential (mean 1,500) when foreign, else exponential (mean 8);
                        rounded to 0.1 km, clipped to 5,000.
  8. account_age_days   days, exponential with mean ACCOUNT_AGE_MEAN[age band], floored, clipped to 3,650.
  9. txns_last_24h      the card's transactions in the previous 24 hours: Poisson(VELOCITY_MEAN[age band]),
                        or with probability BURST_P Poisson(BURST_MEAN) (a burst); clipped to 50.
 10. label              fraud (1) with probability sigmoid(logit), the logit a sum of the B_* terms below
                        (large amounts; night; online; large online purchases at night; new accounts;
                        foreign electronics or gambling; many recent transactions; night-time cash), its
                        intercept chosen so that about 2% of transactions are fraud.
The age band never enters the logit: it shifts the features (young customers buy online and at night
more, have newer accounts and more transactions a day), so fraud is more frequent among them (about
3.0% for 18-29, 2.0% for 30-44, 1.5% for 45-64, 1.3% for 65+) without the band being a cause. Fairness metrics then have
something to show, and a model may use the band as a proxy.

Train and test are drawn from two independent streams (numpy SeedSequence(GENERATION_SEED).spawn(2)) of
the same process: 20,000 and 10,000 transactions by default. `load()` regenerates them (milliseconds):
the same arrays every call. Sensitive attribute: `age_band` (column customer_age_band).
"""
from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from bench.api import DatasetSplits
from bench.registry import DATASETS
from bench.table import Column, Sensitive, TableSchema

GENERATION_SEED = 20240611  # root of the train and test streams
CLASSES = ["legitimate", "fraud"]

AGE_BANDS = ("18-29", "30-44", "45-64", "65+")
AGE_BAND_P = (0.25, 0.30, 0.30, 0.15)
CHANNELS = ("pos", "online", "atm")
CHANNEL_P = ((0.45, 0.45, 0.10), (0.55, 0.35, 0.10), (0.65, 0.23, 0.12), (0.72, 0.13, 0.15))  # per age band
MERCHANTS = ("grocery", "fuel", "restaurants", "online_retail", "electronics", "travel", "gambling",
             "cash_withdrawal")
MERCHANT_P = {"pos": (0.36, 0.20, 0.25, 0.00, 0.09, 0.06, 0.04, 0.00),  # in MERCHANTS order
              "online": (0.10, 0.00, 0.07, 0.45, 0.15, 0.15, 0.08, 0.00)}
NIGHT_P = (0.18, 0.10, 0.06, 0.04)  # per age band: share of transactions at 0..5 h
# Per merchant, log CU: medians 37, 49, 27, 49, 200, 403, 55 and 81 CU.
AMOUNT_LOG_MEAN = (3.6, 3.9, 3.3, 3.9, 5.3, 6.0, 4.0, 4.4)
AMOUNT_LOG_SD = 0.9
ACCOUNT_AGE_MEAN = (500.0, 1100.0, 1600.0, 2000.0)  # days, per age band
VELOCITY_MEAN = (3.0, 2.5, 2.0, 1.5)  # transactions a day, per age band
BURST_P, BURST_MEAN = 0.03, 12.0  # a card used in a burst (testing a stolen card, a spree)

# Fraud logit terms (log-odds added when the condition holds).
B_INTERCEPT = -5.22  # sets the overall fraud rate to about 2% (its expectation over a million draws: 2.0%)
B_LOG_AMOUNT = 0.6  # per unit of log(amount / 55 CU): large purchases are riskier
B_NIGHT = 0.8  # hour 0..5
B_ONLINE = 0.7  # card not present
B_NIGHT_ONLINE_LARGE = 1.5  # online, at night and over LARGE_AMOUNT: the classic pattern
LARGE_AMOUNT = 300.0  # CU
B_NEW_ACCOUNT = 1.6  # account younger than 30 days
B_YOUNG_ACCOUNT = 0.6  # account 30..179 days old
B_FOREIGN = 0.5  # abroad or a foreign merchant
B_FOREIGN_RISKY = 1.4  # foreign and electronics or gambling (easy to resell, to launder)
B_VELOCITY = 0.25  # per transaction in the last 24 h beyond five
B_NIGHT_CASH = 0.8  # cash withdrawal at night

SCHEMA = TableSchema(
    columns=(
        Column("amount", "numeric", low=0.0, high=50_000.0),  # CU, cents
        Column("hour", "numeric", integer=True, low=0, high=23),  # local hour of day
        Column("merchant_category", "categorical", MERCHANTS),
        Column("channel", "categorical", CHANNELS),
        Column("foreign", "categorical", ("no", "yes")),
        Column("account_age_days", "numeric", integer=True, low=0, high=3650),  # days
        Column("txns_last_24h", "numeric", integer=True, low=0, high=50),  # transactions
        Column("distance_from_home_km", "numeric", low=0.0, high=5_000.0),  # km
        Column("customer_age_band", "categorical", AGE_BANDS),
    ),
    sensitive={"age_band": Sensitive("customer_age_band")},
)


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row from the row's probabilities (rows of `probs`)."""
    return (rng.random(len(probs))[:, None] > np.cumsum(probs, axis=1)[:, :-1]).sum(axis=1)


def fraud_logit(x: np.ndarray) -> np.ndarray:
    """The true log-odds of fraud of each row of `x` (columns in SCHEMA order)."""
    col = {c.name: x[:, i] for i, c in enumerate(SCHEMA.columns)}
    amount, merchant = col["amount"], col["merchant_category"]
    night = col["hour"] <= 5
    online = col["channel"] == CHANNELS.index("online")
    foreign = col["foreign"] == 1
    risky = (merchant == MERCHANTS.index("electronics")) | (merchant == MERCHANTS.index("gambling"))
    age = col["account_age_days"]
    return (B_INTERCEPT + B_LOG_AMOUNT * np.log(amount / 55.0) + B_NIGHT * night + B_ONLINE * online
            + B_NIGHT_ONLINE_LARGE * (night & online & (amount > LARGE_AMOUNT))
            + B_NEW_ACCOUNT * (age < 30) + B_YOUNG_ACCOUNT * ((age >= 30) & (age < 180))
            + B_FOREIGN * foreign + B_FOREIGN_RISKY * (foreign & risky)
            + B_VELOCITY * np.maximum(col["txns_last_24h"] - 5, 0)
            + B_NIGHT_CASH * (night & (merchant == MERCHANTS.index("cash_withdrawal"))))


def generate(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` transactions (x float64 in SCHEMA order, y int64) drawn by the process in the module docstring."""
    band = rng.choice(len(AGE_BANDS), size=n, p=AGE_BAND_P)
    channel = _categorical(rng, np.asarray(CHANNEL_P)[band])
    merchant_p = np.zeros((n, len(MERCHANTS)))
    merchant_p[:, MERCHANTS.index("cash_withdrawal")] = 1.0  # atm
    for name in ("pos", "online"):
        merchant_p[channel == CHANNELS.index(name)] = MERCHANT_P[name]
    merchant = _categorical(rng, merchant_p)
    night = rng.random(n) < np.asarray(NIGHT_P)[band]
    hour = np.where(night, rng.integers(0, 6, n), np.clip(np.rint(rng.normal(14.5, 3.5, n)), 6, 23))
    amount = np.exp(rng.normal(np.asarray(AMOUNT_LOG_MEAN)[merchant], AMOUNT_LOG_SD))
    amount = np.clip(np.round(amount, 2), 0.01, 50_000)
    online = channel == CHANNELS.index("online")
    p_foreign = np.where(merchant == MERCHANTS.index("travel"), 0.30, np.where(online, 0.08, 0.03))
    foreign = rng.random(n) < p_foreign
    distance = np.where(foreign, 200 + rng.exponential(1500.0, n), rng.exponential(8.0, n))
    distance = np.clip(np.round(distance, 1), 0, 5_000)
    account_age = np.minimum(np.floor(rng.exponential(np.asarray(ACCOUNT_AGE_MEAN)[band])), 3650)
    burst = rng.random(n) < BURST_P
    velocity = np.minimum(rng.poisson(np.where(burst, BURST_MEAN, np.asarray(VELOCITY_MEAN)[band])), 50)
    x = np.column_stack([amount, hour, merchant, channel, foreign, account_age, velocity, distance, band])
    x = x.astype(np.float64)
    y = (rng.random(n) < 1 / (1 + np.exp(-fraud_logit(x)))).astype(np.int64)
    return x, y


@DATASETS.register("transactions", modality="tabular", classes=2, license="generated in code",
                   train_per_class=(19593, 407), test_per_class=(9781, 219))
class Transactions:
    """Generated in code (see the module docstring); `data_dir` is accepted for a uniform interface and unused."""

    def __init__(self, data_dir: str | None = None,
                 n_train: Annotated[int, Field(ge=1000, le=10_000_000)] = 20_000,  # ~2% fraud: 1,000 has ~20
                 n_test: Annotated[int, Field(ge=1000, le=10_000_000)] = 10_000,
                 seed: Annotated[int, Field(ge=0, lt=2**32)] = GENERATION_SEED) -> None:
        self.data_dir, self.n_train, self.n_test, self.seed = data_dir, n_train, n_test, seed

    def load(self) -> DatasetSplits:
        train_stream, test_stream = np.random.SeedSequence(self.seed).spawn(2)
        splits = {}
        for split, n, stream in (("train", self.n_train, train_stream), ("test", self.n_test, test_stream)):
            x, y = generate(n, np.random.default_rng(stream))
            splits[split] = SCHEMA.split(x, y)
        return DatasetSplits(name="transactions", modality="tabular", classes=list(CLASSES), schema=SCHEMA, **splits)
