"""Writes tests/fixtures/sampler.h5: the reference's own DDIMSampler / PLMSSampler
(CompVis/stable-diffusion, imported from /work/ref/CompVis+stable-diffusion, never copied) run on
a tiny UNet + KL VAE of the configs/tiny/sd-tiny-finetune.yaml shapes, float32 on the CPU, and
every intermediate latent.

Weights: no file is stored. Every parameter is a function of its checkpoint key and index that
the C test computes too (tests/test_sampler.c, weight_value):
    h = (i * 0x9E3779B1 + fnv1a32(key)) mod 2^32, then murmur3's fmix32; v = 2 h / 2^32 - 1
    weight with ndim >= 2: v * sqrt(3 / fan_in); 1-d norm weight: 1 + 0.1 v; other 1-d: 0.1 v
(float64, then rounded to float32). The fixture lists the keys it set (attribute keys of group weights).

Noise convention (ti-sample's shareable seeds): image b has its own generator
torch.Generator("cpu").manual_seed(seed + b); x_T = torch.randn([C, h, w], generator); DDIM's eta
noise is that generator's next torch.randn([C, h, w]) at every step (the reference's noise_like is
replaced by these draws); img2img: the first draw is the VAE posterior sample's noise, the second
the forward (stochastic_encode) noise. Conditioning: random (B, 77, 32) tensors, stored.

Groups: schedule/ (betas, alphas_cumprod as the model keeps them; DDIM parameters for several
step counts and eta 0.5, from DDIMSampler.make_schedule itself), and one group per case with
cond, uncond, x_T, x_inter (steps, B, C, h, w: the latent after each step), pred_x0, x_0 and the
decoded 8-bit images (B, H, W, 3) the reference txt2img script would save.

Usage: /opt/oracle-venv/bin/python scripts/oracle/sampler_fixtures.py
"""
import os
import sys

import h5py
import numpy as np
import torch

REF = "/work/ref/CompVis+stable-diffusion"
sys.path.insert(0, REF)
from ldm.models.diffusion import ddim as ddim_mod  # noqa: E402
from ldm.models.diffusion import plms as plms_mod  # noqa: E402
from ldm.models.diffusion.ddim import DDIMSampler  # noqa: E402
from ldm.models.diffusion.plms import PLMSSampler  # noqa: E402
from ldm.modules.diffusionmodules.model import Decoder, Encoder  # noqa: E402
from ldm.modules.diffusionmodules.openaimodel import UNetModel  # noqa: E402
from ldm.modules.diffusionmodules.util import make_beta_schedule  # noqa: E402
from ldm.modules.distributions.distributions import DiagonalGaussianDistribution  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "sampler.h5")
torch.set_num_threads(1)

UNET = dict(image_size=8, in_channels=4, out_channels=4, model_channels=32,
            attention_resolutions=[2], num_res_blocks=1, channel_mult=[1, 2], num_heads=2,
            use_spatial_transformer=True, transformer_depth=1, context_dim=32,
            use_checkpoint=False, legacy=False)
DDCONFIG = dict(double_z=True, z_channels=4, resolution=64, in_channels=3, out_ch=3, ch=32,
                ch_mult=[1, 2, 2, 2], num_res_blocks=1, attn_resolutions=[], dropout=0.0)
SCALE_FACTOR = 0.18215


def fnv1a32(s):
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def weight_values(key, shape):
    n = int(np.prod(shape))
    M = np.uint64(0xFFFFFFFF)
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B1) + np.uint64(fnv1a32(key))) & M
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & M
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & M
    h ^= h >> np.uint64(16)
    v = 2.0 * h.astype(np.float64) / 4294967296.0 - 1.0
    if len(shape) >= 2:
        fan_in = n // shape[0]
        v = v * np.sqrt(3.0 / fan_in)
    elif key.endswith("weight") and "norm" in key:
        v = 1.0 + 0.1 * v
    else:
        v = 0.1 * v
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def fill(module, prefix, keys):
    sd = module.state_dict()
    for k, t in sd.items():
        full = prefix + k
        t.copy_(weight_values(full, tuple(t.shape)))
        keys.append(full)


class TinyVAE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder(**DDCONFIG)
        self.decoder = Decoder(**DDCONFIG)
        self.quant_conv = torch.nn.Conv2d(8, 8, 1)
        self.post_quant_conv = torch.nn.Conv2d(4, 4, 1)

    def encode(self, x):
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


