"""Make the README's `--preview` sheet of flagged rows (docs/img/uncertain.png).

    .venv/bin/python tests/benchmarks/preview_sheet.py --model DIR [--out docs/img/uncertain.png]

A script, not a test (pytest does not collect it). It writes photos of six test items
(one each of the photo kinds below, from tests/photos.py) and eight development
non-clothing images (tests/nonclothing.py; never a held-out kind) into a temporary
directory, then runs `fmnist-job score DIR --preview OUT` on them with the export given,
so the sheet shows what a user sees: each input as the model saw it, its label, its
confidence, and a red `?` on the rows marked `uncertain`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the generators
import nonclothing  # noqa: E402
import photos  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PHOTO_KINDS = ("catalogue", "sweep", "coloured", "shadow", "cutout-matte", "tabletop")
OTHER_KINDS = ("text", "blank", "noise", "landscape", "digits", "object", "chart", "food")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="export base or version")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "uncertain.png")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    from fmnist.core import data

    kinds, others = list(PHOTO_KINDS), list(OTHER_KINDS)
    held = set(kinds) & set(photos.HELD_OUT) | set(others) & set(nonclothing.HELD_OUT)
    if held:
        raise SystemExit(f"held-out kinds are not shown before they are reported: {held}")
    _, _, x, y, _ = data.load_arrays()
    pick = np.random.default_rng(args.seed).choice(len(x), len(kinds), replace=False)
    with tempfile.TemporaryDirectory(prefix="preview-sheet-") as tmp:
        root = Path(tmp) / "inputs"
        for kind, i in zip(kinds, pick):
            photos.write_group(root, kind, x[i : i + 1], y[i : i + 1], seed=args.seed)
        for kind in others:
            nonclothing.write_kind(root, kind, 1, seed=args.seed)
        count = len(kinds) + len(others)
        subprocess.run(
            [
                str(Path(sys.executable).with_name("fmnist-job")),
                "score",
                str(root),
                "--model",
                str(args.model),
                "--out",
                str(Path(tmp) / "rows.csv"),
                "--preview",
                str(args.out),
                "--preview-count",
                str(count),
            ],
            check=True,
        )
    print(f"wrote {args.out}: {len(kinds)} photos ({', '.join(kinds)}), {len(others)} others")


if __name__ == "__main__":
    main()
