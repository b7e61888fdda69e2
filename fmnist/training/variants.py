"""Sweep files: TOML with a [defaults] table and [[variant]] tables, search spaces
([[grid]], [[random]]: fmnist/training/spaces.py; [[study]]: fmnist/training/study.py)
that expand into more variants, and [search]: successive halving (fmnist/training/asha.py).

    [defaults]
    epochs = 5

    [[variant]]
    name = "tutorial"
    hidden = [128]

Every variant is checked (types, ranges, unknown keys, keys that would do nothing)
before anything starts, so a typo in the tenth variant does not surface an hour into a
nightly run. Errors name the file, the variant and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Annotated, Literal

import pydantic
from pydantic import ConfigDict, Field

from fmnist.training import asha, spaces


class SweepError(Exception):
    """The sweep file is missing, unparsable or has an invalid variant."""


def _between(lo, hi, *, lo_open=False, hi_open=False):
    return Field(**{"gt" if lo_open else "ge": lo, "lt" if hi_open else "le": hi})


# One definition: the types, the ranges and the defaults are checked by pydantic when a
# Variant is made, from a sweep file, a run's results.json or code. Strict: TOML's
# `augment_flip = 1` or `epochs = 2.5` is an error, not a guess. Ranges are generous
# but catch the typos that matter (a learning rate of 10, a dropout of 1.0, a batch of 0).
@pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(extra="forbid", strict=True))
class Variant:
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    # strict=False only to take TOML's list for the tuple; the sizes stay strict ints.
    hidden: Annotated[
        tuple[Annotated[int, _between(1, 8192)], ...],
        Field(min_length=1, max_length=8, strict=False),
    ]
    activation: Literal["relu", "gelu", "elu", "selu", "tanh", "swish", "sigmoid"] = "relu"
    dropout: Annotated[float, _between(0, 1, hi_open=True)] = 0.0
    normalization: Literal["none", "batch", "layer"] = "none"  # after each hidden Dense
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: Annotated[float, _between(0, 1, lo_open=True)] = 1e-3
    weight_decay: Annotated[float, _between(0, 1)] = 0.0  # decoupled: adamw only
    schedule: Literal["constant", "cosine"] = "constant"  # cosine decays to 0 over the epochs
    warmup_epochs: Annotated[int, _between(0, 100)] = 0  # cosine only
    label_smoothing: Annotated[float, _between(0, 0.5, hi_open=True)] = 0.0
    batch_size: Annotated[int, _between(1, 65536)] = 32
    epochs: Annotated[int, _between(1, 1000)] = 5
    early_stopping: Annotated[int, _between(0, 1000)] = 0  # patience on val accuracy; 0 = off
    augment_flip: bool = False  # random horizontal flips
    augment_shift: Annotated[int, _between(0, 4)] = 0  # random shifts of up to N pixels
    augment_rotate: Annotated[int, _between(0, 30)] = 0  # random turns of up to N degrees
    seed: Annotated[int, _between(0, 2**31 - 1)] = 0
    # Set by [distill] only (DISTILL_KEYS): a teacher's convolutional stages (filters
    # each), and a student's teacher with the soft targets' temperature and weight.
    conv: Annotated[
        tuple[Annotated[int, _between(1, 512)], ...], Field(max_length=4, strict=False)
    ] = ()
    teacher: str | None = None
    distill_temperature: Annotated[float, _between(0, 100, lo_open=True)] = 1.0
    distill_alpha: Annotated[float, _between(0, 1)] = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["conv"] = list(self.conv)
        return d

    @property
    def is_teacher(self) -> bool:
        """A convolutional teacher: trained for its students, never exported."""
        return bool(self.conv)


# The fields a sweep file sets through [distill], never in a variant table.
DISTILL_KEYS = ("conv", "teacher", "distill_temperature", "distill_alpha")
KEYS = [f.name for f in fields(Variant) if f.name not in DISTILL_KEYS]


def is_teacher(config: dict) -> bool:
    """Whether a variant's saved config (results.json) is a distillation teacher."""
    return bool(config.get("conv"))


