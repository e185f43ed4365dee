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

from wasmformer.errors import WasmformerError
from wasmformer.graph.precision import EXACT_INTEGER_LIMIT

FORMAT = "wasmformer/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HEAD_DIMENSION = 2  # d_head: every attention head is two-dimensional (a convex-hull query)

# The largest max_exact_tokens any model built by this compiler can have. The
# positional feature t² enters the residual stream as an integer and must stay
# exact in float64 at every position t < T, so (T − 1)² < 2^53: T ≤ 94,906,266
# (docs/compiler.md, "The precision budget"; the other checks there only lower
# it, and the universal machine uses 2^24). A config claiming more is refused.
LARGEST_HORIZON = math.isqrt(EXACT_INTEGER_LIMIT - 1) + 1

# config.json: what the model runs, {"kind": "universal"} (any program in the
# prompt) or {"kind": "specialised", "program": NAME, "sha256": HEX} (one
# program in the weights). wasmformer.machine.purpose reads it; other models
# (the graph-DSL machines) have none.
BUILT_FOR_KEY = "built_for"


class ModelFormatError(WasmformerError, ValueError):
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

    def output_bytes_by_id(self) -> dict[int, int]:
        """output_bytes keyed by token id: what the decoding loops read the output with."""
        ids = self.token_ids
        return {ids[token]: value for token, value in self.output_bytes.items()}

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
        """Check the config and the tensors against each other; raise ModelFormatError naming the problem."""
        check_config(self.config(), "model config")
        check_tensors(self.config(), self.tensors(), "model config", "the tensors")


