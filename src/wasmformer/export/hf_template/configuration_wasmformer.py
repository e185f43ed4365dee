"""The Hugging Face configuration of an exported wasmformer/1 model (written by `wasmformer export --format hf`).

The sizes of the decoder in wasmformer_decoder.py: vocabulary, residual
width, the heads and FFN units of each block, the residual slots of the
positional features t, t² and r(t), and the precision horizon.
"""

from transformers import PretrainedConfig


class WasmformerConfig(PretrainedConfig):
    model_type = "wasmformer"

    def __init__(self, vocab_size=1, d_model=3, heads_per_layer=(), units_per_layer=(), positional=None,
                 max_exact_tokens=1, **kwargs):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.hidden_size = d_model
        self.heads_per_layer = list(heads_per_layer)
        self.units_per_layer = list(units_per_layer)
        self.num_hidden_layers = len(self.heads_per_layer)
        self.positional = dict(positional or {"t": 0, "t2": 1, "recency": 2})
        self.max_exact_tokens = max_exact_tokens
        kwargs.setdefault("tie_word_embeddings", False)  # embed and unembed are different matrices
        super().__init__(**kwargs)
