"""What every head and FFN unit of a model is for (``wasmformer inspect --heads``), and its sparsity as a PNG
(``--plot``).

The roles come from the compiler's metadata in config.json (compiler/metadata.py:
``heads``, ``ffn_groups``). A model without them (written by an older
compiler, or by hand) is described from its weights alone: the residual
slots each head's query and key read, whether its key carries a clear
penalty, and the slots each FFN unit writes.

The PNG is written with numpy and zlib (no plotting library): per layer one
band, a bar of its nonzero weights, then the seven weight matrices side by side (W_q, W_k, W_v, W_oᵀ, W_gate,
W_up, W_downᵀ; each column a residual slot), a dark pixel per nonzero weight.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from wasmformer.graph.precision import EXACT_INTEGER_LIMIT
from wasmformer.model import Model

# -- PNG --------------------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRAYSCALE, BIT_DEPTH, NO_FILTER = 0, 8, 0
INK, PAPER, RULE = 0, 255, 170  # pixel values: a nonzero weight, a zero weight, the lines between panels
GAP = 2  # pixels between panels and between layers
BAR_WIDTH = 120  # pixels of the bar that gives each layer's nonzero weights against the densest layer's
MATRICES = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
TRANSPOSED = {"wo", "w_down"}  # shown with the residual slot as the column, like the others
ZEROING_KIND = "zeroing"  # an ffn_groups entry that clears a reused slot (compiler/metadata.py)


@dataclass(frozen=True)
class HeadRole:
    layer: int
    head: int
    name: str
    tie: str
    query: str
    key: str
    clear: str | None
    outputs: list[str]

    def line(self) -> str:
        clear = f"  clear: {self.clear}" if self.clear else ""
        query = f"  query: {self.query}  key: {self.key}" if self.tie != "average" else ""
        return (f"  head {self.head:>2}  {self.tie:<7} {self.name}{query}{clear}  -> "
                f"{', '.join(self.outputs) or '(nothing read)'}")


def head_roles(model: Model) -> list[HeadRole]:
    """Every live head (one whose output a slot reads), by layer, with its role."""
    metadata = {(entry.get("layer"), entry.get("head")): entry for entry in model.extra.get("heads", [])}
    roles = []
    for layer_index, layer in enumerate(model.layers):
        for head in range(layer.wq.shape[0] // 2):
            rows = slice(2 * head, 2 * head + 2)
            written = np.flatnonzero(layer.wo[:, rows].any(axis=1))
            entry = metadata.get((layer_index, head))
            if entry is None and not len(written):
                continue
            if entry is not None:
                roles.append(HeadRole(layer_index, head, entry.get("name", "?"), entry.get("tie", "?"),
                                      entry.get("query") or "", entry.get("key") or "", entry.get("clear"),
                                      [name for name in entry.get("outputs", []) if name]))
            else:
                roles.append(_role_from_weights(layer_index, head, layer, written))
    return roles


def _role_from_weights(layer_index: int, head: int, layer, written: np.ndarray) -> HeadRole:
    query_slots = np.flatnonzero(layer.wq[2 * head])
    key_slots = np.flatnonzero(layer.wk[2 * head])
    penalties = np.flatnonzero(np.abs(layer.wk[2 * head + 1]) >= EXACT_INTEGER_LIMIT)
    return HeadRole(layer_index, head, "(no metadata)", "average" if not len(query_slots) else "lookup",
                    f"slots {_slots(query_slots)}", f"slots {_slots(key_slots)}",
                    f"slot {_slots(penalties)}" if len(penalties) else None, [f"slot {int(s)}" for s in written])


def _slots(slots: np.ndarray) -> str:
    return ",".join(str(int(slot)) for slot in slots) or "-"


def ffn_lines(model: Model, layer_index: int) -> list[str]:
    """One line per neuron group; a run of zeroing units is one line naming the dead features it clears."""
    groups = [group for group in model.extra.get("ffn_groups", []) if group.get("layer") == layer_index]
    if not groups:
        layer = model.layers[layer_index]
        return [f"  unit  {int(unit):>3}      writes slots {_slots(np.flatnonzero(layer.w_down[:, unit]))}"
                for unit in np.flatnonzero(layer.w_down.any(axis=0))]
    lines, zeroing = [], []
    for group in groups + [None]:
        if group is not None and group["kind"] == ZEROING_KIND:
            zeroing.append(group)
            continue
        if zeroing:
            first, stop = zeroing[0]["units"][0], zeroing[-1]["units"][1]
            lines.append(f"  units {_range(first, stop)} zeroing  {len(zeroing)} reused slots cleared "
                         f"(dead: {', '.join(item['feature'] for item in zeroing)})")
            zeroing = []
        if group is not None:
            lines.append(f"  units {_range(*group['units'])} {group['kind']:<8} {group['feature']}")
    return lines


def _range(first: int, stop: int) -> str:
    return f"{first}-{stop - 1}".ljust(7) if stop - first > 1 else f"{first}".ljust(7)


def print_roles(model: Model, stream: TextIO) -> None:
    roles = head_roles(model)
    if not model.extra.get("heads"):
        stream.write("(config.json has no head metadata: roles read from the weights)\n")
    for layer_index in range(len(model.layers)):
        stream.write(f"layer {layer_index}\n")
        for role in roles:
            if role.layer == layer_index:
                stream.write(role.line() + "\n")
        for line in ffn_lines(model, layer_index):
            stream.write(line + "\n")


# -- the sparsity plot ------------------------------------------------------------------------------


def sparsity_image(model: Model) -> np.ndarray:
    """The plot as a uint8 grayscale array [height, width]: per layer a bar (its nonzero weights against the
    densest layer's), then the seven matrices' nonzero masks."""
    panels_per_layer = [[_panel(layer, name) for name in MATRICES] for layer in model.layers]
    band_height = max(panel.shape[0] for panels in panels_per_layer for panel in panels)
    counts = [sum(int(panel.sum()) for panel in panels) for panels in panels_per_layer]
    densest = max(counts + [1])
    width = BAR_WIDTH + sum(panel.shape[1] for panel in panels_per_layer[0]) + GAP * (len(MATRICES) + 2)
    height = len(model.layers) * (band_height + GAP) + GAP
    image = np.full((height, width), RULE, dtype=np.uint8)
    for index, panels in enumerate(panels_per_layer):
        top, left = GAP + index * (band_height + GAP), GAP
        bar = np.full((band_height, BAR_WIDTH), PAPER, dtype=np.uint8)
        bar[band_height // 4:band_height - band_height // 4, :round(BAR_WIDTH * counts[index] / densest)] = INK
        image[top:top + band_height, left:left + BAR_WIDTH] = bar
        left += BAR_WIDTH + GAP
        for panel in panels:
            block = np.full((band_height, panel.shape[1]), PAPER, dtype=np.uint8)
            block[:panel.shape[0]][panel] = INK
            image[top:top + band_height, left:left + panel.shape[1]] = block
            left += panel.shape[1] + GAP
    return image


def _panel(layer, name: str) -> np.ndarray:
    matrix = getattr(layer, name)
    return (matrix.T if name in TRANSPOSED else matrix) != 0


def png_bytes(image: np.ndarray) -> bytes:
    """A grayscale uint8 image as a PNG file."""
    height, width = image.shape
    raw = np.hstack([np.full((height, 1), NO_FILTER, dtype=np.uint8), image]).tobytes()
    header = struct.pack(">IIBBBBB", width, height, BIT_DEPTH, GRAYSCALE, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_sparsity_png(model: Model, path: Path) -> None:
    path.write_bytes(png_bytes(sparsity_image(model)))
