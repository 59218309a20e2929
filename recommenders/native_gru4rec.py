"""A compact GRU4Rec-style next-item model in plain torch (Hidasi et al., 2016).

The same training protocol as ``sasrec_native`` (recommenders/native_sasrec.py: every
(prefix -> next click) window of each user's time-ordered clicks, full softmax, the user's
latest clicks as the query, kept current through ``update``); only the encoder differs: a GRU
over item embeddings instead of causal self-attention. Sharing the protocol makes the two a
clean comparison of sequence encoders. Use it as ``type:
recarena.recommenders.native_gru4rec:NativeGRU4Rec``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recarena.recommenders.native_sasrec import NativeSASRec, NativeSASRecParams


class NativeGRU4RecParams(NativeSASRecParams):
    """``heads`` is unused (no attention); ``layers`` is the number of GRU layers."""


class NativeGRU4Rec(NativeSASRec):
    Params = NativeGRU4RecParams

    def __init__(self, params: NativeGRU4RecParams, ctx: Any) -> None:
        super().__init__(params, ctx)
        self.name = "gru4rec_native"

    def _train(self, windows: np.ndarray, targets: np.ndarray) -> Any:
        import torch  # lazily: listing and validating never load torch

        from recarena.recommenders.native_gru4rec_net import GRUEncoder

        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.rng.integers(2**62)))
            net = GRUEncoder(self.n_items, p)
            optimizer = torch.optim.Adam(net.parameters(), lr=p.lr)
            net.train()
            x_all, y_all = torch.from_numpy(windows), torch.from_numpy(targets)
            for _ in range(p.epochs):
                for batch in np.array_split(
                    self.rng.permutation(len(targets)), max(1, len(targets) // p.batch_size)
                ):
                    states = net(x_all[batch])[:, -1]
                    loss = torch.nn.functional.cross_entropy(net.logits(states), y_all[batch])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        net.eval()
        return net
