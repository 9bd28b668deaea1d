"""Validation metrics of a super-resolved batch, and of the bicubic baseline on the same batch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, Metric, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from srgan.config import METRIC_HIGHER_IS_BETTER
from srgan.opensr_shares import correctness_shares, patch_border

#: The opensr-test shares, in the order :class:`CorrectnessShareMetric` keeps them.
SHARES = ("improvement", "omission", "hallucination")


class SpectralAngle(Metric):
    """Mean spectral angle (radians) between per-pixel spectra of ``(B, C, H, W)`` images.

    Unlike torchmetrics' mapper, a pixel whose spectrum is all zeros (e.g. an SR output clamped
    at 0) yields a finite angle instead of NaN for the whole epoch.
    """

    full_state_update = False

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.total: Tensor
        self.count: Tensor
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        dot = (preds * target).sum(1)
        norms = preds.norm(dim=1) * target.norm(dim=1)
        cos = (dot / norms.clamp_min(self.eps)).clamp(-1.0, 1.0)
        self.total += torch.acos(cos).double().sum()
        self.count += cos.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count).float()


class ERGAS(Metric):
    """Mean per-image ERGAS, ``100 / ratio * sqrt(mean_b(RMSE_b**2 / mean_b(target)**2))``.

    Keeps two scalars of state (torchmetrics' version keeps every image in memory).
    """

    full_state_update = False

    def __init__(self, ratio: float, eps: float = 1e-8) -> None:
        super().__init__()
        self.ratio = ratio
        self.eps = eps
        self.total: Tensor
        self.count: Tensor
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        mse = ((preds - target) ** 2).flatten(2).mean(-1)
        mean_sq = target.flatten(2).mean(-1) ** 2
        per_image = 100.0 / self.ratio * torch.sqrt((mse / mean_sq.clamp_min(self.eps)).mean(1))
        self.total += per_image.double().sum()
        self.count += per_image.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count).float()


class CorrectnessShareMetric(Metric):
    """opensr-test's improvement / omission / hallucination shares over all images seen.

    Each image's shares (:func:`~srgan.opensr_shares.correctness_shares`, softmin, histogram
    matching, the 16 px border or a quarter of a small patch) are weighted by its judged pixels,
    as in ``s2-srgan evaluate``. The share definition divides by sums of values, so inputs must
    be non-negative: ``offset`` is added first (1 for values in [-1, 1]). Computed on the CPU in
    float64; the states live on the metric's device so DDP can sum them.

    Args:
        scale: Super-resolution factor.
        offset: Added to LR, SR and HR before the shares (the lower end of the data range, negated).
    """

    full_state_update = False

    def __init__(self, scale: int, offset: float = 0.0) -> None:
        super().__init__()
        self.scale = scale
        self.offset = offset
        self.weighted: Tensor
        self.pixels: Tensor
        self.add_state(
            "weighted", default=torch.zeros(3, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("pixels", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, lr: Tensor, target: Tensor) -> None:
        """Add a batch: ``preds`` and ``target`` ``(B, C, H, W)``, ``lr`` ``(B, C, h, w)``."""
        border = patch_border(target.shape[-1], self.scale)
        for sr, low, hr in zip(preds.cpu(), lr.cpu(), target.cpu(), strict=True):
            shares = correctness_shares(
                low + self.offset, sr + self.offset, hr + self.offset, border=border
            )
            if shares.pixels:
                values = [shares.improvement, shares.omission, shares.hallucination]
                self.weighted += torch.tensor(values, dtype=torch.float64, device=self.device) * (
                    shares.pixels
                )
                self.pixels += shares.pixels

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        """``{"improvement", "omission", "hallucination"}`` (nan when no pixel was judged)."""
        if float(self.pixels) == 0:
            return {name: torch.tensor(math.nan) for name in SHARES}
        shares = (self.weighted / self.pixels).float()
        return {name: shares[i] for i, name in enumerate(SHARES)}


def metric_rows(metrics: dict[str, float]) -> list[tuple[str, float, float, float]]:
    """``(name, model, bicubic, gain)`` of each validation metric present (gain: positive when
    the model is better), in the order of :data:`~srgan.config.METRIC_HIGHER_IS_BETTER`."""
    rows = []
    for name in METRIC_HIGHER_IS_BETTER:
        if f"val_metrics/{name}" not in metrics:
            continue
        rows.append(
            (
                name,
                metrics[f"val_metrics/{name}"],
                metrics.get(f"val_metrics/bicubic_{name}", math.nan),
                metrics.get(f"val_metrics/{name}_gain", math.nan),
            )
        )
    return rows


def bicubic_upsample(lr: Tensor, scale: int) -> Tensor:
    """Bicubic upsampling of ``(B, C, h, w)`` to ``(B, C, h*scale, w*scale)``: the baseline."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def batch_metrics(sr: Tensor, hr: Tensor, data_range: float) -> dict[str, Tensor]:
    """``train_metrics/{l1,psnr}`` of one training batch (no clamping, no bicubic baseline)."""
    mse = F.mse_loss(sr.float(), hr.float())
    return {
        "train_metrics/l1": F.l1_loss(sr.float(), hr.float()),
        "train_metrics/psnr": 10 * torch.log10(data_range**2 / mse.clamp_min(1e-12)),
    }


