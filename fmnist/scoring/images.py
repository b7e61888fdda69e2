"""Image files to model input: any common format and mode to uint8 [28, 28], light on black.

Fashion-MNIST images are 28x28 grayscale, a light object on a black (0) background,
the object filling the frame. They were made from catalogue photos by a documented
conversion (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747, section 2): trim the margins
whose colour is within 5% of the corner pixels' colour, resize the longest edge to 28,
sharpen, extend the shorter edge to 28 centring the item, negate, grayscale. Product
photos are usually dark on white, any size, the item anywhere in the frame, often RGB
with alpha, and their backdrops are rarely flat. `decode` turns one file into what the
model was trained on:

    open (PNG, JPEG, BMP, GIF, WebP, TIFF only) -> refuse huge images -> EXIF rotation
    -> 8-bit grayscale (alpha composited onto the background)
    -> fit "trim" (a photo): find the item against a fitted backdrop (framing.locate:
       gradients and a table's edge subtracted, marks, shadows, a hanger's wire and
       a tag on a string left out, a small turn straightened),
       its contrast light on black, longest edge to 28, stretched to 0..255
    -> fit "whole" (already framed): the whole image, longest edge to 28, negate if
       the border is mostly light
    -> pad to 28x28, centred, with the background colour

`fit="auto"` trims everything except 28x28 images: those are taken as already
converted (Fashion-MNIST's own format), so the data set's own images pass unchanged.
The sharpening step of the original conversion is left out: measured on the photo sets
of tests/photos.py, it did not help (docs/photos.md).

This module imports only Pillow, NumPy and OpenCV (through framing): it runs in decoder
processes and Ray tasks that never need TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps

from fmnist.core import storage
from fmnist.scoring import framing
from fmnist.scoring.framing import SIZE, locate, straightened, undotted

# What we open, by file extension (lower-cased). Other files are ignored and counted.
EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff"}
)
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
# Item contrast below which stretching would only amplify noise (a blank image).
MIN_CONTRAST = 32
# A cut-out's gray levels varying by more than this (a standard deviation) are a photo's.
SHADED = 20.0


class ImageError(Exception):
    """This file is not an image we can score; the message goes in the `error` column."""


def _nonblocking(path, flags):
    # A FIFO that appeared after the directory walk would block open() forever;
    # O_NONBLOCK makes it read as empty instead (and changes nothing for regular files).
    return os.open(path, flags | os.O_NONBLOCK)


def decode(
    path: str | os.PathLike | io.BytesIO, invert: str = "auto", fit: str = "auto"
) -> np.ndarray:
    """One image file (or its bytes, as read from a bucket) -> uint8 [28, 28], light
    object on black. Raises ImageError."""
    try:
        with (
            (
                contextlib.nullcontext(path)
                if isinstance(path, io.BytesIO)
                else open(path, "rb", opener=_nonblocking)
            ) as f,
            Image.open(f, formats=FORMATS) as im,
        ):
            return to_model_input(im, invert, fit, reopen=lambda: _reopen(path))
    except Image.UnidentifiedImageError:
        if isinstance(path, io.BytesIO):
            empty = not path.getbuffer().nbytes
        else:
            empty = os.path.isfile(path) and os.path.getsize(path) == 0
        raise ImageError(
            "empty file" if empty else "not a PNG, JPEG, BMP, GIF, WebP or TIFF image"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"decompression bomb: more than {MAX_PIXELS:,} pixels") from None
    except Exception as e:  # noqa: BLE001 - whatever a broken file raises, it is this file's error
        raise ImageError(describe(e)) from None


def _reopen(path: str | os.PathLike | io.BytesIO) -> Image.Image:
    """The same image file opened again (its colour, decoded only when asked for)."""
    if isinstance(path, io.BytesIO):
        return Image.open(io.BytesIO(path.getbuffer()), formats=FORMATS)
    with open(path, "rb", opener=_nonblocking) as f:
        return Image.open(io.BytesIO(f.read()), formats=FORMATS)


def describe(e: BaseException) -> str:
    """A one-line error message, without Pillow's file-object reprs."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror  # "Permission denied", not "[Errno 13] ... '/full/path'"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def to_model_input(
    im: Image.Image,
    invert: str = "auto",
    fit: str = "auto",
    reopen: Callable[[], Image.Image] | None = None,
) -> np.ndarray:
    """An opened Pillow image (first frame) -> uint8 [28, 28], light object on black.

    Args:
        im: the opened image.
        invert: "auto", "always" or "never".
        fit: "auto", "trim" or "whole".
        reopen: opens the same file again (a colour JPEG's chroma is decoded from it
            only when the trim asks for it), or None.

    Returns:
        uint8 [28, 28].
    """
    if invert not in INVERT_MODES:
        raise ValueError(f"invert must be one of {INVERT_MODES}, got {invert!r}")
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
    trim = fit == "trim" or (fit == "auto" and im.size != (SIZE, SIZE))
    # JPEG only: let libjpeg decode the luminance at 1/2..1/8 scale, still >= the size
    # the next step needs.
    request = (WORK, WORK) if trim else (SIZE, SIZE)
    coloured = trim and reopen is not None and _ycbcr_coded(im)
    im.draft("L", request)
    im.load()
    if "exif" in im.info or im.format in ("JPEG", "TIFF", "WEBP", "MPO"):
        im = ImageOps.exif_transpose(im)  # phone photos are stored sideways
    gray = grayscale(im)
    if trim:
        if coloured:  # a colour JPEG: decoded again as YCbCr only if the trim asks

            def colour() -> Image.Image:
                again = reopen()
                again.draft("YCbCr", request)
                again.load()
                if "exif" in again.info or again.format in ("JPEG", "TIFF", "WEBP", "MPO"):
                    again = ImageOps.exif_transpose(again)
                return again

            return trimmed(gray, invert, colour)
        return trimmed(gray, invert, (lambda: im) if im.mode == "RGB" else None)
    if gray.size != (SIZE, SIZE):
        # Shrinking averages areas (BOX): no ringing around a hard edge, so a black
        # background stays exactly black; the rare enlargement interpolates. Pillow
        # premultiplies alpha (mode LA) itself.
        shrink = max(gray.size) > SIZE
        gray = ImageOps.contain(
            gray, (SIZE, SIZE), method=Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
        )
    if gray.mode == "LA":
        pixels = composite(np.asarray(gray), invert)
    else:
        pixels = np.asarray(gray)
    if invert == "always" or (invert == "auto" and light_border(pixels)):
        pixels = 255 - pixels
    return pad(pixels)


