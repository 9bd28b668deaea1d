"""A lease: one writer at a time for a folder or a store, local or on S3.

A lease is a small JSON file naming its holder (an owner string such as ``flow run <id>``, plus
host and process), renewed by a heartbeat thread while the holder works and deleted when it is
done. Another owner is refused while the lease is live; the same owner (a retry of the same flow
run) takes it over at once; a lease whose heartbeat stopped expires after ``ttl`` seconds, and
one held by a process that no longer exists on this host is taken over at once.

Every change of the file is atomic, never check-then-write (:mod:`datasets.lease_files`: S3
conditional requests, a local ``flock``).

Example::

    with Lease("s3://bucket/runs/r1/lease.json", "flow run 1234", what="run folder s3://..."):
        ...  # write the folder
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from datasets.errors import S2SRDataError
from datasets.lease_files import lease_file

log = logging.getLogger(__name__)

#: Seconds a lease lives without a heartbeat.
DEFAULT_TTL = 120.0


class LeaseHeldError(S2SRDataError):
    """Another owner holds the lease; the message names it and says when it expires."""

    def __init__(self, message: str, holder: LeaseRecord) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseLostError(S2SRDataError):
    """The lease was taken over or removed while its holder was still working."""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> str:
    """An owner string for the current process: ``process <pid> on <host>``."""
    return f"process {os.getpid()} on {socket.gethostname()}"


@dataclass(frozen=True)
class LeaseRecord:
    """The content of a lease file."""

    owner: str
    token: str
    host: str
    pid: int
    pid_start: str | None
    renewed: float
    ttl: float

    def expires_in(self, now: float) -> float:
        """Seconds until the lease expires (negative: expired)."""
        return self.renewed + self.ttl - now

    def holder_is_gone(self) -> bool:
        """Whether the holding process is known to be dead: on this host and not running (or
        its pid now belongs to a process started later)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return self.pid_start is not None and _process_start(self.pid) != self.pid_start

    def describe(self, now: float) -> str:
        """``flow run X (host h, pid p), renewed 3 s ago``: who holds it, for messages."""
        ago = now - self.renewed
        return f"{self.owner} (host {self.host}, pid {self.pid}), renewed {ago:.0f} s ago"

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseRecord | None:
        """The record, ``None`` for an empty or unreadable file (treated as free)."""
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None


