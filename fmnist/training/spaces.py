"""Search spaces in sweep files: a grid (the product of lists of values, as Ray Tune's
grid_search) and random samples (choice, uniform, log-uniform, as Keras Tuner's
hyperparameters), expanded into plain variant configs before anything runs.

    [[grid]]                       # 2 x 2 = 4 variants: mlp-h256-do0.2, ...
    name = "mlp"
    hidden = [[256], [512, 256]]   # a list of values; `hidden = [512, 256]` is one value
    dropout = [0.2, 0.3]
    schedule = "cosine"            # a single value: the same in every variant

    [[random]]                     # 6 variants, the same 6 for the same sample_seed
    name = "rnd"
    samples = 6
    sample_seed = 1                # (`seed` stays the variants' own key: it can vary too)
    learning_rate = {loguniform = [1e-4, 3e-3]}
    dropout = {uniform = [0.1, 0.4]}
    activation = {choice = ["relu", "gelu"]}

Names say what varies (the keys that take more than one value), so a leaderboard reads
without the sweep file. Sampled floats keep 3 significant digits: the name shows the
very value trained. Types and ranges are checked afterwards, per variant, like any other.
"""

from __future__ import annotations

import itertools
import math
import random

# Short name parts: "h512x256", "do0.3", "lr0.002"; strings stand as themselves.
ABBREVIATIONS = {
    "hidden": "h",
    "dropout": "do",
    "learning_rate": "lr",
    "weight_decay": "wd",
    "warmup_epochs": "wu",
    "label_smoothing": "ls",
    "batch_size": "b",
    "epochs": "e",
    "early_stopping": "es",
    "augment_flip": "flip",
    "augment_shift": "shift",
    "augment_rotate": "rot",
    "seed": "s",
}
DISTRIBUTIONS = ("choice", "uniform", "loguniform")
MAX_VARIANTS = 1000


def name_part(key: str, value) -> str:
    if key == "hidden":
        return "h" + "x".join(map(str, value))
    if isinstance(value, bool):
        return ABBREVIATIONS.get(key, key) + ("1" if value else "0")
    if isinstance(value, str):
        return value
    return ABBREVIATIONS.get(key, key) + (f"{value:g}" if isinstance(value, float) else str(value))


def variant_name(prefix: str, config: dict, varying: list[str]) -> str:
    return "-".join([prefix] + [name_part(k, config[k]) for k in varying])


def _is_axis(key: str, value) -> bool:
    """A grid axis is a list of values; `hidden`'s value is itself a list, so its axis
    is a list of lists."""
    if key == "hidden":
        return isinstance(value, list) and bool(value) and all(isinstance(v, list) for v in value)
    return isinstance(value, list)


def grid(table: dict) -> list[tuple[str, dict]]:
    """(name, config) for every combination of a [[grid]] table's lists."""
    prefix = _prefix(table)
    fixed = {k: v for k, v in table.items() if k != "name" and not _is_axis(k, v)}
    axes = {k: v for k, v in table.items() if k != "name" and _is_axis(k, v)}
    for key, values in axes.items():
        if not values:
            raise ValueError(f"key '{key}': an empty list of values")
    size = math.prod(len(v) for v in axes.values())
    if size > MAX_VARIANTS:
        raise ValueError(
            f"{size} combinations; at most {MAX_VARIANTS} (use [[random]] to sample a large space)"
        )
    varying = [k for k, v in axes.items() if len(v) > 1]
    out = []
    for combo in itertools.product(*axes.values()):
        config = {**fixed, **dict(zip(axes, combo))}
        out.append((variant_name(prefix, config, varying), config))
    return out


def sample(table: dict) -> list[tuple[str, dict]]:
    """(name, config) for `samples` draws from a [[random]] table's distributions."""
    prefix = _prefix(table)
    count, seed = table.get("samples"), table.get("sample_seed", 0)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_VARIANTS:
        raise ValueError(f"key 'samples': how many variants to draw, 1 to {MAX_VARIANTS}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("key 'sample_seed': an integer")
    own = ("name", "samples", "sample_seed")
    spaces = {k: v for k, v in table.items() if k not in own and isinstance(v, dict)}
    fixed = {k: v for k, v in table.items() if k not in own and k not in spaces}
    for key, space in spaces.items():
        _check_space(key, space)
    if not spaces:
        raise ValueError(
            "no key to sample: give at least one as {choice = [...]}, "
            "{uniform = [lo, hi]} or {loguniform = [lo, hi]}"
        )
    rng = random.Random(seed)
    varying = list(spaces)
    out = []
    for i in range(count):
        config = {**fixed, **{k: _draw(rng, s) for k, s in spaces.items()}}
        out.append((variant_name(f"{prefix}{i + 1:02d}", config, varying), config))
    return out


def _prefix(table: dict) -> str:
    prefix = table.get("name")
    if not isinstance(prefix, str) or not prefix:
        raise ValueError("key 'name': a prefix for the generated variant names")
    return prefix


def _check_space(key: str, space: dict) -> None:
    if len(space) != 1 or next(iter(space)) not in DISTRIBUTIONS:
        raise ValueError(
            f"key '{key}': one of {{choice = [...]}}, {{uniform = [lo, hi]}}, "
            f"{{loguniform = [lo, hi]}}; got {space}"
        )
    ((kind, arg),) = space.items()
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise ValueError(f"key '{key}': choice needs a non-empty list")
        return
    if not (
        isinstance(arg, list)
        and len(arg) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in arg)
        and arg[0] < arg[1]
    ):
        raise ValueError(f"key '{key}': {kind} needs [low, high] with low < high; got {arg}")
    if kind == "loguniform" and arg[0] <= 0:
        raise ValueError(f"key '{key}': loguniform needs low > 0; got {arg}")


def _draw(rng: random.Random, space: dict):
    ((kind, arg),) = space.items()
    if kind == "choice":
        return rng.choice(arg)
    lo, hi = arg
    x = (
        rng.uniform(lo, hi)
        if kind == "uniform"
        else math.exp(rng.uniform(math.log(lo), math.log(hi)))
    )
    if isinstance(lo, int) and isinstance(hi, int):
        return round(x)  # an integer key (epochs, augment_shift, augment_rotate)
    return float(f"{x:.3g}")
