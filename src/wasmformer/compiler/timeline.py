"""Where things happen in a compiled model: sub-layers, boundaries and live intervals.

A model with L layers runs 2L *sub-layers*: sub-layer 2l is the attention of
layer l, sub-layer 2l+1 its FFN. The embedding acts as sub-layer -1 and the
logits read after sub-layer 2L-1, as if at sub-layer 2L.

*Boundary* b (0..2L) is the residual just before sub-layer b; a sub-layer
reads the boundary with its own number. A feature is *live* at boundary b when
it occupies a residual slot there. It becomes live when written and stays live
until its last reader has read it:

- embedding features: from boundary 0;
- an FFN output of layer l: from boundary 2l+2;
- an attention output of layer l: from boundary 2l, one boundary early. Heads
  write through W_o, which can only add to a slot, so the slot must already be
  zero when attention l starts; a dead feature that attention l still reads
  therefore cannot lend it its slot (the zeroing unit that frees it would have
  to run in an FFN before that read). Counting the output live at 2l makes
  "disjoint live intervals" exactly "may share a slot".
"""

from __future__ import annotations

from wasmformer.compiler.lower import ATTENTION, Op

EMBEDDING_SUBLAYER = -1


def sublayer(op: Op, layer: int) -> int:
    return 2 * layer + op.parity


def first_live_boundary(producer: Op | None, layer: int) -> int:
    """The first boundary at which a feature produced by ``producer`` (at ``layer``) holds its slot."""
    if producer is None:
        return 0
    return 2 * layer if producer.parity == ATTENTION else 2 * layer + 2


def layer_of_sublayer(index: int) -> int:
    return index // 2


def min_layer_after(op: Op, sublayer_index: int) -> int:
    """The earliest layer at which ``op`` runs strictly after sub-layer ``sublayer_index``."""
    earliest = sublayer_index + 1
    return max(0, -(-(earliest - op.parity) // 2))


def max_layer_before(op: Op, sublayer_index: int) -> int:
    """The latest layer at which ``op`` runs strictly before sub-layer ``sublayer_index``."""
    return (sublayer_index - 1 - op.parity) // 2


def layer_gap(producer: Op, reader: Op) -> int:
    """The least layer(reader) - layer(producer) that puts the reader's sub-layer after the producer's."""
    return -(-(producer.parity - reader.parity + 1) // 2)
