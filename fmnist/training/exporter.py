"""From the finished variants to the export: choose the members, build the SavedModel
(early, where a slot would otherwise idle), describe what ships.

The test set never chooses anything: members are picked on validation accuracy (or
validation predictions, for an ensemble), and the test set only describes the result.
"""

from __future__ import annotations

import datetime as dt

import ray

from fmnist.core import data, export
from fmnist.ops.results import RunResults, VariantResult
from fmnist.training import ensemble, report
from fmnist.training.rundir import RunDir
from fmnist.training.session import DeferredSignals
from fmnist.training.tasks import export_task
from fmnist.training.variants import Variant, is_teacher

Members = list[tuple[str, float]]  # [(variant name, weight)]


def candidates(results: list[VariantResult]) -> list[VariantResult]:
    """The finished variants that may be exported: all but distillation teachers
    (convolutional; exported models stay dense)."""
    return [r for r in results if r.ok and not is_teacher(r.config)]


def best_of(results: list[VariantResult]) -> VariantResult | None:
    """The best variant: the best validation accuracy (the first of equals, in the
    sweep's order), among those that finished, teachers aside."""
    ok = candidates(results)
    return max(ok, key=lambda r: r.val_accuracy) if ok else None


def choose_members(
    ok: list[VariantResult], best: VariantResult, run_dir: RunDir, y_val, size: int
) -> tuple[Members, dict | None, str | None]:
    """The single best variant, or with `size` > 1 an ensemble chosen on validation
    predictions (fmnist/training/ensemble.py).

    Variants without saved predictions (finished by an older version, before a resume)
    cannot be members.

    Returns:
        (members, the selection record for results.json or None, and when an ensemble
        was asked for but a single model is exported, why).
    """
    single = [(best.name, 1.0)]
    if size <= 1:
        return single, None, None
    if len(ok) < 2:
        return (
            single,
            None,
            f"{size} steps asked, but only one variant finished: exporting {best.name} alone",
        )
    probs = {r.name: run_dir.load_val_probs(r.name) for r in ok}
    probs = {n: p for n, p in probs.items() if p is not None and len(p) == len(y_val)}
    if len(probs) < 2:
        return (
            single,
            None,
            f"{size} steps asked, but fewer than two variants have "
            f"validation predictions: exporting {best.name} alone",
        )
    selection = ensemble.select(probs, y_val, size)
    members = sorted(selection.pop("weights").items(), key=lambda m: (-m[1], m[0]))
    selection["members"] = [{"name": m, "weight": w} for m, w in members]
    selection["size"] = size
    note = (
        None
        if len(members) > 1
        else (
            f"selection on validation kept one member in {size} steps (no other variant "
            f"improved on it): exporting {members[0][0]} alone"
        )
    )
    return members, selection, note


class EarlyExport:
    """Builds the export while the last variants still train.

    Once the variants still training are fewer than the slots, a slot stays idle to the
    end of training: the export task runs there for the best variant so far instead of
    after the last variant. A better variant finishing later starts it again for that
    one; at the end, the export of the final members is used (built then if it was not
    already: always so for an ensemble, whose members are known only at the end)."""

    def __init__(
        self,
        variants: list[Variant],
        run_dir: RunDir,
        splits_ref,
        cpus: float,
        stable_archive: bytes | None,
        on_start=lambda: None,
    ):
        self.variants = {v.name: v for v in variants}
        self.run_dir, self.splits_ref, self.cpus = run_dir, splits_ref, cpus
        self.stable_archive, self.on_start = stable_archive, on_start
        self.members: Members | None = None
        self.ref = None

    def start(self, members: Members) -> None:
        if members == self.members:
            return
        self.members = members
        self.on_start()
        self.ref = export_task.options(num_cpus=self.cpus).remote(
            [(self.variants[m], self.run_dir.load_weights(m), share) for m, share in members],
            self.splits_ref,
            self.stable_archive,
        )

    def result(self, members: Members, signals: DeferredSignals) -> dict:
        """What the export task built for `members` (see tasks._build_export)."""
        self.start(members)
        while not ray.wait([self.ref], timeout=0.25)[0]:
            signals.check()  # no ray.cancel; ray.shutdown stops the task (sweep.Execution)
        return ray.get(self.ref)


