#!/usr/bin/env python3
"""data_fixtures.py - reference images for data/ (tests/test_data_*.c), written with PIL 9.4.

    /opt/oracle-venv/bin/python scripts/oracle/data_fixtures.py [OUTDIR]   (default tests/fixtures/data)

Writes:
  resize/src_*.png, resize/out_*.png, resize/manifest.txt
      PIL Image.resize((w, h), resample=F) of small RGB sources (noise, smooth + noise), up and
      down, non-square, one axis only, to 1x1, for BILINEAR, BICUBIC, LANCZOS, NEAREST.
      manifest lines: "src w h filter out".
  exif/upright.png, exif/orient_{1..8}.jpg, exif/orient_6.png, exif/orient_8_late.png
      a 48x32 pattern of six coloured 16x16 blocks (upright.png) stored so that applying the EXIF
      orientation tag gives back the upright pattern (checked here with ImageOps.exif_transpose);
      JPEG quality 95, 4:4:4; the PNGs carry the tag in an eXIf chunk (orient_8_late.png: after
      IDAT, where PIL's getexif() still finds it).
  formats/*: rgba.png, la.png (alpha), grey.png, palette.png, palette_trns.png, anim.gif (first
      frame differs from the second), rgb.bmp, rgb.tga, rgb_rle.tga, rgb16.png, each with
      <name>.expected.png: the RGB the decoder must give (alpha composited on white as
      (c*a + 255*(255-a) + 127) // 255, computed here with numpy).
  formats/{jpeg420,jpeg422,progressive,restart,grey,cmyk}.jpg + .expected.png: PIL's decode
      (libjpeg-turbo); the test allows a few levels (stb_image's IDCT/upsampling differ).
  hostile/*: empty.jpg, text.png, truncated.jpg, truncated.png, huge.png (IHDR says
      60000x60000, tiny body, valid CRCs), huge.jpg (SOF says 60000x60000), notes.txt, and
      photo.webp / scan.tif / image.ppm (formats PIL reads and ti does not).
  dataset/*: a 50x37 source (PNG), the peer's preprocessing of it (numpy center crop as
      personalized.py, then PIL resize to 32): prep_crop_bicubic.png, prep_squash_lanczos.png.
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "tests", "fixtures", "data")
rng = np.random.default_rng(20261205)

FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS,
           "nearest": Image.NEAREST}


def mkdir(*p):
    d = os.path.join(OUT, *p)
    os.makedirs(d, exist_ok=True)
    return d


def save_png(img, path):
    img.save(path, format="PNG", optimize=False)


def composite_white(rgba):
    a = rgba[..., 3:4].astype(np.int64)
    c = rgba[..., :3].astype(np.int64)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def resize_fixtures():
    d = mkdir("resize")
    srcs = {}
    srcs["noise"] = rng.integers(0, 256, (23, 37, 3), dtype=np.uint8)  # h, w
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) + rng.integers(-20, 21, (48, 64, 3))
    srcs["smooth"] = np.clip(smooth, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:150, 0:200]
    big = np.stack([xx, yy + 50, 255 - xx], -1) + rng.integers(-6, 7, (150, 200, 3))
    big[60:90, 80:120] = [250, 10, 10]  # a hard edge block
    srcs["big"] = np.clip(big, 0, 255).astype(np.uint8)
    srcs["tiny"] = rng.integers(0, 256, (3, 2, 3), dtype=np.uint8)
    sizes = {
        "noise": [(64, 40), (16, 11), (37, 50), (20, 23), (1, 1), (100, 3)],
        "smooth": [(32, 32), (48, 64), (96, 72), (17, 31)],
        "big": [(17, 13), (64, 64), (150, 101)],
        "tiny": [(7, 5), (1, 4)],
    }
    lines = []
    for name, arr in srcs.items():
        save_png(Image.fromarray(arr, "RGB"), os.path.join(d, f"src_{name}.png"))
        for (w, h) in sizes[name]:
            for fname, f in FILTERS.items():
                out = Image.fromarray(arr, "RGB").resize((w, h), resample=f)
                assert out.size == (w, h)
                oname = f"out_{name}_{w}x{h}_{fname}.png"
                save_png(out, os.path.join(d, oname))
                lines.append(f"src_{name}.png {w} {h} {fname} {oname}")
    with open(os.path.join(d, "manifest.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


# PIL.Image.Transpose op that exif_transpose applies for each orientation, and its inverse
EXIF_OP = {2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM,
           5: Image.TRANSPOSE, 6: Image.ROTATE_270, 7: Image.TRANSVERSE, 8: Image.ROTATE_90}
EXIF_INV = {2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM,
            5: Image.TRANSPOSE, 6: Image.ROTATE_90, 7: Image.TRANSVERSE, 8: Image.ROTATE_270}


def exif_fixtures():
    d = mkdir("exif")
    colours = [[[230, 20, 20], [250, 250, 250], [20, 200, 40]],
               [[30, 40, 220], [10, 10, 10], [128, 128, 128]]]
    up = np.zeros((32, 48, 3), np.uint8)
    for r in range(2):
        for c in range(3):
            up[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = colours[r][c]
    upright = Image.fromarray(up, "RGB")
    save_png(upright, os.path.join(d, "upright.png"))
    for o in range(1, 9):
        stored = upright if o == 1 else upright.transpose(EXIF_INV[o])
        ex = Image.Exif()
        ex[0x0112] = o
        p = os.path.join(d, f"orient_{o}.jpg")
        stored.save(p, format="JPEG", quality=95, subsampling=0, exif=ex.tobytes())
        back = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
        diff = np.abs(np.asarray(back, np.int32) - up.astype(np.int32))
        assert back.size == (48, 32) and diff.max() < 40, (o, back.size, diff.max())
    ex = Image.Exif()
    ex[0x0112] = 6
    p = os.path.join(d, "orient_6.png")
    upright.transpose(EXIF_INV[6]).save(p, format="PNG", exif=ex.tobytes())
    back = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
    assert np.array_equal(np.asarray(back), up)
    assert b"eXIf" in open(p, "rb").read()
    # orientation 8 with the eXIf chunk after IDAT (PIL's getexif() still finds it)
    b = io.BytesIO()
    ex[0x0112] = 8
    upright.transpose(EXIF_INV[8]).save(b, format="PNG", exif=ex.tobytes())
    data, chunks, pos = b.getvalue(), [], 8
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        chunks.append(data[pos:pos + 12 + n])
        pos += 12 + n
    exif_chunk = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    assert len(exif_chunk) == 1 and rest[-1][4:8] == b"IEND"
    p = os.path.join(d, "orient_8_late.png")
    with open(p, "wb") as fh:
        fh.write(data[:8] + b"".join(rest[:-1]) + exif_chunk[0] + rest[-1])
    back = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
    assert np.array_equal(np.asarray(back), up)


def format_fixtures():
    d = mkdir("formats")

    def expect(name, arr):
        save_png(Image.fromarray(arr, "RGB"), os.path.join(d, name + ".expected.png"))

    rgba = rng.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    rgba[0, :, 3] = 0
    rgba[1, :, 3] = 255
    save_png(Image.fromarray(rgba, "RGBA"), os.path.join(d, "rgba.png"))
    expect("rgba.png", composite_white(rgba))

    la = rng.integers(0, 256, (6, 5, 2), dtype=np.uint8)
    save_png(Image.fromarray(la, "LA"), os.path.join(d, "la.png"))
    expect("la.png", composite_white(np.concatenate([la[..., :1].repeat(3, -1), la[..., 1:]], -1)))

    grey = rng.integers(0, 256, (7, 11), dtype=np.uint8)
    save_png(Image.fromarray(grey, "L"), os.path.join(d, "grey.png"))
    expect("grey.png", np.asarray(Image.fromarray(grey, "L").convert("RGB")))

    pal = Image.fromarray(rng.integers(0, 5, (8, 10), dtype=np.uint8), "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 100, 50, 9, 9, 9] + [0] * (251 * 3))
    pal.save(os.path.join(d, "palette.png"))
    expect("palette.png", np.asarray(pal.convert("RGB")))
    # palette with a transparent entry (tRNS): index 1 fully transparent -> white
    pal.save(os.path.join(d, "palette_trns.png"), transparency=1)
    rgb = np.asarray(pal.convert("RGB")).copy()
    rgb[np.asarray(pal) == 1] = 255
    expect("palette_trns.png", rgb)

    f0 = Image.fromarray(rng.integers(0, 4, (12, 9), dtype=np.uint8), "P")
    f1 = Image.fromarray(rng.integers(0, 4, (12, 9), dtype=np.uint8), "P")
    palette = [250, 0, 0, 0, 250, 0, 0, 0, 250, 250, 250, 0] + [0] * (252 * 3)
    f0.putpalette(palette)
    f1.putpalette(palette)
    f0.save(os.path.join(d, "anim.gif"), save_all=True, append_images=[f1], duration=100, loop=0)
    g = Image.open(os.path.join(d, "anim.gif"))
    g.seek(0)
    first = np.asarray(g.convert("RGB"))
    assert np.array_equal(first, np.asarray(f0.convert("RGB")))
    assert not np.array_equal(first, np.asarray(f1.convert("RGB")))
    expect("anim.gif", first)

    rgb = rng.integers(0, 256, (10, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(os.path.join(d, "rgb.bmp"))
    expect("rgb.bmp", rgb)
    Image.fromarray(rgb, "RGB").save(os.path.join(d, "rgb.tga"))
    expect("rgb.tga", rgb)
    rle = np.repeat(rgb[:, :3], 3, axis=1)[:, :7]  # runs for RLE
    Image.fromarray(rle, "RGB").save(os.path.join(d, "rgb_rle.tga"), compression="tga_rle")
    expect("rgb_rle.tga", rle)
    for p in ("rgb.tga", "rgb_rle.tga", "rgb.bmp"):
        assert np.array_equal(np.asarray(Image.open(os.path.join(d, p)).convert("RGB")),
                              rgb if p != "rgb_rle.tga" else rle)

    # 16-bit RGB PNG, written by hand (PIL cannot write 16-bit RGB); 8-bit value = high byte
    v16 = rng.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    raw = b"".join(b"\x00" + v16[y].astype(">u2").tobytes() for y in range(4))
    write_png_raw(os.path.join(d, "rgb16.png"), 5, 4, 16, 2, zlib.compress(raw))
    expect("rgb16.png", (v16 >> 8).astype(np.uint8))


def jpeg_fixtures():
    """JPEGs as phones and editors write them; expected = PIL's (libjpeg-turbo) decode. stb_image
    decodes with its own IDCT and chroma upsampling, so the test allows a few levels."""
    d = mkdir("formats")
    r = np.random.default_rng(7)
    yy, xx = np.mgrid[0:30, 0:40]
    arr = np.stack([xx * 6, yy * 8, 255 - xx * 3], -1) + r.integers(-30, 31, (30, 40, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    variants = {
        "jpeg420.jpg": dict(quality=90),  # PIL default subsampling: 4:2:0
        "jpeg422.jpg": dict(quality=85, subsampling=1),
        "progressive.jpg": dict(quality=90, progressive=True),
        "restart.jpg": dict(quality=90, restart_marker_blocks=1),
    }
    for name, kw in variants.items():
        img.save(os.path.join(d, name), format="JPEG", **kw)
    img.convert("L").save(os.path.join(d, "grey.jpg"), format="JPEG", quality=90)
    img.convert("CMYK").save(os.path.join(d, "cmyk.jpg"), format="JPEG", quality=90)
    for name in list(variants) + ["grey.jpg", "cmyk.jpg"]:
        save_png(Image.open(os.path.join(d, name)).convert("RGB"),
                 os.path.join(d, name + ".expected.png"))


def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))


def write_png_raw(path, w, h, depth, ctype, idat):
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)))
        fh.write(png_chunk(b"IDAT", idat))
        fh.write(png_chunk(b"IEND", b""))


def hostile_fixtures():
    d = mkdir("hostile")
    open(os.path.join(d, "empty.jpg"), "wb").close()
    with open(os.path.join(d, "text.png"), "w") as fh:
        fh.write("this is not an image, it is a text file that someone named .png\n")
    with open(os.path.join(d, "notes.txt"), "w") as fh:
        fh.write("training notes\n")
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
    p = os.path.join(d, "full.jpg")
    img.save(p, format="JPEG", quality=90)
    data = open(p, "rb").read()
    os.remove(p)
    with open(os.path.join(d, "truncated.jpg"), "wb") as fh:
        fh.write(data[: len(data) // 2])
    p = os.path.join(d, "full.png")
    img.save(p, format="PNG")
    data = open(p, "rb").read()
    os.remove(p)
    with open(os.path.join(d, "truncated.png"), "wb") as fh:
        fh.write(data[: len(data) // 2])
    # formats PIL opens but ti does not read: the message names them
    small = Image.new("RGB", (4, 4), (1, 2, 3))
    small.save(os.path.join(d, "photo.webp"), format="WEBP")
    small.save(os.path.join(d, "scan.tif"), format="TIFF")
    small.save(os.path.join(d, "image.ppm"), format="PPM")
    # a 60000 x 60000 RGB PNG header with a few bytes of (valid) zlib data
    write_png_raw(os.path.join(d, "huge.png"), 60000, 60000, 8, 2, zlib.compress(b"\x00" * 64))
    # a baseline JPEG whose SOF0 claims 60000 x 60000 (the rest is cut after SOS)
    j = Image.new("RGB", (8, 8), (10, 20, 30))
    p = os.path.join(d, "small.jpg")
    j.save(p, format="JPEG")
    data = bytearray(open(p, "rb").read())
    os.remove(p)
    i = data.find(b"\xff\xc0")
    assert i > 0
    struct.pack_into(">HH", data, i + 5, 60000, 60000)
    with open(os.path.join(d, "huge.jpg"), "wb") as fh:
        fh.write(bytes(data))


def dataset_fixtures():
    d = mkdir("dataset")
    src = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    save_png(Image.fromarray(src, "RGB"), os.path.join(d, "src.png"))
    # personalized.py __getitem__ steps 3-4 (before the random flip)
    img = src
    h, w = img.shape[0], img.shape[1]
    crop = min(h, w)
    img = img[(h - crop) // 2:(h + crop) // 2, (w - crop) // 2:(w + crop) // 2]
    out = Image.fromarray(img).resize((32, 32), resample=Image.BICUBIC)
    save_png(out, os.path.join(d, "prep_crop_bicubic.png"))
    out = Image.fromarray(src).resize((32, 32), resample=Image.LANCZOS)
    save_png(out, os.path.join(d, "prep_squash_lanczos.png"))


if __name__ == "__main__":
    resize_fixtures()
    exif_fixtures()
    format_fixtures()
    jpeg_fixtures()
    hostile_fixtures()
    dataset_fixtures()
    print("wrote", os.path.abspath(OUT))
