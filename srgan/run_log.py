"""The run's metric log, ``<run_dir>/logs/metrics.csv``, kept across the attempts of a run.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts, so a resumed run
would lose the rows of the attempts before it. :class:`RunCSVLogger` appends instead; it is a
plain :class:`~lightning.pytorch.loggers.Logger` built on public API only.
"""

from __future__ import annotations

import csv
import io
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

import fsspec
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

METRICS_FILE = "metrics.csv"


class RunCSVLogger(Logger):
    """Append every logged step to ``<run_dir>/logs/metrics.csv`` (local or fsspec URL).

    A resumed run appends to the rows of the attempts before it; the steps after the last
    checkpoint then appear again, from the attempt that redid them. When a step brings a new
    column, the file is rewritten once with the wider header (empty cells in older rows). Only
    rank 0 writes.

    Args:
        run_dir: The run folder.
        flush_every: Rows kept in memory before they are written (they are also written at the
            end of the fit and at every checkpoint-sized pause Lightning makes).
    """

    def __init__(self, run_dir: str, flush_every: int = 100) -> None:
        super().__init__()
        self._dir = f"{str(run_dir).rstrip('/')}/logs"
        self._flush_every = flush_every
        self._rows: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        return "logs"

    @property
    def version(self) -> str:
        return ""

    @property
    def log_dir(self) -> str:
        """The folder of ``metrics.csv`` and ``hparams.yaml``."""
        return self._dir

    @property
    def save_dir(self) -> str:
        return self._dir

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kw: Any) -> None:
        fs, path = fsspec.core.url_to_fs(self._dir)
        fs.makedirs(path, exist_ok=True)
        save_hparams_to_yaml(f"{self._dir}/hparams.yaml", params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        row = {k: v.item() if isinstance(v, Tensor) else v for k, v in metrics.items()}
        self._rows.append({**row, "step": step if step is not None else len(self._rows)})
        if len(self._rows) >= self._flush_every:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        if not self._rows:
            return
        fs, path = fsspec.core.url_to_fs(f"{self._dir}/{METRICS_FILE}")
        keys = set().union(*self._rows)
        header: list[str] = []
        old_rows: list[dict[str, Any]] = []
        if fs.isfile(path):
            with fs.open(path, "r", newline="") as file:
                reader = csv.DictReader(file)
                header = list(reader.fieldnames or [])
                if not keys <= set(header):  # a new column: the file is rewritten, wider
                    old_rows = list(reader)
        appending = bool(header) and keys <= set(header)
        if not appending:
            header = sorted(keys | set(header))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header)
        if not appending:
            writer.writeheader()
        writer.writerows([*old_rows, *self._rows])
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "a" if appending else "w", newline="") as file:
            file.write(buffer.getvalue())
        self._rows = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
