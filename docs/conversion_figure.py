"""Draw docs/img/conversion.png: one photo through `fmnist-job score --fit auto`.

    .venv/bin/python docs/conversion_figure.py

The photo is made from a Fashion-MNIST test item as tests/photos.py makes its catalogue
set; every panel comes from fmnist.images, and the last one is what the model is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fmnist.core import data  # noqa: E402
from fmnist.scoring import images  # noqa: E402

import photos  # noqa: E402

HEIGHT = 224


def main() -> None:
    _, _, x, y, _ = data.load_arrays()
    i = 0  # an ankle boot
    rng = np.random.default_rng(4)
    item = photos._item(x[i], 300, ink=(25, 30, 70), paper=(245, 245, 245))
    photo = photos._place(item, (560, 480), (245, 245, 245), rng)

    gray = images.grayscale(photo)
    factor = min(gray.size) // images.WORK
    small = gray.reduce(factor) if factor >= 2 else gray
    background, (left, top, right, bottom) = images.find_item(small)
    crop = small.crop((left, top, right, bottom))
    resized = crop.resize(images._longest_edge(crop.size), Image.Resampling.BOX)
    seen = images.to_model_input(photo)

    boxed = photo.copy()
    ImageDraw.Draw(boxed).rectangle(
        [left * factor, top * factor, right * factor - 1, bottom * factor - 1],
        outline=(220, 40, 40),
        width=3,
    )
    panels = [
        (
            boxed,
            f"photo {photo.width}x{photo.height}; corner colour {background},\n"
            f"the item's box (within 5% of it is margin)",
        ),
        (crop, f"trimmed: {crop.width}x{crop.height}\n(at 1/{factor} scale)"),
        (images.pad(np.asarray(resized), background), "longest edge to 28,\ncentred"),
        (
            Image.fromarray(seen),
            f"negated, stretched to 0..255:\nwhat the model sees ({data.CLASS_NAMES[y[i]]})",
        ),
    ]
    font = ImageFont.load_default(size=13)
    tiles = []
    for im, caption in panels:
        im = im if isinstance(im, Image.Image) else Image.fromarray(im)
        scale = HEIGHT / im.height
        resample = Image.Resampling.NEAREST if im.height <= 28 else Image.Resampling.LANCZOS
        tiles.append(
            (im.convert("RGB").resize((round(im.width * scale), HEIGHT), resample), caption)
        )
    width = sum(t.width for t, _ in tiles) + 40 * (len(tiles) + 1)
    sheet = Image.new("RGB", (width, HEIGHT + 70), "white")
    draw = ImageDraw.Draw(sheet)
    x0 = 40
    for k, (tile, caption) in enumerate(tiles):
        sheet.paste(tile, (x0, 10))
        draw.multiline_text((x0, HEIGHT + 18), caption, fill="black", font=font)
        if k:
            draw.text((x0 - 30, 10 + HEIGHT // 2 - 8), ">", fill="black", font=font)
        x0 += tile.width + 40
    out = ROOT / "docs" / "img" / "conversion.png"
    sheet.save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
