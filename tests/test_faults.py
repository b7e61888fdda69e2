"""Fault tolerance: interrupted sweeps resume, killed workers and lost nodes are
retried from their last epoch, exports are never half-written, embedded Ray listens on
loopback only. Real processes, real signals, a real local Ray."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from fmnist.core import export

import pause_export
import procnet
from conftest import ROOT, clip, run_cli, start, wait_for


def epochs_logged(run_dir: Path, name: str) -> int:
    path = run_dir / "checkpoints" / name / "history.json"
    try:
        return len(json.loads(path.read_text())["epochs"])
    except (OSError, ValueError, KeyError):
        return 0


def finished(run_dir: Path, name: str) -> bool:
    try:
        saved = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return False
    return any(v["name"] == name and v["status"] == "ok" for v in saved.get("variants", []))


def backed_up(run_dir: Path, name: str) -> bool:
    return (run_dir / "checkpoints" / name / "backup" / "training_metadata.json").exists()


SWEEP = """
[defaults]
batch_size = 64

[[variant]]
name = "quick"
hidden = [32]
epochs = 1

[[variant]]
name = "slow"
hidden = [256, 256]
epochs = 12
"""


@pytest.mark.slow
def test_sigint_stops_cleanly_and_resume_finishes_the_rest(tmp_path, sweep_file, ray_cluster):
    run_dir, models = tmp_path / "run", tmp_path / "models"
    # Both at once (the longest starts first, so one at a time would leave 'quick' queued).
    proc = start(
        "train",
        "--sweep",
        sweep_file(SWEEP),
        "--workers",
        "2",
        "--limit",
        "6000",
        "--runs-dir",
        run_dir,
        "--export-dir",
        models,
    )
    wait_for(
        lambda: (
            epochs_logged(run_dir, "slow") >= 2
            and backed_up(run_dir, "slow")
            and finished(run_dir, "quick")
        ),
        proc,
        what="'quick' and two epochs of 'slow'",
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, clip(err)
    assert f"Resume with: fmnist-job train --resume {run_dir.resolve()}" in err
    saved = json.loads((run_dir / "results.json").read_text())
    status = {v["name"]: v for v in saved["variants"]}
    assert status["quick"]["status"] == "ok" and status["slow"]["status"] == "interrupted"
    assert saved["interrupted"] == "SIGINT" and export.versions(models) == []

    # The resume on the session's Ray: what it continues is the run directory.
    resumed = run_cli(
        "train", "--resume", run_dir, "--export-dir", models, "--address", ray_cluster.gcs
    )
    assert resumed.returncode == 0, clip(resumed.stderr)
    final = {v["name"]: v for v in json.loads((run_dir / "results.json").read_text())["variants"]}
    assert final["quick"] == status["quick"]  # kept as it was, not re-run
    slow = final["slow"]
    assert slow["status"] == "ok" and slow["resumed_from_epoch"] >= 2
    assert len(slow["history"]["val_accuracy"]) == slow["epochs_run"] == 12
    assert (models / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_sigterm_exits_143_and_embedded_ray_listens_on_loopback_only(tmp_path, sweep_file):
    run_dir = tmp_path / "run"
    proc = start(
        "train",
        "--sweep",
        sweep_file(SWEEP),
        "--workers",
        "2",
        "--limit",
        "6000",
        "--runs-dir",
        run_dir,
        "--export-dir",
        tmp_path / "models",
    )
    wait_for(lambda: epochs_logged(run_dir, "slow") >= 1, proc, what="training to start")
    sockets = procnet.listening(procnet.descendants(proc.pid))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert len(sockets) >= 3, sockets  # GCS, raylet, workers at least
    exposed = [s for s in sockets if not procnet.is_loopback(s[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert proc.returncode == 143, clip(err)
    assert json.loads((run_dir / "results.json").read_text())["interrupted"] == "SIGTERM"


@pytest.mark.slow
def test_interrupt_on_a_cluster_stops_the_running_tasks(tmp_path, sweep_file):
    """The driver does not ray.cancel its tasks (that can crash it, see sweep._execute);
    on an existing cluster, which outlives the run, leaving must still stop them."""
    from ray.cluster_utils import Cluster

    run_dir = tmp_path / "run"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        proc = start(
            "train",
            "--sweep",
            sweep_file(SWEEP),
            "--workers",
            "2",
            "--limit",
            "6000",
            "--address",
            cluster.address,
            "--runs-dir",
            run_dir,
            "--export-dir",
            tmp_path / "models",
        )
        wait_for(lambda: epochs_logged(run_dir, "slow") >= 1, proc, what="training to start")
        pid = json.loads((run_dir / "checkpoints/slow/history.json").read_text())["pid"]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 143, clip(err)
        wait_for(
            lambda: not Path(f"/proc/{pid}").exists(),
            timeout=30,
            what=f"the task's worker (pid {pid}) to stop",
        )
        assert not cluster.head_node.dead_processes()  # the cluster lives on
    finally:
        cluster.shutdown()
    status = {
        v["name"]: v["status"]
        for v in json.loads((run_dir / "results.json").read_text())["variants"]
    }
    assert status["slow"] == "interrupted"


@pytest.mark.slow
def test_killed_worker_is_retried_from_its_last_epoch(tmp_path, sweep_file):
    run_dir = tmp_path / "run"
    sweep = sweep_file("""
        [[variant]]
        name = "victim"
        hidden = [256, 256]
        epochs = 8
        batch_size = 64
    """)
    proc = start(
        "train",
        "--sweep",
        sweep,
        "--workers",
        "1",
        "--limit",
        "6000",
        "--runs-dir",
        run_dir,
        "--export-dir",
        tmp_path / "models",
    )
    wait_for(
        lambda: epochs_logged(run_dir, "victim") >= 1 and backed_up(run_dir, "victim"),
        proc,
        what="the first epoch's checkpoint",
    )
    pid = json.loads((run_dir / "checkpoints/victim/history.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, clip(err)
    victim = json.loads((run_dir / "results.json").read_text())["variants"][0]
    assert victim["status"] == "ok" and victim["attempts"] == 2
    assert victim["resumed_from_epoch"] >= 1
    assert len(victim["history"]["val_accuracy"]) == victim["epochs_run"] == 8


@pytest.mark.slow
def test_lost_node_mid_sweep_still_finishes(tmp_path, sweep_file):
    """A real two-node Ray cluster on this machine; the worker node goes away."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=2)
    run_dir = tmp_path / "run"
    try:
        sweep = sweep_file("""
            [defaults]
            hidden = [256, 256]
            epochs = 6
            batch_size = 64
            [[variant]]
            name = "a"
            [[variant]]
            name = "b"
            [[variant]]
            name = "c"
        """)
        proc = start(
            "train",
            "--sweep",
            sweep,
            "--workers",
            "3",
            "--cpus-per-worker",
            "1",
            "--limit",
            "5000",
            "--address",
            cluster.address,
            "--runs-dir",
            run_dir,
            "--export-dir",
            tmp_path / "models",
        )
        wait_for(
            lambda: sum(epochs_logged(run_dir, n) >= 1 for n in "abc") >= 3,
            proc,
            what="all three variants training (two on the worker node)",
        )
        cluster.remove_node(worker)  # the node is gone
        _, err = proc.communicate(timeout=600)
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, clip(err)
    results = json.loads((run_dir / "results.json").read_text())["variants"]
    assert [v["status"] for v in results] == ["ok"] * 3, [v.get("error") for v in results]
    retried = [v for v in results if v["attempts"] > 1]
    assert len(retried) == 2, [(v["name"], v["attempts"]) for v in results]
    for v in retried:
        assert v["resumed_from_epoch"] >= 1 and len(v["history"]["val_accuracy"]) == 6


