"""Product-photo test sets made from Fashion-MNIST test items whose label is known.

Each group turns a 28x28 item (light on black, the dataset's form) into the kind of
picture users score: a catalogue photo (dark item at some size and place on a light
canvas, JPEG), a thumbnail like the ones the data set was made from (51x73 on #fdfdfd),
a noisy white background, transparent cut-outs in both polarities, non-square canvases,
a 4000x3000 photo and a tiny one (GROUPS). KINDS are studio and shop photos: the item
280-300 px on a 380-640 px canvas, shot on backdrops that are not flat (a studio sweep,
uneven light), with a drop shadow, shop marks and dust, turned a few degrees, in colour,
cut out with a matte edge, in low light, cut by the frame, in a vignette, with text
along an edge, under a spotlight on a wall or on a textured backdrop, on a table against
a wall, hanging from a hook, a flat-lay on a wooden floor, a price tag on a string, on a
glossy surface with a reflection, against a tiled wall, padded to a square with coloured
bars, on a clothes hanger, under a shop's watermark, on a display stand, in sunlight
through a window, on a creased paper backdrop, in front of a shop's pegboard wall, shot
at a slant in perspective, on a checked blanket, in a phone's screenshot of a shop's
app, out of focus or shaken, a light item on white, held up in a hand, a scanned
catalogue page printed in halftone; HELD_OUT more (shot with a flash against a wall, laid
on a bed's folded sheet: the thirteenth round's), kept out of development. Scoring a group and the same
items as plain 28x28 arrays must give nearly the same accuracy: what differs is only how
the item was framed.

Used by tests/test_photos.py and tests/benchmarks/bench_photos.py; deterministic for a
given seed. Nothing is checked in: the files are written into a temporary directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

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
    return (
        _place(_item(a, size, ink, paper), canvas, paper, rng),
        "jpg",
        {"quality": int(rng.integers(70, 96))},
    )


def thumbnail(a, rng):
    """51x73 on light grey #fdfdfd: the size and background of the photos Fashion-MNIST
    was made from; the item 40-51 px wide somewhere in it. JPEG 90."""
    size = int(rng.integers(40, 52))
    paper = (253, 253, 253)
    return (
        _place(_item(a, size, DARK[int(rng.integers(len(DARK)))], paper), (51, 73), paper, rng),
        "jpg",
        {"quality": 90},
    )


def noisy(a, rng):
    """Dark item on white with sensor-like noise (sigma 4 levels) everywhere, PNG."""
    size = int(rng.integers(120, 251))
    side = int(rng.integers(size + 20, 401))
    im = np.asarray(_place(_item(a, size), (side, side), (255, 255, 255), rng), np.float32)
    im = im + rng.normal(0, 4, im.shape[:2])[..., None]
    return _image(im), "png", {}


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
    return (
        _place(
            _item(a, size, DARK[int(rng.integers(len(DARK)))]), (400, 200), (255, 255, 255), rng
        ),
        "jpg",
        {"quality": 85},
    )


def huge(a, rng):
    """A 4000x3000 photo with the item 1500-2800 px, JPEG 85."""
    size = int(rng.integers(1500, 2801))
    paper = (int(rng.choice([255, 250])),) * 3
    return (
        _place(_item(a, size, DARK[int(rng.integers(len(DARK)))], paper), (4000, 3000), paper, rng),
        "jpg",
        {"quality": 85},
    )


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
    "catalogue": catalogue,
    "thumbnail": thumbnail,
    "noisy": noisy,
    "cutout-dark": cutout_dark,
    "cutout-light": cutout_light,
    "black-28x42": black_tall,
    "wide": wide,
    "huge": huge,
    "tiny": tiny,
    "below-28": below_28,
}


# -----------------------------------------------------------------------------
# Studio and shop photos: the item composited over a backdrop that need not be flat

PASTEL = [
    (245, 215, 220),
    (210, 225, 245),
    (210, 240, 225),
    (235, 220, 190),
    (225, 215, 240),
    (250, 240, 200),
]
VIVID = [
    (190, 30, 40),
    (40, 70, 170),
    (30, 110, 60),
    (220, 100, 20),
    (90, 40, 120),
    (20, 110, 120),
    (190, 150, 30),
]


def _studio_size(rng) -> tuple[int, tuple[int, int]]:
    """The issue's framing: the item 280-300 px on a 380-640 px canvas."""
    size = int(rng.integers(280, 301))
    low = max(380, size + 20)
    return size, (int(rng.integers(low, 641)), int(rng.integers(low, 641)))


def _alpha(a: np.ndarray, size: int, angle: float = 0.0) -> np.ndarray:
    """The item's coverage (0..1) enlarged to size x size, turned by angle degrees."""
    big = Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC)
    if angle:
        big = big.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    return np.asarray(big, np.float32) / 255.0


def _flat(canvas: tuple[int, int], colour) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (canvas[1], canvas[0], 3)).copy()


def _shade(back: np.ndarray, light: np.ndarray) -> np.ndarray:
    """The backdrop lit by a [h, w] factor (1 = as is, below 1 darker)."""
    return back * light[..., None]


def _compose(back: np.ndarray, alpha: np.ndarray, ink, xy: tuple[int, int]) -> np.ndarray:
    """The item (alpha, colour ink) over the backdrop at (x, y); the parts that fall
    outside the canvas are cut off."""
    out = back.copy()
    h, w = alpha.shape
    x, y = xy
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, out.shape[1]), min(y + h, out.shape[0])
    cover = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    out[y0:y1, x0:x1] = out[y0:y1, x0:x1] * (1 - cover) + np.asarray(ink, np.float32) * cover
    return out


def _somewhere(alpha: np.ndarray, canvas: tuple[int, int], rng) -> tuple[int, int]:
    return (
        int(rng.integers(0, canvas[0] - alpha.shape[1] + 1)),
        int(rng.integers(0, canvas[1] - alpha.shape[0] + 1)),
    )


def _dark_on(back: np.ndarray, alpha: np.ndarray, canvas: tuple[int, int], rng) -> np.ndarray:
    """A dark item (alpha, one of DARK) somewhere on the backdrop `back`."""
    return _compose(back, alpha, DARK[int(rng.integers(len(DARK)))], _somewhere(alpha, canvas, rng))


def _image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _jpeg(pixels: np.ndarray, rng, low: int = 75, high: int = 96):
    return _image(pixels), "jpg", {"quality": int(rng.integers(low, high))}


def _hung(a, rng, room: int, paper: Callable) -> tuple[Image.Image, np.ndarray, int, int, int]:
    """A dark item on a flat light backdrop (paper(rng) its grey level) at least `room`
    px below the top edge, for something drawn above it: (the photo, the item's
    alpha, its x, its y, its size)."""
    size, canvas = _studio_size(rng)
    alpha = _alpha(a, size)
    x, y = _somewhere(alpha, canvas, rng)
    y = max(y, room)
    canvas = (canvas[0], max(canvas[1], y + size))
    pixels = _compose(
        _flat(canvas, (paper(rng),) * 3), alpha, DARK[int(rng.integers(len(DARK)))], (x, y)
    )
    return _image(pixels), alpha, x, y, size


def _dark_on_flat(a, rng, low: float, high: float) -> tuple[np.ndarray, tuple[int, int], float]:
    """A dark item (the issue's framing) somewhere on a flat light backdrop, its gray
    level drawn from low..high: (the pixels, float32 [h, w, 3]; the canvas; the level)."""
    size, canvas = _studio_size(rng)
    alpha = _alpha(a, size)
    level = float(rng.uniform(low, high))
    pixels = _dark_on(_flat(canvas, (level,) * 3), alpha, canvas, rng)
    return pixels, canvas, level


