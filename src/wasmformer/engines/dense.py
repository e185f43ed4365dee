"""The dense engine: the forward pass of docs/model-format.md written literally.

Softmax attention over the whole KV cache, O(t) per token. It is the
specification every faster engine must agree with, so it stays short and
obvious: no sparsity, no hulls, no shortcuts. The one thing left out is what
cannot change the result: a head whose output projection is zero (the format
pads every layer to the same number of heads) is not computed.
"""

from __future__ import annotations

import numpy as np

from wasmformer.model import Model


class DenseEngine:
    name = "dense"

    def __init__(self, model: Model):
        self.model = model
        self.position = 0
        self.heads = [_read_heads(layer) for layer in model.layers]
        self.keys = [_GrowingArray(len(heads[0])) for heads in self.heads]
        self.values = [_GrowingArray(len(heads[0])) for heads in self.heads]

    def step(self, token_id: int) -> int:
        """Feed the token at the next position; the argmax of the logits (lowest id on exact ties)."""
        return int(np.argmax(self.model.unembed @ self.residual(token_id)))

    def residual(self, token_id: int) -> np.ndarray:
        """Feed the token at the next position; the residual stream after the last layer."""
        model, t = self.model, self.position
        x = model.input_vector(token_id, t)
        for layer, (wq, wk, wv, wo), key_cache, value_cache in zip(model.layers, self.heads, self.keys, self.values):
            if len(wq):
                q = wq @ x
                keys = key_cache.append(wk @ x).reshape(t + 1, -1, 2)  # [t+1, H, 2]
                values = value_cache.append(wv @ x).reshape(t + 1, -1, 2)
                scores = np.einsum("jhd,hd->hj", keys, q.reshape(-1, 2))  # [H, t+1]
                weights = np.exp(scores - scores.max(axis=1, keepdims=True))
                weights /= weights.sum(axis=1, keepdims=True)
                heads_out = np.einsum("hj,jhd->hd", weights, values).reshape(-1)
                x = x + wo @ heads_out
            x = x + layer.w_down @ (np.maximum(layer.w_gate @ x, 0.0) * (layer.w_up @ x))
        self.position += 1
        return x


def _read_heads(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(W_q, W_k, W_v, W_o) restricted to the heads whose output some slot reads."""
    read = np.repeat(layer.wo.reshape(layer.wo.shape[0], -1, 2).any(axis=(0, 2)), 2)
    return layer.wq[read], layer.wk[read], layer.wv[read], layer.wo[:, read]


class _GrowingArray:
    """Rows appended one at a time, stored contiguously with amortized doubling."""

    def __init__(self, width: int):
        self.data = np.zeros((64, width))
        self.rows = 0

    def append(self, row: np.ndarray) -> np.ndarray:
        if self.rows == len(self.data):
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        self.data[self.rows] = row
        self.rows += 1
        return self.data[: self.rows]
