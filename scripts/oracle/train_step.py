"""Writes tests/fixtures/train_step_{sd,ldm}.h5: one textual-inversion training step of the tiny
SD and LDM models computed by the reference repository's own modules (rinongal/textual_inversion,
checked out read-only at /work/ref/rinongal+textual_inversion; nothing of it is copied here):

  text      FrozenCLIPEmbedder (its patched CLIPTextModel forward, on a tiny CLIPTextConfig) /
            BERTEmbedder (x_transformer TransformerWrapper + Encoder with the tiny widths)
  manager   ldm.modules.embedding_manager.EmbeddingManager (init word "sculpture")
  UNet      ldm.modules.diffusionmodules.openaimodel.UNetModel (use_checkpoint off: same math)
  VAE       AutoencoderKL.encode as the peer runs it: ddconfig Encoder -> quant_conv ->
            DiagonalGaussianDistribution; the sample uses the fixture's eps instead of randn
  schedule  make_beta_schedule + the float32 buffers of DDPM.register_schedule
  loss      p_losses with logvar 0: mean over C,H,W then batch
  AdamW     torch.optim.AdamW (lr from the fixture, torch defaults) on float32 rows

The forward/backward runs in float64 (the reference then has no rounding of its own to speak of);
the timestep sinusoid stays in float32 as openaimodel computes it (ti does the same). AdamW runs
on float32 rows with the float64 gradient rounded to float32, as the peer trains.

The weights are ti_ldm_randomize(4242) written by `test_train_step --export DIR` (the fixture holds
their sum, which the C test checks first). Modules pytorch-lightning, clip, kornia, torchvision
are not needed by these classes; empty stand-ins satisfy the reference files' imports.

train_step_sd_unfrozen.h5: the same SD step with unfreeze_model (pivotal tuning): every UNet and
text-encoder weight but the token table trained with a second AdamW group at model_lr; the
gradients and updates of a few weights (PTI_KEYS) are kept.

Usage: /opt/oracle-venv/bin/python scripts/oracle/train_step.py [path/to/test_train_step]
(default build/tests/test_train_step).
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import types

import h5py
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = "/work/ref/rinongal+textual_inversion"
VOCAB = os.path.join(ROOT, "model", "vocab")
FIX = os.path.join(ROOT, "tests", "fixtures")
MODEL_SEED = 4242

import transformers  # noqa: E402  (before the stand-ins: it probes for torchvision)
from omegaconf import OmegaConf  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers.models.clip.tokenization_clip import bytes_to_unicode  # noqa: E402

for name in ("clip", "kornia", "torchvision", "torchvision.transforms"):
    sys.modules.setdefault(name, types.ModuleType(name))
sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
sys.path.insert(0, REF)

import ldm.modules.diffusionmodules.openaimodel as openaimodel  # noqa: E402
import ldm.modules.diffusionmodules.util as dmutil  # noqa: E402
from ldm.modules.diffusionmodules.model import Encoder  # noqa: E402
from ldm.modules.diffusionmodules.util import extract_into_tensor, make_beta_schedule  # noqa: E402
from ldm.modules.distributions.distributions import DiagonalGaussianDistribution  # noqa: E402
from ldm.modules.embedding_manager import EmbeddingManager  # noqa: E402
from ldm.modules.encoders import modules as enc  # noqa: E402
from ldm.modules.x_transformer import Encoder as XEncoder, TransformerWrapper  # noqa: E402

# GroupNorm32 runs in float32 (in a float32 model: the model's precision); here float64 throughout
dmutil.GroupNorm32.forward = lambda self, x: torch.nn.GroupNorm.forward(self, x)
# openaimodel computes the sinusoid in float32; in a float64 model it must then be cast
_orig_te = openaimodel.timestep_embedding
openaimodel.timestep_embedding = lambda *a, **k: _orig_te(*a, **k).double()


def build_clip_files(tmp):
    """vocab.json + merges.txt for CLIPTokenizer from the openai merges file (as
    scripts/oracle/tokenizer_fixtures.py does)."""
    with gzip.open(os.path.join(VOCAB, "bpe_simple_vocab_16e6.txt.gz")) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1: 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(dict(zip(vocab, range(len(vocab)))), f)
    with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(" ".join(m) + "\n")


def load_prefix(module, sd, prefix, strict=True):
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    missing, unexpected = module.load_state_dict(sub, strict=False)
    # position_ids: a non-persistent buffer; to_logits: unused with return_embeddings=True
    missing = [k for k in missing if not k.endswith("position_ids") and "to_logits" not in k]
    if strict:
        assert not missing and not unexpected, (prefix, missing[:5], unexpected[:5])


def text_encoder(cfg, sd, tmp, clip):
    p = cfg.model.params.cond_stage_config.params
    if clip:
        conf = transformers.CLIPTextConfig(
            vocab_size=p.vocab_size, hidden_size=p.hidden_size,
            intermediate_size=p.intermediate_size, num_hidden_layers=p.num_hidden_layers,
            num_attention_heads=p.num_attention_heads,
            max_position_embeddings=p.max_position_embeddings, hidden_act="quick_gelu")
        tok = transformers.CLIPTokenizer(os.path.join(tmp, "vocab.json"),
                                         os.path.join(tmp, "merges.txt"))

        class TokStub:
            @staticmethod
            def from_pretrained(*a, **k):
                return tok

        class ModelStub:
            @staticmethod
            def from_pretrained(*a, **k):
                return transformers.CLIPTextModel(conf)

        enc.CLIPTokenizer, enc.CLIPTextModel = TokStub, ModelStub
        e = enc.FrozenCLIPEmbedder(device="cpu", max_length=77)
        load_prefix(e.transformer, sd, "cond_stage_model.transformer.")
    else:
        vocab = os.path.join(VOCAB, "bert-base-uncased-vocab.txt")
        transformers.BertTokenizerFast.from_pretrained = staticmethod(
            lambda *a, **k: transformers.BertTokenizerFast(vocab))
        e = enc.BERTEmbedder(n_embed=p.n_embed, n_layer=p.n_layer, vocab_size=30522,
                             max_seq_len=77, device="cpu")
        e.tknz_fn.device = "cpu"
        # BERTEmbedder builds Encoder(dim, depth) with the default 8 x 64 heads; the tiny config's
        # widths (a ti extension) need the same classes with heads/dim_head given
        e.transformer = TransformerWrapper(
            num_tokens=30522, max_seq_len=77,
            attn_layers=XEncoder(dim=p.n_embed, depth=p.n_layer, heads=p.heads,
                                 attn_dim_head=p.dim_head))
        load_prefix(e.transformer, sd, "cond_stage_model.transformer.")
    return e.double().eval()


# unfreeze_model: the trained weights whose gradient and update the fixture keeps
PTI_KEYS = [
    "model.diffusion_model.input_blocks.0.0.weight",
    "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight",
    "model.diffusion_model.output_blocks.1.1.proj_out.bias",
    "model.diffusion_model.out.0.weight",
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
    "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight",
    "cond_stage_model.transformer.text_model.encoder.layers.1.self_attn.q_proj.bias",
    "cond_stage_model.transformer.text_model.final_layer_norm.bias",
]


def make(name, clip, nvec, captions, lr, binary, tmp, model_lr=0.0):
    cfg = OmegaConf.load(os.path.join(ROOT, "configs", "tiny",
                                      "sd-tiny-finetune.yaml" if clip
                                      else "ldm-tiny-finetune.yaml"))
    sd = load_file(os.path.join(tmp, "train_step_%s.safetensors" % ("sd" if clip else "ldm")))
    wsum = float(sum(v.double().sum().item() for v in sd.values()))
    mp = cfg.model.params

    up = OmegaConf.to_container(mp.unet_config.params)
    up["use_checkpoint"] = False
    unet = openaimodel.UNetModel(**up)
    load_prefix(unet, sd, "model.diffusion_model.")
    unet = unet.double().eval()
    unet.dtype = torch.float64  # forward casts its input to self.dtype (float32 by default)

    dd = OmegaConf.to_container(mp.first_stage_config.params.ddconfig)
    encoder = Encoder(**dd)
    load_prefix(encoder, sd, "first_stage_model.encoder.")
    ed = mp.first_stage_config.params.embed_dim
    quant_conv = torch.nn.Conv2d(2 * dd["z_channels"], 2 * ed, 1)
    load_prefix(quant_conv, sd, "first_stage_model.quant_conv.")
    encoder, quant_conv = encoder.double().eval(), quant_conv.double().eval()

    text = text_encoder(cfg, sd, tmp, clip)
    for mod in (unet, encoder, quant_conv, text):  # frozen, as the peer's TI runs them
        mod.requires_grad_(False)
    named = {}
    if model_lr > 0:
        # unfreeze_model: cond_stage_model + UNet join the optimizer at model_lr; ti keeps the
        # token table frozen (docs/TRAINING.md), so it stays out here too (it does not change the
        # gradients of anything else in one step)
        named.update({"model.diffusion_model." + k: v for k, v in unet.named_parameters()})
        named.update({"cond_stage_model.transformer." + k: v
                      for k, v in text.transformer.named_parameters()})
        del named["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"]
        for v in named.values():
            v.requires_grad_(True)
        before = {k: named[k].detach().clone() for k in PTI_KEYS}
    em = EmbeddingManager(text, placeholder_strings=["*"], initializer_words=["sculpture"],
                          num_vectors_per_token=nvec, progressive_words=False)
    param = em.string_to_param_dict["*"]
    rows_init = param.detach().clone()

    g = torch.Generator().manual_seed(1000 + nvec + 10 * clip)
    B, S = 2, 64
    h = S // 8
    images = (torch.rand(B, 3, S, S, generator=g) * 2 - 1).float()
    post_eps = torch.randn(B, ed, h, h, generator=g).float()
    noise = torch.randn(B, ed, h, h, generator=g).float()
    t = torch.tensor([37, 811]) if clip else torch.tensor([523, 4])

    # DDPM.register_schedule: float64 numpy, buffers float32
    betas = make_beta_schedule("linear", mp.timesteps, linear_start=mp.linear_start,
                               linear_end=mp.linear_end)
    ac = np.cumprod(1.0 - betas, axis=0)
    sqrt_ac = torch.tensor(np.sqrt(ac), dtype=torch.float32)
    sqrt_1m = torch.tensor(np.sqrt(1.0 - ac), dtype=torch.float32)

    # LatentDiffusion.shared_step -> get_input (encode_first_stage, posterior sample) -> forward
    # -> get_learned_conditioning -> p_losses
    moments = quant_conv(encoder(images.double()))
    post = DiagonalGaussianDistribution(moments)
    z = mp.scale_factor * (post.mean + post.std * post_eps.double())
    c = text.encode(list(captions), embedding_manager=em)
    x_noisy = (extract_into_tensor(sqrt_ac, t, z.shape) * z +
               extract_into_tensor(sqrt_1m, t, z.shape) * noise.double())
    out = unet(x_noisy, t, context=c)
    loss = ((noise.double() - out) ** 2).mean(dim=[1, 2, 3]).mean()
    loss.backward()
    grad = param.grad.detach().clone()

    # the optimizer step on float32 rows (the peer's precision)
    p32 = torch.nn.Parameter(rows_init.float().clone())
    p32.grad = grad.float()
    groups = [{"params": [p32], "lr": lr}]
    m32 = {}
    if model_lr > 0:
        for k, v in named.items():
            m32[k] = torch.nn.Parameter(v.detach().float().clone())
            m32[k].grad = v.grad.detach().float()
        groups.append({"params": list(m32.values())})
    opt = torch.optim.AdamW(groups, lr=model_lr if model_lr > 0 else lr)
    opt.step()

    path = os.path.join(FIX, "train_step_%s.h5" % name)
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = "scripts/oracle/train_step.py (torch %s, transformers %s)" % (
            torch.__version__, transformers.__version__)
        f.attrs["num_vectors_per_token"] = nvec
        f.attrs["lr"] = lr
        f.attrs["model_seed"] = MODEL_SEED
        f.attrs["weights_sum"] = wsum
        f.attrs["caption0"] = np.bytes_(captions[0].encode())
        f.attrs["caption1"] = np.bytes_(captions[1].encode())
        f.create_dataset("images", data=images.numpy())
        f.create_dataset("posterior_eps", data=post_eps.numpy())
        f.create_dataset("noise", data=noise.numpy())
        f.create_dataset("t", data=t.numpy().astype(np.int32))
        f.create_dataset("rows_init", data=rows_init.numpy())
        f.create_dataset("loss", data=np.array([loss.item()]))
        f.create_dataset("grad", data=grad.numpy())
        f.create_dataset("rows_after", data=p32.detach().numpy())
        if model_lr > 0:
            f.attrs["model_lr"] = model_lr
            for k in PTI_KEYS:
                g = f.create_group("params/" + k)
                assert torch.equal(before[k].float().double(), before[k])  # f32 weights
                g.create_dataset("grad", data=named[k].grad.numpy())
                g.create_dataset("after", data=m32[k].detach().numpy())
    print("wrote %s: loss %.6f, |grad|max %.3g, rows %s" % (
        path, loss.item(), grad.abs().max().item(), tuple(rows_init.shape)))


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "tests",
                                                                "test_train_step")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([binary, "--export", tmp], check=True, cwd=ROOT)
        build_clip_files(tmp)
        torch.manual_seed(0)
        make("sd", True, 1, ["a photo of *", "a rendition of the *"], 0.01, binary, tmp)
        make("ldm", False, 2, ["a painting in the style of *", "* next to a *"], 0.02, binary,
             tmp)
        make("sd_unfrozen", True, 1, ["a photo of *", "a rendition of the *"], 0.01, binary, tmp,
             model_lr=1e-3)


if __name__ == "__main__":
    main()
