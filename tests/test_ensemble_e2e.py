"""`train --ensemble N` end to end on tiny models: real TensorFlow, on the session's
`ray_cluster` (the interrupted run on an embedded Ray of its own, its resume on the
session's). The exported ensemble is loaded back and checked against its members' own
nets."""

import json
import signal
import subprocess

import numpy as np
import pytest

from fmnist.core import data, export
from fmnist.training import ensemble, model, variants

from conftest import FMNIST_JOB, ROOT, run_cli

THREE = """
[defaults]
epochs = 2
batch_size = 64

[[variant]]
name = "a"
hidden = [64]

[[variant]]
name = "b"
hidden = [32]
normalization = "batch"
seed = 1

[[variant]]
name = "c"
hidden = [128, 32]
activation = "gelu"
seed = 2
"""


def _weights(run_dir, name):
    with np.load(run_dir / "weights" / f"{name}.npz") as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


@pytest.fixture(scope="module")
def ensembled(tmp_path_factory, ray_cluster):
    tmp = tmp_path_factory.mktemp("ens")
    (tmp / "three.toml").write_text(THREE + "\n[ensemble]\nsize = 8\n")
    proc = run_cli(
        "train",
        "--sweep",
        tmp / "three.toml",
        "--workers",
        "2",
        "--limit",
        "6000",
        "--runs-dir",
        tmp / "run",
        "--export-dir",
        tmp / "models",
        "--address",
        ray_cluster.gcs,
    )
    return tmp, proc


@pytest.mark.slow
def test_the_export_is_the_weighted_mean_of_the_selected_members(ensembled):
    import tensorflow as tf

    tmp, proc = ensembled
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp / "run" / "results.json").read_text())
    chosen = results["ensemble"]
    weights = {m["name"]: m["weight"] for m in chosen["members"]}
    assert sum(weights.values()) == pytest.approx(1.0) and chosen["size"] == 8
    assert 1 <= chosen["kept_steps"] <= 8 and len(chosen["steps"]) == 8
    # Selection on validation only: it is what ensemble.select gives on the saved
    # validation predictions of the variants.
    y_val = data.load(limit=6000, val_size=600).y_val
    probs = {n: np.load(tmp / "run" / "weights" / f"{n}.val.npy") for n in "abc"}
    again = ensemble.select(probs, y_val, 8)
    assert again["weights"] == pytest.approx(weights)
    assert again["val_accuracy"] == chosen["val_accuracy"]
    # The SavedModel computes the weighted mean of the members' own nets.
    sweep = {v.name: v for v in variants.parse(THREE)}
    x = data.load_arrays()[2][:500]
    expected = sum(
        w * tf.nn.softmax(_net(sweep[n], _weights(tmp / "run", n))(x)).numpy()
        for n, w in weights.items()
    )
    # ...temperature-scaled as fitted on validation (docs/calibration.md).
    temperature = json.loads((tmp / "models" / "1" / export.METADATA).read_text())["calibration"][
        "temperature"
    ]
    expected = tf.nn.softmax(np.log(np.maximum(expected, 1e-12)) / temperature).numpy()
    serve = tf.saved_model.load(str(tmp / "models" / "1")).signatures[export.SIGNATURE]
    got = serve(images=tf.constant(x))[export.OUTPUT_KEY].numpy()
    assert np.allclose(got, expected, atol=1e-5)
    # Three different small nets: together they beat each alone on validation (here,
    # 82.67% against 81.17% for the best), so the selection keeps more than one.
    assert len(weights) > 1
    assert chosen["val_accuracy"] > max(v["val_accuracy"] for v in results["variants"])
    meta = json.loads((tmp / "models" / "1" / export.METADATA).read_text())
    assert [m["name"] for m in meta["variant"]["members"]] == list(weights)
    assert [m["weight"] for m in meta["variant"]["members"]] == list(weights.values())
    assert meta["val_accuracy"] == chosen["val_accuracy"]
    assert (
        meta["test_accuracy"]
        == chosen["test_accuracy"]
        == results["exported_model_test"]["accuracy"]
    )
    assert "ensemble *" in proc.stdout


def _net(variant, arrays):
    net = model.build(variant)
    net.set_weights(arrays)
    return net


@pytest.mark.slow
def test_one_finished_variant_is_exported_alone(tmp_path, ray_cluster):
    sweep = tmp_path / "s.toml"
    sweep.write_text("""
        [ensemble]
        size = 4
        [[variant]]
        name = "fine"
        hidden = [32]
        epochs = 1
        [[variant]]
        name = "diverges"
        hidden = [512, 512, 512]
        optimizer = "sgd"
        learning_rate = 1.0
        epochs = 2
    """)
    proc = run_cli(
        "train",
        "--sweep",
        sweep,
        "--limit",
        "3000",
        "--runs-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "models",
        "--address",
        ray_cluster.gcs,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {v["name"]: v["status"] for v in results["variants"]} == {
        "fine": "ok",
        "diverges": "failed",
    }
    assert results["ensemble"] is None and results["best"] == "fine"
    meta = json.loads((tmp_path / "models" / "1" / export.METADATA).read_text())
    assert meta["variant"]["name"] == "fine" and "members" not in meta["variant"]


@pytest.mark.slow
def test_a_resumed_run_builds_the_same_ensemble(tmp_path, ray_cluster):
    """Interrupted while building the export (every variant finished; building, checking
    and saving a SavedModel takes seconds whatever the net's width): the resume selects
    again from the saved validation predictions and gets the same members and weights."""
    sweep = tmp_path / "s.toml"
    sweep.write_text(THREE + "\n[ensemble]\nsize = 6\n")
    run_dir, models = tmp_path / "run", tmp_path / "models"
    proc = subprocess.Popen(
        [
            *FMNIST_JOB,
            "train",
            "--sweep",
            str(sweep),
            "--limit",
            "3000",
            "--runs-dir",
            str(run_dir),
            "--export-dir",
            str(models),
        ],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    import time

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            saved = json.loads((run_dir / "results.json").read_text())
            if len(saved["variants"]) == 3 and all(v["status"] == "ok" for v in saved["variants"]):
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    interrupted = json.loads((run_dir / "results.json").read_text())
    assert interrupted["interrupted"] == "SIGTERM" and export.versions(models) == []
    resumed = run_cli(
        "train", "--resume", run_dir, "--export-dir", models, "--address", ray_cluster.gcs
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = json.loads((run_dir / "results.json").read_text())
    assert final["ensemble"]["members"] == interrupted["ensemble"]["members"]
    assert final["ensemble"]["steps"] == interrupted["ensemble"]["steps"]
    assert export.versions(models) == [1]
