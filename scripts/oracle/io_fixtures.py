"""Writes the file-format fixtures of tests/io.cmake with real torch (and safetensors, diffusers).

    /opt/oracle-venv/bin/python scripts/oracle/io_fixtures.py [OUTDIR]

OUTDIR defaults to tests/fixtures/io. Run once, offline; CI never runs it (see
tests/fixtures/README.md). Needs Debian's python3-torch 1.13 (through the venv's system site
packages) plus safetensors and diffusers from the oracle venv (docs/DEVELOPING.md).

Values are deterministic so the C tests can recompute them: vector element i of a fixture is
value(i, salt) = (((i * 37 + salt) % 101) - 50) * 0.25, exact in f32, f16 and bf16.

Hostile fixtures are built from raw opcodes or by pickling objects whose __reduce__ names a
dangerous callable. Nothing here ever unpickles them.
"""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "tests", "fixtures", "io")
os.makedirs(OUT, exist_ok=True)


def value(i, salt):
    return (((i * 37 + salt) % 101) - 50) * 0.25


def vectors(n, dim, salt, dtype=torch.float32):
    v = torch.tensor([value(i, salt) for i in range(n * dim)], dtype=torch.float64)
    return v.reshape(n, dim).to(dtype)


def path(name):
    return os.path.join(OUT, name)


def save(obj, name, **kw):
    torch.save(obj, path(name), **kw)


class cuda_locations:
    """Makes torch.save record 'cuda:0' as every storage location (no GPU needed)."""

    def __enter__(self):
        self.saved = torch.serialization.location_tag
        torch.serialization.location_tag = lambda storage: "cuda:0"

    def __exit__(self, *a):
        torch.serialization.location_tag = self.saved


# ---- embeddings ---------------------------------------------------------------------------

def a1111(dtype, name, step, ckpt, ckpt_name):
    p = vectors(2, 768, 1, dtype)
    p.requires_grad_(True)
    return {"string_to_token": {"*": 265}, "string_to_param": {"*": p}, "name": name,
            "step": step, "sd_checkpoint": ckpt, "sd_checkpoint_name": ckpt_name}


save(a1111(torch.float32, "cat", 500, "abc123", "v1-5"), "a1111_f32.pt")
save(a1111(torch.float16, "cat16", None, None, None), "a1111_f16.pt")
save(a1111(torch.bfloat16, "catbf", 7, "abc123", None), "a1111_bf16.pt")
save(a1111(torch.float32, "legacy", 3, None, None), "legacy_a1111.pt",
     _use_new_zipfile_serialization=False)

# rinongal with plain dicts (spec §2.3 "rinongal, plain dicts, Parameter")
save({"string_to_token": {"*": torch.tensor(265)},
      "string_to_param": {"*": torch.nn.Parameter(vectors(1, 768, 2))}}, "peer_dict.pt")

# rinongal's real layout: a pickled nn.ParameterDict, the token a 0-d view at offset 1 of the
# tokenized prompt (77 int64), parameters saved from cuda:0
tokens = torch.full((1, 77), 49407, dtype=torch.int64)
tokens[0, 0] = 49406
tokens[0, 1] = 265
with cuda_locations():
    save({"string_to_token": {"*": tokens[0, 1]},
          "string_to_param": torch.nn.ParameterDict({"*": torch.nn.Parameter(vectors(1, 768, 3))})},
         "peer_paramdict.pt")
    save({"string_to_token": {"*": torch.tensor(265), "@": torch.tensor(287)},
          "string_to_param": torch.nn.ParameterDict({
              "*": torch.nn.Parameter(vectors(1, 768, 4)),
              "@": torch.nn.Parameter(vectors(3, 768, 5))})}, "peer_merged.pt")
    save({"string_to_token": {"*": torch.tensor(1008)},
          "string_to_param": torch.nn.ParameterDict({"*": torch.nn.Parameter(vectors(2, 1280, 6))})},
         "peer_ldm_1280.pt")
# the same layout saved by the legacy (pre-zip) serializer: the nn.ParameterDict class goes in as
# a ('module', class, source_file, source) persistent id. torch would embed the class's source
# text; it is kept out (None, as torch writes when it cannot find the source).
_get_source = torch.serialization.get_source_lines_and_file
torch.serialization.get_source_lines_and_file = lambda obj: (_ for _ in ()).throw(OSError())
save({"string_to_token": {"*": torch.tensor(265)},
      "string_to_param": torch.nn.ParameterDict({"*": torch.nn.Parameter(vectors(2, 768, 9))})},
     "legacy_peer.pt", _use_new_zipfile_serialization=False)
torch.serialization.get_source_lines_and_file = _get_source

# diffusers: the 2022 script saved a 1-D vector, newer ones [n, 768]
save({"<cat-toy>": vectors(1, 768, 7)[0]}, "diffusers_1d.bin")
save({"<cat-toy>": vectors(3, 768, 8)}, "diffusers_2d.bin")

