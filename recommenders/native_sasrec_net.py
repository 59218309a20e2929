"""The torch network of ``sasrec_native``, apart so that the recommender module imports no torch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _Encoder(nn.Module):
    def __init__(self, n_items: int, p: Any) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + 1, p.dim, padding_idx=0)  # id 0 = padding
        self.positions = nn.Embedding(p.max_len, p.dim)
        layer = nn.TransformerEncoderLayer(
            p.dim, p.heads, dim_feedforward=2 * p.dim, dropout=0.1, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(p.dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] item ids (1-based, 0 = pad, left-padded) -> [B, L, dim] states."""
        length = seq.shape[1]
        x = self.items(seq) + self.positions(torch.arange(length))[None]
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        pad = seq == 0
        if len(self.encoder.layers) == 1:
            return self.norm(self.encoder(x, mask=causal, src_key_padding_mask=pad))
        # A left-padded position may attend to nothing (its earlier keys are all padding), and
        # torch's inference path answers NaN there; the next layer multiplied that NaN by its
        # zero attention weight, so with layers >= 2 every state of a short history was NaN at
        # recommend time and the cell failed. Padded states are zeroed between layers; the
        # real positions never attend to them, so their states are unchanged.
        for layer in self.encoder.layers:
            x = layer(x, src_mask=causal, src_key_padding_mask=pad).masked_fill(pad[..., None], 0)
        return self.norm(x)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.items.weight[1:].T  # scores over real items
