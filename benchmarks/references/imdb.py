"""Check the `minilm_head` text model against scikit-learn on IMDB with every training review (the suite
`imdb-full`): logistic regression is fitted on the very MiniLM embeddings the harness trains on (the
budget "all" of each seed: the training split less the validation reviews) and scored on the same
fixed test subset, beside the harness's own results for the suite.

    bench run --suite imdb-full --out /tmp/imdb-full
    python -m bench.benchmarks.references.imdb --results /tmp/imdb-full

Embeddings come from the shared per-text cache (benchmarks/models/minilm_encoder.py), so after the suite
has run nothing is encoded again. Frozen sentence embeddings with a linear probe are well below fine-tuned
encoders on IMDB (about 93-95%): the point is that the harness's head matches a probe any user can fit.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from bench.cells import load_dataset
from bench.config import load_suite
from bench.results import iter_results
from bench.task import split_budget, stratified_indices

from ..models.minilm_encoder import embed


def references(suite_name: str = "imdb-full", data_dir: str | None = None) -> list[dict[str, float]]:
    suite = load_suite(suite_name)
    (budget,) = suite.budgets
    data = load_dataset(suite.datasets[0], data_dir)
    max_tokens = int(suite.model.params.get("max_tokens", 128))
    (te,) = stratified_indices(data.test.y, [suite.test_per_class], seed=0, what="the test subset")
    test_x, test_y = embed(data.test.x[te], max_tokens), data.test.y[te]
    out = []
    for seed in suite.seeds:
        tr, _, _ = split_budget(data.train.y, budget, suite.val_per_class, seed)
        model = LogisticRegression(max_iter=2000, C=1.0).fit(embed(data.train.x[tr], max_tokens), data.train.y[tr])
        out.append({"seed": seed, "accuracy": accuracy_score(test_y, model.predict(test_x)), "train_rows": len(tr)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="the --out folder of `bench run --suite imdb-full`")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    print("| model | seed | train rows | test accuracy |\n|---|---:|---:|---:|")
    if args.results is not None:
        for _, r in iter_results(args.results):
            if r["suite"]["name"] == "imdb-full" and r["status"] == "ok":
                print(f"| minilm_head (harness) | {r['cell']['seed']} | {r['strategy_log']['real_examples']} | "
                      f"{r['metrics']['accuracy']['value']:.4f} |")
    for r in references(data_dir=args.data_dir):
        print(f"| logistic regression (scikit-learn) | {r['seed']} | {r['train_rows']} | {r['accuracy']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
