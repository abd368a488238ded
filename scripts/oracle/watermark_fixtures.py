"""Writes the invisible-watermark fixtures with the reference encoder and decoder.

  tests/fixtures/watermark/<name>_in.png   input image (RGB8)
  tests/fixtures/watermark/<name>_out.png  the reference txt2img put_watermark() of it
  tests/fixtures/watermark/cases.tsv       name, width, height, the reference decoder's 17
                                           bytes (hex) on the input and on the output

Usage (from the repository root, in the oracle environment of docs/DEVELOPING.md plus
`pip install --no-deps opencv-python-headless==4.8.1.78 pywavelets==1.4.1`, versions built for
the venv's numpy 1.24):
    /opt/oracle-venv/bin/python scripts/oracle/watermark_fixtures.py

The reference is imwatermark from the read-only checkout /work/ref/ShieldMnt+invisible-watermark
(override with IMWATERMARK_DIR), applied exactly as CompVis scripts/txt2img.py put_watermark
does: PIL RGB -> cv2.cvtColor RGB2BGR -> WatermarkEncoder('bytes', b"StableDiffusionV1")
.encode(bgr, 'dwtDct') -> [:, :, ::-1]. The decoder is scripts/tests/test_watermark.py's
WatermarkDecoder('bytes', 136).decode(bgr, 'dwtDct').

The two test vectors of shared/reference/testvectors/watermark (pattern512, noise256x384) are
copied as they are (and re-checked against the reference here). The other images are synthetic
and deterministic: flat grey, an odd-sized colour gradient, uniform noise, saturated colour
patches, a smooth photo-like image of odd size, and a narrow tall image.
"""
import os
import shutil
import sys

import numpy as np
from PIL import Image

REF = os.environ.get("IMWATERMARK_DIR", "/work/ref/ShieldMnt+invisible-watermark")
sys.path.insert(0, REF)
import cv2  # noqa: E402
from imwatermark import WatermarkDecoder, WatermarkEncoder  # noqa: E402

OUT = os.path.join("tests", "fixtures", "watermark")
VECTORS = os.environ.get("WATERMARK_VECTORS", "/work/shared/reference/testvectors/watermark")
PAYLOAD = b"StableDiffusionV1"


def put_watermark(rgb):
    enc = WatermarkEncoder()
    enc.set_watermark("bytes", PAYLOAD)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(enc.encode(bgr, "dwtDct")[:, :, ::-1])


def decode(rgb):
    dec = WatermarkDecoder("bytes", 136)
    return dec.decode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "dwtDct")


def synthetic():
    rng = np.random.RandomState(20261205)
    imgs = {}
    imgs["flat128"] = np.full((256, 256, 3), 128, np.uint8)
    h, w = 259, 301  # odd sizes: neither a multiple of 4
    y, x = np.mgrid[0:h, 0:w]
    imgs["gradient301x259"] = np.stack(
        [x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)
    imgs["noise256"] = rng.randint(0, 256, (256, 256, 3)).astype(np.uint8)
    pal = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255],
                    [0, 255, 255], [255, 255, 255], [0, 0, 0]], np.uint8)
    idx = rng.randint(0, len(pal), (33, 33))
    imgs["saturated264"] = pal[np.kron(idx, np.ones((8, 8), int))][:264, :264]
    h, w = 243, 322
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([128 + 60 * np.sin(x / 23.0) * np.cos(y / 31.0),
                     110 + 50 * np.sin((x + y) / 41.0),
                     90 + 40 * np.cos(x / 17.0 - y / 29.0)], -1)
    base += rng.normal(0, 3.0, base.shape)
    imgs["smooth322x243"] = np.clip(np.rint(base), 0, 255).astype(np.uint8)
    h, w = 520, 130
    y, x = np.mgrid[0:h, 0:w]
    imgs["tall130x520"] = np.stack([(x * 2) % 256, (y // 2) % 256, (x * y) % 256],
                                   -1).astype(np.uint8)
    return imgs


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for name in ("pattern512", "noise256x384"):
        src_in = os.path.join(VECTORS, name + "_in.png")
        src_out = os.path.join(VECTORS, name + "_out.png")
        rgb = np.array(Image.open(src_in).convert("RGB"))
        ref_out = np.array(Image.open(src_out).convert("RGB"))
        mine = put_watermark(rgb)
        assert np.array_equal(mine, ref_out), name + ": reference encoder disagrees with vector"
        shutil.copyfile(src_in, os.path.join(OUT, name + "_in.png"))
        shutil.copyfile(src_out, os.path.join(OUT, name + "_out.png"))
        rows.append((name, rgb, ref_out))
    for name, rgb in synthetic().items():
        out = put_watermark(rgb)
        Image.fromarray(rgb).save(os.path.join(OUT, name + "_in.png"), optimize=True)
        Image.fromarray(out).save(os.path.join(OUT, name + "_out.png"), optimize=True)
        rows.append((name, rgb, out))
    with open(os.path.join(OUT, "cases.tsv"), "w") as f:
        f.write("# name\twidth\theight\tdecode(in) hex\tdecode(out) hex\n")
        for name, rgb, out in rows:
            di, do = decode(rgb), decode(out)
            f.write("%s\t%d\t%d\t%s\t%s\n" % (name, rgb.shape[1], rgb.shape[0], di.hex(), do.hex()))
            diff = np.abs(out.astype(int) - rgb.astype(int))
            print("%-16s %4dx%-4d changed %6.2f%% max %3d  decode(out)=%r %s" % (
                name, rgb.shape[1], rgb.shape[0], 100.0 * (diff.max(-1) > 0).mean(), diff.max(),
                do, "OK" if do == PAYLOAD else "LOST"))


if __name__ == "__main__":
    main()
