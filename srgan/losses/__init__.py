"""Training losses: content terms, the VGG19 perceptual distance, adversarial objectives, R1."""

from srgan.losses.adversarial import KINDS, AdversarialKind, AdversarialObjective, r1_penalty
from srgan.losses.content import ContentLoss, l1_loss, sam_loss, tv_loss
from srgan.losses.perceptual import (
    LAYER_INDEX,
    PerceptualLoss,
    build_vgg19_features,
    load_vgg19_features,
    save_random_vgg19_weights,
    select_rgb_bands,
)

__all__ = [
    "KINDS",
    "LAYER_INDEX",
    "AdversarialKind",
    "AdversarialObjective",
    "ContentLoss",
    "PerceptualLoss",
    "build_vgg19_features",
    "l1_loss",
    "load_vgg19_features",
    "r1_penalty",
    "sam_loss",
    "save_random_vgg19_weights",
    "select_rgb_bands",
    "tv_loss",
]
