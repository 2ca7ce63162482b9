"""Active synthesis: the generate-where-uncertain loop.

  1. Train f_0 on the real budget.
  2. Score a pool with f_{r-1}'s uncertainty (MC dropout or a deep ensemble; score variance+entropy
     by default, see method.uncertainty). The pool is, by default, a seeded subsample of the unused
     real training examples, whose labels are never read (`pool: validation` scores the validation
     split instead, for users with no unlabelled data).
  3. The uncertain region U_tau = {x in pool : score(x) >= tau}. With `tau_mode: quantile`, tau is the
     tau-quantile of the round-1 scores and is then held fixed, so |U_tau| can shrink as the model
     improves (a quantile recomputed every round would keep |U_tau| constant).
  4. Stop when |U_tau| has not shrunk for `patience` rounds, after `max_rounds`, or when the synthetic
     budget is spent.
  5. Generate this round's share of the synthetic budget conditioned on U_tau: seeds drawn from U_tau,
     each with a target label drawn from the seed's predictive distribution (`label_mode: argmax`
     takes its most likely class), varied by the generator at `strength`; with `prompt_template`, each
     seed also gets a prompt naming its target class and the class it is confused with. Tables are
     targeted through column values instead (`targeting`: the categorical values over-represented in
     U_tau, conditions found by Bayesian optimisation, or (group, label) cells of a sensitive attribute
     balancing each group's label rate (`fairness`); method/targeting.py).
  6. Retrain on real + all synthetic so far with class-weighted sampling (mixing ratio) and the loss
     cross-entropy + beta * KL(f_{r-1}(x) || f_r(x)) on real examples (beta = kl_weight; 0 switches it
     off); warm-started from f_{r-1} by default. Go to 2.
The returned model is the best round on the validation split by the recipe's selection criterion
(bench.training.selection_key: validation accuracy, ties broken by the lower loss, by default), round
0 (f_0, the real-only model) included: synthetic data that does not help is not kept
(`select_round_on_val`; off: the last round). The log says which round was returned and why.
Every round's |U_tau|, mean score, synthetic count, validation accuracy and loss and wall time are logged.

`guidance: false` is the control (registered as `random_synthetic`): the very same loop with the seeds
drawn uniformly from the pool instead of from U_tau. Everything else is shared: the labelling rule
(the model's predictive distribution on each seed), the strength, the generator, the count per round,
the rounds, retraining and selection, and the random numbers (bench.seeding: f_0 is the real_only
model of the seed, and each round draws its labels and samples from streams of their own). For tables
both condition each seed row on the highest-lift value over-represented in U_tau that it carries, so
the control conditions on those values at their pool rates; Bayesian optimisation of the conditions
(`bo`) and the (group, label) cells of a sensitive attribute (`fairness`) are targeting, and the
control of either is that same attribute rule. Text sampling scaled by the seed's uncertainty
(`scale_sampling`) is targeting too and off by default.

Seeds are drawn without replacement when the round needs no more than there are candidates. The loop
may stop before it has drawn its whole synthetic budget (convergence, an empty region): the result's
log then says so (`budget_unspent_because`), and `synthetic_in_returned_model` counts the synthetic
examples the returned round trained on (0 when round 0 is returned).

The controls in baselines/controls.py are this loop with what a round adds swapped out (`supply`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bench.api import Conditions, Split, StrategyResult, TaskView
from bench.errors import BenchError
from bench.registry import STRATEGIES
from bench.seeding import LoopPart, Stream, loop_seed, round_seed, stream_rng
from bench.synthesis import SynthesisStrategy, concat, empty_like, mix_weights, pool_split
from bench.training import selection_key

from .targeting import attribute_conditions, bo_conditions, fairness_allocation, overrepresented, sensitive_column
from .uncertainty import SCORES, Uncertainty, ensemble, mc_dropout


def draw_labels(probs: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    if mode == "argmax":
        return probs.argmax(axis=1)
    cum = probs.cumsum(axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return (u > cum).sum(axis=1).astype(np.int64)  # inverse-CDF draw, one label per row


def uncertain_prompts(template: str, classes: list[str], labels: np.ndarray, probs: np.ndarray) -> list[str]:
    """One prompt per seed: `template` filled with the target class's name ({label}) and the name of the
    class the model most confuses the seed with ({confuser}: its most probable class other than the target)."""
    other = probs.copy()
    other[np.arange(len(labels)), labels] = -1.0
    confusers = other.argmax(axis=1)
    return [template.format(label=classes[int(y)], confuser=classes[int(c)]) for y, c in zip(labels, confusers)]


# Parameters that only guidance reads (how generation is aimed at U_tau): the control, random_synthetic,
# ignores them, so the two may differ in these (bench validate warns about any other difference).
TARGETING_PARAMS = ("guidance", "targeting", "min_lift", "bo_trials", "bo_probe", "bo_keep", "scale_sampling",
                    "sensitive")


@dataclass(frozen=True)
class Round:
    """One round of the loop as the parts that choose its new examples see it (`supply`, `conditions`)."""

    number: int  # 1, 2, ...: round 0 trains on the real budget alone
    models: list[Any]  # the previous round's model(s): the uncertainty's source
    pool: Split  # the unlabelled pool the seeds come from
    uncertainty: Uncertainty  # over the pool
    threshold: float  # tau on the uncertainty score
    region: np.ndarray  # pool indices in U_tau (score >= threshold)
    chosen: np.ndarray  # pool indices of this round's seeds
    labels: np.ndarray  # the target label drawn for each seed
    draws: dict[LoopPart, np.random.Generator]  # this round's streams (bench.seeding), shared with the controls
    earlier: Split  # the synthetic examples of the earlier rounds


@STRATEGIES.register("active_synthesis", kind="method", version=3, synthesises=True, uses_generator=True,
                      modalities=("image", "tabular", "vector", "text"), targeting_params=TARGETING_PARAMS)
@dataclass
class ActiveSynthesis(SynthesisStrategy):
    uncertainty: str = "mc_dropout"  # or "ensemble"
    passes: int = 50  # MC dropout: stochastic passes T
    members: int = 5  # deep ensemble: independently seeded models K
    score: str = "variance+entropy"  # or entropy, variance, bald
    tau: float = 0.8  # a quantile in (0, 1) with tau_mode quantile, else an absolute score
    tau_mode: str = "quantile"  # "quantile" or "absolute"
    pool: str = "unlabeled"  # "unlabeled" (unused real training examples) or "validation"
    pool_size: int | None = 5000  # seeded subsample of the pool scored each round; None = all of it
    max_rounds: int = 3  # generate-and-retrain rounds after f_0
    patience: int = 2  # stop when |U_tau| has not shrunk for this many rounds
    strength: float = 0.5  # variation strength for the seed examples (0 = copy, 1 = ignore)
    label_mode: str = "predictive"  # "predictive" (drawn from p(y|seed)) or "argmax"
    guidance: bool = True  # False: seeds drawn from the whole pool (ablation: same loop, no targeting)
    kl_weight: float = 0.1  # beta of the KL term to the previous round's predictions on real data
    warm_start: bool = True  # retrain from f_{r-1}'s weights rather than from scratch
    round_epochs: int | None = None  # epochs per retraining round; None: the recipe's
    select_round_on_val: bool = True  # return the best round (0 = f_0 included) on validation; False: the last
    targeting: str = "auto"  # how generation is aimed at U_tau: "seeds" (vary its examples; images), "attributes"
    #   (condition on its over-represented categorical values; tables), "bo" (conditions chosen by Bayesian
    #   optimisation of the generated rows' BALD; tables), "fairness" (condition on (group, label) cells of the
    #   `sensitive` attribute: groups by their share of U_tau, labels towards the overall label rate; tables);
    #   auto: attributes for tables, else seeds
    min_lift: float = 1.2  # attributes/bo: a categorical value is a target if its share in U_tau is this many
    #                        times its share in the pool (method/targeting.py)
    bo_trials: int = 20  # bo: TPE trials per round, each generating `bo_probe` rows
    bo_probe: int = 32
    bo_keep: int = 5  # bo: the round's rows are shared among this many best conditions
    # fairness: the sensitive attribute whose groups are balanced (a name in the data set's schema, e.g. sex).
    # Left out of the cell record while None, so that results made before the field existed keep their hash.
    sensitive: str | None = field(default=None, metadata={"omit_if_none": True})
    scale_sampling: bool = False  # seeds: pass each seed's score / tau to the generator (Conditions.uncertainty),
    #   which text generators turn into a higher temperature for more uncertain seeds; targeting (the control
    #   never passes it), so off by default: method and control then sample every seed by one rule
    prompt_template: str | None = None  # uncertainty-conditioned prompts for text-conditioned generators, e.g.
    #   "a photo of a {label} that looks like a {confuser}": label = the target class, confuser = the seed's most
    #   probable other class; None: no prompts (generators use their class prompts)

    def __post_init__(self) -> None:
        checks = [(self.uncertainty in ("mc_dropout", "ensemble"), "uncertainty must be mc_dropout or ensemble"),
                  (self.score in SCORES, f"score must be one of {', '.join(SCORES)}"),
                  (self.tau_mode in ("quantile", "absolute"), "tau_mode must be quantile or absolute"),
                  (self.tau_mode != "quantile" or 0 < self.tau < 1, "a quantile tau must lie in (0, 1)"),
                  (self.pool in ("unlabeled", "validation"), "pool must be unlabeled or validation"),
                  (self.label_mode in ("predictive", "argmax"), "label_mode must be predictive or argmax"),
                  (self.max_rounds >= 1 and self.patience >= 1 and self.passes >= 1 and self.members >= 2,
                   "max_rounds, patience and passes must be >= 1, members >= 2"),
                  (0 <= self.strength <= 1 and self.kl_weight >= 0, "strength must lie in [0, 1], kl_weight >= 0"),
                  (self.targeting in ("auto", "seeds", "attributes", "bo", "fairness"),
                   "targeting must be auto, seeds, attributes, bo or fairness"),
                  (self.targeting != "fairness" or bool(self.sensitive),
                   "targeting fairness needs `sensitive`: the sensitive attribute whose groups it balances (e.g. sex)"),
                  (self.bo_trials >= 1 and self.bo_probe >= 1 and self.bo_keep >= 1, "bo_trials, bo_probe and bo_keep must be >= 1"),
                  (self.prompt_template is None or "{label}" in self.prompt_template,
                   "prompt_template must contain {label} (and may contain {confuser})")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def check_compatible(self, modality: str, generator: Any) -> None:
        """Refused before any work starts (bench.compat): column targeting needs a table."""
        if self.targeting in ("attributes", "bo", "fairness") and modality != "tabular":
            raise ValueError(f"targeting {self.targeting!r} conditions on table columns, and {modality} data has "
                             "none: use targeting seeds (or auto)")

    def estimate(self, task: TaskView, models: list[Any], x: Any, round_: int) -> Uncertainty:
        if self.uncertainty == "ensemble":
            return ensemble(models, x)
        return mc_dropout(models[0], x, passes=self.passes, seed=round_seed(task.seed, round_))

    def fit_round(self, task: TaskView, round_: int, **options: Any) -> list[Any]:
        """The round's model(s): one, or the ensemble's members (independently seeded)."""
        k = self.members if self.uncertainty == "ensemble" else 1
        return [task.fit(seed=loop_seed(task.seed, round_, m), label=f"round {round_} member {m}"
                         if k > 1 else f"round {round_}", **options) for m in range(k)]

    # What a round adds to the training data. The controls (baselines/controls.py) are this loop with one
    # part swapped out through these: no examples, real pool examples, copies of the seeds, or generated
    # examples with permuted labels.
    samples_generator: ClassVar[bool] = True  # fits and samples the suite's generator
    reads_pool_labels: ClassVar[bool] = False  # an oracle: adds pool examples with their true labels
    adds: ClassVar[str] = "generated examples"  # what a round adds, as the result's log says

    def run(self, task: TaskView) -> StrategyResult:
        if self.targeting == "fairness" and self.guidance:
            sensitive_column(task.data.schema, self.sensitive)  # a wrong name fails here, before any training
        mix = self.mix(task)
        generator, gen_log = self.fitted_generator(task) if self.samples_generator else (None, None)
        total = self.total(task)
        per_round = math.ceil(total / self.max_rounds)
        pool = pool_split(task, self.pool, self.pool_size, task.seed)
        recipe = task.recipe if self.round_epochs is None else task.recipe.model_copy(update={"epochs": self.round_epochs})

        start = time.perf_counter()
        models = self.fit_round(task, 0)
        rounds = [self._round_log(task, 0, models, 0, None, start)]
        synthetic, sizes, threshold, stop, spent = empty_like(task.train), [], None, "max_rounds", 0
        candidates: list[tuple[int, list[Any]]] = [(0, models)]  # (round, its model(s)); f_0 competes
        for r in range(1, self.max_rounds + 1):
            start = time.perf_counter()
            u = self.estimate(task, models, pool.x, r)
            scores = u.score(self.score)
            if threshold is None:
                threshold = float(np.quantile(scores, self.tau)) if self.tau_mode == "quantile" else self.tau
            region = np.flatnonzero(scores >= threshold)
            sizes.append(len(region))
            scoring = {"uncertain": len(region), "mean_score_uncertain": float(scores[region].mean()) if len(region) else None,
                       "mean_score_pool": float(scores.mean()), "threshold": threshold}
            if len(sizes) > self.patience and min(sizes[-self.patience:]) >= sizes[-self.patience - 1]:
                rounds.append({"round": r, **scoring, "stopped": True})
                stop = "converged"
                break
            n = min(per_round, total - spent)
            if n <= 0 or len(region) == 0:
                rounds.append({"round": r, **scoring, "stopped": True})
                stop = "budget spent" if n <= 0 else "empty region"
                break
            # One stream per round and part (bench.seeding): the method and its controls draw the same
            # uniforms for the labels and the samples whatever seeds they chose.
            draws = {part: stream_rng(task.seed, Stream.SYNTHESIS_LOOP, r, part) for part in LoopPart}
            candidates_ = region if self.guidance else np.arange(len(pool))
            chosen = draws[LoopPart.SEEDS].choice(candidates_, n, replace=n > len(candidates_))
            labels = draw_labels(u.mean_probs[chosen], self.label_mode, draws[LoopPart.LABELS])
            new, scoring["targeting"] = self.supply(task, generator, Round(
                number=r, models=models, pool=pool, uncertainty=u, threshold=threshold, region=region, chosen=chosen,
                labels=labels, draws=draws, earlier=synthetic))
            spent += n
            synthetic = concat(synthetic, new)
            teacher = np.full((len(task.train) + len(synthetic), task.num_classes), np.nan)
            teacher[: len(task.train)] = np.mean([m.predict_proba(task.train.x) for m in models], axis=0)
            models = self.fit_round(task, r, train=concat(task.train, synthetic), recipe=recipe,
                                    sample_weight=mix_weights(task.train.y, synthetic.y, mix),
                                    teacher=teacher, kl_weight=self.kl_weight,
                                    init=models[0].module if self.warm_start and len(models) == 1 else None)
            rounds.append(self._round_log(task, r, models, len(synthetic), scoring, start, new_labels=np.asarray(new.y)))
            candidates.append((r, models))
        chosen_round, models, why = self.select_round(task, rounds, candidates)
        clf = models[0] if len(models) == 1 else EnsembleClassifier(models)
        kept = next(log["synthetic_total"] for log in rounds if log["round"] == chosen_round and "synthetic_total" in log)
        log = {
            "real_examples": len(task.train), "synthetic_examples": len(synthetic), "synthetic_budget": total,
            "synthetic_in_returned_model": kept, "mix_ratio": mix, "seeds_from": "U_tau" if self.guidance else "pool",
            "adds": self.adds, "pool_labels_read": self.reads_pool_labels, "rounds": rounds,
            "stopped_because": stop, "returned_round": chosen_round, "returned_because": why, "pool_size": len(pool),
        }
        if spent < total:
            log["budget_unspent_because"] = (f"{spent} of {total} synthetic examples drawn: the loop stopped at round "
                                             f"{rounds[-1]['round']} ({stop})")
        if gen_log is not None:
            log["generator"] = gen_log
        return StrategyResult(clf, synthetic=synthetic, log=log)

    def supply(self, task: TaskView, generator: Any, rnd: Round) -> tuple[Split, dict[str, Any]]:
        """The round's new training examples (labels in `.y`) and a log of how they were aimed: here the
        generator's samples under the round's conditions."""
        conditions, targeting = self.conditions(task, generator, rnd)
        return generator.sample(len(conditions.labels), conditions, rnd.draws[LoopPart.SAMPLES]), targeting

    def select_round(self, task: TaskView, rounds: list[dict[str, Any]], candidates: list[tuple[int, list[Any]]]
                     ) -> tuple[int, list[Any], str]:
        """The round to return, its model(s) and why: with select_round_on_val the best of all trained rounds,
        round 0 included, by the recipe's selection criterion on the validation split; else the last."""
        if not self.select_round_on_val:
            r, models = candidates[-1]
            return r, models, "the last trained round (select_round_on_val is off)"
        metric = task.recipe.select_metric
        logs = {log["round"]: log for log in rounds if "val_loss" in log}
        r, models = max(candidates, key=lambda c: selection_key(metric, logs[c[0]]["val_accuracy"],
                                                                logs[c[0]]["val_loss"]))
        best = logs[r]
        what = "accuracy (ties: the lower loss)" if metric == "accuracy" else "loss"
        return r, models, (f"the best of rounds {', '.join(str(c[0]) for c in candidates)} by validation {what} "
                           f"(select_round_on_val): accuracy {best['val_accuracy']:.4f}, loss {best['val_loss']:.4f}")

    def conditions(self, task: TaskView, generator: Any, rnd: Round) -> tuple[Conditions, dict[str, Any]]:
        """The round's generation conditions, aimed at U_tau as `targeting` says, with a log of them. With
        seeds and scale_sampling, each seed's score relative to the threshold (tau) goes along
        (Conditions.uncertainty)."""
        pool, region, chosen, labels, u = rnd.pool, rnd.region, rnd.chosen, rnd.labels, rnd.uncertainty
        targeting = self.targeting if self.targeting != "auto" else ("attributes" if task.data.schema is not None else "seeds")
        if targeting == "seeds":
            prompts = None if self.prompt_template is None else uncertain_prompts(
                self.prompt_template, task.data.classes, labels, u.mean_probs[chosen])
            # Sampling scaled by each seed's uncertainty is targeting (TARGETING_PARAMS): the control samples
            # every seed alike, so with scale_sampling off the two differ in nothing but their seeds.
            relative = (u.score(self.score)[chosen] / rnd.threshold if self.scale_sampling and self.guidance and rnd.threshold
                        else None)
            return (Conditions(labels=labels, seeds=np.asarray(pool.x)[chosen], strength=self.strength, prompts=prompts,
                               uncertainty=relative), {"kind": "seeds"})
        schema = task.data.schema
        if schema is None:
            raise BenchError(f"targeting {targeting!r} needs a table (a data set with a schema)")
        # The column values over-represented in U_tau; each seed row is conditioned on the highest-lift one it
        # carries. The control applies the same rule to its uniformly drawn seeds, so the values it conditions
        # on occur at their pool rates: the two differ only in where the seeds come from.
        targets = overrepresented(schema, pool.x, region, self.min_lift)
        named = [f"{t.column}={schema.column(t.column).categories[t.code]} (lift {t.lift:.2f}, {t.count} rows)"
                 for t in targets]
        if targeting == "attributes" or not self.guidance:
            attrs = attribute_conditions(schema, np.asarray(pool.x)[chosen], targets)
            return Conditions(labels=labels, attributes=attrs), {"kind": "attributes", "targets": named}
        if targeting == "fairness":
            return self.fairness_conditions(task, rnd)

        def sample(k: int, label: int, target: Any, seed: int) -> np.ndarray:
            attrs = {} if target is None else {target.column: np.full(k, float(target.code))}
            return generator.sample(k, Conditions(labels=np.full(k, label), attributes=attrs), np.random.default_rng(seed)).x

        bo_labels, attrs, trials = bo_conditions(sample, lambda x: self.estimate(task, rnd.models, x, rnd.number).bald,
                                                 task.num_classes, targets, len(chosen), self.bo_trials, self.bo_probe,
                                                 self.bo_keep, seed=round_seed(task.seed, rnd.number))
        return Conditions(labels=bo_labels, attributes=attrs), {"kind": "bo", "targets": named, "trials": trials}

    def fairness_conditions(self, task: TaskView, rnd: Round) -> tuple[Conditions, dict[str, Any]]:
        """The round's (group, label) conditions of the sensitive attribute, one per seed (method/targeting.py
        fairness_allocation): groups by their rows in U_tau, labels moving each group's label shares in the
        training data (real budget + synthetic so far) towards the overall shares. The labels are the cells'
        own."""
        schema = task.data.schema
        j = sensitive_column(schema, self.sensitive)
        groups = schema.columns[j].categories
        earlier, pool, region, n = rnd.earlier, rnd.pool, rnd.region, len(rnd.chosen)
        x, y = np.asarray(task.train.x), np.asarray(task.train.y)
        if len(earlier):
            x, y = np.concatenate([x, np.asarray(earlier.x)]), np.concatenate([y, np.asarray(earlier.y)])

        def group_of(rows: np.ndarray) -> np.ndarray:
            return np.clip(np.rint(rows[:, j]).astype(int), 0, len(groups) - 1)

        counts = np.zeros((len(groups), task.num_classes), dtype=np.int64)  # training rows per (group, label)
        np.add.at(counts, (group_of(x), y.astype(int)), 1)
        uncertain = np.bincount(group_of(np.asarray(pool.x)[region]), minlength=len(groups))
        cells = fairness_allocation(uncertain, counts, n)
        g, labels = np.nonzero(cells)
        rows = cells[g, labels]
        after = counts + cells

        def shares(c: np.ndarray) -> list[float]:
            return [round(float(v), 4) for v in c / max(c.sum(), 1)]

        log = {"kind": "fairness", "sensitive": self.sensitive, "overall_label_shares": shares(counts.sum(axis=0)),
               "groups": {name: {"uncertain": int(uncertain[i]), "rows_per_label": cells[i].tolist(),
                                 "label_shares_before": shares(counts[i]), "label_shares_after": shares(after[i])}
                          for i, name in enumerate(groups)}}
        return (Conditions(labels=np.repeat(labels, rows).astype(np.int64),
                           attributes={schema.columns[j].name: np.repeat(g, rows).astype(np.float64)}), log)

    def _round_log(self, task: TaskView, r: int, models: list[Any], n_syn: int, scoring: dict | None, start: float,
                   new_labels: np.ndarray | None = None) -> dict[str, Any]:
        p = np.mean([m.predict_proba(task.val.x) for m in models], axis=0)
        y = np.asarray(task.val.y)
        record = {"round": r, **(scoring or {}), "synthetic_total": n_syn,
                  "val_accuracy": float((p.argmax(1) == y).mean()),
                  "val_loss": float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean()),
                  "wall_seconds": time.perf_counter() - start}
        if new_labels is not None:
            record["new_per_class"] = np.bincount(new_labels, minlength=task.num_classes).tolist()
        return record


@dataclass
class EnsembleClassifier:
    """Averages the members' probabilities."""

    members: list[Any]

    def predict_proba(self, x: Any) -> np.ndarray:
        return np.mean([m.predict_proba(x) for m in self.members], axis=0)