def exported_model(results: RunResults, members: Members, predictions, splits: data.Splits) -> dict:
    """The exported model as a leaderboard row: the best variant's own, or the
    ensemble's (its test accuracy from the exported SavedModel's predictions; fills
    results.ensemble["test_accuracy"])."""
    by_name = {r.name: r for r in results.variants}
    if len(members) == 1:
        r = by_name[members[0][0]]
        return {
            "name": r.name,
            "val_accuracy": r.val_accuracy,
            "test_accuracy": r.test_accuracy,
            "config": r.config,
        }
    selection = results.ensemble
    selection["test_accuracy"] = float((predictions == splits.y_test).mean())
    return {
        "name": "ensemble",
        "val_accuracy": selection["val_accuracy"],
        "test_accuracy": selection["test_accuracy"],
        "config": {
            "name": "ensemble-" + "+".join(m for m, _ in members),
            "members": [{"weight": w, **by_name[m].config} for m, w in members],
        },
    }


def teacher_record(results: RunResults, exported: dict) -> dict | None:
    """fmnist.json's `teacher`: the kind, config and accuracies of the teacher the
    exported model (or an ensemble's first distilled member) learnt from; None when it
    was not distilled."""
    configs = exported["config"].get("members") or [exported["config"]]
    name = next((c["teacher"] for c in configs if c.get("teacher")), None)
    teacher = results.variant(name) if name else None
    if teacher is None:
        return None
    return {
        "kind": "conv",
        "name": teacher.name,
        "config": teacher.config,
        "val_accuracy": teacher.val_accuracy,
        "test_accuracy": teacher.test_accuracy,
    }


def export_metadata(
    exported: dict,
    run_id: str,
    splits: data.Splits,
    libraries: dict,
    calibrated: dict | None = None,
    teacher: dict | None = None,
) -> export.ExportMetadata:
    """What travels beside the SavedModel (fmnist.json). `variant` is the exported
    variant's config; for an ensemble, its name and `members` (each a config with its
    `weight`). `calibrated`: the export task's "calibration" (temperature, ECE before and
    after) and "uncertain" (the flag's thresholds, chosen on validation, and its figures)
    records (fmnist/training/calibrate.py), kept under those keys. `teacher`: the
    distillation teacher's record (teacher_record)."""
    return export.ExportMetadata(
        class_names=list(data.CLASS_NAMES),
        run_id=run_id,
        variant=exported["config"],
        val_accuracy=exported["val_accuracy"],
        test_accuracy=exported["test_accuracy"],
        dataset_sha256=splits.sha256,
        input=export.ExportInput(),
        output=export.ExportOutput(),
        libraries=libraries,
        exported_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        teacher=teacher,
        **(calibrated or {}),
    )


def describe_export(pred, splits: data.Splits, version, out_dir) -> dict:
    """Test accuracy, confusion matrix (and its PNG in `out_dir`) and per-class accuracy
    of the exported SavedModel's test-set predictions."""
    matrix, per_class = report.confusion(splits.y_test, pred)
    accuracy = float((pred == splits.y_test).mean())
    report.plot_confusion(
        matrix,
        data.CLASS_NAMES,
        f"exported model {version}: test accuracy {100 * accuracy:.2f}%",
        out_dir / "confusion_matrix.png",
    )
    return {
        "accuracy": accuracy,
        "confusion_matrix": matrix.tolist(),
        "per_class_accuracy": dict(zip(data.CLASS_NAMES, map(float, per_class))),
    }
