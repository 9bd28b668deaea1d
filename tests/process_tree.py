"""Stopping the process trees a test started: servers, workers and whatever they spawned."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import suppress

import psutil


def alive(proc: psutil.Process) -> bool:
    """Whether ``proc`` runs (a zombie counts as dead)."""
    # An orphan's zombie lingers when PID 1 does not reap (containers); it is dead for us.
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def process_tree(pid: int) -> list[psutil.Process]:
    """``pid`` and all its descendants (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_process_trees(
    roots: list[subprocess.Popen[bytes]], timeout: float
) -> list[psutil.Process]:
    """SIGTERM, then SIGKILL, the process groups of ``roots`` and every descendant, new ones
    included; returns the processes still alive after both phases (empty: all stopped)."""
    procs = {p.pid: p for root in roots for p in process_tree(root.pid)}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for root in roots:
            with suppress(ProcessLookupError):
                os.killpg(root.pid, sig)
        # One signal per process and phase: a second SIGTERM cuts Prefect's graceful
        # shutdown (flow runs reporting Crashed) short.
        signaled = {root.pid for root in roots}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for root in roots:
                root.poll()
            # Flow runs sit in their own sessions: find descendants again, also new ones.
            for proc in [p for p in list(procs.values()) if alive(p)]:
                procs.update({c.pid: c for c in process_tree(proc.pid)})
            living = [p for p in procs.values() if alive(p)]
            if not living:
                return []
            for proc in living:
                if proc.pid not in signaled:
                    signaled.add(proc.pid)
                    with suppress(psutil.NoSuchProcess):
                        proc.send_signal(sig)
            time.sleep(0.25)
    return [p for p in procs.values() if alive(p)]
