"""Debian's Prometheus tools for the tests: a real Pushgateway on a loopback port (its
own persistence file, stopped by PID), what it holds, and promtool. Missing binaries
skip a test on a developer's machine and fail it in CI (CI=true), where .ci/run
installs them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import procnet

PACKAGES = {"prometheus-pushgateway": "prometheus-pushgateway", "promtool": "prometheus"}


def binary(name: str) -> str:
    """The path of `name`; a skip (a fail under CI=true) when it is not installed."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not installed (apt-get install {PACKAGES.get(name, name)})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; .ci/run installs it")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pushgateway:
    """`prometheus-pushgateway` on 127.0.0.1:<free port>, persisting to `tmp`."""

    def __init__(self, tmp: Path):
        self.tmp = Path(tmp)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> Pushgateway:
        exe = binary("prometheus-pushgateway")
        for _ in range(5):  # a free port can be taken before the gateway binds it
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            log = open(self.tmp / "pushgateway.log", "ab")
            self.proc = subprocess.Popen(
                [
                    exe,
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--persistence.file={self.tmp / 'pushgateway.db'}",
                    "--persistence.interval=1s",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            log.close()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                        if r.status == 200:
                            return self
                except OSError:
                    time.sleep(0.1)
            self.stop()
        raise RuntimeError(f"pushgateway did not start; log: {self.tmp / 'pushgateway.log'}")

    def stop(self) -> None:
        procnet.stop(self.proc)

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """Every sample of the fmnist_ families it exposes: (name, labels) -> value."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            return samples(r.read().decode())


def samples(text: str, prefix: str = "fmnist_") -> dict[tuple[str, frozenset], float]:
    """(name, labels without job/instance) -> value, of the families named `prefix`...,
    from the text exposition format (prometheus_client's own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(prefix):
                labels = frozenset(
                    (k, v) for k, v in s.labels.items() if k not in ("job", "instance")
                )
                found[(s.name, labels)] = s.value
    return found


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, frozenset(labels.items())))


def jobs_of(text: str, name: str) -> set[str]:
    """The job labels `name`'s samples carry in a Pushgateway's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        s.labels.get("job")
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }
