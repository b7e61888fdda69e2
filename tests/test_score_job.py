"""`score --ray --address ray://HOST:PORT` runs as a Ray job through the Jobs API, on a
real `ray start` head with its dashboard and token authentication: the same rows as a
local run, the job's output streamed, the remote command's exit code passed on, Ctrl-C
stopping the job; a relative path, no Jobs server, no token: one line, exit 2, within
seconds. The cluster (one head, its own HOME and RAY_TMPDIR) is shared by the module.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import FMNIST_JOB, ROOT, assert_same_rows, cli, clip, read_rows, run_cli
from raycluster import RayStartCluster, clean_env, free_port

FAST = 10  # seconds: a usage error comes within them


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = RayStartCluster(tmp_path_factory.mktemp("jobs-cluster"), auth=True, num_cpus=2)
    try:
        c.start(second_node=False, dashboard=True)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def inbox(tmp_path_factory, test_set):
    x, _ = test_set
    root = tmp_path_factory.mktemp("inbox")
    for i in range(40):
        (root / f"d{i % 3}").mkdir(exist_ok=True)
        Image.fromarray(x[i]).save(root / f"d{i % 3}" / f"{i}.png")
    return root


def user_env(tmp: Path, cluster, **extra: str) -> dict:
    """A user's shell: the Jobs address named (the head's dashboard is not on 8265), the
    token in RAY_AUTH_TOKEN, no RAY_AUTH_MODE."""
    return clean_env(
        tmp / "home",
        tmp / "ray",
        RAY_API_SERVER_ADDRESS=cluster.jobs,
        RAY_AUTH_TOKEN=cluster.token,
        **extra,
    )


def score_as_job(inbox, model, out, address, env, **kwargs):
    """`fmnist-job score INBOX --model M --out O --ray --address A` in a fresh process."""
    args = ("score", inbox, "--model", model, "--out", out, "--ray", "--address", address)
    return run_cli(*args, env=env, **kwargs)


@pytest.mark.slow
def test_a_ray_client_address_scores_as_a_job_with_the_same_rows(
    cluster, inbox, scoring_model, tmp_path, monkeypatch, capsys
):
    # The rows to compare with: the command run locally, in this process.
    code, _, err = cli(
        ["score", inbox, "--model", scoring_model, "--out", tmp_path / "local.csv"],
        monkeypatch,
        capsys,
    )
    assert code == 0, clip(err)
    proc = score_as_job(
        inbox, scoring_model, tmp_path / "job.csv", cluster.client, user_env(tmp_path, cluster)
    )
    assert proc.returncode == 0, clip(proc.stderr)
    assert "running as Ray job raysubmit_" in proc.stderr
    # The job's summary, streamed from the head.
    assert f"wrote {tmp_path / 'job.csv'} (CSV, 40 rows)" in proc.stderr, clip(proc.stderr)
    assert_same_rows(read_rows(tmp_path / "job.csv"), read_rows(tmp_path / "local.csv"))


@pytest.mark.slow
def test_the_remote_exit_code_and_message_come_back(cluster, inbox, tmp_path):
    env = user_env(tmp_path, cluster)
    model = tmp_path / "no-such-model"
    proc = score_as_job(inbox, model, tmp_path / "p.csv", cluster.client, env, timeout=120)
    assert proc.returncode == 2, clip(proc.stderr)
    assert f"fmnist-job: error: --model {tmp_path / 'no-such-model'}" in proc.stderr
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_job(cluster, inbox, scoring_model, tmp_path):
    from ray.job_submission import JobSubmissionClient

    proc = subprocess.Popen(
        [*FMNIST_JOB, "score", str(inbox), "--model", str(scoring_model)]
        + ["--out", str(tmp_path / "p.csv"), "--ray", "--address", cluster.client],
        cwd=ROOT,
        env=user_env(tmp_path, cluster),
        text=True,
        stderr=subprocess.PIPE,
    )
    first = proc.stderr.readline()  # the job is submitted; its command is starting
    assert "running as Ray job" in first, first + clip(proc.stderr.read())
    job_id = first.split("Ray job ", 1)[1].split()[0]
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, clip(rest)
    assert f"interrupted (SIGINT); Ray job {job_id} stopped" in rest
    jobs = JobSubmissionClient(cluster.jobs, headers={"Authorization": f"Bearer {cluster.token}"})
    assert jobs.get_job_status(job_id).value == "STOPPED"
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["relative path", "no jobs server", "no token", "wrong token"])
def test_what_keeps_a_job_from_starting_is_one_line_fast(
    case, cluster, inbox, scoring_model, tmp_path
):
    env = user_env(tmp_path, cluster)
    out = tmp_path / "p.csv"
    expected = {
        "relative path": "--out p.csv: a relative path",
        "no jobs server": "cannot reach Ray's Jobs API at http://127.0.0.1:",
        "no token": "requires token authentication and no token was found",
        "wrong token": "rejected the authentication token from RAY_AUTH_TOKEN",
    }[case]
    if case == "relative path":
        out = Path("p.csv")
    elif case == "no jobs server":
        env["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{free_port()}"
    elif case == "no token":
        del env["RAY_AUTH_TOKEN"]
    else:
        env["RAY_AUTH_TOKEN"] = "0" * 64
    started = time.monotonic()
    proc = score_as_job(inbox, scoring_model, out, cluster.client, env, cwd=tmp_path, timeout=60)
    seconds = time.monotonic() - started
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, clip(proc.stderr)
    assert expected in lines[0], lines[0]
    assert seconds < FAST, f"{seconds:.1f} s"
    assert not (tmp_path / "p.csv").exists()
