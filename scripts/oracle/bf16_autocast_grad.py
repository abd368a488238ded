"""The reference's own bf16 error on a textual-inversion step's embedding gradient: the figure
that issue 10's goal ("the embedding gradient of a TI step in bf16 within 2e-2 relative of f32")
is judged beside. Prints, for the tiny models of tests/test_train_bf16.c, the rows gradient of
one step computed by the reference repository's modules (rinongal/textual_inversion, read-only
at /work/ref/rinongal+textual_inversion; the same classes as scripts/oracle/train_step.py) in
float32 and under torch.autocast("cpu", dtype=torch.bfloat16), the way mixed-precision training
runs: float32 weights; convolutions, linear layers and matmuls in bf16 with bf16 outputs; group
norm, layer norm and softmax in float32, as CUDA's autocast runs them. Autocast covers the UNet,
as ti's bf16 path does (the text encoder too with --text-bf16); the frozen first stage encodes in
float32 in both runs. Prints |g_bf16 - g_f32| / |g_f32| per draw and its rms over the draws.
Nothing is written: this measures, it makes no fixture.

Draw k: images uniform in [-1, 1], posterior eps and noise standard normal from a generator
seeded 1000 + k, timesteps (137 + 97k, 811 + 331k) mod 1000 (test_train_bf16's timesteps; its
images and noise come from another generator, so single draws are not paired, only the spread).

Usage: /opt/oracle-venv/bin/python scripts/oracle/bf16_autocast_grad.py [--text-bf16] [DRAWS]
       [path/to/test_train_step]   (DRAWS default 12; test_train_step --export writes the tiny
       models' random weights, ti_ldm_randomize(4242), as in test_train_bf16)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step as ts  # noqa: E402  (sets up the reference's imports)

from ldm.modules.diffusionmodules.util import extract_into_tensor, make_beta_schedule  # noqa: E402
from ldm.modules.distributions.distributions import DiagonalGaussianDistribution  # noqa: E402
from ldm.modules.embedding_manager import EmbeddingManager  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

# train_step.py runs the reference in float64 and patches two float32 details for that; here the
# reference runs as it ships: undo both
ts.dmutil.GroupNorm32.forward = lambda self, x: torch.nn.GroupNorm.forward(
    self, x.float()).type(x.dtype)
ts.openaimodel.timestep_embedding = ts._orig_te

# torch's CPU autocast (1.13) leaves group norm, layer norm and softmax out of its float32 list,
# where CUDA's autocast (the one mixed-precision training runs under) computes them in float32 with
# a float32 output; these three make the CPU run follow CUDA's policy
_F = torch.nn.functional
torch.nn.GroupNorm.forward = lambda self, x: _F.group_norm(
    x.float(), self.num_groups, self.weight, self.bias, self.eps)
torch.nn.LayerNorm.forward = lambda self, x: _F.layer_norm(
    x.float(), self.normalized_shape, self.weight, self.bias, self.eps)
_softmax = torch.Tensor.softmax
torch.Tensor.softmax = lambda self, *a, **k: _softmax(self.float(), *a, **k)


def build(cfg_path, weights, tmp, clip):
    cfg = OmegaConf.load(cfg_path)
    sd = {k: v.float() for k, v in load_file(weights).items()}
    mp = cfg.model.params
    up = OmegaConf.to_container(mp.unet_config.params)
    up["use_checkpoint"] = False
    unet = ts.openaimodel.UNetModel(**up)
    ts.load_prefix(unet, sd, "model.diffusion_model.")
    dd = OmegaConf.to_container(mp.first_stage_config.params.ddconfig)
    encoder = ts.Encoder(**dd)
    ts.load_prefix(encoder, sd, "first_stage_model.encoder.")
    ed = mp.first_stage_config.params.embed_dim
    quant_conv = torch.nn.Conv2d(2 * dd["z_channels"], 2 * ed, 1)
    ts.load_prefix(quant_conv, sd, "first_stage_model.quant_conv.")
    text = ts.text_encoder(cfg, sd, tmp, clip).float()
    mods = [m.float().eval() for m in (unet, encoder, quant_conv)] + [text]
    for m in mods:
        m.requires_grad_(False)
    return cfg, mods, ed


def rows_grad(cfg, mods, ed, k, bf16, clip, text_bf16=False):
    unet, encoder, quant_conv, text = mods
    mp = cfg.model.params
    em = EmbeddingManager(text, placeholder_strings=["*"], initializer_words=["sculpture"],
                          num_vectors_per_token=1, progressive_words=False)
    param = em.string_to_param_dict["*"]
    g = torch.Generator().manual_seed(1000 + k)
    B, S = 2, 64
    h = S // 8
    images = torch.rand(B, 3, S, S, generator=g) * 2 - 1
    post_eps = torch.randn(B, ed, h, h, generator=g)
    noise = torch.randn(B, ed, h, h, generator=g)
    t = torch.tensor([(137 + 97 * k) % 1000, (811 + 331 * k) % 1000])
    betas = make_beta_schedule("linear", mp.timesteps, linear_start=mp.linear_start,
                               linear_end=mp.linear_end)
    ac = np.cumprod(1.0 - betas, axis=0)
    sqrt_ac = torch.tensor(np.sqrt(ac), dtype=torch.float32)
    sqrt_1m = torch.tensor(np.sqrt(1.0 - ac), dtype=torch.float32)
    captions = ["a photo of *", "a rendition of the *"] if clip else \
        ["a painting in the style of *", "* next to a *"]
    with torch.no_grad():  # encode_first_stage, float32 in both (as ti's bf16 path runs it)
        post = DiagonalGaussianDistribution(quant_conv(encoder(images)))
        z = mp.scale_factor * (post.mean + post.std * post_eps)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and text_bf16):
        c = text.encode(captions, embedding_manager=em)
    x_noisy = (extract_into_tensor(sqrt_ac, t, z.shape) * z +
               extract_into_tensor(sqrt_1m, t, z.shape) * noise)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = unet(x_noisy, t, context=c.float())
    loss = ((noise - out.float()) ** 2).mean(dim=[1, 2, 3]).mean()
    loss.backward()
    return param.grad.detach().double().clone(), loss.item()


def main():
    args = sys.argv[1:]
    text_bf16 = "--text-bf16" in args
    args = [a for a in args if a != "--text-bf16"]
    draws = int(args[0]) if args else 12
    binary = args[1] if len(args) > 1 else os.path.join(ts.ROOT, "build", "tests",
                                                        "test_train_step")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([binary, "--export", tmp], check=True, cwd=ts.ROOT,
                       stdout=subprocess.DEVNULL)
        ts.build_clip_files(tmp)
        tiny = os.path.join(ts.ROOT, "configs", "tiny")
        models = [
            ("LDM tiny, random weights", os.path.join(tiny, "ldm-tiny-finetune.yaml"),
             os.path.join(tmp, "train_step_ldm.safetensors"), False),
            ("SD tiny, random weights", os.path.join(tiny, "sd-tiny-finetune.yaml"),
             os.path.join(tmp, "train_step_sd.safetensors"), True),
            ("SD tiny, trained (models/tiny-sd)", os.path.join(ts.ROOT, "models", "tiny-sd",
                                                               "config.yaml"),
             os.path.join(ts.ROOT, "models", "tiny-sd", "model.safetensors"), True),
        ]
        print("reference modules, torch %s: rows gradient, bf16 autocast (%s) against float32, "
              "|g_bf16 - g_f32| / |g_f32|, draws 0-%d" % (
                  torch.__version__, "text encoder and UNet" if text_bf16 else "UNet", draws - 1))
        for name, cfg_path, weights, clip in models:
            cfg, mods, ed = build(cfg_path, weights, tmp, clip)
            errs, lerrs = [], []
            for k in range(draws):
                g32, l32 = rows_grad(cfg, mods, ed, k, False, clip)
                g16, l16 = rows_grad(cfg, mods, ed, k, True, clip, text_bf16)
                errs.append(((g16 - g32).norm() / g32.norm()).item())
                lerrs.append(abs(l16 - l32) / abs(l32))
            e = np.array(errs)
            print("%-36s %s  rms %.2e  (range %.2e-%.2e; loss rms %.2e)" % (
                name, " ".join("%.2e" % x for x in e), np.sqrt((e ** 2).mean()), e.min(), e.max(),
                np.sqrt((np.array(lerrs) ** 2).mean())))


if __name__ == "__main__":
    main()
