"""models.config, the `models` commands and the gate's decision, without training.

The version directories here are real directories with a saved_model.pb placeholder
and an fmnist.json: `models` commands read only those names and the metadata, never the
SavedModel. What `score` loads is tested with a real model at the end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fmnist.ops import gate, serving_config, versions

from conftest import ROOT, cli


def make_versions(base: Path, *numbers: int) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        d = base / str(n)
        d.mkdir()
        (d / "saved_model.pb").write_bytes(b"\0" * 100 * n)
        (d / "fmnist.json").write_text(
            json.dumps(
                {
                    "variant": {"name": f"v{n}"},
                    "val_accuracy": 0.8 + n / 100,
                    "test_accuracy": 0.79 + n / 100,
                    "exported_at": f"2026-11-0{n}T02:00:00+00:00",
                    "run_id": f"run{n}",
                }
            )
        )
    return base


def snapshot(base: Path) -> dict:
    """Every file under `base` and its bytes: 'nothing lost' is this being unchanged."""
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.name != versions.LOCK
    }


def labels(base: Path) -> dict:
    return versions.read_config(base).labels


# -- the file format ------------------------------------------------------------------

# What fmnist-job has always written (the hand-built schema's output, byte for byte).
ON_DISK = """model_config_list {
  config {
    name: "fmnist"
    base_path: "/data/models/fmnist"
    model_platform: "tensorflow"
    model_version_policy {
      specific {
        versions: 1
        versions: 3
      }
    }
    version_labels {
      key: "candidate"
      value: 1
    }
    version_labels {
      key: "stable"
      value: 3
    }
  }
}
"""


def test_config_round_trips_and_reads_tf_servings_documented_form():
    config = serving_config.Config(
        "fmnist", "/data/models/fmnist", [3, 1], {"stable": 3, "candidate": 1}
    )
    text = serving_config.format_config(config)
    assert text == ON_DISK
    again = serving_config.parse_config(text)
    assert (again.versions, again.labels, again.base_path) == (
        [1, 3],
        {"stable": 3, "candidate": 1},
        "/data/models/fmnist",
    )
    # As TF Serving's documentation writes it: single quotes, colons before braces,
    # comments.
    doc = """model_config_list {
      config {
        name: 'mnist'  # the model
        base_path: '/models/mnist'
        model_platform: 'tensorflow'
        model_version_policy: { specific: { versions: 42 versions: 43 } }
        version_labels { key: 'stable' value: 42 }
        version_labels { key: 'canary' value: 43 }
      }
    }"""
    parsed = serving_config.parse_config(doc)
    assert parsed.versions == [42, 43] and parsed.labels == {"stable": 42, "canary": 43}


@pytest.mark.parametrize(
    "text, words",
    [
        # TF Serving knows these; fmnist-job would drop them on its next rewrite.
        (
            "model_config_list { config { name: 'x' logging_config {} } }",
            "sets logging_config, which fmnist-job does not manage",
        ),
        ("custom_model_config {}", "sets custom_model_config, which fmnist-job does not"),
        ("model_config_list { config { name: 'x' unheard_of: 1 } }", 'no field named "unheard_of"'),
        ("model_config_list { config { name: 'x' ", "not a TF Serving model config"),
        ("", "lists 0 models"),
        (
            "model_config_list { config { name: 'x' model_version_policy { latest {} } } }",
            "'latest'",
        ),
        (
            "model_config_list { config { name: 'x' model_version_policy { specific { versions: 1 "
            "} } version_labels { key: 'stable' value: 2 } } }",
            "label 'stable' points at version 2",
        ),
    ],
)
def test_a_config_fmnist_cannot_manage_is_refused_naming_why(text, words):
    with pytest.raises(serving_config.VersionsError, match=words.replace("(", r"\(")):
        serving_config.parse_config(text)


# -- the gate's decision ----------------------------------------------------------------


def test_gate_decision_better_worse_within_tolerance_and_first():
    assert gate.decide(0.90, None)[0] == "promote"
    assert gate.decide(0.91, 0.90) == ("promote", "better than stable by 1.00 points")
    assert gate.decide(0.90, 0.90)[0] == "promote"  # equal
    assert gate.decide(0.8981, 0.90)[0] == "promote"  # -0.19 points
    assert gate.decide(0.898, 0.90, tolerance=0.2)[0] == "promote"  # exactly -0.2
    assert gate.decide(0.8979, 0.90)[0] == "candidate"  # -0.21 points
    assert gate.decide(0.85, 0.90, tolerance=5)[0] == "promote"
    decision, why = gate.decide(0.85, 0.90)
    assert decision == "candidate" and why.startswith("worse than stable by 5.00 points")


def test_the_gate_promotes_only_if_stable_is_what_it_compared_with(tmp_path):
    base = make_versions(tmp_path / "fmnist", 1, 2, 3)
    first = gate.apply_gate(base, 1, 0.8, None, None, 0.2)
    assert first.decision == "promote" and labels(base) == {"stable": 1}
    # 3 compared with "no stable" (it read the config before 1 was promoted): refused.
    late = gate.apply_gate(base, 3, 0.99, None, None, 0.2)
    assert late.decision == "candidate" and "stable changed to version 1" in late.reason
    assert labels(base) == {"stable": 1, "candidate": 3}
    worse = gate.apply_gate(base, 2, 0.70, 1, 0.80, 0.2)
    assert worse.decision == "candidate" and labels(base) == {"stable": 1, "candidate": 2}
    assert versions.read_config(base).versions == [1, 2, 3]  # all served, for the canary


def test_the_gate_record_keeps_its_json_shape_in_results(tmp_path):
    """results.json's "gate" as before the record was a model: every key of a decision
    made under the lock, no `stable_before` when models.config could not be read."""
    from fmnist.ops.results import RunResults, RunSettings

    base = make_versions(tmp_path / "fmnist", 1, 2)
    gate.apply_gate(base, 1, 0.8, None, None, 0.2)
    built = {"val_accuracy": 0.79, "stable_val_accuracy": 0.8}
    decided = gate.gate(base, 2, built, {"version": 1, "archive": None, "problem": None}, 0.2, "r")
    (base / versions.CONFIG).write_text("garbage")
    broken = gate.gate(base, 2, built, {"version": 1, "archive": None, "problem": None}, 0.2, "r")
    records = []
    for record in (decided, broken):
        results = RunResults(
            run_id="r",
            started_at="t",
            sweep=[],
            address="embedded",
            settings=RunSettings(val_size=10),
            dataset_sha256={},
            train_size=1,
            val_size=1,
            test_size=1,
        )
        results.gate = record
        records.append(json.loads(json.dumps(results.dump()))["gate"])
    assert records[0] == {
        "decision": "candidate",
        "reason": "worse than stable by 1.00 points (tolerance 0.2)",
        "version": 2,
        "stable_before": 1,
        "compared_with": 1,
        "val_accuracy": 0.79,
        "stable_val_accuracy": 0.8,
        "tolerance_points": 0.2,
    }
    assert set(records[1]) == {
        "decision",
        "reason",
        "version",
        "compared_with",
        "val_accuracy",
        "stable_val_accuracy",
        "tolerance_points",
    }
    assert records[1]["decision"] == "unlabelled"
    assert "not a TF Serving model config" in records[1]["reason"]
    assert gate.GateDecision.model_validate(records[1]).model_dump(exclude_unset=True) == records[1]
    assert gate.gate_line(broken).startswith("gate: version 2 left unlabelled: ")


RACER = """
import os, sys, time
from pathlib import Path
from fmnist.ops import gate
base, version, ready, n = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
compared, _ = gate.stable_for_gate(base)     # what a run reads before training ends
(ready / str(os.getpid())).touch()
deadline = time.monotonic() + 50
while len(os.listdir(ready)) < n and time.monotonic() < deadline:  # every racer has read it
    time.sleep(0.001)
