"""The sweep's plan: what each variant will cost, the order to start them in, and how
close the run came to the machine's floor.

Pure arithmetic on Variants (no TensorFlow, no Ray), so the driver plans before any
task exists and the tests check it directly.

On C CPUs, tasks that each keep one CPU busy cannot finish training before
max(sum of their times / C, the longest time): that is the *floor*. A run's
wall_seconds / floor says how much of its time went to order (a long task started late,
one core idle at the tail) and to fixed costs (Ray start, TensorFlow import, export).
Starting the longest first (LPT) keeps the long tasks off the tail.

How many CPUs (and GPUs) a task asks for, and so how many run at once, is planned here
too, from the cluster's resources.
"""

from __future__ import annotations

from dataclasses import dataclass

from fmnist.core.runtime import threads_for
from fmnist.training.variants import Variant

INPUT_SIZE = 28 * 28
NUM_CLASSES = 10

# Seconds of one training epoch on one TensorFlow thread, calibrated on the project's
# 2-core machine from the train_seconds of the default and four-variant sweeps
# (docs/performance.md): per image and parameter (the forward and backward products,
# which grow with both) and per optimizer step. (Terms per step and parameter, and per
# variant, stood at 0 in the calibrated model and are left out.)
SECONDS_PER_SAMPLE_PARAM = 7.8e-11
SECONDS_PER_STEP = 2.9e-4


def plan_resources(
    workers: int, cpus: float | None, gpus: float | None, cluster: dict, node_cpus: list[float]
) -> tuple[float, float]:
    """(cpus, gpus) per task.

    Defaults: the cluster's CPUs shared among the workers, but at least one CPU (and no
    more than one node has), and a GPU share when the cluster has GPUs. At least one CPU
    because a training task keeps its core busy: tasks sharing a core only take turns on
    it and evict each other's caches (docs/decisions.md, "a whole core per task by
    default"). --workers stays the upper bound; --cpus-per-worker 0.5 shares cores.

    Args:
        workers: --workers.
        cpus: --cpus-per-worker, or None for the default.
        gpus: --gpus-per-worker, or None for the default.
        cluster: ray.cluster_resources().
        node_cpus: the CPUs of each live node.
    """
    if cpus is None:
        total = cluster.get("CPU", 1.0)
        biggest = max(node_cpus or [total])
        cpus = min(max(1.0, total / workers), biggest)
        cpus = max(0.1, round(cpus, 2))
    if gpus is None:
        total_gpus = cluster.get("GPU", 0.0)
        gpus = round(min(1.0, total_gpus / workers), 2) if total_gpus else 0.0
    return cpus, gpus


