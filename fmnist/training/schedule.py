"""The sweep's plan: what each variant will cost, the order to start them in, and how
close the run came to the machine's floor.

Pure arithmetic on Variants (no TensorFlow, no Ray), so the driver plans before any
task exists and the tests check it directly.

On C CPUs, tasks that each keep one CPU busy cannot finish training before
max(sum of their times / C, the longest time): that is the *floor*. A run's
wall_seconds / floor says how much of its time went to order (a long task started late,
one core idle at the tail) and to fixed costs (Ray start, TensorFlow import, export).
Starting the longest first (LPT) keeps the long tasks off the tail.
"""

from __future__ import annotations

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


def parameters(v: Variant) -> int:
    """Weights the model trains: the Dense kernels and biases (no bias before a norm),
    and a norm's scale and shift."""
    total, fan_in = 0, INPUT_SIZE
    for units in v.hidden:
        total += fan_in * units + (units if v.normalization == "none" else 2 * units)
        fan_in = units
    return total + fan_in * NUM_CLASSES + NUM_CLASSES


def estimate_seconds(v: Variant, train_size: int) -> float:
    """Predicted train_seconds of the variant on one thread of the calibration machine.
    Early stopping can only end it sooner. What matters for the plan is the ranking and
    the ratios between variants; the absolute figure drifts with the machine."""
    params = parameters(v)
    steps = train_size // v.batch_size  # per epoch; the last partial batch sits out
    return v.epochs * (SECONDS_PER_SAMPLE_PARAM * train_size * params
                       + steps * SECONDS_PER_STEP)


def longest_first(variants: list[Variant], estimates: dict[str, float]) -> list[Variant]:
    """The variants in the order to submit them: longest estimate first (ties keep the
    sweep's order). The sweep holds at most --workers tasks in flight and Ray starts a
    function's queued tasks in the order they were submitted, so this is also the order
    in which they start."""
    return sorted(variants, key=lambda v: -estimates[v.name])


def floor_seconds(train_seconds: list[float], cpus: float) -> float | None:
    """max(sum / cpus, longest): no schedule on `cpus` CPUs finishes training sooner."""
    if not train_seconds or cpus <= 0:
        return None
    return max(sum(train_seconds) / cpus, max(train_seconds))


def cpus_used(tasks: int, slots: int, cpus_per_task: float) -> float:
    """The CPUs the sweep's training can keep busy: its tasks at once, times the CPUs
    each holds (fewer tasks than slots use fewer)."""
    return min(tasks, slots) * cpus_per_task


def efficiency(results: list[dict], wall_seconds: float, cpus: float) -> dict:
    """The run against its floor, from the variants trained in this run (finished ones:
    a failed variant has no train_seconds; a resumed one trained earlier)."""
    times = [r["train_seconds"] for r in results if "train_seconds" in r]
    floor = floor_seconds(times, cpus)
    return {"cpus_used": cpus, "floor_seconds": round(floor, 2) if floor else None,
            "wall_over_floor": round(wall_seconds / floor, 3) if floor else None}
