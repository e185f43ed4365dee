"""What every export shares: reading a model it can represent exactly (or refusing, saying why), its live layers.

An export is only worth having if it computes the very tokens of the
definition (docs/model-format.md). So before writing anything, each target
checks the model directory: the format version it was written for, a
readable and valid wasmformer/1 model (``model.load_model``: keys, types,
shapes, float64, finite), and whatever the target itself cannot express.
Any problem is an ``ExportError`` naming the directory and the reason; a
missing optional package is a ``MissingDependencyError`` naming the extra
to install.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wasmformer.errors import WasmformerError
from wasmformer.model import CONFIG_FILE, FORMAT, HEAD_DIMENSION, Model, ModelFormatError, load_model

# The format versions these exporters were written for (docs/model-format.md).
SUPPORTED_FORMATS = (FORMAT,)


class ExportError(WasmformerError, ValueError):
    """A model an export cannot represent exactly, or an export that cannot be written."""


class MissingDependencyError(ExportError):
    """An optional package an export needs is not installed."""


def require_module(module: str, extra: str):
    """Import ``module``, or raise MissingDependencyError naming ``pip install 'wasmformer[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"this needs the Python package '{module}', which is not installed: "
                                     f"pip install 'wasmformer[{extra}]'") from None


def load_exportable(model_dir: str | Path) -> Model:
    """The model in ``model_dir``, refused with an ExportError if no export could reproduce it exactly."""
    model_dir = Path(model_dir)
    _check_format_version(model_dir)
    try:
        return load_model(model_dir)
    except ModelFormatError as error:
        raise ExportError(f"cannot export {model_dir}: {error}") from None


def _check_format_version(model_dir: Path) -> None:
    """Refuse a format version these exporters were not written for, before anything else is read."""
    try:
        config = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # unreadable: load_model reports it with the file and the reason
    version = config.get("format") if isinstance(config, dict) else None
    if version not in SUPPORTED_FORMATS:
        raise ExportError(f"cannot export {model_dir}: its format is {version!r}, and the exporters were written "
                          f"for {', '.join(SUPPORTED_FORMATS)} only (another version may compute something else)")


@dataclass
class LiveLayer:
    """One layer restricted to the heads and FFN units that can change the residual stream.

    A head whose output projection is zero, or an FFN unit whose gate row, up
    row or down column is zero, adds exactly zero to every residual slot, so
    leaving it out changes no token (engines/dense.py drops such heads too).
    At least one head and one unit are kept, so that every layer caches every
    position and no tensor is empty.
    """

    wq: np.ndarray  # [2h, D]
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray  # [D, 2h]
    w_gate: np.ndarray  # [f, D]
    w_up: np.ndarray
    w_down: np.ndarray  # [D, f]

    @property
    def heads(self) -> int:
        return self.wq.shape[0] // HEAD_DIMENSION

    @property
    def units(self) -> int:
        return self.w_gate.shape[0]


def live_layer(layer, prune: bool = True) -> LiveLayer:
    """``layer`` as a LiveLayer, pruned (the default) or whole."""
    heads = layer.wo.reshape(layer.wo.shape[0], -1, HEAD_DIMENSION).any(axis=(0, 2))
    units = layer.w_down.any(axis=0) & layer.w_gate.any(axis=1) & layer.w_up.any(axis=1)
    if not prune:
        heads, units = np.ones_like(heads), np.ones_like(units)
    heads[0] |= not heads.any()  # check_positions_countable made sure there is a head
    if len(units):
        units[0] |= not units.any()
    rows = np.repeat(heads, HEAD_DIMENSION)
    return LiveLayer(layer.wq[rows], layer.wk[rows], layer.wv[rows], layer.wo[:, rows],
                     layer.w_gate[units], layer.w_up[units], layer.w_down[:, units])


# The parameters of each block of export/decoder.py's WasmformerDecoder: (submodule, LiveLayer field).
DECODER_LAYER_WEIGHTS = (("attn", "wq"), ("attn", "wk"), ("attn", "wv"), ("attn", "wo"),
                         ("ffn", "w_gate"), ("ffn", "w_up"), ("ffn", "w_down"))


def decoder_state_dict(model: Model, layers: list[LiveLayer]) -> dict[str, np.ndarray]:
    """WasmformerDecoder's parameters by name as float64 arrays (nn.Linear weights are [out, in], as stored)."""
    named = {"embed.weight": model.embed, "unembed.weight": model.unembed}
    for index, layer in enumerate(layers):
        named.update({f"blocks.{index}.{part}.{name}.weight": getattr(layer, name)
                      for part, name in DECODER_LAYER_WEIGHTS})
    return named


def check_positions_countable(model: Model, model_dir: str | Path) -> None:
    """The exports count positions by the length of the layer-0 KV cache, so they need a layer with a head."""
    if not model.layers or model.n_heads == 0:
        raise ExportError(f"cannot export {model_dir}: it has {len(model.layers)} layers of {model.n_heads} heads, "
                          "and the exported decoders count positions by their layer-0 KV cache "
                          "(at least one layer with one head is needed)")


def reads_slot(model: Model, slot: int) -> bool:
    """Whether any weight that multiplies the residual stream (queries, keys, values, FFN, logits) reads ``slot``."""
    readers = [model.unembed] + [getattr(layer, name) for layer in model.layers
                                 for name in ("wq", "wk", "wv", "w_gate", "w_up")]
    return any(bool(np.any(matrix[:, slot])) for matrix in readers)


def load_representable(model_dir: str | Path) -> Model:
    """``load_exportable`` plus the checks every target shares."""
    model = load_exportable(model_dir)
    check_positions_countable(model, model_dir)
    return model
