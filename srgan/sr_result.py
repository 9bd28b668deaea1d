"""The typed result of a whole-scene super-resolution, passed from library to tasks and flows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from srgan.qa_record import QASummary


@dataclass(frozen=True)
class SuperResolveResult:
    """What :func:`~srgan.super_resolve_scene.super_resolve_scene` produced; JSON-able.

    Attributes:
        output: The COG's path or ``s3://`` URI.
        qa_sidecar: The per-block QA COG beside it; ``stac_item`` its STAC Item.
        scene: The input scene URI; ``scene_id`` its identifier.
        checkpoint: The checkpoint used; ``checkpoint_sha256`` the hash of its bytes;
            ``weights`` ``"ema"`` or ``"generator"``; ``run_key`` its training run, if recorded.
        bands: Band names, in the output's band order.
        scale: Upscaling factor.
        lr_size: Input ``(width, height)`` in pixels; ``sr_size`` the output's.
        crs: Output CRS (that of the scene) as WKT or ``EPSG:…``.
        device: Where the generator ran.
        tiles: Number of tiles the generator processed.
        seconds: Wall time per stage (``read``, ``model``, ``blend``, ``write``, ``cog``, ``qa``,
            ``provenance``, ``total``); ``model`` is the generator alone.
        megapixels_per_second: Output (SR) megapixels per second of ``total``.
        peak_rss_mb: Peak resident memory of this process so far (MiB).
        quicklook: PNG of an LR | SR crop at the scene centre, when one was asked for.
        qa: The consistency QA and the gate's verdict.
    """

    output: str
    qa_sidecar: str
    stac_item: str
    scene: str
    scene_id: str
    checkpoint: str
    checkpoint_sha256: str
    weights: str
    run_key: str | None
    bands: list[str]
    scale: int
    lr_size: tuple[int, int]
    sr_size: tuple[int, int]
    crs: str
    device: str
    tiles: int
    seconds: dict[str, float]
    megapixels_per_second: float
    peak_rss_mb: float
    quicklook: str | None
    qa: QASummary

    @property
    def passed(self) -> bool:
        """Whether the output passed the QA gate."""
        return self.qa.verdict == "passed"

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON-able data."""
        return asdict(self)
