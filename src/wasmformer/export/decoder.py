"""A wasmformer/1 model as an ordinary PyTorch decoder: nn.Linear, nn.Embedding, softmax attention, ReGLU.

The forward pass of docs/model-format.md in float64 with a KV cache and a
greedy ``generate``. This file imports nothing but torch and math: the
Hugging Face export (export/hf.py) ships it verbatim beside its modeling file,
and ``wasmformer.torch.load`` builds it from a model directory.

The head and unit counts may differ from layer to layer: loaders usually
leave out the heads and FFN units that add exactly zero to the residual
stream (``export.common.live_layer``), which changes no token.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DTYPE = torch.float64  # the precision budget (docs/compiler.md) is a float64 argument
HEAD_DIMENSION = 2  # every head is two-dimensional
PREFILL_CHUNK = 64  # positions per forward call when many arrive at once (bounds the [T, P+T] score matrices)
INVERSE_LN2 = 1.0 / math.log(2.0)  # r(t) = 1/ln 2 - 1/ln(t+2), as model.recency computes it


class KVCache:
    """Keys and values of every position so far, per layer, as [B, H, 2, capacity] buffers that double when full.

    Position runs along the last axis so that a step's scores are one
    [H, 1, 2] x [H, 2, t] matrix product over contiguous rows.
    """

    def __init__(self, n_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers
        self.lengths = [0] * n_layers

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Positions cached so far (in layer ``layer_idx``)."""
        return self.lengths[layer_idx] if self.lengths else 0

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Append [B, H, 2, T] keys and values; return this layer's [B, H, 2, P+T] so far."""
        start, count = self.lengths[layer_idx], key.shape[-1]
        self.keys[layer_idx] = _room_for(self.keys[layer_idx], start + count, key)
        self.values[layer_idx] = _room_for(self.values[layer_idx], start + count, value)
        self.keys[layer_idx][..., start:start + count] = key
        self.values[layer_idx][..., start:start + count] = value
        self.lengths[layer_idx] = start + count
        return self.keys[layer_idx][..., :start + count], self.values[layer_idx][..., :start + count]


def _room_for(buffer: torch.Tensor | None, needed: int, like: torch.Tensor) -> torch.Tensor:
    """``buffer`` grown (by doubling) to hold ``needed`` positions along its last axis."""
    capacity = buffer.shape[-1] if buffer is not None else 0
    if needed <= capacity:
        return buffer
    grown = like.new_zeros(*like.shape[:-1], max(needed, 2 * capacity, PREFILL_CHUNK))
    if buffer is not None:
        grown[..., :capacity] = buffer
    return grown