def _ycbcr_coded(im: Image.Image) -> bool:
    """A colour JPEG whose samples are stored as YCbCr (libjpeg's rule: a JFIF marker,
    an Adobe marker's transform other than 0, or component ids other than R, G, B):
    only those decode as YCbCr; an RGB-coded one is decoded as luminance."""
    if im.format != "JPEG" or im.mode != "RGB":
        return False
    if "jfif" in im.info:
        return True
    if "adobe" in im.info:
        return im.info.get("adobe_transform") != 0
    return [c[0] for c in getattr(im, "layer", [])] != [ord("R"), ord("G"), ord("B")]


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


def trimmed(
    gray: Image.Image, invert: str, colour: Callable[[], Image.Image] | None = None
) -> np.ndarray:
    """The data set's conversion of a photo ('L' or 'LA'): the item cut out of its
    backdrop, its longest edge resized to 28, light on black, centred.

    Args:
        gray: the photo's gray levels ('L', or 'LA' with transparency).
        invert: "auto", "always" or "never".
        colour: gives the photo in colour ('RGB' or 'YCbCr', gray's size), called only
            on a patterned border; or None.

    Returns:
        uint8 [28, 28], light object on black.
    """
    if gray.mode == "LA":
        gray = Image.fromarray(composite(np.asarray(gray), invert), mode="L")
    full, factor = gray.size, min(gray.size) // WORK
    if factor >= 2:  # a big non-JPEG photo: area-average it down first (fast, in C)
        gray = gray.reduce(factor)

    def chroma() -> np.ndarray | None:
        """(Cb, Cr) at the work image's size, only when locate asks (a patterned border)."""
        photo = colour() if colour is not None else None
        if photo is None or photo.size != full:
            return None
        work = photo.reduce(factor) if factor >= 2 else photo
        ycc = work if work.mode == "YCbCr" else work.convert("YCbCr")
        return np.asarray(ycc)[..., 1:]

    g = np.asarray(gray)
    clean = undotted(g) if framing.UNDOT else None
    if clean is not None:
        g = clean
    item = locate(g, chroma)
    dark = item.dark if invert == "auto" else invert == "always"
    left, top, right, bottom = item.box if item.box and not item.tilt else (0, 0) + gray.size
    background = item.background
    if np.ndim(background):
        background = background[top:bottom, left:right]
    # The item's contrast against the backdrop model, light on black: a gradient or a
    # vignette behind the item is subtracted, not kept as grey.
    signed = g[top:bottom, left:right].astype(np.float32) - background
    if item.split:
        # Across a wall's and a table's edge the same item stands out less on the side
        # nearer its own shade: contrast in proportion to the backdrop's distance from
        # black (a dark item) or white (a light one).
        level = background if dark else 255 - background
        reach = item.background if dark else 255 - item.background
        signed *= float(reach.max()) / np.maximum(level, 1.0)
    pixels = np.clip(np.rint(-signed if dark else signed), 0, 255).astype(np.uint8)
    if item.box:
        # Marks, stickers, dust and shadow inside the box: not item.
        pixels[item.other[top:bottom, left:right]] = 0
        if item.tilt:
            pixels, (left, top, right, bottom) = straightened(pixels, item)
            pixels = pixels[top:bottom, left:right]
    crop = Image.fromarray(pixels)
    if max(crop.size) != SIZE:
        # BOX, BILINEAR, BICUBIC and LANCZOS gave the same accuracy on the photo sets
        # (within 0.12 points on average); BOX is the cheapest and never rings.
        crop = crop.resize(
            _longest_edge(crop.size),
            Image.Resampling.BOX if max(crop.size) > SIZE else Image.Resampling.BILINEAR,
        )
    pixels = np.asarray(crop)
    # Fashion-MNIST items span the full range (99% of the test images reach 254 or 255
    # on a background of 0); a navy shirt on light grey does not until stretched.
    brightest = int(pixels.max())
    if brightest >= MIN_CONTRAST:
        pixels = np.clip(np.rint(pixels.astype(np.float32) * (255.0 / brightest)), 0, 255).astype(
            np.uint8
        )
    return pad(pixels, 0)


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
    out[top : top + h, left : left + w] = pixels
    return out


