"""srgan package."""

from importlib.metadata import PackageNotFoundError, version


def software_version() -> str:
    """The installed s2-srgan version (``"unknown"`` in a source tree never installed)."""
    try:
        return version("s2-srgan")
    except PackageNotFoundError:
        return "unknown"
