"""No pickled code runs, whichever way a file reaches the product.

Each test hands a file that is a valid checkpoint (or VGG19 state dict) plus one pickled object
whose unpickling calls ``os.mkdir(marker)`` to one load path: resuming a run, warm-starting
(``init_from``), super-resolving a scene (the CLI), evaluating a checkpoint (the retrain
decision) and the perceptual loss's VGG19 weights. Every path must refuse the file with its own
error and the marker must not exist: nothing in the file was executed.

Shown failing: with ``weights_only=False`` in ``srgan.checkpointing.load_checkpoint`` the first
four tests fail (the marker is created, the load goes on); with ``weights_only=False`` in
``srgan.losses.perceptual.load_vgg19_features`` the last one fails.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from srgan.checkpoint_io import refused_global
from srgan.checkpointing import CheckpointError, load_checkpoint
from srgan.cli import main as cli
from srgan.evaluate import evaluate_checkpoint
from srgan.train import fit


class Payload:
    """Unpickling this object creates the directory ``marker`` (code from the file runs)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.marker,))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran"


@pytest.fixture
def armed_checkpoint(tiny_checkpoint: str, tmp_path: Path, marker: Path) -> Path:
    """The session's tiny checkpoint with a :class:`Payload` added: loadable in every other way."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint["extra"] = Payload(marker)
    path = tmp_path / "armed.ckpt"
    torch.save(checkpoint, path)
    assert not marker.exists()
    return path


def _attempt(load: Callable[[], object]) -> BaseException | None:
    """Run ``load``; the error it raised, or ``None``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "skipping unusable checkpoint"
            load()
    except Exception as err:
        return err
    return None


def _refused(err: BaseException | str | None, marker: Path) -> None:
    assert not marker.exists(), "code from the pickled file ran"
    message = str(err).lower()
    # the refusal names the offending global and never suggests weights_only=False
    assert err and "not allowed" in message and "global posix." in message, message
    assert "weights_only=false" not in message, message


def test_resume_refuses_a_checkpoint_with_pickled_code(
    make_config: Any, datamodule: Any, armed_checkpoint: Path, marker: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(armed_checkpoint, run_dir / "checkpoints" / "last.ckpt")
    err = _attempt(lambda: fit(make_config(), datamodule, run_dir, final_validation=False))
    _refused(err, marker)
    assert isinstance(err, CheckpointError) and "none of them loads" in str(err)


def test_init_from_refuses_a_checkpoint_with_pickled_code(
    make_config: Any, datamodule: Any, armed_checkpoint: Path, marker: Path, tmp_path: Path
) -> None:
    err = _attempt(
        lambda: fit(
            make_config(),
            datamodule,
            tmp_path / "run",
            init_from=str(armed_checkpoint),
            final_validation=False,
        )
    )
    _refused(err, marker)
    assert isinstance(err, CheckpointError)


def test_super_resolve_refuses_a_checkpoint_with_pickled_code(
    bigearthnet_dirs: list[Path],
    armed_checkpoint: Path,
    marker: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "sr.tif"
    argv = ["super-resolve", str(bigearthnet_dirs[0]), "--checkpoint", str(armed_checkpoint)]
    status = cli([*argv, "--out", str(out), "--device", "cpu"])
    _refused(capsys.readouterr().err, marker)
    assert status == 2 and not out.exists()


def test_evaluation_refuses_a_checkpoint_with_pickled_code(
    datamodule: Any, armed_checkpoint: Path, marker: Path
) -> None:
    err = _attempt(lambda: evaluate_checkpoint(str(armed_checkpoint), datamodule))
    _refused(err, marker)
    assert isinstance(err, CheckpointError)


def test_perceptual_weights_with_pickled_code_are_refused(
    make_config: Any, datamodule: Any, marker: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "extra": Payload(marker)}, weights)
    cfg = make_config(losses={"perceptual_weight": 0.1, "perceptual_weights_path": str(weights)})
    err = _attempt(lambda: fit(cfg, datamodule, tmp_path / "run", final_validation=False))
    _refused(err, marker)
    assert isinstance(err, ValueError) and "global posix." in str(err)
    assert "weights_only" not in str(err)


def test_the_refusal_says_what_happened_and_what_to_do(armed_checkpoint: Path, marker: Path):
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(armed_checkpoint)
    assert str(raised.value) == (
        f"checkpoint {armed_checkpoint} holds code or objects that are not allowed (global "
        "posix.mkdir); it was refused and nothing in it ran. s2-srgan checkpoints hold tensors "
        "and plain values only: use a checkpoint written by s2-srgan, from a source you trust"
    )
    assert not marker.exists()


def test_an_opcode_the_safe_reader_lacks_is_reported_as_damage(tmp_path: Path) -> None:
    """A checkpoint archive whose pickle uses an opcode the weights-only reader does not
    support (no global involved): refused as damaged, with the reader's reason."""
    import io
    import zipfile

    buffer = io.BytesIO()
    torch.save({"state_dict": {}}, buffer)
    path = tmp_path / "odd.ckpt"
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, b"\x80\x02(I1\nt." if info.filename.endswith("data.pkl") else data)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == (
        f"checkpoint {path} is damaged or not a checkpoint (Unsupported operand 73)"
    )


def test_refused_global_names_the_global_or_nothing() -> None:
    refusal = RuntimeError("Weights only load failed ... Unsupported global: GLOBAL posix.system")
    assert refused_global(refusal) == "posix.system"
    assert refused_global(RuntimeError("Weights only load failed: truncated file")) is None


def test_the_safe_reader_stays_on_when_torch_is_told_to_drop_it(
    armed_checkpoint: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` turns torch's safe reader off wherever a caller
    leaves ``weights_only`` unset; the checkpoint reader sets it, so the file is still refused.
    Fails if ``weights_only=True`` is left to torch's default."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    _refused(_attempt(lambda: load_checkpoint(armed_checkpoint)), marker)


def test_a_file_without_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    for name, content in [("weights", {"weights": torch.zeros(1)}), ("list", [1, 2])]:
        path = tmp_path / f"{name}.ckpt"
        torch.save(content, path)
        with pytest.raises(CheckpointError) as raised:
            load_checkpoint(path)
        assert (
            str(raised.value) == f"{path} is not an s2-srgan/Lightning checkpoint (no state_dict)"
        )


def test_a_checkpoint_written_on_a_gpu_loads_on_a_cpu_only_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its tensors are recorded as ``cuda:0``; the reader maps them to the CPU. (Written here
    without a GPU by tagging the CPU tensors ``cuda:0`` while saving.) Fails without
    ``map_location="cpu"``: torch refuses CUDA tensors on a machine without CUDA."""
    import torch.serialization as serialization

    monkeypatch.setattr(serialization, "_package_registry", list(serialization._package_registry))
    serialization.register_package(0, lambda _: "cuda:0", lambda obj, location: None)
    path = tmp_path / "gpu.ckpt"
    torch.save({"state_dict": {"generator.w": torch.arange(3.0)}}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)["state_dict"]
    assert state["generator.w"].device.type == "cpu"
    assert state["generator.w"].tolist() == [0.0, 1.0, 2.0]


def test_a_refusal_without_a_reason_still_says_damaged() -> None:
    """torch's unpickler error without its usual ``WeightsUnpickler error:`` line."""
    import pickle

    from srgan.checkpoint_io import _unpickling_error

    error = _unpickling_error("run/last.ckpt", pickle.UnpicklingError("invalid load key, 'x'."))
    assert str(error) == "checkpoint run/last.ckpt is damaged or not a checkpoint"
