"""A model card per version: `card.md` (and `confusion_matrix.png`) beside fmnist.json,
written by `fmnist-job train` once the gate has decided, and `fmnist-job models show N`.

What a reviewer reads before `models promote`: the variant and its sweep, the data's
checksums, validation and test accuracy, per-class accuracy and the confusion matrix,
calibration, the gate's decision, and the lineage (run, code commit when known, library
versions). Built from fmnist.json and the run's results.json; nothing here imports
TensorFlow or Ray.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from fmnist.core import export, storage
from fmnist.ops import versions
from fmnist.ops.results import RunResults

CARD = "card.md"
CONFUSION = "confusion_matrix.png"


def code_commit() -> str | None:
    """The git commit of the code that runs, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        proc = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = proc.stdout.strip()
    if proc.returncode != 0 or len(commit) != 40:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
    )
    return commit + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def render(
    version: int,
    meta: export.ExportMetadata,
    record: RunResults | None = None,
    commit: str | None = None,
    run_dir=None,
    confusion: bool = False,
) -> str:
    """The card, in Markdown. `record` is the run's results.json (None: what fmnist.json
    alone tells); `confusion`: confusion_matrix.png lies beside the card."""
    lines = [f"# fmnist model version {version}", ""]
    lines += [
        f"Exported {meta.exported_at or '(time unknown)'} by run {meta.run_id or '(unknown)'}.",
        "",
    ]
    variant = meta.variant or {}
    lines += ["## Model", ""]
    members = variant.get("members")
    if members:
        lines += [f"An ensemble, `{variant.get('name')}`: the weighted mean of its members.", ""]
        lines += _table(
            ["weight", "member", "hidden", "epochs"],
            [
                [
                    f"{m.get('weight', 0):.3f}",
                    str(m.get("name")),
                    str(m.get("hidden")),
                    str(m.get("epochs")),
                ]
                for m in members
            ],
        )
    elif variant:
        lines += _table(["key", "value"], [[k, f"`{v}`"] for k, v in variant.items()])
    else:
        lines += ["(fmnist.json names no variant)", ""]
    teacher = meta.teacher
    if teacher:
        config = teacher.get("config") or {}
        lines += [
            f"Distilled from `{teacher.get('name')}`, a {teacher.get('kind')} teacher "
            f"(stages {config.get('conv')}, hidden {config.get('hidden')}; val "
            f"{_pct(teacher.get('val_accuracy'))}, test {_pct(teacher.get('test_accuracy'))}), "
            f"trained in the same run and not exported.",
            "",
        ]
    if record is not None:
        lines += [
            f"Sweep: {record.sweep_file or '(given inline)'}, {len(record.sweep)} variants; "
            f"the run's leaderboard (validation chooses, test informs):",
            "",
        ]
        # Finished variants first: one stopped at an early rung is not comparable.
        ranked = sorted(record.variants, key=lambda r: (not r.ok, -(r.val_accuracy or -1)))
        lines += _table(
            ["variant", "status", "val", "test", "epochs", "seconds"],
            [
                [
                    r.name
                    + (" (exported)" if r.name == record.best and not members else "")
                    + (" (teacher)" if r.config.get("conv") else ""),
                    r.status,
                    _pct(r.val_accuracy),
                    _pct(r.test_accuracy),
                    str(r.epochs_run or "-"),
                    f"{r.train_seconds:.0f}" if r.train_seconds else "-",
                ]
                for r in ranked
            ],
        )

    lines += ["## Data", ""]
    if record is not None:
        lines += [
            f"Fashion-MNIST: {record.train_size:,} training images, {record.val_size:,} "
            f"validation (carved, stratified, from the training set), {record.test_size:,} "
            f"test" + (f"; --limit {record.settings.limit}" if record.settings.limit else "") + ".",
            "",
        ]
    lines += _table(
        ["file", "SHA-256"], [[f, f"`{h}`"] for f, h in sorted((meta.dataset_sha256 or {}).items())]
    )

    lines += ["## Accuracy", ""]
    lines += [
        f"Validation {_pct(meta.val_accuracy)}, test {_pct(meta.test_accuracy)} "
        f"(the exported model).",
        "",
    ]
    tested = (record.exported_model_test if record is not None else None) or {}
    if tested.get("per_class_accuracy"):
        lines += ["Test accuracy per class:", ""]
        lines += _table(
            ["class", "accuracy"],
            [[name, _pct(acc)] for name, acc in tested["per_class_accuracy"].items()],
        )
    if confusion:
        lines += [f"Confusion matrix on the test set: ![confusion matrix]({CONFUSION})", ""]

    lines += ["## Calibration", ""]
    cal = (meta.calibration or {}).get("ece") if meta.calibration else None
    if meta.calibration:
        lines += [
            f"Temperature {meta.calibration.get('temperature', 0):.3f}, fitted on validation; "
            f"expected calibration error ({meta.calibration.get('ece_bins')} bins):",
            "",
        ]
        lines += _table(
            ["split", "before", "after"],
            [
                [split, _pct(pair.get("before")), _pct(pair.get("after"))]
                for split, pair in (cal or {}).items()
            ],
        )
    else:
        lines += ["(not calibrated: exported before calibration)", ""]
    if meta.uncertain:
        u = meta.uncertain
        lines += [
            f"`uncertain` below confidence {u.get('min_confidence', 0):.3f}"
            + (
                f" or above outlier score {u['max_outlier_score']:.2f}"
                if isinstance(u.get("max_outlier_score"), (int, float))
                else ""
            )
            + (
                f" or grain below {u['min_grain']:.3f}"
                if isinstance(u.get("min_grain"), (int, float))
                else ""
            )
            + (
                f" or gaps above {u['max_gaps']:.0f}"
                if isinstance(u.get("max_gaps"), (int, float))
                else ""
            )
            + ": flags "
            f"{_pct(u.get('test_flagged'))} of the test set; accuracy of the rows not "
            f"flagged {_pct(u.get('test_accuracy_not_flagged'))}.",
            "",
        ]

    lines += ["## Quality gate", ""]
    gate = record.gate if record is not None else None
    if gate is not None:
        compared = (
            f"stable version {gate.compared_with} {_pct(gate.stable_val_accuracy)} on the same "
            f"validation split"
            if gate.compared_with is not None
            else "no stable version"
        )
        lines += [
            f"**{gate.decision}**: {gate.reason}. Validation {_pct(gate.val_accuracy)} against "
            f"{compared}; tolerance {gate.tolerance_points:g} points.",
            "",
        ]
    else:
        lines += ["(no gate decision recorded)", ""]

    lines += ["## Lineage", ""]
    lines += [f"- run: {meta.run_id or '(unknown)'}" + (f" ({run_dir})" if run_dir else "")]
    lines += [f"- code commit: {commit or 'unknown (not run from a git checkout)'}"]
    if meta.libraries:
        lines += [
            "- libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(meta.libraries.items()))
        ]
    lines.append("")
    return "\n".join(lines)


