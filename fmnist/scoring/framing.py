"""Where the item is in a photo, and what is behind it: the trim of fmnist.scoring.images.

A product photo's backdrop is rarely flat: a studio sweep is lit at the top and darker
at the bottom, a vignette darkens the corners, a drop shadow falls beside the item, and
shops put marks, stickers and text in the corners. `locate` finds the item in a small
grayscale work image of the photo (from which fmnist.scoring.images has first taken a
pegboard's holes, undotted):

    padding: a marketplace's bars of one colour at the edges cut off (unpadded), or
             the photo cut out of a page along straight edges across it, a shop
             app's screenshot (inset)
    -> backdrop: a quadratic surface fitted by robust least squares to the border ring,
              fitted again to all but the item when it leaves a halo (refit); or two
              planes either side of a straight edge, a wall above a table (split);
              or, on a patterned border of one hue (a wooden floor), that hue's
              line through black and the border's range along it, in colour (hued)
    -> content: the 3x3 mean differs from it by more than 5% (or the noise, if higher),
                less straight faint bands from frame to frame, a creased paper's
                folds (creases), and thin lines from the frame, a hanger's wire (unwired)
    -> regions: connected components, weighed by their pixels above Otsu's threshold
    -> the item: the heaviest region and the parts close to it (select), less a body
                 hung from it by a thin line, a tag on a string (detached), and
                 the parts thinner than a model pixel sticking out, a hanger (spurs),
                 and a solid part held apart by such a neck, a stand's base (apart),
                 and the rows under it that repeat it upside down, fainter, a glossy
                 floor's reflection (mirrored)
    -> its box, less a drop shadow (unshadowed); a small turn measured (tilt)

The library is OpenCV's headless build (connected components with stats, Otsu,
morphology, the Hough transform, minAreaRect, affine warps): one dependency, fast
enough for the decoder processes, with no SciPy behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np

# Decoders run one per core already: OpenCV's own threads would only compete with them.
cv2.setNumThreads(1)

# The model's input: SIZE x SIZE pixels.
SIZE = 28

# A pixel is backdrop when its gray level is within 5% of the backdrop model (the data
# set's tolerance, of its corner colour) after a 3x3 mean, which keeps sensor noise and
# JPEG ripples from counting as content; the pixel itself must differ by more than EDGE.
FUZZ = round(0.05 * 255)
EDGE = 2
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
# ...or, where the principal axis disagrees, the turn makes the item mirror-symmetric
# (SYMMETRIC of its pixels mirrored in it), SYMMETRY_GAIN more of them than before
# (docs/photos.md, "Twelfth round").
SYMMETRY, SYMMETRIC, SYMMETRY_GAIN = True, 0.85, 0.04
# A fitted backdrop is fitted again to all of the image that is not the item.
REFIT, REFIT_DEGREE, HALO, STEP = True, 4, 0.01, 3
# ...and what the polynomial misses is followed over this share of the shorter side.
LOCAL = 0.03
# A backdrop of two flat sides of a straight edge (a wall above a table): a step of
# the left and the right border at about the same height, each side flat within
# SPLIT_FLAT of the step; the edge itself is backdrop within SPLIT_BAND pixels.
SPLIT, SPLIT_WINDOW, SPLIT_FLAT, SPLIT_BAND = True, 6, 0.25, 3
# A wire or a string from the frame to the item: content that an opening of
# WIRE_WIDTH removes, touching the frame, at least WIRE_LENGTH of the shorter side
# (WIRE_MIN pixels) long and thrice as long as wide; looked for on work images only
# (a small image's thin parts are the item's own).
UNWIRE, WIRE_WIDTH, WIRE_LENGTH, WIRE_MIN = True, 5, 0.08, 10
# An arm holding the item: a flat band from the frame (unarmed; docs/photos.md,
# "Thirteenth round").
UNARM, ARM_FLAT, ARM_STEP, ARM_SHARE = True, 6, 25.0, 0.6
# A body joined to the item only by lines that an opening of WIRE_WIDTH cuts (a tag on
# a string), lying more than DETACH_GAP pixels from its main body, is a region apart
# from it (detached).
DETACH, DETACH_GAP = True, 5
# A hanger's hook and arms over the item: parts of the item that an opening about
# SPUR_WIDTH model pixels wide removes (a model pixel: its longest side / 28; the odd
# size 2 round(width / 2) + 1, 3 pixels at least) and that reach more than a model pixel
# beyond the rest of it are not item (spurs).
UNSPUR, SPUR_WIDTH = True, 1.0
# A solid part lying wholly beyond the item's main part, more than a model pixel away,
# joined to it by nothing or only by something about a model pixel wide (a display
# stand's base and its pole): no Fashion-MNIST item has such a part, so it is not item
# (apart). Looked for with the spurs' opening two pixels wider, as the 3x3 mean grows
# the mask by a pixel a side.
APART = True
# A glossy floor's reflection under the item: the rows below a line repeat the rows
# above it upside down (a least-squares residual under MIRROR_FIT of their contrast;
# repeating the line's own row instead leaves twice that residual and MIRROR_FIT / 2
# more: a band of one shade is not a mirror), fainter (under MIRROR_FAINT of their
# contrast), over MIRROR_ROWS model pixels or more. No Fashion-MNIST item repeats its
# own lower edge upside down and fainter below it, so those rows are not item
# (mirrored; docs/photos.md, "Ninth round: a glossy floor").
UNMIRROR, MIRROR_FIT, MIRROR_FAINT, MIRROR_ROWS = True, 0.05, 0.65, 1.5
# A crease in a paper backdrop: a straight band of content crossing the photo from frame
# to frame (content on CREASE_SHARE of the line's length at least, a line CREASE_LENGTH
# of the shorter side long at least) that the smooth backdrop cannot follow; its faint
# pixels (below Otsu's threshold, or CREASE_FAINT times the content threshold) within
# CREASE_BAND of the line are not item (docs/photos.md, "Ninth round: a creased backdrop").
UNCREASE, CREASE_LENGTH, CREASE_SHARE, CREASE_BAND, CREASE_FAINT = True, 0.25, 0.8, 2, 3.0
# The Hough transform's CREASE_LINES strongest lines are looked at (a fold gives a few).
CREASE_LINES = 128
# Colour, when the photo has it: shading changes a colour's brightness, not its hue
# (the brightness and chromaticity distortions of Horprasert, Harwood and Davis 1999).
# A border noisier than FUZZ allows, of one clearly coloured hue (saturation at least
# HUE_SATURATION; its scatter off the hue's line under HUE_ONE of its brightness's
# spread), is a patterned backdrop of that hue, a wooden floor: a pixel is content when
# its colour lies off the line by more than HUE_SIGMAS x the border's HUE_RANGE
# percentile scatter (HUE_FLOOR levels at least), or it is brighter than the border's
# 100 - HUE_RANGE percentile or darker than its HUE_DARK percentile (the planks, not
# the seams); the long thin dark lines from the frame (seams) are taken out as wires.
HUE, HUE_RANGE, HUE_ONE, HUE_SATURATION = True, 0.5, 0.25, 0.15
HUE_SIGMAS, HUE_FLOOR, HUE_DARK = 1.5, 4.0, 20.0
# A backdrop of straight bands from frame to frame (a floor's planks), each its own
# level: both ends of a column missed by the smooth surface and agreeing on BAND_AGREE
# of such columns, in BAND_RUNS stretches or more, the ends' profile stepping in
# BAND_RUNS places or more (banded; docs/photos.md, "Ninth round").
BANDS, BAND_RUNS, BAND_AGREE = True, 3, 0.5
# A marketplace's padding: PAD_MARGIN or more whole rows (or columns) at an edge within
# PAD_FLAT gray levels of the edge's own, ending in a step of more than PAD_STEP at both ends of
# the rows, flat beyond it (its far side, PAD_MARGIN and 2 PAD_MARGIN rows on, within a
# quarter of the step); cut off with PAD_MARGIN more rows (the step's JPEG ringing).
UNPAD, PAD_FLAT, PAD_STEP, PAD_MARGIN = True, 2, FUZZ / 2, 4
# A photo set in a page (a shop app's screenshot: a status bar above it, a panel with the
# name, the price and a button below): straight edges across the whole image, a step of
# more than INSET_STEP between whole rows (or columns) each within INSET_FLAT of its own
# level, cut it into bands; the band holding most of the contrast is the photo (inset;
# docs/photos.md, "Eleventh round: a photo in a page").
INSET, INSET_FLAT, INSET_STEP = True, PAD_FLAT, 2 * PAD_FLAT

# A backdrop drilled with a grid of small dark holes (a shop's pegboard): spots that a
# 5x5 closing lifts by DOT_CONTRAST levels or more, of DOT_AREA work pixels at most,
# DOT_COUNT or more of them within DOT_BAND of the frame on three of its sides. They are
# replaced by their 5x5 median everywhere, also inside a light item through which they
# show (undotted; docs/photos.md, "Tenth round: a pegboard").
UNDOT, DOT_CONTRAST, DOT_AREA, DOT_COUNT, DOT_BAND = True, 16, 9, 8, 0.15
_DOT_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


class Item(NamedTuple):
    """Where the item is in a work image, and what is behind it."""

    background: np.ndarray  # float32 [h, w] (or a scalar, flat): the backdrop model
    dark: bool  # the item is darker than its backdrop (a product photo)
    box: tuple[int, int, int, int] | None  # (left, upper, right, lower); None: blank
    other: np.ndarray  # bool [h, w]: content that is not the item (marks, dust)
    chosen: np.ndarray | None = None  # bool [h, w]: the item's pixels
    tilt: float = 0.0  # degrees counter-clockwise that would straighten it
    split: bool = False  # the backdrop is two sides of an edge (a wall and a table)


def locate(g: np.ndarray, chroma: Callable[[], np.ndarray | None] | None = None) -> Item:
    """The item in a uint8 [h, w] work image: a marketplace's padding cut off
    (unpadded), a backdrop model fitted to the photo's border, content where the 3x3
    mean differs from it by more than the noise allows, and the main connected region
    with the parts close to it (select).

    Args:
        g: the work image's gray levels (luminance).
        chroma: when the photo is in colour, a function giving its (Cb, Cr) at the work
            image's size (uint8 [h, w, 2]), called only on a patterned border (hued).

    Returns:
        The Item, in g's coordinates.
    """
    inner = unpadded(g) if UNPAD else None
    if inner is None and INSET:
        inner = inset(g)
    if inner is None:
        return _located(g, chroma)
    top, bottom, left, right = inner

    def cropped() -> np.ndarray | None:
        c = chroma()
        return None if c is None else c[top:bottom, left:right]

    item = _located(g[top:bottom, left:right], cropped if chroma is not None else None)
    return _framed(item, inner, g.shape)


def undotted(g: np.ndarray) -> np.ndarray | None:
    """The work image (uint8 [h, w]) with a dotted backdrop's dots taken out, or None
    when its frame is not dotted (UNDOT)."""
    h, w = g.shape
    if min(h, w) < 32:
        return None
    # Dark spots are what a closing fills (its black-hat); counted in the frame's bands
    # first, as most photos have none there (a cheap way out before the components).
    filled = cv2.morphologyEx(g, cv2.MORPH_CLOSE, _DOT_KERNEL)
    off = (cv2.subtract(filled, g) >= DOT_CONTRAST).view(np.uint8)
    by, bx = max(int(DOT_BAND * h), 1), max(int(DOT_BAND * w), 1)
    bands = (off[:by], off[h - by :], off[:, :bx], off[:, w - bx :])
    if sum(int(np.count_nonzero(band) >= DOT_COUNT) for band in bands) < 3:
        return None
    _, labels, stats, centres = cv2.connectedComponentsWithStats(off, connectivity=8)
    small = stats[1:, cv2.CC_STAT_AREA] <= DOT_AREA
    x, y = centres[1:, 0], centres[1:, 1]
    near = (y < by, y >= h - by, x < bx, x >= w - bx)
    if sum(int(np.count_nonzero(small & side) >= DOT_COUNT) for side in near) < 3:
        return None
    dots = np.concatenate([[False], small])[labels].view(np.uint8)
    dots = cv2.dilate(dots, np.ones((3, 3), np.uint8)).astype(bool)
    out = g.copy()
    out[dots] = cv2.medianBlur(g, 5)[dots]  # the closing would leave a light item lighter
    return out


def _framed(item: Item, inner: tuple[int, int, int, int], shape: tuple[int, int]) -> Item:
    """An Item found in the part (top, bottom, left, right) of an image of this shape,
    in the whole image's coordinates: the backdrop extended over the padding (its edge
    values), the masks False there."""
    top, bottom, left, right = inner
    h, w = shape
    pads = ((top, h - bottom), (left, w - right))
    background = item.background
    if np.ndim(background):
        background = np.pad(background, pads, mode="edge")
    box = item.box
    if box is not None:
        box = (box[0] + left, box[1] + top, box[2] + left, box[3] + top)
    chosen = None if item.chosen is None else np.pad(item.chosen, pads)
    return Item(background, item.dark, box, np.pad(item.other, pads), chosen, item.tilt, item.split)


def _located(g: np.ndarray, chroma: Callable[[], np.ndarray | None] | None) -> Item:
    """locate's item in a photo without padding."""
    smooth = cv2.blur(g.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    background, noise = backdrop(smooth)
    # Straight bands from frame to frame (a floor's planks): each is its own backdrop
    # (docs/photos.md, "Ninth round: a wooden floor, plank by plank").
    bands = banded(smooth, background) if BANDS else None
    if bands is not None:
        background, noise = bands
    # A patterned backdrop (noisier than FUZZ allows) of one hue, a wooden floor: told
    # from the item by colour.
    excess = None
    if bands is None and HUE and chroma is not None and NOISE_SIGMAS * noise > FUZZ:
        excess = hued(smooth, chroma())
    if excess is not None:
        content = excess > FUZZ
        lines = unwired(content)
        if lines is not None:
            content &= ~lines
        far = np.minimum(excess, 255)
        return _found(g, background, content, smooth - background, far, FUZZ, lines, None, True)
    # A wall and a table behind the item: two flat sides of a straight edge.
    table = split(smooth, g) if SPLIT and bands is None else None
    if table is not None:
        background, noise = table
    diff = smooth - background
    far = np.abs(diff)
    # Floor: today's 5% (FUZZ), raised only where the border is noisier than that.
    low = max(float(FUZZ), NOISE_SIGMAS * noise)
    if REFIT and table is None and bands is None:
        refitted = refit(smooth, diff, far, low, flat=not np.ndim(background))
        if refitted is not None:
            background = refitted
            diff = smooth - background
            far = np.abs(diff)
    content = (far > low) & (np.abs(g - background) > EDGE)
    folds = creases(content, far, low) if UNCREASE else None
    if folds is not None:
        content &= ~folds
    wires = unwired(content) if UNWIRE else None
    if wires is not None:
        content &= ~wires
    arm = unarmed(content, g) if UNARM else None
    if arm is not None:
        content &= ~arm
        wires = arm if wires is None else wires | arm
    return _found(
        g, background, content, diff, far, low, wires, table, bands is not None, folds=folds
    )


def _found(
    g: np.ndarray,
    background: np.ndarray,
    content: np.ndarray,
    diff: np.ndarray,
    far: np.ndarray,
    low: float,
    wires: np.ndarray | None,
    table: tuple | None,
    hue: bool = False,
    folds: np.ndarray | None = None,
) -> Item:
    """locate's item from its content mask: the regions, the chosen ones, the box. diff
    is the smoothed image less the backdrop, far each pixel's contrast (|diff|, or
    hued's distance beyond a patterned backdrop); hue: the backdrop is patterned (hued
    or banded); folds, a creased backdrop's bands taken out of the content (creases)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        content.view(np.uint8), connectivity=8
    )
    if count < 2:
        return Item(background, float(np.median(background)) > 127, None, content)
    # Otsu on the difference picks the item's own contrast out of the image: only
    # components with pixels above it can be the item; the weaker pixels around them
    # (the item's faint edge) still count for its extent.
    strong = _strong(far, low)
    if count == 2:  # one region (a clean photo): it is the item
        chosen = content
    else:
        mass = np.bincount(labels[strong], weights=far[strong], minlength=count)[1:]
        if not mass.any():
            mass = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
        chosen = np.concatenate([[False], select(mass, stats[1:, :4])])[labels]
    hung = detached(chosen, far, strong) if DETACH else None
    if hung is not None:
        chosen &= ~hung
    # On a patterned floor (hue) the item's mask comes in pieces joined by the grain:
    # a solid part beyond a neck there is as likely the item's own as a stand's base.
    thin = spurs(chosen, held=not hue) if UNSPUR else None
    if thin is not None:
        chosen &= ~thin
        hung = thin if hung is None else hung | thin
    if UNMIRROR and not hue:
        axis = mirrored(chosen, far)
        if axis is not None:
            floor = np.zeros_like(chosen)
            floor[axis:] = chosen[axis:]
            chosen &= ~floor
            hung = floor if hung is None else hung | floor
    dark = float(diff[chosen].sum()) < 0
    box = unshadowed(chosen, strong & chosen) if UNSHADOW else _box(chosen)
    other = content & ~chosen
    if wires is not None:
        other |= wires
    if hung is not None:
        other |= hung
    if box != _box(chosen):  # a drop shadow: its pixels beside the item go too
        other |= chosen & ~silhouette(strong & chosen)
    if folds is not None:  # a crease beside the item is erased, the item's faint parts on it kept
        other |= folds & ~silhouette(chosen)
    if hue:  # the pattern (grain, a seam) beside the item is backdrop: none of it shows
        other = ~silhouette(chosen)
    return Item(background, dark, box, other, chosen, tilt(strong & chosen, box), table is not None)


def hued(smooth: np.ndarray, chroma: np.ndarray | None) -> np.ndarray | None:
    """How far each pixel of a photo on a patterned backdrop of one hue lies beyond that
    backdrop (float32 [h, w], gray levels; FUZZ and above is content), or None when
    the border is not one (see HUE). smooth is the 3x3 mean of the luminance, chroma
    the photo's (Cb, Cr) (uint8 [h, w, 2]). In (Y, Cb, Cr) about black a colour made
    brighter or darker moves along its line through black: the border's median colour
    fixes the line, the border's scatter off it and its range of brightness what the
    backdrop does; beyond those is the item."""
    h, w = smooth.shape
    if chroma is None or chroma.shape[:2] != (h, w) or min(h, w) < 8 * RING:
        return None
    c = cv2.blur(chroma.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE) - 128.0
    v = np.dstack([smooth, c])
    ring = np.zeros((h, w), bool)
    ring[:RING], ring[-RING:], ring[:, :RING], ring[:, -RING:] = True, True, True, True
    edge = v[ring]
    line = np.median(edge, axis=0)
    norm = float(np.linalg.norm(line))
    if norm < FUZZ or np.hypot(line[1], line[2]) < HUE_SATURATION * line[0]:
        return None  # a black or near-neutral backdrop: a gray item lies on its line
    line = (line / norm).astype(np.float32)
    along = v[..., 0] * line[0] + v[..., 1] * line[1] + v[..., 2] * line[2]  # no BLAS
    off = np.sqrt(((v - along[..., None] * line) ** 2).sum(axis=2))
    darkest, lo, hi = np.percentile(along[ring], [HUE_RANGE, HUE_DARK, 100 - HUE_RANGE])
    scatter = float(np.percentile(off[ring], 100 - HUE_RANGE))
    if scatter > HUE_ONE * float(hi - darkest):
        return None  # the border's colours vary in hue, not only in brightness
    # How far beyond the backdrop each pixel is, in gray levels: FUZZ on the limits.
    bound = max(HUE_FLOOR, HUE_SIGMAS * scatter)
    return np.maximum(np.maximum(off * (FUZZ / bound), lo - along + FUZZ), along - hi + FUZZ)


def banded(smooth: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The backdrop model (float32 [h, w]) and its noise (a robust sigma, gray levels)
    of a smoothed photo whose backdrop is straight bands running from one side of the
    frame to the other (a floor's planks, boards, stripes), or None.

    Along a band the backdrop changes little, across the bands a lot. Seen along the
    columns (or the rows): the two ends of each column at the frame agree within FUZZ on
    at least BAND_AGREE of the columns where the smooth surface fitted to the border
    (background, from backdrop) misses both by more than FUZZ, those columns lie in
    BAND_RUNS separate stretches or more (not one item from edge to edge), and the ends'
    profile steps by more than FUZZ in BAND_RUNS places or more (not a wall above a
    table: one step). Each column is then the line joining its two ends; where they
    disagree (an item cut by the frame) the end nearer the surface. The sides the bands
    run along, which the lines were not fitted to, measure the noise.

    Args:
        smooth: the work image's 3x3 mean, float32 [h, w].
        background: backdrop's model of it (float32 [h, w], or a scalar).

    Returns:
        (model, noise), or None when the border is not bands.
    """
    h, w = smooth.shape
    r = RING
    if min(h, w) < 8 * r:
        return None
    surface = np.broadcast_to(background, smooth.shape)
    best, most = None, 0
    for across in (False, True):
        a, s = (smooth.T, surface.T) if across else (smooth, surface)
        ends = np.stack([a[:r].mean(axis=0), a[-r:].mean(axis=0)])
        fit = (
            np.stack([s[:r].mean(axis=0), s[-r:].mean(axis=0)])
            if np.ndim(background)
            else background
        )
        missed = (np.abs(ends - fit) > FUZZ).all(axis=0)
        if not missed.any():  # the surface explains the border: most photos
            continue
        profile = ends.mean(axis=0)
        steps = np.abs(profile[2:] - profile[:-2]) > FUZZ
        runs = int(np.count_nonzero(np.diff(steps.view(np.int8), prepend=0) == 1))
        agreed = missed & (np.abs(ends[0] - ends[1]) <= FUZZ)
        stretches = int(np.count_nonzero(np.diff(agreed.view(np.int8), prepend=0) == 1))
        agree = int(np.count_nonzero(agreed))
        if (
            min(runs, stretches) >= BAND_RUNS
            and agree >= BAND_AGREE * missed.sum()
            and agree > most
        ):
            best, most = (a, ends, fit, across), agree
    if best is None:
        return None
    a, ends, fit, across = best
    n = a.shape[0]
    # Where the two ends disagree, one is an item cut by the frame: the one farther
    # from the border's smooth surface.
    differ = np.abs(ends[0] - ends[1]) > FUZZ
    fit = np.broadcast_to(fit, ends.shape)
    nearer = np.where(np.abs(ends[0] - fit[0]) <= np.abs(ends[1] - fit[1]), ends[0], ends[1])
    ends[:, differ] = nearer[differ]
    t = ((np.arange(n, dtype=np.float32) - (r - 1) / 2) / (n - r))[:, None]
    model = np.clip(ends[0] + t * (ends[1] - ends[0]), 0, 255).astype(np.float32)
    noise = _sigma(np.concatenate([(a - model)[r:-r, :r].ravel(), (a - model)[r:-r, -r:].ravel()]))
    return (model.T if across else model), noise


def split(smooth: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(the backdrop model, its noise) of a photo (smoothed, and the work image g) taken
    on a table against a wall, or None: the left and the right border each step once, by the same sign and about as
    much, between flat stretches; the top row is like the upper side, the bottom row
    like the lower. Each side is a plane fitted to its border pixels; across the edge
    (SPLIT_BAND pixels either side of the line joining the two steps) a pixel at any
    level between the two sides' is backdrop."""
    h, w = smooth.shape
    r = RING
    if min(h, w) < 8 * SPLIT_WINDOW:
        return None
    # Most photos show no step between the top and the bottom row: a cheap test first.
    if abs(float(smooth[:r].mean()) - float(smooth[-r:].mean())) <= FUZZ / 2:
        return None
    top, bottom = float(np.median(smooth[:r])), float(np.median(smooth[-r:]))
    steps = [_step(smooth[:, :r].mean(axis=1)), _step(smooth[:, -r:].mean(axis=1))]
    if steps[0] is None or steps[1] is None:
        return None
    (e0, up0, down0), (e1, up1, down1) = steps
    jump0, jump1 = down0 - up0, down1 - up1
    if jump0 * jump1 <= 0 or abs(jump0 - jump1) > 0.5 * max(abs(jump0), abs(jump1)):
        return None
    if abs(top - (up0 + up1) / 2) > 0.25 * abs(jump0) or abs(
        bottom - (down0 + down1) / 2
    ) > 0.25 * abs(jump0):
        return None
    line = e0 + (e1 - e0) * np.arange(w, dtype=np.float32) / max(w - 1, 1)
    rows = np.arange(h, dtype=np.float32)[:, None]
    xs, ys = _ring_xy(h, w)
    ring = np.concatenate(
        [
            smooth[:r].ravel(),
            smooth[-r:].ravel(),
            smooth[r:-r, :r].ravel(),
            smooth[r:-r, -r:].ravel(),
        ]
    ).astype(np.float64)
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None]
    gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    sides, residuals = [], []
    for side in (ys < line[xs] - SPLIT_BAND, ys > line[xs] + SPLIT_BAND):
        x, y = xs[side] * (2.0 / max(w - 1, 1)) - 1, ys[side] * (2.0 / max(h - 1, 1)) - 1
        terms = np.stack([np.ones_like(x), x, y], axis=1).astype(np.float64)
        if len(terms) < 12:
            return None
        coef, keep, _ = _robust_fit(
            terms, ring[side], np.ones(len(terms), bool), 12, cv2.DECOMP_SVD
        )
        c = coef.astype(np.float32)
        sides.append(c[0] + c[1] * gx + c[2] * gy)
        residuals.append(ring[side][keep] - terms[keep] @ coef)
    upper, lower = (np.broadcast_to(m, (h, w)) for m in sides)
    model = np.where(rows < line[None], upper, lower)
    band = np.abs(rows - line[None]) <= SPLIT_BAND
    model = np.where(band, np.clip(g, np.minimum(upper, lower), np.maximum(upper, lower)), model)
    return model.astype(np.float32), _sigma(np.concatenate(residuals))


def _step(profile: np.ndarray) -> tuple[int, float, float] | None:
    """(where, the level before, the level after) of the one sharp step of a border
    profile between flat stretches, or None."""
    n, k = len(profile), SPLIT_WINDOW
    sums = np.concatenate([[0.0], np.cumsum(profile, dtype=np.float64)])
    e = np.arange(k + 2, n - k - 1)
    before = (sums[e - 2] - sums[e - 2 - k]) / k
    after = (sums[e + 2 + k] - sums[e + 2]) / k
    i = int(np.argmax(np.abs(after - before)))
    at, jump = int(e[i]), float(after[i] - before[i])
    if abs(jump) <= FUZZ:
        return None
    up, down = profile[: at - 2], profile[at + 2 :]
    level_up, level_down = float(np.median(up)), float(np.median(down))
    flat = SPLIT_FLAT * abs(level_down - level_up)
    if max(_sigma(up - level_up), _sigma(down - level_down)) > flat:
        return None
    return at, level_up, level_down


def unpadded(g: np.ndarray) -> tuple[int, int, int, int] | None:
    """The photo inside a marketplace's padding: (top, bottom, left, right), the rows and
    columns of the work image g (uint8 [h, w]) to keep, or None when it has none. At
    each edge, the whole rows (or columns) within PAD_FLAT of the edge's gray level
    are a bar when they end in a sharp step at both ends of the rows beyond it:
    the photo's own border, more than PAD_STEP from the bar and flat beyond the step
    (a gradient changes slowly; a flat backdrop or one of the bar's colour has no step:
    neither is cut). One side or two, any colour; not a frame on all four sides (the
    ends of its rows lie in the other bars)."""
    h, w = g.shape
    m = PAD_MARGIN
    if min(h, w) < 16 * m:
        return None
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if int(border.max()) - int(border.min()) <= 2 * PAD_FLAT:
        return None  # one level all round (most photos): no step anywhere on it
    cut = [0, 0, 0, 0]
    for axis, image in ((0, g), (1, g.T)):
        for side, rows in ((0, image), (1, image[::-1])):
            low, high = int(rows[0].min()), int(rows[0].max())
            if high - low > 2 * PAD_FLAT:
                continue  # most photos: the edge itself is not one level
            level = (low + high) // 2
            # Where the two ends of the rows leave the bar's level (on a flat backdrop,
            # nowhere: cheap, first); the rows up to there must all be of that level.
            ends = np.abs(rows[:, [0, -1]].astype(np.int16) - level) > PAD_FLAT
            if not ends.any(axis=0).all():
                continue
            last = int(ends.argmax(axis=0).min())
            flat = (np.abs(rows[: last + 1].astype(np.int16) - level) <= PAD_FLAT).all(axis=1)
            run = int(np.argmin(flat))
            if not m <= run <= len(rows) - 8 * m:
                continue  # a line along the edge is not a bar, nor is most of the image
            if (
                run + 3 * m > len(rows)
                or max(abs(int(rows[run + m, 0]) - level), abs(int(rows[run + m, -1]) - level))
                <= PAD_STEP
            ):
                continue  # a flat backdrop: no step at the ends of its rows (cheap, first)
            # The photo's border beyond the bar, at both ends of its rows: RING wide,
            # from PAD_MARGIN rows on (past the ringing) and from twice that.
            near = rows[run + m : run + m + RING]
            far = rows[run + 2 * m : run + 2 * m + RING]
            step = True
            for end in (slice(0, RING), slice(-RING, None)):
                a = float(near[:, end].mean())
                step = step and abs(a - level) > PAD_STEP
                step = step and abs(a - float(far[:, end].mean())) < abs(a - level) / 4
            if step:
                cut[2 * axis + side] = run + m
    if not any(cut):
        return None
    return cut[0], h - cut[1], cut[2], w - cut[3]


def inset(g: np.ndarray) -> tuple[int, int, int, int] | None:
    """The photo set in a page: (top, bottom, left, right), the rows and columns of the
    work image g (uint8 [h, w]) to keep, or None when no straight edge crosses it. An
    edge lies between two whole rows (or columns) each within INSET_FLAT of its own
    mid-level, at most two apart with only such rows between, their levels more than
    INSET_STEP apart: a page's regions meet there, as a photo's backdrop and an item
    never do along a whole row. The band between edges with the most contrast (each
    row's distance from its own median, summed) is kept, a row short of each edge."""
    h, w = g.shape
    if min(h, w) < 16 * PAD_MARGIN:
        return None
    keep = [0, h, 0, w]
    for axis, image in ((0, g), (1, g.T)):
        high = image.max(axis=1).astype(np.int16)
        low = image.min(axis=1).astype(np.int16)
        flat = high - low <= 2 * INSET_FLAT
        if flat.sum() < 2:
            continue  # an item or a patterned backdrop in every row
        level = (high + low) // 2
        # Steps from one flat row to the next, or over a flat row between (a work row
        # mixing both sides) that is itself no step from either.
        step = np.abs(np.diff(level))
        one = flat[:-1] & flat[1:] & (step > INSET_STEP)
        two = np.zeros_like(one)
        two[:-1] = (
            flat[:-2]
            & flat[1:-1]
            & flat[2:]
            & (np.abs(level[2:] - level[:-2]) > INSET_STEP)
            & (step[:-1] <= INSET_STEP)
            & (step[1:] <= INSET_STEP)
        )
        edges = (np.flatnonzero(one | two) + 1).tolist()  # each band's first row
        if not edges:
            continue
        cuts = [0, *edges, len(flat)]
        off = np.abs(image.astype(np.int16) - np.median(image, axis=1).astype(np.int16)[:, None])
        contrast = np.concatenate([[0], np.cumsum(off.sum(axis=1, dtype=np.int64))])
        bands = list(zip(cuts, cuts[1:]))
        start, end = max(bands, key=lambda b: contrast[b[1]] - contrast[b[0]])
        # A row short of each edge: a work row can mix both sides of it.
        start = start + 1 if start else 0
        end = end - 1 if end < len(flat) else end
        if end - start < 8 * PAD_MARGIN:
            continue  # a band this thin is no photo of an item
        keep[2 * axis], keep[2 * axis + 1] = start, end
    if keep == [0, h, 0, w]:
        return None
    return keep[0], keep[1], keep[2], keep[3]


def unwired(content: np.ndarray) -> np.ndarray | None:
    """The wires and strings in a content mask (bool [h, w]), or None: thin lines
    (what an opening of WIRE_WIDTH removes) that touch the frame and run at least
    WIRE_LENGTH of the shorter side, a hanger's wire reaching down to the item."""
    h, w = content.shape
    if min(h, w) < 8 * WIRE_MIN or not (
        content[0].any() or content[-1].any() or content[:, 0].any() or content[:, -1].any()
    ):
        return None
    mask = content.view(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (WIRE_WIDTH, WIRE_WIDTH))
    thin = mask & (1 - cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(thin, connectivity=8)
    x, y, bw, bh, area = (stats[1:, i] for i in range(5))
    edge = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    length = np.maximum(bw, bh)
    long = (length >= max(WIRE_LENGTH * min(h, w), WIRE_MIN)) & (length >= 3 * np.minimum(bw, bh))
    narrow = area <= WIRE_WIDTH * length
    wire = np.concatenate([[False], edge & long & narrow])
    return wire[labels] if wire.any() else None


def unarmed(content: np.ndarray, g: np.ndarray) -> np.ndarray | None:
    """An arm holding the item up, or None: content of one flat tone (within ARM_FLAT
    levels of where it meets the frame: skin, not a print or a weave) filled from the
    frame, at least ARM_STEP levels from the rest of the content, at most ARM_SHARE of
    the content (the item is the rest), and the rest clear of the frame but where the
    fill entered (an item cropped tight, touching the frame itself, is not held). Work
    images only, as for wires: a small image's content is the item's own."""
    h, w = content.shape
    if min(h, w) < 8 * WIRE_MIN:
        return None
    ring = np.zeros_like(content)
    ring[0], ring[-1], ring[:, 0], ring[:, -1] = True, True, True, True
    entry = content & ring
    if not entry.any():
        return None
    gray = np.array(g, np.uint8)  # floodFill wants a writable, contiguous image
    count, labels = cv2.connectedComponents(entry.view(np.uint8), connectivity=8)
    arm = np.zeros_like(content)
    total = int(np.count_nonzero(content))
    # floodFill's mask: 1 blocks (all but content), a pixel wider than the image all
    # round; the fill marks what it takes with 2.
    outside = np.pad((~content).view(np.uint8), 1, constant_values=1)
    flags = 8 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (2 << 8)
    for k in range(1, count):
        ys, xs = np.nonzero(labels == k)
        if len(xs) < 3:
            continue
        seed = (int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
        block = outside.copy()
        cv2.floodFill(gray, block, seed, 0, ARM_FLAT, ARM_FLAT, flags)
        filled = block[1:-1, 1:-1] == 2
        area = int(np.count_nonzero(filled))
        if area < 3 * len(xs) or area > ARM_SHARE * total:
            continue
        rest = content & ~filled & ~arm
        if not rest.any() or (rest & ring & (labels != k)).any():
            continue
        if abs(float(np.median(g[filled])) - float(np.median(g[rest]))) >= ARM_STEP:
            arm |= filled
    return arm if arm.any() else None


def _strong(far: np.ndarray, low: float) -> np.ndarray:
    """The pixels of the item's own contrast (bool [h, w]): above Otsu's threshold on
    the difference image far, and above the content threshold low."""
    otsu, _ = cv2.threshold(far.astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return far > max(low, otsu)


def creases(content: np.ndarray, far: np.ndarray, low: float) -> np.ndarray | None:
    """The folds of a creased paper backdrop in a content mask: straight bands that
    cross the photo from frame to frame, fainter than the item.

    A fold is a line a few pixels wide, too thin for the smooth backdrop model to
    follow, so its shaded side is content; it runs straight across the whole photo,
    under the item too, which no part of an item does. Candidate lines come from the
    Hough transform of the faint content (not the item's own contrast: below Otsu's
    threshold, or CREASE_FAINT times low) away from the item's; a line is a fold when
    content covers CREASE_SHARE of its length across the image, at least CREASE_LENGTH
    of the shorter side. Only work images, as unwired.

    Args:
        content: the content mask (bool [h, w]).
        far: each pixel's contrast against the backdrop model (float32 [h, w]).
        low: the content threshold (gray levels).

    Returns:
        bool [h, w], the faint content within CREASE_BAND pixels of a fold; or None
        when there is none.
    """
    h, w = content.shape
    n = min(h, w)
    if n < 8 * WIRE_MIN or not (
        content[0].any() or content[-1].any() or content[:, 0].any() or content[:, -1].any()
    ):
        return None  # a fold reaches the frame; most photos' content does not
    item = (_strong(far, low) & (far > CREASE_FAINT * low)).view(np.uint8)
    faint = content & ~item.view(bool)
    # Votes only from faint pixels away from the item's (CREASE_BAND + 1 pixels): an
    # item's own faint edge runs along it, straight too where the frame cuts it.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * CREASE_BAND + 3,) * 2)
    votes = faint.view(np.uint8) & (1 - cv2.dilate(item, kernel))
    least = CREASE_LENGTH * n
    # The transform on every other pixel each way (a quarter of the work; a band a few
    # pixels wide keeps its pixels), the strongest candidates (listed by votes) kept.
    lines = cv2.HoughLines(votes[::2, ::2], 1, np.pi / 180, threshold=int(least / 2))
    if lines is None:
        return None
    rho, theta = lines.reshape(-1, lines.shape[-1])[:CREASE_LINES, :2].T
    rho = 2 * rho  # in the work image's pixels
    # Every candidate line sampled across the image at once, a pixel a step, from the
    # point nearest the image's centre.
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    off = rho[:, None] - ((w - 1) / 2 * c + (h - 1) / 2 * s)
    half = int(np.hypot(h, w) / 2) + 1
    t = np.arange(-half, half + 1, dtype=np.float32)
    xs = np.rint((w - 1) / 2 + off * c - t * s).astype(np.int32)
    ys = np.rint((h - 1) / 2 + off * s + t * c).astype(np.int32)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    on = np.zeros(inside.shape, bool)
    on[inside] = content[ys[inside], xs[inside]]
    length = inside.sum(axis=1)
    fold = (length >= least) & (on.sum(axis=1) >= CREASE_SHARE * length)
    if not fold.any():
        return None
    xs, ys, c, s, inside, on = xs[fold], ys[fold], c[fold], s[fold], inside[fold], on[fold]
    # A fold is a band: over a stretch as long as the vote asks, not content on both
    # sides of it a twelfth of the photo away (inside a faint item it would be).
    d = n / 12
    wide = np.ones(inside.shape, bool)
    for sign in (-1, 1):
        x = np.rint(xs + sign * d * c).astype(np.int32)
        y = np.rint(ys + sign * d * s).astype(np.int32)
        within = inside & (x >= 0) & (x < w) & (y >= 0) & (y < h)
        side = np.zeros(inside.shape, bool)
        side[within] = content[y[within], x[within]]
        wide &= side
    fold = (on & ~wide).sum(axis=1) >= least
    # ...and it reaches the frame at both ends (within CREASE_BAND pixels).
    first = np.argmax(inside, axis=1)
    last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    rows = np.arange(len(on))[:, None]
    reach_ends = np.arange(CREASE_BAND + 1)
    fold &= on[rows, np.minimum(first[:, None] + reach_ends, on.shape[1] - 1)].any(axis=1)
    fold &= on[rows, np.maximum(last[:, None] - reach_ends, 0)].any(axis=1)
    if not fold.any():
        return None
    drawn = np.zeros((h, w), np.uint8)
    for k in np.flatnonzero(fold):
        ends = np.flatnonzero(inside[k])[[0, -1]]
        (x0, x1), (y0, y1) = xs[k, ends], ys[k, ends]
        cv2.line(drawn, (int(x0), int(y0)), (int(x1), int(y1)), 1, thickness=2 * CREASE_BAND + 1)
    out = faint & drawn.view(bool)
    return out if out.any() else None


def detached(chosen: np.ndarray, far: np.ndarray, strong: np.ndarray) -> np.ndarray | None:
    """What hangs off the item by a thin line (a tag on its string, a label on a
    thread), bool [h, w], or None: the chosen pixels are opened (WIRE_WIDTH), which
    leaves the item's bodies and cuts the lines between them; a body more than
    DETACH_GAP pixels from the main one that select's pair rule would not keep is not
    item, nor are the thin lines that lead to it. Only on work images, as unwired."""
    h, w = chosen.shape
    if min(h, w) < 8 * WIRE_MIN or not chosen.any():
        return None
    # The chosen pixels' box and the margin the steps below reach: the same result as on
    # the whole image, for less work (this runs on every photo).
    left, top, right, bottom = _box(chosen)
    y0, y1 = max(top - WIRE_WIDTH, 0), min(bottom + WIRE_WIDTH, h)
    x0, x1 = max(left - WIRE_WIDTH, 0), min(right + WIRE_WIDTH, w)
    crop = chosen[y0:y1, x0:x1]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (WIRE_WIDTH, WIRE_WIDTH))
    bodies = cv2.morphologyEx(crop.view(np.uint8), cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bodies, connectivity=8)
    if count < 3:  # one body: nothing hangs off it
        return None
    heavy = strong[y0:y1, x0:x1] & (labels > 0)
    mass = np.bincount(labels[heavy], weights=far[y0:y1, x0:x1][heavy], minlength=count)[1:]
    if not mass.any():
        return None
    share, gap = _near(mass, stats[1:, :4])
    main = int(np.argmax(mass))
    drop = ~((share >= PAIR_SHARE) & (gap <= PAIR_GAP))
    drop[main] = False
    if not drop.any():
        return None
    # How far each body lies from the main one, at its nearest pixel.
    away = cv2.distanceTransform((labels != main + 1).view(np.uint8), cv2.DIST_L2, 3)
    for i in np.flatnonzero(drop):
        drop[i] = float(away[labels == i + 1].min()) > DETACH_GAP
    if not drop.any():
        return None
    hanging = np.concatenate([[False], drop])[labels].view(np.uint8)
    # The lines that are not part of a body: those that touch a dropped body go with it.
    lines = crop.view(np.uint8) & (1 - cv2.dilate(bodies, kernel))
    n, parts = cv2.connectedComponents(lines, connectivity=8)
    grown = cv2.dilate(hanging, kernel)
    touch = cv2.dilate(grown, np.ones((3, 3), np.uint8)).astype(bool)  # the lines begin there
    grown = grown.astype(bool)
    leads = np.zeros(n, bool)
    leads[np.unique(parts[touch & (parts > 0)])] = True
    leads[0] = False
    hung = (grown & crop) | leads[parts]
    if not hung.any() or not (crop & ~hung).any():
        return None
    out = np.zeros_like(chosen)
    out[y0:y1, x0:x1] = hung
    return out


def spurs(chosen: np.ndarray, held: bool = True) -> np.ndarray | None:
    """What sticks out of the item thinner than the model can draw it (a hanger's hook
    and wire arms above a shirt), and what such a part holds apart (a display stand's
    pole and base). The chosen pixels are opened (about SPUR_WIDTH model pixels, see
    SPUR_WIDTH); the thin parts the opening takes away that reach more than a model
    pixel beyond the opened item's box go. A solid part lying apart from the main one,
    joined to it by a neck about a model pixel wide (see APART), goes with its neck.
    Only on work images, as unwired.

    Args:
        chosen: the item's pixels (bool [h, w]).
        held: look for solid parts held apart (APART) too.

    Returns:
        bool [h, w], the pixels that are not item; or None when there are none.
    """
    h, w = chosen.shape
    if min(h, w) < 8 * WIRE_MIN or not chosen.any():
        return None
    left, top, right, bottom = _box(chosen)
    crop = chosen[top:bottom, left:right].view(np.uint8)
    pixel = max(right - left, bottom - top) / SIZE
    k = max(3, 2 * round(SPUR_WIDTH * pixel / 2) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    body = cv2.morphologyEx(crop, cv2.MORPH_OPEN, kernel)
    if not body.any():
        return None
    # A solid part apart from the main one, held to it by a neck (a stand's base and
    # pole): it goes, with all that joins it to the rest beyond the rest's box.
    cut = None
    if APART and held:
        neck = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k + 2, k + 2))
        solid = cv2.morphologyEx(crop, cv2.MORPH_OPEN, neck)
        parts = apart(crop, solid, pixel) if solid.any() else None
        if parts is not None:
            cut = _held_off(crop, solid, parts, neck)
            crop = crop & (1 - cut)
            body &= 1 - cut
            if not body.any():
                return None
    spur = np.zeros_like(chosen)
    if cut is not None:
        spur[top:bottom, left:right] = cut.view(bool)
    x0, y0, x1, y1 = _box(body.view(bool))
    ch, cw = crop.shape
    if max(x0, y0, cw - x1, ch - y1) <= pixel:  # most items: nothing sticks out
        return spur if cut is not None else None
    thin = crop & (1 - cv2.dilate(body, kernel))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(thin, connectivity=8)
    x, y, bw, bh = (stats[1:, i] for i in range(4))
    out = (x0 - x > pixel) | (y0 - y > pixel) | (x + bw - x1 > pixel) | (y + bh - y1 > pixel)
    if not out.any():
        return spur if cut is not None else None
    spur[top:bottom, left:right] |= np.concatenate([[False], out])[labels]
    return spur


def _held_off(
    crop: np.ndarray, solid: np.ndarray, held: np.ndarray, kernel: np.ndarray
) -> np.ndarray:
    """The parts `held` apart (uint8) and the item's pixels (crop, uint8) joined to
    them outside the box of the other solid parts or through what the opening (kernel)
    took away: a stand's base and its pole, up to the item, between its legs or
    sleeves too (the sliver of the item's edge that the wider opening took off may go
    with it where the pole meets it)."""
    rest = solid & (1 - held)
    a0, b0, a1, b1 = _box(rest.view(bool))
    outside = crop.copy()
    outside[b0:b1, a0:a1] = 0
    # Inside the box too, the neck (what the opening took away) up to the rest.
    neck = crop & (1 - cv2.dilate(rest, kernel))
    count, parts = cv2.connectedComponents(outside | neck | held, connectivity=8)
    joined = np.zeros(count, bool)
    joined[np.unique(parts[held > 0])] = True
    joined[0] = False
    return joined[parts].view(np.uint8)


def apart(item: np.ndarray, solid: np.ndarray, pixel: float) -> np.ndarray | None:
    """The solid parts of an item held apart from its main part by a neck (a display
    stand's base below it, its pole cut by the opening).

    Args:
        item: the item's pixels (uint8 [h, w]).
        solid: the item's pixels opened (uint8 [h, w]: spurs' opening, two pixels
            wider), so that what joins its parts by a neck about a model pixel wide is cut.
        pixel: a model pixel, in work pixels.

    Returns:
        uint8 [h, w], 1 on the parts (connected components of `solid`) joined to the
        largest one in `item` (a region apart is select's to judge: a faint item comes
        in pieces) that lie wholly
        beyond the largest one's box by more than a model pixel (a gap the model
        sees; detached's DETACH_GAP is in work pixels), that are not specks
        (PART_SHARE of its area at least: a thick spot on a strap) and that select's
        pair rule would not keep (a second shoe); or None when there are none.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    if count < 3:  # one solid part (most items)
        return None
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    boxes = stats[1:, :4]
    share, gap = _near(area, boxes)  # gap: in the largest part's size
    main = int(np.argmax(area))
    beyond = gap > pixel / boxes[main, 2:].max()
    drop = beyond & (share >= PART_SHARE) & ~((share >= PAIR_SHARE) & (gap <= PAIR_GAP))
    drop[main] = False
    if not drop.any():
        return None
    _, regions = cv2.connectedComponents(item, connectivity=8)
    region = np.zeros(count, np.int32)
    region[labels] = regions  # a solid part lies in one region of the item
    drop &= region[1:] == region[main + 1]
    if not drop.any():
        return None
    return np.concatenate([[False], drop])[labels].view(np.uint8)


def mirrored(chosen: np.ndarray, far: np.ndarray) -> int | None:
    """Where a reflection on a glossy floor begins under the item: the row below which
    the chosen pixels' rows repeat those above it upside down, fainter (see
    MIRROR_FIT).

    Args:
        chosen: the item's pixels (bool [h, w]).
        far: each pixel's contrast against the backdrop (float [h, w]).

    Returns:
        The first row of the reflection, in chosen's coordinates; or None.
    """
    if not chosen.any():
        return None
    left, top, right, bottom = _box(chosen)
    height = bottom - top
    least = max(2, int(np.ceil(MIRROR_ROWS * max(right - left, height) / SIZE)))
    if height < 4 * least:
        return None
    rows = far[top:bottom, left:right].astype(np.float64)
    energy = np.einsum("ij,ij->i", rows, rows)
    # Each candidate line a: rows a.. below it mirror rows a-1, a-2, ... above it. Only
    # the lines with fainter rows below than their mirror images above are fitted.
    total = np.concatenate([[0.0], np.cumsum(energy)])
    axes = np.arange(height // 2, height - least + 1)
    faint = total[height] - total[axes] < MIRROR_FAINT**2 * (total[axes] - total[2 * axes - height])
    axes = axes[faint]
    if not axes.size:
        return None
    best, least_fit = None, MIRROR_FIT
    for a in axes.tolist():
        below, depth = rows[a:], height - a
        mirror = np.einsum("ij,ij->i", below, rows[a - 1 :: -1][:depth]) ** 2
        line = (below @ rows[a - 1]) ** 2
        own = max(float(energy[a:].sum()), 1e-9)
        # Each row below scaled to its mirror image, or to the line's own row (least
        # squares): what remains, as a share of the rows' contrast.
        fit = (own - float((mirror / np.maximum(energy[a - 1 :: -1][:depth], 1e-9)).sum())) / own
        ahead = (own - float(line.sum()) / max(float(energy[a - 1]), 1e-9)) / own
        if fit < least_fit and ahead >= 2 * fit + MIRROR_FIT / 2:
            best, least_fit = a, fit
    if best is None:
        return None
    return top + best


def refit(
    smooth: np.ndarray, diff: np.ndarray, far: np.ndarray, low: float, flat: bool
) -> np.ndarray | None:
    """The backdrop surface fitted again, to every pixel of the image that is not the
    item, or None to keep the border's model: a border fit cannot see a vignette's
    bright middle, which then stands out as a halo. The item (the strong pixels'
    polarity, grown by a few pixels) is left out; the rest, halo included, is fitted by
    a polynomial of degree REFIT_DEGREE in robust rounds (on a STEP grid), and what the
    polynomial misses is followed locally. A flat border model is kept unless content
    of the other polarity (a halo) covers more than HALO of the image."""
    halo = HALO * diff.size
    if flat and min(np.count_nonzero(diff > low), np.count_nonzero(diff < -low)) <= halo:
        return None  # content of one polarity only: the border's flat model holds
    strong = _strong(far, low)
    if not strong.any():
        return None
    sign = -1.0 if float(diff[strong].sum()) < 0 else 1.0
    if flat and np.count_nonzero(sign * diff < -low) <= halo:
        return None
    item = (sign * diff > low / 2).view(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    keep = cv2.dilate(item, kernel)[::STEP, ::STEP] == 0
    h, w = smooth.shape
    gx = np.linspace(-1, 1, w, dtype=np.float32)
    gy = np.linspace(-1, 1, h, dtype=np.float32)
    v = smooth[::STEP, ::STEP]
    xs, ys = np.meshgrid(gx[::STEP], gy[::STEP])
    terms = _poly(xs[keep], ys[keep], REFIT_DEGREE)
    values = v[keep]
    if len(values) < 4 * terms.shape[1]:
        return None
    coef, _, _ = _robust_fit(
        terms, values, np.ones(len(values), bool), 4 * terms.shape[1], cv2.DECOMP_NORMAL
    )
    surface = _evaluate(gx[None], gy[:, None], coef)
    # What the polynomial misses, smoothed over the backdrop around it (a normalized
    # convolution: the item's pixels carry no weight), fading out inside the item.
    residual = smooth - surface
    weight = (cv2.dilate(item, kernel) == 0).astype(np.float32)
    sigma = LOCAL * min(h, w)
    num = cv2.GaussianBlur(residual * weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    surface += num / np.maximum(den, 0.2)
    return np.clip(surface, 0, 255).astype(np.float32)


def _powers(degree: int) -> list[tuple[int, int]]:
    return [(i, n - i) for n in range(degree + 1) for i in range(n + 1)]


def _poly(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """The monomials x^i y^j, i + j <= degree, as columns."""
    return np.stack([x**i * y**j for i, j in _powers(degree)], axis=1)


def _evaluate(x: np.ndarray, y: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """The polynomial with _poly's coefficients at (x, y), broadcast (elementwise: no
    BLAS threads in a decoder process)."""
    degree = round((np.sqrt(8 * len(coef) + 1) - 3) / 2)
    return sum(float(c) * x**i * y**j for c, (i, j) in zip(coef, _powers(degree)))


def tilt(strong: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The turn (degrees, counter-clockwise) that would straighten an item set at a
    small angle, or 0: the minimum-area rectangle around its strong pixels, trusted only
    between MIN_TILT and MAX_TILT degrees and when it is much tighter than the upright
    box (an irregular shape, a sandal, has a slanted minimum box of about the same area),
    and then only when the principal axis turns with it or the turn makes the item more
    nearly mirror-symmetric (`symmetry`)."""
    if not STRAIGHTEN:
        return 0.0
    mask = strong.view(np.uint8)
    m = cv2.moments(mask, binaryImage=True)
    if m["m00"] < 20:
        return 0.0
    # On an upright irregular shape the principal axis (second moments) and the
    # rectangle disagree; on a turned one they turn together.
    axis = np.degrees(0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"]))
    axis = (axis + 45) % 90 - 45
    # The minimum-area rectangle of the points is that of their outer contours.
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    (_, _), (w, h), angle = cv2.minAreaRect(np.concatenate(contours))
    angle = (angle + 45) % 90 - 45  # OpenCV gives [-90, 0): the nearest upright turn
    cols, rows = np.flatnonzero(strong.any(axis=0)), np.flatnonzero(strong.any(axis=1))
    upright = (cols[-1] - cols[0] + 1) * (rows[-1] - rows[0] + 1)
    if not MIN_TILT <= abs(angle) <= MAX_TILT or w * h > TIGHTER * upright:
        return 0.0
    if abs(axis - angle) <= AGREE:
        return float(angle)
    # A shirt or a bag turned a few degrees: its symmetry axis turns with it, and the
    # principal axis of a shape with sleeves or a handle need not.
    if SYMMETRY:
        before, after = symmetry(strong, float(angle))
        if after >= SYMMETRIC and after - before >= SYMMETRY_GAIN:
            return float(angle)
    return 0.0


def symmetry(strong: np.ndarray, angle: float) -> tuple[float, float]:
    """The share of the item's pixels that have a mirror image in it (about the
    vertical through its centroid), as it is and once turned by `angle` degrees."""
    h, w = strong.shape
    pad = max(h, w) // 4
    grown = cv2.copyMakeBorder(strong.view(np.uint8), pad, pad, pad, pad, cv2.BORDER_CONSTANT)
    m = cv2.moments(grown, binaryImage=True)
    centre = (m["m10"] / m["m00"], m["m01"] / m["m00"])
    turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
    turned = cv2.warpAffine(grown, turn, grown.shape[::-1], flags=cv2.INTER_NEAREST)
    return _symmetric(grown), _symmetric(turned)


def _symmetric(mask: np.ndarray) -> float:
    """The share of a mask's pixels whose mirror image about the vertical through its
    centroid is in the mask too."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return 0.0
    mirror = np.rint(2 * xs.mean() - xs).astype(np.intp)
    inside = (mirror >= 0) & (mirror < mask.shape[1])
    return float(np.count_nonzero(mask[ys[inside], mirror[inside]])) / len(xs)


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
    share, gap = _near(mass, boxes)
    keep = ((share >= PART_SHARE) & (gap <= PART_GAP)) | ((share >= PAIR_SHARE) & (gap <= PAIR_GAP))
    keep[main] = True
    return keep


def _near(mass: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each region's mass as a share of the heaviest's, the gap between their boxes
    (x, y, w, h) as a share of the heaviest's size; 0 where the boxes overlap)."""
    main = int(np.argmax(mass))
    x, y, w, h = boxes[main]
    gap_x = np.maximum(np.maximum(x - (boxes[:, 0] + boxes[:, 2]), boxes[:, 0] - (x + w)), 0)
    gap_y = np.maximum(np.maximum(y - (boxes[:, 1] + boxes[:, 3]), boxes[:, 1] - (y + h)), 0)
    return mass / mass[main], np.maximum(gap_x, gap_y) / max(w, h)


def backdrop(smooth: np.ndarray) -> tuple[np.ndarray, float]:
    """(the backdrop model: float32 [h, w], or a float32 scalar when the backdrop is
    flat; the border's noise: a robust sigma in gray levels) of a smoothed image. A
    quadratic surface is fitted by least squares to the outermost RING pixels, the ones
    far from it (an item cut by the frame, a mark in a corner) left out in turn, so
    gradients, vignettes and uneven light are followed; a flat backdrop comes out flat."""
    h, w = smooth.shape
    if min(h, w) < 4 * RING:
        v = smooth.ravel()
        level = float(np.median(v))
        return np.float32(level), _sigma(v - level)
    r = RING
    v = np.concatenate(
        [
            smooth[:r].ravel(),
            smooth[-r:].ravel(),
            smooth[r:-r, :r].ravel(),
            smooth[r:-r, -r:].ravel(),
        ]
    )
    level = float(np.median(v))
    spread = _sigma(v - level)
    if spread <= 1.0:  # within a gray level of its median: flat, no surface can do better
        return np.float32(level), spread
    keep = np.abs(v - level) <= max(float(FUZZ), 2.5 * spread)
    if keep.sum() < 12:
        return np.float32(level), _sigma(v[keep] - level)
    xs, ys = _ring_xy(h, w)
    terms = _terms(xs * (2.0 / max(w - 1, 1)) - 1, ys * (2.0 / max(h - 1, 1)) - 1)
    v = v.astype(np.float64)  # the solver wants one type
    coef, keep, noise = _robust_fit(terms, v, keep, 12, cv2.DECOMP_SVD)
    # A surface that explains the border no better than its median (within a gray
    # level of noise) is only fitting noise: the backdrop is flat, as it was before.
    flat = float(np.median(v[keep])) if keep.any() else level
    if _sigma(v[keep] - flat) <= noise + 1.0:
        return np.float32(flat), _sigma(v[keep] - flat)
    gx, gy = (
        np.linspace(-1, 1, w, dtype=np.float32)[None],
        np.linspace(-1, 1, h, dtype=np.float32)[:, None],
    )
    c = coef.astype(np.float32)
    surface = (c[0] + gx * (c[1] + c[3] * gx)) + gy * (c[2] + c[4] * gx + c[5] * gy)
    return np.clip(surface, 0, 255), noise


def _robust_fit(
    terms: np.ndarray, values: np.ndarray, keep: np.ndarray, least: int, flags: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Least squares of values on terms in three rounds, each leaving out the values far
    from the last fit (2.5 sigma of its residual, EDGE + 1 at least), stopping early when
    fewer than `least` remain. OpenCV's solver runs on this thread (NumPy's BLAS would
    start threads of its own in every decoder). Returns (coefficients, kept, noise)."""
    for _ in range(3):
        _, coef = cv2.solve(terms[keep], values[keep, None], flags=flags)
        coef = coef.ravel()
        residual = values - terms @ coef
        noise = _sigma(residual[keep])
        keep = np.abs(residual) <= max(2.5 * noise, float(EDGE + 1))
        if keep.sum() < least:
            break
    return coef, keep, noise


def _ring_xy(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the outermost RING rows and columns, in backdrop's order."""
    r, inner = RING, np.arange(RING, h - RING)
    xs = np.concatenate(
        [
            np.tile(np.arange(w), 2 * r),
            np.tile(np.arange(r), h - 2 * r),
            np.tile(np.arange(w - r, w), h - 2 * r),
        ]
    )
    ys = np.concatenate(
        [
            np.repeat(np.arange(r), w),
            np.repeat(np.arange(h - r, h), w),
            np.repeat(inner, r),
            np.repeat(inner, r),
        ]
    )
    return xs, ys


def _terms(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def _sigma(r: np.ndarray) -> float:
    """A robust standard deviation: 1.4826 x the median absolute deviation."""
    return 1.4826 * float(np.median(np.abs(r - np.median(r)))) if r.size else 0.0


def straightened(pixels: np.ndarray, item: Item) -> tuple[np.ndarray, tuple]:
    """(the contrast image turned by item.tilt about the item's centre, on a canvas
    grown so no corner is lost; the item's box in it)."""
    h, w = pixels.shape
    pad = max(h, w) // 4
    left, top, right, bottom = item.box
    turn = cv2.getRotationMatrix2D(
        ((left + right) / 2 + pad, (top + bottom) / 2 + pad), item.tilt, 1.0
    )
    size = (w + 2 * pad, h + 2 * pad)
    grown = cv2.copyMakeBorder(pixels, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    mask = cv2.copyMakeBorder(
        item.chosen.view(np.uint8), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0
    )
    turned = cv2.warpAffine(grown, turn, size, flags=cv2.INTER_LINEAR)
    region = cv2.warpAffine(mask, turn, size, flags=cv2.INTER_NEAREST).astype(bool)
    return turned, _box(region)
