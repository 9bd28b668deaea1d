"""Loopback ports for the services the tests start (only 127.0.0.1 is ever used).

A port taken with ``bind(("127.0.0.1", 0))`` comes from the kernel's ephemeral range, the
same range it hands out as the source port of every outgoing connection. A server that
takes tens of seconds to start (Prefect under a loaded test run) can then find its port
taken by some client's connection in between: ``[Errno 98] address already in use``. The
ports here come from below that range, where the kernel never picks on its own; each
pytest-xdist worker draws from its own share of it and never hands out a port twice.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

LOOPBACK = "127.0.0.1"

#: Lowest port handed out (above the registered ports most local services use).
FIRST_PORT = 20_000
#: Used when the kernel does not say where its ephemeral range starts.
EPHEMERAL_START = 32_768
#: How many shares the ports are split into, one per pytest-xdist worker.
WORKER_SHARES = 16


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range:
    """The kernel's ephemeral ports (where ``bind(port 0)`` and outgoing connections pick)."""
    try:
        low, high = (int(word) for word in path.read_text().split()[:2])
    except (OSError, ValueError):
        return range(EPHEMERAL_START, 61_000)
    return range(low, high + 1)


def worker_ports(worker: str | None, ephemeral: range | None = None) -> range:
    """The ports of one pytest-xdist worker (``gw0``, ``gw1``, …; ``None`` outside xdist).

    They lie below the ephemeral range, or above it where the space below is too small.
    """
    ephemeral = ephemeral_range() if ephemeral is None else ephemeral
    below = range(FIRST_PORT, max(FIRST_PORT, ephemeral.start))
    above = range(max(FIRST_PORT, ephemeral.stop), 65_536)
    ports = max(below, above, key=len)
    index = int(worker[2:]) % WORKER_SHARES if worker and worker[2:].isdigit() else 0
    share = len(ports) // WORKER_SHARES
    return ports[index * share : (index + 1) * share]


def _candidates() -> Iterator[int]:
    ports = worker_ports(os.environ.get("PYTEST_XDIST_WORKER"))
    offset = random.randrange(len(ports))
    return (ports[(offset + i) % len(ports)] for i in itertools.count())


_PORTS = _candidates()


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now and outside the ephemeral range.

    Each call returns a port this process has not returned before (until its share wraps).
    """
    tries = len(worker_ports(os.environ.get("PYTEST_XDIST_WORKER")))
    for port in itertools.islice(_PORTS, tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def refusing_url() -> str:
    """``http://127.0.0.1:<port>`` of a port nothing listens on: connections are refused."""
    return f"http://{LOOPBACK}:{free_loopback_port()}"
