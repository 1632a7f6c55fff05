"""Real servers and workers the tests start as a user would: a free port, waiting until one is ready, and
stopping it the way that works for each."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, ready: Callable[[], bool], proc: subprocess.Popen, timeout: float) -> None:
    """Poll `ready` until true; fails at once when `proc` exits, and after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        if ready():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """SIGINT, then a kill after 30 s. docs/defaults.md#prefect: a worker ignored SIGTERM while the server was
    down; SIGINT works. Stop workers before the server."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
