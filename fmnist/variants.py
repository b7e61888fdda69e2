"""Sweep files: TOML with a [defaults] table and a [[variant]] array.

    [defaults]
    epochs = 5

    [[variant]]
    name = "tutorial"
    hidden = [128]

Every key is checked against one JSON schema before anything starts, so a typo in the
tenth variant does not surface an hour into a nightly run. Errors name the file, the
variant and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import jsonschema


class SweepError(Exception):
    """The sweep file is missing, unparsable or has an invalid variant."""


@dataclass(frozen=True)
class Variant:
    name: str
    hidden: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    normalization: str = "none"          # none | batch | layer, after each hidden Dense
    optimizer: str = "adam"              # adam | adamw | sgd
    learning_rate: float = 1e-3
    weight_decay: float = 0.0            # decoupled (AdamW); L2-free for adam/sgd
    schedule: str = "constant"           # constant | cosine (decays to 0 over the epochs)
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    batch_size: int = 32
    epochs: int = 5
    early_stopping: int = 0              # patience in epochs on val accuracy; 0 = off
    augment_flip: bool = False           # random horizontal flips
    augment_shift: int = 0               # random shifts of up to N pixels
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


# One schema for a fully-merged variant. Ranges are generous but catch the typos that
# matter (a learning rate of 10, a dropout of 1.0, a batch of 0).
# The sweep files that ship inside the package (a checkout's jobs/ links here), so the
# default sweep is found from any working directory and in an installed wheel.
BUNDLED_DIR = Path(__file__).parent / "jobs"
DEFAULT_SWEEP = BUNDLED_DIR / "default.toml"

_PROPS = {
    "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
    "hidden": {"type": "array", "minItems": 1, "maxItems": 8,
               "items": {"type": "integer", "minimum": 1, "maximum": 8192}},
    "activation": {"enum": ["relu", "gelu", "elu", "selu", "tanh", "swish", "sigmoid"]},
    "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "normalization": {"enum": ["none", "batch", "layer"]},
    "optimizer": {"enum": ["adam", "adamw", "sgd"]},
    "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "weight_decay": {"type": "number", "minimum": 0, "maximum": 1},
    "schedule": {"enum": ["constant", "cosine"]},
    "warmup_epochs": {"type": "integer", "minimum": 0, "maximum": 100},
    "label_smoothing": {"type": "number", "minimum": 0, "exclusiveMaximum": 0.5},
    "batch_size": {"type": "integer", "minimum": 1, "maximum": 65536},
    "epochs": {"type": "integer", "minimum": 1, "maximum": 1000},
    "early_stopping": {"type": "integer", "minimum": 0, "maximum": 1000},
    "augment_flip": {"type": "boolean"},
    "augment_shift": {"type": "integer", "minimum": 0, "maximum": 4},
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
}
assert set(_PROPS) == {f.name for f in fields(Variant)}
VARIANT_SCHEMA = {"type": "object", "properties": _PROPS,
                  "required": ["name", "hidden"], "additionalProperties": False}
DEFAULTS_SCHEMA = {"type": "object", "additionalProperties": False,
                   "properties": {k: v for k, v in _PROPS.items() if k != "name"}}
_TOP_KEYS = {"defaults", "variant"}


def _check(instance: dict, schema: dict, where: str) -> None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(instance))
    if error is None:
        return
    if error.validator == "additionalProperties":
        extra = sorted(set(instance) - set(schema["properties"]))
        raise SweepError(f"{where}: unknown key '{extra[0]}' "
                         f"(known: {', '.join(schema['properties'])})")
    key = error.absolute_path[0] if error.absolute_path else None
    if error.validator == "required":
        raise SweepError(f"{where}: {error.message}")
    # bool is an int in Python but not in JSON schema, so the message is already right.
    raise SweepError(f"{where}: key '{key}': {error.message}")


def parse(text: str, source: str = "<sweep>") -> list[Variant]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{source}: not valid TOML: {e}") from None
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise SweepError(f"{source}: unknown top-level key '{sorted(unknown)[0]}' "
                         f"(expected [defaults] and [[variant]] tables)")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SweepError(f"{source}: 'defaults' must be a table ([defaults])")
    _check(defaults, DEFAULTS_SCHEMA, f"{source}: [defaults]")
    raw = doc.get("variant", [])
    if not isinstance(raw, list) or not raw:
        raise SweepError(f"{source}: no variants; add at least one [[variant]] table")
    variants, seen = [], set()
    for i, entry in enumerate(raw, 1):
        if not isinstance(entry, dict):
            raise SweepError(f"{source}: variant #{i} must be a table ([[variant]])")
        label = f"variant '{entry['name']}'" if isinstance(entry.get("name"), str) \
            else f"variant #{i}"
        variant = from_dict({**defaults, **entry}, f"{source}: {label}")
        if variant.name in seen:
            raise SweepError(f"{source}: {label}: duplicate name; variant names must be unique")
        seen.add(variant.name)
        variants.append(variant)
    return variants


def from_dict(config: dict, where: str) -> Variant:
    """A Variant from a full config (a merged sweep entry, or one saved in a run's
    results.json), checked against the same schema."""
    _check(config, VARIANT_SCHEMA, where)
    return Variant(**{**config, "hidden": tuple(config["hidden"])})


def load(path: str | Path) -> list[Variant]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"{p}: sweep file not found; pass --sweep with a file "
                         f"such as jobs/default.toml") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(f"{p}: cannot read sweep file ({e})") from None
    return parse(text, str(p))


def with_epochs(variants: list[Variant], epochs: int | None) -> list[Variant]:
    """--epochs N: the same variants, N epochs each (for quick runs)."""
    if epochs is None:
        return variants
    return [replace(v, epochs=epochs, warmup_epochs=min(v.warmup_epochs, epochs - 1))
            for v in variants]

