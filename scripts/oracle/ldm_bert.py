"""Our own PyTorch port of the LDM BERTEmbedder transformer (ldm/modules/x_transformer.py's
TransformerWrapper + Encoder as used by LDM text2img-large), written from sd-arch.md §6.2:
learned absolute positions, pre-norm layers ('a', 'f') x depth, attention without q/k/v bias
and with an output bias, GELU feed-forward (mult 4), final LayerNorm, no masking, no dropout.
State-dict keys equal the original's (token_emb, pos_emb.emb, attn_layers.layers.N.{0,1}...,
norm), so the weights load into ti under "cond_stage_model.transformer.".
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x):
        b, n, _ = x.shape
        h, d = self.heads, self.dim_head

        def split(t):
            return t.reshape(b, n, h, d).permute(0, 2, 1, 3)

        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        s = torch.einsum("bhid,bhjd->bhij", q, k) * (d ** -0.5)
        p = s.softmax(dim=-1)
        o = torch.einsum("bhij,bhjd->bhid", p, v).permute(0, 2, 1, 3).reshape(b, n, h * d)
        return self.to_out(o)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(nn.Sequential(nn.Linear(dim, inner), nn.GELU()), nn.Dropout(0.0),
                                 nn.Linear(inner, dim))

    def forward(self, x):
        return self.net(x)


class AbsolutePositionalEmbedding(nn.Module):
    def __init__(self, dim, max_seq_len):
        super().__init__()
        self.emb = nn.Embedding(max_seq_len, dim)

    def forward(self, x):
        return self.emb(torch.arange(x.shape[1], device=x.device))[None, :, :]


class Encoder(nn.Module):
    def __init__(self, dim, depth, heads, dim_head):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.ModuleList([nn.LayerNorm(dim), Attention(dim, heads, dim_head)]))
            self.layers.append(nn.ModuleList([nn.LayerNorm(dim), FeedForward(dim)]))

    def forward(self, x):
        for norm, block in self.layers:
            x = block(norm(x)) + x
        return x


class TransformerWrapper(nn.Module):
    def __init__(self, num_tokens, max_seq_len, dim, depth, heads=8, dim_head=64):
        super().__init__()
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = AbsolutePositionalEmbedding(dim, max_seq_len)
        self.attn_layers = Encoder(dim, depth, heads, dim_head)
        self.norm = nn.LayerNorm(dim)  # the final norm sits in the wrapper: key "norm.*"

    def embed(self, tokens):
        return self.token_emb(tokens)

    def forward_embeddings(self, tok_emb):
        """The rest of forward() given token embeddings (the EmbeddingManager's hook point)."""
        x = tok_emb + self.pos_emb(tok_emb)
        return self.norm(self.attn_layers(x))
