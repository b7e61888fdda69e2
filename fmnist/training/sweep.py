"""Run a sweep: one Ray task per variant, at most --workers at once, then export.

Data flows one way: the CLI hands over a SweepJob; `run` loads the data while Ray starts,
plans the tasks (fmnist/training/schedule.py), trains (`Execution`), builds the export of
the variant with the best *validation* accuracy in one more task (this process never
imports TensorFlow; fmnist/training/exporter.py), publishes it behind the quality gate,
and returns the run's record (fmnist/ops/results.py), written to the run directory after
every change. The test set never chooses anything.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from fmnist.core import data, export, storage
from fmnist.core.errors import RunError
from fmnist.core.tables import count
from fmnist.ops import cards, gate, versions
from fmnist.ops.results import CalibrationRecord, RunResults, RunSettings, VariantResult
from fmnist.training import asha, exporter, fit, report, schedule
from fmnist.training import variants as variants_mod
from fmnist.training.execution import Execution
from fmnist.training.rundir import RunDir, read_resume
from fmnist.training.session import DeferredSignals, Interrupted, RaySession
from fmnist.training.variants import Variant


@dataclass
class SweepJob:
    """What to run: built by the CLI from its options, or by `resume` from a run."""

    variants: list[Variant]
    export_dir: Path
    runs_dir: Path
    sweep_file: Path | None = None
    workers: int = 4
    address: str | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    threads_per_worker: int | None = None
    data_dir: Path | None = None
    val_size: int = 5000
    limit: int | None = None
    ensemble_size: int = 1  # selection steps for an ensemble; 1: the single best
    gate_tolerance: float = gate.DEFAULT_TOLERANCE  # accuracy points
    finished: list[VariantResult] = field(default_factory=list)  # kept from a resumed run
    halving: asha.Halving | None = None  # [search] scheduler = "asha"
    # A resumed run's variants stopped at (or sent to) a rung: its decisions stand.
    earlier: list[VariantResult] = field(default_factory=list)
    trials: dict[str, dict] = field(default_factory=dict)  # [[study]]: variant -> trial
    told: list[str] = field(default_factory=list)  # the trials already told their result

    @classmethod
    def resume(cls, run_dir: Path, **options) -> SweepJob:
        """The job of an interrupted run in `run_dir`: its own sweep, data settings and
        finished variants; `options` are those a resume may set (--workers, --address,
        --export-dir, ...). Raises ResumeError or SweepError (one line)."""
        saved = read_resume(run_dir)
        where = f"{storage.as_location(run_dir) / 'results.json'}: sweep"
        settings = saved.settings
        search = settings.search or {}
        halving = (
            asha.Halving(**{k: search[k] for k in ("reduction_factor", "min_epochs", "max_epochs")})
            if search.get("scheduler") == "asha"
            else None
        )
        data_dir = options.pop("data_dir", None) or (
            Path(settings.data_dir) if settings.data_dir else None
        )
        return cls(
            variants=[variants_mod.from_dict(c, where) for c in saved.sweep],
            runs_dir=storage.as_location(run_dir),
            data_dir=data_dir,
            sweep_file=Path(saved.sweep_file) if saved.sweep_file else None,
            val_size=settings.val_size,
            limit=settings.limit,
            ensemble_size=settings.ensemble,
            finished=saved.finished(),
            halving=halving,
            earlier=[r for r in saved.variants if r.rung is not None and not r.ok],
            trials=saved.trials,
            told=saved.told,
            **options,
        )


def run(job: SweepJob) -> RunResults:
    """Train the job's variants, export the best and label it by the quality gate.

    Returns:
        The run's record, as written to results.json; `best` is None when every variant
        failed.

    Raises:
        DataError, ConnectError, VersionsError: before any training starts.
        Interrupted: on SIGINT or SIGTERM, after writing what is known.
    """
    clock = _Clock()
    console = report.make_console()
    versions.read_config(job.export_dir)  # a corrupt models.config fails now, not after training
    data.check_present(job.data_dir)  # a wrong --data-dir fails now, before Ray starts
    # The data loads (checksums, decompression: hashlib and zlib release the GIL) while
    # ray.init waits for Ray's processes to start.
    loading = concurrent.futures.ThreadPoolExecutor(1, "fmnist-data")
    splits_future = loading.submit(data.load, job.data_dir, val_size=job.val_size, limit=job.limit)
    loading.shutdown(wait=False)
    splits_future.add_done_callback(lambda _: clock.mark("data_loaded"))
    session = RaySession(job.address)
    try:
        session.open()
    except BaseException:
        splits_future.result()  # bad data is named first: it is the first thing to fix
        raise
    with session:
        clock.mark("ray_ready")
        splits = splits_future.result()
        run_dir = RunDir(job.runs_dir)
        if not storage.is_remote(run_dir.path):  # a bucket has no directories to make
            run_dir.path.mkdir(parents=True, exist_ok=True)
        try:
            with DeferredSignals() as signals:
                trained = _train(job, splits, run_dir, signals, console, clock)
                session.close()
                _plot_curves(trained.results, run_dir, console)
                session.join()
                clock.mark("ray_closed")
                signals.install()  # ray.shutdown took SIGTERM back (see DeferredSignals)
                return _publish(job, trained, splits, run_dir, signals, console, clock)
        except Interrupted as stop:
            stop.run_dir = run_dir.path  # for the resume hint
            raise


class _Clock:
    """Seconds from the start to each step (results.json's timeline): where the time
    outside training goes."""

    def __init__(self):
        self.started, self.started_at = time.monotonic(), fit.utc_now()
        self.timeline: dict[str, float] = {}

    def mark(self, step: str) -> None:
        self.timeline[step] = self.seconds()

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 2)


@dataclass
class _Trained:
    results: RunResults
    plan: schedule.Plan
    best: VariantResult | None
    members: exporter.Members = field(default_factory=list)
    built: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    note: str | None = None  # why an ensemble asked for is a single model


def _train(
    job: SweepJob,
    splits: data.Splits,
    run_dir: RunDir,
    signals: DeferredSignals,
    console,
    clock: _Clock,
) -> _Trained:
    """Plan on the cluster found, train every variant not yet finished, build the
    export of the winner (started early where a slot idles)."""
    finished = [r for r in job.finished if run_dir.has_weights(r.name)]
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cluster = ray.cluster_resources()
    plan = schedule.make_plan(
        job.variants,
        {r.name for r in finished},
        workers=job.workers,
        cpus_per_worker=job.cpus_per_worker,
        gpus_per_worker=job.gpus_per_worker,
        threads_per_worker=job.threads_per_worker,
        cluster=cluster,
        node_cpus=[n["Resources"].get("CPU", 0) for n in nodes],
        train_size=len(splits.y_train),
    )
    results = _new_record(job, splits, run_dir, plan, clock)
    clock.timeline = results.timeline  # pydantic copied it: later steps are marked there
    console.print(_first_line(job, run_dir, plan, len(finished), len(nodes)))
    splits_ref = ray.put(splits)  # once; every task reads the same shared-memory copy
    clock.mark("data_put")
    baseline = gate.gate_baseline(job.export_dir)  # what the winner must match
    early = exporter.EarlyExport(
        job.variants,
        run_dir,
        splits_ref,
        plan.cpus,
        baseline["archive"],
        on_start=lambda: clock.mark("export_started"),
    )

    def idle(done: list[VariantResult]) -> None:
        # A core is idle from now on: the plots' library loads there, not at the end.
        report.warm_up()
        # An ensemble's members are known only at the end: nothing to start early.
        best_so_far = exporter.best_of(done)
        if best_so_far and job.ensemble_size <= 1:
            early.start([(best_so_far.name, 1.0)])

    Execution(
        job.variants,
        job.workers,
        plan,
        results,
        finished,
        run_dir,
        splits_ref,
        signals,
        console,
        idle,
        job.halving,
        job.earlier,
    ).run()
    clock.mark("training_done")
    _tell_studies(job, results, run_dir)
    trained = _Trained(results, plan, exporter.best_of(results.variants), baseline=baseline)
    if trained.best:
        trained.members, results.ensemble, trained.note = exporter.choose_members(
            exporter.candidates(results.variants),
            trained.best,
            run_dir,
            splits.y_val,
            job.ensemble_size,
        )
        try:
            trained.built = early.result(trained.members, signals)
        except Interrupted as stop:  # every variant finished: a resume only exports
            results.interrupted = str(stop)
            run_dir.write(results)
            raise
        clock.mark("export_built")
    return trained


def _tell_studies(job: SweepJob, results: RunResults, run_dir: RunDir) -> None:
    """[[study]]: every result of the run told to its study, once."""
    untold = {k: v for k, v in results.trials.items() if k not in results.told}
    if not untold:
        return
    from fmnist.training import study

    rungs = job.halving.rungs() if job.halving else None
    results.told += study.tell(run_dir.path, untold, results.variants, rungs)
    run_dir.write(results)


def _new_record(
    job: SweepJob, splits: data.Splits, run_dir: RunDir, plan: schedule.Plan, clock: _Clock
) -> RunResults:
    """The run's record as it starts: settings, data, plan; variants come as they finish."""
    return RunResults(
        run_id=run_dir.run_id,
        started_at=clock.started_at,
        timeline=clock.timeline,
        sweep_file=str(job.sweep_file) if job.sweep_file else None,
        sweep=[v.to_dict() for v in job.variants],
        settings=RunSettings(
            val_size=job.val_size,
            limit=job.limit,
            ensemble=job.ensemble_size,
            data_dir=str(job.data_dir) if job.data_dir else None,
            search=(
                {
                    "scheduler": "asha",
                    **dataclasses.asdict(job.halving),
                    "rungs": job.halving.rungs(),
                }
                if job.halving
                else None
            ),
        ),
        **({"trials": job.trials, "told": job.told} if job.trials else {}),
        dataset_sha256=splits.sha256,
        address=job.address or "embedded",
        train_size=len(splits.y_train),
        val_size=len(splits.y_val),
        test_size=len(splits.y_test),
        cpus_per_worker=plan.cpus,
        gpus_per_worker=plan.gpus,
        threads_per_worker=plan.threads,
        slots=plan.slots,
        order=[v.name for v in plan.todo],
    )


def _first_line(
    job: SweepJob, run_dir: RunDir, plan: schedule.Plan, finished: int, nodes: int
) -> str:
    """'run <id>: 4 variants from jobs/default.toml, 2 (of --workers 4) at once, ...'."""
    return (
        f"run {run_dir.run_id}: {count(len(job.variants), 'variant')}"
        + (f" from {job.sweep_file}" if job.sweep_file else "")
        + (f" ({finished} already finished, resuming)" if finished else "")
        + f", {plan.at_once} at once, {plan.cpus:g} CPU + {plan.gpus:g} GPU "
        f"({count(plan.threads, 'TensorFlow thread')}) each, "
        f"on {count(nodes, 'Ray node')}; run dir {run_dir.path}"
    )


def _plot_curves(results: RunResults, run_dir: RunDir, console) -> None:
    # A plot that cannot be written costs a warning, never the run.
    try:
        report.plot_curves(results.variants, run_dir.path / "val_accuracy.png")
    except OSError as e:
        console.print(
            f"[yellow]warning:[/] {run_dir.path / 'val_accuracy.png'} not written: {e}",
            highlight=False,
        )


def _publish(
    job: SweepJob,
    trained: _Trained,
    splits: data.Splits,
    run_dir: RunDir,
    signals: DeferredSignals,
    console,
    clock: _Clock,
) -> RunResults:
    """Publish the export, label it by the gate, write the record and print the end.

    Our signal handlers stay until the end, so no signal is dropped: one that came after
    the export task's last check stops the run here, before anything is published; one
    that comes while publishing (a rename: the version appears whole or not at all) is
    reported once results.json is complete."""
    results, best, built = trained.results, trained.best, trained.built
    if signals.pending:
        results.interrupted = str(Interrupted(signals.pending))
        run_dir.write(results)
        signals.check()
    results.best = best.name if best else None
    path = exported = None
    if best:
        exported = exporter.exported_model(results, trained.members, built["predictions"], splits)
        calibrated = {k: built[k] for k in ("calibration", "uncertain")}
        metadata = exporter.export_metadata(
            exported,
            run_dir.run_id,
            splits,
            built["libraries"],
            calibrated,
            exporter.teacher_record(results, exported),
        )
        path = _publish_or_keep(
            lambda staging: export.unpack(built["archive"], staging),
            metadata,
            job.export_dir,
            run_dir,
        )
        clock.mark("published")
        results.export = str(path)
        results.calibration = CalibrationRecord.model_validate(calibrated)
        results.exported_model_test = exporter.describe_export(
            built["predictions"], splits, path, run_dir.path
        )
        results.gate = gate.gate(
            job.export_dir,
            int(path.name),
            built,
            trained.baseline,
            job.gate_tolerance,
            run_dir.run_id,
        )
        _write_card(path, metadata, results, run_dir, console)
    clock.mark("export_written")
    # Everything but the wait for Ray's processes to exit (overlapped with the above).
    results.wall_seconds = clock.seconds()
    trained_now = [
        r.train_seconds
        for r in results.variants
        if r.name in results.order and r.train_seconds is not None
    ]
    for key, value in schedule.efficiency(
        trained_now,
        results.wall_seconds,
        schedule.cpus_used(len(trained.plan.todo), trained.plan.slots, trained.plan.cpus),
    ).items():
        setattr(results, key, value)
    run_dir.write(results)
    if trained.note:
        console.print(f"ensemble: {trained.note}", highlight=False)
    _print_end(results, exported, path, run_dir, console)
    if signals.pending:
        raise Interrupted(signals.pending, run_dir.path, published=path)
    return results


def _write_card(path: Path, metadata, results: RunResults, run_dir: RunDir, console) -> None:
    # The version's card (fmnist/ops/cards.py), once the gate has decided: a card that
    # cannot be written costs a warning, never the published version.
    try:
        cards.write(path, metadata, results, run_dir.path)
    except Exception as e:  # noqa: BLE001 (a disk's or a bucket's errors: storage.explain)
        console.print(
            f"[yellow]warning:[/] {path / cards.CARD} not written: "
            f"{storage.explain(e, storage.bucket_of(path))}",
            highlight=False,
        )


def _publish_or_keep(write, metadata, base, run_dir: RunDir):
    """export.publish, and when a bucket fails midway (the network, the credentials),
    the model kept in the run directory rather than lost with the hour that made it.

    Raises:
        RunError: the upload failed; the message says where the model is.
    """
    try:
        return export.publish(write, metadata, base)
    except Exception as e:  # noqa: BLE001 (botocore's errors are many; storage.explain names them)
        if not storage.is_remote(base):
            raise
        keep = run_dir.path if not storage.is_remote(run_dir.path) else Path(run_dir.run_id)
        kept = export.publish(write, metadata, keep / "unpublished")
        raise RunError(
            f"--export-dir {base}: publishing failed ({storage.explain(e, storage.bucket_of(base))}); "
            f"the model is kept in {kept}"
        ) from None


def _print_end(
    results: RunResults, exported: dict | None, path: Path | None, run_dir: RunDir, console
) -> None:
    console.print(report.leaderboard(results.variants, results.best, results.ensemble))
    if not exported:
        console.print(f"[red]every variant failed[/]; details in {run_dir.results}")
        return
    console.print(
        f"exported: [bold]{exported['config']['name']}[/] val "
        f"{100 * exported['val_accuracy']:.2f}% test "
        f"{100 * exported['test_accuracy']:.2f}% -> {path}"
    )
    # One line, however long: a log line to grep for (rich would wrap it at 80 columns).
    console.print(gate.gate_line(results.gate), highlight=False, markup=False, soft_wrap=True)
    per_class = results.exported_model_test["per_class_accuracy"]
    console.print(
        "exported model, test accuracy per class: "
        + ", ".join(f"{name} {100 * acc:.1f}%" for name, acc in per_class.items())
    )
    console.print(f"results: {run_dir.results}  ({wall_line(results)})")


def wall_line(results: RunResults) -> str:
    """'61.8s wall, 1.21x the training floor of 51.1s (2 CPUs)': the run's last figure."""
    text = f"{results.wall_seconds:.1f}s wall"
    if results.floor_seconds:
        text += (
            f", {results.wall_over_floor:.2f}x the training floor of "
            f"{results.floor_seconds:.1f}s ({count(results.cpus_used, 'CPU')})"
        )
    return text
