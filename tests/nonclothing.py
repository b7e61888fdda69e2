"""Images that are not clothing, for the `uncertain` flag: each must come out flagged.

Kinds: a page of text, blank images (white and black), noise, a landscape-like picture
(sky gradient, ground, horizon) and MNIST-style digits drawn with PIL (thick strokes,
several fonts and sizes, both as 28x28 white-on-black arrays and as dark ink on paper).
Generated, deterministic for a seed, written into a temporary directory; nothing is
checked in. Used by tests/test_calibration.py and tests/benchmarks/bench_calibration.py.

`landscape` is the kind held out while the flag was developed (docs/calibration.md): its
figures were measured once, at the end, and nothing was tuned on them.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype", "/usr/share/fonts")
HELD_OUT = "landscape"


@cache
def _font_files() -> tuple[str, ...]:
    """TrueType fonts on this machine (none on a bare image: Pillow's own is used)."""
    for d in FONT_DIRS:
        found = sorted(str(p) for p in Path(d).glob("**/*.ttf"))
        if found:
            return tuple(found[:12])
    return ()


def _font(rng, size: int):
    files = _font_files()
    if files:
        return ImageFont.truetype(files[int(rng.integers(len(files)))], size)
    return ImageFont.load_default(size=size)


def _canvas(rng) -> tuple[int, int]:
    return int(rng.integers(200, 641)), int(rng.integers(200, 641))


def text_page(rng):
    """Lines of random words, dark ink on white or cream paper, with margins; JPEG."""
    w, h = _canvas(rng)
    paper = (int(rng.integers(235, 256)),) * 3
    im = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(im)
    size = int(rng.integers(10, 28))
    font = _font(rng, size)
    ink = (int(rng.integers(0, 60)),) * 3
    margin = int(rng.integers(8, 40))
    y = margin
    letters = np.array(list(string.ascii_letters + "     .,"))
    while y < h - margin - size:
        line = "".join(rng.choice(letters, int(rng.integers(20, 90))))
        draw.text((margin, y), line, fill=ink, font=font)
        y += int(size * rng.uniform(1.2, 1.8))
    return im, "jpg", {"quality": int(rng.integers(70, 96))}


def blank_white(rng):
    """A white or near-white image, sometimes with faint noise; PNG or JPEG."""
    w, h = _canvas(rng)
    level = int(rng.integers(225, 256))
    a = np.full((h, w), level, np.float32) + rng.normal(0, rng.uniform(0, 3), (h, w))
    im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8)).convert("RGB")
    return (im, "png", {}) if rng.random() < 0.5 else (im, "jpg", {"quality": 85})


def blank_black(rng):
    """A black or near-black image (a lens cap, a failed shot); PNG or JPEG."""
    w, h = _canvas(rng)
    level = int(rng.integers(0, 30))
    a = np.full((h, w), level, np.float32) + rng.normal(0, rng.uniform(0, 3), (h, w))
    im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8)).convert("RGB")
    return (im, "png", {}) if rng.random() < 0.5 else (im, "jpg", {"quality": 85})


def noise(rng):
    """Noise of several kinds: uniform grey, Gaussian colour, salt and pepper, blurred
    blobs; sizes from 28x28 up; PNG."""
    kind = int(rng.integers(4))
    side = int(rng.choice([28, 64, 200, 400]))
    if kind == 0:
        a = rng.integers(0, 256, (side, side), dtype=np.uint8)
    elif kind == 1:
        a = np.clip(rng.normal(128, 60, (side, side, 3)), 0, 255).astype(np.uint8)
    elif kind == 2:
        a = np.where(rng.random((side, side)) < 0.5, 0, 255).astype(np.uint8)
    else:
        a = rng.integers(0, 256, (side, side), dtype=np.uint8)
        a = np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(side / 60)))
        a = np.clip((a.astype(np.float32) - 128) * 4 + 128, 0, 255).astype(np.uint8)
    return Image.fromarray(a), "png", {}


