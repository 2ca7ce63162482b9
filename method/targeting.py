"""Targeting generation at the uncertain region of a table, for the active loop (method/active.py).

Images are targeted by varying the uncertain examples themselves (seeds). A table generator is
conditioned on column values instead (sdv conditions), so the uncertain region U_tau is turned into
conditions two ways:

`attributes`: the categorical values over-represented in U_tau. For each categorical column and
  category, lift = (share of U_tau rows with it) / (share of pool rows with it). Values with lift >=
  `min_lift` and at least `min_count` rows in U_tau are the targets (the `max_targets` highest). Each
  chosen uncertain seed row gives its target label (drawn from its predictive distribution, as for
  images) and, of the targets it carries, the one with the highest lift, as one attribute condition
  (one per row: CTGAN meets a single categorical condition through its conditional vector, more by
  rejection sampling).

`bo`: Bayesian optimisation (optuna's TPE sampler) over conditions (target label, and one of the
  over-represented values or none) for the plan's criterion: the generated rows should carry the most
  mutual information between their labels and the model, i.e. the highest mean BALD score
  I(y; w | x) = H[E_w p(y|x,w)] - E_w H[p(y|x,w)] under f_{r-1}'s MC-dropout (or ensemble) posterior.
  Each trial generates `probe` rows with its condition and is scored by their mean BALD; the round's
  rows are then shared among the `keep` best distinct conditions in proportion to their scores.
  TPE (a tree-structured Parzen estimator) suits this small, categorical search space; optuna is the
  library because it is well kept and has no heavy dependencies.

`fairness`: rows conditioned on (sensitive group, label) cells of one categorical sensitive attribute
  (`fairness_allocation`). The round's rows go to the groups in proportion to their rows in U_tau (where
  the model is uncertain); within a group they are labelled so that the group's label shares in the
  training data (real budget + synthetic so far) move towards the overall shares: demographic-parity-
  aware data, the group whose positive rate lags getting more positive rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bench.errors import BenchError
from bench.seeding import round_seed
from bench.table import TableSchema


@dataclass(frozen=True)
class Target:
    column: str
    code: int
    lift: float  # share in U_tau / share in the pool
    count: int  # rows of U_tau with this value


def overrepresented(schema: TableSchema, pool_x: np.ndarray, region: np.ndarray, min_lift: float = 1.2,
                    min_count: int = 10, max_targets: int | None = 5) -> list[Target]:
    """Categorical values over-represented in U_tau (rows `region` of the pool), highest lift first, at
    most `max_targets` of them (each target is one more condition to sample; rare values with a few
    rows have noisy lifts, hence `min_count`)."""
    x = np.asarray(pool_x)
    targets = []
    for j in schema.categorical:
        col = schema.columns[j]
        codes = np.rint(x[:, j]).astype(int)
        pool_share = np.bincount(codes, minlength=len(col.categories)) / max(len(codes), 1)
        counts = np.bincount(codes[region], minlength=len(col.categories))
        region_share = counts / max(len(region), 1)
        for code in np.flatnonzero((counts >= min_count) & (pool_share > 0)):
            lift = region_share[code] / pool_share[code]
            if lift >= min_lift:
                targets.append(Target(col.name, int(code), float(lift), int(counts[code])))
    return sorted(targets, key=lambda t: -t.lift)[:max_targets]


def attribute_conditions(schema: TableSchema, seeds: np.ndarray, targets: list[Target]) -> dict[str, np.ndarray]:
    """Per seed row, the highest-lift target it carries (NaN in every other column; all NaN if none)."""
    seeds = np.asarray(seeds)
    out = {t.column: np.full(len(seeds), np.nan) for t in targets}
    free = np.ones(len(seeds), dtype=bool)
    for t in targets:  # highest lift first
        hit = free & (np.rint(seeds[:, schema.index(t.column)]) == t.code)
        out[t.column][hit] = t.code
        free &= ~hit
    return out


def bo_conditions(sample: Callable[[int, int, Target | None, int], np.ndarray], bald: Callable[[np.ndarray], np.ndarray],
                  num_classes: int, targets: list[Target], n: int, trials: int, probe: int, keep: int, seed: int
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict]]:
    """n (label, attribute) conditions chosen by TPE. `sample(k, label, target, seed)` generates k rows
    with that condition (target None: the label alone); `bald(x)` scores rows. Returns the labels, the
    attribute conditions (as `attribute_conditions`) and the trials' log."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options = [None, *targets]
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial: "optuna.Trial") -> float:
        label = trial.suggest_categorical("label", list(range(num_classes)))
        which = trial.suggest_categorical("target", list(range(len(options))))
        x = sample(probe, label, options[which], round_seed(seed, trial.number))
        return float(np.mean(bald(x)))

    study.optimize(objective, n_trials=trials)
    best: dict[tuple[int, int], float] = {}
    for t in study.trials:
        key = (t.params["label"], t.params["target"])
        best[key] = max(best.get(key, -np.inf), float(t.value))
    chosen = sorted(best.items(), key=lambda kv: -kv[1])[:keep]
    scores = np.array([max(v, 1e-12) for _, v in chosen])
    counts = np.floor(scores / scores.sum() * n).astype(int)
    counts[: n - counts.sum()] += 1  # the remainder to the best conditions
    labels, attrs = [], {t.column: [] for t in targets}
    for ((label, which), _), k in zip(chosen, counts):
        labels += [label] * k
        for col in attrs:
            target = options[which]
            attrs[col] += [target.code if target is not None and target.column == col else np.nan] * k
    log = [{"label": t.params["label"], "target": None if options[t.params["target"]] is None else
            f"{options[t.params['target']].column}={options[t.params['target']].code}", "mean_bald": float(t.value)}
           for t in study.trials]
    return np.asarray(labels, dtype=np.int64), {c: np.asarray(v, dtype=np.float64) for c, v in attrs.items()}, log