def _grid(canvas: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates scaled to 0..1: (x [1, w], y [h, 1])."""
    w, h = canvas
    return np.linspace(0, 1, w, dtype=np.float32)[None], np.linspace(0, 1, h, dtype=np.float32)[
        :, None
    ]


def sweep(a, rng):
    """A studio sweep: the backdrop lit at the top, darker towards the bottom (by 45-80
    levels, along a curve), a dark item on it, JPEG 75-95."""
    size, canvas = _studio_size(rng)
    top = float(rng.uniform(240, 255))
    fall = float(rng.uniform(45, 80)) / top
    _, y = _grid(canvas)
    light = np.broadcast_to(1 - fall * y ** float(rng.uniform(1.2, 2.2)), canvas[::-1])
    alpha = _alpha(a, size)
    back = _shade(_flat(canvas, (top,) * 3), light)
    return _jpeg(
        _dark_on(back, alpha, canvas, rng),
        rng,
    )


def uneven(a, rng):
    """Uneven light: a ramp from a random side (30-55 levels) and a soft hot spot."""
    size, canvas = _studio_size(rng)
    x, y = _grid(canvas)
    theta = float(rng.uniform(0, 2 * np.pi))
    ramp = (np.cos(theta) * (x - 0.5) + np.sin(theta) * (y - 0.5)) + 0.71
    cx, cy, r = float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), float(rng.uniform(0.2, 0.5))
    spot = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    light = 1 - float(rng.uniform(30, 55)) / 255 * ramp / 1.42 + 0.06 * (spot - 1)
    alpha = _alpha(a, size)
    back = _shade(_flat(canvas, (int(rng.choice([255, 250, 245])),) * 3), light)
    return _jpeg(
        _dark_on(back, alpha, canvas, rng),
        rng,
    )


def shadow(a, rng):
    """A soft drop shadow down and to the right of the item: its shape blurred by 6-14
    px, 8-25 px away, darkening a flat light backdrop by 25-45% at most."""
    size, canvas = _studio_size(rng)
    alpha = _alpha(a, size)
    dx, dy = int(rng.integers(8, 26)), int(rng.integers(8, 26))
    canvas = (max(canvas[0], size + dx + 10), max(canvas[1], size + dy + 10))
    x = int(rng.integers(0, canvas[0] - size - dx + 1))
    y = int(rng.integers(0, canvas[1] - size - dy + 1))
    soft = Image.fromarray(np.uint8(alpha * 255)).filter(
        ImageFilter.GaussianBlur(float(rng.uniform(6, 14)))
    )
    cast = np.zeros(canvas[::-1], np.float32)
    cast[y + dy : y + dy + size, x + dx : x + dx + size] = np.asarray(soft, np.float32) / 255
    back = _shade(
        _flat(canvas, (int(rng.choice([255, 250, 240])),) * 3),
        1 - float(rng.uniform(0.25, 0.45)) * cast,
    )
    return _jpeg(_compose(back, alpha, DARK[int(rng.integers(len(DARK)))], (x, y)), rng)


SHOP_MARKS = ["(c) shop", "(c) my-shop", "SALE", "shop.example", "#4521", "(c) 2024"]


def corner_mark(a, rng):
    """A shop's mark in a corner, in grey: "(c) shop" and the like, or a price sticker;
    and a few specks of dust anywhere. Flat light backdrop, JPEG."""
    size, canvas = _studio_size(rng)
    paper = int(rng.choice([255, 250, 245]))
    alpha = _alpha(a, size)
    pixels = _dark_on(_flat(canvas, (paper,) * 3), alpha, canvas, rng)
    im = _image(pixels)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=int(rng.integers(14, 25)))
    text = SHOP_MARKS[int(rng.integers(len(SHOP_MARKS)))]
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    margin = int(rng.integers(6, 21))
    right_side, low_side = bool(rng.integers(2)), bool(rng.integers(2))
    x = canvas[0] - right + left - margin if right_side else margin
    y = canvas[1] - bottom + top - margin if low_side else margin
    grey = (int(rng.integers(100, 171)),) * 3
    if rng.random() < 0.3:  # a price sticker: a filled label with the text on it
        draw.rectangle(
            (x - 4, y - 3, x + right - left + 4, y + bottom - top + 3),
            fill=(int(rng.integers(200, 240)), 60, 50),
        )
        grey = (255, 255, 255)
    draw.text((x - left, y - top), text, fill=grey, font=font)
    for _ in range(int(rng.integers(3, 9))):  # dust
        cx, cy, r = (
            int(rng.integers(canvas[0])),
            int(rng.integers(canvas[1])),
            int(rng.integers(1, 3)),
        )
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(int(rng.integers(60, 180)),) * 3)
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


def rotated(a, rng):
    """The item turned by 4-10 degrees either way, on a flat light backdrop."""
    size, canvas = _studio_size(rng)
    angle = float(rng.uniform(4, 10)) * (1 if rng.integers(2) else -1)
    alpha = _alpha(a, size, angle)
    canvas = (max(canvas[0], alpha.shape[1] + 10), max(canvas[1], alpha.shape[0] + 10))
    return _jpeg(
        _dark_on(_flat(canvas, (int(rng.choice([255, 250, 245])),) * 3), alpha, canvas, rng),
        rng,
    )


def coloured(a, rng):
    """A vivid item (red, blue, green, orange...) on a pastel backdrop."""
    size, canvas = _studio_size(rng)
    alpha = _alpha(a, size)
    return _jpeg(
        _compose(
            _flat(canvas, PASTEL[int(rng.integers(len(PASTEL)))]),
            alpha,
            VIVID[int(rng.integers(len(VIVID)))],
            _somewhere(alpha, canvas, rng),
        ),
        rng,
    )


def cutout_matte(a, rng):
    """The second cut-out style: the photo itself (a dark item shaded on white) with a
    matte from a background remover: opaque wherever the item is, a hard edge feathered
    by 1-2 px, instead of the item's own shading as alpha."""
    size = int(rng.integers(140, 261))
    side = (size + int(rng.integers(20, 81)), size + int(rng.integers(20, 81)))
    alpha = _alpha(a, size)
    photo = _compose(
        _flat((size, size), (255, 255, 255)), alpha, DARK[int(rng.integers(len(DARK)))], (0, 0)
    )
    cut = float(rng.uniform(0.03, 0.15))
    matte = Image.fromarray(np.uint8(alpha > cut) * 255).filter(
        ImageFilter.GaussianBlur(float(rng.uniform(1, 2)))
    )
    item = _image(photo).convert("RGBA")
    item.putalpha(matte)
    hidden = (255, 255, 255, 0) if rng.integers(2) else (0, 0, 0, 0)
    im = Image.new("RGBA", side, hidden)
    im.paste(
        item, (int(rng.integers(0, side[0] - size + 1)), int(rng.integers(0, side[1] - size + 1)))
    )
    return im, "png", {}


def low_light(a, rng):
    """Shot in low light: the white backdrop comes out mid-grey (95-150), the item
    darker still, with sensor noise (sigma 5-8 levels)."""
    size, canvas = _studio_size(rng)
    gain = float(rng.uniform(95, 150)) / 255
    alpha = _alpha(a, size)
    ink = np.asarray(DARK[int(rng.integers(len(DARK)))], np.float32) * gain
    pixels = _compose(_flat(canvas, (255 * gain,) * 3), alpha, ink, _somewhere(alpha, canvas, rng))
    pixels += rng.normal(0, float(rng.uniform(5, 8)), pixels.shape[:2])[..., None]
    return _jpeg(pixels, rng)


def cut_by_frame(a, rng):
    """The item cut by the frame: 3-8% of it (of its own extent) beyond one edge."""
    size, canvas = _studio_size(rng)
    alpha = _alpha(a, size)
    rows, cols = np.flatnonzero(alpha.max(axis=1) > 0.05), np.flatnonzero(alpha.max(axis=0) > 0.05)
    if not rows.size:
        return _jpeg(_flat(canvas, (255,) * 3), rng)
    x, y = _somewhere(alpha, canvas, rng)
    side = int(rng.integers(4))
    cut = float(rng.uniform(0.03, 0.08))
    if side == 0:  # left
        x = -cols[0] - round(cut * (cols[-1] - cols[0]))
    elif side == 1:  # right
        x = canvas[0] - cols[-1] - 1 + round(cut * (cols[-1] - cols[0]))
    elif side == 2:  # top
        y = -rows[0] - round(cut * (rows[-1] - rows[0]))
    else:  # bottom
        y = canvas[1] - rows[-1] - 1 + round(cut * (rows[-1] - rows[0]))
    return _jpeg(
        _compose(
            _flat(canvas, (int(rng.choice([255, 250, 245])),) * 3),
            alpha,
            DARK[int(rng.integers(len(DARK)))],
            (x, y),
        ),
        rng,
    )


# Held out during the first round of issue 22 (vignette, edge text); their figures have
# been seen since, so they are development kinds now.


def vignette(a, rng):
    """A vignette: white in the middle, the corners falling off to light grey (195-225),
    smoothly (a cos^4-like fall-off of random strength and width)."""
    size, canvas = _studio_size(rng)
    x, y = _grid(canvas)
    r = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2) / np.sqrt(0.5)
    corner = float(rng.uniform(195, 225)) / 255
    width = float(rng.uniform(0.8, 1.3))
    fall = np.cos(np.clip(r / width, 0, 1) * np.pi / 2) ** 4
    light = corner + (1 - corner) * fall / fall.max()
    alpha = _alpha(a, size)
    back = _shade(_flat(canvas, (255,) * 3), light)
    return _jpeg(
        _dark_on(back, alpha, canvas, rng),
        rng,
    )


