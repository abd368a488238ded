"""Writes tests/fixtures/clip_preprocess.h5: the safety checker's input preparation in the
reference txt2img script.

  numpy_to_pil: the reference script's own expression on a float image, after the decoder
      step x = clamp((x + 1) / 2, 0, 1) (torch, float32): (x * 255).round().astype(uint8).
      Datasets np2pil_in (3, 16, 24) float32 in [-1.2, 1.2] with many values at .5 boundaries,
      np2pil_out (16, 24, 3) uint8.
  CLIPFeatureExtractor (transformers 4.40.2 CLIPImageProcessor with the checker's
      preprocessor_config.json: size 224 shortest edge, bicubic, center crop 224, CLIP mean/std):
      for each case <name>: <name>_in (h, w, 3) uint8 and <name>_crop (224, 224, 3), the
      processor's resized and cropped image (run with do_rescale/do_normalize off); and
      norm_table (3, 256) float32, the processor's rescale + normalize of every byte value.
      The script asserts that the full processor output equals norm_table applied to the crop,
      so a C output can be checked exactly against norm_table[crop] without storing 224x224
      floats per case.

Usage: /opt/oracle-venv/bin/python scripts/oracle/clip_preprocess.py
"""
import os

import h5py
import numpy as np
import torch
from transformers import CLIPImageProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "clip_preprocess.h5")
CFG = dict(do_resize=True, size=224, resample=3, do_center_crop=True, crop_size=224,
           do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
           image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)


def image(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([128 + 90 * np.sin(x / 13.0 + seed) * np.cos(y / 17.0),
                     120 + 80 * np.sin((x - y) / 9.0),
                     100 + 100 * np.cos(x / 7.0 + y / 11.0)], -1)
    return np.clip(np.rint(base + rng.normal(0, 1, base.shape)), 0, 255).astype(np.uint8)


def main():
    full = CLIPImageProcessor(**CFG)
    crop_only = CLIPImageProcessor(**dict(CFG, do_normalize=False, do_rescale=False))
    norm_only = CLIPImageProcessor(**dict(CFG, do_resize=False, do_center_crop=False))
    ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    table = norm_only(ramp, return_tensors="np", input_data_format="channels_last")
    table = table.pixel_values[0].reshape(3, 256)  # (3, 256): value v at index v
    assert table.dtype == np.float32
    # down-sampling (square, and a wide image whose long side is cropped), up-sampling (a small
    # portrait image of odd size: 75x111 -> 224x331 (int(331.52)), odd crop offset 53)
    cases = {"square256": (256, 256), "port75x111": (111, 75), "wide300x150": (150, 300)}
    with h5py.File(OUT, "w") as f:
        f.attrs["generator"] = "scripts/oracle/clip_preprocess.py (transformers CLIPImageProcessor)"
        f.create_dataset("norm_table", data=table)
        names = []
        for i, (name, (h, w)) in enumerate(cases.items()):
            img = image(h, w, i)
            crop = crop_only(img, return_tensors="np", input_data_format="channels_last").pixel_values[0]  # (3, 224, 224) float
            assert np.array_equal(crop, np.rint(crop)) and crop.min() >= 0 and crop.max() <= 255
            crop = crop.astype(np.uint8).transpose(1, 2, 0)
            out = full(img, return_tensors="np", input_data_format="channels_last").pixel_values[0]
            want = np.stack([table[c][crop[:, :, c]] for c in range(3)])
            assert np.array_equal(out, want), name + ": processor != norm_table[crop]"
            f.create_dataset(name + "_in", data=img, compression="gzip")
            f.create_dataset(name + "_crop", data=crop, compression="gzip")
            names.append(name)
        f.attrs["cases"] = ",".join(names)
        # numpy_to_pil after the decoder's clamp, as scripts/txt2img.py check_safety runs it
        rng = np.random.default_rng(7)
        k = rng.integers(-60, 320, (3, 16, 24)).astype(np.float64) + 0.5  # x.5 * (1/255) steps
        chw = np.where(rng.random((3, 16, 24)) < 0.5, (k / 255.0) * 2 - 1,
                       rng.uniform(-1.2, 1.2, (3, 16, 24))).astype(np.float32)
        x = torch.clamp((torch.from_numpy(chw) + 1.0) / 2.0, min=0.0, max=1.0)
        x = x.permute(1, 2, 0).numpy()
        pil = (x * 255).round().astype("uint8")
        f.create_dataset("np2pil_in", data=chw)
        f.create_dataset("np2pil_out", data=pil)
    print("wrote %s (%d cases)" % (OUT, len(cases)))


if __name__ == "__main__":
    main()