# The sweep files that ship inside the package (a checkout's jobs/ links here), so the
# default sweep is found from any working directory and in an installed wheel.
BUNDLED_DIR = Path(__file__).parents[1] / "jobs"
DEFAULT_SWEEP = BUNDLED_DIR / "default.toml"
_TOP_KEYS = {"defaults", "variant", "grid", "random", "study", "ensemble", "search", "distill"}
DISTILL_TABLE_KEYS = ("teacher", "temperature", "alpha", "students")
TEACHER_KINDS = ("conv",)
TEACHER_TABLE_KEYS = ("kind", "conv")  # [distill.teacher]'s own keys, beside the variant keys
MAX_ENSEMBLE = 50  # selection steps; members can repeat, so weights are multiples of 1/N


def _make(config: dict, where: str) -> Variant:
    """A Variant, or a SweepError naming `where` and the first bad key."""
    try:
        return Variant(**config)
    except pydantic.ValidationError as e:
        error = e.errors()[0]
        key = error["loc"][0] if error["loc"] else None
        if error["type"] == "unexpected_keyword_argument":
            raise SweepError(f"{where}: unknown key '{key}' (known: {', '.join(KEYS)})") from None
        if error["type"] == "missing" or error["type"] == "missing_argument":
            raise SweepError(f"{where}: missing key '{key}'") from None
        raise SweepError(f"{where}: key '{key}': {error['msg']}, got {error['input']!r}") from None


def _only_distill_sets(table: dict, where: str) -> None:
    """A teacher's or a student's keys in a variant table: refused as unknown there
    (exported models stay dense; [distill] sets them)."""
    for key in DISTILL_KEYS:
        if key in table:
            raise SweepError(
                f"{where}: unknown key '{key}' (known: {', '.join(KEYS)}; "
                f"distillation is set in [distill])"
            )


def _no_dead_keys(v: Variant, where: str) -> None:
    """Keys that would be accepted and do nothing are mistakes: refuse them."""
    if v.warmup_epochs and v.schedule != "cosine":
        raise SweepError(
            f"{where}: key 'warmup_epochs' has no effect without "
            f'schedule = "cosine"; set the schedule or drop the warm-up'
        )
    if v.weight_decay and v.optimizer != "adamw":
        raise SweepError(
            f"{where}: key 'weight_decay' has no effect with optimizer "
            f'"{v.optimizer}" (decoupled decay is AdamW\'s); use '
            f'optimizer = "adamw" or drop it'
        )
    if v.warmup_epochs >= v.epochs:
        raise SweepError(
            f"{where}: key 'warmup_epochs' ({v.warmup_epochs}) must be "
            f"fewer than epochs ({v.epochs})"
        )


def parse(text: str, source: str = "<sweep>", study=None) -> list[Variant]:
    """The sweep's variants. `study(table)` expands a [[study]] table into (name, config)
    pairs (fmnist/training/study.py: asked of the persistent study, or a preview);
    without it, a [[study]] table is previewed by random draws from its space."""
    from fmnist.training import study as study_mod

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{source}: not valid TOML: {_where(str(e), text)}") from None
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise SweepError(
            f"{source}: unknown top-level key '{sorted(unknown)[0]}' "
            f"(expected [defaults], [ensemble], [search], [distill], [[variant]], [[grid]], "
            f"[[random]], [[study]])"
        )
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SweepError(f"{source}: 'defaults' must be a table ([defaults])")
    if "name" in defaults:
        raise SweepError(f"{source}: [defaults]: unknown key 'name' (names are per variant)")
    _only_distill_sets(defaults, f"{source}: [defaults]")
    # The defaults alone, key by key (the cross-key rules apply to whole variants).
    _make({"name": "defaults", "hidden": [1], **defaults}, f"{source}: [defaults]")
    entries = []  # (label for errors, config) in file order: variants, grids, samples
    for table, expand in (
        ("variant", None),
        ("grid", spaces.grid),
        ("random", spaces.sample),
        ("study", study or study_mod.preview),
    ):
        raw = doc.get(table, [])
        if not isinstance(raw, list):
            raise SweepError(f"{source}: '{table}' must be an array of tables ([[{table}]])")
        for i, entry in enumerate(raw, 1):
            if not isinstance(entry, dict):
                raise SweepError(f"{source}: {table} #{i} must be a table ([[{table}]])")
            label = (
                f"{table} '{entry['name']}'"
                if isinstance(entry.get("name"), str)
                else f"{table} #{i}"
            )
            _only_distill_sets(entry, f"{source}: {label}")
            if expand is None:
                entries.append((label, entry))
                continue
            try:
                generated = expand(entry)
            except ValueError as e:
                raise SweepError(f"{source}: {label}: {e}") from None
            entries += [
                (f"{label}: variant '{name}'", {**config, "name": name})
                for name, config in generated
            ]
    if not entries:
        raise SweepError(
            f"{source}: no variants; add at least one [[variant]], [[grid]], [[random]] "
            f"or [[study]] table"
        )
    variants, seen = [], set()
    for label, entry in entries:
        variant = from_dict({**defaults, **entry}, f"{source}: {label}")
        if variant.name in seen:
            raise SweepError(f"{source}: {label}: duplicate name; variant names must be unique")
        seen.add(variant.name)
        variants.append(variant)
    return distill(doc.get("distill"), variants, source)


