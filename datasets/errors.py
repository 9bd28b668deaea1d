"""Errors raised by the data layer; each message says what was wrong and what to do."""

from __future__ import annotations


class S2SRDataError(Exception):
    """Base class for every data-layer error of s2-srgan."""


class SceneReadError(S2SRDataError):
    """A scene cannot be read as asked (missing band, no CRS, mismatched grids, corrupt file...)."""


class SampleDataError(S2SRDataError):
    """The sample data could not be fetched or failed its checksum."""


class TilingError(S2SRDataError):
    """A scene cannot be cut into patches with the requested parameters."""


class PatchStoreError(S2SRDataError):
    """The patch store is missing, empty, or inconsistent with what is asked of it."""


class StoreMismatchError(PatchStoreError):
    """A scene is appended to a store written with a different scale, band set or patch size."""


class InferenceError(S2SRDataError):
    """A checkpoint does not fit the scene it is asked to super-resolve (bands, scale)."""


class OutputError(S2SRDataError):
    """An output cannot be written (folder not writable, file exists, upload failed...)."""
