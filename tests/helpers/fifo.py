"""A FIFO that cannot hang a test: a reader stuck opening it is let go, so the test fails instead."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def fifo_unblocked_after(fifo: Path, *, seconds: float) -> Iterator[None]:
    """Inside this block, a reader blocked in open(`fifo`) for over `seconds` gets end of file.

    Opening a FIFO for reading waits for a writer; this opens it for writing (non-blocking, so it
    succeeds only while a reader waits) and closes it at once. Code that reads only regular files
    never opens the FIFO, so this never fires for it.
    """
    done = threading.Event()

    def release_readers() -> None:
        if done.wait(seconds):
            return
        while not done.wait(0.2):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                continue  # ENXIO: no reader is waiting (yet)

    thread = threading.Thread(target=release_readers, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
