"""The torch network of ``NativeGRU4Rec``, apart so that the recommender module imports no torch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GRUEncoder(nn.Module):
    def __init__(self, n_items: int, p: Any) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + 1, p.dim, padding_idx=0)  # id 0 = padding
        self.gru = nn.GRU(p.dim, p.dim, num_layers=p.layers, batch_first=True)
        self.dropout = nn.Dropout(0.1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] item ids (1-based, 0 = pad, left-padded) -> [B, L, dim] states. Left padding
        runs the GRU over zero vectors first, which it learns to ignore; the last state is the
        one that has read every real click."""
        states, _ = self.gru(self.dropout(self.items(seq)))
        return states

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.items.weight[1:].T  # scores over real items
