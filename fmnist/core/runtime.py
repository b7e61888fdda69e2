"""TensorFlow's runtime in a process that trains or predicts: threads, GPU memory
growth, the device, what not to import. Shared by the training tasks (sweep.py) and
the scoring actors (backends.py).

Before TensorFlow's runtime starts, a task pins TensorFlow's thread pools to the CPUs it
asked Ray for (otherwise every task spawns one thread per core and they fight), and
turns on GPU memory growth (otherwise the first task on a GPU grabs all of its memory
and a second, fractional task fails).
"""

from __future__ import annotations

import math
import os


def threads_for(cpus: float) -> int:
    """TensorFlow threads for a task holding `cpus` CPUs (fractions round, at least 1)."""
    return max(1, math.floor(cpus + 0.5))


def pick_device(gpus: list[str]) -> str:
    """The device for the model: the first GPU TensorFlow sees, else the CPU.

    Ray sets CUDA_VISIBLE_DEVICES to the GPU(s) it assigned the task, so TensorFlow
    numbers them from 0: the first visible GPU *is* the one Ray gave us.
    `gpus` are TensorFlow's physical GPU device names, e.g.
    ['/physical_device:GPU:0']."""
    if not gpus:
        return "/CPU:0"
    return "/GPU:" + gpus[0].rsplit(":", 1)[-1]


def skip_optional_imports() -> None:
    """For a process that only trains: mark pandas and matplotlib as absent before
    TensorFlow is imported. Keras imports both whenever they are installed (pandas
    comes with ray[data], matplotlib draws our plots), only for pandas inputs and its
    plotting helpers, and treats them as optional. Measured: TensorFlow's import takes
    2.05 s of CPU instead of 2.80, per task process. Never call it in a process that
    plots or runs Ray Data."""
    import sys

    if "tensorflow" not in sys.modules:
        for name in ("pandas", "matplotlib"):
            sys.modules.setdefault(name, None)  # None: `import name` raises ImportError


def batch_scheduling() -> bool:
    """Put this thread, and the threads it starts from now on (TensorFlow's pools),
    under Linux's SCHED_BATCH policy: CPU-bound and non-interactive, so the kernel
    preempts it less eagerly when another thread wakes. Tasks that share cores (with
    Ray's processes, or four on two with --cpus-per-worker 0.5) then switch less often
    and keep their caches warm: with four on two, the default sweep's training phase
    took 45.3 s instead of 47.8 s (means of four alternating runs). An ordinary,
    unprivileged policy; Ray's own threads, started earlier, keep theirs. Returns
    False where the platform has no such policy."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        return True
    except (AttributeError, OSError):
        return False


def configure_tensorflow(cpus: float, threads: int | None = None) -> str:
    """Threads and GPU memory growth; returns the device to place the model on.
    `threads` overrides the thread count derived from the task's CPUs.

    Both settings only take before TensorFlow initializes its runtime. A Ray worker
    process that is reused for a second task (same resource shape) already has them,
    so 'already initialized' is fine here."""
    import tensorflow as tf

    n = threads or threads_for(cpus)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    return pick_device([g.name for g in gpus])
