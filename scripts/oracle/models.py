"""Writes tests/fixtures/model_<net>.h5: tiny networks of the real architectures, their weights
under the original checkpoint keys, inputs, outputs and input gradients, all in float64.

  unet:  diffusers UNet2DConditionModel (SD v1 block types), weights converted to the
         original openaimodel key layout (sd-arch.md §2.3).
  vae:   diffusers AutoencoderKL, converted to the original kl-f8 key layout.
  clip:  transformers CLIPTextModel (quick-GELU, causal), keys under text_model.
  bert:  our own port of the LDM x-transformers encoder (scripts/oracle/ldm_bert.py).
  bert_diffusers: an independent implementation of the same network, diffusers' LDMBertModel,
         with model_bert.h5's weights mapped to its names and the same inputs
         (model_bert_diffusers.h5; run after bert).

For the text encoders the trainable input is the placeholder vectors (rows): the fixture
holds token ids where -1-k means "trainable row k", exactly ti's embedding-op convention, and
the gradient with respect to those rows (the textual-inversion gradient).

Usage: /opt/oracle-venv/bin/python scripts/oracle/models.py [unet vae clip bert bert_diffusers]

diffusers computes the sinusoidal timestep embedding in float32 even in a float64 model; the
fixture replaces it with the same formula in float64 so the f64 comparison is meaningful (ti's
f32 kernel follows the float32 recipe; its f32 check uses looser tolerances).
"""
import math
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ldm_bert  # noqa: E402

torch.set_default_dtype(torch.float64)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")


def timestep_embedding_f64(timesteps, embedding_dim, flip_sin_to_cos=False,
                           downscale_freq_shift=1, scale=1, max_period=10000):
    half = embedding_dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float64)
    exponent = exponent / (half - downscale_freq_shift)
    emb = timesteps[:, None].double() * torch.exp(exponent)[None, :] * scale
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if embedding_dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1, 0, 0))
    return emb


