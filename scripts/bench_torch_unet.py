"""PyTorch side of bench_unet: the SD v1 UNet (scripts/torch_sd_unet.py, random weights, all
frozen), batch 1, forward + backward with only the context requiring a gradient — the same work
as ti's bench_unet. Prints one Markdown table row (median step time, GFLOP/s, peak RSS).

Usage: python3 scripts/bench_torch_unet.py [--size 32|64] [--steps N] [--forward-only] [--bf16-autocast]
--bf16-autocast: the same under torch.autocast("cpu", bfloat16) (f32 weights cast per call).
Run it with LD_PRELOAD=<libjemalloc.so.2> for the "tuned" numbers (see cpu-anchors.md).
"""
import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_sd_unet import UNet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--forward-only", action="store_true")
    ap.add_argument("--bf16-autocast", action="store_true")
    a = ap.parse_args()
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(0)
    m = UNet().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 4, a.size, a.size)
    t = torch.tensor([500.0])
    c = torch.randn(1, 77, 768, requires_grad=not a.forward_only)
    times = []
    cpus = []
    if a.bf16_autocast:
        # torch 1.13's CPU autocast leaves layer_norm out of its f32 list and then refuses bf16
        # inputs with f32 weights; later versions run it in f32, which this does by hand
        ln_forward = torch.nn.LayerNorm.forward
        torch.nn.LayerNorm.forward = lambda self, x: ln_forward(self, x.float()).type(x.dtype)
        try:
            ac = torch.autocast("cpu", dtype=torch.bfloat16)
        except (RuntimeError, AttributeError) as e:
            print("PyTorch bf16 autocast: unavailable (%s)" % str(e).splitlines()[0])
            return
    else:
        import contextlib
        ac = contextlib.nullcontext()
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        c0 = time.process_time()
        if s == 0 and a.bf16_autocast:
            try:
                with torch.no_grad(), ac:
                    m(x, t, c)
            except RuntimeError as e:  # an op this torch cannot autocast on the CPU
                print("PyTorch bf16 autocast: unavailable (%s)" % str(e).splitlines()[0])
                return
        if a.forward_only:
            with torch.no_grad(), ac:
                out = m(x, t, c)
        else:
            with ac:
                out = m(x, t, c)
            out.backward(out.detach())
            c.grad = None
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        del out
    med = sorted(times[1:])[len(times[1:]) // 2]
    cmed = sorted(cpus[1:])[len(cpus[1:]) // 2]
    tflop = (0.803 if a.size == 64 else 0.180) if a.forward_only else (1.733 if a.size == 64 else 0.369)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)
    alloc = "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "glibc malloc"
    print("| PyTorch %s%s (%s, %d threads) | %dx%d | %s | %.3f s | %.0f GFLOP/s | | | peak RSS %.2f GiB |"
          % (torch.__version__, " bf16 autocast" if a.bf16_autocast else " f32", alloc, torch.get_num_threads(), a.size, a.size,
             "forward" if a.forward_only else "forward + input-grad", med, tflop * 1e3 / med, rss))
    print("(process CPU time per step %.3f s, the load-independent figure on a shared machine)"
          % cmed, file=sys.stderr)


if __name__ == "__main__":
    main()
