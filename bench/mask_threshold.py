"""How the cloud-mask threshold trades kept patches against cloudy pixels in them (issue #11).

Input: a stack of real cloud masks, ``(time, height, width[, 1])`` in a ``.npy`` file (True or 1
= cloud). For each patch size and threshold ``t`` it reports the share of patches a tiling with
``masks.max_masked_fraction = t`` keeps and the share of cloudy pixels among the kept patches'
pixels. The default threshold (0.05) was chosen with it on the 68 real Sentinel-2 acquisitions of
eo-learn's example EOPatch (``example_data/TestEOPatch/mask/CLM.npy``, cloud masks of
sentinel-hub's s2cloudless over Slovenia, 101 × 100 px at 10 m), fetched by hand from the
public sentinel-hub/eo-learn repository; see ``bench/RESULTS.md``.

Run::

    python -m bench.mask_threshold CLM.npy --patch 16 24 32
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

THRESHOLDS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def patch_fractions(masks: np.ndarray, patch: int) -> np.ndarray:
    """Masked fraction of every non-overlapping ``patch``² window of every acquisition."""
    t, h, w = masks.shape
    rows, cols = h // patch, w // patch
    cut = masks[:, : rows * patch, : cols * patch].reshape(t, rows, patch, cols, patch)
    return cut.mean(axis=(2, 4)).ravel()


def table(masks: np.ndarray, patches: list[int]) -> str:
    """A markdown table: per patch size and threshold, kept share and cloudy-pixel share."""
    lines = [
        "| patch | threshold | patches kept | of which partly cloudy | cloudy px in kept |",
        "|---|---|---|---|---|",
    ]
    for patch in patches:
        fractions = patch_fractions(masks, patch)
        for threshold in THRESHOLDS:
            kept = fractions <= threshold
            partly = np.count_nonzero(kept & (fractions > 0)) / max(1, np.count_nonzero(kept))
            cloudy = fractions[kept].mean() if kept.any() else 0.0
            lines.append(
                f"| {patch} px | {threshold:g} | {kept.mean():.1%} | {partly:.1%} | {cloudy:.3%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mask_threshold", description=__doc__)
    parser.add_argument("masks", type=Path, help=".npy of (time, h, w[, 1]) cloud masks")
    parser.add_argument("--patch", type=int, nargs="+", default=[16, 24, 32])
    args = parser.parse_args(argv)
    masks = np.load(args.masks)
    masks = masks[..., 0] if masks.ndim == 4 else masks
    print(f"{masks.shape[0]} acquisitions of {masks.shape[1]}×{masks.shape[2]} px")
    print(table(masks.astype(bool), args.patch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