class TinyLDM:
    """What DDIMSampler / PLMSSampler read from LatentDiffusion (ddpm.py register_schedule)."""

    def __init__(self, unet):
        self.unet = unet
        self.num_timesteps = 1000
        betas = make_beta_schedule("linear", 1000, linear_start=0.00085, linear_end=0.0120)
        alphas = 1. - betas
        alphas_cumprod = np.cumprod(alphas, axis=0)
        alphas_cumprod_prev = np.append(1., alphas_cumprod[:-1])
        to_torch = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
        self.betas_f64 = betas
        self.alphas_cumprod_f64 = alphas_cumprod
        self.betas = to_torch(betas)
        self.alphas_cumprod = to_torch(alphas_cumprod)
        self.alphas_cumprod_prev = to_torch(alphas_cumprod_prev)
        self.device = torch.device("cpu")

    def apply_model(self, x, t, c):
        return self.unet(x, t, context=c)


def no_cuda_register_buffer(self, name, attr):
    setattr(self, name, attr)


DDIMSampler.register_buffer = no_cuda_register_buffer
PLMSSampler.register_buffer = no_cuda_register_buffer


class Recorder:
    def __init__(self, gens):
        self.gens = gens
        self.x, self.pred = [], []

    def noise_like(self, shape, device, repeat=False):
        assert not repeat
        return torch.stack([torch.randn(list(shape[1:]), generator=g) for g in self.gens])


def install(rec):
    ddim_mod.noise_like = rec.noise_like
    plms_mod.noise_like = rec.noise_like
    orig_ddim = DDIMSampler.p_sample_ddim
    orig_plms = PLMSSampler.p_sample_plms

    def p_ddim(self, *a, **k):
        out = orig_ddim(self, *a, **k)
        rec.x.append(out[0].clone())
        rec.pred.append(out[1].clone())
        return out

    def p_plms(self, *a, **k):
        out = orig_plms(self, *a, **k)
        rec.x.append(out[0].clone())
        rec.pred.append(out[1].clone())
        return out

    DDIMSampler.p_sample_ddim = p_ddim
    PLMSSampler.p_sample_plms = p_plms
    return orig_ddim, orig_plms


def uninstall(orig):
    DDIMSampler.p_sample_ddim, PLMSSampler.p_sample_plms = orig


def to_images(vae, z):
    x = vae.decode(1. / SCALE_FACTOR * z)
    x = torch.clamp((x + 1.0) / 2.0, min=0.0, max=1.0)
    out = []
    for s in x:
        a = 255. * s.cpu().numpy().transpose(1, 2, 0)
        out.append(a.astype(np.uint8))
    return np.stack(out)


def run_case(f, name, model, vae, *, B, h, w, seed, steps, scale, eta=0.0, plms=False,
             init=None, strength=None):
    gens = [torch.Generator("cpu").manual_seed(seed + b) for b in range(B)]
    cg = torch.Generator("cpu").manual_seed(1000 + seed)
    cond = torch.randn(B, 77, 32, generator=cg)
    uncond = torch.randn(B, 77, 32, generator=cg)
    rec = Recorder(gens)
    orig = install(rec)
    g = f.create_group(name)
    try:
        with torch.no_grad():
            if init is None:
                x_T = torch.stack([torch.randn([4, h, w], generator=gg) for gg in gens])
                sampler = PLMSSampler(model) if plms else DDIMSampler(model)
                samples, _ = sampler.sample(S=steps, batch_size=B, shape=[4, h, w],
                                            conditioning=cond, verbose=False, x_T=x_T,
                                            unconditional_guidance_scale=scale,
                                            unconditional_conditioning=uncond, eta=eta)
                g.create_dataset("x_T", data=x_T.numpy())
            else:
                # scripts/img2img.py with the noise convention above
                img = torch.from_numpy(init.astype(np.float32) / 255.0)[None].permute(0, 3, 1, 2)
                img = 2. * img - 1.
                img = img.repeat(B, 1, 1, 1)
                post = vae.encode(img)
                eps_post = torch.stack([torch.randn([4, h, w], generator=gg) for gg in gens])
                z0 = SCALE_FACTOR * (post.mean + post.std * eps_post)
                sampler = DDIMSampler(model)
                sampler.make_schedule(ddim_num_steps=steps, ddim_eta=eta, verbose=False)
                t_enc = int(strength * steps)
                noise = torch.stack([torch.randn([4, h, w], generator=gg) for gg in gens])
                n = sampler.ddim_timesteps.shape[0]
                if t_enc < n:
                    z_enc = sampler.stochastic_encode(z0, torch.tensor([t_enc] * B), noise=noise)
                else:  # the reference's index error: ti starts from the noise, every step
                    z_enc = noise
                samples = sampler.decode(z_enc, cond, t_enc, unconditional_guidance_scale=scale,
                                         unconditional_conditioning=uncond)
                g.create_dataset("init", data=init)
                g.create_dataset("z0", data=z0.numpy())
                g.create_dataset("z_enc", data=z_enc.numpy())
                g.attrs["strength"] = strength
                g.attrs["t_enc"] = t_enc
            images = to_images(vae, samples)
    finally:
        uninstall(orig)
    g.attrs.update(dict(B=B, h=h, w=w, seed=seed, steps=steps, scale=scale, eta=eta,
                        plms=int(plms), n_steps=len(rec.x)))
    g.create_dataset("cond", data=cond.numpy())
    g.create_dataset("uncond", data=uncond.numpy())
    g.create_dataset("x_inter", data=torch.stack(rec.x).numpy())
    g.create_dataset("pred_x0", data=torch.stack(rec.pred).numpy())
    g.create_dataset("x_0", data=samples.numpy())
    g.create_dataset("images", data=images)
    print(name, "steps", len(rec.x), "x_0 std %.4f" % samples.std().item())


