"""The software version recorded in stores, checkpoints, COGs and reports."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: The distribution name, as recorded beside the version (e.g. in a COG's ``SR_SOFTWARE``).
DISTRIBUTION = "s2-srgan"


def software_version() -> str:
    """The installed s2-srgan version; ``0+unknown`` in a source tree that was never installed."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"
