"""PyTorch side of bench_sample: seconds per DDIM sampling step with classifier-free guidance of the
full-size SD v1 UNet (scripts/torch_sd_unet.py, the CompVis UNetModel, random weights, f32),
batch 1, latent 64x64 (512 px), 77x768 contexts, as the reference DDIMSampler.p_sample_ddim does
it (sd-arch.md 7.2 and 7.4, eta 0): one UNet call under torch.no_grad() on the batch
[x; x] / [t; t] / [uncond; cond], e = e_u + 7.5 (e_c - e_u), pred_x0 = (x - sqrt(1 - a_t) e) /
sqrt(a_t), x = sqrt(a_prev) pred_x0 + sqrt(1 - a_prev - sigma^2) e. The same work as ti's
bench_sample (the text encoder and the VAE are not part of a step).

Prints one line
  RESULT  sample_step  torch  <device>  <latent>  <median_s_per_step>  <fastest_s>  <peak_rss_gib>  <note>
(each run of --steps steps after a one-step warm-up run gives run time / steps; median and fastest
over --runs runs). --cuda runs on the GPU and prints "SKIP ..." (exit 77) without one.

Usage: python3 scripts/bench_torch_sample.py [--size 64] [--steps 2] [--runs 1] [--cuda]
"""
import argparse
import math
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_sd_unet import UNet  # noqa: E402


def unet_forward(m, x, t, context):
    """UNet.forward with the timestep frequencies on x's device (torch_sd_unet builds them on the
    CPU); the same arithmetic."""
    half = m.mc // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = m.time_embed(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))
    hs, h = [], x
    for blk in m.input_blocks:
        h = blk(h, emb, context)
        hs.append(h)
    h = m.middle_block(h, emb, context)
    for blk in m.output_blocks:
        h = blk(torch.cat([h, hs.pop()], dim=1), emb, context)
    return m.out(h)


def allocator():
    try:
        with open("/proc/self/maps") as f:
            return "jemalloc" if "jemalloc" in f.read() else "glibc malloc"
    except OSError:
        return "unknown allocator"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--scale", type=float, default=7.5)
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args()
    if a.steps < 1 or a.runs < 1 or a.size < 8 or a.size % 8:
        ap.error("--steps and --runs must be >= 1, --size a multiple of 8")
    if a.cuda and not torch.cuda.is_available():
        print("SKIP sample_step torch cuda: torch.cuda.is_available() is False (torch %s)" % torch.__version__)
        sys.exit(77)
    dev = torch.device("cuda" if a.cuda else "cpu")
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(0)
    t0 = time.perf_counter()
    m = UNet().eval().to(dev)
    for p in m.parameters():
        p.requires_grad_(False)
    t_build = time.perf_counter() - t0
    betas = torch.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=torch.float64) ** 2
    ab = torch.cumprod(1.0 - betas, 0).float()
    cond = torch.randn(1, 77, 768, device=dev)
    uncond = torch.randn(1, 77, 768, device=dev)
    c_in = torch.cat([uncond, cond])

    def run(n):
        c = 1000 // n
        taus = [k + 1 for k in range(0, 1000, c)][:n]
        x = torch.randn(1, 4, a.size, a.size, generator=torch.Generator().manual_seed(42)).to(dev)
        if a.cuda:
            torch.cuda.synchronize()
        t_a, c_a = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for k in range(len(taus) - 1, -1, -1):
                tau = taus[k]
                a_t = ab[tau].item()
                a_prev = ab[taus[k - 1]].item() if k > 0 else ab[0].item()
                t_in = torch.full((2,), tau, dtype=torch.long, device=dev)
                e_u, e_c = unet_forward(m, torch.cat([x, x]), t_in, c_in).chunk(2)
                e = e_u + a.scale * (e_c - e_u)
                a_t_, ap_ = torch.full_like(x, a_t), torch.full_like(x, a_prev)
                pred_x0 = (x - (1.0 - a_t_).sqrt() * e) / a_t_.sqrt()
                x = ap_.sqrt() * pred_x0 + (1.0 - ap_).sqrt() * e
            if a.cuda:
                torch.cuda.synchronize()
        return (time.perf_counter() - t_a) / len(taus), (time.process_time() - c_a) / len(taus)

    warm = run(1)[0]
    timed = [run(a.steps) for _ in range(a.runs)]
    per_step = sorted(w for w, _ in timed)
    cpu_step = sum(c for _, c in timed) / len(timed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)
    note = "PyTorch %s, %s" % (torch.__version__, allocator())
    if not a.cuda:
        note += ", %d threads" % torch.get_num_threads()
    else:
        note += ", " + torch.cuda.get_device_name(0)
    print("RESULT\tsample_step\ttorch\t%s\t%dx%d\t%.3f\t%.3f\t%.2f\t%s"
          % (dev.type, a.size, a.size, per_step[(len(per_step) - 1) // 2], per_step[0], rss, note))
    sys.stderr.write("(PyTorch: build random UNet %.1f s, warm-up step %.1f s, %d timed runs of %d steps, "
                     "process CPU time %.1f s/step)\n" % (t_build, warm, a.runs, a.steps, cpu_step))


if __name__ == "__main__":
    main()