print(gate.apply_gate(base, version, 0.9, compared, None, 0.2).decision)
"""


@pytest.mark.parametrize("stable_before", [None, 1])
def test_racing_runs_never_both_promote(tmp_path, stable_before):
    """Six processes, each having read the same stable, label their versions at the
    same instant: exactly one becomes stable. (Without the lock in apply_gate, this
    failed here: several printed 'promote'.) They are released together once all six
    have read it, however long a loaded machine takes to start them (not at a fixed
    moment, which a process still importing may miss)."""
    base = make_versions(tmp_path / "fmnist", *range(1, 8))
    if stable_before:
        versions.promote(base, stable_before)
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(base), str(v), str(ready), "6"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for v in range(2, 8)
    ]
    decisions = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(decisions) == ["candidate"] * 5 + ["promote"]
    winner = 2 + decisions.index("promote")
    config = versions.read_config(base)
    assert config.stable == winner and config.versions == sorted(
        {*range(2, 8), *([stable_before] if stable_before else [])}
    )
    assert versions.read_history(base) == [*([stable_before] if stable_before else []), winner]


# -- the commands --------------------------------------------------------------------


def test_list_promote_rollback_prune(tmp_path, monkeypatch, capsys):
    base = make_versions(tmp_path / "fmnist", 1, 2, 3, 4, 5)
    d = ["--export-dir", base]
    code, out, _ = cli(["models", "list", *d], monkeypatch, capsys)
    assert code == 0 and out.splitlines()[0].split()[:4] == [
        "version",
        "created",
        "(UTC)",
        "variant",
    ]
    assert len(out.splitlines()) == 6
    assert (
        cli(["models", "promote", "2", *d], monkeypatch, capsys)[1]
        == "stable: version 2 (was none)\n"
    )
    assert (
        cli(["models", "promote", "4", *d], monkeypatch, capsys)[1] == "stable: version 4 (was 2)\n"
    )
    gate.apply_gate(base, 5, 0.5, 4, 0.9, 0.2)  # a worse night: 5 is the candidate
    code, out, _ = cli(["models", "list", "--json", *d], monkeypatch, capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["labels"] for r in rows] == [[], [], [], ["stable"], ["candidate"]]
    assert rows[3]["variant"] == "v4" and rows[3]["val_accuracy"] == pytest.approx(0.84)
    assert rows[0]["size_bytes"] > 100 and [r["served"] for r in rows] == [
        False,
        True,
        False,
        True,
        True,
    ]
    # prune keeps the newest, the labelled ones and rollback's target (2).
    assert (
        cli(["models", "prune", "--keep", "1", *d], monkeypatch, capsys)[1]
        == "pruned versions 1, 3\n"
    )
    assert versions.disk_versions(base) == [2, 4, 5]
    assert not [p for p in base.iterdir() if p.name.startswith(".pruned")]
    assert (
        cli(["models", "rollback", *d], monkeypatch, capsys)[1]
        == "stable: version 2 (rolled back from 4)\n"
    )
    assert labels(base) == {"stable": 2, "candidate": 5}
    code, _, err = cli(["models", "rollback", *d], monkeypatch, capsys)
    assert code == 2 and "version 2 is the first stable version" in err
    assert (
        cli(["models", "prune", "--keep", "0", *d], monkeypatch, capsys)[1] == "pruned version 4\n"
    )
    assert versions.disk_versions(base) == [2, 5]


def test_bad_input_is_one_line_exit_two_and_loses_nothing(tmp_path, monkeypatch, capsys):
    base = make_versions(tmp_path / "fmnist", 1, 2)
    versions.promote(base, 1)
    before = snapshot(base)
    d = ["--export-dir", base]
    cases = [
        (["models", "promote", "7", *d], "version 7 is not in"),
        (["models", "promote", "-1", *d], "No such option: -1"),
        (["models", "rollback", *d], "there is none before it"),
        (["models", "promote", "x", *d], "Invalid value for 'version'"),
        (["models", "prune", *d], "Missing option '--keep'"),
    ]
    for argv, words in cases:
        code, out, err = cli(argv, monkeypatch, capsys)
        assert (code, out) == (2, ""), argv
        assert len(err.strip().splitlines()) == 1 and words in err, (argv, err)
        assert err.startswith("fmnist-job: error: ")
    assert snapshot(base) == before

    empty = tmp_path / "empty"
    empty.mkdir()
    for sub in (["list"], ["promote", "1"], ["rollback"], ["prune", "--keep", "1"]):
        code, _, err = cli(["models", *sub, "--export-dir", empty], monkeypatch, capsys)
        assert code == 2 and "no exported versions in it" in err, sub
        code, _, err = cli(["models", *sub, "--export-dir", tmp_path / "nope"], monkeypatch, capsys)
        assert code == 2 and "no such export directory" in err, sub
    assert list(empty.iterdir()) == []

    (base / versions.HISTORY).write_text("{not json")
    before = snapshot(base)
    code, out, err = cli(["models", "promote", "2", *d], monkeypatch, capsys)
    assert (code, out) == (2, "") and "models.history.json: unreadable" in err
    assert snapshot(base) == before
    (base / versions.HISTORY).unlink()

    (base / versions.CONFIG).write_text("model_config_list { config { name: 'x' ")
    before = snapshot(base)
    for sub in (["list"], ["promote", "2"], ["rollback"], ["prune", "--keep", "0"]):
        code, out, err = cli(["models", *sub, *d], monkeypatch, capsys)
        assert (code, out) == (2, ""), sub
        assert len(err.strip().splitlines()) == 1 and "not a TF Serving model config" in err
    assert snapshot(base) == before


def test_models_commands_import_neither_tensorflow_nor_ray(tmp_path):
    base = make_versions(tmp_path / "fmnist", 1, 2)
    code = (
        "import sys\nfrom fmnist.cli import main\n"
        f"sys.argv = ['fmnist-job', 'models', 'promote', '2', '--export-dir', {str(base)!r}]\n"
        "rc = main()\nheavy = [m for m in ('tensorflow', 'ray', 'keras') if m in sys.modules]\n"
        "print(rc, heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.splitlines()[-1] == "0 []", proc.stderr


# -- what score uses -------------------------------------------------------------------


def test_resolve_says_why_and_a_version_named_explicitly_keeps_its_labels(tmp_path):
    base = make_versions(tmp_path / "fmnist", 1, 2, 3)
    newest = versions.resolve(base)
    assert (newest.path, newest.version, newest.why) == (base / "3", 3, "newest; no stable label")
    assert versions.used_version(base / "3") == newest
    assert versions.used_version(base / "2").why == ""
    versions.promote(base, 1)
    gate.apply_gate(base, 3, 0.5, 1, 0.9, 0.2)  # worse: 3 is the candidate
    stable = versions.resolve(base)
    assert (stable.path, stable.labels, stable.why) == (base / "1", ("stable",), "stable")
    assert versions.used_version(base / "3").why == "candidate"
    assert versions.used_version(base / "2").why == ""
    # What score prints of a version it was pointed at never stops it: no labels then.
    (base / versions.CONFIG).write_text("garbage")
    assert versions.used_version(base / "3") == versions.Resolved(base / "3", 3)
    with pytest.raises(versions.VersionsError, match="not a TF Serving model config"):
        versions.resolve(base)


@pytest.mark.slow
def test_score_uses_stable_and_rollback_changes_it(scoring_model, tmp_path, monkeypatch, capsys):
    """A real SavedModel as version 1 and 2 (a copy): score says which it used. The
    commands run in this process (what they print is the point, not their process)."""
    base = tmp_path / "fmnist"
    shutil.copytree(scoring_model, base)
    shutil.copytree(base / "1", base / "2")
    images = tmp_path / "in"
    images.mkdir()
    from PIL import Image

    Image.new("L", (28, 28), 200).save(images / "a.png")

    def run(*argv):
        return cli(list(argv), monkeypatch, capsys)

    def used():
        code, _, err = run("score", images, "--model", base, "--out", tmp_path / "p.csv")
        assert code == 0, err
        return [
            line.split(" with model ")[1] for line in err.splitlines() if " with model " in line
        ]

    assert used() == [f"{base}/2 (newest; no stable label)"]
    assert run("models", "promote", "1", "--export-dir", base)[0] == 0
    assert used() == [f"{base}/1 (stable)"]
    assert run("models", "promote", "2", "--export-dir", base)[0] == 0
    assert used() == [f"{base}/2 (stable)"]
    code, out, _ = run("models", "rollback", "--export-dir", base)
    assert code == 0 and out == "stable: version 1 (rolled back from 2)\n"
    assert used() == [f"{base}/1 (stable)"]

    (base / versions.CONFIG).write_text("garbage")
    code, _, err = run("score", images, "--model", base, "--out", tmp_path / "q.csv")
    assert code == 2 and "not a TF Serving model config" in err
    assert not (tmp_path / "q.csv").exists()
