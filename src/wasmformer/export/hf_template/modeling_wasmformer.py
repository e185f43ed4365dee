"""The Hugging Face model of an exported wasmformer/1 model (written by `wasmformer export --format hf`).

``WasmformerForCausalLM`` wraps the plain PyTorch decoder of
wasmformer_decoder.py (float64 throughout) for ``AutoModelForCausalLM`` with
``trust_remote_code=True``, with its own KV cache so that
``model.generate(input_ids, do_sample=False, max_new_tokens=N)`` decodes
greedily, one forward step per generated token.

Exactness: the model computes in float64 only. The decoder creates its
parameters in float64 whatever dtype ``from_pretrained`` is given, and a
model cast to another dtype afterwards is refused at the first forward. ``generate`` converts the last logits to
float32 before choosing the argmax, which could merge two large logits; so
``forward`` returns the logits minus their row maximum, a shift that changes
neither the softmax nor the argmax: the winner is exactly 0, every other
token stays strictly negative in float32 (float64 differences below 2^-149
do not occur between distinct logits of this model), and an exact tie stays
a tie that the argmax settles on the lowest id, as the format says.
Padding is not supported: every attention_mask entry must be 1.
"""

import torch
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_wasmformer import WasmformerConfig
from .wasmformer_decoder import DTYPE, KVCache, WasmformerDecoder

# transformers 5 names the cache "cache" in model outputs and generate's keyword arguments, 4.x "past_key_values"
_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class WasmformerForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = WasmformerConfig
    base_model_prefix = "decoder"
    main_input_name = "input_ids"
    _no_split_modules = []

    def __init__(self, config: WasmformerConfig):
        super().__init__(config)
        self.decoder = WasmformerDecoder(config.vocab_size, config.d_model, config.heads_per_layer,
                                         config.units_per_layer, config.positional, config.max_exact_tokens)
        self.post_init()

    def _init_weights(self, module):
        """Nothing to initialise: every weight is read from model.safetensors."""

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the decoder keeps its own cache (KVCache), returned by forward

    def get_input_embeddings(self):
        return self.decoder.embed

    def prepare_inputs_for_generation(self, input_ids, cache=None, past_key_values=None, attention_mask=None,
                                      **kwargs):
        """Only the tokens the cache has not seen yet."""
        cache = cache if cache is not None else past_key_values
        seen = cache.get_seq_length() if cache is not None else 0
        return {"input_ids": input_ids[:, seen:], _CACHE_FIELD: cache, "attention_mask": attention_mask}

    def forward(self, input_ids, cache=None, past_key_values=None, attention_mask=None, use_cache=True,
                **kwargs):
        if self.decoder.embed.weight.dtype != DTYPE:
            raise ValueError(f"this model is exact in float64 only; load it with dtype=torch.float64 "
                             f"(its weights are {self.decoder.embed.weight.dtype})")
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("padding (an attention_mask with zeros) is not supported")
        cache = cache if cache is not None else past_key_values
        if cache is None:
            cache = KVCache(len(self.decoder.blocks))
        logits = self.decoder(input_ids, cache)
        shifted = logits - logits.amax(dim=-1, keepdim=True)
        return CausalLMOutputWithPast(logits=shifted, **{_CACHE_FIELD: cache if use_cache else None})
