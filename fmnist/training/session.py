"""What the sweep holds while it runs: the Ray session and the deferred signals.

Both are context managers that fmnist/training/sweep.py enters around the run, so every
way out (an error, a signal, the end) leaves Ray stopped and the handlers restored.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import ray

from fmnist.core.cluster import connect

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; `code` is the exit code (128 + signal)."""

    def __init__(self, signum: int, run_dir: Path | None = None, published: Path | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.code = 128 + signum
        self.run_dir = run_dir  # for the resume hint
        self.published = published  # the export, when the signal came after it


class DeferredSignals:
    """SIGINT and SIGTERM noted while inside, acted on where the sweep checks.

    Raising inside Ray's C++ wait corrupts it, so the handler only takes note and the
    sweep calls `check()` between waits. Entered after ray.init, which installs handlers
    of its own; `install()` again after ray.shutdown, which puts SIGTERM back to the
    default action below Python (a SIGTERM then killed the process with -15)."""

    def __init__(self):
        self.received: list[int] = []
        self._previous: dict = {}

    def _note(self, signum, frame) -> None:
        self.received.append(signum)

    def install(self) -> None:
        for sig in SIGNALS:
            previous = signal.signal(sig, self._note)
            self._previous.setdefault(sig, previous)

    def __enter__(self) -> DeferredSignals:
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def pending(self) -> int | None:
        """The first signal that arrived, or None."""
        return self.received[0] if self.received else None

    def check(self) -> None:
        """Raise Interrupted if a signal arrived."""
        if self.received:
            raise Interrupted(self.received[0])


class RaySession:
    """Connected to Ray (embedded or --address) while inside.

    `close()` starts ray.shutdown in a thread: stopping the embedded Ray is a second of
    waiting for its processes to exit, which the sweep overlaps with its plots. On an
    error the thread is not waited for (the interpreter waits for it before it exits), so
    the message comes at once."""

    def __init__(self, address: str | None):
        self.address = address
        self.connected = False
        self._closing: threading.Thread | None = None

    def open(self) -> None:
        """Connect (raises ConnectError, one line); entering does it if not done yet."""
        if not self.connected:
            connect(self.address)
            self.connected = True

    def __enter__(self) -> RaySession:
        self.open()
        return self

    def close(self) -> None:
        if self._closing is None:
            self._closing = threading.Thread(target=ray.shutdown, name="ray-shutdown")
            self._closing.start()

    def join(self) -> None:
        self.close()
        self._closing.join()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.join()
        else:
            self.close()
