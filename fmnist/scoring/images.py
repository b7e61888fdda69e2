"""Image files to model input: any common format and mode to uint8 [28, 28], light on black.

Fashion-MNIST images are 28x28 grayscale, a light object on a black (0) background,
the object filling the frame. They were made from catalogue photos by a documented
conversion (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747, section 2): trim the margins
whose colour is within 5% of the corner pixels' colour, resize the longest edge to 28,
sharpen, extend the shorter edge to 28 centring the item, negate, grayscale. Product
photos are usually dark on white, any size, the item anywhere in the frame, often RGB
with alpha. `decode` turns one file into what the model was trained on:

    open (PNG, JPEG, BMP, GIF, WebP, TIFF only) -> refuse huge images -> EXIF rotation
    -> 8-bit grayscale (alpha composited onto the background)
    -> fit "trim" (a photo): cut the margins of the corners' colour, longest edge to 28,
       negate if the background is light, stretch item..background to 255..0
    -> fit "whole" (already framed): the whole image, longest edge to 28, negate if
       the border is mostly light
    -> pad to 28x28, centred, with the background colour

`fit="auto"` trims everything except 28x28 images: those are taken as already
converted (Fashion-MNIST's own format), so the data set's own images pass unchanged.
The sharpening step of the original conversion is left out: measured on the photo sets
of tests/photos.py, it did not help (docs/photos.md).

This module imports only Pillow and NumPy: it runs in decoder processes and Ray tasks
that never need TensorFlow.
"""

from __future__ import annotations

import os
import warnings
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageOps

SIZE = 28

# What we open, by file extension (lower-cased). Other files are ignored and counted.
EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif",
                        ".webp", ".tif", ".tiff"})
# ...and which decoders Pillow may try on them. Content decides the format (a JPEG named
# .png still works), but only among these: no exotic plugin ever parses an upload.
FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF")

# Decompression bombs: a few KB of PNG can declare 400 megapixels. Pillow warns above
# MAX_IMAGE_PIXELS and refuses above twice that; we refuse both (the warning becomes an
# exception below). 50 MP still admits a full-size photo from any current camera.
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)

INVERT_MODES = ("auto", "always", "never")
FIT_MODES = ("auto", "trim", "whole")

# Trimming works on an image at least this large on its shorter side (JPEGs are decoded
# at 1/2..1/8 scale down to it, other formats reduced): enough resolution to find the
# item's edges, and the cost of a big photo stays close to that of a small one.
WORK = 4 * SIZE
# A pixel is background when its gray level is within 5% of the corner colour (the data
# set's tolerance) after a 3x3 mean, which keeps sensor noise and JPEG ripples from
# counting as content; the pixel itself must also differ by more than EDGE levels.
FUZZ = round(0.05 * 255)
EDGE = 2
# Item contrast below which stretching would only amplify noise (a blank image).
MIN_CONTRAST = 32
# A cut-out's gray levels varying by more than this (a standard deviation) are a photo's.
SHADED = 20.0
# The backdrop is fitted to a ring this many work pixels wide; content must stand out
# from it by NOISE_SIGMAS times the ring's noise (when that is above FUZZ).
RING = 2
NOISE_SIGMAS = 4.0
# Parts of the item away from its main region: kept when they carry PART_SHARE of its
# contrast within PART_GAP of its size, or PAIR_SHARE within PAIR_GAP (a pair of shoes).
PART_SHARE, PART_GAP = 0.02, 0.1
PAIR_SHARE, PAIR_GAP = 0.25, 0.5
UNSHADOW, SHADOW_SLACK = True, 0.02
# Straightening: a minimum-area box turned by MIN_TILT..MAX_TILT degrees, at most
# TIGHTER of the upright box's area.
STRAIGHTEN = True
MIN_TILT, MAX_TILT, TIGHTER = 3.0, 12.0, 0.97
AGREE = 3.0


