"""Plain aligned text tables for list commands (`models list`, `runs list`): readable
in a terminal and in a pod's log, greppable, no colour codes."""

from __future__ import annotations


def percent(x) -> str:
    """An accuracy (0.8912) as '89.12', '-' when unknown."""
    return f"{100 * x:.2f}" if isinstance(x, (int, float)) else "-"


def count(n: float, noun: str, plural: str | None = None) -> str:
    """'1 variant', '2 variants', '1.5 CPUs', '12,000 files': a number and its noun,
    agreeing."""
    number = f"{int(n):,}" if float(n).is_integer() else f"{n:g}"
    return f"{number} {noun if n == 1 else plural or noun + 's'}"


def clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, with an ellipsis where it was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def aligned(head: list[str], rows: list[list[str]]) -> str:
    lines = [head] + rows
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
