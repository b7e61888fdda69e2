"""Asynchronous successive halving (ASHA, Li et al. 2020): which variant a free slot
trains next, and to which epoch. Pure bookkeeping (no Ray, no TensorFlow): the driver
(fmnist/training/execution.py) asks `Ladder.next()` whenever a slot is free and reports
each rung a task reaches with `Ladder.record()`.

    [search]
    scheduler = "asha"
    reduction_factor = 3     # eta: a third of each rung goes on to the next
    min_epochs = 1           # the first rung
    max_epochs = 9           # the last (the variants' own epochs by default)

Rungs are min_epochs * eta**k below max_epochs, then max_epochs: 1, 3, 9. A slot never
waits for a rung to fill: it takes a promotion if there is one (a variant in the top
1/eta of those that have reached its rung so far and not yet promoted; the highest rung
first), else starts a new variant at the first rung, else stays free. A variant left at
a rung below the last when the run ends is `stopped`.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULERS = ("none", "asha")
KEYS = ("scheduler", "reduction_factor", "min_epochs", "max_epochs")


@dataclass(frozen=True)
class Halving:
    """The [search] table's successive-halving settings."""

    reduction_factor: int
    min_epochs: int
    max_epochs: int

    def rungs(self) -> list[int]:
        """The epochs at which variants are compared, the last being max_epochs."""
        out, epochs = [], self.min_epochs
        while epochs < self.max_epochs:
            out.append(epochs)
            epochs *= self.reduction_factor
        return out + [self.max_epochs]


class Ladder:
    """ASHA's state: each variant's validation accuracy at the rungs it reached, and the
    rung each was last sent to (a promotion, once made, stays made).

    Args:
        rungs: epochs of each rung (Halving.rungs()).
        eta: the reduction factor.
        new: the variants not started yet, in the order to start them.
    """

    def __init__(self, rungs: list[int], eta: int, new: list[str]):
        self.rungs, self.eta = rungs, eta
        self.new = list(new)
        self.order = {name: i for i, name in enumerate(new)}  # ties: the earlier first
        self.reached: dict[str, list[float]] = {}  # accuracy at each rung reached
        self.target: dict[str, int] = {}  # the rung each variant was sent to
        self.dropped: set[str] = set()  # failed: never ranked, never promoted
        self.lost: list[str] = []  # sent to a rung by an interrupted run: to run again

    def restore(self, name: str, reached: list[float], target: int) -> None:
        """A variant from a resumed run's record: its rungs and the rung it was sent to
        (above the last reached: it was running there and resumes at that rung first)."""
        self.order.setdefault(name, -1)
        if name in self.new:
            self.new.remove(name)
        self.reached[name], self.target[name] = list(reached), target
        if len(reached) <= target:
            self.lost.append(name)

    def next(self) -> tuple[str, int] | None:
        """The next (variant, rung index) for a free slot, marked as sent; None when
        nothing can start now (more may be promotable once running tasks report)."""
        if self.lost:
            name = self.lost.pop(0)
            return name, self.target[name]
        promoted = self.promotion()
        if promoted:
            self.target[promoted] += 1
            return promoted, self.target[promoted]
        if self.new:
            name = self.new.pop(0)
            self.target[name] = 0
            self.reached.setdefault(name, [])
            return name, 0
        return None

    def promotion(self) -> str | None:
        """A variant waiting at rung k among the top 1/eta of those that reached rung k,
        from the highest rung down (ASHA's get_job)."""
        for k in reversed(range(len(self.rungs) - 1)):
            done = sorted(
                (n for n, accs in self.reached.items() if len(accs) > k and n not in self.dropped),
                key=lambda n: (-self.reached[n][k], self.order.get(n, 0)),
            )
            for name in done[: len(done) // self.eta]:
                if self.target[name] == k:
                    return name
        return None

    def record(self, name: str, rung: int, accuracy: float) -> None:
        """Variant `name` reached rung `rung` with this validation accuracy."""
        accs = self.reached.setdefault(name, [])
        del accs[rung:]  # a rung run again (a lost task) replaces its figure
        accs.append(accuracy)

    def drop(self, name: str) -> None:
        """A failed variant: out of the ranking."""
        self.dropped.add(name)

    def stopped(self) -> list[str]:
        """Variants waiting at a rung below the last (all of them are stopped when the
        run ends)."""
        last = len(self.rungs) - 1
        return [
            n
            for n, accs in self.reached.items()
            if n not in self.dropped and accs and len(accs) - 1 == self.target[n] < last
        ]