def distill(table, variants: list[Variant], source: str = "<sweep>") -> list[Variant]:
    """The sweep's variants with its [distill] table applied: the teacher first (a
    Variant with `conv` stages, its recipe from [distill.teacher] alone, no label
    smoothing), then the variants, the students among them naming it. No table: the
    variants as they are."""
    if table is None:
        return variants
    where, at_teacher = f"{source}: [distill]", f"{source}: [distill.teacher]"
    if not isinstance(table, dict):
        raise SweepError(f"{source}: 'distill' must be a table ([distill])")
    unknown = set(table) - set(DISTILL_TABLE_KEYS)
    if unknown:
        raise SweepError(
            f"{where}: unknown key '{sorted(unknown)[0]}' (known: {', '.join(DISTILL_TABLE_KEYS)})"
        )
    spec = table.get("teacher")
    if spec == "ensemble":
        raise SweepError(
            f"{where}: key 'teacher': the ensemble as a teacher is not supported; "
            f'use a [distill.teacher] table with kind = "conv"'
        )
    if not isinstance(spec, dict):
        raise SweepError(f'{where}: missing [distill.teacher] table (kind = "conv", its recipe)')
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in TEACHER_KINDS:
        raise SweepError(
            f"{at_teacher}: key 'kind': one of {', '.join(TEACHER_KINDS)}, got {kind!r}"
        )
    if "conv" not in spec:
        raise SweepError(f"{at_teacher}: missing key 'conv' (filters per stage, e.g. [32, 64])")
    if spec.get("label_smoothing"):
        raise SweepError(
            f"{at_teacher}: key 'label_smoothing': the teacher trains without it "
            f"(smoothing blunts the soft targets); drop the key"
        )
    bad = set(spec) & (set(DISTILL_KEYS) - {"conv"})
    if bad:
        raise SweepError(f"{at_teacher}: unknown key '{sorted(bad)[0]}'")
    teacher = from_dict({"name": "teacher", **spec}, at_teacher)
    settings = {}
    for key, field, default in (
        ("temperature", "distill_temperature", 4.0),
        ("alpha", "distill_alpha", 0.9),
    ):
        value = table.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        settings[field] = value
    names = [v.name for v in variants]
    students = table.get("students", names)
    if (
        not isinstance(students, list)
        or not students
        or not all(isinstance(n, str) for n in students)
    ):
        raise SweepError(f"{where}: key 'students': a non-empty list of variant names")
    for name in students:
        if name not in names:
            raise SweepError(f"{where}: key 'students': no variant named {name!r}")
    if teacher.name in names:
        raise SweepError(
            f"{at_teacher}: name {teacher.name!r} is a variant's; give the teacher another"
        )
    out = [teacher]
    for v in variants:
        if v.name not in students:
            out.append(v)
            continue
        try:
            out.append(Variant(**{**v.to_dict(), "teacher": teacher.name, **settings}))
        except pydantic.ValidationError as e:
            error = e.errors()[0]
            key = {"distill_temperature": "temperature", "distill_alpha": "alpha"}.get(
                error["loc"][0], error["loc"][0]
            )
            raise SweepError(
                f"{where}: key '{key}': {error['msg']}, got {error['input']!r}"
            ) from None
    return out


def _where(message: str, text: str) -> str:
    """tomllib's message, with the line and column of an error at the end of the file
    (tomllib says only 'at end of document')."""
    lines = text.split("\n")
    return message.replace(
        "(at end of document)",
        f"(at line {len(lines)}, column {len(lines[-1]) + 1}: the end of the file)",
    )


