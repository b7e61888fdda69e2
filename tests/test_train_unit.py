"""The training building blocks, in-process: device choice, resources, the chunked
train step, augmentation. Real TensorFlow on small slices."""

import subprocess
import sys

import numpy as np
import pytest

from fmnist.core import data, internals, runtime
from fmnist.training import fit, model, schedule, tasks
from fmnist.training.variants import Variant


@pytest.mark.parametrize(
    "gpus, expected",
    [
        ([], "/CPU:0"),
        (["/physical_device:GPU:0"], "/GPU:0"),
        (["/physical_device:GPU:0", "/physical_device:GPU:1"], "/GPU:0"),
    ],
)
def test_pick_device_uses_the_first_visible_gpu_else_cpu(gpus, expected):
    # Ray narrows CUDA_VISIBLE_DEVICES to the task's GPUs, so index 0 is ours.
    assert runtime.pick_device(gpus) == expected


@pytest.mark.parametrize("cpus, threads", [(0.25, 1), (0.5, 1), (1, 1), (1.5, 2), (2, 2), (8, 8)])
def test_threads_follow_the_task_cpus(cpus, threads):
    assert runtime.threads_for(cpus) == threads


def test_plan_resources_defaults_share_cpus_and_gpus():
    # 2-core machine, 4 workers: a whole CPU each (two at a time), no GPUs.
    assert schedule.plan_resources(4, None, None, {"CPU": 2.0}, [2.0]) == (1.0, 0.0)
    assert schedule.plan_resources(2, None, None, {"CPU": 8.0}, [4.0, 4.0]) == (4.0, 0.0)
    assert schedule.plan_resources(4, None, None, {"CPU": 0.5}, [0.5]) == (0.5, 0.0)
    # A cluster with 2 GPUs and 4 workers: half a GPU each; never more than one node's CPUs.
    assert schedule.plan_resources(4, None, None, {"CPU": 64.0, "GPU": 2.0}, [8.0] * 8) == (
        8.0,
        0.5,
    )
    assert schedule.plan_resources(2, None, None, {"CPU": 8.0, "GPU": 8.0}, [8.0]) == (4.0, 1.0)
    # Explicit values win.
    assert schedule.plan_resources(4, 1.0, 0.25, {"CPU": 2.0}, [2.0]) == (1.0, 0.25)


def test_at_once_says_how_many_tasks_the_cluster_holds():
    assert schedule.at_once(4, 1.0, 0.0, {"CPU": 8.0}) == "4"
    assert schedule.at_once(4, 1.0, 0.0, {"CPU": 2.0}) == "2 (of --workers 4)"
    assert schedule.at_once(4, 0.5, 0.0, {"CPU": 2.0}) == "4"
    assert schedule.at_once(4, 1.0, 0.5, {"CPU": 16.0, "GPU": 1.0}) == "2 (of --workers 4)"


def test_configure_tensorflow_places_on_what_this_machine_has():
    # The GPU when TensorFlow sees one, else the CPU: the same code path either way.
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    assert runtime.configure_tensorflow(1) == ("/GPU:0" if gpus else "/CPU:0")


@pytest.fixture(scope="module")
def small():
    return data.load(limit=3000, val_size=300)


@pytest.mark.slow
def test_chunked_step_takes_one_optimizer_step_per_minibatch(small):
    v = Variant("t", (32,), epochs=2, batch_size=50)
    result, weights, _ = fit.fit_variant(v, small, chunk=16)
    batches = len(small.y_train) // 50  # 2700 // 50 = 54 -> 4 chunks of 13 (2 left out)
    assert result.status == "ok" and result.epochs_run == 2
    assert len(result.history["val_accuracy"]) == 2
    net = model.build(v)
    net.set_weights(weights)
    assert result.val_accuracy > 0.6  # it learned; chance is 0.1
    # One update per minibatch the pipeline delivered, inside the XLA loop; equal-size
    # chunks leave at most chunks-1 minibatches of an epoch out (reshuffled next epoch).
    assert result.optimizer_steps == 2 * 4 * 13
    assert result.optimizer_steps >= 2 * (batches - 3)


@pytest.mark.slow
def test_chunked_fit_matches_plain_fit_accuracy(small):
    """The fast path trains the same model as plain fit (not a different one)."""
    import keras

    v = Variant("t", (64,), epochs=3, batch_size=32)
    fast, _, _ = fit.fit_variant(v, small)
    keras.utils.set_random_seed(0)
    plain = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    plain.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    plain.fit(small.x_train / 255.0, small.y_train, epochs=3, batch_size=32, verbose=0)
    _, plain_acc = plain.evaluate(small.x_test / 255.0, small.y_test, verbose=0)
    assert abs(fast.test_accuracy - plain_acc) < 0.03


@pytest.mark.slow
def test_dropout_normalization_schedule_and_smoothing_train(small):
    v = Variant(
        "t",
        (64, 32),
        dropout=0.3,
        normalization="batch",
        optimizer="adamw",
        weight_decay=1e-4,
        schedule="cosine",
        warmup_epochs=1,
        label_smoothing=0.1,
        epochs=4,
        batch_size=64,
        early_stopping=2,
        augment_flip=True,
        augment_shift=2,
        augment_rotate=5,
    )
    result, _, _ = fit.fit_variant(v, small)
    assert result.val_accuracy > 0.6 and 3 <= result.epochs_run <= 4


@pytest.mark.slow
def test_nan_loss_fails_the_variant(small):
    v = Variant("t", (512, 512, 512), optimizer="sgd", learning_rate=1.0, epochs=2, batch_size=32)
    # SGD at lr 1.0 with momentum diverges; the variant must fail, not export garbage.
    with pytest.raises(FloatingPointError, match="NaN"):
        fit.fit_variant(v, small)


