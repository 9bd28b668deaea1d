"""Turn a :class:`~srgan.config.TrainingConfig` into networks, losses and optimizers."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from srgan.config import METRIC_HIGHER_IS_BETTER, OptimizerConfig, TrainingConfig
from srgan.losses import AdversarialObjective, ContentLoss, PerceptualLoss
from srgan.models import Discriminator, build_discriminator, build_generator
from srgan.models.bicubic_skip import BicubicResidual
from srgan.schedules import warmup_factor


def generator_from_config(cfg: TrainingConfig) -> nn.Module:
    """The generator the config describes, for ``cfg.in_bands`` bands at ``cfg.data.scale``."""
    g, scale = cfg.generator, cfg.data.scale
    net = build_generator(g.name, in_bands=cfg.in_bands, scale=scale, **g.constructor_kwargs())
    return BicubicResidual(net, scale) if g.bicubic_skip else net


def discriminator_from_config(cfg: TrainingConfig) -> Discriminator:
    """The discriminator the config describes."""
    d = cfg.discriminator
    return build_discriminator(d.name, in_bands=cfg.in_bands, **d.constructor_kwargs())


def content_loss_from_config(cfg: TrainingConfig) -> ContentLoss:
    """Weighted content loss; the perceptual network is built only when its weight is > 0."""
    losses = cfg.losses
    perceptual = None
    if losses.perceptual_weight > 0:
        perceptual = PerceptualLoss(
            losses.perceptual_weights_path,
            layer=losses.perceptual_layer,
            bands=losses.perceptual_bands,
        )
    return ContentLoss(
        l1_weight=losses.l1_weight,
        sam_weight=losses.sam_weight,
        tv_weight=losses.tv_weight,
        perceptual_weight=losses.perceptual_weight,
        perceptual=perceptual,
    )


def objective_from_config(cfg: TrainingConfig) -> AdversarialObjective:
    """Adversarial objective with label smoothing and R1 as configured."""
    losses = cfg.losses
    return AdversarialObjective(
        losses.adversarial, real_label=losses.real_label, r1_gamma=losses.r1_gamma
    )


def optimizer_for(params: list[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over ``params``."""
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def warmup_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimizerConfig) -> LambdaLR:
    """Per-iteration LR warm-up; stepped once per training batch, only during warm-up."""
    if cfg.warmup_iterations == 0:
        return LambdaLR(optimizer, lr_lambda=_constant)
    factor = partial(warmup_factor, warmup_iterations=cfg.warmup_iterations, kind=cfg.warmup)
    return LambdaLR(optimizer, lr_lambda=factor)


def _constant(_: int) -> float:
    return 1.0


def plateau_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimizerConfig, metric: str
) -> ReduceLROnPlateau:
    """ReduceLROnPlateau on a validation metric, stepped after each validation."""
    return ReduceLROnPlateau(
        optimizer,
        mode="max" if METRIC_HIGHER_IS_BETTER[metric] else "min",
        factor=cfg.plateau_factor,
        patience=cfg.plateau_patience,
        min_lr=cfg.min_lr,
    )
