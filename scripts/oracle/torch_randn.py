"""Writes tests/fixtures/torch_randn.h5: what torch.randn returns for a CPU generator seeded with
manual_seed(seed), for many seeds and sizes (1 .. 10^5 elements), including consecutive calls on
one generator (the stream continues; the scalar path's cached normal carries over).

Each case is a group "case_<k>" with attributes seed_hi, seed_lo (the seed's 32-bit halves) and datasets call_0, call_1, ... (float32,
flat): the outputs of torch.randn(size_i, generator=g) in order on one generator.

Usage: /opt/oracle-venv/bin/python scripts/oracle/torch_randn.py
"""
import os

import h5py
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "torch_randn.h5")

CASES = [
    # (seed, [sizes of consecutive calls])
    (42, [4 * 64 * 64]),
    (0, [1]),
    (1, [2]),
    (2, [3, 3, 1, 5]),
    (3, [15]),
    (4, [16]),
    (5, [17]),
    (6, [31, 33]),
    (7, [100000]),
    (8, [4 * 8 * 8, 4 * 8 * 8, 4 * 8 * 8]),
    (123456789, [1000]),
    (2**32 + 5, [40]),
    (2**63 - 1, [64]),
    (9, [1, 16, 1, 1]),
    (10, [5, 600, 7, 4 * 4 * 4]),
    (4294967295, [255]),
    (31337, [4 * 16 * 16, 4 * 16 * 16]),
]
for s in range(100, 140):
    CASES.append((s, [1 + (s * 7919) % 3000]))


def main():
    with h5py.File(OUT, "w") as f:
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["cpu_capability"] = torch.__config__.show().split("CPU capability usage: ")[1].split("\n")[0]
        for k, (seed, sizes) in enumerate(CASES):
            g = torch.Generator("cpu").manual_seed(seed)
            grp = f.create_group("case_%d" % k)
            grp.attrs["seed_hi"] = seed >> 32  # seeds > 2^53 do not fit a double
            grp.attrs["seed_lo"] = seed & 0xFFFFFFFF
            grp.attrs["ncalls"] = len(sizes)
            for i, n in enumerate(sizes):
                x = torch.randn(n, generator=g).numpy().astype(np.float32)
                grp.create_dataset("call_%d" % i, data=x)
        f.attrs["ncases"] = len(CASES)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
