"""`fmnist-job train` end to end through the CLI: a real embedded Ray, real TensorFlow,
small slices of the data. The exported SavedModel is loaded back and scored (`score` and
`models show` in this process). The failing variants train on the session's Ray: what
they are about is the run's record, not the Ray it starts."""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fmnist.core import data, export

from conftest import ROOT, cli, run_cli

TWO_VARIANTS = """
[defaults]
epochs = 3
batch_size = 32

[[variant]]
name = "small"
hidden = [64]

[[variant]]
name = "wider"
hidden = [128, 64]
dropout = 0.1
"""


def train_args(tmp_path, sweep, *extra, limit=4000):
    return [
        "train",
        "--sweep",
        sweep,
        "--workers",
        "2",
        "--limit",
        limit,
        "--runs-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "models",
        *extra,
    ]


# `fmnist-job ARGS`, reporting at exit whether the driver process imported TensorFlow.
DRIVER = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('driver imported tensorflow:',\n"
    "                              'tensorflow' in sys.modules, file=sys.stderr))\n"
    "from fmnist.cli.main import run\nrun()"
)


def expected_device() -> str:
    """Where a task places its model here: the first GPU when this machine has one (the
    default then gives every task a share of the GPUs), else the CPU."""
    import tensorflow as tf

    return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    sweep = tmp / "two.toml"
    sweep.write_text(TWO_VARIANTS)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            *map(str, train_args(tmp, sweep, "--threads-per-worker", "2", limit=15000)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return tmp, proc


@pytest.mark.slow
def test_the_driver_leaves_tensorflow_to_the_tasks(trained):
    # Training and export run in Ray tasks; the driver only coordinates, so it starts
    # (and a `ray job submit` entrypoint runs) without TensorFlow's import and memory.
    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "driver imported tensorflow: False" in proc.stderr


@pytest.mark.slow
def test_train_exits_zero_and_writes_the_run_directory(trained):
    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp / "run" / "results.json").read_text())
    assert {v["name"] for v in results["variants"]} == {"small", "wider"}
    for v in results["variants"]:
        assert v["status"] == "ok"
        assert len(v["history"]["val_accuracy"]) == v["epochs_run"] == 3
        assert v["host"] and v["device"] == expected_device() and v["train_seconds"] > 0
        assert v["threads"] == 2  # --threads-per-worker, as TF ran it
        assert re.fullmatch(r"[0-9a-f]{56}", v["node_id"]), v["node_id"]  # Ray's NodeID, hex
        assert 0.5 < v["val_accuracy"] <= 1 and 0.5 < v["test_accuracy"] <= 1
    # One embedded Ray: one node for every variant.
    assert len({v["node_id"] for v in results["variants"]}) == 1
    best = max(results["variants"], key=lambda v: v["val_accuracy"])
    assert results["best"] == best["name"]  # chosen on validation, not test
    assert (tmp / "run" / "val_accuracy.png").stat().st_size > 5000
    # The exported model, scored on the test set after selection.
    exported = results["exported_model_test"]
    assert abs(exported["accuracy"] - best["test_accuracy"]) < 1e-3
    assert sum(map(sum, exported["confusion_matrix"])) == 10000
    assert set(exported["per_class_accuracy"]) == set(data.CLASS_NAMES)
    assert (tmp / "run" / "confusion_matrix.png").stat().st_size > 5000
    assert "leaderboard" in proc.stdout and best["name"] in proc.stdout


@pytest.mark.slow
def test_the_export_has_its_model_card(trained, monkeypatch, capsys):
    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp / "run" / "results.json").read_text())
    version = tmp / "models" / "1"
    card = (version / "card.md").read_text()
    assert (version / "confusion_matrix.png").read_bytes() == (
        tmp / "run" / "confusion_matrix.png"
    ).read_bytes()
    (best,) = [v for v in results["variants"] if v["name"] == results["best"]]
    assert f"| {best['name']} (exported) | ok | {100 * best['val_accuracy']:.2f}% |" in card
    for name, accuracy in results["exported_model_test"]["per_class_accuracy"].items():
        assert f"| {name} | {100 * accuracy:.2f}% |" in card
    assert f"**promote**: {results['gate']['reason']}." in card
    assert f"- run: {results['run_id']} ({tmp / 'run'})" in card
    code, shown, err = cli(
        ["models", "show", "1", "--export-dir", tmp / "models"], monkeypatch, capsys
    )
    assert code == 0, err
    assert shown.startswith(card.rstrip("\n"))
    assert "Labels: stable." in shown and f"(gate: run {results['run_id']}, by" in shown


