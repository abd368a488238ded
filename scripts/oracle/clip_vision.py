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

Usage: /opt/oracle-venv/bin/python scripts/oracle/clip_vision.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import FIX, randomize, write  # noqa: E402


def main():
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker, cosine_distance)
    from transformers import CLIPConfig
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
    g = torch.Generator().manual_seed(13)
    pixels = torch.randn(2, 3, 28, 28, generator=g)
    with torch.no_grad():
        out = m.vision_model(pixels)
        hidden, pooled = out.last_hidden_state, out.pooler_output
        embeds = m.visual_projection(pooled)
        cos = cosine_distance(embeds, m.concept_embeds)
        special = cosine_distance(embeds, m.special_care_embeds)
    weights = {k: v for k, v in m.state_dict().items() if not k.endswith("position_ids")}
    write(os.path.join(FIX, "model_clip_vision.h5"), weights,
          dict(pixels=pixels, hidden=hidden, pooled=pooled, embeds=embeds, cos_dist=cos,
               special_cos_dist=special),
          dict(hparams="image 28, patch 7, width 32, layers 2, heads 4 x 8, ff 64, proj 16"))


if __name__ == "__main__":
    main()
