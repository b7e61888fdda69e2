"""What the model saw: the converted 28x28 inputs of a scoring run, for a person to check.

    --preview FILE.png    a contact sheet of the first N inputs, the predicted class and
                          its confidence under each, so a glance shows whether the
                          conversion fits the photos (item filling the frame, light on black);
                          uncertain rows framed and captioned in red, with a "?"
    --save-inputs DIR     every input as a 28x28 PNG at DIR/<relative path>.png

Both are written beside their target and renamed into place: a reader never sees half a
file. Imports only Pillow and NumPy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fmnist.core.files import atomic_file

SCALE = 3  # each 28x28 input drawn at 84x84
COLUMNS = 10
CAPTION = 34  # pixels under each tile: class and confidence, then the file name
TILE_W = 28 * SCALE + 16
UNCERTAIN = (200, 0, 0)  # frame and caption of an uncertain row


class ContactSheet:
    """Collects the first `count` inputs with their predictions; `write` draws them."""

    def __init__(self, path: Path, count: int):
        self.path, self.count = Path(path), count
        self.tiles: list[tuple[str, np.ndarray, str, float, bool]] = []

    @property
    def full(self) -> bool:
        return len(self.tiles) >= self.count

    def add(
        self,
        paths: list[str],
        x: np.ndarray,
        names: list[str],
        probs: np.ndarray,
        uncertain: np.ndarray | None = None,
    ):
        """Inputs `x` (uint8 [k, 28, 28]) of `paths`, with their probabilities [k, 10]
        and `uncertain` flags [k] (none flagged when None)."""
        flags = np.zeros(len(x), bool) if uncertain is None else uncertain
        for path, image, p, unsure in zip(paths, x, probs, flags):
            if self.full:
                return
            label = int(np.argmax(p))
            self.tiles.append((path, image, names[label], float(p[label]), bool(unsure)))

    def write(self) -> None:
        rows = max(1, -(-len(self.tiles) // COLUMNS))
        sheet = Image.new("RGB", (COLUMNS * TILE_W, rows * (28 * SCALE + CAPTION + 8)), "white")
        draw = ImageDraw.Draw(sheet)
        font = ImageFont.load_default(size=11)
        for k, (path, image, name, confidence, unsure) in enumerate(self.tiles):
            x0 = (k % COLUMNS) * TILE_W + 8
            y0 = (k // COLUMNS) * (28 * SCALE + CAPTION + 8) + 4
            tile = Image.fromarray(image).resize((28 * SCALE, 28 * SCALE), Image.Resampling.NEAREST)
            sheet.paste(tile, (x0, y0))
            if unsure:
                draw.rectangle(
                    (x0 - 3, y0 - 3, x0 + 28 * SCALE + 2, y0 + 28 * SCALE + 2),
                    outline=UNCERTAIN,
                    width=3,
                )
            draw.text(
                (x0, y0 + 28 * SCALE + 2),
                f"{name} {confidence:.0%}" + (" ?" if unsure else ""),
                fill=UNCERTAIN if unsure else "black",
                font=font,
            )
            draw.text((x0, y0 + 28 * SCALE + 17), _tail(path, 16), fill=(110, 110, 110), font=font)
        with atomic_file(self.path) as f:
            sheet.save(f, "PNG")


def _tail(path: str, n: int) -> str:
    """The end of a relative path, where the file name is: '...s/3/00003.jpg'."""
    return path if len(path) <= n else "\u2026" + path[-(n - 1) :]


def save_inputs(directory: Path, paths: list[str], x: np.ndarray) -> None:
    """Each input as <directory>/<its relative path>.png (the appended suffix keeps
    a.jpg and a.png apart)."""
    for path, image in zip(paths, x):
        target = directory / (path + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target) as f:
            Image.fromarray(image).save(f, "PNG")
