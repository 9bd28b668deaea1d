"""VGG19 feature-space (perceptual) loss from local weights, for multispectral reflectance.

The feature network mirrors ``torchvision.models.vgg19().features`` module for module, so its
standard ``state_dict`` loads without torchvision. Nothing is ever downloaded: the weights are a
local file named by the user (``losses.perceptual_weights_path``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PerceptualLayer = Literal["relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"]

# Index of each selectable ReLU inside torchvision's ``vgg19().features``.
LAYER_INDEX: dict[str, int] = {
    "relu1_2": 3,
    "relu2_2": 8,
    "relu3_4": 17,
    "relu4_4": 26,
    "relu5_4": 35,
}
_CRITERIA = {"l1": F.l1_loss, "l2": F.mse_loss}
_VGG19_PLAN: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, 256, "M"),
    *(512, 512, 512, 512, "M"),
    *(512, 512, 512, 512, "M"),
)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_FEATURES_PREFIX = "features."


def build_vgg19_features() -> nn.Sequential:
    """Build an untrained VGG19 conv stack with torchvision's module indexing (0..36)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG19_PLAN:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers += [
                nn.Conv2d(in_channels, item, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
            ]
            in_channels = item
    return nn.Sequential(*layers)


def save_random_vgg19_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a randomly initialised VGG19 ``features`` state_dict (torchvision key style).

    For tests and offline demos only: the network is untrained, so the perceptual loss it gives
    is a fixed random-feature distance, not an ImageNet perceptual one. The global RNG is left
    untouched. The file holds about 80 MB of float32 weights.

    Args:
        path: Destination file (parent folders are created).
        seed: Seed of the He-normal initialisation.

    Returns:
        The path written, with keys ``features.0.weight`` ... ``features.34.bias``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_vgg19_features()
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                # He init (as torchvision) keeps activations O(1) down to relu5_4.
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    state = {_FEATURES_PREFIX + key: value for key, value in net.state_dict().items()}
    torch.save(state, path)
    return path


def load_vgg19_features(weights_path: str | Path) -> nn.Sequential:
    """Load the full VGG19 conv stack from a local state_dict file.

    Accepted key styles: ``features.0.weight`` (a whole torchvision ``vgg19`` state_dict, whose
    ``classifier.*`` keys are ignored) and ``0.weight`` (a ``features`` state_dict).

    Raises:
        FileNotFoundError: If the file does not exist (nothing is downloaded).
        ValueError: If the file is not a tensor state_dict or its keys/shapes are not VGG19's.
    """
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"VGG19 weights not found at {path}. The perceptual loss reads a local torchvision-"
            "layout vgg19 state_dict and never downloads one: place the file there, point "
            "losses.perceptual_weights_path at it, or set perceptual_weight to 0."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        from srgan.checkpointing import refused_global

        refused = refused_global(err)
        what = (
            f"holds code or objects that are not allowed (global {refused}); it was refused and "
            "nothing in it ran"
            if refused
            else f"is not a loadable tensor state_dict ({type(err).__name__})"
        )
        raise ValueError(
            f"{path} {what}. Perceptual weights are a plain state_dict of tensors: save them "
            "with torch.save(model.state_dict(), path) from a source you trust"
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} must hold a state_dict (a mapping of names to tensors)")
    features = {
        key.removeprefix(_FEATURES_PREFIX): value
        for key, value in state.items()
        if not key.startswith("classifier.")
    }
    net = build_vgg19_features()
    expected = set(net.state_dict())
    missing, unexpected = sorted(expected - set(features)), sorted(set(features) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path} is not a VGG19 features state_dict: missing keys {missing[:6]}, unexpected "
            f"keys {unexpected[:6]}. Expected keys like 'features.0.weight' or '0.weight' "
            "(torchvision vgg19 layout)."
        )
    try:
        net.load_state_dict(features)
    except RuntimeError as err:
        raise ValueError(f"{path} has VGG19 keys but wrong tensor shapes: {err}") from err
    return net


def select_rgb_bands(num_channels: int, bands: Sequence[int] | None = None) -> tuple[int, int, int]:
    """Choose the three input bands fed to the RGB-trained VGG19, deterministically.

    Rule:
        * ``bands`` given: exactly those three indices, in that order.
        * ``C == 3``: ``(0, 1, 2)`` (the input is taken as already R, G, B).
        * ``C > 3``: the first three bands reversed, ``(2, 1, 0)``: in the default Sentinel-2
          order ``B02, B03, B04, ...`` that is B, G, R, so reversing gives R, G, B.
        * ``C in (1, 2)``: bands repeated cyclically, ``(0, 0, 0)`` or ``(0, 1, 0)``.

    Args:
        num_channels: ``C`` of the ``(B, C, H, W)`` input.
        bands: Optional explicit band indices.

    Returns:
        Three band indices into the channel axis.

    Raises:
        ValueError: If ``num_channels < 1``, or ``bands`` is not three indices in ``[0, C)``.
    """
    if num_channels < 1:
        raise ValueError(f"perceptual loss needs at least one band, got C={num_channels}")
    if bands is not None:
        chosen = tuple(int(b) for b in bands)
        if len(chosen) != 3 or not all(0 <= b < num_channels for b in chosen):
            raise ValueError(
                f"perceptual bands must be three indices in [0, {num_channels}), got {list(bands)}"
            )
        return chosen[0], chosen[1], chosen[2]
    if num_channels == 3:
        return 0, 1, 2
    if num_channels > 3:
        return 2, 1, 0
    return 0, 1 % num_channels, 0


