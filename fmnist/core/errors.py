"""The two ways a run fails, shared by the modules that score and train. The CLI turns
each into one line and its exit code; nothing below it knows the codes."""


class ScoreError(Exception):
    """The run cannot start: missing directory, unusable model or output (exit 2)."""


class RunError(Exception):
    """The run broke after it started (output disk full, decoder or Ray failure, an
    upload that failed; exit 1)."""


class DecoderDied(RunError):
    """A decoder process was killed (the OOM killer). `pool_stuck`: the process pool
    could not shut down (a result half written to its pipe), so the process must leave
    without waiting for it."""

    pool_stuck = False
