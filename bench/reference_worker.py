"""One run of the reference, opensr-srgan 0.4.3: ``python -m bench.reference_worker JOB RESULT``.

Run by ``bench/.venv-opensr/bin/python`` (``make bench-reference-setup``), never by the project's
venv: this module imports opensr-srgan, torch and ``pytorch_lightning`` only, not ``srgan``. It
builds the reference's own ``SRGAN_model`` from an OmegaConf config equivalent to the workload
(see :func:`bench.workloads.opensr_workload` for the job's ``workload`` keys), trains it through
a real Lightning ``Trainer`` (the reference's own ``training_step``) on in-memory random tensors
and writes the wall time between successive ``on_train_batch_end`` calls, its peak RSS and which
optimizers stepped in every batch.

The reference counts its phase schedules in ``trainer.global_step``, which advances once per
pretraining batch but twice per adversarial batch (D and G each step). The workloads avoid any
schedule boundary (pretraining ``-1`` = forever, or off; no adversarial ramp; no warm-up; no EMA)
and the worker checks, per batch, that D stepped in none (pretrain) or all (adversarial) of them.

Modules that opensr-srgan imports at module level but never uses on this path are replaced by
stand-ins when they are not installed (see :data:`STUBBED`); touching one raises.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import itertools
import json
import resource
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
# ``python -m`` puts the repository first on sys.path; our ``srgan`` must stay out of reach.
sys.path[:] = [p for p in sys.path if p not in ("", ".", _REPO_ROOT)]

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.loggers import CSVLogger  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

#: Module -> why opensr-srgan imports it, for each module that gets a stand-in when missing.
STUBBED = {
    "torchvision": "model.loss.vgg imports it for the VGG perceptual loss (weight 0 here)",
    "wandb": "model.SRGAN imports it for validation image logging (no validation here)",
    "matplotlib": "utils.logging_helpers imports pyplot for validation plots",
    "matplotlib.pyplot": "utils.logging_helpers imports pyplot for validation plots",
    "skimage": "utils.radiometrics imports exposure for predict-time histogram matching",
    "skimage.exposure": "utils.radiometrics imports exposure for predict-time histogram matching",
}


class StubUsedError(RuntimeError):
    """Code on the timed path touched a stand-in module: the benchmark would be wrong."""


class _Stub(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise StubUsedError(
            f"{self.__name__}.{attr} used, but {self.__name__} is a benchmark stand-in "
            f"({STUBBED[self.__name__]}): this workload is not what the benchmark times"
        )


def install_stubs() -> list[str]:
    """Put a stand-in into ``sys.modules`` for each missing module of :data:`STUBBED`."""
    stubbed: list[str] = []
    for name in STUBBED:
        parent, _, child = name.rpartition(".")
        if parent and parent not in stubbed:
            continue  # the real parent is installed, and with it its submodules
        if not parent and importlib.util.find_spec(name) is not None:
            continue
        module = _Stub(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
        sys.modules[name] = module
        if parent:
            setattr(sys.modules[parent], child, module)
        stubbed.append(name)
    return stubbed


def opensr_config(workload: dict[str, Any]) -> dict[str, Any]:
    """The opensr-srgan 0.4.3 config (its own schema) of one workload."""
    g, pretrain = workload["generator"], workload["phase"] == "pretrain"
    return {
        "Data": {"train_batch_size": workload["batch_size"], "normalization": "normalise_10k"},
        "Model": {"in_bands": workload["bands"]},
        "Generator": {
            "model_type": "SRResNet",
            "block_type": "standard",
            "n_channels": g["channels"],
            "n_blocks": g["n_blocks"],
            "large_kernel_size": g["large_kernel"],
            "small_kernel_size": g["small_kernel"],
            "scaling_factor": workload["scale"],
        },
        "Discriminator": {
            "model_type": "standard",
            "n_blocks": workload["discriminator"]["n_blocks"],
            "use_spectral_norm": False,
        },
        "Training": {
            "device": "cpu",
            "pretrain_g_only": pretrain,
            "g_pretrain_steps": -1 if pretrain else 0,  # -1: pretraining never ends
            "adv_loss_ramp_steps": 0,
            "label_smoothing": False,
            "EMA": {"enabled": False},
            "Losses": {
                "adv_loss_type": "bce",
                "relativistic_average_d": False,
                "adv_loss_beta": workload["adv_weight"],
                "r1_gamma": 0.0,
                "l1_weight": workload["l1_weight"],
                "sam_weight": 0.0,
                "perceptual_weight": 0.0,
                "tv_weight": 0.0,
                "max_val": 1.0,
                "ssim_win": 11,
            },
        },
        "Optimizers": {
            "optim_g_lr": workload["lr_g"],
            "optim_d_lr": workload["lr_d"],
            "gradient_clip_val": 0.0,
        },
        "Schedulers": {
            "g_warmup_steps": 0,
            "metric_g": "val_metrics/l1",
            "metric_d": "discriminator/adversarial_loss",
        },
        "Logging": {"num_val_images": 0, "wandb": {"enabled": False}},
    }


class StepTimer(pl.Callback):
    """Batch-end timestamps, page faults, CPU time, and the optimizer steps of every batch."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.faults: list[int] = []
        self.cpu: list[float] = []
        self.global_steps: list[int] = []
        self.steps: list[tuple[int, int]] = []  # (D steps, G steps) per batch
        self._count = [0, 0]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        opt_d, opt_g = trainer.optimizers  # the reference's order: [D, G]
        for index, opt in enumerate((opt_d, opt_g)):
            opt.register_step_post_hook(lambda *_, i=index: self._tick(i))

    def _tick(self, index: int) -> None:
        self._count[index] += 1

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.ends.append(time.perf_counter())
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        self.cpu.append(time.process_time())
        self.global_steps.append(trainer.global_step)
        self.steps.append((self._count[0], self._count[1]))
        self._count = [0, 0]