class Lease:
    """Hold the lease file at ``uri`` for ``owner`` while the ``with`` block runs.

    Args:
        uri: the lease file (local path or ``s3://``).
        owner: who holds it; a later :class:`Lease` with the same owner takes it over at once
            (e.g. ``flow run <id>``: a retry of the same flow run continues its own work).
        what: what the lease guards, for messages (e.g. ``run folder s3://b/runs/r1``).
        advice: what a refused caller can do, appended to the refusal.
        ttl: seconds the lease lives without a heartbeat; the heartbeat renews it every
            ``ttl / 4`` seconds.
        storage_options: s3fs options for ``s3://`` URIs.
    """

    def __init__(
        self,
        uri: str,
        owner: str,
        *,
        what: str,
        advice: str = "",
        ttl: float = DEFAULT_TTL,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.uri = str(uri)
        self.owner = owner
        self.what = what
        self.advice = advice
        self.ttl = ttl
        self._file = lease_file(self.uri, storage_options)
        self._tag: str | None = None
        self._record: LeaseRecord | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._lost: str | None = None
        self._lock = threading.Lock()

    def _new_record(self) -> LeaseRecord:
        pid = os.getpid()
        return LeaseRecord(
            owner=self.owner,
            token=uuid.uuid4().hex,
            host=socket.gethostname(),
            pid=pid,
            pid_start=_process_start(pid),
            renewed=time.time(),
            ttl=self.ttl,
        )

    def _read(self) -> tuple[LeaseRecord | None, str | None]:
        """The record held now (None if none or unreadable) and the file's tag."""
        data, tag = self._file.read()
        return (LeaseRecord.from_bytes(data) if data is not None else None), tag

    def _takeover_reason(self, held: LeaseRecord) -> str | None:
        """Why ``held`` may be taken over (log line), ``None`` while it belongs to a live holder."""
        now = time.time()
        if held.owner == self.owner:
            return f"taking over the lease of {self.what} from an earlier attempt of {self.owner}"
        if held.expires_in(now) < 0:
            return f"the lease of {self.what} held by {held.describe(now)} expired; taking it over"
        if held.holder_is_gone():
            return (
                f"the lease of {self.what} is held by {held.describe(now)}, a process that no "
                "longer runs; taking it over"
            )
        return None

    def _try_acquire(self) -> LeaseRecord | None:
        """Take the lease if free, ours to take over, expired or abandoned; else its holder."""
        held: LeaseRecord | None = None
        for _ in range(5):  # the file may change between two requests: look again
            record = self._new_record()
            tag = self._file.create(record.to_bytes())
            if tag is not None:
                self._tag, self._record = tag, record
                return None
            held, held_tag = self._read()
            if held_tag is None:  # released meanwhile
                continue
            if held is None:  # unreadable: a torn write of a crashed holder's file system
                reason: str | None = f"replacing the unreadable lease file of {self.what}"
            else:
                reason = self._takeover_reason(held)
                if reason is None:
                    return held
            tag = self._file.replace(record.to_bytes(), held_tag)
            if tag is not None:
                log.info("%s", reason)
                self._tag, self._record = tag, record
                return None
        return held or replace(self._new_record(), owner="another writer", token="")

    def acquire(self, wait: float = 0.0, poll: float = 1.0) -> Lease:
        """Take the lease, waiting up to ``wait`` seconds for a live holder to let go.

        Raises:
            LeaseHeldError: another owner holds a live lease (after ``wait``).
            StorageError: the lease file's location cannot be used (bucket missing, access
                denied, endpoint unreachable).
        """
        deadline = time.monotonic() + wait
        while True:
            holder = self._try_acquire()
            if holder is None:
                self._start_heartbeat()
                return self
            if time.monotonic() >= deadline:
                now = time.time()
                expires = max(0.0, holder.expires_in(now))
                message = (
                    f"{self.what} is in use by {holder.describe(now)}; its lease expires in "
                    f"{expires:.0f} s unless renewed. {self.advice}"
                )
                raise LeaseHeldError(message.strip(), holder)
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._lost = None
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"lease-heartbeat {self.uri}", daemon=True
        )
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self.renew()
            except LeaseLostError as err:
                log.error("%s", err)
                return
            except Exception as err:  # a network hiccup: the next beat tries again
                log.warning("could not renew the lease of %s: %s", self.what, err)
                assert self._record is not None
                if self._record.expires_in(time.time()) < 0:
                    self._lost = (
                        f"the lease of {self.what} expired: it could not be renewed ({err})"
                    )
                    log.error("%s", self._lost)
                    return

    def renew(self) -> None:
        """Extend the lease by ``ttl`` from now.

        Raises:
            LeaseLostError: the lease was taken over or removed meanwhile.
        """
        with self._lock:
            if self._record is None or self._tag is None:
                raise LeaseLostError(f"the lease of {self.what} is not held")
            record = replace(self._record, renewed=time.time())
            tag = self._file.replace(record.to_bytes(), self._tag)
            if tag is None:
                held, _ = self._read()
                who = held.describe(time.time()) if held else "nobody (the lease file is gone)"
                self._lost = f"the lease of {self.what} was taken over; it is now held by {who}"
                raise LeaseLostError(self._lost)
            self._record, self._tag = record, tag

    def check(self) -> None:
        """Raise if the heartbeat found the lease taken over or expired.

        Raises:
            LeaseLostError: the lease is no longer this holder's.
        """
        if self._lost is not None:
            raise LeaseLostError(f"{self._lost}; stopping so that two writers never mix")

    def release(self) -> None:
        """Stop the heartbeat and delete the lease file if it is still this holder's."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        with self._lock:
            if self._tag is not None and self._lost is None:
                try:
                    self._file.delete(self._tag)
                except Exception as err:  # it expires by itself; the work is done
                    log.warning("could not remove the lease of %s: %s", self.what, err)
            self._tag = self._record = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