class Attention(nn.Module):
    """2-D heads: s_j = q·k_j (no extra scaling), softmax over every position so far, the weighted mean of values."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        width = HEAD_DIMENSION * n_heads
        self.wq = nn.Linear(d_model, width, bias=False, dtype=DTYPE)
        self.wk = nn.Linear(d_model, width, bias=False, dtype=DTYPE)
        self.wv = nn.Linear(d_model, width, bias=False, dtype=DTYPE)
        self.wo = nn.Linear(width, d_model, bias=False, dtype=DTYPE)

    def forward(self, x: torch.Tensor, cache, layer_index: int) -> torch.Tensor:
        batch, length, _ = x.shape
        query, key, value = (self._split_heads(linear(x)) for linear in (self.wq, self.wk, self.wv))
        keys, values = cache.update(key.transpose(-1, -2), value.transpose(-1, -2), layer_index)  # [B, H, 2, P+T]
        scores = query @ keys  # [B, H, T, P+T]: s_ij = q_i · k_j
        if length > 1:
            scores = scores.masked_fill(_future_mask(length, keys.shape[-1], x.device), -math.inf)
        heads = torch.softmax(scores, dim=-1) @ values.transpose(-1, -2)  # [B, H, T, 2]
        return self.wo(heads.transpose(1, 2).reshape(batch, length, -1))

    def _split_heads(self, projected: torch.Tensor) -> torch.Tensor:
        """[B, T, 2H] -> [B, H, T, 2]: head h owns rows 2h and 2h+1 of the projection."""
        batch, length, _ = projected.shape
        return projected.view(batch, length, self.n_heads, HEAD_DIMENSION).transpose(1, 2)


def _future_mask(length: int, total: int, device) -> torch.Tensor:
    """True where key position j lies after query position i (the new T positions are the last of ``total``)."""
    query_positions = torch.arange(total - length, total, device=device).unsqueeze(1)
    return torch.arange(total, device=device).unsqueeze(0) > query_positions


class ReGLU(nn.Module):
    """The gated FFN: w_down @ (relu(w_gate @ x) * (w_up @ x))."""

    def __init__(self, d_model: int, d_ffn: int):
        super().__init__()
        self.w_gate = nn.Linear(d_model, d_ffn, bias=False, dtype=DTYPE)
        self.w_up = nn.Linear(d_model, d_ffn, bias=False, dtype=DTYPE)
        self.w_down = nn.Linear(d_ffn, d_model, bias=False, dtype=DTYPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(torch.relu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    """x += attention(x); x += ffn(x)."""

    def __init__(self, d_model: int, n_heads: int, d_ffn: int):
        super().__init__()
        self.attn = Attention(d_model, n_heads)
        self.ffn = ReGLU(d_model, d_ffn)

    def forward(self, x: torch.Tensor, cache, layer_index: int) -> torch.Tensor:
        x = x + self.attn(x, cache, layer_index)
        return x + self.ffn(x)


class WasmformerDecoder(nn.Module):
    """The decoder: token embedding plus t, t² and r(t) in their slots, the blocks, the unembedding.

    ``heads_per_layer`` and ``units_per_layer`` give each block's head and FFN unit counts; ``positional`` the
    slots of t, t² and r(t); ``max_exact_tokens`` the precision horizon: a
    position beyond it is refused rather than computed.
    """

    def __init__(self, vocab_size: int, d_model: int, heads_per_layer: list[int], units_per_layer: list[int],
                 positional: dict[str, int], max_exact_tokens: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, dtype=DTYPE)
        self.blocks = nn.ModuleList(Block(d_model, heads, units)
                                    for heads, units in zip(heads_per_layer, units_per_layer, strict=True))
        self.unembed = nn.Linear(d_model, vocab_size, bias=False, dtype=DTYPE)
        self.positional = dict(positional)
        self.max_exact_tokens = max_exact_tokens

    def new_cache(self) -> KVCache:
        return KVCache(len(self.blocks))

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, cache, last_only: bool = False) -> torch.Tensor:
        """Logits [B, T, V] of ``input_ids`` [B, T] at the positions after those in ``cache`` (updated).

        With ``last_only`` just the last position's logits, [B, 1, V] (what greedy decoding reads).
        """
        residuals = [self._forward_chunk(chunk, cache) for chunk in input_ids.split(PREFILL_CHUNK, dim=1)]
        if last_only:
            return self.unembed(residuals[-1][:, -1:])
        return self.unembed(torch.cat(residuals, dim=1) if len(residuals) > 1 else residuals[0])

    def _forward_chunk(self, input_ids: torch.Tensor, cache) -> torch.Tensor:
        """The residual stream [B, T, D] after the last block."""
        start = cache.get_seq_length() if self.blocks else 0
        end = start + input_ids.shape[1]
        if end > self.max_exact_tokens:
            raise ValueError(f"position {end - 1} lies beyond this model's precision horizon "
                             f"(max_exact_tokens = {self.max_exact_tokens})")
        x = self.embed(input_ids) + self._positional_rows(start, end, input_ids.device)
        for index, block in enumerate(self.blocks):
            x = block(x, cache, index)
        return x

    def _positional_rows(self, start: int, end: int, device) -> torch.Tensor:
        """[T, D]: t, t² and r(t) in their slots, zero elsewhere (adding zero leaves the embedding as it is)."""
        t = torch.arange(start, end, dtype=DTYPE, device=device)
        rows = torch.zeros(end - start, self.embed.embedding_dim, dtype=DTYPE, device=device)
        rows[:, self.positional["t"]] = t
        rows[:, self.positional["t2"]] = t * t
        rows[:, self.positional["recency"]] = INVERSE_LN2 - 1.0 / torch.log(t + 2.0)
        return rows

    @torch.no_grad()
    def generate(self, prompt_ids: list[int], max_new_tokens: int, stop_id: int | None = None) -> list[int]:
        """Greedy decoding: feed the prompt, then append the argmax token (lowest id on an exact tie).

        Returns the generated ids, ``stop_id`` included when it came, at most
        ``max_new_tokens`` of them.
        """
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        cache = self.new_cache()
        device = self.unembed.weight.device
        logits = self(torch.tensor([list(prompt_ids)], device=device), cache, last_only=True)
        generated: list[int] = []
        while True:
            next_id = int(torch.argmax(logits[0, -1]))  # torch.argmax returns the first maximal index
            generated.append(next_id)
            if next_id == stop_id or len(generated) >= max_new_tokens:
                return generated
            logits = self(torch.tensor([[next_id]], device=device), cache, last_only=True)
