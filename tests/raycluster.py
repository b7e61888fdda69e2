"""A real Ray cluster started with `ray start` on 127.0.0.1, with its own HOME and
RAY_TMPDIR: tests/test_auth.py's two-node clusters with token authentication, and the one
head that tests/conftest.py's session-scoped `ray_cluster` fixture shares between tests
that need a Ray but are not about starting one."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(home: Path, ray_tmp: Path, **extra: str) -> dict:
    """This process's environment without anything that points Ray somewhere or gives it
    a token, with its own HOME and RAY_TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH_", "RAY_ADDRESS"))}
    home.mkdir(parents=True, exist_ok=True)
    ray_tmp.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), "RAY_TMPDIR": str(ray_tmp), **extra}


def processes_with(marker: str) -> list[int]:
    """Pids whose environment holds `marker` (our cluster's RAY_TMPDIR=...)."""
    found = []
    needle = marker.encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle in (d / "environ").read_bytes().split(b"\0"):
                found.append(int(d.name))
        except OSError:
            continue
    return found


class RayStartCluster:
    """A head (`ray start --head`) and, with `second_node`, a second node (`ray start
    --address`), `num_cpus` each, on 127.0.0.1; with `auth`, both with RAY_AUTH_MODE=token.
    Its processes are found by its own RAY_TMPDIR and ended by pid (never `ray stop`,
    which would end every Ray on the machine)."""

    def __init__(self, tmp: Path, auth: bool = True, num_cpus: int = 1):
        self.num_cpus = num_cpus
        self.token = secrets.token_hex(32)
        self.gcs_port, self.client_port = free_port(), free_port()
        # Short: Ray's socket paths under it must stay within 107 bytes.
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="fmnist-auth-", dir="/tmp"))
        self.marker = f"RAY_TMPDIR={self.ray_tmp}"
        self.env = clean_env(
            tmp / "cluster-home",
            self.ray_tmp,
            **(
                {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
                if auth
                else {"RAY_AUTH_MODE": "disabled"}
            ),
        )
        self.gcs = f"127.0.0.1:{self.gcs_port}"
        self.client = f"ray://127.0.0.1:{self.client_port}"

    def ray_start(self, *args: str) -> None:
        common = (
            "--num-cpus",
            str(self.num_cpus),
            "--node-ip-address",
            "127.0.0.1",
            "--object-store-memory",
            str(200 * 2**20),
            "--disable-usage-stats",
        )
        proc = subprocess.run(
            [str(RAY), "start", *args, *common],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    def start(self, second_node: bool = True, dashboard: bool = False) -> None:
        """With `dashboard`, the head serves the Jobs API at `self.jobs`, and its jobs find
        this venv's fmnist-job on PATH (as on a cluster built from the image)."""
        if dashboard:
            # Free ports: the agent's default (52365) may be another Ray's on this machine,
            # and a head whose agent cannot bind takes no jobs.
            self.dashboard_port = free_port()
            self.jobs = f"http://127.0.0.1:{self.dashboard_port}"
            self.env["PATH"] = f"{RAY.parent}{os.pathsep}{self.env.get('PATH', '')}"
            extra = (
                "--include-dashboard",
                "true",
                "--dashboard-host",
                "127.0.0.1",
                "--dashboard-port",
                str(self.dashboard_port),
                "--dashboard-agent-listen-port",
                str(free_port()),
            )
        else:
            extra = ("--include-dashboard", "false")
        self.ray_start(
            "--head",
            "--port",
            str(self.gcs_port),
            "--ray-client-server-port",
            str(self.client_port),
            *extra,
        )
        if second_node:
            # It joins with the token in its environment (without it: "Authentication
            # token is missing or incorrect").
            self.ray_start("--address", self.gcs)

    def node_ids(self) -> set[str]:
        code = (
            "import json, ray\nray.init(address=%r, logging_level='ERROR')\n"
            "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))" % self.gcs
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], env=self.env, text=True, capture_output=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return set(json.loads(proc.stdout.strip().splitlines()[-1]))

    def stop(self) -> None:
        # The GCS server and the autoscaler's monitor outlive SIGTERM (still there 16 s
        # later, docs/performance.md "Shorter tests, a third time"): a short grace for
        # the others, then SIGKILL.
        for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 15)):
            pids = processes_with(self.marker)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while processes_with(self.marker) and time.monotonic() < deadline:
                time.sleep(0.2)
        assert not processes_with(self.marker), "cluster processes left running"
        shutil.rmtree(self.ray_tmp, ignore_errors=True)