def _collection(scale: int, data_range: float, n_bands: int) -> MetricCollection:
    metrics: dict[str, Metric] = {
        "l1": MeanAbsoluteError(),
        "psnr": PeakSignalNoiseRatio(data_range=data_range),
        "ssim": StructuralSimilarityIndexMeasure(data_range=data_range),
        "ergas": ERGAS(ratio=scale),
    }
    if n_bands > 1:  # a spectral angle needs at least two bands
        metrics["sam"] = SpectralAngle()
    return MetricCollection(metrics)  # type: ignore[arg-type]


class SRValidationMetrics(nn.Module):
    """L1, PSNR, SSIM, SAM, ERGAS and the opensr-test improvement / omission / hallucination
    shares of SR and of bicubic against HR, accumulated over batches.

    Inputs are normalised tensors ``(B, C, H, W)``; SR and bicubic are clamped to the data range
    first, so both are judged as images a user would receive. The shares are computed on the
    values shifted to start at 0: reflectance for ``normalise_10k`` and (twice it)
    ``normalise_10k_signed``, per-patch stretched values for ``zero_one``.

    Args:
        scale: super-resolution factor (ERGAS needs it).
        data_range: span of valid values (1 for [0, 1], 2 for [-1, 1]).
        n_bands: number of bands (SAM is skipped for a single band).
    """

    def __init__(self, scale: int, data_range: float, n_bands: int) -> None:
        super().__init__()
        self.scale = scale
        self.low = -1.0 if data_range == 2.0 else 0.0
        self.high = self.low + data_range
        self.model = _collection(scale, data_range, n_bands)
        self.bicubic = _collection(scale, data_range, n_bands)
        self.model_shares = CorrectnessShareMetric(scale, offset=-self.low)
        self.bicubic_shares = CorrectnessShareMetric(scale, offset=-self.low)

    @torch.no_grad()
    def update(self, sr: Tensor, lr: Tensor, hr: Tensor) -> Tensor:
        """Accumulate one batch; returns the clamped bicubic upsampling for previews.

        Always in float32: under bf16-mixed validation the autocast would otherwise run the
        bicubic baseline and SSIM's Gaussian convolutions in bfloat16 and shift the scores.
        """
        with torch.autocast(device_type=sr.device.type, enabled=False):
            bicubic = bicubic_upsample(lr.float(), self.scale).clamp(self.low, self.high)
            sr = sr.float().clamp(self.low, self.high)
            self.model.update(sr, hr.float())
            self.bicubic.update(bicubic, hr.float())
            self.model_shares.update(sr, lr.float(), hr.float())
            self.bicubic_shares.update(bicubic, lr.float(), hr.float())
        return bicubic

    def compute(self) -> dict[str, float]:
        """Metrics as ``val_metrics/<name>``, ``val_metrics/bicubic_<name>`` and ``..._gain``.

        The gain is the improvement over bicubic in the metric's good direction (positive: better):
        a higher improvement share, a lower omission or hallucination share.
        """
        model = {k: float(v) for k, v in self.model.compute().items()}
        bicubic = {k: float(v) for k, v in self.bicubic.compute().items()}
        model.update({k: float(v) for k, v in self.model_shares.compute().items()})
        bicubic.update({k: float(v) for k, v in self.bicubic_shares.compute().items()})
        out: dict[str, float] = {}
        for name, value in model.items():
            sign = 1.0 if METRIC_HIGHER_IS_BETTER[name] else -1.0
            out[f"val_metrics/{name}"] = value
            out[f"val_metrics/bicubic_{name}"] = bicubic[name]
            out[f"val_metrics/{name}_gain"] = sign * (value - bicubic[name])
        return out

    def reset(self) -> None:
        """Forget accumulated batches."""
        self.model.reset()
        self.bicubic.reset()
        self.model_shares.reset()
        self.bicubic_shares.reset()

    @property
    def judged_pixels(self) -> int:
        """HR pixels the SR shares were computed on, so far."""
        return int(self.model_shares.pixels)
