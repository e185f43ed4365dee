"""The Hugging Face export: a directory for ``AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)``.

Written files: config.json (with ``auto_map``), generation_config.json (plain
greedy decoding that stops at the halt token), the remote code
(configuration_wasmformer.py and modeling_wasmformer.py from hf_template/,
and wasmformer_decoder.py, a verbatim copy of export/decoder.py),
model.safetensors (float64, the heads and units that can change a token:
export.common.live_layer) and a word-level tokenizer for the token language
(tokenizer.json: the vocabulary, whitespace-split; tokenizer_config.json).
Writing needs only safetensors and tokenizers; loading needs torch and
transformers (``pip install 'wasmformer[hf]'``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from wasmformer.export.common import (ExportError, decoder_state_dict, live_layer, load_representable,
                                      require_module)
from wasmformer.model import Model

TEMPLATE_DIR = Path(__file__).resolve().parent / "hf_template"
DECODER_SOURCE = Path(__file__).resolve().parent / "decoder.py"
DECODER_FILE = "wasmformer_decoder.py"  # the name modeling_wasmformer.py imports it by
MODEL_CLASS = "WasmformerForCausalLM"
WEIGHT_PREFIX = "decoder."  # WasmformerForCausalLM.decoder holds the WasmformerDecoder
WRITTEN_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json", "configuration_wasmformer.py",
                 "modeling_wasmformer.py", DECODER_FILE)


def export_hf(model_dir: str | Path, output: str | Path) -> Path:
    """Write the model in ``model_dir`` as a Hugging Face model directory ``output`` (created if needed)."""
    model = load_representable(model_dir)  # a model it cannot represent is refused whatever is installed
    require_module("tokenizers", "hf")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ExportError(f"{output} exists and is not a directory")
    output.mkdir(parents=True, exist_ok=True)
    layers = [live_layer(layer) for layer in model.layers]
    _write_weights(model, layers, output)
    _write_json(output / "config.json", hf_config(model, layers))
    _write_json(output / "generation_config.json", generation_config(model))
    _write_tokenizer(model, output)
    for name in ("configuration_wasmformer.py", "modeling_wasmformer.py"):
        shutil.copyfile(TEMPLATE_DIR / name, output / name)
    shutil.copyfile(DECODER_SOURCE, output / DECODER_FILE)
    return output


def hf_config(model: Model, layers) -> dict:
    """config.json: what WasmformerConfig reads, the auto classes, and the token language for tools."""
    return {
        "architectures": [MODEL_CLASS],
        "model_type": "wasmformer",
        "auto_map": {"AutoConfig": "configuration_wasmformer.WasmformerConfig",
                     "AutoModelForCausalLM": f"modeling_wasmformer.{MODEL_CLASS}"},
        "vocab_size": len(model.vocab),
        "d_model": model.d_model,
        "heads_per_layer": [layer.heads for layer in layers],
        "units_per_layer": [layer.units for layer in layers],
        "positional": dict(model.positional),
        "max_exact_tokens": model.max_exact_tokens,
        "eos_token_id": model.halt_id,
        "pad_token_id": model.halt_id,
        "tie_word_embeddings": False,
        "dtype": "float64",
        "torch_dtype": "float64",
        # what the token language means, for tools (the decoder does not read it)
        "wasmformer": {"halt_token": model.halt_token, "output_bytes": dict(model.output_bytes),
                       **{key: model.extra[key] for key in ("built_for",) if key in model.extra}},
    }


def generation_config(model: Model) -> dict:
    """Plain greedy decoding that stops at the halt token, with no penalty or length rule that could change a token."""
    return {"do_sample": False, "num_beams": 1, "repetition_penalty": 1.0, "eos_token_id": model.halt_id,
            "pad_token_id": model.halt_id, "max_length": model.max_exact_tokens}


def _write_weights(model: Model, layers, output: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {WEIGHT_PREFIX + name: np.ascontiguousarray(array, dtype=np.float64)
               for name, array in decoder_state_dict(model, layers).items()}
    save_file(tensors, str(output / "model.safetensors"), metadata={"format": "pt"})


def _write_tokenizer(model: Model, output: Path) -> None:
    """A word-level tokenizer: token strings split at whitespace, each looked up in the vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({token: index for index, token in enumerate(model.vocab)}))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(output / "tokenizer.json"))
    _write_json(output / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": model.halt_token, "pad_token": model.halt_token,
        "model_max_length": model.max_exact_tokens, "clean_up_tokenization_spaces": False})
    _write_json(output / "special_tokens_map.json", {"eos_token": model.halt_token, "pad_token": model.halt_token})


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")
