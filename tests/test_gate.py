"""The quality gate end to end: real `fmnist-job train` runs (TensorFlow, a 2,000-image
slice, one epoch or two) exporting into one base, night after night, then `runs list`
over their runs directory and the TensorBoard files they left. The nights train on the
session's `ray_cluster` (the gate is the driver's, not the Ray's); the racing pair on
embedded Rays of their own."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from fmnist.ops import versions

import pause_export
from conftest import ROOT, cli, run_cli

WEAK = '[[variant]]\nname = "weak"\nhidden = [2]\nepochs = 1\n'
STRONG = '[[variant]]\nname = "strong"\nhidden = [64]\nepochs = 2\n'


def night(tmp, name: str, sweep: str, address: str) -> subprocess.CompletedProcess:
    path = tmp / f"{name}.toml"
    path.write_text(sweep)
    return run_cli(
        "train",
        "--sweep",
        path,
        "--workers",
        "1",
        "--limit",
        "2000",
        "--runs-dir",
        tmp / "runs" / name,
        "--export-dir",
        tmp / "models" / "fmnist",
        "--address",
        address,
    )


def results(tmp, name: str) -> dict:
    return json.loads((tmp / "runs" / name / "results.json").read_text())


def gate_lines(proc) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("gate:")]


@pytest.fixture(scope="module")
def nights(tmp_path_factory, ray_cluster):
    """Three nights: a weak first model, a strong one, a weak one again."""
    tmp = tmp_path_factory.mktemp("nights")
    procs = {}
    for name, sweep in (("n1", WEAK), ("n2", STRONG), ("n3", WEAK)):
        procs[name] = night(tmp, name, sweep, ray_cluster.gcs)
        assert procs[name].returncode == 0, procs[name].stderr[-2000:]
    return tmp, procs


@pytest.mark.slow
def test_the_first_export_becomes_stable(nights):
    tmp, procs = nights
    gate = results(tmp, "n1")["gate"]
    assert gate["decision"] == "promote" and gate["reason"] == "no stable version yet"
    assert gate["stable_val_accuracy"] is None and gate["version"] == 1
    assert gate_lines(procs["n1"]) == [
        f"gate: version 1 promoted to stable (val {100 * gate['val_accuracy']:.2f}%; "
        f"no stable version yet)"
    ]


@pytest.mark.slow
def test_a_better_model_is_promoted(nights):
    tmp, _ = nights
    first, gate = results(tmp, "n1")["gate"], results(tmp, "n2")["gate"]
    assert gate["decision"] == "promote" and gate["compared_with"] == 1
    assert gate["reason"].startswith("better than stable by")
    # Stable (version 1) scored again on this run's split gives what its own run measured.
    assert gate["stable_val_accuracy"] == first["val_accuracy"]
    assert gate["val_accuracy"] > gate["stable_val_accuracy"]


@pytest.mark.slow
def test_a_worse_model_is_a_candidate_and_stable_stays(nights):
    tmp, procs = nights
    gate, second = results(tmp, "n3")["gate"], results(tmp, "n2")["gate"]
    assert gate["decision"] == "candidate" and gate["stable_before"] == 2
    assert gate["stable_val_accuracy"] == second["val_accuracy"]
    assert gate["val_accuracy"] < gate["stable_val_accuracy"] - 0.002
    [line] = gate_lines(procs["n3"])
    assert line == (
        f"gate: version 3 NOT promoted, labelled candidate; stable stays version 2 "
        f"(val {100 * gate['val_accuracy']:.2f}% vs stable v2 "
        f"{100 * gate['stable_val_accuracy']:.2f}%; {gate['reason']})"
    )
    assert gate["reason"].endswith("points (tolerance 0.2)")  # one line, not wrapped
    config = versions.read_config(tmp / "models" / "fmnist")
    assert config.labels == {"stable": 2, "candidate": 3} and config.versions == [1, 2, 3]
    resolved = versions.resolve(tmp / "models" / "fmnist")
    assert (resolved.version, resolved.why) == (2, "stable")


@pytest.mark.slow
def test_runs_list_shows_every_night_and_tolerates_a_half_written_run(nights, monkeypatch, capsys):
    tmp, _ = nights
    runs = tmp / "runs"
    half = json.loads((runs / "n3" / "results.json").read_text())
    for key in ("wall_seconds", "best", "export", "gate"):  # as after the first variant
        half.pop(key)
    (runs / "n4").mkdir()
    (runs / "n4" / "results.json").write_text(json.dumps(half))
    (runs / "n5").mkdir()  # killed before its first write
    (runs / "n6").mkdir()
    (runs / "n6" / "results.json").write_text('{"run_id": "n6", "varia')  # cut short

    code, out, err = cli(["runs", "list", "--runs-dir", runs, "--json"], monkeypatch, capsys)
    assert code == 0, err
    rows = {r["run_id"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == {"n1", "n2", "n3", "n4", "n5", "n6"}
    assert [rows[n]["gate"] for n in ("n1", "n2", "n3")] == ["promote", "promote", "candidate"]
    assert [rows[n]["exported_version"] for n in ("n1", "n2", "n3")] == ["1", "2", "3"]
    assert rows["n2"]["best"] == "strong" and rows["n2"]["status"] == "ok"
    assert rows["n2"]["val_accuracy"] == results(tmp, "n2")["variants"][0]["val_accuracy"]
    assert rows["n1"]["duration_seconds"] == results(tmp, "n1")["wall_seconds"]
    assert rows["n4"]["status"] == "incomplete" and rows["n4"]["started"]
    assert rows["n5"]["status"] == "unreadable" and rows["n5"]["problem"] == "no results.json"
    assert rows["n6"]["status"] == "unreadable"
    code, out, _ = cli(["runs", "list", "--runs-dir", runs], monkeypatch, capsys)
    assert code == 0 and len(out.splitlines()) == 7
    code, _, err = cli(["runs", "list", "--runs-dir", tmp / "nope"], monkeypatch, capsys)
    assert code == 2 and "no such directory" in err


@pytest.mark.slow
def test_each_variant_leaves_tensorboard_scalars_per_epoch(nights):
    import tensorflow as tf

    tmp, _ = nights
    board = tmp / "runs" / "n2" / "tensorboard" / "strong"
    found = {}
    for split in ("train", "validation"):
        for events in (board / split).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(events)):
                for value in event.summary.value:
                    found.setdefault((split, value.tag), []).append(event.step)
    assert found == {
        ("train", "epoch_loss"): [0, 1],
        ("train", "epoch_accuracy"): [0, 1],
        ("train", "epoch_learning_rate"): [0, 1],
        ("validation", "epoch_loss"): [0, 1],
        ("validation", "epoch_accuracy"): [0, 1],
    }


@pytest.mark.slow
def test_two_runs_racing_do_not_both_promote(tmp_path):
    """Two trainings at once into a new export base. Each reads "no stable yet" before
    it builds its export; the export then waits at a barrier (tests/pause_export.py) so
    both have read it before either labels. One promotes, the other is left a candidate.

    The second starts once the first has joined its Ray (its results.json exists): two
    embedded Rays starting at the same moment on this loaded 2-core machine failed to
    start ("raylet failed to startup or the GCS has become overloaded")."""
    sweep = tmp_path / "weak.toml"
    sweep.write_text(WEAK)

    def start(name):
        return subprocess.Popen(
            pause_export.command(
                300,
                "-m",
                "fmnist.cli",
                "train",
                "--sweep",
                str(sweep),
                "--workers",
                "1",
                "--limit",
                "2000",
                "--runs-dir",
                str(tmp_path / "runs" / name),
                "--export-dir",
                str(tmp_path / "models"),
                barrier=(tmp_path / "barrier", 2),
            ),
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    procs = [start("a")]
    deadline = time.monotonic() + 300
    while not (tmp_path / "runs" / "a" / "results.json").exists():
        assert procs[0].poll() is None and time.monotonic() < deadline, procs[0].communicate()[1][
            -1500:
        ]
        time.sleep(0.5)
    procs.append(start("b"))
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-1500:] for _, e in outs]
    gates = [
        json.loads((tmp_path / "runs" / n / "results.json").read_text())["gate"] for n in ("a", "b")
    ]
    assert sorted(g["decision"] for g in gates) == ["candidate", "promote"]
    assert all(g["compared_with"] is None for g in gates)  # both read "no stable yet"
    loser = next(g for g in gates if g["decision"] == "candidate")
    winner = next(g for g in gates if g["decision"] == "promote")
    assert loser["reason"].startswith(f"stable changed to version {winner['version']}")
    config = versions.read_config(tmp_path / "models")
    assert config.labels == {"stable": winner["version"], "candidate": loser["version"]}