@pytest.mark.slow
def test_export_killed_before_rename_leaves_no_version(tmp_path):
    base = tmp_path / "models"
    code = (
        "from fmnist.training import model, savedmodel\nfrom fmnist.training.variants import Variant\n"
        "v = Variant('w', (16,))\n"
        f"savedmodel.export(v, model.build(v).get_weights(), {{}}, __import__('pathlib').Path({str(base)!r}))\n"
    )
    proc = subprocess.Popen(pause_export.command(60, "-c", code), cwd=ROOT)
    wait_for(
        lambda: any((p / "fmnist.json").exists() for p in base.glob(".staging-*")),
        proc,
        what="a fully written staging directory",
    )
    proc.kill()
    proc.wait()
    assert export.versions(base) == []  # nothing that looks like one
    assert all(p.name.startswith(".staging-") for p in base.iterdir())
    # The next export is unaffected and takes version 1.
    from fmnist.training import model, savedmodel
    from fmnist.training.variants import Variant

    v = Variant("w", (16,))
    assert savedmodel.export(v, model.build(v).get_weights(), {}, base).name == "1"


def test_resume_of_a_directory_without_results(tmp_path):
    proc = run_cli("train", "--resume", tmp_path)
    assert proc.returncode == 2
    assert f"{tmp_path / 'results.json'}: not found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigterm_while_exporting_is_resumable(tmp_path, sweep_file, ray_cluster):
    """Interrupted after every variant finished, in the export task (building, checking
    and saving a SavedModel takes seconds whatever the net's width): the resume hint
    names the run directory and the resume only exports."""
    run_dir, models = tmp_path / "run", tmp_path / "models"
    sweep = sweep_file('[[variant]]\nname = "small"\nhidden = [64]\nepochs = 1\n')
    proc = start(
        "train",
        "--sweep",
        sweep,
        "--workers",
        "1",
        "--limit",
        "1000",
        "--runs-dir",
        run_dir,
        "--export-dir",
        models,
    )

    def trained():
        try:
            results = json.loads((run_dir / "results.json").read_text())
            return results["variants"][0]["status"] == "ok"
        except (OSError, ValueError, LookupError):
            return False

    wait_for(trained, proc, what="the variant to finish")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, clip(err)
    assert f"Resume with: fmnist-job train --resume {run_dir.resolve()}" in err
    assert json.loads((run_dir / "results.json").read_text())["interrupted"] == "SIGTERM"
    assert export.versions(models) == []

    resumed = run_cli(
        "train", "--resume", run_dir, "--export-dir", models, "--address", ray_cluster.gcs
    )
    assert resumed.returncode == 0, clip(resumed.stderr)
    assert "1 already finished, resuming" in resumed.stdout
    assert (models / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_sigterm_while_publishing_is_not_dropped(tmp_path, sweep_file):
    """A signal that comes after the export task's last check, while the version is
    renamed into place: the version is published whole, results.json is complete, and
    the run still exits 143 saying so (it used to exit 0)."""
    run_dir, models = tmp_path / "run", tmp_path / "models"
    sweep = sweep_file('[[variant]]\nname = "small"\nhidden = [16]\nepochs = 1\n')
    proc = subprocess.Popen(
        pause_export.command(
            3,
            "-m",
            "fmnist.cli",
            "train",
            "--sweep",
            str(sweep),
            "--limit",
            "1000",
            "--runs-dir",
            str(run_dir),
            "--export-dir",
            str(models),
        ),
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(
        lambda: any((p / "fmnist.json").exists() for p in models.glob(".staging-*")),
        proc,
        what="the export to be publishing",
    )
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, clip(err)
    assert f"interrupted (SIGTERM) after the run finished; {models / '1'} is complete" in err
    assert export.versions(models) == [1]
    assert (models / "1" / "saved_model.pb").exists()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["export"] == str(models / "1") and "interrupted" not in results
