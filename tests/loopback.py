"""Loopback ports for the services the tests start (only 127.0.0.1 is ever used)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (nothing listens on it once returned)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def refusing_url() -> str:
    """``http://127.0.0.1:<port>`` of a port nothing listens on: connections are refused."""
    return f"http://{LOOPBACK}:{free_loopback_port()}"
