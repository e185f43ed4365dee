"""Seeded mutations of file contents: raw bytes, WAT text, JSON documents and safetensors files.

Every function takes a ``random.Random`` and returns ``(new_bytes, description)``;
the description names the mutation so that a failing case says what was done to
its input. Nothing here knows about the CLI.
"""

from __future__ import annotations

import json
import random
import re
import struct

# Bytes that tend to break parsers: NUL, high bit, UTF-8 lead/continuation bytes,
# LEB128 continuation, quotes and brackets of the text formats.
INTERESTING_BYTES = bytes([0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC3, 0xE2, 0x22, 0x28, 0x29, 0x7B, 0x7D, 0x0A])
# Integers that tend to break size and count checks.
INTERESTING_INTS = (0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**63, -(2**63), 10**30, 2**1000)
MAX_INSERT = 16  # bytes inserted by one insert mutation
SAFETENSORS_LENGTH_BYTES = 8  # the header-length prefix of a safetensors file (u64, little-endian)


def mutate_bytes(rng: random.Random, data: bytes, donors: list[bytes] = ()) -> tuple[bytes, str]:
    """One byte-level mutation of ``data``: truncation, bit flips, insert, delete, overwrite or splice."""
    kinds = [_truncate, _flip_bits, _insert, _delete, _overwrite]
    if donors:
        kinds.append(lambda r, d: _splice(r, d, r.choice(donors)))
    return rng.choice(kinds)(rng, data)


def mutate_bytes_repeatedly(rng: random.Random, data: bytes, donors: list[bytes] = (),
                            most: int = 3) -> tuple[bytes, str]:
    """1..most mutations applied in a row; the descriptions joined."""
    steps = []
    for _ in range(rng.randint(1, most)):
        data, what = mutate_bytes(rng, data, donors)
        steps.append(what)
    return data, "; ".join(steps)


def _truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    cut = rng.randrange(len(data) + 1) if data else 0
    return data[:cut], f"truncate to {cut} of {len(data)} bytes"


def _flip_bits(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    if not data:
        return data, "flip (empty)"
    out = bytearray(data)
    positions = [rng.randrange(len(out)) for _ in range(rng.randint(1, 4))]
    for position in positions:
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out), f"flip bits at {positions}"


