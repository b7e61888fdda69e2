"""Product-photo test sets made from Fashion-MNIST test items whose label is known.

Each group turns a 28x28 item (light on black, the dataset's form) into the kind of
picture users score: a catalogue photo (dark item at some size and place on a light
canvas, JPEG), a thumbnail like the ones the data set was made from (51x73 on #fdfdfd),
a noisy white background, transparent cut-outs in both polarities, non-square canvases,
a 4000x3000 photo and a tiny one. Scoring a group and the same items as plain 28x28
arrays must give nearly the same accuracy: what differs is only how the item was framed.

Used by tests/test_photos.py and tests/benchmarks/bench_photos.py; deterministic for a
given seed. Nothing is checked in: the files are written into a temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

# Dark item colours of real catalogue photos (navy, black, charcoal, burgundy, olive...):
# the darkest part of the item is never pure black.
DARK = [(0, 0, 0), (25, 30, 70), (45, 45, 50), (80, 20, 30), (40, 55, 30), (60, 40, 30)]
LIGHT = [(255, 255, 255), (245, 240, 225), (235, 235, 240)]


def _item(a: np.ndarray, size: int, ink=(0, 0, 0), paper=(255, 255, 255)) -> Image.Image:
    """The 28x28 item enlarged to size x size, drawn dark (ink) on a light paper colour."""
    big = Image.fromarray(255 - a).resize((size, size), Image.Resampling.BICUBIC)
    return ImageOps.colorize(big, black=ink, white=paper)


def _place(item: Image.Image, canvas: tuple[int, int], paper, rng) -> Image.Image:
    """Paste at a random position (the item touches no edge)."""
    im = Image.new("RGB", canvas, paper)
    x = int(rng.integers(0, canvas[0] - item.width + 1))
    y = int(rng.integers(0, canvas[1] - item.height + 1))
    im.paste(item, (x, y))
    return im


def catalogue(a, rng):
    """Dark item 200-360 px at a random place on a 360-640 px light canvas, JPEG 70-95."""
    size = int(rng.integers(200, 361))
    low = max(360, size + 20)
    canvas = (int(rng.integers(low, 641)), int(rng.integers(low, 641)))
    paper = (int(rng.choice([255, 253, 245, 235])),) * 3
    ink = DARK[int(rng.integers(len(DARK)))]
    return _place(_item(a, size, ink, paper), canvas, paper, rng), "jpg", {
        "quality": int(rng.integers(70, 96))}


def thumbnail(a, rng):
    """51x73 on light grey #fdfdfd: the size and background of the photos Fashion-MNIST
    was made from; the item 40-51 px wide somewhere in it. JPEG 90."""
    size = int(rng.integers(40, 52))
    paper = (253, 253, 253)
    return _place(_item(a, size, DARK[int(rng.integers(len(DARK)))], paper), (51, 73),
                  paper, rng), "jpg", {"quality": 90}


def noisy(a, rng):
    """Dark item on white with sensor-like noise (sigma 4 levels) everywhere, PNG."""
    size = int(rng.integers(120, 251))
    side = int(rng.integers(size + 20, 401))
    im = np.asarray(_place(_item(a, size), (side, side), (255, 255, 255), rng), np.float32)
    im = im + rng.normal(0, 4, im.shape[:2])[..., None]
    return Image.fromarray(np.clip(np.rint(im), 0, 255).astype(np.uint8)), "png", {}


def _cutout(a, rng, colour, hidden):
    """RGBA 120x160, the item's shape in alpha, `colour` where it is opaque; the fully
    transparent pixels hold `hidden` (what an editor happens to leave there)."""
    size = int(rng.integers(70, 111))
    alpha = Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC)
    canvas = Image.new("RGBA", (120, 160), hidden + (0,))
    item = Image.new("RGBA", (size, size), colour + (255,))
    item.putalpha(alpha)
    x, y = int(rng.integers(0, 120 - size + 1)), int(rng.integers(0, 160 - size + 1))
    canvas.paste(item, (x, y))
    return canvas, "png", {}


def cutout_dark(a, rng):
    """A dark item cut out on transparency (photo colours, alpha 0 around it)."""
    return _cutout(a, rng, DARK[int(rng.integers(len(DARK)))], (255, 255, 255))


def cutout_light(a, rng):
    """A light item cut out on transparency: the other polarity."""
    return _cutout(a, rng, LIGHT[int(rng.integers(len(LIGHT)))], (0, 0, 0))


def black_tall(a, rng):
    """The 28x28 item itself, centred on a 28-wide, 42-high black canvas (PNG)."""
    im = Image.new("L", (28, 42), 0)
    im.paste(Image.fromarray(a), (0, 7))
    return im, "png", {}


def wide(a, rng):
    """Dark item on a 2:1 white canvas (400x200), JPEG 85."""
    size = int(rng.integers(120, 181))
    return _place(_item(a, size, DARK[int(rng.integers(len(DARK)))]), (400, 200),
                  (255, 255, 255), rng), "jpg", {"quality": 85}


def huge(a, rng):
    """A 4000x3000 photo with the item 1500-2800 px, JPEG 85."""
    size = int(rng.integers(1500, 2801))
    paper = (int(rng.choice([255, 250])),) * 3
    return _place(_item(a, size, DARK[int(rng.integers(len(DARK)))], paper), (4000, 3000),
                  paper, rng), "jpg", {"quality": 85}


def tiny(a, rng):
    """A tiny picture: the item 28-34 px on a 32-44 px white canvas, PNG (about the
    smallest that still holds the item at the model's 28 pixels)."""
    size = int(rng.integers(28, 35))
    side = int(rng.integers(size + 4, 45))
    return _place(_item(a, size), (side, side), (255, 255, 255), rng), "png", {}


def below_28(a, rng):
    """Smaller than the model's input: the item 16-22 px on a 24-32 px white canvas.
    Detail lost in the shrinking cannot come back: a limit, not a group the conversion
    can bring to the plain accuracy (reported, not asserted)."""
    size = int(rng.integers(16, 23))
    side = int(rng.integers(size + 2, 33))
    return _place(_item(a, size), (side, side), (255, 255, 255), rng), "png", {}


GROUPS: dict[str, Callable] = {
    "catalogue": catalogue, "thumbnail": thumbnail, "noisy": noisy,
    "cutout-dark": cutout_dark, "cutout-light": cutout_light, "black-28x42": black_tall,
    "wide": wide, "huge": huge, "tiny": tiny, "below-28": below_28,
}


def write_group(root: Path, group: str, x: np.ndarray, y: np.ndarray,
                seed: int = 0) -> dict[str, int]:
    """Item i of (x, y) as <root>/<group>/<label>/<i>.<ext>; returns {path relative to
    root: index into x}."""
    rng = np.random.default_rng([seed, list(GROUPS).index(group)])
    made = {}
    for i, (a, label) in enumerate(zip(x, y)):
        im, ext, options = GROUPS[group](a, rng)
        rel = f"{group}/{label}/{i:05d}.{ext}"
        (root / group / str(label)).mkdir(parents=True, exist_ok=True)
        im.save(root / rel, **options)
        made[rel] = i
    return made
