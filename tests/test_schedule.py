"""The sweep's plan: cost estimates, longest-first order, the floor and the run's ratio
to it. Arithmetic checked directly; the parameter count against real Keras models; the
order in which Ray really starts the tasks through the CLI on a real one-CPU Ray."""

import json
from datetime import datetime

import pytest

from fmnist.training import schedule, variants
from fmnist.training.variants import Variant

from conftest import ROOT, run_cli


@pytest.mark.parametrize(
    "v",
    [
        Variant("plain", (128,)),
        Variant("deep", (256, 128), dropout=0.2),
        Variant("bn", (512, 256), normalization="batch"),
        Variant("ln", (64,), normalization="layer"),
    ],
    ids=lambda v: v.name,
)
def test_parameters_count_what_the_model_trains(v):
    from fmnist.training import model

    net = model.build(v)
    assert schedule.parameters(v) == sum(int(w.shape.num_elements()) for w in net.trainable_weights)


# train_seconds per variant measured on the project's 2-core machine (docs/performance.md,
# issue 16): the estimate has to rank them the same way within each sweep. Variants that
# differ only in their seed tie in the estimate and need no order.
MEASURED = {
    # `train --workers 4`, two at a time, 2026-11-26
    "jobs/default.toml": {
        "tutorial": 4.7,
        "mlp-256-128": 12.2,
        "wide-1024": 37.4,
        "bn-512-256-flip": 36.2,
    },
    # issue 16's side-by-side run, two at a time, 2026-11-27
    "tests/benchmarks/four.toml": {"d128": 8.2, "d256": 12.3, "d256-128": 14.3, "d512-256": 28.7},
    # four at once on half a CPU each, early stopping on (the accuracy table)
    "jobs/best.toml": {"bn-1536-768-d4": 655, "bn-1024-512-d4-e60": 606, "bn-1024-512-d3": 495},
}


@pytest.mark.parametrize("sweep", sorted(MEASURED))
def test_estimates_rank_the_variants_as_their_measured_times(sweep):
    vs = variants.load(ROOT / sweep)
    estimate = {v.name: schedule.estimate_seconds(v, 55000) for v in vs}
    measured = MEASURED[sweep]
    assert sorted(measured, key=estimate.get) == sorted(measured, key=measured.get)


def test_longest_first_orders_by_estimate_and_keeps_ties_in_sweep_order():
    vs = [Variant(n, (8,)) for n in "abcd"]
    order = schedule.longest_first(vs, {"a": 1.0, "b": 5.0, "c": 1.0, "d": 3.0})
    assert [v.name for v in order] == ["b", "d", "a", "c"]


def test_more_epochs_params_and_smaller_batches_cost_more():
    base = Variant("x", (256,))
    cost = lambda v: schedule.estimate_seconds(v, 55000)  # noqa: E731
    assert cost(Variant("x", (256,), epochs=10)) == pytest.approx(2 * cost(base))
    assert cost(Variant("x", (512,))) > cost(base)
    assert (
        cost(Variant("x", (256,), batch_size=16))
        > cost(base)
        > cost(Variant("x", (256,), batch_size=128))
    )


def test_floor_is_the_larger_of_even_sharing_and_the_longest_task():
    assert schedule.floor_seconds([10, 10, 10, 10], 2) == 20  # sum / CPUs
    assert schedule.floor_seconds([30, 5, 5], 2) == 30  # the longest
    assert schedule.floor_seconds([], 2) is None


def test_efficiency_uses_only_variants_with_a_training_time():
    assert schedule.efficiency([30.0, 10.0], 50.0, 2.0) == {
        "cpus_used": 2.0,
        "floor_seconds": 30.0,
        "wall_over_floor": pytest.approx(1.667),
    }
    assert schedule.efficiency([], 50.0, 2.0)["wall_over_floor"] is None


def test_cpus_used_counts_the_tasks_that_can_run_at_once():
    assert schedule.cpus_used(tasks=4, slots=2, cpus_per_task=1.0) == 2.0
    assert schedule.cpus_used(tasks=1, slots=2, cpus_per_task=1.0) == 1.0
    assert schedule.cpus_used(tasks=4, slots=4, cpus_per_task=0.5) == 2.0


@pytest.mark.slow
def test_ray_starts_the_variants_longest_first(tmp_path, sweep_file):
    """The sweep file lists the variants shortest first; on a one-CPU Ray node with
    --workers 3 (all three submitted at once, two of them queued in Ray) they start
    longest first."""
    from ray.cluster_utils import Cluster

    sweep = sweep_file("""
        [defaults]
        epochs = 1
        [[variant]]
        name = "short"
        hidden = [16]
        [[variant]]
        name = "middle"
        hidden = [64]
        [[variant]]
        name = "long"
        hidden = [256, 64]
    """)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        proc = run_cli(
            "train",
            "--sweep",
            sweep,
            "--workers",
            "3",
            "--limit",
            "3000",
            "--cpus-per-worker",
            "1",
            "--address",
            cluster.address,
            "--runs-dir",
            tmp_path / "run",
            "--export-dir",
            tmp_path / "models",
        )
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["order"] == ["long", "middle", "short"]
    started = sorted(results["variants"], key=lambda v: datetime.fromisoformat(v["started_at"]))
    assert [v["name"] for v in started] == ["long", "middle", "short"]
    estimates = [v["estimate_seconds"] for v in started]
    assert estimates == sorted(estimates, reverse=True) and estimates[-1] > 0


@pytest.mark.slow
def test_the_best_is_exported_while_a_slower_variant_still_trains(
    tmp_path, sweep_file, ray_cluster
):
    """Two variants on two CPUs (the session's Ray): the good one finishes first; its
    export starts on the freed CPU while the slow one (a big net that barely learns at
    this learning rate) trains on, and is the one used."""
    sweep = sweep_file("""
        [defaults]
        epochs = 2
        [[variant]]
        name = "good"
        hidden = [64]
        [[variant]]
        name = "slow"
        hidden = [1024, 1024]
        learning_rate = 1e-7
        epochs = 8
    """)
    proc = run_cli(
        "train",
        "--sweep",
        sweep,
        "--workers",
        "2",
        "--limit",
        "3000",
        "--cpus-per-worker",
        "1",
        "--address",
        ray_cluster.gcs,
        "--runs-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "models",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["order"] == ["slow", "good"] and results["best"] == "good"
    timeline = results["timeline"]
    assert timeline["export_started"] < timeline["training_done"]
    assert (tmp_path / "models" / "1" / "saved_model.pb").exists()
