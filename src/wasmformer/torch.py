"""``wasmformer.torch.load(model_dir)``: a model directory as an ordinary ``torch.nn.Module`` decoder.

The module (export/decoder.py) is built from bias-free nn.Linear layers, an
nn.Embedding, softmax attention and ReGLU, all float64, with a KV cache and
a greedy ``generate(prompt_ids, max_new_tokens, stop_id)``. It needs torch
(``pip install 'wasmformer[torch]'``) and nothing of the native engine.

This module is named ``torch`` inside the ``wasmformer`` package; absolute
imports (``import torch`` below) still reach the real PyTorch.
"""

from __future__ import annotations

from pathlib import Path

from wasmformer.export.common import decoder_state_dict, live_layer, load_representable, require_module

__all__ = ["from_model", "load"]


def load(model_dir: str | Path, prune: bool = True):
    """The wasmformer/1 model in ``model_dir`` as a ``WasmformerDecoder`` (eval mode, float64, on the CPU).

    ``prune`` leaves out the heads and FFN units that add exactly zero
    (export.common.live_layer): the same tokens, several times faster. Raises
    ExportError when the directory is not a model the decoder can reproduce
    exactly, MissingDependencyError when torch is not installed.
    """
    return from_model(load_representable(model_dir), prune)


def from_model(model, prune: bool = True):
    """A ``WasmformerDecoder`` holding the weights of an in-memory ``wasmformer.model.Model``."""
    require_module("torch", "torch")
    import torch

    from wasmformer.export.decoder import WasmformerDecoder

    layers = [live_layer(layer, prune) for layer in model.layers]
    decoder = WasmformerDecoder(len(model.vocab), model.d_model, [layer.heads for layer in layers],
                                [layer.units for layer in layers], model.positional, model.max_exact_tokens)
    weights = decoder_state_dict(model, layers)
    decoder.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in weights.items()})
    return decoder.eval()
