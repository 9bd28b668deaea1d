"""Leases on a local folder and on the loopback S3 server (credential checks on).

Broken by hand once each: a takeover by check-then-write (an unconditional ``put_object``)
lets both racers of ``test_racing_owners_get_one_lease`` win; skipping the expiry check fails
``test_an_expired_lease_is_taken_over``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from datasets.lease import Lease, LeaseHeldError, LeaseLostError
from datasets.storage_errors import BucketMissingError, StorageAccessDenied

BUCKET = "s2sr-lease-tests"


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Any) -> tuple[str, Any]:
    """``(folder URI, storage_options)`` on a local path or the loopback S3 server."""
    if request.param == "local":
        return str(tmp_path), None
    import s3fs

    options = request.getfixturevalue("s3_server")
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    return f"s3://{BUCKET}/{tmp_path.name}", options


def _lease(where: tuple[str, Any], owner: str, **kwargs: Any) -> Lease:
    folder, options = where
    return Lease(
        f"{folder}/lease.json",
        owner,
        what=f"run folder {folder}",
        storage_options=options,
        **kwargs,
    )


def test_a_second_owner_is_refused_naming_the_holder(where: tuple[str, Any]) -> None:
    with _lease(where, "flow run aaaa"):
        with pytest.raises(
            LeaseHeldError, match=r"in use by flow run aaaa \(host .*pid"
        ) as refused:
            _lease(where, "flow run bbbb").acquire()
        assert refused.value.holder.owner == "flow run aaaa"
    # released: the next owner gets it at once
    with _lease(where, "flow run bbbb"):
        pass


def test_the_same_owner_takes_its_lease_over(where: tuple[str, Any], caplog: Any) -> None:
    crashed = _lease(where, "flow run aaaa").acquire()
    crashed._stop.set()  # its heartbeat stops, as a killed process's would
    with caplog.at_level("INFO", logger="datasets.lease"), _lease(where, "flow run aaaa"):
        assert any("earlier attempt of flow run aaaa" in m for m in caplog.messages)
        with pytest.raises(LeaseLostError):
            crashed.renew()


def test_an_expired_lease_is_taken_over(where: tuple[str, Any]) -> None:
    crashed = _lease(where, "flow run aaaa", ttl=4.0).acquire()
    crashed._stop.set()
    with pytest.raises(LeaseHeldError):
        _lease(where, "flow run bbbb").acquire()
    time.sleep(4.5)
    with _lease(where, "flow run bbbb"), pytest.raises(LeaseLostError):
        crashed.renew()


def test_the_heartbeat_keeps_a_lease_alive(where: tuple[str, Any]) -> None:
    with _lease(where, "flow run aaaa", ttl=2.0):
        time.sleep(4.0)  # twice the time to live: only the heartbeat keeps it
        with pytest.raises(LeaseHeldError):
            _lease(where, "flow run bbbb").acquire()


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over(where: tuple[str, Any]) -> None:
    folder, options = where
    code = (
        "import sys, json; from datasets.lease import Lease; "
        "Lease(sys.argv[1], 'cli', what='x', storage_options=json.loads(sys.argv[2])).acquire(); "
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    )
    import json

    child = subprocess.run(
        [sys.executable, "-c", code, f"{folder}/lease.json", json.dumps(dict(options or {}))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    with _lease(where, "another cli"):  # the killed holder's lease is taken over at once
        pass


def test_racing_owners_get_one_lease(where: tuple[str, Any]) -> None:
    won: list[Lease] = []
    start = threading.Barrier(4)

    def race(owner: str) -> None:
        lease = _lease(where, owner)
        start.wait()
        try:
            lease.acquire()
        except LeaseHeldError:
            return
        won.append(lease)

    threads = [threading.Thread(target=race, args=(f"owner {i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for lease in won:
        lease.release()
    assert len(won) == 1, [lease.owner for lease in won]


def test_s3_failures_are_said_as_such(s3_server: Any) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    with pytest.raises(BucketMissingError, match=r"'no-such-lease-bucket' .* does not exist"):
        Lease(
            "s3://no-such-lease-bucket/r/lease.json", "x", what="w", storage_options=s3_server
        ).acquire()
    wrong = {**s3_server, "secret": "not-the-secret"}
    with pytest.raises(StorageAccessDenied, match="denied") as denied:
        Lease(f"s3://{BUCKET}/r/lease.json", "x", what="w", storage_options=wrong).acquire()
    assert "not-the-secret" not in str(denied.value)