def test_training_input_pipeline_does_not_autotune(small):
    # tf.data's autotuner made deleting the iterator at the end of `fit` wait up to
    # tens of seconds in 1-thread tasks; the pipeline's parallelism is fixed instead.
    ds, _, _ = model.training_dataset(small.x_train, small.y_train, Variant("t", (8,)))
    assert ds.options().autotune.enabled is False


def python_ok(code: str) -> None:
    """Run `code` in a fresh interpreter (process-wide settings under test); it must
    print 'ok'."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


def test_optional_imports_are_skipped_in_a_training_process():
    code = (
        "import sys\nfrom fmnist.core import runtime\nruntime.skip_optional_imports()\n"
        "import tensorflow, keras\n"
        "assert sys.modules['pandas'] is None and sys.modules['matplotlib'] is None\n"
        "keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "runtime.skip_optional_imports()  # after TensorFlow: no effect, no error\n"
        "print('ok')"
    )
    python_ok(code)


def test_batch_scheduling_covers_threads_started_afterwards():
    code = (
        "import os, threading\nfrom fmnist.core import runtime\n"
        "assert runtime.batch_scheduling()\npolicy = []\n"
        "t = threading.Thread(target=lambda: policy.append(os.sched_getscheduler(0)))\n"
        "t.start(); t.join()\n"
        "assert os.sched_getscheduler(0) == policy[0] == os.SCHED_BATCH, policy\n"
        "print('ok')"
    )
    python_ok(code)


def test_random_flip_and_shift_move_pixels_not_content():
    import tensorflow as tf

    x = np.zeros((4, 28, 28), np.uint8)
    x[:, 10:14, 3:6] = 200
    flipped = model._random_flip(tf.constant(x), tf.constant([1, 2], tf.int64)).numpy()
    shifted = model._random_shift(tf.constant(x), 3, tf.constant([3, 4], tf.int64)).numpy()
    for out in (flipped, shifted):
        assert out.shape == x.shape
        assert (out.sum(axis=(1, 2)) == x.sum(axis=(1, 2))).all()  # nothing cut off
    assert any((f[:, 22:25] == 200).any() for f in flipped)  # some got mirrored
    assert not all((s == x[0]).all() for s in shifted)  # some moved


def test_random_rotation_turns_within_its_limit_and_keeps_the_middle():
    import tensorflow as tf

    x = np.zeros((2, 8, 28, 28), np.uint8)
    x[..., 4:24, 12:16] = 200  # an upright bar through the centre
    out = model._random_rotate(tf.constant(x), 10, tf.constant([5, 6], tf.int64)).numpy()
    assert out.shape == x.shape and out.dtype == np.uint8
    assert (out[..., 13:15, 13:15] == 200).all()  # turned about the centre
    angles = []
    for image in out.reshape(-1, 28, 28).astype(np.float64):
        ys, xs = np.nonzero(image)
        w = image[ys, xs]
        mx, my = np.average(xs, weights=w), np.average(ys, weights=w)
        cov = np.cov(np.stack([xs - mx, ys - my]), aweights=w)
        angles.append(np.degrees(0.5 * np.arctan2(2 * cov[0, 1], cov[1, 1] - cov[0, 0])))
    assert max(abs(a) for a in angles) <= 10.5  # within the limit (sampling's rounding)
    assert max(abs(a) for a in angles) > 3  # and some really turned


def test_gpu_tasks_run_in_workers_that_exit_after_each_task():
    # max_calls=1 frees TensorFlow's GPU memory with the process; CPU workers are reused.
    fn, resources = tasks.task_for(4.0, 0.5)
    assert fn is tasks.train_task_gpu and resources == {"num_cpus": 4.0, "num_gpus": 0.5}
    assert tasks.train_task_gpu._default_options["max_calls"] == 1
    fn, resources = tasks.task_for(0.5, 0.0)
    assert fn is tasks.train_task and resources == {"num_cpus": 0.5, "num_gpus": 0.0}
    assert tasks.train_task._default_options.get("max_calls", 0) == 0
    fn.options(**resources)  # Ray accepts the request


@pytest.mark.slow
def test_checkpoint_is_replaced_atomically_and_training_resumes(small, tmp_path):
    """A second fit_variant on the same checkpoint dir continues where the first ended,
    and no temporary checkpoint files are left behind."""
    v = Variant("t", (32,), epochs=2, batch_size=100)
    first, _, _ = fit.fit_variant(v, small, checkpoint_dir=str(tmp_path))
    # Keras deletes its backup at the end of a finished fit; simulate a kill after
    # epoch 1 by training 1 epoch with the backup kept, then resuming for 2.
    ckpt = tmp_path / "k"
    cb = internals.keras_atomic_backup(str(ckpt / "backup"))
    cb.delete_checkpoint = False
    net = model.build(v)
    model.compile_for_training(net, v, 27)
    ds, steps, _ = model.training_dataset(small.x_train, small.y_train, v)
    net.fit(ds, epochs=1, steps_per_epoch=steps, callbacks=[cb], verbose=0)
    files = sorted(p.name for p in (ckpt / "backup").iterdir())
    assert files == ["latest.weights.h5", "training_metadata.json"]
    resumed, _, _ = fit.fit_variant(v, small, checkpoint_dir=str(ckpt))
    assert resumed.optimizer_steps == first.optimizer_steps  # 2 epochs' worth in all
    assert first.attempts == 1 and resumed.attempts == 1
    assert not (ckpt / "backup").exists()  # cleaned after success
