"""Distillation in the sweep ([distill]): the table's checks, the plan's order, a dense
student trained on a convolutional teacher's soft targets, and `train` end to end on
tiny models (the teacher never exported, recorded in fmnist.json, kept by --resume)."""

import json
import os

import numpy as np
import pytest

from fmnist.core import data, export
from fmnist.training import fit, schedule, variants

from conftest import cli, run_cli

SWEEP = """
[defaults]
epochs = 2
batch_size = 64

[[variant]]
name = "student"
hidden = [32]

[distill]
temperature = 2.0
alpha = 0.5

[distill.teacher]
kind = "conv"
conv = [4, 8]
hidden = [16]
epochs = 2
batch_size = 64
"""
TEACHER = SWEEP[SWEEP.index("[distill.teacher]") :]


def test_the_teacher_comes_first_and_the_students_name_it():
    text = SWEEP + '\n[[variant]]\nname = "alone"\nhidden = [8]\n'
    text = text.replace("alpha = 0.5", 'alpha = 0.5\nstudents = ["student"]')
    teacher, student, alone = variants.parse(text)
    assert (teacher.name, teacher.conv, teacher.label_smoothing) == ("teacher", (4, 8), 0.0)
    assert teacher.is_teacher and not student.is_teacher
    assert (student.teacher, student.distill_temperature, student.distill_alpha) == (
        "teacher",
        2.0,
        0.5,
    )
    assert alone.teacher is None
    # The saved config round-trips (a resumed run rebuilds its variants from it).
    assert variants.from_dict(teacher.to_dict(), "x") == teacher
    plan = schedule.make_plan(
        [student, alone, teacher],
        set(),
        workers=4,
        cpus_per_worker=None,
        gpus_per_worker=None,
        threads_per_worker=None,
        cluster={"CPU": 2.0},
        node_cpus=[2.0],
        train_size=1000,
    )
    # The teacher first, the variant that needs none next (it can use a core while the
    # teacher trains), the student last (it waits for the teacher).
    assert [v.name for v in plan.todo] == ["teacher", "alone", "student"]
    # The student's estimate holds the teacher's forward pass on every batch.
    assert plan.estimates["student"] > schedule.estimate_seconds(student, 1000)


@pytest.mark.parametrize(
    "change, named",
    [
        (("alpha = 0.5", "alpha = 1.5"), "'alpha'"),
        (("alpha = 0.5", "alpha = 0.5\nmomentum = 1"), "unknown key 'momentum'"),
        (('kind = "conv"', 'kind = "mlp"'), "'kind'"),
        (("hidden = [16]", "hidden = [16]\nlabel_smoothing = 0.1"), "'label_smoothing'"),
        (("alpha = 0.5", 'alpha = 0.5\nstudents = ["nobody"]'), "'students'"),
        ((TEACHER, 'teacher = "ensemble"\n'), "'teacher'"),
        (('name = "student"', 'name = "student"\nconv = [8]'), "unknown key 'conv'"),
    ],
)
def test_a_bad_distill_table_is_one_line_and_exit_2(change, named, sweep_file, monkeypatch, capsys):
    old, new = change
    assert old in SWEEP
    path = sweep_file(SWEEP.replace(old, new, 1))
    code, out, err = cli(["train", "--sweep", path, "--dry-run"], monkeypatch, capsys)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and named in err and str(path) in err, err