def randomize(module, seed, std=0.3):
    """Random weights of a sane scale (norms near 1, small biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1:
                if name.endswith("weight"):
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * std / math.sqrt(max(1, fan_in)) * 2)
            # float32-representable values: stored as float32 without loss (smaller fixtures)
            p.copy_(p.float().double())


def write(path, weights, arrays, attrs):
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = "scripts/oracle/models.py (torch %s)" % torch.__version__
        for k, v in attrs.items():
            f.attrs[k] = v
        w = f.create_group("weights")
        for k, v in weights.items():
            w.create_dataset(k, data=v.detach().float().numpy())
        for k, v in arrays.items():
            f.create_dataset(k, data=v.detach().numpy() if torch.is_tensor(v) else v)
    print("wrote %s (%d weights)" % (path, len(weights)))


# ---- UNet -------------------------------------------------------------------------------------

def unet_to_original(sd, nrb, n_levels, attn_levels):
    """diffusers UNet2DConditionModel keys -> openaimodel keys (sd-arch.md §2.3), general nrb."""
    out = {}

    def put(dst, src_prefix, key, inner_map=None):
        rest = key[len(src_prefix):]
        if inner_map:
            for a, b in inner_map:
                if rest.startswith(a):
                    rest = b + rest[len(a):]
                    break
        out[dst + rest] = sd[key]

    res_map = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."),
               ("time_emb_proj.", "emb_layers.1."), ("norm2.", "out_layers.0."),
               ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection.")]
    for key in sd:
        if key.startswith("time_embedding.linear_1."):
            put("time_embed.0.", "time_embedding.linear_1.", key)
        elif key.startswith("time_embedding.linear_2."):
            put("time_embed.2.", "time_embedding.linear_2.", key)
        elif key.startswith("conv_in."):
            put("input_blocks.0.0.", "conv_in.", key)
        elif key.startswith("conv_norm_out."):
            put("out.0.", "conv_norm_out.", key)
        elif key.startswith("conv_out."):
            put("out.2.", "conv_out.", key)
        elif key.startswith("down_blocks."):
            parts = key.split(".")
            i, kind, j = int(parts[1]), parts[2], int(parts[3])
            pre = "down_blocks.%d.%s.%d." % (i, kind, j)
            if kind == "resnets":
                put("input_blocks.%d.0." % ((nrb + 1) * i + j + 1), pre, key, res_map)
            elif kind == "attentions":
                put("input_blocks.%d.1." % ((nrb + 1) * i + j + 1), pre, key)
            elif kind == "downsamplers":
                put("input_blocks.%d.0.op." % ((nrb + 1) * (i + 1)), pre + "conv.", key)
        elif key.startswith("up_blocks."):
            parts = key.split(".")
            i, kind, j = int(parts[1]), parts[2], int(parts[3])
            pre = "up_blocks.%d.%s.%d." % (i, kind, j)
            level = n_levels - 1 - i
            if kind == "resnets":
                put("output_blocks.%d.0." % ((nrb + 1) * i + j), pre, key, res_map)
            elif kind == "attentions":
                put("output_blocks.%d.1." % ((nrb + 1) * i + j), pre, key)
            elif kind == "upsamplers":
                sub = 2 if level in attn_levels else 1
                put("output_blocks.%d.%d.conv." % ((nrb + 1) * i + nrb, sub), pre + "conv.", key)
        elif key.startswith("mid_block.resnets."):
            j = int(key.split(".")[2])
            put("middle_block.%d." % (2 * j), "mid_block.resnets.%d." % j, key, res_map)
        elif key.startswith("mid_block.attentions.0."):
            put("middle_block.1.", "mid_block.attentions.0.", key)
        else:
            raise KeyError("unmapped diffusers key " + key)
    return out


def make_unet():
    import diffusers.models.embeddings as demb
    from diffusers import UNet2DConditionModel
    demb.get_timestep_embedding = timestep_embedding_f64
    # SD v1 family, tiny: 2 levels (32, 64 channels), 2 res blocks per level, attention at
    # the full resolution only (attention_resolutions [1]), 2 heads, context width 16.
    cfg = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
               block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
               mid_block_type="UNetMidBlock2DCrossAttn", cross_attention_dim=16,
               attention_head_dim=2, norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True,
               freq_shift=0, act_fn="silu", use_linear_projection=False)
    m = UNet2DConditionModel(**cfg).double()
    randomize(m, 1)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 8, 8, generator=g).requires_grad_(True)
    t = torch.tensor([17.0, 981.0])
    c = torch.randn(2, 5, 16, generator=g).requires_grad_(True)
    out = m(x, t, encoder_hidden_states=c).sample
    dout = torch.randn(out.shape, generator=g)
    out.backward(dout)
    sd = unet_to_original(m.state_dict(), 2, 2, attn_levels={0})
    weights = {"model.diffusion_model." + k: v for k, v in sd.items()}
    write(os.path.join(FIX, "model_unet.h5"), weights,
          dict(x=x, t=t, context=c, out=out, dout=dout, grad_x=x.grad, grad_context=c.grad),
          dict(hparams="in 4, out 4, mc 32, nrb 2, mult [1,2], attention [1], heads 2, "
                       "depth 1, context 16"))


# ---- VAE ---------------------------------------------------------------------------------------

def vae_to_original(sd, n_levels):
    out = {}
    for key, v in sd.items():
        k = key
        k = k.replace("conv_shortcut.", "nin_shortcut.")
        k = k.replace("conv_norm_out.", "norm_out.")
        if k.startswith("encoder.down_blocks."):
            p = k.split(".")
            i = int(p[2])
            if p[3] == "resnets":
                k = "encoder.down.%d.block.%s.%s" % (i, p[4], ".".join(p[5:]))
            elif p[3] == "downsamplers":
                k = "encoder.down.%d.downsample.%s" % (i, ".".join(p[5:]))
        elif k.startswith("decoder.up_blocks."):
            p = k.split(".")
            i = n_levels - 1 - int(p[2])
            if p[3] == "resnets":
                k = "decoder.up.%d.block.%s.%s" % (i, p[4], ".".join(p[5:]))
            elif p[3] == "upsamplers":
                k = "decoder.up.%d.upsample.%s" % (i, ".".join(p[5:]))
        elif ".mid_block.resnets." in k:
            p = k.split(".")
            k = "%s.mid.block_%d.%s" % (p[0], int(p[3]) + 1, ".".join(p[4:]))
        elif ".mid_block.attentions.0." in k:
            p = k.split(".")
            rest = ".".join(p[4:])
            for a, b in [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."),
                         ("to_v.", "v."), ("to_out.0.", "proj_out.")]:
                if rest.startswith(a):
                    rest = b + rest[len(a):]
            k = "%s.mid.attn_1.%s" % (p[0], rest)
            if rest.endswith("weight") and v.dim() == 2:
                v = v[:, :, None, None]  # linear -> 1x1 conv kernel
        out[k] = v
    return out


def make_vae():
    from diffusers import AutoencoderKL
    m = AutoencoderKL(in_channels=3, out_channels=3,
                      down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                      up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                      block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
                      norm_num_groups=32, sample_size=16).double()
    randomize(m, 3)
    # diffusers' VAE attention "upcasts" the softmax with .float(), which in a float64 model
    # rounds the probabilities to float32; turn that off so the fixture is float64 throughout
    for mod in m.modules():
        if hasattr(mod, "upcast_softmax"):
            mod.upcast_softmax = False
    g = torch.Generator().manual_seed(4)
    img = (torch.rand(2, 3, 16, 16, generator=g) * 2 - 1).requires_grad_(True)
    moments = m.quant_conv(m.encoder(img))
    dmom = torch.randn(moments.shape, generator=g)
    moments.backward(dmom)
    z = torch.randn(2, 4, 8, 8, generator=g).requires_grad_(True)
    dec = m.decode(z).sample
    ddec = torch.randn(dec.shape, generator=g)
    dec.backward(ddec)
    weights = {"first_stage_model." + k: v for k, v in vae_to_original(m.state_dict(), 2).items()}
    write(os.path.join(FIX, "model_vae.h5"), weights,
          dict(img=img, moments=moments, dmoments=dmom, grad_img=img.grad, z=z, dec=dec,
               ddec=ddec, grad_z=z.grad),
          dict(hparams="in 3, out 3, ch 32, mult [1,2], nrb 1, z 4, double_z, embed 4, res 16"))


# ---- text encoders -------------------------------------------------------------------------------

def ids_with_placeholders(g, batch, T, vocab, n_rows):
    ids = torch.randint(0, vocab, (batch, T), generator=g)
    # two placeholder positions per row (a 2-vector placeholder), trainable rows -1, -2
    ids[0, 2], ids[0, 3] = -1, -2
    ids[1, 4], ids[1, 5] = -1, -2
    if n_rows > 2:
        ids[1, 1] = -3
    return ids


def substitute(tok_emb, ids, rows):
    """token embeddings with rows[-1-id] where id < 0 (the EmbeddingManager substitution)."""
    safe = ids.clamp(min=0)
    e = torch.nn.functional.embedding(safe, tok_emb.weight)
    mask = ids < 0
    idx = (-1 - ids).clamp(min=0)
    return torch.where(mask[..., None], rows[idx], e)


def make_clip():
    from transformers import CLIPTextConfig, CLIPTextModel
    cfg = CLIPTextConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16,
                         hidden_act="quick_gelu", layer_norm_eps=1e-5)
    m = CLIPTextModel(cfg).double()
    randomize(m, 5, std=0.5)
    g = torch.Generator().manual_seed(6)
    ids = ids_with_placeholders(g, 2, 11, 97, 3)
    rows = torch.randn(3, 32, generator=g).requires_grad_(True)
    emb = m.text_model.embeddings
    holder = {}

    def hook(mod, inp, out):
        return substitute(mod, holder["ids"], rows)

    emb.token_embedding.register_forward_hook(lambda mod, inp, out: hook(mod, inp, out))
    holder["ids"] = ids
    out = m(input_ids=ids.clamp(min=0)).last_hidden_state
    dout = torch.randn(out.shape, generator=g)
    out.backward(dout)
    weights = {"cond_stage_model.transformer." + k: v for k, v in m.state_dict().items()
               if not k.endswith("position_ids")}
    write(os.path.join(FIX, "model_clip.h5"), weights,
          dict(ids=ids.double(), rows=rows, out=out, dout=dout, grad_rows=rows.grad),
          dict(hparams="vocab 97, positions 16, width 32, layers 2, heads 4 x 8, ff 64"))


def make_bert():
    m = ldm_bert.TransformerWrapper(num_tokens=101, max_seq_len=16, dim=32, depth=2, heads=2,
                                    dim_head=8).double()
    randomize(m, 7, std=0.5)
    g = torch.Generator().manual_seed(8)
    ids = ids_with_placeholders(g, 2, 9, 101, 2)
    rows = torch.randn(2, 32, generator=g).requires_grad_(True)
    out = m.forward_embeddings(substitute(m.token_emb, ids, rows))
    dout = torch.randn(out.shape, generator=g)
    out.backward(dout)
    weights = {"cond_stage_model.transformer." + k: v for k, v in m.state_dict().items()}
    write(os.path.join(FIX, "model_bert.h5"), weights,
          dict(ids=ids.double(), rows=rows, out=out, dout=dout, grad_rows=rows.grad),
          dict(hparams="vocab 101, positions 16, width 32, layers 2, heads 2 x 8, ff 128"))


def bert_key_to_diffusers(k):
    """Original (x-transformers) key -> diffusers LDMBertModel key, e.g.
    attn_layers.layers.2.1.to_q.weight -> model.layers.1.self_attn.q_proj.weight. Layer 2i of
    the original is layer i's attention block, layer 2i+1 its feed-forward block."""
    if k.startswith("token_emb."):
        return "model.embed_tokens." + k[len("token_emb."):]
    if k.startswith("pos_emb.emb."):
        return "model.embed_positions." + k[len("pos_emb.emb."):]
    if k.startswith("norm."):
        return "model.layer_norm." + k[len("norm."):]
    parts = k.split(".")
    assert parts[:2] == ["attn_layers", "layers"], k
    n, sub, rest = int(parts[2]), parts[3], ".".join(parts[4:])
    i, ff = n // 2, n % 2
    if sub == "0":
        return "model.layers.%d.%s.%s" % (i, "final_layer_norm" if ff else "self_attn_layer_norm",
                                           rest)
    if not ff:
        proj = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}
        name, tail = rest.split(".", 1)
        return "model.layers.%d.self_attn.%s.%s" % (i, proj[name], tail)
    fc = {"net.0.0": "fc1", "net.2": "fc2"}
    name, tail = rest.rsplit(".", 1)
    return "model.layers.%d.%s.%s" % (i, fc[name], tail)