def sensitive_column(schema: TableSchema | None, name: str | None) -> int:
    """The index of the categorical column that sensitive attribute `name` is read from; a one-line
    BenchError where there is no table, no such attribute, or it is a binned numeric column (a generator
    is conditioned on category codes, not on ranges)."""
    if schema is None:
        raise BenchError("targeting 'fairness' needs a table (a data set with a schema)")
    if name not in schema.sensitive:
        raise BenchError(f"targeting 'fairness': {name!r} is not a sensitive attribute of the data set "
                         f"(it has: {', '.join(schema.sensitive) or 'none'})")
    column = schema.sensitive[name].column
    if schema.column(column).kind != "categorical":
        raise BenchError(f"targeting 'fairness': sensitive attribute {name!r} is numeric column {column!r} cut into "
                         "bins; fairness targeting conditions on a categorical column")
    return schema.index(column)


def fairness_allocation(uncertain: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Rows to generate per (group, label) cell, (G, K) summing to n. `uncertain`: U_tau's rows per group
    (G,); `counts`: the training rows per group and label (G, K), real budget + synthetic so far.

    Group g gets n * uncertain[g] / sum(uncertain) rows (largest remainder). Its label shares should reach
    the overall shares p = counts.sum(0) / counts.sum(): label k lacks d_k = p_k (t_g + n_g) - c_gk rows
    (t_g its rows, n_g the new ones; sum_k d_k = n_g). Labels already over their share (d_k < 0) get none
    and the rest share n_g in proportion to d_k: exact parity when no d_k is negative, else as close as
    n_g rows allow."""
    counts = np.asarray(counts, dtype=np.float64)
    target = counts.sum(axis=0) / max(counts.sum(), 1.0)
    out = np.zeros(counts.shape, dtype=np.int64)
    for g, m in enumerate(largest_remainder(np.asarray(uncertain, dtype=np.float64), n)):
        lack = np.clip(target * (counts[g].sum() + m) - counts[g], 0, None)
        out[g] = largest_remainder(lack, int(m))
    return out


def largest_remainder(weights: np.ndarray, n: int) -> np.ndarray:
    """n split in proportion to `weights` into whole numbers: floors, then one more to the largest
    fractional parts (ties: the lower index). All zero weights: an equal split."""
    w = np.asarray(weights, dtype=np.float64)
    exact = w / w.sum() * n if w.sum() > 0 else np.full(len(w), n / max(len(w), 1))
    out = np.floor(exact).astype(np.int64)
    out[np.argsort(-(exact - out), kind="stable")[: n - out.sum()]] += 1
    return out