class ImageError(Exception):
    """This file is not an image we can score; the message goes in the `error` column."""


def _nonblocking(path, flags):
    # A FIFO that appeared after the directory walk would block open() forever;
    # O_NONBLOCK makes it read as empty instead (and changes nothing for regular files).
    return os.open(path, flags | os.O_NONBLOCK)


def decode(path: str | os.PathLike, invert: str = "auto", fit: str = "auto") -> np.ndarray:
    """One image file -> uint8 [28, 28], light object on black. Raises ImageError."""
    try:
        with open(path, "rb", opener=_nonblocking) as f:
            with Image.open(f, formats=FORMATS) as im:
                return to_model_input(im, invert, fit)
    except Image.UnidentifiedImageError:
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        raise ImageError("empty file" if empty else
                         "not a PNG, JPEG, BMP, GIF, WebP or TIFF image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"decompression bomb: more than {MAX_PIXELS:,} pixels") from None
    except Exception as e:  # noqa: BLE001 - whatever a broken file raises, it is this file's error
        raise ImageError(describe(e)) from None


def describe(e: BaseException) -> str:
    """A one-line error message, without Pillow's file-object reprs."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror  # "Permission denied", not "[Errno 13] ... '/full/path'"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def to_model_input(im: Image.Image, invert: str = "auto", fit: str = "auto") -> np.ndarray:
    """An opened Pillow image (first frame) -> uint8 [28, 28], light object on black."""
    if invert not in INVERT_MODES:
        raise ValueError(f"invert must be one of {INVERT_MODES}, got {invert!r}")
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
    trim = fit == "trim" or (fit == "auto" and im.size != (SIZE, SIZE))
    # JPEG only: let libjpeg decode the luminance at 1/2..1/8 scale, still >= the size
    # the next step needs.
    im.draft("L", (WORK, WORK) if trim else (SIZE, SIZE))
    im.load()
    if "exif" in im.info or im.format in ("JPEG", "TIFF", "WEBP", "MPO"):
        im = ImageOps.exif_transpose(im)  # phone photos are stored sideways
    gray = grayscale(im)
    if trim:
        return trimmed(gray, invert)
    if gray.size != (SIZE, SIZE):
        # Shrinking averages areas (BOX): no ringing around a hard edge, so a black
        # background stays exactly black; the rare enlargement interpolates. Pillow
        # premultiplies alpha (mode LA) itself.
        shrink = max(gray.size) > SIZE
        gray = ImageOps.contain(gray, (SIZE, SIZE), method=Image.Resampling.BOX if shrink
                                else Image.Resampling.BILINEAR)
    if gray.mode == "LA":
        pixels = composite(np.asarray(gray), invert)
    else:
        pixels = np.asarray(gray)
    if invert == "always" or (invert == "auto" and light_border(pixels)):
        pixels = 255 - pixels
    return pad(pixels)


def grayscale(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 'L', or 'LA' when the image has transparency."""
    mode = im.mode
    if mode in ("L", "LA"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA").convert("LA") if has_alpha else im.convert("L")
    if mode in ("RGBA", "RGBa", "La"):
        return im.convert("LA")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_stretch(np.asarray(im), mode), mode="L")
    if mode != "RGB":
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX: via RGB to luminance
    return im.convert("L")


def _stretch(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit images scale from 0..65535; 32-bit integer and float images have no fixed
    range, so they stretch from their own minimum..maximum to 0..255."""
    a = a.astype(np.float64)
    if mode.startswith("I;16"):
        lo, hi = 0.0, 65535.0
    else:
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
    return np.clip(np.rint((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def composite(la: np.ndarray, invert: str) -> np.ndarray:
    """[h, w, 2] gray+alpha -> gray, transparent parts set to a background colour.

    Transparent means "background", and the background must end up black in model
    space. With --invert never that is black; with always, white (inverted later). With
    auto the visible content decides: dark content (a product cut-out) goes on white,
    light content on black, and then the border rule inverts the first kind. Light but
    shaded content is a photo cut out of its light backdrop (a flat colour carries the
    item's shape in its alpha, a photo its own shading): it goes back on white."""
    gray, alpha = la[..., 0].astype(np.float32), la[..., 1].astype(np.float32) / 255.0
    if invert == "never":
        background = 0.0
    elif invert == "always":
        background = 255.0
    else:
        weight = alpha.sum()
        content = (gray * alpha).sum() / weight if weight > 0 else 255.0
        shading = np.sqrt((alpha * (gray - content) ** 2).sum() / weight) if weight > 0 else 0.0
        background = 255.0 if content < 128 or shading > SHADED else 0.0
    mixed = gray * alpha + background * (1.0 - alpha)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


# Flat indices of the outermost ring of a 28x28 image (the common case, precomputed).
_RING = np.flatnonzero(np.pad(np.zeros((SIZE - 2, SIZE - 2), bool), 1, constant_values=True))


def border(pixels: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels."""
    if pixels.shape == (SIZE, SIZE):
        return pixels.ravel()[_RING]
    if min(pixels.shape) <= 2:
        return pixels.ravel()
    return np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])


def light_border(pixels: np.ndarray) -> bool:
    """Mostly light border (more than half of its pixels above mid-grey): the image is
    dark on light. Never true for any of the 10,000 Fashion-MNIST test images (their
    border is at most 43% light), always true for their inverses."""
    ring = border(pixels)
    return 2 * int(np.count_nonzero(ring > 127)) > ring.size


def trimmed(gray: Image.Image, invert: str) -> np.ndarray:
    """The data set's conversion of a photo ('L' or 'LA'): the item cut out of its
    backdrop, its longest edge resized to 28, light on black, centred."""
    if gray.mode == "LA":
        gray = Image.fromarray(composite(np.asarray(gray), invert), mode="L")
    factor = min(gray.size) // WORK
    if factor >= 2:  # a big non-JPEG photo: area-average it down first (fast, in C)
        gray = gray.reduce(factor)
    g = np.asarray(gray)
    item = locate(g)
    dark = item.dark if invert == "auto" else invert == "always"
    # The item's contrast against the backdrop model, light on black: a gradient or a
    # vignette behind the item is subtracted, not kept as grey.
    signed = g.astype(np.float32) - item.background
    pixels = np.clip(np.rint(-signed if dark else signed), 0, 255).astype(np.uint8)
    if item.box:
        pixels[item.other] = 0  # marks, stickers, dust and shadow inside the box: not item
        left, top, right, bottom = item.box
        if item.tilt:
            pixels, (left, top, right, bottom) = straightened(pixels, item)
        pixels = pixels[top:bottom, left:right]
    crop = Image.fromarray(pixels)
    if max(crop.size) != SIZE:
        # BOX, BILINEAR, BICUBIC and LANCZOS gave the same accuracy on the photo sets
        # (within 0.12 points on average); BOX is the cheapest and never rings.
        crop = crop.resize(_longest_edge(crop.size), Image.Resampling.BOX
                           if max(crop.size) > SIZE else Image.Resampling.BILINEAR)
    pixels = np.asarray(crop)
    # Fashion-MNIST items span the full range (99% of the test images reach 254 or 255
    # on a background of 0); a navy shirt on light grey does not until stretched.
    brightest = int(pixels.max())
    if brightest >= MIN_CONTRAST:
        pixels = np.clip(np.rint(pixels.astype(np.float32) * (255.0 / brightest)), 0, 255
                         ).astype(np.uint8)
    return pad(pixels, 0)


class Item(NamedTuple):
    """Where the item is in a work image, and what is behind it."""
    background: np.ndarray  # float32 [h, w]: the backdrop model, gray levels
    dark: bool              # the item is darker than its backdrop (a product photo)
    box: tuple[int, int, int, int] | None  # (left, upper, right, lower); None: blank
    other: np.ndarray       # bool [h, w]: content that is not the item (marks, dust)
    chosen: np.ndarray | None = None  # bool [h, w]: the item's pixels
    tilt: float = 0.0       # degrees counter-clockwise that would straighten it


def straightened(pixels: np.ndarray, item: Item) -> tuple[np.ndarray, tuple]:
    """(the contrast image turned by item.tilt about the item's centre, on a canvas
    grown so no corner is lost; the item's box in it)."""
    h, w = pixels.shape
    pad = max(h, w) // 4
    left, top, right, bottom = item.box
    turn = cv2.getRotationMatrix2D(((left + right) / 2 + pad, (top + bottom) / 2 + pad),
                                   item.tilt, 1.0)
    size = (w + 2 * pad, h + 2 * pad)
    grown = cv2.copyMakeBorder(pixels, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    mask = cv2.copyMakeBorder(item.chosen.view(np.uint8), pad, pad, pad, pad,
                              cv2.BORDER_CONSTANT, value=0)
    turned = cv2.warpAffine(grown, turn, size, flags=cv2.INTER_LINEAR)
    region = cv2.warpAffine(mask, turn, size, flags=cv2.INTER_NEAREST).astype(bool)
    return turned, _box(region)


def locate(g: np.ndarray) -> Item:
    """The item in a uint8 [h, w] work image: a backdrop model fitted to the border,
    content where the 3x3 mean differs from it by more than the noise allows, and the
    main connected region with the parts close to it (select)."""
    smooth = cv2.blur(g.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    background, noise = backdrop(smooth)
    diff = smooth - background
    far = np.abs(diff)
    # Floor: today's 5% (FUZZ), raised only where the border is noisier than that.
    low = max(float(FUZZ), NOISE_SIGMAS * noise)
    content = (far > low) & (np.abs(g - background) > EDGE)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(content.view(np.uint8),
                                                               connectivity=8)
    if count < 2:
        return Item(background, float(np.median(background)) > 127, None, content)
    # Otsu on the difference picks the item's own contrast out of the image: only
    # components with pixels above it can be the item; the weaker pixels around them
    # (the item's faint edge) still count for its extent.
    otsu, _ = cv2.threshold(np.clip(far, 0, 255).astype(np.uint8), 0, 255,
                            cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    strong = far > max(low, otsu)
    mass = np.bincount(labels[strong], weights=far[strong], minlength=count)[1:]
    if not mass.any():
        mass = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    keep = select(mass, stats[1:, :4])
    chosen = np.isin(labels, 1 + np.flatnonzero(keep))
    dark = float(diff[chosen].sum()) < 0
    box = unshadowed(chosen, strong & chosen) if UNSHADOW else _box(chosen)
    other = content & ~chosen
    if box != _box(chosen):  # a drop shadow: its pixels beside the item go too
        other |= chosen & ~silhouette(strong & chosen)
    return Item(background, dark, box, other, chosen, tilt(strong & chosen, box))


def tilt(strong: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The turn (degrees, counter-clockwise) that would straighten an item set at a
    small angle, or 0: the minimum-area rectangle around its strong pixels, trusted only
    between MIN_TILT and MAX_TILT degrees and when it is much tighter than the upright
    box (an irregular shape, a sandal, has a slanted minimum box of about the same area)."""
    if not STRAIGHTEN:
        return 0.0
    points = cv2.findNonZero(strong.view(np.uint8))
    if points is None or len(points) < 20:
        return 0.0
    (_, _), (w, h), angle = cv2.minAreaRect(points)
    angle = (angle + 45) % 90 - 45  # OpenCV gives [-90, 0): the nearest upright turn
    cols, rows = np.flatnonzero(strong.any(axis=0)), np.flatnonzero(strong.any(axis=1))
    upright = (cols[-1] - cols[0] + 1) * (rows[-1] - rows[0] + 1)
    if not MIN_TILT <= abs(angle) <= MAX_TILT or w * h > TIGHTER * upright:
        return 0.0
    # The principal axis (second moments) must agree: on an upright irregular shape the
    # two disagree, on a turned one they turn together.
    m = cv2.moments(strong.view(np.uint8), binaryImage=True)
    axis = np.degrees(0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"]))
    axis = (axis + 45) % 90 - 45
    return float(angle) if abs(axis - angle) <= AGREE else 0.0


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def silhouette(strong: np.ndarray) -> np.ndarray:
    """The strong pixels closed, their holes filled and grown by 2 pixels: the item's
    outline with its faint inside and edge, not what lies beside it."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    closed = cv2.morphologyEx(strong.view(np.uint8), cv2.MORPH_CLOSE, kernel)
    outside = np.pad(1 - closed, 1, constant_values=1)
    cv2.floodFill(outside, None, (0, 0), 2)
    return cv2.dilate((outside[1:-1, 1:-1] != 2).view(np.uint8), kernel).astype(bool)


def unshadowed(chosen: np.ndarray, strong: np.ndarray) -> tuple[int, int, int, int]:
    """The box of the chosen content, less a drop shadow. An item's faint edge reaches
    about as far beyond its strong pixels on either side; a shadow is cast to one side
    (or two adjacent ones), so on each axis the weak margin may exceed the opposite
    one by at most SHADOW_SLACK of the item's size (2 pixels at least)."""
    box = []
    for axis in (0, 1):  # columns (x), then rows (y)
        spread = np.flatnonzero(chosen.any(axis=axis))
        core = np.flatnonzero(strong.any(axis=axis))
        box.append([int(spread[0]), int(spread[-1]) + 1])
        if core.size:
            box[-1].append((int(core[0]), int(core[-1]) + 1))
    size = max(b[1] - b[0] for b in box)
    out = []
    for b in box:
        lo, hi = b[0], b[1]
        if len(b) == 3:
            (c0, c1), slack = b[2], max(2.0, SHADOW_SLACK * size)
            below, above = c0 - lo, hi - c1
            lo = c0 - int(min(below, above + slack))
            hi = c1 + int(min(above, below + slack))
        out.append((lo, hi))
    (x0, x1), (y0, y1) = out
    return x0, y0, x1, y1


def select(mass: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Which connected regions are the item (bool [n]), from their contrast mass and
    boxes (x, y, w, h): the heaviest, and the regions close to it that are not specks
    (a pair of sandals, a bag and its strap). Text, logos and dust away from it are not."""
    main = int(np.argmax(mass))
    x, y, w, h = boxes[main]
    gap_x = np.maximum(np.maximum(x - (boxes[:, 0] + boxes[:, 2]), boxes[:, 0] - (x + w)), 0)
    gap_y = np.maximum(np.maximum(y - (boxes[:, 1] + boxes[:, 3]), boxes[:, 1] - (y + h)), 0)
    gap = np.maximum(gap_x, gap_y) / max(w, h)
    share = mass / mass[main]
    keep = ((share >= PART_SHARE) & (gap <= PART_GAP)) | ((share >= PAIR_SHARE) & (gap <= PAIR_GAP))
    keep[main] = True
    return keep


def backdrop(smooth: np.ndarray) -> tuple[np.ndarray, float]:
    """(the backdrop model: float32 [h, w], the border's noise: a robust sigma in gray
    levels) of a smoothed image. A quadratic surface is fitted by least squares to the
    outermost RING pixels, the ones far from it (an item cut by the frame, a mark in a
    corner) left out in turn, so gradients, vignettes and uneven light are followed; a
    flat backdrop comes out flat."""
    h, w = smooth.shape
    ring = np.zeros((h, w), bool)
    ring[:RING], ring[-RING:], ring[:, :RING], ring[:, -RING:] = True, True, True, True
    v = smooth[ring]
    level = float(np.median(v))
    spread = max(float(FUZZ), 2.5 * _sigma(v - level))
    keep = np.abs(v - level) <= spread
    if min(h, w) < 4 * RING or keep.sum() < 12:
        return np.full((h, w), level, np.float32), _sigma(v[keep] - level)
    ys, xs = np.nonzero(ring)
    terms = _terms(xs / max(w - 1, 1) * 2 - 1, ys / max(h - 1, 1) * 2 - 1)
    for _ in range(3):
        coef = np.linalg.lstsq(terms[keep], v[keep], rcond=None)[0]
        residual = v - terms @ coef
        noise = _sigma(residual[keep])
        keep = np.abs(residual) <= max(2.5 * noise, float(EDGE + 1))
        if keep.sum() < 12:
            break
    # A surface that explains the border no better than its median (within a gray
    # level of noise) is only fitting noise: the backdrop is flat, as it was before.
    flat = float(np.median(v[keep])) if keep.any() else level
    if _sigma(v[keep] - flat) <= noise + 1.0:
        return np.full((h, w), flat, np.float32), _sigma(v[keep] - flat)
    gx, gy = np.linspace(-1, 1, w, dtype=np.float32), np.linspace(-1, 1, h, dtype=np.float32)
    surface = (coef[0] + coef[1] * gx[None] + coef[2] * gy[:, None] + coef[3] * gx[None] ** 2
               + coef[4] * gx[None] * gy[:, None] + coef[5] * gy[:, None] ** 2)
    return np.clip(surface, 0, 255).astype(np.float32), noise


def _terms(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1).astype(np.float32)


def _sigma(r: np.ndarray) -> float:
    """A robust standard deviation: 1.4826 x the median absolute deviation."""
    return 1.4826 * float(np.median(np.abs(r - np.median(r)))) if r.size else 0.0


def find_item(gray: Image.Image) -> tuple[int, tuple[int, int, int, int] | None]:
    """(the backdrop's median gray level, the item's box (left, upper, right, lower), or
    None if the image is blank) of an 'L' work image (locate, for figures)."""
    item = locate(np.asarray(gray))
    return int(np.median(item.background)), item.box


def _longest_edge(size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) scaled so that the longer side is 28 (the shorter at least 1 pixel)."""
    w, h = size
    if w >= h:
        return SIZE, max(1, round(h * SIZE / w))
    return max(1, round(w * SIZE / h)), SIZE


def pad(pixels: np.ndarray, background: int | None = None) -> np.ndarray:
    """Centre in 28x28; the padding takes the background colour (by default the
    border's median)."""
    h, w = pixels.shape
    if (h, w) == (SIZE, SIZE):
        return np.ascontiguousarray(pixels)
    if background is None:
        background = int(np.median(border(pixels)))
    out = np.full((SIZE, SIZE), background, np.uint8)
    # An odd margin puts the extra pixel first (top, left), as the data set does: in
    # 99.7% of its test images whose column margins are odd, the left one is larger.
    top, left = (SIZE - h + 1) // 2, (SIZE - w + 1) // 2
    out[top:top + h, left:left + w] = pixels
    return out


def decode_many(root: str, items, invert: str = "auto",
                fit: str = "auto") -> tuple[np.ndarray, list]:
    """A chunk of (relative path, error or None) -> (uint8 [k, 28, 28] for the files
    that decoded, in order; the error of every item, None where it decoded). Items that
    arrive with an error (found by the directory walk) are passed through unread."""
    out = np.empty((len(items), SIZE, SIZE), np.uint8)
    errors, n = [], 0
    for rel, error in items:
        if error is None:
            try:
                out[n] = decode(os.path.join(root, rel), invert, fit)
                n += 1
            except ImageError as e:
                error = str(e)
        errors.append(error)
    return out[:n], errors