EDGE_LINES = [
    "FREE SHIPPING ON ALL ORDERS",
    "www.shop.example/item/4521",
    "SIZE M | 100% COTTON",
    "NEW SEASON - NEW COLOURS",
    "Photo: Studio 7",
]


def edge_text(a, rng):
    """A line of text along an edge of the photo (top, bottom, or up a side), grey or
    dark, 12-20 px high, 4-15 px from the edge. Flat light backdrop, JPEG."""
    size, canvas = _studio_size(rng)
    alpha = _alpha(a, size)
    pixels = _dark_on(_flat(canvas, (int(rng.choice([255, 250])),) * 3), alpha, canvas, rng)
    im = _image(pixels)
    font = ImageFont.load_default(size=int(rng.integers(12, 21)))
    text = EDGE_LINES[int(rng.integers(len(EDGE_LINES)))]
    left, top, right, bottom = font.getbbox(text)
    line = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(line).text((1 - left, 1 - top), text, fill=255, font=font)
    side, margin = int(rng.integers(4)), int(rng.integers(4, 16))
    if side >= 2:  # up the left or right side
        line = line.rotate(90, expand=True)
    w, h = line.size
    w_, h_ = min(w, canvas[0]), min(h, canvas[1])
    line = line.crop((0, 0, w_, h_))
    spot = {
        0: ((canvas[0] - w_) // 2, margin),
        1: ((canvas[0] - w_) // 2, canvas[1] - h_ - margin),
        2: (margin, (canvas[1] - h_) // 2),
        3: (canvas[0] - w_ - margin, (canvas[1] - h_) // 2),
    }
    im.paste((int(rng.integers(40, 171)),) * 3, spot[side], line)
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


KINDS: dict[str, Callable] = {
    "sweep": sweep,
    "uneven": uneven,
    "shadow": shadow,
    "corner-mark": corner_mark,
    "rotated": rotated,
    "coloured": coloured,
    "cutout-matte": cutout_matte,
    "low-light": low_light,
    "cut-by-frame": cut_by_frame,
    "vignette": vignette,
    "edge-text": edge_text,
}


# -----------------------------------------------------------------------------
# Held out while the second round of issue 22 was developed (committed before any change
# to the conversion, run once when it was finished): reported as they came out, never
# tuned to.


def spotlight(a, rng):
    """A spotlight on a wall: a grey or coloured wall (150-215) lit by an off-centre hot
    spot that adds 30-70 levels at its peak and falls off smoothly (a Gaussian of 25-60%
    of the diagonal), a dark item on it. JPEG."""
    size, canvas = _studio_size(rng)
    x, y = _grid(canvas)
    cx, cy = float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9))
    aspect = canvas[0] / canvas[1]
    r = float(rng.uniform(0.25, 0.6))
    spot = np.exp(-(((x - cx) * aspect) ** 2 + (y - cy) ** 2) / (2 * r * r))
    base = float(rng.uniform(150, 215))
    wall = np.asarray(
        [(base,) * 3, *(np.asarray(p, np.float32) * base / 235 for p in PASTEL)][
            int(rng.integers(1 + len(PASTEL)))
        ],
        np.float32,
    )
    back = _flat(canvas, wall) + float(rng.uniform(30, 70)) * spot[..., None]
    alpha = _alpha(a, size)
    return _jpeg(
        _dark_on(back, alpha, canvas, rng),
        rng,
    )


def textured(a, rng):
    """A textured light backdrop at low contrast: paper (blotchy, blurred noise), wood
    grain (wavy stripes) or a fabric weave (a fine criss-cross), 4-12 levels either
    way around 215-250, a dark item on it. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    style = int(rng.integers(3))
    if style == 0:  # paper: noise blurred by 2-6 px
        noise = Image.fromarray(np.uint8(np.clip(128 + 60 * rng.normal(size=(h, w)), 0, 255)))
        tex = np.asarray(noise.filter(ImageFilter.GaussianBlur(float(rng.uniform(2, 6)))))
        tex = tex.astype(np.float32) - 128
        tex /= max(float(np.abs(tex).max()), 1.0)
    elif style == 1:  # wood grain: stripes across or down, their phase wandering
        x, y = _grid(canvas)
        u, v = (x, y) if rng.integers(2) else (y, x)
        wander = 0.02 * np.sin(2 * np.pi * (float(rng.uniform(1, 3)) * v + float(rng.random())))
        tex = np.broadcast_to(
            np.sin(2 * np.pi * (u + wander) / float(rng.uniform(0.02, 0.06))), (h, w)
        )
    else:  # fabric: a weave of 3-6 px threads
        pitch = float(rng.uniform(3, 6))
        xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        tex = np.sin(2 * np.pi * xx / pitch) * np.sin(2 * np.pi * yy / pitch)
    base = float(rng.uniform(215, 250))
    back = _flat(canvas, (base,) * 3) + float(rng.uniform(4, 12)) * tex[..., None]
    alpha = _alpha(a, size)
    return _jpeg(
        _dark_on(back, alpha, canvas, rng),
        rng,
    )


KINDS["spotlight"] = spotlight
KINDS["textured"] = textured


# -----------------------------------------------------------------------------
# Held out in the third round of issue 22 (committed before any other change, run once
# when it was finished); their figures have been seen, so they are development kinds now.


def tabletop(a, rng):
    """On a table against a wall: the wall (light grey or pastel) above a straight
    edge at 45-85% of the height, the tabletop (lighter or darker by 15-40 levels,
    a little texture) below it, the item standing across the edge. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    wall = np.asarray(
        [(float(rng.uniform(215, 250)),) * 3, *PASTEL][int(rng.integers(1 + len(PASTEL)))],
        np.float32,
    )
    edge = int(h * float(rng.uniform(0.45, 0.85)))
    back = _flat(canvas, wall)
    table = np.clip(wall + float(rng.choice([-1, 1]) * rng.uniform(15, 40)), 0, 255)
    back[edge:] = table + rng.normal(0, 3, (h - edge, w, 1)).astype(np.float32)
    alpha = _alpha(a, size)
    x = int(rng.integers(0, w - size + 1))
    y = int(np.clip(edge - size * float(rng.uniform(0.5, 0.9)), 0, h - size))
    return _jpeg(_compose(back, alpha, DARK[int(rng.integers(len(DARK)))], (x, y)), rng)


def hanging(a, rng):
    """Hanging from a hook: a thin grey wire (2-4 px) from the top edge of the photo
    down to the top of the item, with a small ring where it holds it, on a flat light
    backdrop. JPEG."""
    im, alpha, x, y, size = _hung(a, rng, 30, lambda rng: int(rng.choice([255, 248, 240])))
    draw = ImageDraw.Draw(im)
    cols = np.nonzero(alpha.max(axis=0) > 0.5)[0]
    top = np.nonzero(alpha.max(axis=1) > 0.5)[0]
    hx = x + int(cols.mean()) if len(cols) else x + size // 2
    hy = y + int(top[0]) if len(top) else y
    grey = (int(rng.integers(90, 170)),) * 3
    width = int(rng.integers(2, 5))
    draw.line((hx, 0, hx, hy), fill=grey, width=width)
    r = int(rng.integers(5, 11))
    draw.ellipse((hx - r, hy - r, hx + r, hy + r), outline=grey, width=width)
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


KINDS["tabletop"] = tabletop
KINDS["hanging"] = hanging


# -----------------------------------------------------------------------------
# Held out in the fourth round of issue 22 (committed before any other change, run once
# when it was finished); their figures have been seen, so they are development kinds now.


def flatlay(a, rng):
    """A flat-lay on a wooden floor seen from above: planks 50-110 px wide (across or
    down), each its own light wood tone (150-215) with a wavy grain of 6-18 levels,
    dark seams 2-3 px between them, a dark item lying on them. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    across = bool(rng.integers(2))
    length, span = (w, h) if across else (h, w)  # the floor is built down, turned if across
    along = np.arange(length, dtype=np.float32)[:, None]
    floor = np.empty((length, span, 3), np.float32)
    start = -int(rng.integers(0, 60))
    while start < span:
        width = int(rng.integers(50, 111))
        lo, hi = max(start, 0), max(min(start + width, span), 0)
        tone = float(rng.uniform(150, 215))
        wood = np.asarray([tone, tone * 0.8, tone * 0.6], np.float32)
        cols = np.arange(lo, hi, dtype=np.float32)[None]
        period = float(rng.uniform(8, 25))
        grain = np.sin(2 * np.pi * (cols + 4 * np.sin(along / float(rng.uniform(30, 90)))) / period)
        floor[:, lo:hi] = wood + float(rng.uniform(6, 18)) * grain[..., None]
        seam = int(rng.integers(2, 4))
        floor[:, max(hi - seam, 0) : hi] = wood * 0.45
        start += width
    back = floor.transpose(1, 0, 2).copy() if across else floor
    alpha = _alpha(a, size)
    return _jpeg(
        _dark_on(back, alpha, canvas, rng),
        rng,
    )


PRICES = ["$19.99", "€24", "£12.50", "49.00", "SALE 15"]


def price_tag(a, rng):
    """A price tag on a string: a thin string (1-2 px, dark or light grey) from a point
    on the item's edge 30-90 px out to a card tag (28-45 x 45-70 px, white or kraft, a
    dark outline, a price on it, turned up to 30 degrees), on a flat light backdrop
    (225-245). JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    alpha = _alpha(a, size)
    x, y = _somewhere(alpha, canvas, rng)
    paper = int(rng.integers(225, 246))
    pixels = _compose(
        _flat(canvas, (paper,) * 3), alpha, DARK[int(rng.integers(len(DARK)))], (x, y)
    )
    im = _image(pixels)
    ys, xs = np.nonzero(alpha > 0.5)
    if not len(xs):
        return im, "jpg", {"quality": 85}
    k = int(rng.integers(len(xs)))  # a point of the item; the string leaves it outwards
    px, py = x + int(xs[k]), y + int(ys[k])
    cx, cy = x + float(xs.mean()), y + float(ys.mean())
    out = np.asarray([px - cx, py - cy]) + 1e-3
    out /= np.hypot(*out)

    def inside(u: int, v: int) -> bool:
        return 0 <= v - y < size and 0 <= u - x < size and alpha[v - y, u - x] > 0.1

    while inside(px, py):  # to the item's edge
        px, py = int(round(px + 3 * out[0])), int(round(py + 3 * out[1]))
    reach = float(rng.uniform(30, 90))
    tx = int(np.clip(px + reach * out[0], 30, w - 30))
    ty = int(np.clip(py + reach * out[1], 30, h - 30))
    draw = ImageDraw.Draw(im)
    string_grey = (int(rng.choice([60, 110, 200])),) * 3
    draw.line((px, py, tx, ty), fill=string_grey, width=int(rng.integers(1, 3)))
    tw, th = int(rng.integers(28, 46)), int(rng.integers(45, 71))
    card = (255, 255, 250) if rng.integers(2) else (200, 170, 130)
    tag = Image.new("RGBA", (tw, th), card + (255,))
    tdraw = ImageDraw.Draw(tag)
    tdraw.rectangle((0, 0, tw - 1, th - 1), outline=(70, 70, 70), width=1)
    tdraw.ellipse((tw // 2 - 3, 4, tw // 2 + 3, 10), fill=string_grey)
    font = ImageFont.load_default(size=int(rng.integers(9, 13)))
    tdraw.text((3, th // 2), PRICES[int(rng.integers(len(PRICES)))], fill=(30, 30, 30), font=font)
    tag = tag.rotate(float(rng.uniform(-30, 30)), Image.Resampling.BICUBIC, expand=True)
    im.paste(tag, (tx - tag.width // 2, ty - 7), tag)
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


# Their figures were reported at the end of the fourth round: development kinds now.
KINDS["flatlay"] = flatlay
KINDS["price-tag"] = price_tag


# -----------------------------------------------------------------------------
# Held out in the fifth round of issue 22 (committed before any other change, run once
# when it was finished); their figures have been seen, so they are development kinds now.


def reflection(a, rng):
    """On a glossy surface: the item stands on a light floor (a little darker than the
    wall behind it, the floor line at the item's feet or without one) and its mirror
    image below it fades from 20-45% of the item's colour to nothing over 35-70% of the
    item's height, a little blurred. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    alpha = _alpha(a, size)
    rows = np.nonzero(alpha.max(axis=1) > 0.5)[0]
    foot = int(rows[-1]) + 1 if len(rows) else size
    reach = int(size * float(rng.uniform(0.35, 0.7)))
    h = max(h, foot + reach + 10)
    canvas = (w, h)
    x = int(rng.integers(0, w - size + 1))
    y = int(rng.integers(0, h - foot - reach + 1))
    wall = float(rng.uniform(228, 252))
    back = _flat(canvas, (wall,) * 3)
    if rng.random() < 0.6:  # a floor: a step at the item's feet
        back[y + foot :] -= float(rng.uniform(6, 25))
    ink = DARK[int(rng.integers(len(DARK)))]
    mirror = alpha[:foot][::-1][:reach].copy()
    fade = np.linspace(float(rng.uniform(0.2, 0.45)), 0, len(mirror), dtype=np.float32)
    faded = np.rint(255 * mirror * fade[:, None]).astype(np.uint8)
    blur = ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.5)))
    mirror = np.asarray(Image.fromarray(faded).filter(blur), np.float32) / 255.0
    back = _compose(back, mirror, ink, (x, y + foot))
    return _jpeg(_compose(back, alpha, ink, (x, y)), rng)


def tiles(a, rng):
    """Against a tiled wall: square tiles 45-120 px (white, cream, pale grey or a pale
    colour), each a few levels lighter or darker than the next, grout lines 2-5 px a
    little darker or lighter than the tiles, light falling off by up to 30 levels from
    one side; a dark item in front. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    base = np.asarray(
        [(245, 245, 245), (240, 232, 215), (215, 215, 218), *PASTEL][int(rng.integers(3 + 6))],
        np.float32,
    )
    side = int(rng.integers(45, 121))
    grout = int(rng.integers(2, 6))
    ox, oy = int(rng.integers(0, side)), int(rng.integers(0, side))
    n = (h // side + 2, w // side + 2)
    each = rng.normal(0, 4, n).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    ty, tx = (yy + oy) // side, (xx + ox) // side
    back = base + each[ty, tx][..., None]
    line = ((yy + oy) % side < grout) | ((xx + ox) % side < grout)
    back[line] = np.clip(base * float(rng.choice([0.8, 0.9, 1.04])), 0, 255)
    gx, gy = _grid(canvas)
    fall = float(rng.uniform(0, 30)) * (gx if rng.integers(2) else gy)
    back = back - fall[..., None]
    alpha = _alpha(a, size)
    return _jpeg(
        _dark_on(back, alpha, canvas, rng),
        rng,
    )


# Their figures were reported at the end of the fifth round: development kinds now,
# appended after the others so that write_group's seeds stay as they were.
KINDS["reflection"] = reflection
KINDS["tiles"] = tiles


# -----------------------------------------------------------------------------
# Held out in the sixth round of issue 22 (committed before any other change, run once
# when it was finished); their figures have been seen, so they are development kinds now.

BARS = [(255, 255, 255), (0, 0, 0), (128, 128, 128), (30, 60, 120), (200, 30, 60), (240, 200, 40)]


def padded(a, rng):
    """Padded to a square by a marketplace: a studio photo (the item on a flat light
    backdrop, 225-250, or one falling off by up to 25 levels towards the bottom), wider
    or taller than square, centred on a square canvas whose two bars are another colour
    (white, black, grey or a brand colour). JPEG."""
    size = int(rng.integers(280, 301))
    long, short = int(rng.integers(440, 641)), int(rng.integers(size + 20, size + 80))
    wide = bool(rng.integers(2))
    canvas = (long, short) if wide else (short, long)
    w, h = canvas
    level = float(rng.uniform(225, 250))
    _, gy = _grid(canvas)
    back = _flat(canvas, (level,) * 3) - float(rng.uniform(0, 25)) * (1 - gy[..., None])
    alpha = _alpha(a, size)
    photo = _dark_on(back, alpha, canvas, rng)
    side = max(w, h)
    square = _flat((side, side), BARS[int(rng.integers(len(BARS)))])
    x, y = (side - w) // 2, (side - h) // 2
    square[y : y + h, x : x + w] = photo
    return _jpeg(square, rng)


def hanger(a, rng):
    """On a clothes hanger: the hanger's hook (grey wire) above the item and its arms
    (grey wire 3-4 px or brown wood 7-11 px) sloping down from the hook's foot across
    the top of the item to either side of its middle, drawn over it; on a flat light
    backdrop (232-252). JPEG."""
    im, alpha, x, y, size = _hung(a, rng, 70, lambda rng: float(rng.uniform(232, 252)))
    draw = ImageDraw.Draw(im)
    rows = np.nonzero(alpha.max(axis=1) > 0.5)[0]
    cols = np.nonzero(alpha.max(axis=0) > 0.5)[0]
    top = y + (int(rows[0]) if len(rows) else 0)
    left, right = (x + int(cols[0]), x + int(cols[-1])) if len(cols) else (x, x + size)
    mid = (left + right) / 2
    half = (right - left) / 2 * float(rng.uniform(0.6, 1.05))
    foot = top - float(rng.uniform(5, 25))
    arm_y = top + float(rng.uniform(0.05, 0.15)) * size
    wood = bool(rng.integers(2))
    arm, width = ((120, 80, 45), int(rng.integers(7, 12))) if wood else ((150, 150, 155), 3)
    wire = (int(rng.integers(110, 170)),) * 3
    r = float(rng.uniform(10, 16))
    neck = foot - float(rng.uniform(15, 30))
    draw.line((mid, foot, mid, neck), fill=wire, width=3)
    draw.arc((mid - 2 * r, neck - 2 * r, mid, neck), 0, 200, fill=wire, width=3)
    draw.line((mid, foot, mid - half, arm_y), fill=arm, width=width)
    draw.line((mid, foot, mid + half, arm_y), fill=arm, width=width)
    draw.line((mid - half, arm_y, mid + half, arm_y), fill=arm, width=max(2, width // 2))
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


# Their figures were reported at the end of the sixth round: development kinds now,
# appended after the others so that write_group's seeds stay as they were.
KINDS["padded"] = padded
KINDS["hanger"] = hanger


# -----------------------------------------------------------------------------
# Held out in the seventh round of issue 22 (committed before any other change, run once
# when it was finished); their figures have been seen, so they are development kinds now.

MARKS = ["SAMPLE", "shop.example", "(c) STUDIO 7", "MY SHOP", "www.shop.example"]


def watermark(a, rng):
    """A shop's watermark over the whole photo: its name or web address repeated in
    rows 60-140 px apart, turned by 20-40 degrees either way, in white or grey at 15-35%
    opacity, over a dark item on a flat light backdrop (225-250). JPEG."""
    pixels, canvas, _ = _dark_on_flat(a, rng, 225, 250)
    w, h = canvas
    photo = _image(pixels)
    side = 2 * max(w, h)
    layer = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=int(rng.integers(18, 41)))
    text = MARKS[int(rng.integers(len(MARKS)))]
    step = int(rng.integers(60, 141))
    gap = int(rng.integers(40, 121))
    for row, ty in enumerate(range(0, side, step)):
        shift = (row % 2) * gap
        for tx in range(-shift, side, int(draw.textlength(text, font=font)) + gap):
            draw.text((tx, ty), text, fill=255, font=font)
    layer = layer.rotate(
        float(rng.choice([-1, 1]) * rng.uniform(20, 40)), Image.Resampling.BILINEAR
    )
    layer = layer.crop(((side - w) // 2, (side - h) // 2, (side - w) // 2 + w, (side - h) // 2 + h))
    cover = np.asarray(layer, np.float32)[..., None] / 255.0 * float(rng.uniform(0.15, 0.35))
    mark = float(rng.choice([255, 160, 120]))
    pixels = np.asarray(photo, np.float32) * (1 - cover) + mark * cover
    return _jpeg(pixels, rng)


def stand(a, rng):
    """On a display stand: a dark item held up by a pole (grey or black metal, 4-9 px)
    from the middle of its bottom edge down to a round base (an ellipse 80-180 px wide)
    on the floor 40-120 px below it, on a flat light backdrop (230-252). JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    alpha = _alpha(a, size)
    x, y = _somewhere(alpha, canvas, rng)
    rows = np.nonzero(alpha.max(axis=1) > 0.5)[0]
    cols = np.nonzero(alpha.max(axis=0) > 0.5)[0]
    bottom = y + (int(rows[-1]) if len(rows) else size)
    drop = int(rng.integers(40, 121))
    h = max(h, bottom + drop + 30)
    canvas = (w, h)
    pixels = _compose(
        _flat(canvas, (float(rng.uniform(230, 252)),) * 3),
        alpha,
        DARK[int(rng.integers(len(DARK)))],
        (x, y),
    )
    im = _image(pixels)
    draw = ImageDraw.Draw(im)
    mid = x + (int(cols.mean()) if len(cols) else size // 2)
    metal = (int(rng.choice([40, 90, 150])),) * 3
    floor = bottom + drop
    draw.line((mid, bottom - 5, mid, floor), fill=metal, width=int(rng.integers(4, 10)))
    half = int(rng.integers(40, 91))
    draw.ellipse((mid - half, floor - half // 6, mid + half, floor + half // 6), fill=metal)
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


# Their figures were reported at the end of the seventh round: development kinds now,
# appended after the others so that write_group's seeds stay as they were.
KINDS["watermark"] = watermark
KINDS["stand"] = stand


# -----------------------------------------------------------------------------
# Held out in the eighth round of issue 22 (committed before any other change, run once
# when it was finished); their figures have been seen, so they are development kinds now.


def window_light(a, rng):
    """Sunlight through a window: the bright panes of a window (2 or 3 across, 2 or 3
    down, sheared by up to 35% as light falling at a slant does), the dark bars of its
    frame between them, laid over part of the photo with soft edges (blurred by 4-12
    px); where the sun falls, the backdrop (205-235) and the item are 10-22% brighter.
    A dark item. JPEG."""
    pixels, canvas, _ = _dark_on_flat(a, rng, 205, 235)
    w, h = canvas
    across, down = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    pane_w, pane_h = w * float(rng.uniform(0.15, 0.3)), h * float(rng.uniform(0.15, 0.3))
    bar = float(rng.uniform(8, 20))
    left = float(rng.uniform(-0.3, 0.6)) * w
    top = float(rng.uniform(-0.3, 0.5)) * h
    shear = float(rng.uniform(-0.35, 0.35))
    light = Image.new("L", canvas, 0)
    draw = ImageDraw.Draw(light)
    for j in range(down):
        for i in range(across):
            x0 = left + i * (pane_w + bar)
            y0, y1 = top + j * (pane_h + bar), top + j * (pane_h + bar) + pane_h
            corners = [(x0 + shear * y0, y0), (x0 + pane_w + shear * y0, y0),
                       (x0 + pane_w + shear * y1, y1), (x0 + shear * y1, y1)]  # fmt: skip
            draw.polygon(corners, fill=255)
    light = light.filter(ImageFilter.GaussianBlur(float(rng.uniform(4, 12))))
    gain = float(rng.uniform(0.10, 0.22)) * np.asarray(light, np.float32)[..., None] / 255.0
    return _jpeg(pixels * (1 + gain), rng)


def creased(a, rng):
    """A creased paper backdrop: light paper (215-245) crossed by 3-7 creases, straight
    lines at any angle, each a soft ridge lit on one side and shaded on the other (8-25
    levels, 5-18 px wide), under a dark item. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paper = np.full((h, w), float(rng.uniform(215, 245)), np.float32)
    for _ in range(int(rng.integers(3, 8))):
        px, py = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        turn = float(rng.uniform(0, np.pi))
        d = (xx - px) * np.sin(turn) - (yy - py) * np.cos(turn)  # distance from the line
        width = float(rng.uniform(5, 18))
        u = d / width
        paper += float(rng.uniform(8, 25)) * u * np.exp(0.5 - 0.5 * u * u)
    alpha = _alpha(a, size)
    return _jpeg(
        _dark_on(np.repeat(paper[..., None], 3, axis=2), alpha, canvas, rng),
        rng,
    )


# Their figures were reported at the end of the eighth round: development kinds now,
# appended after the others so that write_group's seeds stay as they were.
KINDS["window-light"] = window_light
KINDS["creased"] = creased


# -----------------------------------------------------------------------------
# Held out in the ninth round of issue 22 (committed before any other change, run once
# when it was finished); their figures have been seen, so they are development kinds now.


def pegboard(a, rng):
    """On a shop's pegboard wall: a light board (white, grey or pale wood, 185-240)
    drilled with a regular grid of round holes (5-10 px across, 22-45 px apart), each
    dark inside (40-100) with a lighter rim below it where the light catches the
    hole's edge, a dark item in front of it. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    tone = float(rng.uniform(185, 240))
    tint = [(1, 1, 1), (1, 0.93, 0.8)][int(rng.integers(2))]
    board = Image.fromarray(
        np.clip(_flat(canvas, [tone * t for t in tint]), 0, 255).astype(np.uint8)
    )
    draw = ImageDraw.Draw(board)
    pitch = int(rng.integers(22, 46))
    r = float(rng.uniform(2.5, 5))
    hole = (int(rng.uniform(40, 100)),) * 3
    rim = tuple(min(255, int(tone * t) + 12) for t in tint)
    ox, oy = int(rng.integers(0, pitch)), int(rng.integers(0, pitch))
    for cy in range(oy, h + pitch, pitch):
        for cx in range(ox, w + pitch, pitch):
            draw.ellipse((cx - r, cy - r + 1.5, cx + r, cy + r + 1.5), fill=rim)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=hole)
    alpha = _alpha(a, size)
    pixels = _dark_on(np.asarray(board, np.float32), alpha, canvas, rng)
    return _jpeg(pixels, rng)


def perspective(a, rng):
    """Shot at a slant with a phone: a dark item on a flat light backdrop (215-250) seen
    in perspective, one side of the photo 6-16% shorter than the other (top, bottom,
    left or right), the backdrop filling the corners. JPEG."""
    pixels, canvas, level = _dark_on_flat(a, rng, 215, 250)
    w, h = canvas
    photo = _image(pixels)
    k = float(rng.uniform(0.06, 0.16)) / 2
    corners = np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64)  # where the photo's
    side = int(rng.integers(4))  # corners land: one side drawn in by k at each end
    if side == 0:
        corners[[0, 1], 0] += (k * w, -k * w)
    elif side == 1:
        corners[[3, 2], 0] += (k * w, -k * w)
    elif side == 2:
        corners[[0, 3], 1] += (k * h, -k * h)
    else:
        corners[[1, 2], 1] += (k * h, -k * h)
    # PIL maps each output pixel back into the photo: solve for the homography that takes
    # the drawn-in corners to the photo's own.
    rows = []
    for (x, y), (u, v) in zip(corners, [(0, 0), (w, 0), (w, h), (0, h)]):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, v])
    m = np.array(rows)
    coeffs = np.linalg.solve(m[:, :8], m[:, 8])
    slanted = photo.transform(
        canvas,
        Image.Transform.PERSPECTIVE,
        tuple(coeffs),
        Image.Resampling.BICUBIC,
        fillcolor=(int(round(level)),) * 3,
    )
    return slanted, "jpg", {"quality": int(rng.integers(75, 96))}


# Their figures were reported at the end of the ninth round: development kinds now,
# appended after the others so that write_group's seeds stay as they were.
KINDS["pegboard"] = pegboard
KINDS["perspective"] = perspective


# -----------------------------------------------------------------------------
# Held out in the tenth round of issue 22 (committed before any other change, run once
# when it was finished); their figures have been seen, so they are development kinds now.


def plaid(a, rng):
    """On a checked blanket: a light ground (190-240 in each channel) crossed by stripes of
    a second colour (150-215) in both directions, 40-110 px apart and a quarter to a half
    of that wide, darker where they cross, with a weave's noise (sigma 3 levels); a dark
    item on it. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    ground, stripe = rng.uniform(190, 240, 3), rng.uniform(150, 215, 3)
    pitch = float(rng.uniform(40, 110))
    width = pitch * float(rng.uniform(0.25, 0.5))
    ox, oy = rng.uniform(0, pitch, 2)
    across = ((np.arange(w)[None] - ox) % pitch < width).astype(np.float32)
    down = ((np.arange(h)[:, None] - oy) % pitch < width).astype(np.float32)
    cover = (0.5 * (across + down))[..., None]  # 1 where two stripes cross
    blanket = ground * (1 - cover) + stripe * cover + rng.normal(0, 3, (h, w, 3))
    alpha = _alpha(a, size)
    return _jpeg(
        _dark_on(blanket.astype(np.float32), alpha, canvas, rng),
        rng,
    )


APP_NAMES = ["Cotton tee", "Summer dress", "Leather boots", "Wool coat", "Canvas bag"]
APP_PRICES = ["$19.99", "$24.00", "49.00", "SALE $15", "$12.50"]  # the default font's glyphs


def app_screenshot(a, rng):
    """A phone's screenshot of a shop's app: the product photo (a dark item on a flat
    light backdrop, 225-250) across the screen's width, under a status bar (24-40 px,
    black or white, with the time and a battery) and above a white panel (120-220 px)
    with the item's name, its price and a coloured "Add to cart" button. PNG."""
    pixels, _, _ = _dark_on_flat(a, rng, 225, 250)
    photo = _image(pixels)
    w = photo.width
    bar, panel = int(rng.integers(24, 41)), int(rng.integers(120, 221))
    dark_bar = bool(rng.random() < 0.5)
    screen = Image.new("RGB", (w, bar + photo.height + panel), (255, 255, 255))
    screen.paste(photo, (0, bar))
    draw = ImageDraw.Draw(screen)
    ink = (255, 255, 255) if dark_bar else (0, 0, 0)
    if dark_bar:
        draw.rectangle((0, 0, w, bar - 1), fill=(0, 0, 0))
    small = ImageFont.load_default(size=int(bar * 0.55))
    clock = f"{int(rng.integers(0, 24))}:{int(rng.integers(0, 60)):02d}"
    draw.text((12, bar * 0.2), clock, fill=ink, font=small)
    left, top, bottom = w - 44, bar * 0.3, bar * 0.7
    draw.rectangle((left, top, left + 26, bottom), outline=ink, width=2)
    draw.rectangle(
        (left + 3, top + 3, left + 3 + 20 * float(rng.uniform(0.2, 1)), bottom - 3), fill=ink
    )
    font = ImageFont.load_default(size=int(rng.integers(16, 25)))
    y = bar + photo.height + 12
    draw.text((14, y), APP_NAMES[int(rng.integers(len(APP_NAMES)))], fill=(20, 20, 20), font=font)
    draw.text(
        (14, y + 30), APP_PRICES[int(rng.integers(len(APP_PRICES)))], fill=(20, 20, 20), font=font
    )
    button = (14, y + 64, w - 14, min(y + 108, screen.height - 8))
    draw.rounded_rectangle(button, radius=10, fill=VIVID[int(rng.integers(len(VIVID)))])
    draw.text((w / 2 - 45, y + 74), "Add to cart", fill=(255, 255, 255), font=font)
    return screen, "png", {}


# Their figures were reported at the end of the tenth round: development kinds now,
# appended after the others so that write_group's seeds stay as they were.
KINDS["plaid"] = plaid
KINDS["app-screenshot"] = app_screenshot


# -----------------------------------------------------------------------------
# Held out in the eleventh round of issue 22 (committed before any other change, run
# once when it was finished); their figures have been seen.


def defocus(a, rng):
    """Out of focus or shaken: a dark item on a flat light backdrop (225-252), the whole
    photo blurred, half of them by a lens (a Gaussian of 1.5-4 px), half by a hand's
    shake (a straight streak of 6-16 px at any angle). JPEG."""
    pixels, _, _ = _dark_on_flat(a, rng, 225, 252)
    im = _image(pixels)
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 4))))
    else:
        n = int(rng.integers(6, 17)) | 1  # an odd streak
        theta = float(rng.uniform(0, np.pi))
        streak = Image.new("L", (n, n), 0)
        c = (n - 1) / 2
        dx, dy = c * np.cos(theta), c * np.sin(theta)
        ImageDraw.Draw(streak).line((c - dx, c - dy, c + dx, c + dy), fill=255, width=1)
        weights = np.asarray(streak, np.float32)
        im = _image(
            cv2.filter2D(pixels, -1, weights / weights.sum(), borderType=cv2.BORDER_REPLICATE)
        )
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


def white_on_white(a, rng):
    """A light item on a white backdrop, as a white shirt is shot: the item pale grey,
    cream or a pastel (175-220 in each channel), the backdrop 242-255, a faint shadow
    (8-20 levels, blurred by 6-12 px) down and to one side. JPEG."""
    size, canvas = _studio_size(rng)
    alpha = _alpha(a, size)
    back = _flat(canvas, (float(rng.uniform(242, 255)),) * 3)
    x, y = _somewhere(alpha, canvas, rng)
    dx, dy = int(rng.integers(-10, 11)), int(rng.integers(4, 13))
    shade = Image.fromarray((alpha * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(float(rng.uniform(6, 12)))
    )
    depth = float(rng.uniform(8, 20)) / 255.0
    # The blurred shape placed as an item is (cut off by the frame), as a 0..1 cover.
    cast = _compose(
        np.zeros((canvas[1], canvas[0], 1), np.float32),
        np.asarray(shade, np.float32) / 255.0,
        (1.0,),
        (x + dx, y + dy),
    )[..., 0]
    back = _shade(back, 1 - depth * cast)
    ink = tuple(float(v) for v in rng.uniform(175, 220, 3))
    return _jpeg(_compose(back, alpha, ink, (x, y)), rng)


# Reported at the end of the eleventh round: development kinds now, after the others so
# that every seed stays.
KINDS["defocus"] = defocus
KINDS["white-on-white"] = white_on_white


# -----------------------------------------------------------------------------
# Held out in the twelfth round of issue 22 (committed before any other change, run
# once when it was finished); their figures have been seen.

SKIN = [(241, 200, 170), (224, 172, 120), (190, 130, 85), (140, 90, 60), (95, 62, 45)]


def in_hand(a, rng):
    """Held up in a hand, as a seller shows an item: a dark item on a flat light backdrop
    (220-250), a forearm in one of five skin tones (45-70 px wide) coming in from the top
    or a side of the frame to the item's edge on that side, the hand (a palm and four
    fingers) gripping the item over its edge. JPEG."""
    size, canvas = _studio_size(rng)
    alpha = _alpha(a, size)
    x, y = _somewhere(alpha, canvas, rng)
    back = _flat(canvas, (float(rng.uniform(220, 250)),) * 3)
    pixels = _compose(back, alpha, DARK[int(rng.integers(len(DARK)))], (x, y))
    ys, xs = np.nonzero(alpha > 0.5)
    if not len(xs):
        return _jpeg(pixels, rng)
    side = int(rng.integers(3))  # the top, the left or the right of the frame
    swing = int(rng.integers(-60, 61))
    if side == 0:
        edge = ys.min()
        gx, gy = x + int(np.median(xs[ys == edge])), y + int(edge)
        ex, ey = gx + swing, -10
    else:
        edge = xs.min() if side == 1 else xs.max()
        gx, gy = x + int(edge), y + int(np.median(ys[xs == edge]))
        ex, ey = (-10 if side == 1 else canvas[0] + 10), gy + swing
    im = _image(pixels)
    draw = ImageDraw.Draw(im)
    skin = SKIN[int(rng.integers(len(SKIN)))]
    crease = tuple(int(c * 0.8) for c in skin)
    arm = int(rng.integers(45, 71))
    draw.line((ex, ey, gx, gy), fill=skin, width=arm)  # the forearm
    d = np.asarray([gx - ex, gy - ey], np.float64)
    d /= max(np.hypot(*d), 1e-6)
    n = np.asarray([-d[1], d[0]])
    palm = arm * 0.6
    draw.ellipse((gx - palm, gy - palm, gx + palm, gy + palm), fill=skin)
    finger = max(6, arm // 5)
    for k in range(4):  # the fingers over the item, a crease between them
        off = (k - 1.5) * arm * 0.24
        f0 = (gx + n[0] * off, gy + n[1] * off)
        f1 = (f0[0] + d[0] * arm * 0.55, f0[1] + d[1] * arm * 0.55)
        draw.line((*f0, *f1), fill=skin, width=finger)
        draw.ellipse(
            (f1[0] - finger / 2, f1[1] - finger / 2, f1[0] + finger / 2, f1[1] + finger / 2),
            fill=skin,
        )
        if k:
            c = (gx + n[0] * (off - arm * 0.12), gy + n[1] * (off - arm * 0.12))
            draw.line((*c, c[0] + d[0] * arm * 0.5, c[1] + d[1] * arm * 0.5), fill=crease, width=1)
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


def halftone(a, rng):
    """A catalogue page scanned: the item printed in halftone (round dots on a screen
    turned 40-50 degrees, 4-7 px apart, a dot's area its darkness; the item's darkest
    grey 40-90), on off-white paper yellowed with age (230-248, warmer in red than in
    blue) that the scanner lit a little unevenly, a caption line under or over the item,
    a slight blur. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    alpha = _alpha(a, size)
    x, y = _somewhere(alpha, canvas, rng)
    level = float(rng.uniform(40, 90))
    grey = _compose(np.full((h, w, 1), 255, np.float32), alpha, (level,), (x, y))[..., 0]
    pitch = float(rng.uniform(4, 7))
    turn = np.deg2rad(float(rng.uniform(40, 50)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx * np.cos(turn) + yy * np.sin(turn)) / pitch
    v = (yy * np.cos(turn) - xx * np.sin(turn)) / pitch
    ink = np.hypot(u - np.round(u), v - np.round(v)) < np.sqrt((1 - grey / 255) / np.pi)
    paper_level = float(rng.uniform(230, 248))
    paper = np.asarray(
        [paper_level, paper_level - rng.uniform(2, 8), paper_level - rng.uniform(8, 22)],
        np.float32,
    )
    gx, gy = _grid(canvas)
    light = 1 - float(rng.uniform(0, 0.06)) * (gx if rng.random() < 0.5 else gy)
    pixels = _shade(_flat(canvas, paper), light)
    pixels[ink] = np.asarray([35, 30, 30], np.float32)
    im = _image(pixels)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=int(rng.integers(11, 17)))
    caption = ["Art. 4711  wool blend  39.90", "No. 218 - cotton, 6 colours", "Model 55  $24"][
        int(rng.integers(3))
    ]
    below = y + size + 8 < h - 20
    draw.text(
        (x + 10, y + size + 8 if below else max(2, y - 24)), caption, fill=(40, 35, 35), font=font
    )
    im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.6, 1.2))))
    return im, "jpg", {"quality": int(rng.integers(75, 96))}


# Reported at the end of the twelfth round: development kinds now, after the others so
# that every seed stays.
KINDS["in-hand"] = in_hand
KINDS["halftone"] = halftone


# -----------------------------------------------------------------------------
# Held out in the thirteenth round of issue 22 (committed before any other change, run
# once when it is finished): reported as they come out, never tuned to.


def flash(a, rng):
    """Shot with the camera's flash against a wall: a dark item on a light wall
    (200-240), the light brightest where the flash points and falling off towards the
    edges by 15-40%, and the item's hard shadow on the wall behind it, offset 6-20 px
    down and to one side, dark (35-60% of the wall's level) with sharp edges. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    alpha = _alpha(a, size)
    x, y = _somewhere(alpha, canvas, rng)
    gx, gy = _grid(canvas)
    cx, cy = float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7))
    fall = float(rng.uniform(0.15, 0.4))
    light = 1 - fall * np.clip(((gx - cx) ** 2 + (gy - cy) ** 2) / 0.5, 0, 1)
    wall = _shade(_flat(canvas, (float(rng.uniform(200, 240)),) * 3), light)
    dx = int(rng.integers(6, 21)) * (1 if rng.integers(2) else -1)
    dy = int(rng.integers(6, 21))
    depth = float(rng.uniform(0.4, 0.65))
    cast = _compose(
        np.zeros((h, w, 1), np.float32), (alpha > 0.2).astype(np.float32), (1.0,), (x + dx, y + dy)
    )[..., 0]
    wall = _shade(wall, 1 - depth * cast)
    return _jpeg(_compose(wall, alpha, DARK[int(rng.integers(len(DARK)))], (x, y)), rng)


def bedsheet(a, rng):
    """Laid on a bed, as people sell from home: a light sheet (white, cream or pale blue,
    215-250) in broad soft folds (4-8 waves at any angle, 60-200 px long, each shading
    the sheet by 3-8 levels) and a few sharper wrinkles, under a dark item. JPEG."""
    size, canvas = _studio_size(rng)
    w, h = canvas
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(4, 9))):
        turn = float(rng.uniform(0, np.pi))
        d = xx * np.cos(turn) + yy * np.sin(turn)
        period = float(rng.uniform(60, 200))
        shade += float(rng.uniform(3, 8)) * np.sin(2 * np.pi * d / period + rng.uniform(0, 6.3))
    for _ in range(int(rng.integers(2, 5))):  # wrinkles: short sharp ridges
        px, py = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        turn = float(rng.uniform(0, np.pi))
        along = (xx - px) * np.cos(turn) + (yy - py) * np.sin(turn)
        across = (xx - px) * np.sin(turn) - (yy - py) * np.cos(turn)
        length, width = float(rng.uniform(40, 160)), float(rng.uniform(2, 5))
        shade -= float(rng.uniform(8, 20)) * np.exp(
            -((across / width) ** 2) - (along / length) ** 2
        )
    base = np.asarray(
        [(250, 250, 248), (245, 238, 220), (225, 235, 248)][int(rng.integers(3))], np.float32
    ) * float(rng.uniform(0.88, 1.0))
    sheet = base[None, None, :] + shade[..., None]
    alpha = _alpha(a, size)
    return _jpeg(_dark_on(sheet, alpha, canvas, rng), rng)


HELD_OUT: dict[str, Callable] = {
    "flash": flash,
    "bedsheet": bedsheet,
}
ALL: dict[str, Callable] = {**GROUPS, **KINDS, **HELD_OUT}


def write_group(
    root: Path, group: str, x: np.ndarray, y: np.ndarray, seed: int = 0
) -> dict[str, int]:
    """Item i of (x, y) as <root>/<group>/<label>/<i>.<ext>; returns {path relative to
    root: index into x}."""
    rng = np.random.default_rng([seed, list(ALL).index(group)])
    made = {}
    for i, (a, label) in enumerate(zip(x, y)):
        im, ext, options = ALL[group](a, rng)
        rel = f"{group}/{label}/{i:05d}.{ext}"
        (root / group / str(label)).mkdir(parents=True, exist_ok=True)
        im.save(root / rel, **options)
        made[rel] = i
    return made


def write_groups(
    root: Path, jobs: list[tuple[str, np.ndarray, np.ndarray]], decode: bool = False
) -> list[tuple[dict[str, int], np.ndarray | None]]:
    """write_group for each (group, x, y) of `jobs`, the groups made side by side in one
    process per CPU (a group draws from its own random stream, so the files are those
    write_group makes one group after another).

    Args:
        root: the directory the groups are written under.
        jobs: (group, items, labels) per group.
        decode: also decode each group's files as `fmnist-job score` does.

    Returns:
        Per job, in order: its {path relative to root: index into its items}, and with
        `decode` its files decoded (uint8 [n, 28, 28], in index order), else None.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    processes = min(len(jobs), len(os.sched_getaffinity(0)))
    spawn = multiprocessing.get_context("spawn")  # the caller may hold TensorFlow's threads
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        return list(pool.map(_write_one, [(root, *job, decode) for job in jobs]))


def _write_one(args) -> tuple[dict[str, int], np.ndarray | None]:
    root, group, x, y, decode = args
    made = write_group(root, group, x, y)
    if not decode:
        return made, None
    from fmnist.scoring import images

    return made, np.stack([images.decode(root / rel) for rel in sorted(made, key=made.get)])