def ensemble_size(text: str, source: str = "<sweep>") -> int:
    """The sweep's [ensemble] size: selection steps for the exported ensemble; 1 (the
    default) exports the single best variant."""
    table = tomllib.loads(text).get("ensemble", {})
    if not isinstance(table, dict):
        raise SweepError(f"{source}: 'ensemble' must be a table ([ensemble])")
    unknown = set(table) - {"size"}
    if unknown:
        raise SweepError(f"{source}: [ensemble]: unknown key '{sorted(unknown)[0]}' (known: size)")
    size = table.get("size", 1)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_ENSEMBLE:
        raise SweepError(
            f"{source}: [ensemble]: key 'size': an integer from 1 (off) to "
            f"{MAX_ENSEMBLE}, got {size!r}"
        )
    return size


def has_study(text: str) -> bool:
    """Whether the sweep asks a persistent study ([[study]])."""
    return bool(tomllib.loads(text).get("study"))


def halving(
    text: str, variants: list[Variant], epochs: int | None = None, source: str = "<sweep>"
) -> asha.Halving | None:
    """The sweep's [search] table: successive halving's settings, or None (every variant
    trains to its last epoch). `epochs` (--epochs) stands for max_epochs when given.
    Raises SweepError naming the key that makes no sense."""
    table = tomllib.loads(text).get("search", {})
    where = f"{source}: [search]"
    if not isinstance(table, dict):
        raise SweepError(f"{source}: 'search' must be a table ([search])")
    unknown = set(table) - set(asha.KEYS)
    if unknown:
        raise SweepError(
            f"{where}: unknown key '{sorted(unknown)[0]}' (known: {', '.join(asha.KEYS)})"
        )
    scheduler = table.get("scheduler", "none")
    if scheduler not in asha.SCHEDULERS:
        raise SweepError(
            f"{where}: key 'scheduler': one of {', '.join(asha.SCHEDULERS)}; got {scheduler!r}"
        )
    if scheduler == "none":
        if len(table) > ("scheduler" in table):
            key = sorted(set(table) - {"scheduler"})[0]
            raise SweepError(f"{where}: key '{key}' has no effect without scheduler = \"asha\"")
        return None
    if any(v.is_teacher for v in variants):
        # The rungs would decide when a teacher stops, and students wait on a finished one.
        raise SweepError(f'{source}: [distill] cannot be used with scheduler = "asha"')

    def integer(key: str, default, lo: int, what: str) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= 1000:
            raise SweepError(f"{where}: key '{key}': {what}, an integer from {lo}; got {value!r}")
        return value

    eta = integer("reduction_factor", 3, 2, "the share kept at each rung is 1/reduction_factor")
    first = integer("min_epochs", 1, 1, "the first rung's epochs")
    if epochs is None and "max_epochs" not in table:
        own = {v.epochs for v in variants}
        if len(own) > 1:
            raise SweepError(
                f"{where}: key 'max_epochs' is needed: the variants' epochs differ "
                f"({', '.join(map(str, sorted(own)))})"
            )
        epochs = own.pop()
    last = (
        epochs if epochs is not None else integer("max_epochs", None, 1, "the last rung's epochs")
    )
    if first >= last:
        raise SweepError(
            f"{where}: key 'min_epochs' ({first}) must be below max_epochs ({last}); "
            f"with no rung before the last, nothing is stopped"
        )
    for v in variants:
        if v.early_stopping:
            raise SweepError(
                f"{source}: variant '{v.name}': key 'early_stopping' cannot be used with "
                f'scheduler = "asha" (the rungs decide when a variant stops)'
            )
    return asha.Halving(reduction_factor=eta, min_epochs=first, max_epochs=last)


def from_dict(config: dict, where: str) -> Variant:
    """A Variant from a full config (a merged sweep entry, or one saved in a run's
    results.json), checked against the same schema."""
    variant = _make(config, where)
    _no_dead_keys(variant, where)
    return variant


def load(path: str | Path) -> list[Variant]:
    """The variants of a sweep file (SweepError naming the file on any problem)."""
    return parse(read(path), str(path))


def read(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(
            f"{p}: sweep file not found; pass --sweep with a file such as jobs/default.toml"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(f"{p}: cannot read sweep file ({e})") from None


def with_epochs(variants: list[Variant], epochs: int | None) -> list[Variant]:
    """--epochs N: the same variants, N epochs each (for quick runs)."""
    if epochs is None:
        return variants
    return [
        replace(v, epochs=epochs, warmup_epochs=min(v.warmup_epochs, epochs - 1)) for v in variants
    ]
