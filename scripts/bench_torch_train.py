"""PyTorch side of bench_train_step: one textual-inversion training step of SD v1 as the peer
(rinongal/textual_inversion, ti-peer.md section 5.3) computes it, on Debian's python3-torch with
random weights and no downloads, batch 1, 512x512 image (64x64 latent):

  1. frozen VAE encoder under torch.no_grad() (the peer's encode_first_stage), quant_conv,
     DiagonalGaussian posterior (logvar clamped to [-30, 20]), sample() * 0.18215;
  2. t = randint(0, 1000), noise = randn, x_t = sqrt(ab_t) z + sqrt(1 - ab_t) noise (float32
     buffers of the scaled-linear schedule);
  3. the CLIP ViT-L/14 text tower (HF CLIPTextModel's math: pre-LN, causal mask, quick-GELU,
     final LayerNorm) with the placeholder row written in place at the token embeddings, before
     the position embeddings (the peer's patched CLIPTextEmbeddings + EmbeddingManager);
  4. the SD UNet (scripts/torch_sd_unet.py, the CompVis UNetModel; the peer disables its gradient
     checkpointing) predicting eps, loss_simple = mean over C,H,W of (noise - eps)^2,
     loss = mean(loss_simple / exp(logvar_t) + logvar_t) with logvar = 0, loss_vlb computed too;
  5. loss.backward() (only the [1, 768] placeholder parameter requires a gradient), AdamW step
     (torch defaults: betas 0.9/0.999, eps 1e-8, weight decay 0.01), zero_grad.

Every other weight is frozen (requires_grad False, eval mode). The prompt "a photo of *" is
given as CLIP token ids (no tokenizer is installed here; tokenising is not part of the timed
work in any meaningful amount). Prints

  RESULT  train_step  torch  <latent>  <median_s>  <fastest_s>  <peak_rss_gib>  -  <note>

(median and fastest of --steps timed steps after one warm-up step; peak RSS of the process,
model construction included) and the parts' times on stderr.

Usage: python3 scripts/bench_torch_train.py [--latent 64] [--steps 3]
Run it with LD_PRELOAD=<libjemalloc.so.2> (scripts/bench.sh does).
"""
import argparse
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_sd_unet import UNet  # noqa: E402


# ---- first stage: AutoencoderKL kl-f8 encoder (sd-arch.md section 4) ------------------------------

def norm(c):
    return nn.GroupNorm(32, c, eps=1e-6)


class VaeRes(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class VaeAttn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = norm(c)
        self.q, self.k, self.v = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        hn = self.norm(x)
        q = self.q(hn).reshape(b, c, h * w).permute(0, 2, 1)
        k = self.k(hn).reshape(b, c, h * w)
        v = self.v(hn).reshape(b, c, h * w)
        p = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)
        o = torch.bmm(v, p.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(o)


class VaeDown(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class VaeEncoder(nn.Module):
    """Encoder + quant_conv: x (B, 3, H, W) in [-1, 1] -> moments (B, 8, H/8, W/8)."""

    def __init__(self, ch=128, mult=(1, 2, 4, 4), nrb=2, z=4):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        layers, cin = [], ch
        for i, m in enumerate(mult):
            for _ in range(nrb):
                layers.append(VaeRes(cin, ch * m))
                cin = ch * m
            if i != len(mult) - 1:
                layers.append(VaeDown(cin))
        self.down = nn.Sequential(*layers)
        self.mid = nn.Sequential(VaeRes(cin, cin), VaeAttn(cin), VaeRes(cin, cin))
        self.norm_out = norm(cin)
        self.conv_out = nn.Conv2d(cin, 2 * z, 3, padding=1)
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1)

    def forward(self, x):
        h = self.mid(self.down(self.conv_in(x)))
        return self.quant_conv(self.conv_out(F.silu(self.norm_out(h))))


# ---- CLIP ViT-L/14 text tower (sd-arch.md section 5.1) -------------------------------------------

class ClipLayer(nn.Module):
    def __init__(self, d=768, heads=12, ff=3072):
        super().__init__()
        self.heads = heads
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, h, mask):
        b, n, d = h.shape
        hd = d // self.heads

        def split(t):
            return t.reshape(b, n, self.heads, hd).transpose(1, 2).reshape(b * self.heads, n, hd)

        a = self.layer_norm1(h)
        q = split(self.q_proj(a) * hd ** -0.5)
        k, v = split(self.k_proj(a)), split(self.v_proj(a))
        p = torch.softmax(torch.bmm(q, k.transpose(1, 2)) + mask, dim=-1)
        o = torch.bmm(p, v).reshape(b, self.heads, n, hd).transpose(1, 2).reshape(b, n, d)
        h = h + self.out_proj(o)
        a = self.fc1(self.layer_norm2(h))
        return h + self.fc2(a * torch.sigmoid(1.702 * a))


