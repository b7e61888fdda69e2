"""A wrong Ray address is one line and exit 2 within 10 s, whatever answers there.

Against real servers on loopback: a `ray start --head` (its GCS, its Ray Client port given
as host:port, its dashboard), Python's HTTP server, a socket that accepts and never
answers, and a port where nothing listens; for `train --address` and `score --ray
--address`. Ray alone waits 20 s to forever on most of these, logging a line per attempt.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from conftest import run_cli
from raycluster import RayStartCluster, clean_env, free_port

SECONDS = 10  # the README's promise


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """{name: address} of everything the tests point at, all on loopback."""
    tmp = tmp_path_factory.mktemp("addresses")
    cluster = RayStartCluster(tmp, auth=False)
    dashboard = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        cluster.ray_start(
            "--head",
            "--port",
            str(cluster.gcs_port),
            "--ray-client-server-port",
            str(cluster.client_port),
            "--include-dashboard",
            "true",
            "--dashboard-port",
            str(dashboard),
        )
        yield (
            {
                "nothing": f"127.0.0.1:{free_port()}",
                "http server": f"127.0.0.1:{httpd.server_port}",
                "silent": f"127.0.0.1:{silent.getsockname()[1]}",
                "dashboard": f"127.0.0.1:{dashboard}",
                "client port as host:port": f"127.0.0.1:{cluster.client_port}",
                "GCS as ray://": f"ray://{cluster.gcs}",
                "http server as ray://": f"ray://127.0.0.1:{httpd.server_port}",
            },
            tmp,
        )
    finally:
        httpd.shutdown()
        silent.close()
        cluster.stop()


EXPECTED = {
    "nothing": "nothing listens",
    "http server": "is an HTTP server",
    "silent": "did not answer as Ray",
    "dashboard": "is an HTTP server",
    "client port as host:port": "is a Ray Client server: give it as ray://",
    "GCS as ray://": "GCS port, not its Ray Client port",
    "http server as ray://": "is an HTTP server",
}


def assert_one_line_fast(proc, seconds: float, address: str, expected: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert seconds < SECONDS, f"{seconds:.1f} s"
    assert len(lines) == 1, proc.stderr[-3000:]  # no Ray log lines before it
    assert f"cannot connect to Ray at '{address}'" in lines[0] and expected in lines[0], lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_train_names_what_answered(servers, kind):
    addresses, tmp = servers
    started = time.monotonic()
    proc = run_cli(
        "train",
        "--address",
        addresses[kind],
        "--limit",
        "1000",
        "--runs-dir",
        tmp / kind / "run",
        "--export-dir",
        tmp / kind / "models",
        env=clean_env(tmp / "home", tmp / "ray"),
        timeout=120,
    )
    assert_one_line_fast(proc, time.monotonic() - started, addresses[kind], EXPECTED[kind])
    assert not (tmp / kind / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["nothing", "http server", "silent", "dashboard", "client port as host:port"]
)
def test_score_ray_names_what_answered(servers, scoring_model, kind, tmp_path):
    addresses, tmp = servers
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "in" / "a.png")
    started = time.monotonic()
    proc = run_cli(
        "score",
        tmp_path / "in",
        "--model",
        scoring_model,
        "--ray",
        "--address",
        addresses[kind],
        "--out",
        tmp_path / "out.csv",
        env=clean_env(tmp / "home", tmp / "ray"),
        timeout=120,
    )
    assert_one_line_fast(proc, time.monotonic() - started, addresses[kind], EXPECTED[kind])
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nothing", "http server"])
def test_score_ray_through_ray_client_without_a_jobs_api_says_what_to_run(
    servers, scoring_model, kind, tmp_path
):
    """With a ray:// address score --ray runs as a Ray job (tests/test_score_job.py), so
    the Jobs API must answer at RAY_API_SERVER_ADDRESS (or the head's port 8265)."""
    addresses, tmp = servers
    (tmp_path / "in").mkdir()
    started = time.monotonic()
    proc = run_cli(
        "score",
        tmp_path / "in",
        "--model",
        scoring_model,
        "--out",
        tmp_path / "out.csv",
        "--ray",
        "--address",
        f"ray://127.0.0.1:{addresses['client port as host:port'].rsplit(':', 1)[1]}",
        env=clean_env(
            tmp / "home", tmp / "ray", RAY_API_SERVER_ADDRESS=f"http://{addresses[kind]}"
        ),
        timeout=120,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert time.monotonic() - started < SECONDS
    assert f"cannot reach Ray's Jobs API at http://{addresses[kind]}" in lines[0], lines[0]
    assert "RAY_API_SERVER_ADDRESS" in lines[0] and "ray start --head" in lines[0], lines[0]


@pytest.mark.slow
def test_the_right_address_still_connects(servers, tmp_path):
    """The same cluster, addressed right, trains (the checks above are not refusing
    everything): its Ray Client port as ray://. Its GCS as host:port is how every test
    on the session's `ray_cluster` trains (tests/conftest.py), through the same check."""
    addresses, tmp = servers
    sweep = tmp_path / "one.toml"
    sweep.write_text('[defaults]\nhidden = [16]\nepochs = 1\n[[variant]]\nname = "a"\n')
    proc = run_cli(
        "train",
        "--address",
        "ray://" + addresses["client port as host:port"],
        "--sweep",
        sweep,
        "--limit",
        "1000",
        "--workers",
        "1",
        "--runs-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "models",
        env=clean_env(tmp / "home", tmp / "ray"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "models" / "1" / "saved_model.pb").exists()
