"""A hand-built wasmformer/1 model exercising every kind of head the engines specialise.

Each token id v carries table features (its value, an address, flags); the
model computes the next id from lookups into the past:

- layer 0: the previous token (positional head, key (2t, -t^2) queried at t-1);
  the mean of a 0/1 flag (constant key); the newest uncleared token at a
  queried address (a 'latest' head, key (2B a, -B a^2 + t - M clear)); a head
  whose keys repeat (key (2B a, -B a^2), every token with the queried address
  ties and carries the same value); FFN: count = mean * (t+1) and a squared key.
- layer 1: the count snapped to an exact integer (positional head, non-integer
  query); a 'latest' head over a 2-level address (a squared key from the FFN);
  a padding head and a head whose output goes nowhere (both skipped); FFN: a
  majority flag and a halt flag.
- layer 2: optionally a 'latest' head tie-broken by recency (non-integer keys:
  the native engine's scan fallback); a head whose query y is +S, -S or 0
  depending on the token (both hull chains and the extreme-x ties); FFN: the
  next id as a sum modulo V-1.

``banks`` adds that many 'latest' heads to layer 0, one per memory bank: a
token belongs to one bank and is cleared in every other (key y - M), and
queries its own bank at qaddr but every other bank at address 0, the same
query at most tokens: idle heads, as a machine with one head per bank of
linear memory has. Their outputs go to slots nothing reads (compare residuals).

``recall_values`` adds two positional heads to layer 2 (fetching t-1 and t-2)
whose values read slots that earlier layers computed (integers of 8, 16 and more
than 16 bits, and a fraction), t, t2, recency and embedding slots, written to
slots nothing reads: the native engine recomputes such values for past
positions, which only the residual stream shows (not the trace).

Every score gap is at least the temperature 2^11, so the dense softmax is
one-hot and every engine must produce the same trace. ``wide`` repeats the
lookups in extra heads and layers (writing to slots nothing reads) to look like
a real machine's head count for benchmarks.
"""

from __future__ import annotations

import numpy as np

from wasmformer.model import Layer, Model

TEMPERATURE = 2.0**11
SLOT_NAMES = (
    "t t2 recency one val addr asq qaddr flag clear faddr prev prevaddr meanf mem dup count ksq cnt mem2 bal "
    "hflag mem3 next sgn flip"
).split()
RECALL_SLOT_NAMES = ("r0", "r1", "r2", "r3", "big")  # only with recall_values


