"""train_fixtures.py - small images for ti-train's end-to-end tests (tests/test_ti_train.sh).

Writes tests/fixtures/train/:
  imgs/a_red.png ... d_cyan.jpg   four 72x60 RGB training images (shapes on plain colours)
  exif/rot6.jpg                   an upright picture (red top half, blue bottom half, 48x64 WxH)
                                  stored rotated 90 degrees counter-clockwise with EXIF
                                  Orientation 6 (a phone photo held upright)
  bad/notes.txt                   a text file
  bad/fake.png                    text bytes named .png
  bad/truncated.png               the first 60% of a valid PNG
  bad/liar.png                    a valid 1x1 PNG whose IHDR claims 60000 x 60000 (CRC fixed up)
Run: /opt/oracle-venv/bin/python scripts/oracle/train_fixtures.py   (PIL 9.4)
"""
import io
import os
import struct
import zlib

from PIL import Image, ImageDraw

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "train")


def shapes(colour, shape, fmt, name):
    im = Image.new("RGB", (72, 60), colour)
    d = ImageDraw.Draw(im)
    if shape == "circle":
        d.ellipse((16, 10, 56, 50), fill=(250, 250, 250))
    elif shape == "box":
        d.rectangle((20, 14, 52, 46), fill=(20, 20, 20))
    else:
        d.polygon([(36, 8), (62, 52), (10, 52)], fill=(240, 220, 0))
    path = os.path.join(OUT, "imgs", name)
    if fmt == "JPEG":
        im.save(path, fmt, quality=92)
    else:
        im.save(path, fmt)


def main():
    for sub in ("imgs", "exif", "bad"):
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    shapes((200, 30, 30), "circle", "PNG", "a_red.png")
    shapes((30, 160, 40), "box", "PNG", "b_green.png")
    shapes((40, 60, 200), "tri", "PNG", "c_blue.png")
    shapes((20, 190, 190), "circle", "JPEG", "d_cyan.jpg")

    up = Image.new("RGB", (48, 64), (220, 0, 0))
    ImageDraw.Draw(up).rectangle((0, 32, 47, 63), fill=(0, 0, 220))
    stored = up.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise: 64 x 48
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate the stored picture 90 degrees clockwise
    stored.save(os.path.join(OUT, "exif", "rot6.jpg"), "JPEG", quality=95, exif=exif.tobytes())

    with open(os.path.join(OUT, "bad", "notes.txt"), "w") as f:
        f.write("not an image\n")
    with open(os.path.join(OUT, "bad", "fake.png"), "w") as f:
        f.write("this is text, not a PNG\n")
    buf = io.BytesIO()
    Image.frombytes("RGB", (40, 40), bytes((i * 7919) % 251 for i in range(40 * 40 * 3))).save(
        buf, "PNG")
    data = buf.getvalue()
    with open(os.path.join(OUT, "bad", "truncated.png"), "wb") as f:
        f.write(data[: int(len(data) * 0.6)])
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (9, 9, 9)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    # IHDR data starts at 16: width, height (big endian); CRC over type+data at 29
    struct.pack_into(">II", png, 16, 60000, 60000)
    crc = zlib.crc32(bytes(png[12:29])) & 0xFFFFFFFF
    struct.pack_into(">I", png, 29, crc)
    with open(os.path.join(OUT, "bad", "liar.png"), "wb") as f:
        f.write(bytes(png))


if __name__ == "__main__":
    main()