def check_phase(phase: str, steps: list[tuple[int, int]]) -> None:
    """Every batch took the workload's branch: (0 D, 1 G) pretrain, (1 D, 1 G) adversarial.

    Raises:
        RuntimeError: a batch stepped other optimizers than its phase does.
    """
    expected = (0, 1) if phase == "pretrain" else (1, 1)
    wrong = [i for i, s in enumerate(steps) if s != expected]
    if wrong:
        raise RuntimeError(
            f"{phase} workload: batches {wrong} stepped (D, G) = "
            f"{[steps[i] for i in wrong]}, expected {expected}"
        )


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Time one workload on opensr-srgan; see the module docstring."""
    torch.set_num_threads(int(job["threads"]))
    stubbed = install_stubs()
    from opensr_srgan.model.SRGAN import SRGAN_model

    workload = job["workload"]
    warmup, iters = int(job["warmup"]), int(job["iterations"])
    total = warmup + iters
    pl.seed_everything(0, verbose=False)
    batch, scale, hr_size = workload["batch_size"], workload["scale"], workload["hr_size"]
    hr = torch.rand(batch * total, workload["bands"], hr_size, hr_size)
    lr = torch.nn.functional.avg_pool2d(hr, scale)
    loader = DataLoader(TensorDataset(lr, hr), batch_size=batch, shuffle=False)

    model = SRGAN_model(config=opensr_config(workload), mode="train")
    if model.content_loss_criterion.perceptual_model is not None:
        raise RuntimeError("the reference built its perceptual (VGG) loss: not this workload")
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-opensr-") as run_dir:
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            precision="32-true",
            max_epochs=1,
            max_steps=-1,  # global_step advances twice per adversarial batch: count batches
            limit_train_batches=total,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            log_every_n_steps=10**9,
            logger=CSVLogger(run_dir, name="logs", version=""),
            callbacks=[timer],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=run_dir,
        )
        trainer.fit(model, train_dataloaders=loader)
    check_phase(workload["phase"], timer.steps)
    if "srgan" in sys.modules:
        raise RuntimeError("the reference worker imported the project's srgan package")

    window = timer.ends[warmup - 1 : total]
    return {
        "seconds_per_iteration": [b - a for a, b in itertools.pairwise(window)],
        "page_faults_per_iteration": (timer.faults[total - 1] - timer.faults[warmup - 1]) / iters,
        "cpu_seconds_per_iteration": (timer.cpu[total - 1] - timer.cpu[warmup - 1]) / iters,
        "flops_per_iteration": None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "iterations_run": len(timer.ends),
        "optimizer_steps_per_batch": {
            "discriminator": [d for d, _ in timer.steps],
            "generator": [g for _, g in timer.steps],
        },
        "global_step_per_batch": timer.global_steps,
        "parameters": {
            "generator": sum(p.numel() for p in model.generator.parameters()),
            "discriminator": sum(p.numel() for p in model.discriminator.parameters()),
        },
        "precision": str(trainer.precision),
        "threads": torch.get_num_threads(),
        "srgan_path": str(Path(sys.modules["opensr_srgan"].__file__ or "").parent),
        "stubbed_modules": stubbed,
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "opensr_srgan": importlib.metadata.version("opensr-srgan"),
        "kornia": importlib.metadata.version("kornia"),
        "python": sys.executable,
    }


def main(argv: list[str]) -> int:
    """Entry point: ``JOB.json RESULT.json``."""
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    Path(result_path).write_text(json.dumps(run(job), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