def build_model(
    vocab_size: int = 64,
    addresses: int = 16,
    max_exact_tokens: int = 100_000,
    halt_after: int | None = None,
    recency_head: bool = False,
    wide: int = 0,
    recall_values: bool = False,
    banks: int = 0,
) -> Model:
    slot = {name: index for index, name in enumerate(SLOT_NAMES)}
    extra_slots = 2 * wide * 3
    d_model = len(SLOT_NAMES) + extra_slots
    if recall_values:
        slot.update({name: d_model + index for index, name in enumerate(RECALL_SLOT_NAMES)})
        d_model += len(RECALL_SLOT_NAMES)
    bank_base = d_model
    d_model += 4 * banks  # per bank: its clear flag, its query address, its two outputs
    n_heads, d_ffn = 4 + wide + banks, 12
    halt_id = vocab_size - 1
    modulus = vocab_size - 1  # next ids stay below the halt id
    tie_scale = 1 << max(0, (max_exact_tokens - 1).bit_length())  # B > every position
    clear_penalty = tie_scale << 17  # M, a multiple of B above every live score
    recency_tie_scale, recency_weight = 2.0**24, 2.0**22
    vocab = [f"v{i}" for i in range(vocab_size - 1)] + ["halt"]

    ids = np.arange(vocab_size)
    addr = (ids * 7) % addresses
    embed = np.zeros((vocab_size, d_model))
    embed[:, slot["one"]] = 1
    embed[:, slot["val"]] = ids
    embed[:, slot["addr"]] = addr
    embed[:, slot["asq"]] = addr * addr
    embed[:, slot["qaddr"]] = (addr + 5) % addresses
    embed[:, slot["flag"]] = ids % 2 == 0
    embed[:, slot["clear"]] = ids % 5 == 4
    embed[:, slot["faddr"]] = 3 * addr + 1
    embed[:, slot["sgn"]] = np.array([1, -1, 0])[ids % 3]

    bank = (ids // 3) % max(banks, 1)
    for b in range(banks):
        embed[:, bank_base + 4 * b] = bank != b  # cleared in every bank but its own
        embed[:, bank_base + 4 * b + 1] = np.where(bank == b, (addr + 5) % addresses, 0)

    def empty_layer() -> Layer:
        return Layer(
            wq=np.zeros((2 * n_heads, d_model)), wk=np.zeros((2 * n_heads, d_model)),
            wv=np.zeros((2 * n_heads, d_model)), wo=np.zeros((d_model, 2 * n_heads)),
            w_gate=np.zeros((d_ffn, d_model)), w_up=np.zeros((d_ffn, d_model)), w_down=np.zeros((d_model, d_ffn)),
        )

    def latest_key(layer, head, key_terms, square_terms, scale=tie_scale):
        """key = (2B k, -B k^2 + t - M clear) with k = sum(coef * slot)."""
        for name, coef in key_terms.items():
            layer.wk[2 * head, slot[name]] = 2 * scale * coef
        for name, coef in square_terms.items():
            layer.wk[2 * head + 1, slot[name]] = -scale * coef
        layer.wk[2 * head + 1, slot["t"]] = 1
        layer.wk[2 * head + 1, slot["clear"]] = -clear_penalty

    def query(layer, head, terms):
        """q = S (q, 1) with q = sum(coef * slot)."""
        for name, coef in terms.items():
            layer.wq[2 * head, slot[name]] += TEMPERATURE * coef
        layer.wq[2 * head + 1, slot["one"]] = TEMPERATURE

    def step_units(layer, first_unit, b_terms, out_slot, weight=1.0):
        step_units_sum(layer, slot, first_unit, b_terms, out_slot, weight)

    layers = [empty_layer(), empty_layer(), empty_layer()]
    # ---- layer 0
    l0 = layers[0]
    l0.wq[0, slot["t"]], l0.wq[0, slot["one"]], l0.wq[1, slot["one"]] = TEMPERATURE, -TEMPERATURE, TEMPERATURE
    l0.wk[0, slot["t"]], l0.wk[1, slot["t2"]] = 2, -1  # positional: the token at t-1
    l0.wv[0, slot["val"]], l0.wv[1, slot["addr"]] = 1, 1
    l0.wo[slot["prev"], 0], l0.wo[slot["prevaddr"], 1] = 1, 1
    l0.wq[2, slot["val"]] = TEMPERATURE  # mean head: the query does not matter, the key is constant
    l0.wk[3, slot["one"]] = 5
    l0.wv[2, slot["flag"]] = 1
    l0.wo[slot["meanf"], 2] = 1
    query(l0, 2, {"qaddr": 1})  # latest uncleared token at address qaddr
    latest_key(l0, 2, {"addr": 1}, {"asq": 1})
    l0.wv[4, slot["val"]] = 1
    l0.wo[slot["mem"], 4] = 1
    query(l0, 3, {"addr": 1})  # repeated keys: every token at my address ties, same value
    l0.wk[6, slot["addr"]] = 2 * tie_scale
    l0.wk[7, slot["asq"]] = -tie_scale
    l0.wv[6, slot["faddr"]] = 1
    l0.wo[slot["dup"], 6] = 1
    l0.w_gate[0, slot["t"]], l0.w_gate[0, slot["one"]] = 1, 1  # count = meanf * relu(t + 1)
    l0.w_up[0, slot["meanf"]] = 1
    l0.w_down[slot["count"], 0] = 1
    key2 = {"addr": 1, "prevaddr": addresses}  # ksq = key2 * relu(key2)
    for name, coef in key2.items():
        l0.w_gate[1, slot[name]] = coef
        l0.w_up[1, slot[name]] = coef
    l0.w_down[slot["ksq"], 1] = 1
    # ---- layer 1
    l1 = layers[1]
    l1.wq[0, slot["count"]], l1.wq[1, slot["one"]] = TEMPERATURE, TEMPERATURE  # snap the count
    l1.wk[0, slot["t"]], l1.wk[1, slot["t2"]] = 2, -1
    l1.wv[0, slot["t"]] = 1
    l1.wo[slot["cnt"], 0] = 1
    query(l1, 1, {"qaddr": 1, "prevaddr": addresses})
    latest_key(l1, 1, key2, {"ksq": 1})
    l1.wv[2, slot["val"]] = 1
    l1.wo[slot["mem2"], 2] = 1
    l1.wv[6, slot["val"]] = 1  # head 3: a value that goes nowhere (skipped); head 2 is padding
    l1.wq[6, slot["val"]] = 1
    step_units(l1, 0, {"cnt": 2, "t": -1}, slot["bal"])  # bal = [2 cnt >= t]
    if halt_after is not None:
        l1.w_gate[2, slot["t"]], l1.w_gate[2, slot["one"]] = 1, 1 - halt_after
        l1.w_gate[3, slot["t"]], l1.w_gate[3, slot["one"]] = 1, -halt_after
        l1.w_up[2:4, slot["one"]] = 1
        l1.w_down[slot["hflag"], 2], l1.w_down[slot["hflag"], 3] = 1, -1
    # ---- layer 2
    l2 = layers[2]
    if recency_head:  # newest token at address qaddr by recency: keys are not integers
        l2.wq[0, slot["qaddr"]], l2.wq[1, slot["one"]] = TEMPERATURE, TEMPERATURE
        l2.wk[0, slot["addr"]] = 2 * recency_tie_scale
        l2.wk[1, slot["asq"]], l2.wk[1, slot["recency"]] = -recency_tie_scale, recency_weight
        l2.wv[0, slot["val"]] = 1
        l2.wo[slot["mem3"], 0] = 1
    # a query whose y is +S, -S or 0 by token: upper chain, lower chain, extreme x
    # (the tied keys at the extreme x all carry the same value)
    l2.wq[2, slot["qaddr"]], l2.wq[2, slot["one"]], l2.wq[3, slot["sgn"]] = TEMPERATURE, TEMPERATURE, TEMPERATURE
    latest_key(l2, 1, {"addr": 1}, {"asq": 1})
    l2.wv[2, slot["faddr"]] = 1
    l2.wo[slot["flip"], 2] = 1
    total = {"prev": 1, "mem": 1, "mem2": 1, "dup": 1, "bal": 5, "mem3": 1, "flip": 1, "one": 1}
    for name, coef in total.items():  # unit 0 copies the sum: x * relu(1)
        l2.w_up[0, slot[name]] = coef
    l2.w_gate[0, slot["one"]] = 1
    l2.w_down[slot["next"], 0] = 1
    for k in range(1, 6):  # next = total mod (V-1), total < 6 (V-1)
        terms = dict(total)
        terms["one"] = total["one"] - k * modulus
        step_units_sum(l2, slot, 2 * k - 1, terms, slot["next"], -modulus)
    if recall_values:
        l0.w_gate[2, slot["t"]], l0.w_gate[2, slot["one"]] = 1, 1  # big = relu(t + 1) * t: past 2^16, then 2^31
        l0.w_up[2, slot["t"]] = 1
        l0.w_down[slot["big"], 2] = 1
        for head, back, x_terms, y_terms, out in (
            (2, 1, {"ksq": 1, "count": 3}, {"recency": 1, "t2": 1, "val": 1}, ("r0", "r1")),
            (3, 2, {"mem": 1, "t": 1}, {"prev": 1, "cnt": 1, "big": 1}, ("r2", "r3")),
        ):
            l2.wq[2 * head, slot["t"]], l2.wq[2 * head, slot["one"]] = TEMPERATURE, -back * TEMPERATURE
            l2.wq[2 * head + 1, slot["one"]] = TEMPERATURE
            l2.wk[2 * head, slot["t"]], l2.wk[2 * head + 1, slot["t2"]] = 2, -1  # the token at t - back
            for row, terms in ((2 * head, x_terms), (2 * head + 1, y_terms)):
                for name, coef in terms.items():
                    l2.wv[row, slot[name]] = coef
            l2.wo[slot[out[0]], 2 * head], l2.wo[slot[out[1]], 2 * head + 1] = 1, 1
    for b in range(banks):  # latest uncleared token of bank b at its query address
        head, first = 4 + wide + b, bank_base + 4 * b
        l0.wq[2 * head, first + 1], l0.wq[2 * head + 1, slot["one"]] = TEMPERATURE, TEMPERATURE
        l0.wk[2 * head, slot["addr"]] = 2 * tie_scale
        l0.wk[2 * head + 1, slot["asq"]], l0.wk[2 * head + 1, slot["t"]] = -tie_scale, 1
        l0.wk[2 * head + 1, first] = -clear_penalty
        l0.wv[2 * head, slot["val"]], l0.wv[2 * head + 1, slot["t"]] = 1, 1
        l0.wo[first + 2, 2 * head], l0.wo[first + 3, 2 * head + 1] = 1, 1
    # ---- wide: more lookups of the same kinds, each into its own unread slots
    for copy in range(wide):
        base = len(SLOT_NAMES) + 6 * copy
        head = 4 + copy
        for layer_index, layer in enumerate(layers):
            kind = (copy + layer_index) % 3
            if kind == 0:  # latest
                query(layer, head, {"qaddr": 1})
                latest_key(layer, head, {"addr": 1}, {"asq": 1})
            elif kind == 1:  # positional, two back
                layer.wq[2 * head, slot["t"]], layer.wq[2 * head, slot["one"]] = TEMPERATURE, -2 * TEMPERATURE
                layer.wq[2 * head + 1, slot["one"]] = TEMPERATURE
                layer.wk[2 * head, slot["t"]], layer.wk[2 * head + 1, slot["t2"]] = 2, -1
            else:  # latest over the 2-level address, or a mean in layer 0
                if layer_index == 0:
                    layer.wk[2 * head, slot["one"]] = 1
                else:
                    query(layer, head, {"qaddr": 1, "prevaddr": addresses})
                    latest_key(layer, head, key2, {"ksq": 1})
            layer.wv[2 * head, slot["val"]] = 1
            layer.wv[2 * head + 1, slot["addr"]] = 1
            layer.wo[base + 2 * layer_index, 2 * head] = 1
            layer.wo[base + 2 * layer_index + 1, 2 * head + 1] = 1

    next_ids = ids.astype(np.float64)
    unembed = np.zeros((vocab_size, d_model))
    unembed[:, slot["next"]] = 2 * next_ids  # logit_i = 2 next i - i^2 peaks at i = next
    unembed[:, slot["one"]] = -next_ids * next_ids
    unembed[halt_id, slot["hflag"]] = 4.0 * vocab_size * vocab_size
    for layer in layers:
        for tensor in (layer.wq, layer.wk, layer.wv, layer.wo, layer.w_gate, layer.w_up, layer.w_down):
            tensor[...] = tensor.astype(np.float64)
    return Model(
        vocab=vocab, halt_token="halt", positional={"t": slot["t"], "t2": slot["t2"], "recency": slot["recency"]},
        output_bytes={f"v{i}": 48 + i % 10 for i in range(10)}, max_exact_tokens=max_exact_tokens,
        embed=embed.astype(np.float64), unembed=unembed, layers=layers,
    )


def step_units_sum(layer: Layer, slot: dict, first_unit: int, b_terms: dict, out_slot: int, weight: float) -> None:
    """out += weight * [b >= 0] for an integer b = sum(coef * slot): relu(b + 1) - relu(b)."""
    for offset, shift in ((0, 1.0), (1, 0.0)):
        unit = first_unit + offset
        for name, coef in b_terms.items():
            layer.w_gate[unit, slot[name]] = coef
        layer.w_gate[unit, slot["one"]] += shift
        layer.w_up[unit, slot["one"]] = 1
        layer.w_down[out_slot, unit] = weight if offset == 0 else -weight
