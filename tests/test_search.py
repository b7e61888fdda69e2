"""More search per night: successive halving ([search] scheduler = "asha",
fmnist/training/asha.py) and the persistent study ([[study]], fmnist/training/study.py).

The ASHA decisions are checked as pure bookkeeping; bad settings through the real CLI
(one line, exit 2, before anything starts); the study on a real journal file and in a
bucket (moto's S3 server, tests/s3server.py): two processes appending at once, a store
that ignores conditional writes refused; one real interrupted-and-resumed `train` run
with both, and one tiny `train` whose runs directory and study are in a bucket."""

import asyncio
import json
import multiprocessing
import signal

import optuna
import pytest

from fmnist.core import data
from fmnist.ops.results import VariantResult
from fmnist.training import fit, model, study, tasks, variants
from fmnist.training.asha import Halving, Ladder

from conftest import cli, clip, run_cli, start, wait_for


def test_rungs_grow_by_the_reduction_factor_up_to_the_last_epoch():
    assert Halving(3, 1, 9).rungs() == [1, 3, 9]
    assert Halving(2, 1, 10).rungs() == [1, 2, 4, 8, 10]
    assert Halving(4, 2, 5).rungs() == [2, 5]


def test_a_free_slot_never_waits_and_the_top_third_is_promoted():
    ladder = Ladder([1, 3, 9], 3, [f"v{i}" for i in range(9)])
    accuracy = {"v0": 0.5, "v1": 0.9, "v2": 0.4, "v3": 0.8, "v4": 0.3, "v5": 0.95}
    # Two slots start two new variants: nothing has reached a rung yet.
    assert ladder.next() == ("v0", 0) and ladder.next() == ("v1", 0)
    ladder.record("v0", 0, accuracy["v0"])
    # One result at rung 0: the top third of one is nobody; the slot starts a new one.
    assert ladder.next() == ("v2", 0)
    ladder.record("v1", 0, accuracy["v1"])
    ladder.record("v2", 0, accuracy["v2"])
    # Three at rung 0: the best (v1) goes on, to 3 epochs.
    assert ladder.next() == ("v1", 1)
    assert ladder.next() == ("v3", 0)  # no other promotion: a new variant
    ladder.record("v3", 0, accuracy["v3"])
    assert ladder.next() == ("v4", 0)
    ladder.record("v4", 0, accuracy["v4"])
    assert ladder.next() == ("v5", 0)  # top 5 // 3 = 1: v1, already promoted
    ladder.record("v5", 0, accuracy["v5"])
    # Six at rung 0: the top two are v5 and v1; v5 is promoted (v1 already was).
    assert ladder.next() == ("v5", 1)
    ladder.record("v1", 1, 0.91)
    ladder.record("v5", 1, 0.97)
    assert ladder.next() == ("v6", 0)  # rung 1 holds two: 2 // 3 = 0 promoted
    assert sorted(ladder.stopped()) == ["v0", "v1", "v2", "v3", "v4", "v5"]


def test_promotions_come_from_the_highest_rung_first_and_failures_never_rank():
    ladder = Ladder([1, 2, 4], 2, ["a", "b", "c", "d"])
    assert [ladder.next() for _ in range(4)] == [("a", 0), ("b", 0), ("c", 0), ("d", 0)]
    ladder.record("a", 0, 0.6)
    ladder.record("b", 0, 0.7)
    ladder.drop("b")  # failed after its first rung: out of the ranking
    ladder.record("c", 0, 0.1)
    assert ladder.next() == ("a", 1)  # the top half of a and c (b would have led)
    ladder.record("a", 1, 0.8)
    ladder.record("d", 0, 0.2)
    # Rung 1 holds one (1 // 2 = 0); rung 0's top one (a) already went on.
    assert ladder.promotion() is None
    assert ladder.next() is None  # nothing new, nothing to promote: the slot stays free


