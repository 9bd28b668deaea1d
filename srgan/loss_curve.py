"""The loss-curve picture of a run, drawn from its metric log (``<run_dir>/logs/metrics.csv``).

Two panels over the training iterations: the generator's content and adversarial losses
(separate axes: their scales differ by orders of magnitude), and the discriminator's mean
probabilities D(y) (real HR) and D(G(x)) (super-resolved). Pretraining, where the
discriminator does not train, is shaded. A resumed run logs the steps after its last
checkpoint twice; the later attempt's values are drawn.

Example::

    write_loss_curves("runs/r1")  # -> "runs/r1/previews/loss_curves.png"
"""

from __future__ import annotations

import csv
import io
import math

import fsspec

from srgan.run_log import METRICS_FILE

ITERATION = "training/iteration"
CONTENT = "generator/content_loss"
ADVERSARIAL = "generator/adversarial_loss"
D_REAL = "discriminator/D(y)_prob"
D_FAKE = "discriminator/D(G(x))_prob"
PRETRAINING = "training/pretrain_phase"
CURVES_NAME = "loss_curves.png"


def read_steps(run_dir: str) -> dict[int, dict[str, float]]:
    """The logged training values of a run by iteration (the last row logged for each).

    Returns an empty mapping when the run has no metric log yet.
    """
    uri = f"{run_dir.rstrip('/')}/logs/{METRICS_FILE}"
    try:
        with fsspec.open(uri, "r", newline="") as file:
            rows = list(csv.DictReader(file))
    except FileNotFoundError:
        return {}
    steps: dict[int, dict[str, float]] = {}
    for row in rows:
        if not row.get(ITERATION):
            continue  # a validation row
        values = {k: float(v) for k, v in row.items() if v not in ("", None)}
        steps[int(values[ITERATION])] = values
    return dict(sorted(steps.items()))


def _series(steps: dict[int, dict[str, float]], key: str) -> tuple[list[int], list[float]]:
    points = [(i, v[key]) for i, v in steps.items() if key in v and math.isfinite(v[key])]
    return [i for i, _ in points], [v for _, v in points]


def render_loss_curves(steps: dict[int, dict[str, float]], title: str = "") -> bytes | None:
    """The two-panel PNG of :func:`read_steps`' values; ``None`` without any logged step."""
    if not steps:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe in worker threads
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.5), dpi=100, layout="constrained")
    g_axes, d_axes = figure.subplots(2, 1, sharex=True)
    pretraining = [i for i, v in steps.items() if v.get(PRETRAINING, 0.0) >= 0.5]
    for axes in (g_axes, d_axes):
        if pretraining:
            axes.axvspan(min(pretraining), max(pretraining), color="0.92", label="pretraining")
    g_axes.plot(*_series(steps, CONTENT), color="tab:blue", label="content loss")
    g_axes.set_ylabel("content loss", color="tab:blue")
    adversarial = g_axes.twinx()
    adversarial.plot(*_series(steps, ADVERSARIAL), color="tab:red", label="adversarial loss")
    adversarial.set_ylabel("adversarial loss", color="tab:red")
    g_axes.set_title(f"generator {title}".strip())
    d_axes.plot(*_series(steps, D_REAL), color="tab:green", label="D(y): real HR")
    d_axes.plot(*_series(steps, D_FAKE), color="tab:purple", label="D(G(x)): super-resolved")
    d_axes.set_ylim(-0.02, 1.02)
    d_axes.set_ylabel("probability")
    d_axes.set_xlabel("iteration")
    d_axes.set_title("discriminator (0 while it does not train)")
    d_axes.legend(loc="center right", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_loss_curves(run_dir: str) -> str | None:
    """Draw the run's loss curves to ``<run_dir>/previews/loss_curves.png`` (local or fsspec
    URL, written whole); returns its path, or ``None`` when the run logged no step."""
    png = render_loss_curves(read_steps(run_dir), title=run_dir.rstrip("/").rsplit("/", 1)[-1])
    if png is None:
        return None
    path = f"{run_dir.rstrip('/')}/previews/{CURVES_NAME}"
    fs, fs_path = fsspec.core.url_to_fs(path)
    fs.makedirs(fs_path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(f"{fs_path}.tmp", "wb") as out:
        out.write(png)
    fs.mv(f"{fs_path}.tmp", fs_path)
    return path
