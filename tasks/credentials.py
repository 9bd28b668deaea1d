"""S3 credentials from a Prefect ``Secret`` block, loaded at run time inside the flow.

The block holds a JSON object of AWS variables, e.g.::

    from prefect.blocks.system import Secret

    Secret(value={"AWS_ACCESS_KEY_ID": "...", "AWS_SECRET_ACCESS_KEY": "...",
                  "AWS_ENDPOINT_URL": "https://minio.example.com"}).save("s2sr-s3")

and a flow run given ``credentials_block="s2sr-s3"`` reads and writes S3 with them. The values go
into the flow run's environment (where s3fs, Icechunk and GDAL look for them) for the duration of
the flow and are restored afterwards; they never enter parameters, logs, artifacts or checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.blocks.system import Secret

#: The variables a credentials block may set.
AWS_VARIABLES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_PROFILE",
    }
)

_ALLOWED = ", ".join(sorted(AWS_VARIABLES))


class CredentialsBlockError(ValueError):
    """The named block is missing or does not hold a JSON object of AWS variables."""


def read_credentials_block(name: str) -> dict[str, str]:
    """The AWS variables held by the ``Secret`` block ``name``.

    Error messages name the block and its keys, never a value.

    Raises:
        CredentialsBlockError: no such block, or its value is not a JSON object whose keys are
            among :data:`AWS_VARIABLES` and whose values are strings.
    """
    try:
        value: Any = Secret.load(name).get()  # type: ignore[union-attr]
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise CredentialsBlockError(
            f"no Secret block named {name!r}; create it with "
            f"prefect.blocks.system.Secret(value={{...}}).save({name!r}) (keys: {_ALLOWED})"
        ) from exc
    if not isinstance(value, dict):
        raise CredentialsBlockError(
            f"Secret block {name!r} must hold a JSON object of AWS variables ({_ALLOWED}), "
            f"not a {type(value).__name__}"
        )
    unknown = sorted(set(value) - AWS_VARIABLES)
    if unknown:
        raise CredentialsBlockError(
            f"Secret block {name!r} has unknown keys {unknown}; allowed: {_ALLOWED}"
        )
    not_text = sorted(k for k, v in value.items() if not isinstance(v, str))
    if not_text:
        raise CredentialsBlockError(
            f"Secret block {name!r}: the values of {not_text} must be strings"
        )
    return dict(value)


@contextmanager
def s3_credentials(block: str | None) -> Iterator[None]:
    """Within the block, S3 access uses the credentials of the named ``Secret`` block.

    ``None`` changes nothing (credentials come from the worker's environment, ``~/.aws`` or
    the instance role). The variables are set in ``os.environ``, so they reach the tasks that
    run in threads of this process, and the processes it starts (DataLoader workers), but not
    the workers of a Dask cluster. AWS variables the block does not set are unset meanwhile.
    On exit the previous values come back, and s3fs's cached
    clients (which keep the credentials they were made with) are dropped on entry and exit.
    ``os.environ`` is shared by the whole process: one flow run per process, as Prefect's
    workers run them.

    Raises:
        CredentialsBlockError: the block is missing or malformed.
    """
    if not block:
        yield
        return
    values = read_credentials_block(block)
    # every AWS variable, not only the block's: a worker's own session token or profile must
    # not mix with the block's key pair
    saved = {k: os.environ.pop(k, None) for k in AWS_VARIABLES}
    _clear_s3_clients()
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        _clear_s3_clients()


def _clear_s3_clients() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
