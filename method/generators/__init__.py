"""Conditional generators, one family per file: diffusion (images), sd_lora (Stable Diffusion + LoRA from
local weights), sdv (CTGAN, Gaussian copula: tables), text_lm (SmolLM2: text), dp_gan (DP-SGD GAN) and
pca_gmm (a small generic one). Importing this package registers them."""
from __future__ import annotations

from . import diffusion, dp_gan, pca_gmm, sd_lora, sdv, text_lm  # noqa: F401