@pytest.mark.slow
def test_results_put_the_run_beside_its_floor(trained):
    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp / "run" / "results.json").read_text())
    assert results["order"] == ["wider", "small"]  # longest estimate first
    times = {v["name"]: v["train_seconds"] for v in results["variants"]}
    for v in results["variants"]:
        keys = list(v)
        assert keys[keys.index("train_seconds") + 1] == "estimate_seconds"
        assert v["estimate_seconds"] > 0
        assert v["setup_seconds"] >= 0 and len(v["epoch_seconds"]) == 3
    # Each of the two tasks started in a worker of its own, which imported TensorFlow.
    assert min(v["setup_seconds"] for v in results["variants"]) > 0.5
    # Two tasks at once (--workers 2) if the machine has the CPUs, each holding its share.
    cpus = min(2, results["slots"]) * results["cpus_per_worker"]
    assert results["cpus_used"] == cpus
    floor = max(sum(times.values()) / cpus, max(times.values()))
    assert results["floor_seconds"] == pytest.approx(floor, abs=0.01)
    ratio = results["wall_seconds"] / results["floor_seconds"]
    assert results["wall_over_floor"] == pytest.approx(ratio, abs=0.001) and ratio > 1
    timeline = results["timeline"]
    assert timeline["export_started"] <= timeline["training_done"] <= timeline["export_built"]
    assert (
        f"{results['wall_over_floor']:.2f}x the training floor of "
        f"{results['floor_seconds']:.1f}s ({cpus:g} CPUs)"
    ) in proc.stdout


@pytest.mark.slow
def test_exported_savedmodel_scores_the_test_set(trained):
    import tensorflow as tf

    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    version = tmp / "models" / "1"
    meta = json.loads((version / export.METADATA).read_text())
    assert meta["class_names"] == list(data.CLASS_NAMES)
    assert meta["dataset_sha256"] == data.SHA256 and meta["libraries"]["tensorflow"]
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    _, _, x_test, y_test, _ = data.load_arrays()
    probs = serve(images=tf.constant(x_test))["probabilities"].numpy()
    assert probs.shape == (10000, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    accuracy = float((probs.argmax(axis=1) == y_test).mean())
    assert accuracy > 0.80
    assert abs(accuracy - meta["test_accuracy"]) < 1e-3  # the same model that was measured
    # No staging leftovers beside the version: only the gate's labels (the first export
    # is stable), its history and its lock.
    assert sorted(p.name for p in (tmp / "models").iterdir()) == [
        ".models.lock",
        "1",
        "models.config",
        "models.history.json",
    ]


@pytest.mark.slow
def test_the_export_is_calibrated_and_score_flags_what_is_not_clothing(
    trained, tmp_path, monkeypatch, capsys
):
    from PIL import Image

    from fmnist.core import calibration

    import nonclothing
    from conftest import read_rows

    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp / "models" / "1" / export.METADATA).read_text())
    cal, rule = meta["calibration"], meta["uncertain"]
    assert 0.05 < cal["temperature"] < 20 and cal["ece_bins"] == 15
    for split in ("validation", "test"):
        assert 0 <= cal["ece"][split]["after"] < cal["ece"][split]["before"] + 0.01
    assert 0 < rule["min_confidence"] < 1
    assert rule["max_outlier_score"] > 0
    assert set(rule["shares"]) == {"confidence", calibration.OUTLIER_SCORE, "grain", "gaps"}
    assert 0 < rule["min_grain"] < 1
    assert rule["max_gaps"] >= 0
    assert 0.05 < rule["validation_flagged"] < 0.12
    results = json.loads((tmp / "run" / "results.json").read_text())
    assert results["calibration"] == {"calibration": cal, "uncertain": rule}
    # The SavedModel's signals are the NumPy ones (fmnist/core/calibration.py).
    import tensorflow as tf

    _, _, x, y, _ = data.load_arrays()
    signature = tf.saved_model.load(str(tmp / "models" / "1")).signatures[export.SIGNATURE]
    served = signature(**{export.INPUT_KEY: tf.constant(x[:300])})
    for name in ("contrast", "extent", "fill", "grain", "gaps"):
        np.testing.assert_allclose(
            served[name].numpy(), getattr(calibration, name)(x[:300]), atol=1e-5
        )
    assert (served[calibration.OUTLIER_SCORE].numpy() >= 0).all()
    assert set(calibration.SIGNALS) <= set(served)
    knn = served["knn_similarity"].numpy()  # a cosine; test items near their training kin
    assert (np.abs(knn) <= 1 + 1e-3).all() and np.median(knn) > 0.5
    # score: the column, the count in the summary; blanks and noise flagged.
    d = tmp_path / "in"
    (d / "plain").mkdir(parents=True)
    for i in range(300):
        Image.fromarray(x[i]).save(d / "plain" / f"{i:03d}.png")
    for kind in ("blank", "noise"):
        nonclothing.write_kind(d, kind, 20)
    out = tmp_path / "p.jsonl"
    code, stdout, stderr = cli(
        ["score", d, "--model", tmp / "models", "--out", out], monkeypatch, capsys
    )
    assert code == 0, stderr
    assert "no calibration" not in stderr
    rows = read_rows(out)
    flagged = {r["path"]: r["uncertain"] == "true" for r in rows}
    assert f"; {sum(flagged.values()):,} uncertain" in stdout
    other = [f for p, f in flagged.items() if not p.startswith("plain/")]
    plain = [f for p, f in flagged.items() if p.startswith("plain/")]
    assert len(other) == 40 and np.mean(other) >= 0.9
    assert 0 < np.mean(plain) < 0.2