def decode_many(
    root: str, items, invert: str = "auto", fit: str = "auto"
) -> tuple[np.ndarray, list]:
    """A chunk of (relative path, error or None) -> (uint8 [k, 28, 28] for the files
    that decoded, in order; the error of every item, None where it decoded). Items that
    arrive with an error (found by the directory walk) are passed through unread."""
    out = np.empty((len(items), SIZE, SIZE), np.uint8)
    errors, n = [], 0
    fetched = _fetch(root, [rel for rel, error in items if error is None])
    for rel, error in items:
        if error is None:
            try:
                if isinstance(fetched.get(rel), Exception):
                    raise ImageError(f"cannot read it: {describe(fetched[rel])}")
                source = io.BytesIO(fetched[rel]) if fetched else os.path.join(root, rel)
                out[n] = decode(source, invert, fit)
                n += 1
            except ImageError as e:
                error = str(e)
        errors.append(error)
    return out[:n], errors


def _fetch(root: str, rels: list[str]) -> dict:
    """The files' bytes when `root` is a bucket's URI (one concurrent request for the
    chunk; a file that cannot be read maps to its error), else nothing: read from disk."""
    if not storage.is_uri(root) or not rels:
        return {}

    base = storage.location(root, "DIRECTORY")
    keys = {(base / rel).path: rel for rel in rels}
    found = base.fs.cat(list(keys), on_error="return")
    return {keys[k]: v for k, v in found.items()}
