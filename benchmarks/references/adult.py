"""Check the `mlp` task model against scikit-learn on UCI Adult with every training row (the suite
`adult-full`): logistic regression and histogram gradient boosting are fitted on the very rows the
harness trains on (the budget "all" of each seed: the training split less the validation rows) and
scored on the official test split, beside the harness's own results for the suite.

    bench run --suite adult-full --out /tmp/adult-full
    python -m bench.benchmarks.references.adult --results /tmp/adult-full

Preprocessing follows the task model: numbers standardised by the training rows' statistics,
categories one-hot (logistic regression); gradient boosting reads the category codes natively.
Published numbers for this split are about 85% accuracy for logistic regression and 86-87% for
gradient-boosted trees.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bench.cells import load_dataset
from bench.config import load_suite
from bench.results import iter_results
from bench.task import split_budget


def one_hot_standardised(schema, train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers standardised by the training rows, categories one-hot (as the mlp's TableEncoder)."""
    num, cat = schema.numeric, schema.categorical
    scaler = StandardScaler().fit(train_x[:, num])
    categories = [list(range(len(schema.columns[j].categories))) for j in cat]
    encoder = OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False).fit(train_x[:, cat])
    encode = lambda x: np.hstack([scaler.transform(x[:, num]), encoder.transform(x[:, cat])])  # noqa: E731
    return encode(train_x), encode(test_x)


def references(suite_name: str = "adult-full", data_dir: str | None = None, seeds: list[int] | None = None
               ) -> dict[str, list[dict[str, float]]]:
    """Per model, per seed of the suite (or `seeds`): test accuracy and balanced accuracy of the
    scikit-learn models."""
    suite = load_suite(suite_name)
    (budget,) = suite.budgets
    data = load_dataset(suite.datasets[0], data_dir)
    schema, test = data.schema, data.test
    out: dict[str, list[dict[str, float]]] = {"logistic_regression": [], "hist_gradient_boosting": []}
    for seed in suite.seeds if seeds is None else seeds:
        tr, _, _ = split_budget(data.train.y, budget, suite.val_per_class, seed)
        x, y = np.asarray(data.train.x)[tr], np.asarray(data.train.y)[tr]
        xo, to = one_hot_standardised(schema, x, np.asarray(test.x))
        models = {
            "logistic_regression": (LogisticRegression(max_iter=2000), xo, to),
            "hist_gradient_boosting": (HistGradientBoostingClassifier(
                categorical_features=[j in schema.categorical for j in range(x.shape[1])], random_state=seed),
                x, np.asarray(test.x)),
        }
        for name, (model, train_x, test_x) in models.items():
            pred = model.fit(train_x, y).predict(test_x)
            out[name].append({"seed": seed, "accuracy": accuracy_score(test.y, pred),
                              "balanced_accuracy": balanced_accuracy_score(test.y, pred), "train_rows": len(y)})
    return out


def harness_results(root: Path, suite_name: str = "adult-full") -> list[dict[str, float]]:
    rows = []
    for _, r in iter_results(root):
        if r["suite"]["name"] == suite_name and r["status"] == "ok":
            rows.append({"seed": r["cell"]["seed"], "strategy": r["cell"]["strategy"],
                         "accuracy": r["metrics"]["accuracy"]["value"],
                         "balanced_accuracy": r["metrics"]["balanced_accuracy"]["value"],
                         "train_rows": r["strategy_log"]["real_examples"],
                         "wall_seconds": r["compute"]["wall_seconds"]})
    return sorted(rows, key=lambda row: (row["strategy"], row["seed"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="the --out folder of `bench run --suite adult-full`")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    print("| model | seed | train rows | test accuracy | test balanced accuracy |\n|---|---:|---:|---:|---:|")
    table: dict[str, list[dict[str, float]]] = {}
    if args.results is not None:
        for r in harness_results(args.results):
            table.setdefault(f"mlp ({r['strategy']}, harness)", []).append(r)
    table.update(references(data_dir=args.data_dir))
    for name, rows in table.items():
        for r in rows:
            print(f"| {name} | {r['seed']} | {r['train_rows']} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} |")
        acc = [r["accuracy"] for r in rows]
        print(f"| {name} | mean | | {np.mean(acc):.4f} | {np.mean([r['balanced_accuracy'] for r in rows]):.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