@pytest.mark.slow
def test_the_student_learns_the_teachers_soft_targets():
    """With alpha = 1 the labels carry no weight: a student taught by a teacher that
    says 'Bag' for everything says 'Bag' for everything, whatever the labels say."""
    teacher, student = variants.parse(
        SWEEP.replace("alpha = 0.5", "alpha = 1.0").replace("epochs = 2\n", "epochs = 1\n", 1)
    )
    from fmnist.training import model

    net = model.build(teacher)
    weights = [np.zeros_like(w) for w in net.get_weights()]
    weights[-1][data.CLASS_NAMES.index("Bag")] = 5.0  # the logits' bias
    splits = data.load(limit=1200, val_size=200)
    fitted = fit.fit_variant(student, splits, teacher=(teacher, weights))
    # The validation probabilities are the student's: nearly all on Bag.
    said = fitted.val_probabilities.argmax(axis=1)
    assert (said == data.CLASS_NAMES.index("Bag")).mean() > 0.95
    assert fitted.result.val_accuracy < 0.2  # the labels were not learnt


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, ray_cluster):
    """One tiny `train` with a conv teacher and a dense student, then its --resume with
    the student's result taken back (as an interrupted run leaves it); both on the
    session's Ray."""
    tmp = tmp_path_factory.mktemp("distill")
    (tmp / "sweep.toml").write_text(SWEEP)
    args = ["--workers", "2", "--export-dir", tmp / "models", "--address", ray_cluster.gcs]
    first = run_cli(
        "train", "--sweep", tmp / "sweep.toml", "--limit", "1200", "--runs-dir", tmp / "run", *args
    )
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp / "run"
    record = json.loads((run / "results.json").read_text())
    before = {
        "teacher": next(r for r in record["variants"] if r["name"] == "teacher"),
        "mtime": os.stat(run / "weights" / "teacher.npz").st_mtime_ns,
        "results": record,
    }
    for r in record["variants"]:
        if r["name"] == "student":
            r.update(status="interrupted", error="interrupted by SIGINT")
    record["interrupted"] = "SIGINT"
    (run / "results.json").write_text(json.dumps(record))
    (run / "weights" / "student.npz").unlink()
    second = run_cli("train", "--resume", run, *args)
    return tmp, first, before, second


@pytest.mark.slow
def test_the_export_is_the_dense_student_and_names_its_teacher(distilled):
    import tensorflow as tf

    tmp, first, before, _ = distilled
    results = before["results"]
    assert results["best"] == "student" and "exported: student" in first.stdout
    version = tmp / "models" / "1"
    meta = json.loads((version / export.METADATA).read_text())
    teacher = before["teacher"]
    assert meta["teacher"] == {
        "kind": "conv",
        "name": "teacher",
        "config": teacher["config"],
        "val_accuracy": teacher["val_accuracy"],
        "test_accuracy": teacher["test_accuracy"],
    }
    assert meta["variant"]["teacher"] == "teacher" and meta["variant"]["conv"] == []
    card = (version / "card.md").read_text()
    assert "Distilled from `teacher`, a conv teacher" in card and "| teacher (teacher) |" in card
    # Only dense kernels ship: no 4-D (convolution) variable in the SavedModel.
    loaded = tf.saved_model.load(str(version))
    shapes = [tuple(v.shape) for v in loaded.variables]
    assert shapes and all(len(s) <= 2 for s in shapes), shapes
    assert (784, 32) in shapes


@pytest.mark.slow
def test_resume_keeps_the_finished_teacher(distilled):
    tmp, _, before, second = distilled
    assert second.returncode == 0, second.stderr[-3000:]
    run = tmp / "run"
    assert "1 already finished" in second.stdout
    assert os.stat(run / "weights" / "teacher.npz").st_mtime_ns == before["mtime"]
    record = json.loads((run / "results.json").read_text())
    rows = {r["name"]: r for r in record["variants"]}
    assert rows["teacher"] == before["teacher"]  # not trained again
    assert record["order"] == ["student"] and rows["student"]["status"] == "ok"
    meta = json.loads((tmp / "models" / "2" / export.METADATA).read_text())
    assert meta["teacher"]["test_accuracy"] == before["teacher"]["test_accuracy"]


def test_the_distillation_term_is_hintons():
    """alpha = 1: the training loss is T^2 KL(softmax(t / T) || softmax(s / T)), averaged
    over the batch, computed here in NumPy from the two nets' logits."""
    from fmnist.training import model

    teacher, student = variants.parse(SWEEP.replace("alpha = 0.5", "alpha = 1.0"))
    t_net, s_net = model.build(teacher, jit=False), model.build(student, jit=False)
    s_net.distil_from(t_net, 2.0, 1.0)
    x = data.load(limit=1200, val_size=200).x_val[:16]
    t, s = t_net(x).numpy().astype("float64"), s_net(x).numpy().astype("float64")

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(t / 2.0), softmax(s / 2.0)
    expected = 4.0 * np.mean(np.sum(p * np.log(p / q), axis=1))
    s_net.compile(loss=model.SmoothedSparseCE())
    y = np.zeros(16, dtype="int32")
    got = float(s_net.compute_loss(x, y, s_net(x), training=True))
    assert got == pytest.approx(expected, rel=1e-4) and got > 0
    # Evaluation is the student's own loss on the labels.
    own = float(s_net.compute_loss(x, y, s_net(x), training=False))
    assert own == pytest.approx(float(model.SmoothedSparseCE()(y, s_net(x))), rel=1e-5)