def landscape(rng):
    """Sky gradient above a horizon at a random height, ground below (grass, sand or
    snow, with a little texture), sometimes hills and a sun; JPEG."""
    w, h = int(rng.integers(320, 641)), int(rng.integers(200, 481))
    horizon = int(h * rng.uniform(0.35, 0.75))
    top = np.array([rng.integers(20, 120), rng.integers(60, 160), rng.integers(150, 256)])
    low = np.array([rng.integers(170, 256), rng.integers(180, 256), rng.integers(200, 256)])
    t = np.linspace(0, 1, horizon)[:, None, None]
    sky = np.broadcast_to(top * (1 - t) + low * t, (horizon, w, 3))
    ground_colour = [(60, 120, 40), (190, 170, 120), (235, 235, 240), (90, 80, 60)]
    g = np.array(ground_colour[int(rng.integers(len(ground_colour)))], np.float32)
    ground = g + rng.normal(0, 12, (h - horizon, w, 1))
    a = np.concatenate([sky, ground]).astype(np.float32)
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    if rng.random() < 0.5:  # hills along the horizon
        xs = np.linspace(0, w, 9)
        ys = horizon - rng.uniform(0, h * 0.2, 9)
        shade = tuple(int(c * 0.7) for c in g)
        draw.polygon([(0, horizon), *zip(xs.tolist(), ys.tolist()), (w, horizon)], fill=shade)
    if rng.random() < 0.5:  # a sun
        r = int(rng.integers(10, 40))
        cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, max(r + 1, horizon - r)))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 240, 180))
    return im, "jpg", {"quality": int(rng.integers(70, 96))}


def _digit(rng, side: int) -> Image.Image:
    """One digit, white on black, drawn thick (the font's own stroke plus a stroke
    width) and a little slanted, filling most of a side x side square."""
    big = 4 * side
    im = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(im)
    font = _font(rng, int(big * rng.uniform(0.6, 0.85)))
    digit = str(int(rng.integers(10)))
    stroke = int(big * rng.uniform(0.02, 0.06))
    box = draw.textbbox((0, 0), digit, font=font, stroke_width=stroke)
    x = (big - (box[2] - box[0])) // 2 - box[0]
    y = (big - (box[3] - box[1])) // 2 - box[1]
    draw.text((x, y), digit, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    im = im.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
    return im.resize((side, side), Image.Resampling.LANCZOS)


def digits_28(rng):
    """A digit as MNIST has them: 28x28, white on black, PNG."""
    return _digit(rng, 28), "png", {}


def digits_ink(rng):
    """A digit written dark on light paper, 100-300 px, PNG or JPEG."""
    side = int(rng.integers(100, 301))
    im = Image.eval(_digit(rng, side), lambda v: 255 - int(v * rng.uniform(0.75, 1.0)))
    pad = int(rng.integers(0, side // 3))
    canvas = Image.new("L", (side + 2 * pad, side + 2 * pad), 255)
    canvas.paste(im, (pad, pad))
    return (canvas, "png", {}) if rng.random() < 0.5 else (canvas, "jpg", {"quality": 85})


# kind -> its generators; each kind is reported as one figure.
KINDS: dict[str, tuple[Callable, ...]] = {
    "text": (text_page,),
    "blank": (blank_white, blank_black),
    "noise": (noise,),
    "landscape": (landscape,),
    "digits": (digits_28, digits_ink),
}


def write_kind(root: Path, kind: str, n: int, seed: int = 0) -> list[str]:
    """`n` images of `kind` as <root>/<kind>/<i>.<ext>, the kind's generators in turn;
    returns their paths relative to root."""
    rng = np.random.default_rng([seed, 1000 + list(KINDS).index(kind)])
    makers = KINDS[kind]
    (root / kind).mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(n):
        im, ext, options = makers[i % len(makers)](rng)
        rel = f"{kind}/{i:04d}.{ext}"
        im.save(root / rel, **options)
        made.append(rel)
    return made
