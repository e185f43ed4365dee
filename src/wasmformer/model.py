"""The model interchange format (wasmformer/1): an ordinary transformer on disk.

A model is a directory with ``config.json`` and ``model.safetensors`` (float64
tensors). This module is the only place that reads or writes that layout; the
format itself is specified in docs/model-format.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "wasmformer/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ModelFormatError(ValueError):
    """A model directory that does not follow wasmformer/1."""


def recency(t: int | np.ndarray) -> float | np.ndarray:
    """The bounded, strictly increasing positional feature r(t) = 1/ln 2 - 1/ln(t+2)."""
    return 1.0 / math.log(2.0) - 1.0 / np.log(np.asarray(t, dtype=np.float64) + 2.0)


@dataclass
class Layer:
    """One transformer block: attention (2-D heads) followed by a gated FFN."""

    wq: np.ndarray  # [2H, D]
    wk: np.ndarray  # [2H, D]
    wv: np.ndarray  # [2H, D]
    wo: np.ndarray  # [D, 2H]
    w_gate: np.ndarray  # [F, D]
    w_up: np.ndarray  # [F, D]
    w_down: np.ndarray  # [D, F]


@dataclass
class Model:
    """A wasmformer/1 model held in memory."""

    vocab: list[str]
    halt_token: str
    positional: dict[str, int]  # {"t": slot, "t2": slot, "recency": slot}
    output_bytes: dict[str, int]
    max_exact_tokens: int
    embed: np.ndarray  # [V, D]
    unembed: np.ndarray  # [V, D]
    layers: list[Layer]
    extra: dict = field(default_factory=dict)  # other config keys, kept verbatim

    @property
    def d_model(self) -> int:
        return self.embed.shape[1]

    @property
    def n_heads(self) -> int:
        return self.layers[0].wq.shape[0] // 2 if self.layers else 0

    @property
    def d_ffn(self) -> int:
        return self.layers[0].w_gate.shape[0] if self.layers else 0

    @property
    def token_ids(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.vocab)}

    @property
    def halt_id(self) -> int:
        return self.vocab.index(self.halt_token)

    def input_vector(self, token_id: int, t: int) -> np.ndarray:
        """The residual stream entering layer 0: the token's embedding plus t, t² and r(t) in their slots."""
        x = self.embed[token_id].copy()
        x[self.positional["t"]] += t
        x[self.positional["t2"]] += t * t
        x[self.positional["recency"]] += recency(t)
        return x

    def tensors(self) -> dict[str, np.ndarray]:
        named = {"embed": self.embed, "unembed": self.unembed}
        for index, layer in enumerate(self.layers):
            for part, name in _LAYER_TENSORS:
                named[f"blocks.{index}.{part}.{name}"] = getattr(layer, name)
        return named

    def nonzero_weights(self) -> int:
        return int(sum(np.count_nonzero(tensor) for tensor in self.tensors().values()))

    def parameter_count(self) -> int:
        return int(sum(tensor.size for tensor in self.tensors().values()))

    def config(self) -> dict:
        config = dict(self.extra)
        config.update(
            format=FORMAT,
            d_model=self.d_model,
            n_layers=len(self.layers),
            n_heads=self.n_heads,
            d_ffn=self.d_ffn,
            d_head=2,
            vocab=list(self.vocab),
            halt_token=self.halt_token,
            positional=dict(self.positional),
            output_bytes=dict(self.output_bytes),
            max_exact_tokens=int(self.max_exact_tokens),
        )
        return config

    def validate(self) -> None:
        """Check shapes and config consistency; raise ModelFormatError naming the problem."""
        vocab_size, d_model = self.embed.shape
        _require(len(self.vocab) == vocab_size, f"vocab has {len(self.vocab)} tokens but embed has {vocab_size} rows")
        _require(len(set(self.vocab)) == vocab_size, "vocab has duplicate token strings")
        for token in self.vocab:
            _require(token and not any(c.isspace() for c in token), f"token string {token!r} is empty or has whitespace")
        _require(self.halt_token in self.vocab, f"halt_token {self.halt_token!r} is not in vocab")
        _require(set(self.positional) == {"t", "t2", "recency"}, f"positional must name t, t2, recency: {self.positional}")
        for name, slot in self.positional.items():
            _require(0 <= slot < d_model, f"positional slot {name}={slot} outside d_model={d_model}")
        for token, value in self.output_bytes.items():
            _require(token in self.vocab, f"output_bytes names unknown token {token!r}")
            _require(0 <= value <= 255, f"output_bytes[{token!r}] = {value} is not a byte")
        _require(self.unembed.shape == (vocab_size, d_model), f"unembed shape {self.unembed.shape} != {(vocab_size, d_model)}")
        heads2, ffn = (2 * self.n_heads, self.d_ffn)
        for index, layer in enumerate(self.layers):
            expected = {
                "wq": (heads2, d_model), "wk": (heads2, d_model), "wv": (heads2, d_model),
                "wo": (d_model, heads2), "w_gate": (ffn, d_model), "w_up": (ffn, d_model),
                "w_down": (d_model, ffn),
            }
            for name, shape in expected.items():
                actual = getattr(layer, name).shape
                _require(actual == shape, f"blocks.{index}: {name} has shape {actual}, expected {shape}")
        for name, tensor in self.tensors().items():
            _require(tensor.dtype == np.float64, f"{name} is {tensor.dtype}, expected float64")
            _require(bool(np.all(np.isfinite(tensor))), f"{name} has non-finite entries")