def main():
    torch.manual_seed(0)
    unet = UNetModel(**UNET).eval()
    vae = TinyVAE().eval()
    keys = []
    fill(unet, "model.diffusion_model.", keys)
    fill(vae, "first_stage_model.", keys)
    model = TinyLDM(unet)
    with h5py.File(OUT, "w") as f:
        f.create_group("weights").attrs["keys"] = np.bytes_("\n".join(keys) + "\n")
        s = f.create_group("schedule")
        s.create_dataset("betas", data=model.betas_f64)
        s.create_dataset("alphas_cumprod", data=model.alphas_cumprod_f64)
        s.create_dataset("alphas_cumprod_f32", data=model.alphas_cumprod.numpy())
        for steps in (1, 6, 10, 50, 100, 250, 500):
            d = DDIMSampler(model)
            d.make_schedule(ddim_num_steps=steps, ddim_eta=0.5, verbose=False)
            gs = s.create_group("ddim_%d" % steps)
            gs.create_dataset("timesteps", data=np.asarray(d.ddim_timesteps, dtype=np.int64))
            gs.create_dataset("alphas", data=np.asarray(d.ddim_alphas, dtype=np.float32))
            # p_sample_ddim reads them through torch.full(..., value): float32
            gs.create_dataset("alphas_prev", data=np.array(
                [torch.full((1,), float(v)).item() for v in d.ddim_alphas_prev], dtype=np.float32))
            gs.create_dataset("sigmas", data=np.array(
                [torch.full((1,), d.ddim_sigmas[i]).item() for i in range(len(d.ddim_timesteps))],
                dtype=np.float32))
            gs.create_dataset("sqrt_one_minus_alphas",
                              data=np.asarray(d.ddim_sqrt_one_minus_alphas, dtype=np.float32))
        run_case(f, "ddim_cfg", model, vae, B=2, h=8, w=8, seed=42, steps=10, scale=7.5)
        run_case(f, "ddim_nocfg", model, vae, B=1, h=8, w=12, seed=7, steps=6, scale=1.0)
        run_case(f, "ddim_eta", model, vae, B=2, h=8, w=8, seed=3, steps=8, scale=3.0, eta=0.5)
        run_case(f, "plms_cfg", model, vae, B=2, h=8, w=8, seed=11, steps=10, scale=7.5, plms=True)
        rng = np.random.default_rng(5)
        yy, xx = np.mgrid[0:64, 0:96]
        init = np.stack([(xx * 2.5) % 256, (yy * 3.7) % 256, (xx + yy) % 256], -1)
        init = np.clip(init + rng.integers(-20, 21, init.shape), 0, 255).astype(np.uint8)
        run_case(f, "img2img", model, vae, B=2, h=8, w=12, seed=21, steps=10, scale=5.0,
                 init=init, strength=0.6)
        run_case(f, "img2img_full", model, vae, B=1, h=8, w=12, seed=22, steps=10, scale=5.0,
                 init=init, strength=1.0)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
