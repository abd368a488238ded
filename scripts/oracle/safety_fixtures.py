"""Safety checker fixtures for ti-sample (diffusers 0.27.2 StableDiffusionSafetyChecker,
transformers 4.40.2 CLIPConfig).

Writes
  tests/fixtures/keys/safety-checker-l14.tsv   every state_dict key of the full-size checker
      (CLIP ViT-L/14 vision tower as CompVis/stable-diffusion-safety-checker configures it:
      image 224, patch 14, width 1024, 24 layers, 16 heads, MLP 4096, projection 768), its shape
      and dtype, from a randomly initialised model (nothing is downloaded).
  tests/fixtures/safety_checker_tiny_all/{config.json,model.safetensors}
  tests/fixtures/safety_checker_tiny_none/{config.json,model.safetensors}
      the tiny checker of clip_vision.py (tests/fixtures/safety_checker_tiny.safetensors, loaded
      unchanged) saved as diffusers' save_pretrained writes a checker folder, with every concept
      threshold set to -2.5 ("all": cos >= -1, so every image is flagged whatever it shows) or
      every concept and special-care threshold set to +2.5 ("none": no image is flagged).
      The script checks both decisions with diffusers' forward on random inputs.

With --full DIR it writes only the full-size checker with random weights to DIR (config.json +
model.safetensors, 1.2 GB; never committed: the slow test test_safety_fullsize writes it to a
temporary folder, and docs/PERF.md's timing used it).

Usage: /opt/oracle-venv/bin/python scripts/oracle/safety_fixtures.py [--full DIR]

"""
import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import FIX  # noqa: E402

# models.py makes float64 the default; the checker is float32, as the released file
torch.set_default_dtype(torch.float32)


def l14_config():
    from transformers import CLIPConfig
    vision = dict(image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096,
                  num_hidden_layers=24, num_attention_heads=16, hidden_act="quick_gelu",
                  layer_norm_eps=1e-5, num_channels=3)
    text = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, max_position_embeddings=77)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=768)


def tiny_config():
    from transformers import CLIPConfig
    vision = dict(image_size=28, patch_size=7, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, hidden_act="quick_gelu",
                  layer_norm_eps=1e-5, num_channels=3)
    text = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=4, max_position_embeddings=16)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)


def write_keys(m, path, title):
    with open(path, "w") as f:
        f.write("# %s\n" % title)
        f.write("# key\tshape\tdtype (as constructed by diffusers' StableDiffusionSafetyChecker; "
                "the released file also stores vision_model.vision_model.embeddings.position_ids)"
                "\n")
        for k, v in m.state_dict().items():
            f.write("%s\t%s\t%s\n" % (k, "x".join(str(s) for s in v.shape),
                                      str(v.dtype).replace("torch.", "")))


def tiny_variant(name, concept_thr, special_thr):
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from safetensors.torch import load_file
    m = StableDiffusionSafetyChecker(tiny_config()).eval()
    sd = load_file(os.path.join(FIX, "safety_checker_tiny.safetensors"))
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing,
                                                                                 unexpected)
    with torch.no_grad():
        if concept_thr is not None:
            m.concept_embeds_weights.fill_(concept_thr)
        if special_thr is not None:
            m.special_care_embeds_weights.fill_(special_thr)
        g = torch.Generator().manual_seed(21)
        _, flags = m(clip_input=torch.randn(4, 3, 28, 28, generator=g),
                     images=np.ones((4, 4, 4, 3)))
    want = name == "all"
    assert all(bool(f) == want for f in flags), flags
    out = os.path.join(FIX, "safety_checker_tiny_" + name)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        m.save_pretrained(d, safe_serialization=True)
        for f in ("config.json", "model.safetensors"):
            shutil.copyfile(os.path.join(d, f), os.path.join(out, f))
    print("wrote", out)


def flat_variants():
    """Checkers whose thresholds sit next to the cosines of ti-sample's output with the flat test
    model (tests/test_ti_sample_safety.c: the VAE's last conv zeroed, biases -0.2, 0.1, 0.3):
    txt2img's numpy_to_pil gives the flat image (102, 140, 166) (float32 (x + 1) / 2 * 255,
    rounded), which the feature extractor (here at the tiny checker's 28) turns into the input.
      flat_adjust: special concept 0 at its cosine - 0.004 (special care: adjustment 0.01) and
                   concept 0 at its cosine + 0.006: score round(-0.006 + 0.01, 3) = 0.004,
                   flagged only through the adjustment;
      flat_pass:   the same concept threshold, special thresholds far above: score -0.006, not
                   flagged.
    Every other threshold is 0.5 above its cosine. diffusers' forward confirms each decision."""
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker, cosine_distance)
    from PIL import Image
    from safetensors.torch import load_file
    from transformers import CLIPImageProcessor
    img = np.zeros((1, 64, 64, 3), np.float32)
    img[...] = (np.array([-0.2, 0.1, 0.3], np.float32) + np.float32(1)) / np.float32(2)
    u8 = (img * 255).round().astype("uint8")
    assert tuple(u8[0, 0, 0]) == (102, 140, 166), u8[0, 0, 0]
    proc = CLIPImageProcessor(do_resize=True, size=28, resample=3, do_center_crop=True,
                              crop_size=28, do_rescale=True, rescale_factor=1 / 255,
                              do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711])
    pv = proc(Image.fromarray(u8[0]), return_tensors="pt").pixel_values
    m = StableDiffusionSafetyChecker(tiny_config()).eval()
    m.load_state_dict(load_file(os.path.join(FIX, "safety_checker_tiny.safetensors")),
                      strict=False)
    with torch.no_grad():
        emb = m.visual_projection(m.vision_model(pv)[1])
        cs = cosine_distance(emb, m.special_care_embeds)[0].float().numpy()
        cc = cosine_distance(emb, m.concept_embeds)[0].float().numpy()
    for name, special0, want in (("flat_adjust", cs[0] - 0.004, True),
                                 ("flat_pass", cs[0] + 0.5, False)):
        with torch.no_grad():
            ts = cs + 0.5
            ts[0] = special0
            tc = cc + 0.5
            tc[0] = cc[0] + 0.006
            m.special_care_embeds_weights.copy_(torch.from_numpy(ts))
            m.concept_embeds_weights.copy_(torch.from_numpy(tc))
            _, flags = m(clip_input=pv, images=img.copy())
        assert bool(flags[0]) == want, (name, flags)
        out = os.path.join(FIX, "safety_checker_tiny_" + name)
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryDirectory() as d:
            m.save_pretrained(d, safe_serialization=True)
            for f in ("config.json", "model.safetensors"):
                shutil.copyfile(os.path.join(d, f), os.path.join(out, f))
        print("wrote", out, "flagged" if want else "not flagged")


def main():
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from diffusers.utils import logging as dlog
    dlog.set_verbosity_error()
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", help="also write the full-size random checker to this folder")
    a = ap.parse_args()
    torch.manual_seed(0)
    m = StableDiffusionSafetyChecker(l14_config()).eval()
    if a.full:
        m.save_pretrained(a.full, safe_serialization=True)
        print("wrote", a.full)
        return
    tiny_variant("all", -2.5, None)
    tiny_variant("none", 2.5, 2.5)
    flat_variants()
    write_keys(m, os.path.join(FIX, "keys", "safety-checker-l14.tsv"),
               "StableDiffusionSafetyChecker (CLIP ViT-L/14 vision tower, projection 768), "
               "the checker's own file (prefix none)")


if __name__ == "__main__":
    main()