_LAYER_TENSORS = (
    ("attn", "wq"), ("attn", "wk"), ("attn", "wv"), ("attn", "wo"),
    ("ffn", "w_gate"), ("ffn", "w_up"), ("ffn", "w_down"),
)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ModelFormatError(message)


def save_model(model: Model, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if needed) in the wasmformer/1 format."""
    from safetensors.numpy import save_file

    model.validate()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(tensor, dtype=np.float64) for name, tensor in model.tensors().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(model.config(), indent=1) + "\n")
    return directory


def load_model(directory: str | Path) -> Model:
    """Read a wasmformer/1 model directory; raise ModelFormatError with the reason if it is not one."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelFormatError(f"{directory} is not a model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ModelFormatError(f"{config_path}: invalid JSON ({error})") from None
    if config.get("format") != FORMAT:
        raise ModelFormatError(f"{config_path}: format is {config.get('format')!r}, expected {FORMAT!r}")
    tensors = load_file(str(weights_path))
    try:
        layers = [
            Layer(**{name: tensors[f"blocks.{index}.{part}.{name}"] for part, name in _LAYER_TENSORS})
            for index in range(config["n_layers"])
        ]
        known = {"format", "d_model", "n_layers", "n_heads", "d_ffn", "d_head", "vocab", "halt_token",
                 "positional", "output_bytes", "max_exact_tokens"}
        model = Model(
            vocab=list(config["vocab"]),
            halt_token=config["halt_token"],
            positional={key: int(value) for key, value in config["positional"].items()},
            output_bytes={key: int(value) for key, value in config["output_bytes"].items()},
            max_exact_tokens=int(config["max_exact_tokens"]),
            embed=tensors["embed"],
            unembed=tensors["unembed"],
            layers=layers,
            extra={key: value for key, value in config.items() if key not in known},
        )
    except KeyError as error:
        raise ModelFormatError(f"{directory}: missing {error.args[0]!r}") from None
    model.validate()
    for key in ("d_model", "n_heads", "d_ffn"):
        if config[key] != getattr(model, key):
            raise ModelFormatError(f"{config_path}: {key}={config[key]} disagrees with the tensors ({getattr(model, key)})")
    if config.get("d_head") != 2:
        raise ModelFormatError(f"{config_path}: d_head must be 2")
    return model
