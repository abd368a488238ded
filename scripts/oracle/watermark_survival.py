"""Measures how often the reference txt2img invisible watermark survives, by content.

For each image: the reference encoder (imwatermark 'dwtDct', "StableDiffusionV1", applied as
CompVis txt2img put_watermark) then the reference decoder (WatermarkDecoder('bytes', 136));
reports whether the 17 bytes come back exactly and the fraction of the 136 bits that do.
Also: what the decoder reads on unmarked images, and after lossy steps on marked ones.
The numbers go into docs/WATERMARK.md. ti's encoder/decoder are bit-exact with these
(tests/test_watermark.c), so the figures hold for ti.

Usage (oracle venv with opencv-python-headless and pywavelets, see watermark_fixtures.py):
    /opt/oracle-venv/bin/python scripts/oracle/watermark_survival.py
Images: the photographs and SD samples shipped in the reference checkouts under /work/ref
(REF_IMAGES overrides), plus synthetic content generated here.
"""
import glob
import io
import os
import sys

import numpy as np
from PIL import Image

REF = os.environ.get("IMWATERMARK_DIR", "/work/ref/ShieldMnt+invisible-watermark")
sys.path.insert(0, REF)
import cv2  # noqa: E402
from imwatermark import WatermarkDecoder, WatermarkEncoder  # noqa: E402

PAYLOAD = b"StableDiffusionV1"
BITS = np.unpackbits(np.frombuffer(PAYLOAD, np.uint8))
IMAGES = os.environ.get("REF_IMAGES", "/work/ref")


def mark(rgb):
    enc = WatermarkEncoder()
    enc.set_watermark("bytes", PAYLOAD)
    return np.ascontiguousarray(enc.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "dwtDct")[:, :, ::-1])


def read(rgb):
    b = WatermarkDecoder("bytes", 136).decode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "dwtDct")
    return b, (np.unpackbits(np.frombuffer(b, np.uint8)) == BITS).mean()


def fit(img, size):
    """center crop to a square and resize (bicubic) to size x size"""
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.array(img.resize((size, size), Image.BICUBIC))


def jpeg(rgb, q):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=q)
    return np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def chroma_stats(rgb):
    yuv = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2YUV)
    u = yuv[:, :, 1].astype(float)
    sat = ((rgb == 0) | (rgb == 255)).any(-1).mean()
    return u.std(), sat


def real_images():
    pats = ["**/*.png", "**/*.jpg", "**/*.jpeg"]
    files = sorted({f for p in pats for f in glob.glob(os.path.join(IMAGES, p), recursive=True)})
    out = []
    for f in files:
        if "_mask" in f or "modelfigure" in f or "scores" in f:
            continue  # binary masks and figures are not image content
        img = Image.open(f).convert("RGB")
        if min(img.size) < 256:
            continue
        out.append((os.path.relpath(f, IMAGES), img))
    return out


def synthetic(size, rng):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    smooth = np.stack([128 + 60 * np.sin(x / 23.0) * np.cos(y / 31.0),
                       110 + 50 * np.sin((x + y) / 41.0),
                       90 + 40 * np.cos(x / 17.0 - y / 29.0)], -1)
    s = {}
    for g in (0, 64, 128, 200, 255):
        s["flat grey %d" % g] = np.full((size, size, 3), g, np.uint8)
    for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255), (40, 90, 200)):
        s["flat colour %s" % (c,)] = np.tile(np.array(c, np.uint8), (size, size, 1))
    s["gradient"] = np.stack([x * 255 / (size - 1), y * 255 / (size - 1),
                              (x + y) * 255 / (2 * size - 2)], -1).astype(np.uint8)
    s["smooth"] = np.clip(np.rint(smooth), 0, 255).astype(np.uint8)
    for sigma in (2, 5, 10, 20, 40):
        s["smooth + noise sigma %d" % sigma] = np.clip(
            np.rint(smooth + rng.normal(0, sigma, smooth.shape)), 0, 255).astype(np.uint8)
    s["uniform noise"] = rng.randint(0, 256, (size, size, 3)).astype(np.uint8)
    for k in (2, 4):
        s["smooth, chroma x%d (clipped)" % k] = np.clip(
            np.rint(128 + k * (smooth - 128)), 0, 255).astype(np.uint8)
    return s


def main():
    rng = np.random.RandomState(1)
    print("## real images (center crop, bicubic resize)")
    print("| image | size | exact | bits ok | U std | saturated px | unmarked reads message |")
    ok, unmarked = {}, []
    for name, img in real_images():
        for size in (512, 256):
            rgb = fit(img, size)
            m = mark(rgb)
            b, acc = read(m)
            b0, acc0 = read(rgb)
            unmarked.append(acc0)
            ustd, sat = chroma_stats(rgb)
            ok.setdefault(size, []).append(b == PAYLOAD)
            print("| %s | %d | %s | %.3f | %.1f | %.3f | %s |" % (
                name, size, "yes" if b == PAYLOAD else "no", acc, ustd, sat,
                "YES" if b0 == PAYLOAD else "no"))
    for size, v in ok.items():
        print("real images at %d: %d of %d exact" % (size, sum(v), len(v)))
    print("unmarked real images: bits matching the payload mean %.3f, range %.3f..%.3f" % (
        np.mean(unmarked), min(unmarked), max(unmarked)))
    for size in (512, 256):
        print("\n## synthetic %dx%d" % (size, size))
        print("| content | exact | bits ok | U std | saturated px |")
        for name, rgb in synthetic(size, rng).items():
            b, acc = read(mark(rgb))
            ustd, sat = chroma_stats(rgb)
            print("| %s | %s | %.3f | %.1f | %.3f |" % (name, "yes" if b == PAYLOAD else "no", acc,
                                                       ustd, sat))
    print("\n## after lossy steps (real images at 512 whose mark survives a PNG)")
    steps = {"PNG (lossless)": lambda a: a, "JPEG q95": lambda a: jpeg(a, 95),
             "JPEG q75": lambda a: jpeg(a, 75),
             "resize 512->384->512": lambda a: np.array(Image.fromarray(a).resize(
                 (384, 384), Image.BICUBIC).resize((512, 512), Image.BICUBIC)),
             "crop 4 px left/top": lambda a: np.ascontiguousarray(
                 np.pad(a[4:, 4:], ((0, 4), (0, 4), (0, 0)), mode="edge")),
             "brightness +10": lambda a: np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)}
    marked = [mark(fit(img, 512)) for _, img in real_images()]
    marked = [m for m in marked if read(m)[0] == PAYLOAD]
    print("| step | exact | mean bits ok |")
    for sname, f in steps.items():
        r = [read(f(m)) for m in marked]
        print("| %s | %d of %d | %.3f |" % (sname, sum(b == PAYLOAD for b, _ in r), len(r),
                                            np.mean([a for _, a in r])))


if __name__ == "__main__":
    main()