class ClipText(nn.Module):
    def __init__(self, vocab=49408, n=77, d=768, layers=12):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d)
        self.position_embedding = nn.Embedding(n, d)
        self.layers = nn.ModuleList([ClipLayer(d) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, ids, placeholder_token, placeholder_param):
        emb = self.token_embedding(ids)
        # the peer's EmbeddingManager.forward (num_vectors_per_token 1): in-place write of the
        # parameter at every placeholder position, before the position embeddings
        emb[torch.where(ids == placeholder_token)] = placeholder_param
        n = ids.shape[1]
        h = emb + self.position_embedding(torch.arange(n)[None])
        mask = torch.full((n, n), float("-inf")).triu_(1)[None]
        for layer in self.layers:
            h = layer(h, mask)
        return self.final_layer_norm(h)


def allocator():
    """jemalloc when it is mapped into this process (LD_PRELOAD may name a missing file)."""
    try:
        with open("/proc/self/maps") as f:
            return "jemalloc" if "jemalloc" in f.read() else "glibc malloc"
    except OSError:
        return "unknown allocator"


# ---- the step -----------------------------------------------------------------------------------

def frozen(m):
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    if a.steps < 1 or a.latent < 8 or a.latent % 8:
        ap.error("--steps must be >= 1 and --latent a multiple of 8")
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(0)
    t0 = time.perf_counter()
    vae, clip, unet = frozen(VaeEncoder()), frozen(ClipText()), frozen(UNet())
    t_build = time.perf_counter() - t0

    # register_schedule: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000) ** 2 in float64,
    # buffers stored as float32
    betas = torch.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=torch.float64) ** 2
    ab = torch.cumprod(1.0 - betas, 0)
    sqrt_ab, sqrt_1m_ab = ab.sqrt().float(), (1.0 - ab).sqrt().float()
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    lvlb = (betas ** 2 / (2 * (betas * (1 - ab_prev) / (1 - ab)) * (1 - betas) * (1 - ab))).float()
    lvlb[0] = lvlb[1]
    logvar = torch.zeros(1000)

    # EmbeddingManager: "*" (token 265) initialised from "sculpture" (8757) + position 0
    placeholder = 265
    with torch.no_grad():
        init = clip.token_embedding.weight[8757] + clip.position_embedding.weight[0]
    param = nn.Parameter(init[None].clone())
    opt = torch.optim.AdamW([param], lr=0.01)

    ids = torch.full((1, 77), 49407, dtype=torch.long)
    ids[0, :5] = torch.tensor([49406, 320, 1125, 539, 265])  # <bos> a photo of *
    S = 8 * a.latent
    image = torch.rand(1, 3, S, S) * 2 - 1

    times, parts, cpu0 = [], [0.0, 0.0, 0.0, 0.0], 0.0
    for s in range(a.steps + 1):  # step 0 warms up
        if s == 1:
            cpu0 = time.process_time()
        t_a = time.perf_counter()
        with torch.no_grad():  # encode_first_stage is @torch.no_grad()
            moments = vae(image)
            mean, lv = torch.chunk(moments, 2, dim=1)
            lv = torch.clamp(lv, -30.0, 20.0)
            z = 0.18215 * (mean + torch.exp(0.5 * lv) * torch.randn(mean.shape))
        t_b = time.perf_counter()
        t = torch.randint(0, 1000, (1,)).long()
        noise = torch.randn_like(z)
        x_t = sqrt_ab[t][:, None, None, None] * z + sqrt_1m_ab[t][:, None, None, None] * noise
        c = clip(ids, placeholder, param)
        t_c = time.perf_counter()
        eps = unet(x_t, t, c)
        loss_simple = ((noise - eps) ** 2).mean(dim=[1, 2, 3])
        loss = (loss_simple / torch.exp(logvar[t]) + logvar[t]).mean()
        loss_vlb = (lvlb[t] * loss_simple).mean()  # logged by the peer, weight 0
        t_d = time.perf_counter()
        loss.backward()
        opt.step()
        opt.zero_grad()
        t_e = time.perf_counter()
        times.append(t_e - t_a)
        if s > 0:
            for i, d in enumerate((t_b - t_a, t_c - t_b, t_d - t_c, t_e - t_d)):
                parts[i] += d / a.steps
        del moments, mean, lv, z, noise, x_t, c, eps, loss_simple, loss, loss_vlb
    cpu_step = (time.process_time() - cpu0) / a.steps
    timed = sorted(times[1:])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)
    alloc = allocator()
    print("RESULT\ttrain_step\ttorch\t%dx%d\t%.3f\t%.3f\t%.2f\t-\tPyTorch %s, %s, %d threads"
          % (a.latent, a.latent, timed[(len(timed) - 1) // 2], timed[0], rss, torch.__version__,
             alloc, torch.get_num_threads()))
    sys.stderr.write("(PyTorch: build random models %.1f s; warm-up step %.1f s; mean VAE encode %.3f s, "
                     "text encoder + q_sample %.3f s, UNet forward + loss %.3f s, backward + AdamW "
                     "%.3f s; process CPU time %.1f s/step)\n"
                     % (t_build, times[0], parts[0], parts[1], parts[2], parts[3], cpu_step))


if __name__ == "__main__":
    main()
