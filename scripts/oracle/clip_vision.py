"""Writes tests/fixtures/model_clip_vision.h5: the safety checker's CLIP vision tower on a tiny
random configuration, float64.

The module is diffusers' StableDiffusionSafetyChecker (0.27.2), i.e. transformers'
CLIPVisionModel (4.40.2) + visual_projection, built from a tiny CLIPConfig (image 28, patch 7:
16 patches + the class token; width 32, 2 layers, 4 heads x 8, MLP 64, quick-GELU, LayerNorm eps
1e-5, projection 16), with random weights (models.randomize) stored under the checker's own
checkpoint keys (vision_model.vision_model.*, visual_projection.weight, concept_embeds, ...).

Datasets: pixels (2, 3, 28, 28); hidden = last_hidden_state (before post_layernorm), pooled =
pooler_output, embeds = visual_projection(pooled); cos_dist (2, 17) and special_cos_dist (2, 3),
the checker's cosine similarities to its concept embeddings (computed in float64 here; the
checker itself rounds them to float32 before its decision).

Also writes tests/fixtures/safety_checker_tiny.safetensors: the same checker (float32, with its
stored thresholds) as diffusers' save_pretrained writes it.

Usage: /opt/oracle-venv/bin/python scripts/oracle/clip_vision.py
"""
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import FIX, randomize, write  # noqa: E402


def main():
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker, cosine_distance)
    from diffusers.utils import logging as dlog
    from transformers import CLIPConfig
    dlog.set_verbosity_error()  # the checker warns on every flagged batch
    vision = dict(image_size=28, patch_size=7, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, hidden_act="quick_gelu",
                  layer_norm_eps=1e-5, num_channels=3)
    text = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=4, max_position_embeddings=16)
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    m = StableDiffusionSafetyChecker(cfg).double().eval()
    randomize(m, 11, std=0.5)
    with torch.no_grad():  # a class token and positions of the same scale as the patches
        emb = m.vision_model.vision_model.embeddings
        g0 = torch.Generator().manual_seed(12)
        emb.class_embedding.copy_(torch.randn(emb.class_embedding.shape, generator=g0).float())
        emb.position_embedding.weight.copy_(
            0.5 * torch.randn(emb.position_embedding.weight.shape, generator=g0).float())
    saved_s = m.special_care_embeds_weights.detach().clone()
    saved_c = m.concept_embeds_weights.detach().clone()
    g = torch.Generator().manual_seed(13)
    pixels = torch.randn(2, 3, 28, 28, generator=g)
    with torch.no_grad():
        out = m.vision_model(pixels)
        hidden, pooled = out.last_hidden_state, out.pooler_output
        embeds = m.visual_projection(pooled)
        cos = cosine_distance(embeds, m.concept_embeds)
        special = cosine_distance(embeds, m.special_care_embeds)
    # The checker's decision (diffusers' forward, its own rounding and adjustment rule) under
    # 64 threshold sets drawn near the images' cosines (float32 values, as stored), so that
    # flags, special care and the 0.01 adjustment all occur.
    rng = np.random.default_rng(14)
    K = 64
    thr_s = np.zeros((K, 3), np.float32)
    thr_c = np.zeros((K, 17), np.float32)
    nsfw = np.zeros((K, 2))
    cs, cc = special.float().numpy(), cos.float().numpy()
    for k in range(K):
        # special care for one image or both, often; concepts above both images' cosines
        # (flagged only through the 0.01 adjustment when within it), and 0-2 concepts near one
        # image's cosine (flagged or not, by the rounding to 3 decimals)
        thr_s[k] = cs[rng.integers(0, 2, 3), np.arange(3)] + rng.uniform(-0.004, 0.012, 3)
        thr_c[k] = cc.max(0) + rng.uniform(0.0005, 0.15, 17)
        for c in rng.choice(17, rng.integers(0, 3), replace=False):
            thr_c[k, c] = cc[rng.integers(0, 2), c] + rng.uniform(-0.003, 0.003)
        with torch.no_grad():
            m.special_care_embeds_weights.copy_(torch.from_numpy(thr_s[k]).double())
            m.concept_embeds_weights.copy_(torch.from_numpy(thr_c[k]).double())
            _, flags = m(clip_input=pixels, images=np.ones((2, 4, 4, 3)))
        nsfw[k] = flags
    # the thresholds go back to the stored (randomized) values before the weights are written
    with torch.no_grad():
        m.special_care_embeds_weights.copy_(saved_s)
        m.concept_embeds_weights.copy_(saved_c)
    print("decision cases: %d of %d images flagged" % (nsfw.sum(), nsfw.size))
    # the same checker as diffusers saves it (float32 safetensors, its own key names)
    with tempfile.TemporaryDirectory() as d:
        m.float().save_pretrained(d, safe_serialization=True)
        shutil.copyfile(os.path.join(d, "model.safetensors"),
                        os.path.join(FIX, "safety_checker_tiny.safetensors"))
        m.double()
    weights = {k: v for k, v in m.state_dict().items() if not k.endswith("position_ids")}
    write(os.path.join(FIX, "model_clip_vision.h5"), weights,
          dict(pixels=pixels, hidden=hidden, pooled=pooled, embeds=embeds, cos_dist=cos,
               special_cos_dist=special, thr_special=thr_s.astype(np.float64),
               thr_concept=thr_c.astype(np.float64), nsfw=nsfw),
          dict(hparams="image 28, patch 7, width 32, layers 2, heads 4 x 8, ff 64, proj 16"))


if __name__ == "__main__":
    main()