def test_the_highest_rung_promotes_first():
    ladder = Ladder([1, 2, 4], 2, list("abcdef"))
    assert [ladder.next()[0] for _ in range(6)] == list("abcdef")
    for name, acc in zip("abcd", (0.9, 0.8, 0.7, 0.6)):
        ladder.record(name, 0, acc)
    assert ladder.next() == ("a", 1) and ladder.next() == ("b", 1)  # top 2 of 4
    ladder.record("a", 1, 0.95)
    ladder.record("b", 1, 0.85)
    ladder.record("e", 0, 0.99)
    # Both a (top of rung 1) and e (top of rung 0) may go on: the higher rung first.
    assert ladder.next() == ("a", 2) and ladder.next() == ("e", 1)


def test_a_resumed_ladder_keeps_its_decisions_and_resumes_at_the_rung():
    ladder = Ladder([1, 3, 9], 3, ["a", "b", "c", "d"])
    ladder.restore("a", [0.9], 1)  # promoted to rung 1, interrupted there
    ladder.restore("b", [0.5], 0)  # stopped at rung 0
    ladder.restore("c", [0.4], 0)
    assert ladder.next() == ("a", 1)  # the lost task first, at its rung
    assert ladder.next() == ("d", 0)
    assert ladder.target == {"a": 1, "b": 0, "c": 0, "d": 0}


def test_a_task_at_a_rung_waits_for_its_answer_and_a_retry_gets_the_same():
    async def scene():
        desk = tasks.RungDesk()
        result = VariantResult(name="a", config={}, status="stopped", val_accuracy=0.8)
        asked = asyncio.create_task(desk.reached("a", 1, result))
        await asyncio.sleep(0)
        assert not asked.done()  # the task waits for the driver
        assert await desk.reports() == [("a", 1, result)]
        assert await desk.reports() == []  # collected once
        await desk.answer("a", 1, 3)
        assert await asked == 3  # go on to epoch 3 in the same process
        # A retried task reaching the same rung: the same answer, no second report.
        assert await desk.reached("a", 1, result) == 3 and await desk.reports() == []

    asyncio.run(scene())


