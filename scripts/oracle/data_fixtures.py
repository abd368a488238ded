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
  formats/{jpeg420,jpeg422,jpeg422_odd,jpeg420_tiny,progressive,restart,grey,cmyk,
      cmyk_no_adobe,cmyk_adobe1}.jpg +
      .expected.png: PIL's decode (libjpeg-turbo); the test allows a few levels (stb_image's IDCT
      and colour conversion differ; its chroma upsampling is replaced by libjpeg's,
      data/stb_impl.c).
  hostile/*: empty.jpg, text.png, truncated.jpg, truncated.png, huge.png (IHDR says
      60000x60000, tiny body, valid CRCs), huge.jpg (SOF says 60000x60000), notes.txt, and
      photo.webp / scan.tif / image.ppm (formats PIL reads; ti reads the first two only when
      built with libwebp / libtiff).
  dataset/*: a 50x37 source (PNG), the peer's preprocessing of it (numpy center crop as
      personalized.py, then PIL resize to 32): prep_crop_bicubic.png, prep_squash_lanczos.png.
  webp/*: lossless / lossy, RGB / RGBA, animated (two frames; a first frame smaller than the
      canvas), EXIF orientation 6 and 8, each with <name>.expected.png; truncated, damaged and
      oversized files (webp_fixtures).
  tiff/*: 8-bit RGB, RGBA, grey, two pages, orientation tag 6, each with <name>.expected.png;
      16-bit grey and truncated files (tiff_fixtures).
The webp and tiff sets draw from their own generators, so adding them changed no other file.
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin

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


def upright_pattern():
    """exif/upright.png: 48x32, six coloured 16x16 blocks (no two rotations alike)."""
    colours = [[[230, 20, 20], [250, 250, 250], [20, 200, 40]],
               [[30, 40, 220], [10, 10, 10], [128, 128, 128]]]
    up = np.zeros((32, 48, 3), np.uint8)
    for r in range(2):
        for c in range(3):
            up[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = colours[r][c]
    return up


def exif_fixtures():
    d = mkdir("exif")
    up = upright_pattern()
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
    # 4:2:2 (h2v1, as most DSLRs write), odd width, a chroma edge at the right border: stb_image's
    # own h2v1 upsampler weights the last chroma column's left sample the wrong way round
    # (data/stb_impl.c), >100 levels off in the last pixel column here
    edge = np.zeros((16, 37, 3), np.uint8)
    edge[:] = (40, 200, 60)
    edge[:, 34:] = (230, 20, 200)
    edge[:, 36] = (20, 40, 240)
    Image.fromarray(edge, "RGB").save(os.path.join(d, "jpeg422_odd.jpg"), format="JPEG",
                                      quality=95, subsampling=1)
    # 3 pixels wide, 4:2:0: two chroma samples a row, which libjpeg replicates (no blending)
    tiny = np.random.default_rng(11).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    Image.fromarray(tiny, "RGB").save(os.path.join(d, "jpeg420_tiny.jpg"), format="JPEG",
                                      quality=95)
    # CMYK without the Adobe APP14 segment (libjpeg: plain CMYK; PIL unpacks it inverted, as
    # always) and with an Adobe transform other than 0 or 2 (libjpeg: YCCK); stb_image read both
    # as YCbCr without the K channel
    cmyk = open(os.path.join(d, "cmyk.jpg"), "rb").read()
    pos, segs = 2, []
    while cmyk[pos + 1] != 0xDA:
        n = struct.unpack(">H", cmyk[pos + 2:pos + 4])[0]
        segs.append((pos, n, cmyk[pos + 1]))
        pos += 2 + n
    adobe = [(p, n) for p, n, m in segs if m == 0xEE and cmyk[p + 4:p + 9] == b"Adobe"]
    assert len(adobe) == 1 and cmyk[adobe[0][0] + 15] == 0
    p, n = adobe[0]
    with open(os.path.join(d, "cmyk_no_adobe.jpg"), "wb") as fh:
        fh.write(cmyk[:p] + cmyk[p + 2 + n:])
    with open(os.path.join(d, "cmyk_adobe1.jpg"), "wb") as fh:
        fh.write(cmyk[:p + 15] + b"\x01" + cmyk[p + 16:])
    for name in list(variants) + ["grey.jpg", "cmyk.jpg", "jpeg422_odd.jpg", "jpeg420_tiny.jpg",
                                  "cmyk_no_adobe.jpg", "cmyk_adobe1.jpg"]:
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


def riff_chunks(data):
    """A WebP file -> [(fourcc, payload)] of its top-level chunks."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    out, pos = [], 12
    while pos + 8 <= len(data):
        n = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        out.append((data[pos:pos + 4], data[pos + 8:pos + 8 + n]))
        pos += 8 + n + (n & 1)
    return out


def riff_chunk(tag, payload):
    return tag + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def riff_webp(chunks):
    body = b"WEBP" + b"".join(riff_chunk(t, p) for t, p in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def u24(v):
    return struct.pack("<I", v)[:3]


def webp_bitstream(arr):
    """The VP8L chunk of a lossless still WebP of arr (RGB)."""
    b = io.BytesIO()
    Image.fromarray(arr, "RGB").save(b, format="WEBP", lossless=True)
    (tag, payload), = riff_chunks(b.getvalue())
    assert tag == b"VP8L"
    return payload


def webp_fixtures():
    """webp/*: WebP files and the RGB ti must decode from them (<name>.expected.png). PIL 9.4
    reads WebP with the system's libwebp (1.2.4 here, the library ti links), through its
    animation decoder: the first frame on a transparent canvas. Expected = PIL's decode,
    alpha composited on white as for PNG (ti's rule, docs/DATA.md); where alpha is 255 that is
    Image.open(p).convert("RGB") itself (asserted)."""
    d = mkdir("webp")
    r = np.random.default_rng(20261206)

    def expect(name):
        im = Image.open(os.path.join(d, name))
        im.seek(0)
        rgba = np.asarray(im.convert("RGBA"))
        rgb = np.asarray(im.convert("RGB"))
        opaque = rgba[..., 3] == 255
        assert np.array_equal(rgba[..., :3][opaque], rgb[opaque])
        out = composite_white(rgba)
        save_png(Image.fromarray(out, "RGB"), os.path.join(d, name + ".expected.png"))
        return im, rgba

    rgb = r.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(os.path.join(d, "lossless_rgb.webp"), lossless=True)
    im, got = expect("lossless_rgb.webp")
    assert im.mode == "RGB" and np.array_equal(got[..., :3], rgb)

    rgba = r.integers(0, 256, (6, 11, 4), dtype=np.uint8)
    rgba[0, :, 3] = 0
    rgba[1, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(os.path.join(d, "lossless_rgba.webp"), lossless=True,
                                       exact=True)
    im, got = expect("lossless_rgba.webp")
    assert im.mode == "RGBA" and np.array_equal(got, rgba)

    yy, xx = np.mgrid[0:12, 0:16]
    smooth = np.stack([xx * 15, yy * 20, 255 - (xx + yy) * 8], -1) + r.integers(-25, 26,
                                                                              (12, 16, 3))
    smooth = np.clip(smooth, 0, 255).astype(np.uint8)
    Image.fromarray(smooth, "RGB").save(os.path.join(d, "lossy_rgb.webp"), quality=80)
    im, _ = expect("lossy_rgb.webp")
    assert im.mode == "RGB"
    alpha = np.clip(xx * 20 + yy * 3, 0, 255).astype(np.uint8)[..., None]
    Image.fromarray(np.concatenate([smooth, alpha], -1), "RGBA").save(
        os.path.join(d, "lossy_rgba.webp"), quality=80)
    im, _ = expect("lossy_rgba.webp")
    assert im.mode == "RGBA"

    # animated, two full frames: the first is read
    f0 = r.integers(0, 256, (5, 8, 3), dtype=np.uint8)
    f1 = r.integers(0, 256, (5, 8, 3), dtype=np.uint8)
    Image.fromarray(f0).save(os.path.join(d, "anim.webp"), save_all=True,
                             append_images=[Image.fromarray(f1)], lossless=True, duration=100)
    im, got = expect("anim.webp")
    assert im.n_frames == 2 and np.array_equal(got[..., :3], f0)
    # animated by hand: a 10x8 canvas (alpha flag set), frame 1 is 6x4 at (2, 2), frame 2 the
    # whole canvas; the ANIM background (opaque blue) is a hint libwebp ignores: PIL's first
    # frame is transparent where frame 1 does not reach (ti: white)
    small = r.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    full = r.integers(0, 256, (8, 10, 3), dtype=np.uint8)

    def anmf(x, y, w, h, bits):
        return (b"ANMF", u24(x // 2) + u24(y // 2) + u24(w - 1) + u24(h - 1) + u24(100) +
                b"\0" + riff_chunk(b"VP8L", bits))

    data = riff_webp([(b"VP8X", bytes([0x12, 0, 0, 0]) + u24(9) + u24(7)),
                      (b"ANIM", bytes([255, 0, 0, 255]) + struct.pack("<H", 0)),
                      anmf(2, 2, 6, 4, webp_bitstream(small)),
                      anmf(0, 0, 10, 8, webp_bitstream(full))])
    with open(os.path.join(d, "anim_offset.webp"), "wb") as fh:
        fh.write(data)
    im, got = expect("anim_offset.webp")
    assert im.n_frames == 2 and im.mode == "RGBA"
    assert np.array_equal(got[2:6, 2:8, :3], small) and (got[2:6, 2:8, 3] == 255).all()
    got = got.copy()
    got[2:6, 2:8] = 0
    assert not got.any()

    # EXIF orientation 6 (PIL stores the TIFF block without "Exif\0\0"), and 8 with the prefix
    # (some writers keep it; PIL's Exif.load accepts both): exif_transpose gives the upright
    # pattern back, which ti must give (compared with exif/upright.png)
    up = upright_pattern()
    for o, name, prefix in ((6, "orient_6.webp", False), (8, "orient_8_prefixed.webp", True)):
        ex = Image.Exif()
        ex[0x0112] = o
        b = io.BytesIO()
        Image.fromarray(up).transpose(EXIF_INV[o]).save(b, format="WEBP", lossless=True,
                                                        exif=ex.tobytes())
        chunks = riff_chunks(b.getvalue())
        assert [t for t, _ in chunks].count(b"EXIF") == 1
        if prefix:
            chunks = [(t, b"Exif\0\0" + p if t == b"EXIF" else p) for t, p in chunks]
        p = os.path.join(d, name)
        with open(p, "wb") as fh:
            fh.write(riff_webp(chunks))
        back = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
        assert Image.open(p).getexif().get(0x0112) == o
        assert np.array_equal(np.asarray(back), up)

    # damaged: cut in half; the lossless bitstream's signature byte changed; a 16000 x 16000
    # animation canvas with one 1x1 frame (refused before the 768 MB canvas exists)
    lossy = open(os.path.join(d, "lossy_rgb.webp"), "rb").read()
    with open(os.path.join(d, "truncated.webp"), "wb") as fh:
        fh.write(lossy[:len(lossy) // 2])
    bits = bytearray(webp_bitstream(rgb))
    assert bits[0] == 0x2F
    bits[0] = 0x2E
    with open(os.path.join(d, "bad_signature.webp"), "wb") as fh:
        fh.write(riff_webp([(b"VP8L", bytes(bits))]))
    with open(os.path.join(d, "huge.webp"), "wb") as fh:
        fh.write(riff_webp([(b"VP8X", bytes([0x02, 0, 0, 0]) + u24(15999) + u24(15999)),
                            (b"ANIM", bytes(4) + struct.pack("<H", 0)),
                            anmf(0, 0, 1, 1, webp_bitstream(rgb[:1, :1]))]))


def tiff_fixtures():
    """tiff/*: 8-bit TIFFs and the RGB ti must decode from them (<name>.expected.png): PIL's
    Image.open(p).convert("RGB"), which is upright (PIL 9.4 applies the TIFF orientation tag
    when it loads), with alpha composited on white as for PNG."""
    d = mkdir("tiff")
    r = np.random.default_rng(20261207)

    def expect(name, want_rgba=None):
        im = Image.open(os.path.join(d, name))
        rgba = np.asarray(im.convert("RGBA"))
        if want_rgba is not None:
            assert np.array_equal(rgba, want_rgba)
        save_png(Image.fromarray(composite_white(rgba), "RGB"),
                 os.path.join(d, name + ".expected.png"))
        return im

    rgb = r.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(os.path.join(d, "rgb.tif"))
    expect("rgb.tif", np.concatenate([rgb, np.full((7, 9, 1), 255, np.uint8)], -1))
    rgba = r.integers(0, 256, (6, 11, 4), dtype=np.uint8)
    rgba[0, :, 3] = 0
    rgba[1, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(os.path.join(d, "rgba_lzw.tif"), compression="tiff_lzw")
    assert Image.open(os.path.join(d, "rgba_lzw.tif")).tag_v2.get(338) == (2,)  # unassociated
    expect("rgba_lzw.tif", rgba)
    grey = r.integers(0, 256, (5, 8), dtype=np.uint8)
    Image.fromarray(grey, "L").save(os.path.join(d, "grey_deflate.tif"),
                                    compression="tiff_adobe_deflate")
    expect("grey_deflate.tif")
    pages = [Image.fromarray(r.integers(0, 256, (4, 6, 3), dtype=np.uint8)) for _ in range(2)]
    pages[0].save(os.path.join(d, "multipage.tif"), save_all=True, append_images=pages[1:])
    im = expect("multipage.tif")
    assert im.n_frames == 2
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[0x0112] = 6
    up = upright_pattern()
    Image.fromarray(up).transpose(EXIF_INV[6]).save(os.path.join(d, "orient_6.tif"),
                                                    tiffinfo=info, compression="tiff_lzw")
    im = expect("orient_6.tif")
    assert im.size == (48, 32) and np.array_equal(np.asarray(im.convert("RGB")), up)
    # what ti refuses: 16-bit grey, cut in half
    Image.fromarray(r.integers(0, 65536, (3, 4), dtype=np.uint16), "I;16").save(
        os.path.join(d, "grey16.tif"))
    data = open(os.path.join(d, "rgb.tif"), "rb").read()
    with open(os.path.join(d, "truncated.tif"), "wb") as fh:
        fh.write(data[:len(data) // 2])


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
    webp_fixtures()
    tiff_fixtures()
    print("wrote", os.path.abspath(OUT))
