"""The training phase of a sweep: the variants' Ray tasks, at most --workers in flight.

fmnist/training/sweep.py plans the run and hands over; this module submits the tasks in
the plan's order, gathers their results (and live events through a small queue actor),
keeps results.json current after every change, and on a signal records what was running
as interrupted.
"""

from __future__ import annotations

import ray
from ray.util.queue import Empty, Queue
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fmnist.ops.results import RunResults, VariantResult
from fmnist.training import asha, report, schedule
from fmnist.training.rundir import RunDir
from fmnist.training.session import DeferredSignals, Interrupted
from fmnist.training.tasks import failed, one_line, rung_desk, task_for
from fmnist.training.variants import Variant


class Execution:
    """The training phase: the plan's `todo` in its order, at most --workers in flight.

    Ray starts a function's tasks in the order they were submitted, so the order of
    `todo` is the order in which they start. `idle(finished results)` is called after a
    variant finishes whenever fewer than the plan's slots are left training (a slot will
    stay idle). results.json is rewritten after every change: a killed sweep loses
    nothing."""

    def __init__(
        self,
        variants: list[Variant],
        workers: int,
        plan: schedule.Plan,
        results: RunResults,
        finished: list[VariantResult],
        run_dir: RunDir,
        splits_ref,
        signals: DeferredSignals,
        console,
        idle,
        halving: asha.Halving | None = None,
        earlier: list[VariantResult] = (),
    ):
        self.variants, self.workers = variants, workers
        self.plan, self.results, self.run_dir = plan, results, run_dir
        self.splits_ref, self.signals, self.console, self.idle = splits_ref, signals, console, idle
        self.by_name = {r.name: r for r in finished}
        self.queued = list(plan.todo)
        self.running: dict = {}  # ObjectRef -> (Variant, rung index or None)
        self.ladder = self.desk = None
        self.chosen: list = []  # a slot's next (Variant, rung), chosen as a task left it
        self.returning: set = set()  # tasks told at a rung to return: already recorded
        if halving:  # successive halving decides what a free slot trains, and how far
            self.rungs = halving.rungs()
            self.ladder = asha.Ladder(
                self.rungs, halving.reduction_factor, [v.name for v in plan.todo]
            )
            for r in [*finished, *earlier]:  # a resumed run's decisions stand
                if r.rung is not None:
                    self.ladder.restore(r.name, r.rung_accuracies or [], r.rung)
                    self.by_name[r.name] = r
            self.named = {v.name: v for v in variants}
        # The event queue and the rung desk live on the driver's node, so losing a
        # worker node does not lose them.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self.events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        if self.ladder is not None:
            self.desk = rung_desk.options(scheduling_strategy=here).remote()
        fn, resources = task_for(plan.cpus, plan.gpus)
        self.task = fn.options(**resources)

    def save(self) -> None:
        self.results.variants = [
            self.by_name[v.name] for v in self.variants if v.name in self.by_name
        ]
        self.run_dir.write(self.results)

    def run(self) -> None:
        variants = self.variants
        self.save()
        with report.Progress(
            [v.name for v in variants], {v.name: v.epochs for v in variants}, self.console
        ) as progress:
            self.progress = progress
            for r in self.by_name.values():
                progress.finished(r)
            try:
                while self._step():
                    pass
                self._drain()
            except Interrupted as stop:
                self._interrupted(stop)
                raise

    def _next(self) -> tuple[Variant, int | None] | None:
        """What a free slot trains: the next variant in the plan's order (rung None: to
        its last epoch), or successive halving's choice."""
        if self.ladder is None:
            return (self.queued.pop(0), None) if self.queued else None
        if self.chosen:
            return self.chosen.pop(0)
        chosen = self.ladder.next()
        return (self.named[chosen[0]], chosen[1]) if chosen else None

    def _step(self) -> bool:
        """Fill the free slots, wait a moment for a result; False when all is done."""
        while len(self.running) < self.workers and (job := self._next()):
            v, rung = job
            ref = self.task.remote(
                v,
                self.splits_ref,
                self.events,
                self.plan.cpus,
                self.run_dir.checkpoint(v.name),
                self.plan.threads,
                None if rung is None else self.rungs[rung],
                **self._teacher(v),
                **({"desk": self.desk} if self.desk is not None else {}),
            )
            self.running[ref] = (v, rung)
        if not self.running:
            return False
        ready, _ = ray.wait(list(self.running), num_returns=1, timeout=0.25)
        self.signals.check()
        self._drain()
        self._at_rungs()
        for ref in ready:
            v, rung = self.running.pop(ref)
            if ref in self.returning:  # its result came at the rung (_at_rungs)
                self.returning.discard(ref)
            else:
                try:
                    result, weights, val_probs = ray.get(ref)
                except ray.exceptions.RayError as e:  # retries exhausted: lost again
                    result, weights, val_probs = failed(v, one_line(e)), None, None
                if rung is not None:
                    self._climbed(result, rung)
                self._record(result, weights, val_probs)
            if self._nothing_to_start() and len(self.running) < self.plan.slots:
                self.idle([self.by_name[v.name] for v in self.variants if v.name in self.by_name])
        return True

    def _nothing_to_start(self) -> bool:
        if self.ladder is None:
            return not self.queued
        return not (self.chosen or self.ladder.new or self.ladder.promotion())

    def _at_rungs(self) -> None:
        """Tasks waiting at a rung: each one's result is recorded as if it had returned,
        and its slot's next job chosen as for a free slot. If that is this variant's own
        promotion, the task goes on training it (no new task: the model, its compiled
        step and data stay); otherwise the task returns and the job waits in `chosen`
        for the slot."""
        if self.desk is None:
            return
        for name, until, result in ray.get(self.desk.reports.remote()):
            ref = next((r for r, (v, _) in self.running.items() if v.name == name), None)
            epochs = None
            if ref is not None and ref not in self.returning:
                self._climbed(result, self.rungs.index(until))
                self._record(result, None, None)
                job = self._next()
                if job is not None and job[0].name == name:
                    self.running[ref] = job
                    epochs = self.rungs[job[1]]
                else:
                    self.chosen[:0] = [job] if job is not None else []
                    self.returning.add(ref)
            self.desk.answer.remote(name, until, epochs)

    def _climbed(self, result: VariantResult, rung: int) -> None:
        """A rung's result: into the ladder, and onto what the variant's earlier rungs
        cost (their CPU and training time add up)."""
        before = self.by_name.get(result.name)
        if before is not None and before.rung is not None:
            for key in ("cpu_seconds", "train_seconds"):
                earlier, now = getattr(before, key), getattr(result, key)
                if earlier is not None and now is not None:
                    setattr(result, key, round(earlier + now, 2))
            if result.history is None:  # failed: keep the curve it had
                result.history, result.epochs_run = before.history, before.epochs_run
        if result.status in ("ok", "stopped"):
            self.ladder.record(result.name, rung, result.val_accuracy)
        else:
            self.ladder.drop(result.name)
        result.rung = rung
        result.rung_accuracies = list(self.ladder.reached.get(result.name, []))

    def _teacher(self, v: Variant) -> dict:
        """A student's extra task arguments: its `teacher` Variant and what the teacher's
        task returned (`taught`), as that task's ObjectRef while it runs (Ray starts the
        student when it is done; the plan starts teachers first), or made from the
        weights a finished teacher saved (a resumed run's)."""
        if not v.teacher:
            return {}
        teacher = next(t for t in self.variants if t.name == v.teacher)
        running = next((ref for ref, (t, _) in self.running.items() if t.name == v.teacher), None)
        if running is not None:
            return {"teacher": teacher, "taught": running}
        done = self.by_name[v.teacher]
        weights = self.run_dir.load_weights(done.name) if done.ok else None
        return {"teacher": teacher, "taught": ray.put((done, weights, None))}

    def _record(self, result: VariantResult, weights, val_probs) -> None:
        if weights is not None:  # before results.json says "ok"
            self.run_dir.save_weights(result.name, weights)
            self.run_dir.save_val_probs(result.name, val_probs)
        result.estimate_seconds = round(self.plan.estimates[result.name], 2)
        self.by_name[result.name] = result
        self.progress.finished(result)
        self.save()

    def _drain(self) -> None:
        while True:
            try:
                self.progress.event(self.events.get_nowait())
            except Empty:
                return
            except ray.exceptions.RayError:  # queue lost: only the live view suffers
                return

    def _interrupted(self, stop: Interrupted) -> None:
        # No ray.cancel: in Ray 2.60 it crashes the driver (exit 1, "Check failed ...
        # Tried to complete task that was not pending") when it meets a task that is
        # just returning (tests/repro/ray_cancel_race.py). The ray.shutdown that follows
        # stops the tasks anyway: Ray kills a driver's tasks when it leaves, on a
        # cluster too.
        for v, rung in self.running.values():
            before = self.by_name.get(v.name)
            kept = {}
            if rung is not None:  # where a resume continues: the rung it was sent to
                kept = {"rung": rung, "rung_accuracies": list(self.ladder.reached[v.name])}
                if before is not None:
                    kept.update(history=before.history, epochs_run=before.epochs_run)
                    kept.update(cpu_seconds=before.cpu_seconds, train_seconds=before.train_seconds)
            self.by_name[v.name] = failed(v, f"interrupted by {stop}", status="interrupted", **kept)
        queued = self.queued
        if self.ladder is not None:  # and chosen first variants a returning task left
            queued = [v for v, _ in self.chosen if v.name not in self.by_name]
            queued += [self.named[n] for n in self.ladder.new]
        for v in queued:
            self.by_name[v.name] = failed(
                v, f"not started: interrupted by {stop}", status="interrupted"
            )
        self.results.interrupted = str(stop)
        self.save()