@pytest.mark.slow
def test_a_promotion_at_the_rung_goes_on_training_the_same_model(tmp_path, monkeypatch):
    splits = data.load(limit=3000, val_size=300)
    v = variants.Variant("p", (16,), epochs=3, batch_size=100)
    built = []
    monkeypatch.setattr(
        model, "build", lambda *a, build=model.build, **k: built.append(1) or build(*a, **k)
    )
    asked = []

    def go_on(until, result):
        asked.append((until, result.status, result.epochs_run, result.resumed_from_epoch))
        return {1: 2, 2: 3}[until]  # promoted at both rungs

    fitted = fit.fit_variant(v, splits, checkpoint_dir=str(tmp_path), until_epoch=1, go_on=go_on)
    assert asked == [(1, "stopped", 1, 0), (2, "stopped", 2, 1)]
    result = fitted.result
    assert result.status == "ok" and fitted.weights is not None
    # One model, one attempt: the promotions trained on in this process; each stretch
    # counts its own epochs.
    assert built == [1] and result.attempts == 1
    assert result.epochs_run == 3 and result.resumed_from_epoch == 2
    assert len(result.history["val_accuracy"]) == 3 and len(result.epoch_seconds) == 1
    assert not (tmp_path / "backup").exists()  # the last rung's end cleans it


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '[search]\nscheduler = "asha"\nmin_epochs = 5\nmax_epochs = 3\n',
            "[search]: key 'min_epochs' (5) must be below max_epochs (3)",
        ),
        (
            '[search]\nscheduler = "asha"\nreduction_factor = 1\n',
            "[search]: key 'reduction_factor'",
        ),
        ('[search]\nscheduler = "hyperband"\n', "[search]: key 'scheduler': one of none, asha"),
        ('[search]\nscheduler = "asha"\nrung = 2\n', "[search]: unknown key 'rung'"),
        ("[search]\nmin_epochs = 2\n", "[search]: key 'min_epochs' has no effect without"),
        (
            '[search]\nscheduler = "asha"\n[defaults]\nearly_stopping = 2\n',
            "key 'early_stopping' cannot be used with",
        ),
        (
            '[search]\nscheduler = "asha"\n[distill]\n[distill.teacher]\nkind = "conv"\n'
            "conv = [8]\nhidden = [16]\n",
            '[distill] cannot be used with scheduler = "asha"',
        ),
        (
            '[[study]]\nname = "s"\nsamples = 2\nsampler = "grid"\n'
            "learning_rate = {loguniform = [1e-4, 1e-2]}\n",
            "study 's': key 'sampler': one of tpe, random; got 'grid'",
        ),
        (
            '[[study]]\nname = "s"\nsamples = 2\nsmaples = 3\nhidden = [8]\n'
            "learning_rate = {loguniform = [1e-4, 1e-2]}\n",
            "unknown key 'smaples'",
        ),
    ],
)
def test_settings_that_make_no_sense_are_one_line_and_exit_2(
    tmp_path, sweep_file, monkeypatch, capsys, text, expected
):
    monkeypatch.chdir(tmp_path)
    sweep = sweep_file(text + '[[variant]]\nname = "v"\nhidden = [8]\nepochs = 4\n')
    code, out, err = cli(["train", "--sweep", sweep], monkeypatch, capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.toml"]  # nothing started


def test_epochs_override_stands_for_the_last_rung(sweep_file):
    text = '[search]\nscheduler = "asha"\nmin_epochs = 2\n[[variant]]\nname = "v"\nhidden = [8]\n'
    chosen = variants.parse(text)
    assert variants.halving(text, chosen, epochs=6).rungs() == [2, 6]
    with pytest.raises(variants.SweepError, match="'min_epochs' \\(2\\) must be below"):
        variants.halving(text, chosen, epochs=2)


SPACE = {
    "name": "s",
    "samples": 3,
    "startup_trials": 3,
    "hidden": {"choice": [[8], [16, 8]]},
    "learning_rate": {"loguniform": [1e-4, 1e-2]},
    "batch_size": 64,
}


@pytest.fixture(params=["disk", "bucket"])
def runs(request, tmp_path):
    """Where the runs (and so the study) live: a folder, or a bucket's prefix."""
    if request.param == "disk":
        return tmp_path / "runs"
    from fmnist.core import storage

    return storage.location(request.getfixturevalue("bucket") + "/runs", "--runs-dir")


def test_the_study_carries_each_run_to_the_next(runs):
    first = study.Asker(runs / "night1")
    asked = first(SPACE)
    assert [n for n, _ in asked] == list(first.trials) and len(asked) == 3
    for _, config in asked:  # the space's values, the fixed keys as given
        assert config["hidden"] in ([8], [16, 8]) and config["batch_size"] == 64
        assert 1e-4 <= config["learning_rate"] <= 1e-2
    results = [
        VariantResult(name=asked[0][0], config={}, status="ok", val_accuracy=0.8),
        VariantResult(
            name=asked[1][0],
            config={},
            status="stopped",
            val_accuracy=0.5,
            rung_accuracies=[0.4, 0.5],
        ),
        VariantResult(name=asked[2][0], config={}, status="failed", error="boom"),
    ]
    told = study.tell(runs / "night1", first.trials, results, [1, 3, 9])
    assert told == [n for n, _ in asked]

    study.JOURNALS.clear()  # the next night is a new process: it reads the journal anew
    second = study.Asker(runs / "night2")
    names = [n for n, _ in second(SPACE)]
    assert [t["number"] for t in second.trials.values()] == [3, 4, 5]
    assert names[0].startswith("s003-")
    journal = study.location(runs / "night2", "s")
    assert str(journal) == str(runs / ".studies" / "s.journal")
    study.JOURNALS.clear()
    loaded = optuna.load_study(study_name="s", storage=study.journal(journal))
    states = [t.state.name for t in loaded.trials]
    assert states == ["COMPLETE", "PRUNED", "FAIL", "RUNNING", "RUNNING", "RUNNING"]
    assert loaded.trials[0].value == pytest.approx(0.8)
    assert loaded.trials[1].intermediate_values == {1: 0.4, 3: 0.5}


def test_a_study_journal_on_disk_is_a_file_and_in_a_bucket_one_object_per_entry(runs):
    asker = study.Asker(runs / "night1")
    asker({**SPACE, "samples": 1})
    journal = study.location(runs / "night1", "s")
    if journal.is_file():  # on disk: Optuna's own file, readable by Optuna's tools
        backend = optuna.storages.journal.JournalFileBackend(str(journal))
        assert len(list(backend.read_logs(0))) >= 3
    else:
        names = sorted(p.name for p in journal.iterdir())
        assert len(names) >= 3 and names == [f"{i:010d}" for i in range(len(names))]
        assert json.loads((journal / names[0]).read_text())["op_code"] == 0  # CREATE_STUDY


def _append_at_once(uri: str, who: str, count: int, barrier, out) -> None:
    """One process's appends to the bucket journal at `uri`, started with the others."""
    from fmnist.core import storage
    from fmnist.training.bucket_journal import BucketJournal

    journal = BucketJournal(storage.location(uri, "--runs-dir"))
    barrier.wait()
    for i in range(count):
        journal.append_logs([{"who": who, "i": i}])
    out.put((who, journal.conflicts))


def _ask_and_tell_at_once(uri: str, night: str, barrier, out) -> None:
    """One night's asks and tells on the bucket study, started with the other night's."""
    from fmnist.core import storage
    from fmnist.ops.results import VariantResult
    from fmnist.training import study

    runs = storage.location(uri, "--runs-dir") / night
    asker = study.Asker(runs)
    barrier.wait()
    asked = asker({**SPACE, "samples": 4})
    results = [
        VariantResult(name=n, config={}, status="ok", val_accuracy=0.5 + t["number"] / 100)
        for n, t in asker.trials.items()
    ]
    study.tell(runs, asker.trials, results, None)
    out.put((night, [n for n, _ in asked], [t["number"] for t in asker.trials.values()]))


def _at_once(target, args: list[tuple]) -> list:
    """Run `target(*a, barrier, queue)` in one spawned process per `a`, released
    together by a barrier; their answers."""
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(len(args)), context.Queue()
    procs = [context.Process(target=target, args=(*a, barrier, out)) for a in args]
    for p in procs:
        p.start()
    answers = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return answers


def test_two_processes_appending_to_a_bucket_journal_at_once_lose_nothing(bucket):
    from fmnist.core import storage
    from fmnist.training.bucket_journal import BucketJournal

    uri = f"{bucket}/runs/.studies/race.journal"
    answers = _at_once(_append_at_once, [(uri, "a", 30), (uri, "b", 30)])
    logs = BucketJournal(storage.location(uri, "--runs-dir")).read_logs(0)
    assert len(logs) == 60
    for who in "ab":  # every entry once, each writer's in its own order
        assert [e["i"] for e in logs if e["who"] == who] == list(range(30))
    # The race was run: some appends found their number taken and went on after it.
    assert sum(conflicts for _, conflicts in answers) > 0


def test_two_nights_asking_one_bucket_study_at_once_get_distinct_trials(bucket):
    from fmnist.core import storage

    runs = f"{bucket}/runs"
    answers = _at_once(_ask_and_tell_at_once, [(runs, "night1"), (runs, "night2")])
    numbers = sorted(n for _, _, got in answers for n in got)
    assert numbers == list(range(8))  # no trial lost, none asked twice
    names = [name for _, got, _ in answers for name in got]
    assert len(set(names)) == 8
    journal = study.location(storage.location(runs, "--runs-dir") / "night1", "s")
    loaded = optuna.load_study(study_name="s", storage=study.journal(journal))
    assert [t.state.name for t in loaded.trials] == ["COMPLETE"] * 8
    assert [t.value for t in loaded.trials] == pytest.approx([0.5 + n / 100 for n in range(8)])


def test_a_bucket_study_on_a_store_that_ignores_conditional_writes_is_refused(
    s3_server, bucket, sweep_file, tmp_path
):
    from s3server import IgnoringConditions

    sweep = sweep_file(
        '[[study]]\nname = "s"\nsamples = 2\nhidden = [8]\n'
        "learning_rate = {loguniform = [1e-4, 1e-2]}\n"
    )
    lax = IgnoringConditions(s3_server.url)
    try:
        r = run_cli(
            "train",
            "--sweep",
            sweep,
            "--runs-dir",
            f"{bucket}/runs/night1",
            cwd=tmp_path,
            env={"AWS_ENDPOINT_URL": lax.url},
        )
    finally:
        lax.stop()
    assert r.returncode == 2, clip(r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == (
        f"fmnist-job: error: --runs-dir {bucket}/runs/night1: the store ignored S3's "
        f"conditional write (If-None-Match), which a [[study]] in a bucket needs; use a "
        f"store that honours it (AWS S3, MinIO, R2) or a local --runs-dir"
    )
    # Nothing asked, nothing left: the probe object is gone and no study was made.
    from fmnist.core import storage

    assert not storage.location(bucket, "--x").fs.find(bucket.removeprefix("s3://"))


def test_dry_run_does_not_ask_the_study(tmp_path, sweep_file, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sweep = sweep_file(
        '[[study]]\nname = "s"\nsamples = 2\nhidden = [8]\n'
        "learning_rate = {loguniform = [1e-4, 1e-2]}\n"
    )
    code, out, err = cli(["train", "--sweep", sweep, "--dry-run"], monkeypatch, capsys)
    assert code == 0 and "2 variants in" in out, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.toml"]  # no study made


SWEEP = """
[defaults]
batch_size = 128
epochs = 4

[search]
scheduler = "asha"
reduction_factor = 2
min_epochs = 1

[[study]]
name = "s"
samples = 4
startup_trials = 4
hidden = {choice = [[16], [32]]}
learning_rate = {loguniform = [1e-4, 3e-3]}
"""


def _variants(run_dir) -> dict:
    try:
        saved = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    return {v["name"]: v for v in saved.get("variants", [])}


@pytest.mark.slow
def test_halving_interrupted_and_resumed_keeps_its_rungs_and_tells_the_study(
    tmp_path, sweep_file, ray_cluster
):
    run_dir, models = tmp_path / "runs" / "night1", tmp_path / "models"
    options = ["--workers", "2", "--limit", "2000", "--runs-dir", run_dir, "--export-dir", models]
    proc = start("train", "--sweep", sweep_file(SWEEP), *options)
    # A decision made (a variant stopped at its first rung) and more going on: stop it.
    wait_for(
        lambda: sum(v["status"] == "stopped" for v in _variants(run_dir).values()) >= 1,
        proc,
        what="a variant stopped at a rung",
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, clip(err)
    before = _variants(run_dir)
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["settings"]["search"]["rungs"] == [1, 2, 4]
    assert len(saved["trials"]) == 4 and saved.get("told", []) == []  # not told yet

    # The resume on the session's Ray: what it continues is the run directory.
    resumed = run_cli(
        "train", "--resume", run_dir, "--export-dir", models, "--address", ray_cluster.gcs
    )
    assert resumed.returncode == 0, clip(resumed.stderr)
    after = _variants(run_dir)
    assert set(after) == set(saved["trials"])
    for name, v in after.items():
        assert v["status"] in ("ok", "stopped"), v
        # Each epoch once, and a variant ends at a rung.
        assert len(v["history"]["val_accuracy"]) == v["epochs_run"] in (1, 2, 4)
        assert len(v["rung_accuracies"]) == [1, 2, 4].index(v["epochs_run"]) + 1
        old = before.get(name)
        if old and old.get("rung_accuracies"):
            # Decisions and curves of the first run stand; no finished rung trained again.
            done = len(old["rung_accuracies"])
            assert v["rung_accuracies"][:done] == old["rung_accuracies"]
            assert (
                v["history"]["val_accuracy"][: old["epochs_run"]]
                == (old["history"]["val_accuracy"])
            )
            if v["epochs_run"] > old["epochs_run"]:
                assert v["resumed_from_epoch"] >= old["epochs_run"]
    assert sum(v["status"] == "ok" for v in after.values()) >= 1
    final = json.loads((run_dir / "results.json").read_text())
    assert final["best"] in after and after[final["best"]]["status"] == "ok"
    assert sorted(final["told"]) == sorted(saved["trials"])
    journal = study.location(run_dir, "s")
    loaded = optuna.load_study(
        study_name="s",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        ),
    )
    by_number = {t.number: t for t in loaded.trials}
    for name, trial in final["trials"].items():
        told = by_number[trial["number"]]
        expected = "COMPLETE" if after[name]["status"] == "ok" else "PRUNED"
        assert told.state.name == expected
        if expected == "PRUNED":
            assert list(told.intermediate_values.values()) == after[name]["rung_accuracies"]


@pytest.mark.slow
def test_a_train_run_in_a_bucket_asks_and_tells_the_study_beside_it(
    bucket, sweep_file, tmp_path, ray_cluster
):
    from fmnist.core import storage

    runs = f"{bucket}/runs/night1"
    sweep = sweep_file(
        '[[study]]\nname = "s"\nsamples = 2\nstartup_trials = 2\nbatch_size = 128\n'
        "hidden = {choice = [[16], [32]]}\nlearning_rate = {loguniform = [1e-4, 3e-3]}\n"
    )
    r = run_cli(
        "train", "--sweep", sweep, "--epochs", "1", "--workers", "2", "--limit", "1500",
        "--runs-dir", runs, "--export-dir", tmp_path / "models", "--address", ray_cluster.gcs,
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, clip(r.stderr)
    results = json.loads(storage.location(f"{runs}/results.json", "--x").read_text())
    assert sorted(results["told"]) == sorted(results["trials"]) and len(results["told"]) == 2
    journal = study.location(storage.location(runs, "--runs-dir"), "s")
    assert str(journal) == f"{bucket}/runs/.studies/s.journal"
    loaded = optuna.load_study(study_name="s", storage=study.journal(journal))
    accuracy = {v["name"]: v["val_accuracy"] for v in results["variants"]}
    for name, trial in results["trials"].items():
        told = loaded.trials[trial["number"]]
        assert told.state.name == "COMPLETE" and told.value == pytest.approx(accuracy[name])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "sweep.toml"]


def test_a_new_run_refused_before_training_fails_its_trials(
    tmp_path, sweep_file, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    sweep = sweep_file(
        '[[study]]\nname = "s"\nsamples = 2\nhidden = [8]\n'
        "learning_rate = {loguniform = [1e-4, 1e-2]}\n"
    )
    runs = tmp_path / "runs" / "night1"
    argv = ["train", "--sweep", sweep, "--runs-dir", runs, "--data-dir", tmp_path / "none"]
    code, _, err = cli(argv, monkeypatch, capsys)
    assert code == 2 and "not a directory; --data-dir" in err, err
    # The study was asked, and nothing will resume the run: its trials are not RUNNING.
    loaded = optuna.load_study(study_name="s", storage=study.journal(study.location(runs, "s")))
    assert [t.state.name for t in loaded.trials] == ["FAIL", "FAIL"]
    assert not (runs / "results.json").exists()
