"""Plain aligned text tables for list commands (`models list`, `runs list`): readable
in a terminal and in a pod's log, greppable, no colour codes."""

from __future__ import annotations


def percent(x) -> str:
    """An accuracy (0.8912) as '89.12', '-' when unknown."""
    return f"{100 * x:.2f}" if isinstance(x, (int, float)) else "-"


def aligned(head: list[str], rows: list[list[str]]) -> str:
    lines = [head] + rows
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in lines)
