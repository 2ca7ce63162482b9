"""`dp_gan`: the differentially private baseline. A class-conditional GAN whose discriminator trains
with DP-SGD (`bench.method.generators.dp_gan.DPGAN`, Opacus) is fitted on the real budget with this strategy's own
privacy and GAN parameters (the suite's `synthetic.generator` is the other strategies' generator), and
the task model trains on real + `budget_per_class` DP-GAN samples per class, mixed at the suite's
`mix_ratio`, like `prior_synthetic`.

The log's `privacy` record (epsilon spent, delta, clipping bound, noise multiplier, DP steps) covers
the generator and its samples. The task model also trains on the real budget directly, so it is not
itself private: the baseline measures what DP synthetic data adds, not a private classifier.

On text the GAN is DP-GAN's vector variant trained on the frozen sentence encoder's embeddings of the
real budget (bench.synthesis.embedding_view): its samples are embeddings, valid inputs of the text task
models, which classify embeddings (no text is generated). The encoder is public and pretrained, so
embedding the real texts spends no privacy budget; epsilon covers the GAN's training on them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from bench.api import Conditions, DatasetInfo, StrategyResult, TaskView
from bench.registry import STRATEGIES
from bench.seeding import Stream, stream_rng
from bench.synthesis import SynthesisStrategy, embedded_examples, embedding_view

from ..method.generators.dp_gan import DPGAN


@STRATEGIES.register("dp_gan", kind="baseline", synthesises=True, own_generator="dp_gan", text_as_vectors=True,
                      modalities=("image", "tabular", "vector", "text"))
@dataclass
class DPGANBaseline(SynthesisStrategy):
    # The generator's parameters, with its defaults (see method/generators/dp_gan.py for units and reasons); they
    # are repeated here so that every result records them in full. Its `device` is left out: the
    # generator trains where the task runs, and the device is no part of a result's configuration.
    target_epsilon: float = DPGAN.target_epsilon
    delta: float | None = DPGAN.delta
    max_grad_norm: float = DPGAN.max_grad_norm
    accountant: str = DPGAN.accountant
    epochs: int = DPGAN.epochs
    batch_size: int = DPGAN.batch_size
    lr_d: float = DPGAN.lr_d
    lr_g: float = DPGAN.lr_g
    mode_seeking: float = DPGAN.mode_seeking
    d_steps: int = DPGAN.d_steps
    latent_dim: int = DPGAN.latent_dim
    width: int = DPGAN.width
    hidden: int = DPGAN.hidden
    standardize: bool = DPGAN.standardize

    def run(self, task: TaskView) -> StrategyResult:
        # Without `device`, fitted_generator has the generator follow the task's device.
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(DPGAN) if f.name != "device"}
        real, info = task.train, None
        if task.data.modality == "text":  # the vector variant on the encoder's embeddings (module docstring)
            real, info = embedding_view(task, task.train), DatasetInfo(task.data.name, "vector", tuple(task.data.classes))
        # cached: one fit per budget and seed
        generator, gen_log = self.fitted_generator(task, "dp_gan", params, real=real, info=info)
        labels = np.repeat(np.arange(task.num_classes), self.per_class(task))
        synthetic = generator.sample(len(labels), Conditions(labels=labels), stream_rng(task.seed, Stream.OWN_GENERATOR))
        if info is not None:
            synthetic = embedded_examples(synthetic)
        clf = self.train(task, synthetic, label="dp_gan")
        last = generator.history_[-1] if generator.history_ else {}
        return StrategyResult(clf, synthetic=synthetic, log={
            "privacy": generator.privacy(),
            "gan": {"variant": generator.variant_, "final_d_loss_fake": last.get("d_loss_fake"),
                    "final_g_loss": last.get("g_loss"), "history": generator.history_,
                    "fit_seconds": generator.fit_seconds_},
            "real_examples": len(task.train), "synthetic_examples": len(labels), "mix_ratio": self.mix(task),
            "best_epoch": clf.best_epoch, "history": clf.history, "generator": gen_log,
        })
