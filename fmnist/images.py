"""Image files to model input: any common format and mode to uint8 [28, 28], light on black.

Fashion-MNIST images are 28x28 grayscale, a light object on a black (0) background,
the object filling the frame. Product photos are usually dark on white, any size, often
RGB with alpha. `decode` turns one file into what the model was trained on:

    open (PNG, JPEG, BMP, GIF, WebP, TIFF only) -> refuse huge images -> EXIF rotation
    -> 8-bit grayscale (alpha composited) -> shrink to fit 28x28 keeping the aspect
    -> invert if dark-on-light -> pad to 28x28 with the background colour

This module imports only Pillow and NumPy: it runs in decoder processes and Ray tasks
that never need TensorFlow.
"""

from __future__ import annotations

import os
import warnings

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


class ImageError(Exception):
    """This file is not an image we can score; the message goes in the `error` column."""


def _nonblocking(path, flags):
    # A FIFO that appeared after the directory walk would block open() forever;
    # O_NONBLOCK makes it read as empty instead (and changes nothing for regular files).
    return os.open(path, flags | os.O_NONBLOCK)


def decode(path: str | os.PathLike, invert: str = "auto") -> np.ndarray:
    """One image file -> uint8 [28, 28], light object on black. Raises ImageError."""
    try:
        with open(path, "rb", opener=_nonblocking) as f:
            with Image.open(f, formats=FORMATS) as im:
                return to_model_input(im, invert)
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


def to_model_input(im: Image.Image, invert: str = "auto") -> np.ndarray:
    """An opened Pillow image (first frame) -> uint8 [28, 28], light object on black."""
    if invert not in INVERT_MODES:
        raise ValueError(f"invert must be one of {INVERT_MODES}, got {invert!r}")
    # JPEG only: let libjpeg decode the luminance at 1/2..1/8 scale, still >= 28 px.
    im.draft("L", (SIZE, SIZE))
    im.load()
    if "exif" in im.info or im.format in ("JPEG", "TIFF", "WEBP", "MPO"):
        im = ImageOps.exif_transpose(im)  # phone photos are stored sideways
    gray = grayscale(im)
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
    light content on black, and then the border rule inverts the first kind."""
    gray, alpha = la[..., 0].astype(np.float32), la[..., 1].astype(np.float32) / 255.0
    if invert == "never":
        background = 0.0
    elif invert == "always":
        background = 255.0
    else:
        weight = alpha.sum()
        content = (gray * alpha).sum() / weight if weight > 0 else 255.0
        background = 255.0 if content < 128 else 0.0
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


def pad(pixels: np.ndarray) -> np.ndarray:
    """Centre in 28x28; the padding takes the background colour (the border's median)."""
    h, w = pixels.shape
    if (h, w) == (SIZE, SIZE):
        return np.ascontiguousarray(pixels)
    out = np.full((SIZE, SIZE), int(np.median(border(pixels))), np.uint8)
    top, left = (SIZE - h) // 2, (SIZE - w) // 2
    out[top:top + h, left:left + w] = pixels
    return out


def decode_many(root: str, items, invert: str = "auto") -> tuple[np.ndarray, list]:
    """A chunk of (relative path, error or None) -> (uint8 [k, 28, 28] for the files
    that decoded, in order; the error of every item, None where it decoded). Items that
    arrive with an error (found by the directory walk) are passed through unread."""
    out = np.empty((len(items), SIZE, SIZE), np.uint8)
    errors, n = [], 0
    for rel, error in items:
        if error is None:
            try:
                out[n] = decode(os.path.join(root, rel), invert)
                n += 1
            except ImageError as e:
                error = str(e)
        errors.append(error)
    return out[:n], errors