def write(version_dir, meta: export.ExportMetadata, record: RunResults, run_dir) -> Path:
    """card.md (and the run's confusion_matrix.png) into the published version: each
    written whole (aside and renamed on disk, one PUT in a bucket). Both directories
    are locations (fmnist/core/storage.py)."""
    png = storage.as_location(run_dir) / CONFUSION
    confusion = png.is_file()
    if confusion:
        storage.write_bytes(version_dir / CONFUSION, png.read_bytes())
    text = render(int(version_dir.name), meta, record, code_commit(), run_dir, confusion)
    storage.write_text(version_dir / CARD, text)
    return version_dir / CARD


def show(base: Path, version: int) -> str:
    """Version `version`'s card, then its labels and its changes of `stable` now.

    Raises:
        VersionsError: no such version, an unreadable config or history.
    """
    base = storage.as_location(base)
    found = versions.disk_versions(base)
    if version not in found:
        raise versions.VersionsError(
            f"version {version} is not in {base} (versions: "
            f"{', '.join(map(str, found)) or 'none'}); see fmnist-job models list"
        )
    path = base / str(version)
    try:
        text = (path / CARD).read_text(encoding="utf-8")
    except FileNotFoundError:
        try:
            meta = export.read_metadata(path)
        except (OSError, export.MetadataError):
            meta = export.ExportMetadata()
        text = render(version, meta) + (
            "\n(no card.md: exported before cards were written; this is what fmnist.json tells)\n"
        )
    config = versions.read_config(base)
    labels = sorted(k for k, v in (config.labels if config else {}).items() if v == version)
    events = [
        e for e in versions.history_events(base) if version in (e.get("stable"), e.get("was"))
    ]
    now = ["## Now", "", f"Labels: {', '.join(labels) if labels else 'none'}.", ""]
    for e in events:
        change = "made stable" if e.get("stable") == version else f"replaced by {e.get('stable')}"
        now.append(
            f"- {(e.get('at') or '?')[:19].replace('T', ' ')} UTC: {change} ({e.get('why') or '?'}"
            + (f", by {e['by']}" if e.get("by") else "")
            + ")"
        )
    return text.rstrip("\n") + "\n\n" + "\n".join(now).rstrip("\n") + "\n"