def _drop_frozen_features(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    # The frozen VGG is a fixed function of its weights file, not trained state: keeping it out
    # of checkpoints saves ~80 MB each and lets runs resume with or without a perceptual loss.
    for key in [k for k in state_dict if k.startswith(prefix + _FEATURES_PREFIX)]:
        del state_dict[key]


def _keep_frozen_features(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any
) -> None:
    # Counterpart of _drop_frozen_features: strict loading sees the current weights as present.
    assert isinstance(module, PerceptualLoss)
    for key, value in module.features.state_dict().items():
        state_dict[prefix + _FEATURES_PREFIX + key] = value


class PerceptualLoss(nn.Module):
    """Distance between frozen VGG19 features of ``sr`` and ``hr``.

    Three bands are picked by :func:`select_rgb_bands`, normalised with ImageNet mean/std, and
    passed through VGG19 up to ``layer``. The network is frozen, stays in eval mode whatever the
    parent's mode, and is left out of ``state_dict()`` (it is a fixed function of the weights
    file), so checkpoints stay small and load whether or not a perceptual loss is configured.

    Args:
        weights_path: Local VGG19 state_dict file (see :func:`load_vgg19_features`).
        layer: Feature layer, one of ``relu1_2, relu2_2, relu3_4, relu4_4, relu5_4``.
        bands: Explicit band indices for R, G, B; default rule in :func:`select_rgb_bands`.
        criterion: ``"l1"`` or ``"l2"`` (mean squared) distance between feature maps.

    Raises:
        ValueError: If ``weights_path`` is None, ``layer``/``criterion`` is unknown, ``bands`` is
            not three non-negative indices, or the weights file is not VGG19.
        FileNotFoundError: If ``weights_path`` does not exist.

    Example::

        loss = PerceptualLoss("weights/vgg19.pth", layer="relu2_2")
        value = loss(sr, hr)  # scalar, differentiable w.r.t. sr
    """

    features: nn.Sequential
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        weights_path: str | Path | None,
        layer: str = "relu5_4",
        bands: Sequence[int] | None = None,
        criterion: Literal["l1", "l2"] = "l1",
    ) -> None:
        super().__init__()
        if weights_path is None:
            raise ValueError(
                "perceptual loss needs local VGG19 weights; set losses.perceptual_weights_path "
                "or set perceptual_weight to 0"
            )
        if layer not in LAYER_INDEX:
            raise ValueError(
                f"unknown perceptual layer {layer!r}; choose one of {list(LAYER_INDEX)}"
            )
        if criterion not in _CRITERIA:
            raise ValueError(
                f"unknown perceptual criterion {criterion!r}; choose one of {list(_CRITERIA)}"
            )
        if bands is not None and (len(bands) != 3 or any(int(b) < 0 for b in bands)):
            raise ValueError(f"perceptual bands must be three indices >= 0, got {list(bands)}")
        self.layer = layer
        self.bands = None if bands is None else tuple(int(b) for b in bands)
        self.criterion = criterion
        # A prefix keeps torchvision's indices 0..k, so state_dict keys still match.
        features = nn.Sequential(*list(load_vgg19_features(weights_path))[: LAYER_INDEX[layer] + 1])
        features.requires_grad_(False)
        features.eval()
        self.features = features
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_state_dict_post_hook(_drop_frozen_features)
        self.register_load_state_dict_pre_hook(_keep_frozen_features)

    def train(self, mode: bool = True) -> Self:
        """Set the mode of this module while keeping the frozen VGG19 in eval mode."""
        super().train(mode)
        self.features.eval()
        return self

    def _features(self, x: Tensor, index: Tensor) -> Tensor:
        rgb = x.index_select(1, index)
        mean, std = self.mean.to(rgb.dtype), self.std.to(rgb.dtype)
        return self.features((rgb - mean) / std)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        """Compute the feature distance.

        Args:
            sr: Super-resolved image, float ``(B, C, H, W)``, reflectance in ``[0, 1]``.
            hr: Target image, same shape; treated as a constant (no gradient).

        Returns:
            Scalar tensor, differentiable w.r.t. ``sr``.

        Raises:
            ValueError: If shapes differ or are not 4-D, or explicit bands exceed ``C``.
        """
        if sr.ndim != 4 or sr.shape != hr.shape:
            raise ValueError(
                f"perceptual loss needs sr and hr of the same shape (B, C, H, W); got "
                f"{tuple(sr.shape)} and {tuple(hr.shape)}"
            )
        index = torch.tensor(select_rgb_bands(sr.shape[1], self.bands), device=sr.device)
        sr_features = self._features(sr, index)
        with torch.no_grad():
            hr_features = self._features(hr, index)
        return _CRITERIA[self.criterion](sr_features, hr_features)