from safetensors.torch import save_file  # noqa: E402

save_file({"<cat-toy>": vectors(3, 768, 9)}, path("learned_embeds.safetensors"),
          metadata={"format": "pt"})
# kohya
save({"emb_params": vectors(2, 768, 10)}, "kohya.pt")
save_file({"emb_params": vectors(2, 768, 11)}, path("kohya.safetensors"))
# widths and families ti refuses
save(dict(a1111(torch.float32, "sd2", 10, None, None),
          string_to_param={"*": vectors(1, 1024, 12)}), "a1111_sd2_1024.pt")
save_file({"clip_l": vectors(1, 768, 13), "clip_g": vectors(1, 1280, 14)}, path("sdxl.safetensors"))

# ---- tensor layouts -----------------------------------------------------------------------

base = torch.arange(24, dtype=torch.float32).reshape(12, 2)
save({"t": base.t(), "other": torch.ones(3)}, "noncontig.pt")   # size (2, 12), stride (1, 2)
s = torch.arange(32, dtype=torch.float32).reshape(4, 8)
save({"a": s[1:3], "b": s[3]}, "shared_offset.pt")              # offsets 8 and 24, one storage
save({
    "f32": torch.tensor([1.5, -2.25, 3.0], dtype=torch.float32),
    "f16": torch.tensor([1.5, -2.25, 65504.0], dtype=torch.float16),
    "bf16": torch.tensor([1.5, -2.25, 3.0e38], dtype=torch.bfloat16),
    "f64": torch.tensor([1.5, -2.25, 1e300], dtype=torch.float64),
    "i64": torch.tensor([1, -2, 2 ** 40], dtype=torch.int64),
    "i32": torch.tensor([1, -2, 2 ** 30], dtype=torch.int32),
    "i16": torch.tensor([1, -2, 300], dtype=torch.int16),
    "i8": torch.tensor([1, -2, 100], dtype=torch.int8),
    "u8": torch.tensor([1, 2, 250], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(7.5),
    "empty": torch.zeros(0, 4),
    "five_d": torch.arange(32, dtype=torch.float32).reshape(2, 2, 2, 2, 2),
}, "dtypes.pt")
# protocol 4: FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL of safe names
save(a1111(torch.float32, "proto4", 11, None, None), "a1111_proto4.pt", pickle_protocol=4)

# ---- a pytorch-lightning checkpoint with EMA weights --------------------------------------
# Fake pytorch_lightning modules so the pickle names the real classes (as in sd-v1-4.ckpt).
def fake_module(name):
    m = types.ModuleType(name)
    sys.modules[name] = m
    return m


for name in ["pytorch_lightning", "pytorch_lightning.callbacks",
             "pytorch_lightning.callbacks.model_checkpoint", "pytorch_lightning.utilities",
             "pytorch_lightning.utilities.parsing", "pytorch_lightning.trainer",
             "pytorch_lightning.trainer.states"]:
    fake_module(name)


class ModelCheckpoint:
    pass


ModelCheckpoint.__module__ = "pytorch_lightning.callbacks.model_checkpoint"
sys.modules[ModelCheckpoint.__module__].ModelCheckpoint = ModelCheckpoint


class AttributeDict(dict):
    pass


AttributeDict.__module__ = "pytorch_lightning.utilities.parsing"
sys.modules[AttributeDict.__module__].AttributeDict = AttributeDict


class TrainerFn:
    """An enum member as Python 3.8 pickled it: REDUCE(cls, (value,)). (Python >= 3.11 pickles
    enum members as builtins.getattr(cls, name), which ti refuses like every getattr.)"""

    def __init__(self, v):
        self.v = v

    def __reduce__(self):
        return (TrainerFn, (self.v,))


TrainerFn.__module__ = "pytorch_lightning.trainer.states"
sys.modules[TrainerFn.__module__].TrainerFn = TrainerFn

sd = collections.OrderedDict()
sd["betas"] = vectors(1, 10, 20)[0]
sd["model.diffusion_model.input_blocks.0.0.weight"] = vectors(1, 4 * 2 * 3 * 3, 21).reshape(4, 2, 3, 3)
sd["model.diffusion_model.input_blocks.0.0.bias"] = vectors(1, 4, 22)[0]
sd["model.diffusion_model.out.2.weight"] = vectors(1, 2 * 4 * 3 * 3, 23).reshape(2, 4, 3, 3).half()
sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(5).reshape(1, 5)
sd["first_stage_model.quant_conv.weight"] = vectors(1, 8, 24).reshape(2, 4, 1, 1)
sd["model_ema.decay"] = torch.tensor(0.9999)
sd["model_ema.num_updates"] = torch.tensor(470000, dtype=torch.int32)
sd["model_ema.diffusion_modelinput_blocks00weight"] = vectors(1, 72, 31).reshape(4, 2, 3, 3)
sd["model_ema.diffusion_modelinput_blocks00bias"] = vectors(1, 4, 32)[0]
sd["model_ema.diffusion_modelout2weight"] = vectors(1, 72, 33).reshape(2, 4, 3, 3).half()
hp = AttributeDict()
hp["base_learning_rate"] = 1e-4
ckpt = {
    "epoch": 6,
    "global_step": 470000,
    "pytorch-lightning_version": "1.4.2",
    "state_dict": sd,
    "callbacks": {ModelCheckpoint: {"monitor": None, "best_model_score": np.float64(0.125),
                                    "best_model_path": "/ckpt/last.ckpt", "save_last": True,
                                    "current_score": np.float32(2.5), "period": 1}},
    "optimizer_states": [],
    "lr_schedulers": [{"base_lrs": [1e-4], "last_epoch": 5, "_step_count": 6}],
    "hyper_parameters": hp,
    "state": TrainerFn("fit"),
}
with open(path("lightning_mini.ckpt"), "wb") as f:  # through a file object: folder 'archive/'
    torch.save(ckpt, f)

# ---- hostile files (never unpickled here) -------------------------------------------------

def torch_zip(name, pkl):
    """A torch-style archive around a raw pickle."""
    with zipfile.ZipFile(path(name), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


cmd = "echo ti-fixture-would-run-this"
torch_zip("mal_os_system.pt", b"\x80\x02cos\nsystem\n" + binunicode(cmd) + b"\x85R.")
torch_zip("mal_builtins_eval_global.pt",
          b"\x80\x02cbuiltins\neval\n" + binunicode("__import__('os').system('true')") + b"\x85R.")


class EvalPayload:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


class SystemPayload:
    def __reduce__(self):
        return (os.system, (cmd,))


torch_zip("mal_builtins_eval.pt", pickle.dumps(EvalPayload(), protocol=2))     # __builtin__ eval
mal = a1111(torch.float32, "x", 1, None, None)
mal["name"] = SystemPayload()                                                    # posix.system
save(mal, "mal_posix_system_in_a1111.pt")
torch_zip("mal_stack_global_eval.pt", pickle.dumps(EvalPayload(), protocol=4))  # STACK_GLOBAL
torch_zip("mal_inst_os_system.pt", b"(S'" + cmd.encode() + b"'\nios\nsystem\n.")

# a torch file whose records were re-compressed with DEFLATE (torch 1.13 loads these)
with zipfile.ZipFile(path("a1111_f32.pt")) as src, \
        zipfile.ZipFile(path("a1111_deflate.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))

# ---- a tiny diffusers folder and the original-layout state dict it came from ---------------
import yaml  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402

KEYS = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "keys")
orig = collections.OrderedDict()
g = torch.Generator().manual_seed(1234)
with open(os.path.join(KEYS, "sd-v1-full.tsv")) as f:
    for line in f:
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.rstrip("\n").split("\t")
        if not key.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")):
            continue
        dims = [min(int(d), 3) for d in shape.split("x")]
        if key.endswith("position_ids"):
            orig[key] = torch.arange(3).reshape(1, 3)
        else:
            orig[key] = torch.randn(dims, generator=g).to(torch.float32)
with open(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "compvis", "stable-diffusion",
                       "v1-inference.yaml")) as f:  # SD's own config
    cfg = yaml.safe_load(f)
unet_cfg = sfu.create_unet_diffusers_config(cfg, 512)
vae_cfg = sfu.create_vae_diffusers_config(cfg, 512)
unet = sfu.convert_ldm_unet_checkpoint(dict(orig), unet_cfg)
vae = sfu.convert_ldm_vae_checkpoint(dict(orig), vae_cfg)
te = {k[len("cond_stage_model.transformer."):]: v for k, v in orig.items()
      if k.startswith("cond_stage_model.transformer.") and not k.endswith("position_ids")}
d = path("diffusers_tiny")
for sub in ["unet", "text_encoder", "vae", "tokenizer"]:
    os.makedirs(os.path.join(d, sub), exist_ok=True)
save_file({k: v.contiguous() for k, v in unet.items()},
          os.path.join(d, "unet", "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
save_file({k: v.contiguous() for k, v in vae.items()},
          os.path.join(d, "vae", "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
torch.save(te, os.path.join(d, "text_encoder", "pytorch_model.bin"))  # the .bin variant
with open(os.path.join(d, "model_index.json"), "w") as f:
    f.write('{"_class_name": "StableDiffusionPipeline", "_note": "tiny shapes, ti test fixture"}\n')
with open(os.path.join(d, "tokenizer", "README"), "w") as f:
    f.write("placeholder: the tokenizer files of a real model live here\n")
save_file({k: v.contiguous() for k, v in orig.items()}, path("diffusers_tiny_original.safetensors"))

for f in sorted(os.listdir(OUT)):
    p = path(f)
    if os.path.isfile(p):
        print("%8d  %s" % (os.path.getsize(p), f))
