"""Fashion-MNIST: the four original release files, checked and parsed with NumPy.

The files ship inside the package (fmnist/datasets/), so a wheel, a checkout and a
container image all work offline. `--data-dir` / FMNIST_DATA_DIR point at another copy
with the same four names; every file is checked against the release's SHA-256 first.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# The SHA-256 sums of the release files (the ones keras.datasets.fashion_mnist checks).
SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

BUNDLED_DIR = Path(__file__).parents[1] / "datasets"


class DataError(Exception):
    """A dataset file is missing, unreadable or not the release file."""


@dataclass
class Splits:
    """uint8 images [N, 28, 28] (0 = background) and uint8 labels [N] per split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: dict[str, str]


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--data-dir, else FMNIST_DATA_DIR, else the copy bundled with the package."""
    chosen = explicit or os.environ.get("FMNIST_DATA_DIR")
    return Path(chosen) if chosen else BUNDLED_DIR


def _read_verified(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path}: missing; expected the Fashion-MNIST release file "
            f"(sha256 {SHA256[path.name]}). Point --data-dir at a full copy."
        ) from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror}); check its permissions.") from None
    got = hashlib.sha256(raw).hexdigest()
    if got != SHA256[path.name]:
        raise DataError(
            f"{path}: sha256 {got} is not the release's {SHA256[path.name]}; "
            f"replace it with the original file."
        )
    return raw


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    """IDX: big-endian magic (2051 images / 2049 labels), the dims, then uint8 data."""
    data = gzip.decompress(raw)
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if magic not in (2049, 2051):
        raise DataError(f"{name}: not an IDX uint8 file (magic {magic}).")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def check_present(directory: str | os.PathLike | None = None) -> Path:
    """The data directory, once it holds the four release files: a cheap check (no
    reading), so that a wrong --data-dir fails at once, before Ray starts."""
    d = data_dir(directory)
    if not d.is_dir():
        raise DataError(
            f"{d}: not a directory; --data-dir / FMNIST_DATA_DIR must name a "
            f"directory holding the four Fashion-MNIST .gz files."
        )
    for name in SHA256:
        if not (d / name).exists():
            _read_verified(d / name)  # names the missing file
    return d


def load_arrays(directory: str | os.PathLike | None = None):
    """(x_train, y_train, x_test, y_test, sha256s) from verified release files."""
    d = check_present(directory)
    arrays = {name: _parse_idx(_read_verified(d / name), name) for name in SHA256}
    return (
        arrays["train-images-idx3-ubyte.gz"],
        arrays["train-labels-idx1-ubyte.gz"],
        arrays["t10k-images-idx3-ubyte.gz"],
        arrays["t10k-labels-idx1-ubyte.gz"],
        dict(SHA256),
    )


def stratified_split(y: np.ndarray, val_size: int, seed: int = 0):
    """Indices (train, val): val_size examples, each class in proportion, deterministic."""
    if not 0 < val_size < len(y):
        raise ValueError(f"val_size must be between 1 and {len(y) - 1}, got {val_size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    # Largest-remainder allocation so the per-class counts add up to exactly val_size.
    exact = counts * val_size / len(y)
    take = np.floor(exact).astype(int)
    take[np.argsort(exact - take)[::-1][: val_size - take.sum()]] += 1
    val = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    )
    val.sort()
    train = np.setdiff1d(np.arange(len(y)), val, assume_unique=True)
    return train, val


def load(directory=None, val_size: int = 5000, limit: int | None = None, seed: int = 0) -> Splits:
    """Train/val/test splits. `limit` keeps a stratified slice of the training set
    (for tests and quick runs); the validation split comes out of that slice."""
    x_train, y_train, x_test, y_test, sums = load_arrays(directory)
    if limit is not None and limit < len(y_train):
        _, keep = stratified_split(y_train, limit, seed=seed + 1)
        x_train, y_train = x_train[keep], y_train[keep]
    train, val = stratified_split(y_train, val_size, seed=seed)
    return Splits(x_train[train], y_train[train], x_train[val], y_train[val], x_test, y_test, sums)