def _insert(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    at = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        chunk = bytes(rng.choice(INTERESTING_BYTES) for _ in range(rng.randint(1, MAX_INSERT)))
    else:
        chunk = rng.randbytes(rng.randint(1, MAX_INSERT))
    return data[:at] + chunk + data[at:], f"insert {len(chunk)} bytes at {at}"


def _delete(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    if not data:
        return data, "delete (empty)"
    at = rng.randrange(len(data))
    length = rng.randint(1, min(MAX_INSERT, len(data) - at))
    return data[:at] + data[at + length:], f"delete {length} bytes at {at}"


def _overwrite(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    if not data:
        return data, "overwrite (empty)"
    out = bytearray(data)
    at = rng.randrange(len(out))
    out[at] = rng.choice(INTERESTING_BYTES)
    return bytes(out), f"overwrite byte {at} with {out[at]:#04x}"


def _splice(rng: random.Random, data: bytes, donor: bytes) -> tuple[bytes, str]:
    cut = rng.randrange(len(data) + 1)
    donor_cut = rng.randrange(len(donor) + 1) if donor else 0
    return data[:cut] + donor[donor_cut:], f"splice at {cut} with a donor's tail from {donor_cut}"


# -- WAT text ---------------------------------------------------------------------------------------

WAT_NUMBER = re.compile(r"(?<![\w$.])-?(?:0x[0-9a-fA-F]+|\d+)(?![\w.])")
WAT_I32_OPS = ("i32.add", "i32.sub", "i32.mul", "i32.div_s", "i32.div_u", "i32.rem_s", "i32.rem_u", "i32.and",
               "i32.shl", "i32.rotr", "i32.lt_s", "i32.ge_u", "i32.eq")
WAT_LOADS = ("i32.load", "i32.load8_s", "i32.load16_u", "i64.load", "f32.load")
# Numbers that stress the front end where WAT puts them: constants, offsets, memory sizes, indexes.
WAT_NUMBERS = ("0", "-1", "65535", "65536", "16383", "16384", "2147483647", "-2147483648", "4294967295",
               "0xffffffff", "70000", "1000000")


def mutate_wat(rng: random.Random, text: bytes) -> tuple[bytes, str]:
    """A mutation that mostly keeps WAT well formed: one number or one operator name replaced."""
    source = text.decode()
    if rng.random() < 0.6:
        numbers = list(WAT_NUMBER.finditer(source))
        if numbers:
            match = rng.choice(numbers)
            new = rng.choice(WAT_NUMBERS)
            return (source[:match.start()] + new + source[match.end():]).encode(), \
                f"WAT: number {match.group()} at {match.start()} -> {new}"
    family = rng.choice([WAT_I32_OPS, WAT_LOADS])
    places = [match for op in family for match in re.finditer(re.escape(op) + r"(?![\w])", source)]
    if not places:
        return mutate_bytes(rng, text)
    match = rng.choice(places)
    new = rng.choice(family)
    return (source[:match.start()] + new + source[match.end():]).encode(), \
        f"WAT: {match.group()} at {match.start()} -> {new}"


# -- JSON --------------------------------------------------------------------------------------------


def mutate_json(rng: random.Random, document: dict, focus_keys: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """One structural mutation of a JSON object (type confusion, a missing key, a huge number...), serialised.

    Half the time the mutation targets one of ``focus_keys`` (top-level keys the
    reader depends on); otherwise any key path in the document.
    """
    document = json.loads(json.dumps(document))  # a private deep copy
    paths = _key_paths(document)
    focused = [(key,) for key in focus_keys if key in document]
    path = rng.choice(focused) if focused and rng.random() < 0.5 else rng.choice(paths)
    kind = rng.choice(["delete", "retype", "huge", "swap", "binary"])
    parent, key = _parent_of(document, path)
    if kind == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
        return _dump(document), f"config: delete {_show(path)}"
    if kind == "retype":
        parent[key] = _other_typed_value(rng, parent[key])
        return _dump(document), f"config: {_show(path)} = {_short(parent[key])}"
    if kind == "huge":
        parent[key] = rng.choice([*INTERESTING_INTS, 1e308, -1e308, 0.5, float("nan"), float("inf")])
        return _dump(document), f"config: {_show(path)} = {_short(parent[key])}"
    if kind == "swap":
        other = rng.choice(paths)
        other_parent, other_key = _parent_of(document, other)
        if _is_ancestor(path, other) or _is_ancestor(other, path):
            parent[key] = [parent[key]]  # nested paths cannot swap: wrap the value in a list instead
            return _dump(document), f"config: {_show(path)} wrapped in a list"
        parent[key], other_parent[other_key] = other_parent[other_key], parent[key]
        return _dump(document), f"config: swap {_show(path)} and {_show(other)}"
    text = _dump(document)
    at = rng.randrange(len(text) + 1)
    garbage = rng.randbytes(rng.randint(1, MAX_INSERT))
    return text[:at] + garbage + text[at:], f"config: {len(garbage)} binary bytes at {at}"


def _dump(document) -> bytes:
    return json.dumps(document, indent=1).encode()


def _key_paths(node, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indexes) to a value inside ``node``, nested ones included."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    paths = []
    for key, value in children:
        paths.append(prefix + (key,))
        paths.extend(_key_paths(value, prefix + (key,)))
    return paths


def _parent_of(document, path: tuple):
    node = document
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


def _is_ancestor(path: tuple, other: tuple) -> bool:
    return other[:len(path)] == path


def _other_typed_value(rng: random.Random, value):
    """A value of another JSON type than ``value``: strings, lists, ints, objects, null, booleans swapped."""
    choices = [[], [1, 2], "x", "", 7, -7, 3.5, {}, {"a": 1}, None, True, [value]]
    choices = [choice for choice in choices if type(choice) is not type(value)]
    return rng.choice(choices)


def _show(path: tuple) -> str:
    return "".join(f"[{key!r}]" for key in path)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


# -- safetensors -------------------------------------------------------------------------------------


def mutate_safetensors(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """A damaged safetensors file: truncated, garbage, a wrong header length, or a corrupted header."""
    header_length = struct.unpack("<Q", data[:SAFETENSORS_LENGTH_BYTES])[0]
    header_end = SAFETENSORS_LENGTH_BYTES + header_length
    kind = rng.choice(["truncate", "truncate-header", "garbage", "length", "header", "header-bytes", "weights"])
    if kind == "truncate":
        cut = rng.randrange(header_end, len(data))
        return data[:cut], f"safetensors: truncate to {cut} of {len(data)} bytes"
    if kind == "truncate-header":
        cut = rng.randrange(header_end)
        return data[:cut], f"safetensors: truncate inside the header, at {cut}"
    if kind == "garbage":
        size = rng.choice([0, 1, 7, 8, 64, 4096])
        return rng.randbytes(size), f"safetensors: {size} random bytes"
    if kind == "length":
        length = rng.choice([0, 1, header_length - 1, header_length + 1, len(data), 2**63, 2**64 - 1])
        return struct.pack("<Q", length) + data[SAFETENSORS_LENGTH_BYTES:], f"safetensors: header length {length}"
    if kind == "header":
        header = json.loads(data[SAFETENSORS_LENGTH_BYTES:header_end])
        new_header, what = _mutate_tensor_table(rng, header)
        # Padded with spaces to the old length when it fits, so tensor offsets stay valid.
        encoded = new_header.ljust(header_length) if len(new_header) <= header_length else new_header
        return struct.pack("<Q", len(encoded)) + encoded + data[header_end:], f"safetensors: {what}"
    if kind == "header-bytes":
        header, what = mutate_bytes(rng, data[SAFETENSORS_LENGTH_BYTES:header_end])
        return data[:SAFETENSORS_LENGTH_BYTES] + header + data[header_end:], f"safetensors header: {what}"
    weights, what = _flip_bits(rng, data[header_end:])
    return data[:header_end] + weights, f"safetensors weights: {what}"


def _mutate_tensor_table(rng: random.Random, header: dict) -> tuple[bytes, str]:
    """Change one tensor entry: its dtype, shape or offsets, or remove it."""
    names = sorted(name for name in header if name != "__metadata__")
    name = rng.choice(names)
    entry = header[name]
    kind = rng.choice(["dtype", "shape", "offsets", "remove", "rename"])
    if kind == "dtype":
        entry["dtype"] = rng.choice(["F32", "F16", "I64", "U8", "BOOL", "F64", "nonsense"])
        what = f"{name} dtype {entry['dtype']}"
    elif kind == "shape":
        entry["shape"] = rng.choice([[], [0], [1], [-1, 2], [2**40, 2**40], list(reversed(entry["shape"]))])
        what = f"{name} shape {entry['shape']}"
    elif kind == "offsets":
        start, end = entry["data_offsets"]
        entry["data_offsets"] = rng.choice([[end, start], [start, start], [0, 2**62], [start, end + 8]])
        what = f"{name} data_offsets {entry['data_offsets']}"
    elif kind == "remove":
        del header[name]
        what = f"remove tensor {name}"
    else:
        header[name + ".renamed"] = header.pop(name)
        what = f"rename tensor {name}"
    return json.dumps(header, separators=(",", ":")).encode(), what
