"""The exported versions as an operator sees them: labels, promotion, rollback, pruning,
and the quality gate's decision.

Labels live in `<export-dir>/models.config`, a TF Serving model config (text protobuf):

    model_config_list {
      config {
        name: "fmnist"  base_path: "/data/models/fmnist"  model_platform: "tensorflow"
        model_version_policy { specific { versions: 3 versions: 4 } }
        version_labels { key: "stable" value: 3 }
        version_labels { key: "candidate" value: 4 }
      }
    }

so TF Serving (started with --model_config_file) serves exactly the versions listed, and
`/v1/models/fmnist/labels/stable` is the version `fmnist-job score` uses. Beside it,
`models.history.json` keeps the stable versions in the order they were made stable:
`rollback` pops it (TF Serving's config has no room for history).

Every change happens under an exclusive lock on `<export-dir>/.models.lock` (fcntl.flock:
held by an open file, released by the kernel when the process dies, so a killed process
never leaves a stale lock) and is written aside and renamed into place (files.atomic_file):
a reader sees the old config or the new one. The gate is a compare-and-set under that
lock: a run promotes only when `stable` is still the version it was compared with, so two
runs racing cannot both promote.

The config is parsed and printed by protobuf's own text_format, with message classes
built here from the part of TF Serving's model_server_config.proto this file uses (the
tensorflow-serving-api package, which has them, pins its own TensorFlow; nothing else
here has them). Field names and numbers are TF Serving's, so a field this schema does not
know (logging_config, say) is refused with its line number rather than dropped on rewrite.

No TensorFlow, no Ray: `fmnist-job models list` took 1.6 s on the loaded 2-core machine
this was written on, most of it importing Typer; protobuf's descriptor_pb2 was 0.2-0.3 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from fmnist.core import export
from fmnist.core.files import atomic_file, write_json_atomic

CONFIG = "models.config"
HISTORY = "models.history.json"
LOCK = ".models.lock"
STABLE, CANDIDATE = "stable", "candidate"
DEFAULT_TOLERANCE = 0.2  # accuracy points


class VersionsError(Exception):
    """Bad input for a `models` command or an unreadable models.config: one line, exit 2."""


# -----------------------------------------------------------------------------
# The schema: TF Serving's ModelServerConfig, the parts fmnist-job writes

def _messages():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="fmnist_tfserving_config.proto",
                                           package="tensorflow.serving", syntax="proto3")

    def message(parent, name, fields, nested=()):
        m = parent.add()
        m.name = name
        for args in fields:
            fname, number, ftype, label, *type_name = args
            field = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name[0]
        for build in nested:
            build(m.nested_type)
        return m

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    # file_system_storage_path_source.proto: ServableVersionPolicy
    policy = message(f.message_type, "ServableVersionPolicy", [
        ("latest", 100, F.TYPE_MESSAGE, opt, ".tensorflow.serving.ServableVersionPolicy.Latest"),
        ("all", 101, F.TYPE_MESSAGE, opt, ".tensorflow.serving.ServableVersionPolicy.All"),
        ("specific", 102, F.TYPE_MESSAGE, opt,
         ".tensorflow.serving.ServableVersionPolicy.Specific"),
    ], nested=[
        lambda n: message(n, "Latest", [("num_versions", 1, F.TYPE_UINT32, opt)]),
        lambda n: message(n, "All", []),
        lambda n: message(n, "Specific", [("versions", 1, F.TYPE_INT64, rep)]),
    ])
    policy.oneof_decl.add(name="policy_choice")
    for field in policy.field:
        field.oneof_index = 0

    def labels_entry(n):
        entry = message(n, "VersionLabelsEntry", [("key", 1, F.TYPE_STRING, opt),
                                                  ("value", 2, F.TYPE_INT64, opt)])
        entry.options.map_entry = True

    # model_server_config.proto: ModelConfig, ModelConfigList, ModelServerConfig
    message(f.message_type, "ModelConfig", [
        ("name", 1, F.TYPE_STRING, opt),
        ("base_path", 2, F.TYPE_STRING, opt),
        ("model_platform", 4, F.TYPE_STRING, opt),
        ("model_version_policy", 7, F.TYPE_MESSAGE, opt,
         ".tensorflow.serving.ServableVersionPolicy"),
        ("version_labels", 8, F.TYPE_MESSAGE, rep,
         ".tensorflow.serving.ModelConfig.VersionLabelsEntry"),
    ], nested=[labels_entry])
    message(f.message_type, "ModelConfigList", [
        ("config", 1, F.TYPE_MESSAGE, rep, ".tensorflow.serving.ModelConfig")])
    server = message(f.message_type, "ModelServerConfig", [
        ("model_config_list", 1, F.TYPE_MESSAGE, opt, ".tensorflow.serving.ModelConfigList")])
    server.oneof_decl.add(name="config")
    server.field[0].oneof_index = 0

    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.ModelServerConfig"))


# -----------------------------------------------------------------------------
# models.config as plain data

@dataclasses.dataclass
class Config:
    name: str
    base_path: str
    versions: list[int]  # the `specific` policy: what TF Serving serves
    labels: dict[str, int]

    @property
    def stable(self) -> int | None:
        return self.labels.get(STABLE)


def parse_config(text: str, where: str = CONFIG) -> Config:
    """A models.config fmnist-job can manage: one model, a `specific` version policy
    (or none yet), labels pointing at listed versions. Anything else: VersionsError."""
    from google.protobuf import text_format

    msg = _messages()()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        raise VersionsError(f"{where}: not a TF Serving model config ({e}); fix it, or "
                            f"restore it from a backup (the versions beside it are intact)")
    configs = msg.model_config_list.config
    if len(configs) != 1:
        raise VersionsError(f"{where}: lists {len(configs)} models; fmnist-job manages a "
                            f"config with exactly one")
    c = configs[0]
    policy = c.model_version_policy.WhichOneof("policy_choice")
    if policy not in (None, "specific"):
        raise VersionsError(f"{where}: model_version_policy is '{policy}'; fmnist-job needs "
                            f"'specific' (the versions it lists are the ones served)")
    versions = sorted(set(c.model_version_policy.specific.versions))
    labels = dict(c.version_labels)
    for label, version in labels.items():
        if version not in versions:
            raise VersionsError(f"{where}: label '{label}' points at version {version}, "
                                f"which the version policy does not list")
    return Config(name=c.name, base_path=c.base_path, versions=versions, labels=labels)


def format_config(config: Config) -> str:
    from google.protobuf import text_format

    msg = _messages()()
    c = msg.model_config_list.config.add(name=config.name, base_path=config.base_path,
                                         model_platform="tensorflow")
    c.model_version_policy.specific.versions.extend(sorted(set(config.versions)))
    for label, version in config.labels.items():  # text_format prints them sorted by key
        c.version_labels[label] = version
    return text_format.MessageToString(msg)


# -----------------------------------------------------------------------------
# The export directory

def disk_versions(base: Path) -> list[int]:
    """Finished versions on disk (integer dirs with a saved_model.pb), ascending."""
    return [v for v in export.versions(base) if (base / str(v) / "saved_model.pb").is_file()]


def read_config(base: Path) -> Config | None:
    """The export dir's models.config, or None when there is none yet."""
    path = base / CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise VersionsError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})")
    return parse_config(text, str(path))


