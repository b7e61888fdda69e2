"""Model cards (`models show N`) and the history of `stable` (`models history`), on real
version directories without training (a placeholder saved_model.pb and a real
fmnist.json, as tests/test_versions.py makes them); the card a real training run
writes is checked in tests/test_train_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

from fmnist.core import export
from fmnist.ops import cards, gate, versions
from fmnist.ops.gate import GateDecision
from fmnist.ops.results import RunResults, RunSettings, VariantResult

from conftest import cli


def make_versions(base: Path, *numbers: int) -> Path:
    """Version directories as `models` reads them: saved_model.pb and fmnist.json."""
    base.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (base / str(n)).mkdir()
        (base / str(n) / "saved_model.pb").write_bytes(b"\0" * 100)
        meta = export.ExportMetadata(variant={"name": f"v{n}"}, val_accuracy=0.8, run_id=f"r{n}")
        (base / str(n) / export.METADATA).write_text(json.dumps(meta.dump()))
    return base


def _record() -> RunResults:
    return RunResults(
        run_id="20261201-020000-abc123",
        started_at="2026-12-01T02:00:00",
        sweep_file="jobs/default.toml",
        sweep=[{"name": "a"}, {"name": "b"}],
        settings=RunSettings(val_size=5000),
        dataset_sha256={"train-images-idx3-ubyte.gz": "ab" * 32},
        address="embedded",
        train_size=55000,
        val_size=5000,
        test_size=10000,
        variants=[
            VariantResult(name="a", config={}, status="ok", val_accuracy=0.9, test_accuracy=0.89),
            VariantResult(name="b", config={}, status="failed", error="NaN loss"),
        ],
        best="a",
        exported_model_test={"per_class_accuracy": {"Coat": 0.81, "Bag": 0.97}},
        gate=GateDecision(
            decision="candidate",
            reason="worse than stable by 0.50 points (tolerance 0.2)",
            version=3,
            stable_before=2,
            compared_with=2,
            val_accuracy=0.9,
            stable_val_accuracy=0.905,
            tolerance_points=0.2,
        ),
    )


def test_the_card_says_what_a_reviewer_needs(tmp_path):
    base = make_versions(tmp_path / "fmnist", 1, 2, 3)
    meta = export.ExportMetadata(
        run_id="20261201-020000-abc123",
        variant={"name": "a", "hidden": [256, 128], "dropout": 0.2},
        val_accuracy=0.9,
        test_accuracy=0.89,
        dataset_sha256={"train-images-idx3-ubyte.gz": "ab" * 32},
        libraries={"tensorflow": "2.21.0", "ray": "2.60.0"},
        calibration={
            "temperature": 1.2,
            "ece_bins": 15,
            "ece": {"validation": {"before": 0.03, "after": 0.01}},
        },
        uncertain={
            "min_confidence": 0.55,
            "max_outlier_score": 9.5,
            "min_grain": 0.43,
            "max_gaps": 1.0,
            "test_flagged": 0.08,
            "test_accuracy_not_flagged": 0.93,
        },
    )
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / cards.CONFUSION).write_bytes(b"\x89PNG not really")
    written = cards.write(base / "3", meta, _record(), run_dir)
    text = written.read_text()
    for expected in (
        "# fmnist model version 3",
        "| hidden | `[256, 128]` |",
        "Sweep: jobs/default.toml, 2 variants",
        "| b | failed | - | - |",
        "55,000 training images, 5,000 validation",
        "`" + "ab" * 32 + "`",
        "Validation 90.00%, test 89.00%",
        "| Coat | 81.00% |",
        "![confusion matrix](confusion_matrix.png)",
        "Temperature 1.200",
        "| validation | 3.00% | 1.00% |",
        "`uncertain` below confidence 0.550 or above outlier score 9.50 or grain below 0.430"
        " or gaps above 1: flags 8.00%",
        "**candidate**: worse than stable by 0.50 points",
        "stable version 2 90.50% on the same validation split",
        "- run: 20261201-020000-abc123",
        "- libraries: ray 2.60.0, tensorflow 2.21.0",
    ):
        assert expected in text, expected
    assert (base / "3" / cards.CONFUSION).read_bytes() == b"\x89PNG not really"
    # From a checkout the code's commit is named; from an installed package "unknown".
    commit = cards.code_commit()
    assert (commit or "unknown (not run from a git checkout)") in text


def test_show_adds_the_labels_and_changes_of_stable_now(tmp_path, monkeypatch, capsys):
    base = make_versions(tmp_path / "fmnist", 1, 2, 3)
    versions.promote(base, 1)
    gate.apply_gate(base, 2, 0.95, 1, 0.9, 0.2, run_id="night2")  # promoted by the gate
    versions.promote(base, 3)
    versions.rollback(base)
    d = ["--export-dir", base]
    code, out, _ = cli(["models", "show", "2", *d], monkeypatch, capsys)
    assert code == 0
    assert out.startswith("# fmnist model version 2\n")
    assert "no card.md: exported before cards were written" in out  # made from fmnist.json
    assert "Labels: stable." in out
    now = out.split("## Now", 1)[1]
    assert "made stable (gate: run night2, by " in now
    assert "replaced by 3 (promote, by " in now
    assert now.count("made stable") == 2  # the gate's, then the rollback's
    code, _, err = cli(["models", "show", "9", *d], monkeypatch, capsys)
    assert code == 2 and "version 9 is not in" in err and len(err.splitlines()) == 1


def test_history_says_who_changed_stable_when_and_why(tmp_path, monkeypatch, capsys):
    base = make_versions(tmp_path / "fmnist", 1, 2)
    versions.promote(base, 1)
    versions.promote(base, 2)
    versions.promote(base, 2)  # no change: no event
    versions.rollback(base)
    code, out, _ = cli(["models", "history", "--json", "--export-dir", base], monkeypatch, capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["stable"], r["was"], r["why"]) for r in rows] == [
        (1, None, "promote"),
        (2, 1, "promote"),
        (1, 2, "rollback"),
    ]
    assert all("@" in r["by"] and r["at"] for r in rows)
    code, out, _ = cli(["models", "history", "--export-dir", base], monkeypatch, capsys)
    assert out.splitlines()[0].split() == ["when", "(UTC)", "stable", "was", "why", "by"]
    assert len(out.splitlines()) == 4


def test_a_history_from_before_events_is_shown_from_its_entries(tmp_path, monkeypatch, capsys):
    base = make_versions(tmp_path / "fmnist", 1)
    old = {"stable": [{"version": 1, "since": "2026-11-01T02:00:00+00:00", "why": "gate: run x"}]}
    (base / versions.HISTORY).write_text(json.dumps(old))
    code, out, _ = cli(["models", "history", "--json", "--export-dir", base], monkeypatch, capsys)
    assert code == 0
    assert [json.loads(line)["why"] for line in out.splitlines()] == ["gate: run x"]
    (base / versions.HISTORY).write_text("{not json")
    code, _, err = cli(["models", "history", "--export-dir", base], monkeypatch, capsys)
    assert code == 2 and "unreadable" in err
    code, _, err = cli(
        ["models", "history", "--export-dir", Path(tmp_path / "none")], monkeypatch, capsys
    )
    assert code == 2 and "no such directory" in err


def test_an_ensembles_card_lists_its_members():
    meta = export.ExportMetadata(
        variant={
            "name": "ensemble-a+b",
            "members": [
                {"weight": 0.75, "name": "a", "hidden": [64], "epochs": 3},
                {"weight": 0.25, "name": "b", "hidden": [128, 64], "epochs": 5},
            ],
        }
    )
    text = cards.render(4, meta)
    assert "An ensemble, `ensemble-a+b`" in text
    assert "| 0.750 | a | [64] | 3 |" in text and "| 0.250 | b | [128, 64] | 5 |" in text
    assert "(not calibrated: exported before calibration)" in text
    assert "(no gate decision recorded)" in text
