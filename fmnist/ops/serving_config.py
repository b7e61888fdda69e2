"""`<export-dir>/models.config`: TF Serving's model config, as fmnist-job reads and writes it.

A text protobuf of TF Serving's ModelServerConfig:

    model_config_list {
      config {
        name: "fmnist"  base_path: "/data/models/fmnist"  model_platform: "tensorflow"
        model_version_policy { specific { versions: 3 versions: 4 } }
        version_labels { key: "stable" value: 3 }
        version_labels { key: "candidate" value: 4 }
      }
    }

so TF Serving (started with --model_config_file) serves exactly the versions listed, and
`/v1/models/fmnist/labels/stable` is the version `fmnist-job score` uses.

Parsed and printed by protobuf's text_format with TF Serving's own message classes
(tensorflow_serving.config, from the tensorflow-serving-api package; importing them does
not import TensorFlow). fmnist-job rewrites the file from what it manages (one model,
its versions and labels), so a config that sets anything else (logging_config, say) is
refused rather than silently losing that setting on the next rewrite.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fmnist.core import storage

CONFIG = "models.config"
STABLE, CANDIDATE = "stable", "candidate"
# What fmnist-job writes and keeps on a rewrite; any other field set is refused.
MANAGED = {"model_config_list"}
MANAGED_MODEL = {"name", "base_path", "model_platform", "model_version_policy", "version_labels"}


class VersionsError(Exception):
    """Bad input for a `models` command or an unreadable models.config: one line, exit 2."""


@dataclasses.dataclass
class Config:
    """models.config as plain data: the one model fmnist-job manages."""

    name: str
    base_path: str
    versions: list[int]  # the `specific` policy: what TF Serving serves
    labels: dict[str, int]

    @property
    def stable(self) -> int | None:
        return self.labels.get(STABLE)


def _message():
    from tensorflow_serving.config import model_server_config_pb2

    return model_server_config_pb2.ModelServerConfig()


def parse_config(text: str, where: str = CONFIG) -> Config:
    """A models.config fmnist-job can manage.

    Args:
        text: the file's text.
        where: the file's name, for the error message.

    Returns:
        One model with a `specific` version policy (or none yet) and labels pointing at
        listed versions.

    Raises:
        VersionsError: anything else, in one line naming `where`.
    """
    from google.protobuf import text_format

    msg = _message()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        raise VersionsError(
            f"{where}: not a TF Serving model config ({e}); fix it, or "
            f"restore it from a backup (the versions beside it are intact)"
        )
    _refuse_unmanaged(msg, MANAGED, where)
    configs = msg.model_config_list.config
    if len(configs) != 1:
        raise VersionsError(
            f"{where}: lists {len(configs)} models; fmnist-job manages a config with exactly one"
        )
    c = configs[0]
    _refuse_unmanaged(c, MANAGED_MODEL, where)
    policy = c.model_version_policy.WhichOneof("policy_choice")
    if policy not in (None, "specific"):
        raise VersionsError(
            f"{where}: model_version_policy is '{policy}'; fmnist-job needs "
            f"'specific' (the versions it lists are the ones served)"
        )
    versions = sorted(set(c.model_version_policy.specific.versions))
    labels = dict(c.version_labels)
    for label, version in labels.items():
        if version not in versions:
            raise VersionsError(
                f"{where}: label '{label}' points at version {version}, "
                f"which the version policy does not list"
            )
    return Config(name=c.name, base_path=c.base_path, versions=versions, labels=labels)


def _refuse_unmanaged(message, managed: set[str], where: str) -> None:
    extra = [field.name for field, _ in message.ListFields() if field.name not in managed]
    if extra:
        raise VersionsError(
            f"{where}: sets {', '.join(extra)}, which fmnist-job does not "
            f"manage and would drop on its next rewrite; remove it, or "
            f"keep this config out of fmnist-job's --export-dir"
        )


def format_config(config: Config) -> str:
    """`config` as models.config's text (labels sorted by name, as text_format prints
    a map)."""
    from google.protobuf import text_format

    msg = _message()
    c = msg.model_config_list.config.add(
        name=config.name, base_path=config.base_path, model_platform="tensorflow"
    )
    c.model_version_policy.specific.versions.extend(sorted(set(config.versions)))
    for label, version in config.labels.items():
        c.version_labels[label] = version
    return text_format.MessageToString(msg)


def read_config(base: Path) -> Config | None:
    """The export dir's models.config, or None when there is none yet.

    Raises:
        VersionsError: unreadable, or not a config fmnist-job can manage.
    """
    path = base / CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise VersionsError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})")
    return parse_config(text, str(path))


def new_config(base: Path) -> Config:
    """The config of an export dir that has none yet: no versions, no labels."""
    # base_path is where TF Serving finds the versions: the same path on every pod here
    # (the volume is mounted at /data everywhere, deploy/optional/tfserving.yaml too).
    return Config(name=base.name or "fmnist", base_path=storage.uri(base), versions=[], labels={})


def write_config(base: Path, config: Config) -> None:
    """Write models.config whole (aside and renamed, or one PUT): readers see old or new."""
    storage.write_text(base / CONFIG, format_config(config))