def new_config(base: Path) -> Config:
    # base_path is where TF Serving finds the versions: the same path on every pod here
    # (the volume is mounted at /data everywhere, deploy/optional/tfserving.yaml too).
    return Config(name=base.name or "fmnist", base_path=str(base.resolve()), versions=[],
                  labels={})


def read_history(base: Path) -> list[int]:
    try:
        saved = json.loads((base / HISTORY).read_text())
        return [int(e["version"]) for e in saved["stable"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise VersionsError(f"{base / HISTORY}: unreadable ({e}); fix it, or delete it "
                            f"(rollback then has no earlier stable versions to return to)")


def _write(base: Path, config: Config, history: list[int] | None = None,
           reason: str = "") -> None:
    """History first, config last: the config is what counts, and a crash between the
    two leaves a history whose top is the next stable (rollback copes, see below)."""
    if history is not None:
        old = _history_entries(base)
        entries = []
        for i, version in enumerate(history):  # keep the when/why of entries kept
            entries.append(old[i] if i < len(old) and old[i]["version"] == version else
                           {"version": version, "since": _now(), "why": reason})
        write_json_atomic(base / HISTORY, {"stable": entries})
    with atomic_file(base / CONFIG, "w", encoding="utf-8") as f:
        f.write(format_config(config))


def _history_entries(base: Path) -> list[dict]:
    try:
        return json.loads((base / HISTORY).read_text())["stable"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def locked(base: Path) -> Iterator[None]:
    """Exclusive across processes and machines sharing the volume (flock over NFS is a
    POSIX lock on Linux clients), released when the process ends however it ends."""
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _state(base: Path) -> tuple[Config, list[int]]:
    config = read_config(base) or new_config(base)
    history = read_history(base)
    if config.stable is not None and (not history or history[-1] != config.stable):
        history.append(config.stable)  # made stable by hand, or a crash before the config
    return config, history


def _check_base(base: Path) -> list[int]:
    if not base.is_dir():
        raise VersionsError(f"{base}: no such export directory; pass the --export-dir "
                            f"fmnist-job train exported into")
    found = disk_versions(base)
    if not found:
        raise VersionsError(f"{base}: no exported versions in it; train first "
                            f"(fmnist-job train --export-dir {base})")
    return found


# -----------------------------------------------------------------------------
# What `models` commands and `score` use

def resolve(base: Path) -> tuple[int, str]:
    """The version `score` and TF Serving use: (version, why). `stable` when the config
    has it, else the newest version on disk."""
    found = _check_base(base)
    config = read_config(base)
    if config and config.stable is not None:
        if config.stable not in found:
            raise VersionsError(f"{base / CONFIG}: stable is version {config.stable}, which "
                                f"is not on disk; promote an existing one "
                                f"(fmnist-job models promote N)")
        return config.stable, STABLE
    return found[-1], "newest; no stable label"


def why_used(version_dir: Path) -> str:
    """' (stable)', ' (candidate)', ' (newest; no stable label)' or '': what `score` says
    of the version it uses. Never raises: resolve() has read the config already."""
    try:
        config = read_config(version_dir.parent)
        number = int(version_dir.name)
    except (VersionsError, ValueError):
        return ""
    labels = sorted(k for k, v in (config.labels if config else {}).items() if v == number)
    if labels:
        return f" ({', '.join(labels)})"
    if (config is None or config.stable is None) and \
            number == (disk_versions(version_dir.parent) or [None])[-1]:
        return " (newest; no stable label)"
    return ""


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def listing(base: Path) -> list[dict]:
    """One row per version on disk, ascending."""
    found = _check_base(base)
    config = read_config(base) or new_config(base)
    by_version: dict[int, list[str]] = {}
    for label, version in config.labels.items():
        by_version.setdefault(version, []).append(label)
    rows = []
    for version in found:
        try:
            meta = json.loads((base / str(version) / export.METADATA).read_text())
        except (OSError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        variant = meta.get("variant")
        rows.append({
            "version": version,
            "created": meta.get("exported_at"),
            "variant": variant.get("name") if isinstance(variant, dict) else None,
            "val_accuracy": meta.get("val_accuracy"),
            "test_accuracy": meta.get("test_accuracy"),
            "run_id": meta.get("run_id"),
            "labels": sorted(by_version.get(version, [])),
            "served": version in config.versions,
            "size_bytes": size_of(base / str(version)),
        })
    return rows


def promote(base: Path, version: int, reason: str = "promote") -> tuple[int | None, int]:
    """Label `version` stable; returns (previous stable, version)."""
    found = _check_base(base)
    if version not in found:
        raise VersionsError(f"version {version} is not in {base} (versions: "
                            f"{', '.join(map(str, found))}); see fmnist-job models list")
    with locked(base):
        config, history = _state(base)
        before = config.stable
        if before == version:
            return before, version
        config.labels[STABLE] = version
        if config.labels.get(CANDIDATE) == version:
            del config.labels[CANDIDATE]  # it is no longer a candidate: it won
        config.versions = sorted(set(config.versions) | {version})
        _write(base, config, history + [version], reason)
        return before, version


def rollback(base: Path) -> tuple[int, int]:
    """Back to the stable before the current one; returns (from, to)."""
    found = _check_base(base)
    with locked(base):
        config, history = _state(base)
        if config.stable is None:
            raise VersionsError(f"{base}: no version is labelled stable; nothing to roll "
                                f"back (fmnist-job models promote N sets one)")
        current = config.stable
        stack = history[:-1]
        while stack and (stack[-1] not in found or stack[-1] == current):
            stack.pop()  # pruned by hand, or the same version twice in a row
        if not stack:
            raise VersionsError(f"{base}: version {current} is the first stable version; "
                                f"there is none before it to roll back to")
        target = stack[-1]
        config.labels[STABLE] = target
        config.versions = sorted(set(config.versions) | {target})
        _write(base, config, stack, "rollback")
        return current, target


def rollback_target(base: Path, config: Config, history: list[int]) -> int | None:
    found = disk_versions(base)
    stack = [v for v in history[:-1] if v in found and v != config.stable]
    return stack[-1] if stack else None


def prune(base: Path, keep: int) -> list[int]:
    """Delete all but the `keep` newest versions, never a labelled one nor the version
    rollback would go back to. Returns the versions removed.

    The config stops listing them first (TF Serving unloads them), then each directory
    is renamed to a hidden name and deleted: nobody loads a half-deleted version."""
    found = _check_base(base)
    with locked(base):
        config, history = _state(base)
        protected = set(found[-keep:] if keep else []) | set(config.labels.values())
        target = rollback_target(base, config, history)
        if target is not None:
            protected.add(target)
        doomed = [v for v in found if v not in protected]
        if not doomed:
            return []
        if config.versions or config.labels:
            config.versions = [v for v in config.versions if v not in doomed]
            _write(base, config)
        for version in doomed:
            hidden = base / f".pruned-{version}"
            os.rename(base / str(version), hidden)
            shutil.rmtree(hidden, ignore_errors=True)
        return doomed


# -----------------------------------------------------------------------------
# The quality gate

def decide(winner_val: float, stable_val: float | None,
           tolerance: float = DEFAULT_TOLERANCE) -> tuple[str, str]:
    """(decision, why): promote unless the winner is worse than stable by more than
    `tolerance` accuracy points. Accuracies are fractions (0.8912)."""
    if stable_val is None:
        return "promote", "no stable version yet"
    diff = round(100 * (winner_val - stable_val), 6)  # points; rounding: no 1e-15 verdicts
    if diff > 0:
        return "promote", f"better than stable by {diff:.2f} points"
    if diff >= -tolerance:
        return "promote", f"within {tolerance:g} points of stable ({diff:+.2f})"
    return "candidate", f"worse than stable by {-diff:.2f} points (tolerance {tolerance:g})"


def gate_baseline(base: Path) -> dict:
    """What a run's winner is compared with: {"version": the stable version or None,
    "archive": its SavedModel packed for the Ray task that scores it (export.pack), or
    None, "problem": why it cannot be compared, or None}. Read without the lock, as late
    as possible; apply_gate checks under the lock that stable has not changed since."""
    try:
        version, path = stable_for_gate(base)
        return {"version": version, "archive": export.pack(path) if path else None,
                "problem": None}
    except (VersionsError, OSError) as e:  # the gate then refuses to promote
        return {"version": None, "archive": None, "problem": str(e)}


def gate(base: Path, version: int, built: dict, baseline: dict, tolerance: float,
         run_id: str) -> dict:
    """Label the new `version` (apply_gate) from what the export task measured (`built`:
    val_accuracy, and stable_val_accuracy or stable_error) and return what results.json
    records. A models.config broken since the run began leaves the version unlabelled."""
    stable = baseline["version"]
    problem = baseline["problem"] or built.get("stable_error")
    refuse = (f"stable version {stable if stable is not None else '?'} could not be "
              f"evaluated ({problem}); not promoted") if problem else None
    try:
        return apply_gate(base, version, built["val_accuracy"], stable,
                          built.get("stable_val_accuracy"), tolerance, run_id, refuse=refuse)
    except VersionsError as e:
        return {"decision": "unlabelled", "reason": str(e), "version": version,
                "val_accuracy": built["val_accuracy"], "compared_with": stable,
                "stable_val_accuracy": built.get("stable_val_accuracy"),
                "tolerance_points": tolerance}


def gate_line(record: dict) -> str:
    """The gate's decision in one line."""
    val = f"val {100 * record['val_accuracy']:.2f}%"
    if record.get("stable_val_accuracy") is not None:
        val += (f" vs stable v{record['compared_with']} "
                f"{100 * record['stable_val_accuracy']:.2f}%")
    if record["decision"] == "promote":
        return (f"gate: version {record['version']} promoted to stable ({val}; "
                f"{record['reason']})")
    if record["decision"] == "candidate":
        return (f"gate: version {record['version']} NOT promoted, labelled candidate; "
                f"stable stays version {record.get('stable_before')} ({val}; "
                f"{record['reason']})")
    return f"gate: version {record['version']} left unlabelled: {record['reason']}"


def stable_for_gate(base: Path) -> tuple[int | None, Path | None]:
    """The stable version to compare a new winner with (None: no stable yet). Read
    without the lock: `apply_gate` checks under it that stable has not changed since."""
    config = read_config(base)
    if config is None or config.stable is None:
        return None, None
    path = base / str(config.stable)
    if not (path / "saved_model.pb").is_file():
        raise VersionsError(f"{base / CONFIG}: stable is version {config.stable}, which "
                            f"is not on disk; promote an existing one first")
    return config.stable, path


def apply_gate(base: Path, version: int, winner_val: float, compared_with: int | None,
               stable_val: float | None, tolerance: float, run_id: str = "",
               refuse: str | None = None) -> dict:
    """Label the newly exported `version` stable or candidate, atomically; returns the
    record for results.json. Promotes only if stable is still `compared_with`, and never
    with `refuse` (why the comparison could not be made: stable could not be evaluated)."""
    decision, why = ("candidate", refuse) if refuse else \
        decide(winner_val, stable_val, tolerance)
    with locked(base):
        config, history = _state(base)
        if config.stable != compared_with:
            decision = "candidate"
            why = (f"stable changed to version {config.stable} while this run compared "
                   f"with {compared_with if compared_with is not None else 'none'}; "
                   f"not promoted (fmnist-job models promote {version} to override)")
        config.versions = sorted(set(config.versions) | {version})
        before = config.stable
        if decision == "promote":
            config.labels[STABLE] = version
            if config.labels.get(CANDIDATE) == version:
                del config.labels[CANDIDATE]
            _write(base, config, history + [version], f"gate: run {run_id}")
        else:
            config.labels[CANDIDATE] = version
            _write(base, config)
    return {"decision": decision, "reason": why, "version": version,
            "stable_before": before, "compared_with": compared_with,
            "val_accuracy": winner_val, "stable_val_accuracy": stable_val,
            "tolerance_points": tolerance}


def table(rows: list[dict]) -> str:
    """`models list` as a plain aligned table (times in UTC)."""
    from fmnist.core.tables import aligned, percent

    return aligned(
        ["version", "created (UTC)", "variant", "val%", "test%", "label", "served", "size"],
        [[str(r["version"]), (r["created"] or "-")[:19].replace("T", " "), r["variant"] or "-",
          percent(r["val_accuracy"]), percent(r["test_accuracy"]),
          ",".join(r["labels"]) or "-", "yes" if r["served"] else "no",
          f"{r['size_bytes'] / 1e6:.1f} MB"] for r in rows])