def make_bert_diffusers():
    """An independent implementation of the same network: diffusers' LDMBertModel (the LDM
    text2img-large text encoder as diffusers ships it), loaded with model_bert.h5's weights mapped
    to its names, run on model_bert.h5's inputs. ti is checked against both fixtures."""
    from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import (LDMBertConfig,
                                                                                LDMBertModel)
    src = os.path.join(FIX, "model_bert.h5")
    prefix = "cond_stage_model.transformer."
    with h5py.File(src, "r") as f:
        orig = {k[len(prefix):]: torch.tensor(np.array(f["weights"][k]), dtype=torch.float64)
                for k in f["weights"].keys()}
        ids = torch.tensor(np.array(f["ids"])).long()
        rows0 = torch.tensor(np.array(f["rows"]))
        dout = torch.tensor(np.array(f["dout"]))
        port_out = torch.tensor(np.array(f["out"]))
    cfg = LDMBertConfig(vocab_size=101, max_position_embeddings=16, encoder_layers=2,
                        encoder_ffn_dim=128, encoder_attention_heads=2, head_dim=8, d_model=32,
                        dropout=0.0, activation_function="gelu")
    m = LDMBertModel(cfg).double().eval()
    state = {bert_key_to_diffusers(k): v for k, v in orig.items()}
    missing, unexpected = m.load_state_dict(state, strict=False)
    # to_logits is LDMBertModel's LM head, which the embedder never uses
    assert set(missing) == {"to_logits.weight", "to_logits.bias"}, missing
    assert not unexpected, unexpected
    rows = rows0.clone().requires_grad_(True)
    emb = substitute(m.model.embed_tokens, ids, rows)
    out = m(inputs_embeds=emb, return_dict=True).last_hidden_state
    out.backward(dout)
    print("diffusers LDMBertModel vs our port: max |diff| %.3g" % (out - port_out).abs().max())
    weights = {prefix + k: v for k, v in orig.items()}
    write(os.path.join(FIX, "model_bert_diffusers.h5"), weights,
          dict(ids=ids.double(), rows=rows0, out=out, dout=dout, grad_rows=rows.grad),
          dict(hparams="vocab 101, positions 16, width 32, layers 2, heads 2 x 8, ff 128",
               implementation="diffusers %s LDMBertModel" % __import__("diffusers").__version__))


if __name__ == "__main__":
    todo = sys.argv[1:] or ["unet", "vae", "clip", "bert", "bert_diffusers"]
    for name in todo:
        {"unet": make_unet, "vae": make_vae, "clip": make_clip, "bert": make_bert,
         "bert_diffusers": make_bert_diffusers}[name]()
