"""Writes a full-size SD v1 checkpoint layout with torch: every key and shape of sd-v1-4.ckpt
(tests/fixtures/keys/sd-v1-full.tsv), random float32 values, the pytorch-lightning
{"state_dict": ...} nesting, saved through a file object (folder "archive/") as Lightning does.

    /usr/bin/python3 scripts/oracle/gen_full_ckpt.py OUT.ckpt [--ema] [--keys TSV] [--seed N]

About 4.3 GB (7.7 GB with --ema, which adds model_ema.* for every UNet tensor like the "full"
checkpoints, and needs zip64 offsets past 4 GiB). Never committed: the slow test and the load
benchmark write it to a temporary path and delete it. Also writes OUT.json: for a few keys,
the f64 sum and first 8 values, so a reader can check it loaded the right bytes.
Needs only Debian's python3-torch.
"""
import argparse
import collections
import json
import os
import sys

import torch

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--ema", action="store_true", help="add model_ema.* (a 'full' EMA checkpoint)")
ap.add_argument("--keys", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests",
                                               "fixtures", "keys", "sd-v1-full.tsv"))
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

g = torch.Generator().manual_seed(a.seed)
sd = collections.OrderedDict()
with open(a.keys) as f:
    for line in f:
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.rstrip("\n").split("\t")
        dims = [int(d) for d in shape.split("x")]
        if dtype == "int64":
            sd[key] = torch.arange(dims[-1], dtype=torch.int64).reshape(dims)
        else:
            sd[key] = torch.empty(dims, dtype=torch.float32).normal_(generator=g)
if a.ema:
    unet = [k for k in sd if k.startswith("model.diffusion_model.")]
    sd["model_ema.decay"] = torch.tensor(0.9999)
    sd["model_ema.num_updates"] = torch.tensor(470000, dtype=torch.int32)
    for k in unet:
        flat = "model_ema." + ("diffusion_model." + k[len("model.diffusion_model."):]).replace(".", "")
        sd[flat] = torch.empty(sd[k].shape, dtype=torch.float32).normal_(generator=g)

ckpt = {"epoch": 6, "global_step": 470000, "pytorch-lightning_version": "1.4.2",
        "state_dict": sd, "optimizer_states": [], "lr_schedulers": []}
with open(a.out, "wb") as f:
    torch.save(ckpt, f)

probe = ["betas", "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
         "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
         "cond_stage_model.transformer.text_model.embeddings.position_ids",
         "first_stage_model.decoder.mid.attn_1.q.weight", "model.diffusion_model.out.2.bias"]
if a.ema:
    probe.append("model_ema.diffusion_modelinput_blocks00weight")
side = {k: {"sum": float(sd[k].double().sum()), "first": [float(x) for x in sd[k].flatten()[:8]],
            "shape": list(sd[k].shape)} for k in probe if k in sd}
with open(a.out + ".json", "w") as f:
    json.dump(side, f, indent=1)
print("%s: %d tensors, %d bytes" % (a.out, len(sd), os.path.getsize(a.out)), file=sys.stderr)
