"""The photo conversion's parts on small synthetic arrays (fmnist.scoring.framing): the
backdrop fit, the choice of the item's regions, the drop shadow, straightening, and the
polarity of low-light photos and shaded cut-outs. No model, no data set: the unit tier.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from fmnist.scoring import framing, images


def _u8(a) -> np.ndarray:
    """Gray (or colour) levels rounded and clipped to a uint8 image."""
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _surface(h: int, w: int) -> np.ndarray:
    """A studio backdrop: lit at the top-left, darker (by up to 60 levels) to the bottom."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return 250 - 40 * (y / h) ** 2 - 20 * (x / w)


def test_the_backdrop_fit_follows_a_gradient_and_ignores_an_item_on_the_border():
    h, w = 120, 160
    truth = _surface(h, w)
    g = truth.copy()
    g[60:120, 20:70] = 40  # a dark item cut by the bottom edge
    g[:6, 140:] = 90  # and a mark in a corner
    model, noise = framing.backdrop(g)
    assert np.abs(model - truth).max() < 1.0, np.abs(model - truth).max()
    assert noise < 0.5


def test_the_backdrop_fit_of_a_flat_noisy_backdrop_is_flat():
    rng = np.random.default_rng(0)
    g = _u8(235 + rng.normal(0, 4, (100, 140)))
    smooth = cv2.blur(g.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    model, noise = framing.backdrop(smooth)
    assert np.ptp(model) < 1.0 and abs(float(model.mean()) - 235) < 0.5
    assert 0.8 < noise < 2.5  # sigma 4 after a 3x3 mean: 4/3


def _photo(h=150, w=200, backdrop=None) -> np.ndarray:
    g = _surface(h, w) if backdrop is None else np.full((h, w), backdrop, np.float32)
    g[30:110, 60:110] = 50  # the item: 50 wide, 80 tall
    g[30:110, 80] = 140  # with an inside
    return g


def test_locate_finds_the_item_on_a_gradient_not_the_mark_in_the_corner():
    g = _photo()
    g[135:145, 170:195] = 120  # "(c) shop", bottom right
    g[8:10, 10:12] = 100  # dust
    item = framing.locate(_u8(g))
    assert item.dark and item.tilt == 0.0
    assert item.box == (60, 30, 110, 110), item.box
    assert item.other[140, 180] and item.other[9, 11] and not item.other[50, 70]


@pytest.mark.parametrize("corner", [200, 220])
@pytest.mark.parametrize("width", [0.8, 1.2])
def test_a_vignettes_bright_middle_is_backdrop_not_a_halo_around_the_item(corner, width):
    """White in the middle, falling off to the corners (flat there when the fall-off is
    narrow, so the border alone looks flat): the middle is fitted with the rest of the
    backdrop, so only the item is content and its box is its own (within a pixel: the
    narrow fall-off is steepest at the item's edge)."""
    h, w = 150, 200
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(x / (w - 1) - 0.5, y / (h - 1) - 0.5) / np.sqrt(0.5)
    fall = np.cos(np.clip(r / width, 0, 1) * np.pi / 2) ** 4
    g = corner + (255 - corner) * fall
    g[30:110, 60:110] = 50
    item = framing.locate(_u8(g))
    assert item.dark and np.abs(np.subtract(item.box, (60, 30, 110, 110))).max() <= 1, item.box
    assert not item.other.any()
    framing.REFIT = False
    try:  # the border's model alone leaves the middle as content (a halo)
        assert framing.locate(_u8(g)).other.any()
    finally:
        framing.REFIT = True


@pytest.mark.parametrize("table", [190.0, 250.0])
@pytest.mark.parametrize("slant", [0, 6])
def test_a_wall_above_a_table_is_backdrop_on_both_sides_of_the_edge(table, slant):
    h, w = 150, 200
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = np.where(y < 90 + slant * x / w, 222.0, table)  # the table's edge, a little slanted
    g[40:120, 60:110] = 50  # the item standing across it
    item = framing.locate(_u8(g))
    assert item.split and item.box == (60, 40, 110, 120), item.box
    framing.SPLIT = False
    try:  # the smooth backdrop fit takes the edge for item
        assert framing.locate(_u8(g)).box != item.box
    finally:
        framing.SPLIT = True


def test_a_flat_or_graded_backdrop_is_not_split():
    assert not framing.locate(_u8(_photo())).split
    assert not framing.locate(_u8(_photo(backdrop=240))).split


def test_a_wire_from_the_frame_to_the_item_is_not_item():
    g = _photo(backdrop=245)
    g[:30, 84:86] = 60  # a hanger's wire from the top edge down to the item
    item = framing.locate(_u8(g))
    # The wire's last pixel, where it meets the item, may stay with it.
    assert item.box[0] == 60 and item.box[2:] == (110, 110) and item.box[1] >= 29, item.box
    assert item.other[10, 85]
    framing.UNWIRE = False
    try:  # a wire thinner than a model pixel sticking out of the item: a spur too
        assert framing.locate(_u8(g)).box[1] >= 27
        framing.UNSPUR = False
        assert framing.locate(_u8(g)).box[1] == 0
    finally:
        framing.UNWIRE = framing.UNSPUR = True


def _padded(bar: int, sides: str, h: int = 100, w: int = 200) -> tuple[np.ndarray, tuple, tuple]:
    """A photo (its own backdrop graded from 225 at the top to 240, the item 50 x 80
    dark) padded by bars of one level on `sides` ("tb": top and bottom to a square,
    "lr": left and right, "t" or "r": one side), through a JPEG (the step rings): (the
    uint8 image, the item's box in it, the photo's (top, bottom, left, right) in it)."""
    photo = np.broadcast_to(np.linspace(225, 240, h, dtype=np.float32)[:, None], (h, w)).copy()
    photo[10:90, 70:120] = 50
    side = max(h, w) + 10
    pads = {
        "tb": ((side - h) // 2, side - h - (side - h) // 2, 0, 0),
        "lr": (0, 0, 37, 45),
        "t": (43, 0, 0, 0),
        "r": (0, 0, 0, 51),
    }[sides]
    top, bottom, left, right = pads
    g = np.pad(photo, ((top, bottom), (left, right)), constant_values=bar)
    buf = io.BytesIO()
    Image.fromarray(_u8(g)).save(buf, "JPEG", quality=85)
    inner = (top, top + h, left, left + w)
    return (
        np.asarray(Image.open(buf).convert("L")),
        (70 + left, 10 + top, 120 + left, 90 + top),
        inner,
    )


@pytest.mark.parametrize(
    "bar, sides", [(255, "tb"), (0, "tb"), (128, "lr"), (90, "t"), (200, "r"), (255, "lr")]
)
def test_padding_bars_are_cut_off_and_the_item_found_inside(bar, sides):
    g, box, inner = _padded(bar, sides)
    kept = framing.unpadded(g)
    # The bars go, with their ringing and a few rows of the photo (PAD_MARGIN, +1: the
    # JPEG's ringing may end the bar a row early); a side without a bar stays.
    for cut, edge, whole in zip(kept, inner, (0, g.shape[0], 0, g.shape[1])):
        if edge == whole:
            assert cut == whole, (kept, inner)
        else:
            assert 0 <= abs(cut - whole) - abs(edge - whole) <= framing.PAD_MARGIN + 1, (
                kept,
                inner,
            )
    item = framing.locate(g)
    assert item.dark and max(abs(a - b) for a, b in zip(item.box, box)) <= 1, (item.box, box)
    assert item.chosen.shape == item.other.shape == g.shape
    assert not item.chosen[:, : kept[2]].any() and not item.chosen[: kept[0]].any()
    if sides == "tb":  # bars of most of the border: without the rule the photo's own
        framing.UNPAD = False  # backdrop, unlike theirs, is taken for the item (the
        try:  # bars' straight edges are a page's too: inset cuts them off as well)
            framing.INSET = False
            assert framing.locate(g).box[:2] != item.box[:2]
        finally:
            framing.UNPAD = framing.INSET = True


def test_a_flat_or_graded_backdrop_or_bars_of_its_own_level_are_not_padding():
    flat = _u8(_photo(backdrop=245))
    graded = _u8(_photo())
    sweep = _photo(backdrop=0) + np.linspace(250, 150, 150, dtype=np.float32)[:, None]
    sweep[30:110, 60:110] = 50  # a studio sweep: each row one level, falling steadily
    sweep = _u8(sweep)
    same = np.pad(flat, ((30, 30), (0, 0)), constant_values=245)
    line = graded.copy()
    line[:, -1] = 200  # a line along an edge (a scanner's, a decoder's) is not a bar
    for g in (flat, graded, sweep, same, line):
        assert framing.unpadded(g) is None
    assert framing.locate(sweep).box == (60, 30, 110, 110)


def _page(photo_level: int, bar: int) -> np.ndarray:
    """A shop app's screenshot: a status bar (rows 0-15, `bar`, a clock's digits in the
    other shade), the photo (rows 16-135, `photo_level`, the dark item of _photo), a white
    panel (rows 136-199) with two lines of text and a button (gray 120) 4 px in from the
    sides."""
    g = np.full((200, 160), 255, np.float32)
    g[:16] = bar
    g[5:11, 6:30] = 255 - bar
    g[16:136] = photo_level
    g[46:126, 50:100] = 50  # the item: 50 wide, 80 tall
    g[46:126, 70] = 140
    g[142:148, 8:70] = 20  # the item's name
    g[152:158, 8:40] = 20  # its price
    g[166:192, 4:156] = 120  # "Add to cart"
    g[176:182, 60:100] = 255
    return _u8(g)


@pytest.mark.parametrize("photo_level, bar", [(240, 0), (245, 255), (225, 0)])
def test_a_photo_set_in_a_page_is_cut_out_of_it(photo_level, bar):
    g = _page(photo_level, bar)
    top, bottom, left, right = framing.inset(g)
    # The photo's rows, a row short of each edge (where a work row can mix both sides).
    assert (top, bottom) == (17, 135)
    assert (left, right) == (0, 160)
    item = framing.locate(g)
    assert item.dark and item.box == (50, 46, 100, 126), item.box
    framing.INSET = False
    try:  # the button, as strong as the item, is taken with it
        assert framing.locate(g).box != item.box
    finally:
        framing.INSET = True


def test_a_photo_whose_item_crosses_each_straight_step_is_not_cut():
    table = np.full((150, 200), 200, np.float32)
    table[90:] = 230  # a wall above a table's edge, the item standing across it
    table[30:110, 60:110] = 50
    flat = _u8(_photo(backdrop=245))
    for g in (flat, _u8(_photo()), _u8(table)):
        assert framing.inset(g) is None


def _hooked(strap: bool) -> np.ndarray:
    """The dark item with a hanger's thin hook (2 px) rising 18 px above its top, or with
    a strap of its own (6 px wide) as high."""
    g = _photo(backdrop=245)
    if strap:
        g[12:30, 62:68] = 50
    else:
        g[18:30, 84:86] = 50
        cv2.ellipse(g, (79, 18), (6, 6), 0, 180, 360, 50, 2)
    return _u8(g)


def test_a_thin_hook_above_the_item_is_not_item_but_a_part_as_thick_as_a_pixel_is():
    item = framing.locate(_hooked(strap=False))
    # The hook's foot, within the opening's reach of the item, may stay with it.
    assert item.box[0] == 60 and item.box[2:] == (110, 110) and 27 <= item.box[1] <= 30, item.box
    assert item.other[20, 85] and not item.chosen[20, 85]
    # A part the model can draw (wider than its pixel, 80 / 28 here) is the item's own.
    assert framing.locate(_hooked(strap=True)).box == (60, 12, 110, 110)
    framing.UNSPUR = False
    try:
        assert framing.locate(_hooked(strap=False)).box[1] <= 13
    finally:
        framing.UNSPUR = True


def _stood(pole: int = 4, base: bool = True) -> np.ndarray:
    """The dark item on a display stand: a pole `pole` px wide from the middle of its
    bottom edge 20 px down to a round base (an ellipse 50 x 10)."""
    g = _photo(backdrop=245)
    g[108:132, 85 - pole // 2 : 85 - pole // 2 + pole] = 60
    if base:
        cv2.ellipse(g, (85, 132), (25, 5), 0, 0, 360, 60, -1)
    return _u8(g)


def _located_both_ways(g: np.ndarray, rule: str = "APART") -> tuple[framing.Item, framing.Item]:
    """locate's Item with one of framing's rules (the name of its switch) on, and off."""
    setattr(framing, rule, False)
    try:
        without = framing.locate(g)
    finally:
        setattr(framing, rule, True)
    return framing.locate(g), without


def test_a_stands_pole_and_base_below_the_item_are_not_item():
    # A model pixel is 108 / 28 work pixels here: a pole up to 3 px wide is a string
    # (detached); 5 and 6 px, grown to 7 and 8 by the 3x3 mean, need the apart rule.
    for pole in (3, 4, 5, 6):
        item, without = _located_both_ways(_stood(pole))
        # The pole's top, where the 3x3 mean blurs it into the item, may stay with it.
        assert item.box[:3] == (60, 30, 110) and 110 <= item.box[3] <= 113, (pole, item.box)
        assert item.other[132, 70] and item.other[124, 85] and not item.chosen[132, 85]
        if pole >= 5:  # without the rule the box spans item, pole and base: the item
            assert without.box[3] >= 137, (pole, without.box)  # shrinks and rises
    # A pole as thick as the base is a leg of the item.
    assert framing.locate(_stood(12)).box[3] >= 137
    # Between two legs (or sleeves) the pole goes up to the item, inside its box too.
    g = _stood(5).astype(np.float32)
    g[90:110, 76:94] = 245
    g[86:110, 83:88] = 60
    item = framing.locate(_u8(g))
    assert item.box[3] <= 113 and item.other[100, 85] and not item.chosen[100, 85], item.box


def test_spurs_holds_a_stands_base_apart_only_when_asked():
    chosen = framing.locate(_stood(5)).chosen | (_stood(5) < 128)
    base = framing.spurs(chosen)
    assert base is not None and base[132, 70] and base[124, 85] and not base[70, 70]
    # On a patterned floor (hue) the item's pieces are joined by the grain: not asked.
    kept = framing.spurs(chosen, held=False)
    assert kept is None or not kept[132, 70]


def _things_that_are_item() -> dict[str, np.ndarray]:
    """Items with thin or separate parts of their own (see the test below)."""
    things = {}
    for name, width in (("a bag's strap", 6), ("a one-pixel strap", 3)):
        g = _photo(backdrop=245)  # a strap looped over the bag, as thick as a model pixel
        cv2.ellipse(g, (85, 30), (18, 20), 0, 180, 360, 50, width)
        things[name] = _u8(g)
    g = np.full((150, 200), 245, np.float32)  # a sandal: a sole, a heel, thin straps
    g[100:105, 30:170] = 50
    g[80:105, 150:165] = 50
    for x in (60, 90, 120):
        cv2.line(g, (x, 100), (x + 20, 70), 50, 3)
    cv2.line(g, (40, 100), (150, 70), 50, 2)
    things["a sandal's thin parts"] = _u8(g)
    g = np.full((150, 200), 245, np.float32)  # trousers: a waist and two legs apart
    g[20:40, 70:130] = 50
    g[40:130, 70:95] = g[40:130, 105:130] = 50
    things["trousers' legs"] = _u8(g)
    g = np.full((150, 200), 245, np.float32)  # a pair of sandals side by side
    g[60:80, 20:90] = g[60:80, 105:175] = 50
    g[80:84, 20:175] = 50
    things["a pair joined by a thin sole"] = _u8(g)
    g = _photo(backdrop=245)  # a faint item in pieces: a part apart (within detached's
    g[114:124, 70:100] = 50  # reach, beyond a model pixel), joined by nothing
    things["an item in pieces"] = _u8(g)
    return things


@pytest.mark.parametrize("name", list(_things_that_are_item()))
def test_thin_or_separate_parts_of_an_item_are_not_held_apart(name):
    g = _things_that_are_item()[name]
    item, without = _located_both_ways(g)
    assert item.box == without.box, (name, item.box, without.box)
    assert np.array_equal(item.chosen, without.chosen), name
    if name == "an item in pieces":  # the part is select's to judge, and it keeps it
        assert item.box[3] == 124, item.box


def _tagged(string_to: int) -> np.ndarray:
    """The item with a card tag (16 x 20, outlined, a line of print) on a thin string
    running right from its edge; the tag's near side at x = string_to."""
    g = _photo(backdrop=240)
    cv2.line(g, (110, 60), (string_to, 64), 90, 1)  # the string
    g[54:74, string_to : string_to + 16] = 200  # the card
    cv2.rectangle(g, (string_to, 54), (string_to + 15, 73), 70, 1)
    g[63:65, string_to + 3 : string_to + 13] = 40  # its price
    return _u8(g)


def test_a_tag_on_a_string_is_not_item_but_a_part_close_to_it_is():
    item = framing.locate(_tagged(string_to=140))
    # The string's first pixels, within the opening's reach of the item, stay with it.
    assert item.box[:2] == (60, 30) and item.box[3] == 110 and item.box[2] <= 113, item.box
    assert item.other[64, 148] and item.other[62, 125]  # the tag and its string
    framing.DETACH = False
    try:  # a solid card on a thin string is held apart too (the stand's rule)
        assert framing.locate(_tagged(string_to=140)).box[2] <= 113
        framing.APART = False  # without both, the string joins the tag to the item
        assert framing.locate(_tagged(string_to=140)).box[2] >= 150
    finally:
        framing.DETACH = framing.APART = True
    # A body within DETACH_GAP of the main one is the item's own to detached (a
    # sandal's strap); one a model pixel (70 / 28 here) or more away on a neck is not
    # to the apart rule, one within a model pixel is the item's to both.
    close = _tagged(string_to=110 + framing.DETACH_GAP - 1)
    item, without = _located_both_ways(close)
    assert item.box[2] <= 113 and without.box[2] >= 120
    assert framing.locate(_tagged(string_to=112)).box[2] >= 120


def test_on_a_flat_backdrop_the_box_is_the_old_5_percent_rule():
    """Flat backdrops stay as they were: the box is that of every pixel whose 3x3 mean
    is more than 5% off the backdrop (and the pixel itself more than 2 levels off). (A
    faint part on one side only is taken for a drop shadow: test_a_drop_shadow...)"""
    rng = np.random.default_rng(1)
    g = _photo(backdrop=245)
    g[20:30, 50:120] = g[110:120, 50:120] = 225  # faint parts (20 levels off)
    g = _u8(g + rng.normal(0, 2, g.shape))
    smooth = cv2.blur(g.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    old = (np.abs(smooth - 245) > framing.FUZZ) & (np.abs(g.astype(int) - 245) > framing.EDGE)
    assert framing.locate(g).box == framing._box(old) == (50, 20, 120, 120)


def test_select_keeps_the_main_region_and_close_parts_not_far_or_tiny_ones():
    boxes = np.array(
        [
            [100, 100, 50, 80],  # the main region
            [155, 110, 45, 70],  # its pair, 5 px away
            [100, 183, 40, 3],  # a thin strap, 3 px below
            [100, 183, 1, 1],  # a speck beside it
            [5, 5, 30, 8],
        ]
    )  # a mark far away
    mass = np.array([4000.0, 3000.0, 120.0, 5.0, 300.0])
    assert framing.select(mass, boxes).tolist() == [True, True, True, False, False]
    far = boxes.copy()
    far[1, 0] = 400  # the pair 250 px away: not item
    assert framing.select(mass, far).tolist() == [True, False, True, False, False]


def test_a_drop_shadow_does_not_widen_the_box():
    h, w = 160, 200
    g = np.full((h, w), 250, np.float32)
    shade = np.zeros((h, w), np.float32)
    shade[45:125, 75:125] = 1  # the item's shape, 15 px down-right
    shade = cv2.GaussianBlur(shade, (0, 0), 4)
    g *= 1 - 0.35 * shade
    g[30:110, 60:110] = 50
    item = framing.locate(_u8(g))
    left, top, right, bottom = item.box
    assert abs(left - 60) <= 1 and abs(top - 30) <= 1 and right <= 113 and bottom <= 113, item.box


def test_a_turned_item_is_straightened_and_an_upright_one_is_not():
    def rectangle(angle):
        g = np.full((200, 200), 250, np.uint8)
        corners = cv2.boxPoints(((100, 100), (50, 110), angle)).astype(np.int32)
        cv2.fillPoly(g, [corners], 40)
        return g

    assert framing.locate(rectangle(0)).tilt == 0.0
    for angle in (-7, 7):
        assert abs(framing.locate(rectangle(angle)).tilt - angle) < 1.0
    upright = images.to_model_input(Image.fromarray(rectangle(0)))
    turned = images.to_model_input(Image.fromarray(rectangle(7)))
    assert np.abs(upright.astype(int) - turned).mean() < 6
    framing.STRAIGHTEN = False
    try:
        assert (
            np.abs(
                upright.astype(int) - images.to_model_input(Image.fromarray(rectangle(7)))
            ).mean()
            > 12
        )  # straightening made the difference
    finally:
        framing.STRAIGHTEN = True


def test_a_turned_item_without_a_principal_axis_is_straightened_by_its_symmetry():
    """A square bag has no principal axis (its second moments are equal), so the axis
    cannot agree with its minimum box; turned back, it is mirror-symmetric again. A
    lopsided shape (a sole turned under an upright strap) whose axis disagrees stays as
    it is even though the turn makes it more symmetric: not symmetric enough."""

    def photo(draw):
        g = np.full((240, 240), 250, np.uint8)
        layer = np.zeros_like(g)
        draw(layer)
        g[layer > 0] = 40
        return g

    def square(angle):
        def draw(layer):
            cv2.fillPoly(
                layer, [cv2.boxPoints(((120, 120), (100, 100), angle)).astype(np.int32)], 255
            )

        return photo(draw)

    def sandal(layer):
        cv2.fillPoly(layer, [cv2.boxPoints(((120, 150), (170, 22), -8)).astype(np.int32)], 255)
        cv2.rectangle(layer, (50, 100), (70, 150), 255, -1)
        cv2.rectangle(layer, (140, 110), (165, 140), 255, -1)

    try:
        for angle in (-7, 6):
            framing.SYMMETRY = True
            assert abs(framing.locate(square(angle)).tilt - angle) < 1.0
            framing.SYMMETRY = False
            assert framing.locate(square(angle)).tilt == 0.0  # the axis alone: no turn
        framing.SYMMETRY = True
        assert framing.locate(square(0)).tilt == 0.0
        lopsided = photo(sandal)
        before, after = framing.symmetry(lopsided < 145, -7.8)
        assert after - before > framing.SYMMETRY_GAIN and after < framing.SYMMETRIC
        assert framing.locate(lopsided).tilt == 0.0
    finally:
        framing.SYMMETRY = True


@pytest.mark.parametrize("backdrop", [110, 140, 200])
def test_low_light_dark_item_on_grey_comes_out_light_on_black(backdrop):
    g = _photo(backdrop=backdrop)
    g[30:110, 60:110] = backdrop * 0.3
    got = images.to_model_input(Image.fromarray(_u8(g)))
    assert got.max() == 255 and got[:, :4].max() == 0 and got[10:18, 10:18].min() == 255


def test_a_shaded_light_cutout_goes_back_on_white():
    """A photo cut out of its white backdrop (its own shading inside the matte) is
    composited on white, as it was shot; a flat light colour stays on black."""
    la = np.zeros((40, 40, 2), np.uint8)
    la[5:35, 5:35, 1] = 255
    la[5:35, 5:35, 0] = 250  # the white fringe of the matte
    la[10:30, 10:30, 0] = 120  # the item
    assert (images.composite(la, "auto")[0, 0], images.composite(la, "auto")[20, 20]) == (255, 120)
    la[5:35, 5:35, 0] = 230  # a flat light colour
    assert images.composite(la, "auto")[0, 0] == 0


def _floor(h=150, w=200, item=(45, 45, 50)) -> np.ndarray:
    """A wooden floor seen from above, RGB: planks 40 px wide down the photo, each its
    own tone of one wood colour (155-205) with a fine grain of 8 levels and noise of
    10, dark seams 2 px wide between them; an item of colour `item` at (50, 30)-(100,
    110), its middle half-transparent (a seam shows through it)."""
    x = np.arange(w, dtype=np.float32)
    tone = np.asarray([170, 205, 185, 155, 195], np.float32)[(x // 40).astype(int) % 5]
    tone = tone + 8 * np.sin(2 * np.pi * x / 3)
    tone = tone[None] + np.random.default_rng(0).normal(0, 10, (h, w)).astype(np.float32)
    tone[:, (x % 40) >= 38] *= 0.45  # the seams
    rgb = tone[..., None] * np.asarray([1.0, 0.8, 0.6], np.float32)
    alpha = np.zeros((h, w, 1), np.float32)
    alpha[30:110, 50:100] = 1.0
    alpha[50:90, 65:85] = 0.5
    rgb = rgb * (1 - alpha) + np.asarray(item, np.float32) * alpha
    return _u8(rgb)


@pytest.mark.parametrize("item", [(45, 45, 50), (25, 30, 70)])
def test_on_a_wooden_floor_colour_finds_the_item_and_leaves_the_seams(item):
    """The seams are as dark as the item in gray levels; in colour they are the wood's
    own hue, and the long thin lines from the frame are taken out."""
    ycc = np.asarray(Image.fromarray(_floor(item=item)).convert("YCbCr"))
    g, chroma = np.ascontiguousarray(ycc[..., 0]), ycc[..., 1:]
    smooth = cv2.blur(g.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    excess = framing.hued(smooth, chroma)
    assert excess is not None and (excess[60:80, 55:60] > framing.FUZZ).all()  # the item
    assert (excess[:, 120:150] <= framing.FUZZ).mean() > 0.9  # a plank, its grain
    found = framing.locate(g, lambda: chroma)
    assert found.dark and np.abs(np.subtract(found.box, (50, 30, 100, 110))).max() <= 7, found.box
    assert found.other[:, 38:40].all() and found.other[:, 118:120].all()  # seams away from it
    assert not found.other[50:90, 65:85].any()  # its half-transparent middle stays


def test_a_near_neutral_or_flat_backdrop_is_not_told_by_colour():
    """A gray or white backdrop (a gray item lies on its hue's line) and a flat one (no
    pattern to tell apart) keep the gray-level rules, without decoding colour."""
    grey = np.asarray(Image.fromarray(_floor()).convert("L").convert("RGB").convert("YCbCr"))
    smooth = cv2.blur(grey[..., 0].astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    assert framing.hued(smooth, grey[..., 1:]) is None
    asked = []
    flat = np.full((150, 200), 235, np.uint8)
    flat[30:110, 60:110] = 50
    item = framing.locate(flat, lambda: asked.append(1))
    assert not asked and item.box == (60, 30, 110, 110)


def _planks(h=150, w=200, across=False, cut=False) -> np.ndarray:
    """A plank floor in gray levels: planks 40 px wide down the photo (across: along
    it), each its own tone (150-215, one much darker), a grain of 6 levels and noise of
    4, seams 2 px wide at 45% of the tone; a dark item (50) at (60, 30)-(110, 110), its
    middle half-transparent (cut: it runs off the bottom edge)."""
    n = h if across else w
    x = np.arange(n, dtype=np.float32)
    tone = np.asarray([195, 215, 150, 205, 180], np.float32)[(x // 40).astype(int) % 5]
    tone = np.where((x % 40) >= 38, 0.45 * tone, tone + 6 * np.sin(2 * np.pi * x / 5))
    g = np.broadcast_to(tone[:, None] if across else tone[None], (h, w)).copy()
    g += np.random.default_rng(0).normal(0, 4, (h, w)).astype(np.float32)
    bottom = h if cut else 110
    g[30:bottom, 60:110] = 50
    g[50:90, 75:95] = (g[50:90, 75:95] + 50) / 2
    return _u8(g)


@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("cut", [False, True])
def test_planks_each_of_its_own_tone_are_backdrop_band_by_band(across, cut):
    """A plank far darker than the others is as dark as the item to a smooth backdrop;
    each plank, from frame to frame, is its own backdrop (an item cut by the frame
    breaks its planks' lines at one end only)."""
    g = _planks(across=across, cut=cut)
    smooth = cv2.blur(g.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    bands = framing.banded(smooth, framing.backdrop(smooth)[0])
    assert bands is not None
    assert np.abs(bands[0][:, :30] - smooth[:, :30]).mean() < 6  # the planks left of it
    item = framing.locate(g)
    box = (60, 30, 110, 150 if cut else 110)
    assert item.dark and np.abs(np.subtract(item.box, box)).max() <= 2, item.box
    assert not item.other[50:90, 75:95].any()  # its half-transparent middle stays
    if cut:
        return
    framing.BANDS = False
    try:  # the fold rule takes some of the planks' straight edges out, not all of them
        assert np.abs(np.subtract(framing.locate(g).box, box)).max() > 2
        framing.UNCREASE = False  # and the smooth backdrop takes the dark plank for item
        assert np.abs(np.subtract(framing.locate(g).box, box)).max() > 10
    finally:
        framing.BANDS = framing.UNCREASE = True


def test_a_flat_graded_or_two_sided_backdrop_or_a_long_item_is_not_bands():
    """A flat or graded backdrop, a wall above a table (one step) and an item that
    runs from the top edge to the bottom one (two steps) on a flat backdrop keep the
    smooth backdrop."""
    y = np.mgrid[0:150, 0:200][0]
    table = np.where(y < 90, 222.0, 190.0)
    table[40:120, 60:110] = 50
    long = np.full((150, 200), 235.0)
    long[:, 80:120] = 60
    for g in (_photo(), _photo(backdrop=240), table, long):
        smooth = cv2.blur(g.astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
        assert framing.banded(smooth, framing.backdrop(smooth)[0]) is None


def test_a_colour_jpeg_decoded_as_ycbcr_has_the_same_luminance_as_one_decoded_as_l():
    """score decodes a colour JPEG's chroma (for framing.hued) in a second decode as
    YCbCr, only when the trim asks: it must line up with the gray decode, pixel for
    pixel (its Y is the very same luminance)."""
    buf = io.BytesIO()
    Image.fromarray(_floor(300, 400)).save(buf, "JPEG", quality=85)
    out = []
    for mode in ("L", "YCbCr"):
        im = Image.open(io.BytesIO(buf.getvalue()))
        im.draft(mode, (images.WORK, images.WORK))
        out.append(np.asarray(im.convert(mode))[..., 0] if mode == "YCbCr" else np.asarray(im))
    assert out[0].shape == out[1].shape == (150, 200) and (out[0] == out[1]).all()
    rgb_coded = io.BytesIO()  # samples stored as RGB (Adobe transform 0): luminance only
    Image.fromarray(_floor(300, 400)).save(rgb_coded, "JPEG", quality=85, keep_rgb=True)
    assert images.decode(rgb_coded).shape == (28, 28)


def _reflected(fade: float = 0.4, reach: int = 30) -> np.ndarray:
    """A dark shoe-like item (a sole 60-170 wide at rows 95-100, the upper narrowing to
    rows 50-95) standing at row 100 on a glossy floor: below it the item upside down,
    from `fade` of its contrast to nothing over `reach` rows, a little blurred."""
    g = np.full((150, 200), 245, np.float32)
    for row in range(50, 100):  # the upper: wider towards the sole, a heel at the back
        g[row, 140 - (row - 50) : 170] = 50
    g[95:100, 60:170] = 50
    contrast = 245 - g[100 - reach : 100][::-1]  # the rows above, upside down
    weights = np.linspace(fade, 0, reach, dtype=np.float32)[:, None]
    g[100 : 100 + reach] = 245 - cv2.GaussianBlur(contrast * weights, (3, 3), 0)
    return _u8(g)


@pytest.mark.parametrize("fade", [0.25, 0.45, 0.6])
def test_a_reflection_on_a_glossy_floor_is_not_item(fade):
    item, without = _located_both_ways(_reflected(fade, reach=40), "UNMIRROR")
    assert item.box[:2] == (60, 50) and item.box[2] == 170 and 100 <= item.box[3] <= 101
    # Without the rule the box takes the reflection's first rows (the drop-shadow rule
    # trims the fainter ones): the item shrinks and rises in the model's frame.
    assert without.box[3] >= 103 + 8 * (fade > 0.5), without.box
    assert item.other[102, 150] and not item.chosen[102, 150]


def _things_with_a_lighter_bottom() -> dict[str, np.ndarray]:
    """Items whose lowest rows are fainter than the rest but no mirror of it."""
    things = {}
    g = np.full((150, 200), 245, np.float32)  # a sneaker: a dark upper, a light sole
    for row in range(50, 100):
        g[row, 140 - (row - 50) : 170] = 50
    g[95:100, 60:170] = 50
    g[100:110, 55:172] = 170
    things["a sneaker's light sole"] = _u8(g)
    g = np.full((150, 200), 245, np.float32)  # a dress, its hem lighter and wider
    for row in range(20, 130):
        half = 15 + (row - 20) // 4
        g[row, 100 - half : 100 + half] = 50 if row < 110 else 175
    things["a dress's light hem"] = _u8(g)
    g = np.full((150, 200), 245, np.float32)  # trousers, the legs' ends lighter
    g[20:40, 70:130] = 50
    g[40:130, 70:95] = g[40:130, 105:130] = 50
    g[115:130, 70:95] = g[115:130, 105:130] = 170
    things["trousers' light ends"] = _u8(g)
    return {**things, **_things_that_are_item()}


@pytest.mark.parametrize("name", list(_things_with_a_lighter_bottom()))
def test_an_items_own_faint_bottom_is_not_taken_for_a_reflection(name):
    g = _things_with_a_lighter_bottom()[name]
    item, without = _located_both_ways(g, "UNMIRROR")
    assert item.box == without.box, (name, item.box, without.box)
    assert np.array_equal(item.chosen, without.chosen), name


def _creased(folds=((20, 0.3), (170, 2.0), (100, 1.2))) -> np.ndarray:
    """_photo's item on a light paper backdrop (235) crossed by straight folds, each a
    soft ridge lit on one side and shaded on the other (20 levels, 5 pixels wide),
    through (x, 75) at the given angle (radians)."""
    h, w = 150, 200
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = np.full((h, w), 235, np.float32)
    for at, turn in folds:
        u = ((x - at) * np.sin(turn) - (y - 75) * np.cos(turn)) / 5
        g += 20 * u * np.exp(0.5 - 0.5 * u * u)
    item = _u8(_photo(backdrop=245))
    return _u8(np.where(item == 245, g, item))


def _held(arm: float = 140.0) -> np.ndarray:
    """A textured dark item (a shirt, 50 +- 12) held by a hand: a flat forearm of level
    `arm` from the left edge to the item's side, the palm and fingers over its edge."""
    rng = np.random.default_rng(3)
    g = np.full((150, 200), 240, np.float32)
    g[30:120, 80:140] = 50 + rng.normal(0, 12, (90, 60))
    g[60:76, 0:84] = arm  # the forearm
    cv2.ellipse(g, (84, 68), (11, 11), 0, 0, 360, arm, -1)  # the palm
    for k in range(4):  # the fingers over the item
        g[60 + 4 * k : 63 + 4 * k, 84:96] = arm
    return _u8(g + rng.normal(0, 2, g.shape))


def test_an_arm_holding_the_item_is_not_item():
    item, without = _located_both_ways(_held(), "UNARM")
    assert without.box[0] == 0  # without the rule the arm is taken, out to the frame
    assert np.abs(np.subtract(item.box, (80, 30, 140, 120))).max() <= 2, item.box
    # A strap of the item's own tone reaching the frame is the item's.
    strapped, _ = _located_both_ways(_held(arm=55.0), "UNARM")
    assert strapped.box[0] == 0, strapped.box
    # An item cropped tight, touching the frame itself, is not held: a flat part of it
    # from the frame (here the band) stays.
    cropped, _ = _located_both_ways(np.ascontiguousarray(_held()[:, :140]), "UNARM")
    assert cropped.box[0] == 0, cropped.box


def test_a_creased_backdrops_folds_are_not_item():
    g = _creased()
    item, without = _located_both_ways(g, "UNCREASE")
    # Where a fold meets the item, a stub of it as strong as the item's edge may stay:
    # within a model pixel (80 / 28 pixels) of the item's box.
    assert np.abs(np.subtract(item.box, (60, 30, 110, 110))).max() <= 3, item.box
    assert without.box[1] == 0 and without.box[3] > 140  # without the rule: the folds join the item
    # A fold beside the item is erased, the item's own pixels are not.
    assert item.other[:, 140:].sum() > 100 and not item.other[30:110, 60:110].any()
    assert item.chosen[31:109, 61:109].all()


@pytest.mark.parametrize("name", ["a plain item", *_things_that_are_item()])
def test_an_items_own_straight_or_thin_parts_are_not_folds(name):
    g = _u8(_photo(backdrop=245)) if name == "a plain item" else _things_that_are_item()[name]
    item, without = _located_both_ways(g, "UNCREASE")
    assert item.box == without.box, (name, item.box, without.box)
    assert np.array_equal(item.chosen, without.chosen) and np.array_equal(item.other, without.other)


def test_an_item_cut_by_the_frame_is_not_a_fold():
    g = np.full((150, 200), 245, np.float32)  # a dress cut by the top and bottom edges,
    g[:, 70:130] = 60  # its faint side seams straight from frame to frame
    g[:, 68:70] = g[:, 130:132] = 225
    g = _u8(g + np.random.default_rng(2).normal(0, 3, g.shape))  # (not a flat padding bar)
    item, without = _located_both_ways(g, "UNCREASE")
    assert item.box == without.box == (68, 0, 132, 150), item.box


def _dotted(dots=True) -> np.ndarray:
    """A pegboard at the work image's scale (150x200): a light board (220) drilled with
    dark holes (2x2, level 70) every 8 pixels, a light item (140) in front of it that
    lets them show through at half their contrast, as the photo sets' items do."""
    g = np.full((150, 200), 220, np.float32)
    if dots:
        for y in range(3, 149, 8):
            for x in range(3, 199, 8):
                g[y : y + 2, x : x + 2] = 70
    inside = g[30:120, 70:130]
    g[30:120, 70:130] = 140 + (inside - 220) / 2  # the holes through a light item
    return g


def test_a_pegboards_holes_are_taken_out_also_where_they_show_through_the_item():
    g = _u8(_dotted())
    clean = framing.undotted(g)
    assert clean is not None
    board, inside = clean[5:25, 5:195], clean[35:115, 75:125]
    assert np.ptp(board) <= 2, np.ptp(board)  # no hole left on the board
    assert np.ptp(inside) <= 2, np.ptp(inside)  # nor through the item
    holes = (g != _u8(_dotted(dots=False))).view(np.uint8)
    outline = np.zeros_like(holes)
    cv2.rectangle(outline, (70, 30), (129, 119), 1, 1)  # the median rounds its corners
    far = cv2.dilate(holes | outline, np.ones((5, 5), np.uint8)) == 0
    assert (clean[far] == g[far]).all()  # nothing else changes


@pytest.mark.parametrize(
    "name", ["a plain board", "dots on the item only", "a grid of lines", "text in a corner"]
)
def test_a_backdrop_without_holes_all_round_is_left_alone(name):
    g = _dotted(dots=False)
    if name == "dots on the item only":  # a polka-dot print
        for y in range(34, 116, 8):
            for x in range(74, 126, 8):
                g[y : y + 2, x : x + 2] = 40
    elif name == "a grid of lines":  # tiles' grout: long, not spots
        g[::12, :] = g[:, ::12] = 150
    elif name == "text in a corner":
        for x in range(150, 196, 4):
            g[135:140, x : x + 2] = 60
    assert framing.undotted(_u8(g)) is None
