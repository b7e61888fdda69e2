"""fmnist-job: parallel dense-model sweeps for Fashion-MNIST on Ray, and batch scoring."""

__version__ = "0.1.0"

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_stderr():
    """Point file descriptor 2 at /dev/null for the duration: TensorFlow's C++ start-up
    lines (oneDNN, CUDA stubs) ignore TF_CPP_MIN_LOG_LEVEL in 2.21. Python's own
    exceptions still propagate and are reported after it is restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
