"""A compact GRU4Rec-style next-item model in plain torch (Hidasi et al., 2016).

The same training protocol as ``sasrec_native`` (recommenders/native_sasrec.py: each user's
time-ordered clicks in windows of ``max_len``, the next click predicted at every position, a
full softmax up to ``softmax_items`` items, the user's latest clicks as the query, kept current
through ``update``); only the encoder differs: a GRU over item embeddings instead of causal
self-attention. Sharing the protocol makes the two a clean comparison of sequence encoders. Use
it as ``type: recarena.recommenders.native_gru4rec:NativeGRU4Rec``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from recarena.recommenders.native_sasrec import NativeSASRec, NativeSASRecParams


class NativeGRU4RecParams(NativeSASRecParams):
    """``heads`` is unused (no attention); ``layers`` is the number of GRU layers."""

    attention: ClassVar[bool] = False


class NativeGRU4Rec(NativeSASRec):
    Params = NativeGRU4RecParams

    def __init__(self, params: NativeGRU4RecParams, ctx: Any) -> None:
        super().__init__(params, ctx)
        self.name = "gru4rec_native"

    def _network(self) -> Any:
        from recarena.recommenders.native_gru4rec_net import GRUEncoder

        return GRUEncoder(self.n_items, self.params)