def slots(workers: int, cpus: float, gpus: float, cluster: dict) -> int:
    """How many tasks run at once: --workers, or fewer when the cluster's CPUs (or
    GPUs) hold fewer such tasks (as it is now)."""
    n = min(workers, int(cluster.get("CPU", 0) // cpus))  # cpus > 0: the CLI's minimum
    if gpus:
        n = min(n, int(cluster.get("GPU", 0) // gpus))
    return max(1, n)


def at_once(workers: int, cpus: float, gpus: float, cluster: dict) -> str:
    """How many tasks run at once, for the run's first line: '4', or '2 (of --workers
    4)'."""
    n = slots(workers, cpus, gpus, cluster)
    return str(workers) if n >= workers else f"{n} (of --workers {workers})"


@dataclass(frozen=True)
class Plan:
    """How a sweep runs on the cluster it found."""

    cpus: float  # per task
    gpus: float  # per task
    threads: int  # TensorFlow threads per task
    slots: int  # tasks at once
    at_once: str  # the same, for the run's first line
    estimates: dict[str, float]
    todo: list[Variant]  # the variants to train, in the order to start them


def make_plan(
    variants: list[Variant],
    finished: set[str],
    *,
    workers: int,
    cpus_per_worker: float | None,
    gpus_per_worker: float | None,
    threads_per_worker: int | None,
    cluster: dict,
    node_cpus: list[float],
    train_size: int,
) -> Plan:
    """The plan for the variants not yet `finished` on a cluster with `cluster`'s
    resources (ray.cluster_resources()) and `node_cpus` (each live node's CPUs)."""
    cpus, gpus = plan_resources(workers, cpus_per_worker, gpus_per_worker, cluster, node_cpus)
    by_name = {v.name: v for v in variants}
    estimates = {
        v.name: estimate_seconds(v, train_size, by_name.get(v.teacher or "")) for v in variants
    }
    return Plan(
        cpus=cpus,
        gpus=gpus,
        threads=threads_per_worker or threads_for(cpus),
        slots=slots(workers, cpus, gpus, cluster),
        at_once=at_once(workers, cpus, gpus, cluster),
        estimates=estimates,
        todo=longest_first([v for v in variants if v.name not in finished], estimates),
    )


def longest_first(variants: list[Variant], estimates: dict[str, float]) -> list[Variant]:
    """The variants in the order to submit them: longest estimate first (ties keep the
    sweep's order); with distillation, teachers first, then the variants that need no
    teacher (they use the cores while a teacher trains), then the students (they wait
    for their teacher). The sweep holds at most --workers tasks in flight and Ray starts
    a function's queued tasks in the order they were submitted, so this is also the
    order in which they start."""

    def key(v: Variant):
        return (0 if v.is_teacher else 2 if v.teacher else 1, -estimates[v.name])

    return sorted(variants, key=key)


def parameters(v: Variant) -> int:
    """Weights the model trains: the Dense kernels and biases (no bias before a norm),
    and a norm's scale and shift. For a convolutional teacher: multiply-adds per image,
    which is what a dense net's parameter count stands for in the cost (a
    convolution's few weights are applied at every pixel)."""
    total, fan_in, side, channels = 0, INPUT_SIZE, 28, 1
    for filters in v.conv:  # 3x3 convolution, stride 2: 28 -> 14 -> 7 -> 4
        side = -(-side // 2)
        total += side * side * 9 * channels * filters
        channels = filters
        fan_in = side * side * channels
    for units in v.hidden:
        total += fan_in * units + (units if v.normalization == "none" else 2 * units)
        fan_in = units
    return total + fan_in * NUM_CLASSES + NUM_CLASSES


def estimate_seconds(v: Variant, train_size: int, teacher: Variant | None = None) -> float:
    """Predicted train_seconds of the variant on one thread of the calibration machine.
    Early stopping can only end it sooner. What matters for the plan is the ranking and
    the ratios between variants; the absolute figure drifts with the machine. A student
    also runs its `teacher` forward on every batch (about a third of a training step)."""
    params = parameters(v) + (parameters(teacher) // 3 if teacher else 0)
    steps = train_size // v.batch_size  # per epoch; the last partial batch sits out
    return v.epochs * (SECONDS_PER_SAMPLE_PARAM * train_size * params + steps * SECONDS_PER_STEP)


def floor_seconds(train_seconds: list[float], cpus: float) -> float | None:
    """max(sum / cpus, longest): no schedule on `cpus` CPUs finishes training sooner."""
    if not train_seconds or cpus <= 0:
        return None
    return max(sum(train_seconds) / cpus, max(train_seconds))


def cpus_used(tasks: int, slots: int, cpus_per_task: float) -> float:
    """The CPUs the sweep's training can keep busy: its tasks at once, times the CPUs
    each holds (fewer tasks than slots use fewer)."""
    return min(tasks, slots) * cpus_per_task


def efficiency(train_seconds: list[float], wall_seconds: float, cpus: float) -> dict:
    """The run against its floor, from the train_seconds of the variants trained in this
    run (finished ones: a failed variant has none; a resumed one trained earlier)."""
    times = train_seconds
    floor = floor_seconds(times, cpus)
    return {
        "cpus_used": cpus,
        "floor_seconds": round(floor, 2) if floor else None,
        "wall_over_floor": round(wall_seconds / floor, 3) if floor else None,
    }
