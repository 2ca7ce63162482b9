"""`random_synthetic`: the control of active synthesis. It is the active loop itself
(bench.method.active.ActiveSynthesis) with `guidance` off, so it differs from `active_synthesis` only
in where the seeds come from: drawn uniformly from the pool instead of from the uncertain region U_tau.
The labelling rule (a label drawn from the model's predictive distribution on each seed), the variation
strength, the fitted generator, the number of examples per round, the rounds, the retraining and the
selection of the returned round are the same code with the same parameters; for tables it conditions
on those labels alone (column targeting is what guidance adds). What it loses against
`active_synthesis` is what aiming at the uncertain region is worth.

It takes the parameters of `active_synthesis`; give both the same values in a suite (a YAML anchor
keeps them equal). The older one-shot baseline (labels from the class prior, trained once) is
`prior_synthetic`."""
from __future__ import annotations

from dataclasses import dataclass

from bench.registry import STRATEGIES

from ..method.active import ActiveSynthesis


@STRATEGIES.register("random_synthetic", kind="baseline", version=3, synthesises=True, uses_generator=True,
                      reference=1, control_of="active_synthesis", modalities=("image", "tabular", "vector", "text"))
@dataclass
class RandomSynthetic(ActiveSynthesis):
    guidance: bool = False  # fixed: seeds uniform from the pool (the only difference from active_synthesis)

    def __post_init__(self) -> None:
        if self.guidance:
            raise ValueError("random_synthetic is active_synthesis without guidance; use active_synthesis for guidance")
        super().__post_init__()
