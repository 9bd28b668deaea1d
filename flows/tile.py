"""Flow ``tile-sentinel2``: Sentinel-2 scenes in, a georeferenced Zarr patch store out.

One task per scene, run concurrently by Prefect's thread-pool task runner, or by an existing Dask
cluster when ``dask_address`` is given. Run with
``prefect deployment run tile-sentinel2/tile-sentinel2``.

Several workers may append to one Icechunk store: it refuses a commit that raced another one, so
the losing task runs again (see :func:`_tile_task`). A plain-Zarr store cannot detect such races
on S3, so the flow tiles scenes into an existing plain-Zarr store one at a time; it only creates
Icechunk stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from prefect import Task, flow
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import Field

from datasets.degradation import Degradation
from datasets.harmonise import HarmonisationParam
from datasets.scenes import DEFAULT_BANDS
from datasets.split_policy import SplitPolicy
from datasets.stac_search import StacSearch
from datasets.store_backends import Backend
from datasets.tiling import TileResult
from datasets.tiling_params import MaskPolicy, ResamplingName, TilingParams
from datasets.tiling_summary import TilingSummary
from tasks.credentials import s3_credentials
from tasks.error_logs import is_data_input_error, one_line_input_errors
from tasks.storage import default_store
from tasks.tile import (
    TileFailure,
    TilingProgress,
    find_scene_uris,
    scenes_in_store,
    search_stac_scenes,
    store_backend,
    summarise_tiling,
    tile_one_scene,
)


class TilingFailed(RuntimeError):
    """At least one scene could not be tiled; the others are in the store."""


def _task_runner(dask_address: str | None, max_workers: int) -> TaskRunner[Any]:
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ThreadPoolTaskRunner(max_workers=max_workers)


def _tile_task(n_scenes: int) -> Task[..., TileResult]:
    """The tile task with enough retries to lose every commit race of this run.

    An Icechunk commit is refused when another scene was committed during the append; the task
    then runs again (appends are idempotent). Every scene commits once, so one scene can lose at
    most ``n_scenes - 1`` races, on top of the task's own retries for transient I/O errors.
    Jitter keeps the losers of one race from meeting again in the next.
    """
    return tile_one_scene.with_options(
        retries=tile_one_scene.retries + n_scenes - 1, retry_jitter_factor=1.0
    )


@flow(name="tile-scenes")
def _tile_scenes(
    scenes: list[str],
    store: str,
    params: TilingParams,
    one_at_a_time: bool,
    backend: Backend | None = None,
) -> tuple[list[TileResult], list[TileFailure]]:
    """Tile every scene; ``one_at_a_time`` waits for each scene before submitting the next."""
    tile = tile_one_scene if one_at_a_time else _tile_task(len(scenes))
    results: list[TileResult] = []
    failures: list[TileFailure] = []
    with TilingProgress(len(scenes)) as progress:

        def finished() -> Iterator[tuple[str, PrefectFuture[TileResult]]]:
            if one_at_a_time:
                for uri in scenes:
                    future = tile.submit(
                        uri, store, params, backend=backend, progress_id=progress.id
                    )
                    future.wait()
                    yield uri, future
            else:
                futures = [
                    tile.submit(uri, store, params, backend=backend, progress_id=progress.id)
                    for uri in scenes
                ]
                yield from zip(scenes, futures, strict=True)

        for uri, future in finished():
            outcome = future.result(raise_on_failure=False)
            if future.state.is_completed():
                results.append(outcome)
            else:  # recorded per scene; the flow fails after the summary
                failures.append(TileFailure(uri, str(outcome)))
            progress.scene_done(uri)
    return results, failures


@flow(name="tile-sentinel2", log_prints=True)
def tile_sentinel2(
    scenes: list[str] | None = None,
    scan: str | None = None,
    stac: StacSearch | None = None,
    store: str | None = None,
    storage: str | None = None,
    bands: Annotated[list[str], Field(min_length=1)] = list(DEFAULT_BANDS),  # noqa: B006
    scale: Literal[2, 4, 8] = 4,
    patch_size: Annotated[int, Field(ge=8)] = 128,
    stride: Annotated[int | None, Field(ge=1)] = None,
    degradation: Degradation = Degradation(),
    split: SplitPolicy = SplitPolicy(),
    max_nodata_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0,
    max_bright_fraction: Annotated[float | None, Field(ge=0, le=1)] = None,
    masks: MaskPolicy = MaskPolicy(),
    harmonisation: HarmonisationParam | None = None,
    resampling: ResamplingName | None = None,
    backend: Backend | None = None,
    dask_address: str | None = None,
    max_workers: Annotated[int, Field(ge=1)] = 2,
    credentials_block: str | None = None,
) -> TilingSummary:
    """Tile Sentinel-2 scenes into a patch store.

    Args:
        scenes: scene URIs (band folders, .SAFE products, multi-band GeoTIFFs; local or s3://).
        scan: a folder or s3:// prefix to search for scenes (added to ``scenes``).
        stac: a STAC API search whose Items are added to ``scenes``: ``{"url", "collection",
            "bbox" or "intersects", "datetime", "max_cloud_cover", "limit", "sign"}``.
        store: patch store URI (default ``<storage>/patches/sentinel2.zarr``).
        storage: storage root (default ``$S2SR_STORAGE`` or ``./.s2sr``).
        bands: band names, in store order.
        scale: super-resolution factor (HR pixels per LR pixel).
        patch_size: HR patch edge in pixels (a multiple of ``scale``).
        stride: HR pixels between patches (default ``patch_size``).
        degradation: how LR patches are made from HR.
        split: train/validation assignment by scene or spatial block.
        max_nodata_fraction: drop patches with more missing pixels than this.
        max_bright_fraction: drop patches with more bright (cloud-like) pixels than this (the
            cloud filter of scenes without a cloud mask).
        masks: the cloud-mask policy: the product's SCL (L2A) or MSK_CLASSI_B00 (L1C), which
            classes mask a pixel, and the largest masked fraction a kept patch may hold.
        harmonisation: how digital numbers become reflectance for scenes without product
            metadata or STAC Item, e.g. ``{"offset": -1000}`` for bare band files of a product
            from 2022-01-25 on (product metadata and STAC Items take precedence).
        resampling: resample bands of coarser native resolution (e.g. B05 with B02) onto the
            finest band's grid with this method; without it such band sets are refused.
        backend: ``icechunk`` (default for a new store) or ``zarr`` (plain Zarr v3). An
            existing store keeps its own; asking for the other one fails the run before any
            scene is read.
        dask_address: run the per-scene tasks on the Dask scheduler at this address (e.g.
            ``tcp://scheduler:8786``) instead of local threads. Its workers need this project
            installed and read S3 credentials from their own environment (``AWS_*``).
        max_workers: threads for the local task runner. Scenes go into a plain-Zarr store one
            at a time whatever the runner: its appends take turns through a lease anyway.
        credentials_block: name of a ``Secret`` block holding the ``AWS_*`` variables for S3
            (default: the worker's environment, ``~/.aws`` or the instance role). With
            ``dask_address`` it applies to this flow run only (scanning, summary): the Dask
            workers keep their own environment.

    Returns:
        What the store holds for each scene of the run, its version and its split sizes.

    Raises:
        TilingError: ``patch_size`` or ``stride`` not a multiple of ``scale``, or a band name
            that is not a Sentinel-2 band; raised before any scene is read.
        TilingFailed: a scene could not be tiled (the others are in the store).
    """
    one_line_input_errors(is_data_input_error)
    # built and checked once here, so bad values fail the run before any task
    params = TilingParams.build(
        bands=bands,
        scale=scale,
        patch_size=patch_size,
        stride=stride,
        degradation=degradation,
        split=split,
        max_nodata_fraction=max_nodata_fraction,
        max_bright_fraction=max_bright_fraction,
        masks=masks,
        resampling=resampling,
        harmonisation=harmonisation,
        sign=stac.sign if stac is not None else None,
    )
    with s3_credentials(credentials_block):
        uris = list(dict.fromkeys(scenes or []))
        if scan:
            uris += [u for u in find_scene_uris(scan) if u not in uris]
        if stac is not None:
            uris += [u for u in search_stac_scenes(stac) if u not in uris]
        if not uris:
            raise ValueError(
                "no scenes to tile: pass `scenes`, a `scan` folder/prefix that holds scenes, or "
                "a `stac` search that finds Items"
            )
        target = store or default_store(storage)
        if credentials_block and dask_address:
            get_run_logger().warning(
                "credentials_block %r applies to this flow run only: the tile tasks on the Dask "
                "cluster read S3 credentials from their workers' own environment",
                credentials_block,
            )
        # plain Zarr appends take turns (a lease): submitting them all at once gains nothing
        one_at_a_time = store_backend(target, backend) == "zarr"
        present = scenes_in_store(target)
        runner = _task_runner(dask_address, max_workers)
        results, failures = _tile_scenes.with_options(task_runner=runner)(
            uris, target, params, one_at_a_time, backend
        )
        summary = summarise_tiling(target, results, failures, present)
        if failures:
            raise TilingFailed(
                f"{len(failures)} of {len(uris)} scene(s) failed: "
                + "; ".join(f"{f.scene_uri}: {f.error}" for f in failures)
            )
        return summary