@pytest.mark.slow
def test_a_failing_variant_does_not_take_the_others_down(tmp_path, sweep_file, ray_cluster):
    sweep = sweep_file("""
        [[variant]]
        name = "fine"
        hidden = [32]
        epochs = 1
        [[variant]]
        name = "broken"
        hidden = [32]
        epochs = 1
        batch_size = 60000   # valid in the file, larger than the training slice
    """)
    proc = run_cli(*train_args(tmp_path, sweep, "--address", ray_cluster.gcs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    status = {v["name"]: v for v in results["variants"]}
    assert status["fine"]["status"] == "ok" and results["best"] == "fine"
    assert status["broken"]["status"] == "failed"
    assert "batch_size 60000 is larger than" in status["broken"]["error"]
    assert (tmp_path / "models" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_every_variant_failing_exits_one_and_exports_nothing(tmp_path, sweep_file, ray_cluster):
    sweep = sweep_file("""
        [[variant]]
        name = "broken"
        hidden = [32]
        epochs = 1
        batch_size = 60000
    """)
    proc = run_cli(*train_args(tmp_path, sweep, "--address", ray_cluster.gcs))
    assert proc.returncode == 1
    assert "every variant failed" in proc.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["best"] is None and results["variants"][0]["status"] == "failed"
    assert not (tmp_path / "models").exists() or not export.versions(tmp_path / "models")


@pytest.mark.slow
def test_tasks_never_share_the_cpus_they_asked_for(tmp_path, sweep_file):
    """On a 1-CPU Ray node, two 1-CPU tasks run one after the other. (A task waiting
    in ray.get lends its CPU back to Ray: the live events once did, and a second task
    trained beside the first.)"""
    from datetime import datetime

    from ray.cluster_utils import Cluster

    sweep = sweep_file("""
        [defaults]
        hidden = [512, 256]
        epochs = 12
        [[variant]]
        name = "first"
        [[variant]]
        name = "second"
    """)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        proc = run_cli(
            *train_args(tmp_path, sweep, "--cpus-per-worker", "1", "--address", cluster.address)
        )
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 (of --workers 2) at once" in proc.stdout
    a, b = json.loads((tmp_path / "run" / "results.json").read_text())["variants"]
    span = {
        v["name"]: (
            datetime.fromisoformat(v["started_at"]),
            datetime.fromisoformat(v["finished_at"]),
        )
        for v in (a, b)
    }
    (s1, f1), (s2, f2) = sorted(span.values())
    assert f1 <= s2, f"'{a['name']}' and '{b['name']}' trained at the same time: {span}"


@pytest.mark.slow
def test_the_embedded_default_ignores_the_last_ray_start(tmp_path, sweep_file):
    """ray.init() without an address joins the cluster that the last `ray start` on this
    machine recorded in <ray temp dir>/ray_current_cluster, even a dead one. Without
    --address / RAY_ADDRESS, fmnist-job starts its own Ray whatever that file says."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")  # nobody there
        sweep = sweep_file('[[variant]]\nname = "one"\nhidden = [32]\nepochs = 1\n')
        proc = run_cli(
            *train_args(tmp_path, sweep, limit=2000), env={"RAY_TMPDIR": str(ray_tmp)}, timeout=180
        )
        sessions = list((ray_tmp / "ray").glob("session_2*"))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sessions, "the embedded Ray did not use RAY_TMPDIR, so the file was not read"


def test_log_lines_read_whole_when_not_a_terminal(trained):
    """stdout is a pipe here, as in a pod's log: each line is whole (never cut
    mid-phrase at the console's width) and counts agree with their nouns."""
    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    first = next(line for line in lines if line.startswith("run "))
    assert re.search(
        r": 2 variants from \S+two\.toml, .* each, on 1 Ray node; run dir \S+", first
    ), first
    assert "TensorFlow threads) each" in first or "TensorFlow thread) each" in first
    per_class = next(line for line in lines if line.startswith("exported model, test accuracy"))
    assert all(name in per_class for name in data.CLASS_NAMES), per_class
    last = next(line for line in lines if line.startswith("results: "))
    assert re.search(r"\(\d+(\.\d+)? CPUs?\)\)$", last), last
    assert "peak ep" in proc.stdout and "the weights exported" in " ".join(proc.stdout.split())