_LAYER_TENSORS = (
    ("attn", "wq"), ("attn", "wk"), ("attn", "wv"), ("attn", "wo"),
    ("ffn", "w_gate"), ("ffn", "w_up"), ("ffn", "w_down"),
)
_SIZE_KEYS = ("d_model", "n_layers", "n_heads", "d_ffn", "d_head")
_KNOWN_KEYS = {"format", *_SIZE_KEYS, "vocab", "halt_token", "positional", "output_bytes", "max_exact_tokens"}
_POSITIONAL_SLOTS = ("t", "t2", "recency")
BYTE_VALUES = 256


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ModelFormatError(message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- config.json -------------------------------------------------------------------------------------


def check_config(config, where: str) -> None:
    """The config's keys and types (docs/model-format.md), each checked against the others.

    ``where`` names the config in messages (``MODEL_DIR/config.json``).
    """
    _require(isinstance(config, dict), f"{where}: not a JSON object")
    _require(config.get("format") == FORMAT, f"{where}: format is {config.get('format')!r}, expected {FORMAT!r}")
    missing = sorted(_KNOWN_KEYS - set(config))
    _require(not missing, f"{where}: missing {', '.join(repr(key) for key in missing)}")
    for key in _SIZE_KEYS:
        _require(_is_int(config[key]) and config[key] >= 0, f"{where}: {key} is {config[key]!r}, "
                 "expected a non-negative integer")
    _require(config["d_model"] > 0, f"{where}: d_model is 0")
    _require(config["d_head"] == HEAD_DIMENSION, f"{where}: d_head is {config['d_head']}, "
             f"expected {HEAD_DIMENSION} (every head is two-dimensional)")
    vocab = _check_vocab(config["vocab"], where)
    _require(isinstance(config["halt_token"], str) and config["halt_token"] in vocab,
             f"{where}: halt_token {config['halt_token']!r} is not in vocab")
    _check_positional(config["positional"], config["d_model"], where)
    _check_output_bytes(config["output_bytes"], vocab, where)
    _check_horizon(config["max_exact_tokens"], where)
    built_for = config.get(BUILT_FOR_KEY)
    _require(built_for is None or (isinstance(built_for, dict) and isinstance(built_for.get("kind"), str)
                                   and all(isinstance(value, str) for value in built_for.values())),
             f"{where}: {BUILT_FOR_KEY} is {built_for!r}, expected an object of strings with a 'kind'")


def _check_vocab(vocab, where: str) -> set[str]:
    _require(isinstance(vocab, list) and vocab, f"{where}: vocab is {_short(vocab)}, expected a list of token strings")
    for index, token in enumerate(vocab):
        _require(isinstance(token, str) and token and not any(c.isspace() for c in token),
                 f"{where}: vocab[{index}] is {token!r}, expected a non-empty string without whitespace")
    tokens = set(vocab)
    if len(tokens) != len(vocab):
        seen: set[str] = set()
        duplicate = next(token for token in vocab if token in seen or seen.add(token))
        raise ModelFormatError(f"{where}: vocab lists {duplicate!r} twice")
    return tokens


def _check_positional(positional, d_model: int, where: str) -> None:
    _require(isinstance(positional, dict) and sorted(positional) == sorted(_POSITIONAL_SLOTS),
             f"{where}: positional is {_short(positional)}, expected {{\"t\": slot, \"t2\": slot, \"recency\": slot}}")
    for name, slot in positional.items():
        _require(_is_int(slot) and 0 <= slot < d_model,
                 f"{where}: positional slot {name} is {slot!r}, expected an integer in [0, d_model = {d_model})")
    _require(len(set(positional.values())) == len(positional),
             f"{where}: positional slots {positional} are not distinct")


def _check_output_bytes(output_bytes, vocab: set[str], where: str) -> None:
    _require(isinstance(output_bytes, dict), f"{where}: output_bytes is {_short(output_bytes)}, "
             "expected an object {token: byte}")
    for token, value in output_bytes.items():
        _require(token in vocab, f"{where}: output_bytes names {token!r}, which is not in vocab")
        _require(_is_int(value) and 0 <= value < BYTE_VALUES,
                 f"{where}: output_bytes[{token!r}] is {value!r}, not a byte (0..255)")


def _check_horizon(horizon, where: str) -> None:
    _require(_is_int(horizon) and 1 <= horizon <= LARGEST_HORIZON,
             f"{where}: max_exact_tokens is {_short(horizon)}, expected an integer from 1 to {LARGEST_HORIZON:,} "
             "(the largest precision horizon this compiler can build: t² must stay an exact float64 integer)")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the tensors ------------------------------------------------------------------------------------


def tensor_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """Every tensor the config calls for, with its shape (docs/model-format.md)."""
    vocab, d_model = len(config["vocab"]), config["d_model"]
    heads2, ffn = HEAD_DIMENSION * config["n_heads"], config["d_ffn"]
    per_layer = {"wq": (heads2, d_model), "wk": (heads2, d_model), "wv": (heads2, d_model), "wo": (d_model, heads2),
                 "w_gate": (ffn, d_model), "w_up": (ffn, d_model), "w_down": (d_model, ffn)}
    shapes = {"embed": (vocab, d_model), "unembed": (vocab, d_model)}
    for index in range(config["n_layers"]):
        for part, name in _LAYER_TENSORS:
            shapes[f"blocks.{index}.{part}.{name}"] = per_layer[name]
    return shapes


def check_tensors(config: dict, tensors: dict[str, np.ndarray], where: str, source: str) -> None:
    """The tensors are exactly the ones the (already checked) config calls for: names, shapes, float64, finite."""
    blocks = {name.split(".")[1] for name in tensors if name.startswith("blocks.")}
    _require(len(blocks) == config["n_layers"],  # first: n_layers may be huge, and the list below has 7 per layer
             f"{where}: n_layers is {config['n_layers']} but {source} has {len(blocks)} blocks")
    expected = tensor_shapes(config)
    missing = [name for name in expected if name not in tensors]
    if missing:
        more = f" and {len(missing) - 1} more tensors" if len(missing) > 1 else ""
        raise ModelFormatError(f"{where}: {source} lacks {missing[0]}{more}")
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        raise ModelFormatError(f"{where}: {source} has unexpected tensor {unknown[0]!r}")
    for name, shape in expected.items():
        tensor = tensors[name]
        _require(tensor.shape == shape, f"{where}: {name} has shape {list(tensor.shape)} in {source}, "
                 f"expected {list(shape)} from {_shape_keys(name)}")
        _require(tensor.dtype == np.float64, f"{where}: {name} is {tensor.dtype} in {source}, expected float64")
        _require(bool(np.all(np.isfinite(tensor))), f"{where}: {name} has non-finite entries in {source}")


def _shape_keys(name: str) -> str:
    if name in ("embed", "unembed"):
        return "len(vocab) and d_model"
    return "n_heads and d_model" if ".attn." in name else "d_ffn and d_model"


# -- the directory -----------------------------------------------------------------------------------


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
    """Read a wasmformer/1 model directory; raise ModelFormatError with the file and the reason if it is not one.

    The config is checked on its own first (keys, types, ranges), then against
    the tensors, so a damaged or inconsistent model never reaches an engine.
    """
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelFormatError(f"{directory} is not a model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    config = _read_config(config_path)
    check_config(config, str(config_path))
    tensors = _read_tensors(weights_path)
    check_tensors(config, tensors, str(config_path), WEIGHTS_FILE)
    layers = [Layer(**{name: tensors[f"blocks.{index}.{part}.{name}"] for part, name in _LAYER_TENSORS})
              for index in range(config["n_layers"])]
    return Model(
        vocab=list(config["vocab"]),
        halt_token=config["halt_token"],
        positional=dict(config["positional"]),
        output_bytes=dict(config["output_bytes"]),
        max_exact_tokens=config["max_exact_tokens"],
        embed=tensors["embed"],
        unembed=tensors["unembed"],
        layers=layers,
        extra={key: value for key, value in config.items() if key not in _KNOWN_KEYS},
    )


def _read_config(path: Path):
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(f"{path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelFormatError(f"{path}: invalid JSON (nested too deeply)") from None
    except ValueError as error:  # JSONDecodeError, or an integer too long to convert
        raise ModelFormatError(f"{path}: invalid JSON ({error})") from None


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, ValueError, TypeError) as error:  # a damaged header or data, an unknown dtype
        raise ModelFormatError(f"{path}: not a readable safetensors file ({error})") from None
