"""The ONNX export: the forward pass as one ONNX graph (a decoding step with the KV cache in and out), and a runner.

The graph is written with ``onnx.helper`` directly, node by node from
docs/model-format.md, so exporting needs neither torch nor a tracer, and every
operation is one whose float64 ("double") kernel onnxruntime's CPU provider
has: Gather, Shape, Range, Cast, Log, Add, Sub, Mul, Div, Unsqueeze, Concat,
MatMul, Reshape, Transpose, Greater, Where, Softmax, Relu, ArgMax.

Inputs: ``input_ids`` int64 [n] (the next n tokens, n >= 1) and, per layer
l, ``past_key.l`` [h_l, 2, P] and ``past_value.l`` [h_l, P, 2] (float64, P
the positions so far, 0 at the start). Outputs: ``logits`` [n, V],
``next_token`` int64 [n] (the argmax of each row, lowest id on a tie) and
``present_key.l`` / ``present_value.l`` with P + n positions. The position t
of the first new token is P, read from the shape of ``past_key.0``.
Heads and FFN units that add exactly zero are left out
(export.common.live_layer). ``OnnxDecoder`` runs such a file with
onnxruntime and decodes greedily.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wasmformer.export.common import ExportError, live_layer, load_representable, reads_slot, require_module
from wasmformer.model import HEAD_DIMENSION, Model

OPSET = 17
PREFILL_CHUNK = 64  # prompt positions per onnxruntime call (bounds the [h, n, P+n] score tensors)
INVERSE_LN2 = 1.0 / math.log(2.0)  # r(t) = 1/ln 2 - 1/ln(t+2), as model.recency computes it
HORIZON_KEY = "max_exact_tokens"  # metadata_props entry: the model's precision horizon
HALT_KEY = "halt_token_id"


def export_onnx(model_dir: str | Path, output: str | Path) -> Path:
    """Write the model in ``model_dir`` as an ONNX file at ``output``; refuse one it cannot represent exactly."""
    model = load_representable(model_dir)  # a model it cannot represent is refused whatever is installed
    check_recency_unread(model, model_dir)
    onnx = require_module("onnx", "onnx")
    graph_model = build_onnx_model(model)
    onnx.checker.check_model(graph_model)
    output = Path(output)
    onnx.save_model(graph_model, str(output))
    return output


def check_recency_unread(model: Model, model_dir: str | Path) -> None:
    """Refuse a model whose weights read r(t): onnxruntime's float64 Log is not numpy's to the last bit.

    (Measured with onnxruntime 1.32: 2,613 of the first 200,000 positions get
    an r(t) one unit in the last place away from ``model.recency``.) Where no
    weight reads the slot, as in every model this compiler builds, the bit
    cannot matter.
    """
    slot = model.positional["recency"]
    if reads_slot(model, slot):
        raise ExportError(f"cannot export {model_dir} to ONNX: its weights read r(t) (residual slot {slot}), and "
                          "onnxruntime's float64 Log differs from numpy's in the last bit at some positions, so the "
                          "graph would not compute r(t) exactly as the engines do")


def build_onnx_model(model: Model):
    """The ``onnx.ModelProto`` of ``model``'s decoding step."""
    onnx = require_module("onnx", "onnx")
    builder = _GraphBuilder(onnx)
    x = builder.embedding(model)
    future = builder.future_mask()
    for index, layer in enumerate(live_layer(layer) for layer in model.layers):
        x = builder.attention(x, layer, index, future)
        x = builder.reglu(x, layer, index)
    builder.logits(x, model.unembed)
    graph = onnx.helper.make_graph(builder.nodes, "wasmformer_step", builder.inputs, builder.outputs,
                                   builder.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="wasmformer")
    onnx.helper.set_model_props(proto, {HORIZON_KEY: str(model.max_exact_tokens), HALT_KEY: str(model.halt_id)})
    return proto


class _GraphBuilder:
    """Nodes, initializers, inputs and outputs of the graph, with fresh value names."""

    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.double = onnx.TensorProto.DOUBLE
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self.counter = 0
        self.inputs.append(self.helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, ["n"]))

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attributes) -> str:
        self.counter += 1
        output = output or f"{op_type.lower()}_{self.counter}"
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def constant(self, name: str, array) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def cache_io(self, index: int, heads: int) -> tuple[str, str]:
        """Declare layer ``index``'s cache inputs and outputs; the names of its past key and value."""
        shapes = {"key": [heads, HEAD_DIMENSION, "past"], "value": [heads, "past", HEAD_DIMENSION]}
        for kind, shape in shapes.items():
            self.inputs.append(self.helper.make_tensor_value_info(f"past_{kind}.{index}", self.double, shape))
            present_shape = [("past_plus_n" if dim == "past" else dim) for dim in shape]
            self.outputs.append(self.helper.make_tensor_value_info(f"present_{kind}.{index}", self.double,
                                                                   present_shape))
        return f"past_key.{index}", f"past_value.{index}"

    # -- the pieces of the forward pass ----------------------------------------------------------------

    def embedding(self, model: Model) -> str:
        """embed[input_ids] plus [t, t², r(t)] @ P, P placing each feature in its slot (one 1 per row)."""
        past = self.op("Gather", self.op("Shape", "past_key.0"), self.constant("two_index", np.int64(2)), axis=0)
        count = self.op("Gather", self.op("Shape", "input_ids"), self.constant("zero_index", np.int64(0)), axis=0)
        self.end = self.op("Add", past, count)
        self.positions = self.op("Range", past, self.end, self.constant("one_step", np.int64(1)))
        t = self.op("Cast", self.positions, to=self.double)
        t2 = self.op("Mul", t, t)
        log_t = self.op("Log", self.op("Add", t, self.constant("two", np.float64(2.0))))
        recency = self.op("Sub", self.constant("inverse_ln2", np.float64(INVERSE_LN2)),
                          self.op("Div", self.constant("one", np.float64(1.0)), log_t))
        axis1 = self.constant("axis_1", np.array([1], dtype=np.int64))
        features = self.op("Concat", *(self.op("Unsqueeze", value, axis1) for value in (t, t2, recency)), axis=1)
        placement = np.zeros((3, model.d_model))
        for row, name in enumerate(("t", "t2", "recency")):
            placement[row, model.positional[name]] = 1.0
        rows = self.op("MatMul", features, self.constant("positional_placement", placement))
        embedded = self.op("Gather", self.constant("embed", model.embed), "input_ids", axis=0)
        return self.op("Add", embedded, rows)

    def future_mask(self) -> str:
        """[n, P+n] float64: -inf where key position j lies after the query's position, else 0.

        Added to the scores (s + 0 = s exactly, s + -inf = -inf), once per
        layer: cheaper than a Where over every head's scores.
        """
        axis0 = self.constant("axis_0", np.array([0], dtype=np.int64))
        all_positions = self.op("Range", self.constant("zero_position", np.int64(0)), self.end, "one_step")
        future = self.op("Greater", self.op("Unsqueeze", all_positions, axis0),
                         self.op("Unsqueeze", self.positions, "axis_1"))
        return self.op("Where", future, self.constant("minus_infinity", np.float64(-np.inf)),
                       self.constant("zero", np.float64(0.0)))

    def attention(self, x: str, layer, index: int, future: str) -> str:
        past_key, past_value = self.cache_io(index, layer.heads)
        split = self.constant(f"heads_shape.{index}", np.array([0, layer.heads, HEAD_DIMENSION], dtype=np.int64))

        def heads(weight: np.ndarray, name: str, perm: list[int]) -> str:
            projected = self.op("MatMul", x, self.constant(f"blocks.{index}.attn.{name}_t", weight.T.copy()))
            return self.op("Transpose", self.op("Reshape", projected, split), perm=perm)

        query = heads(layer.wq, "wq", [1, 0, 2])  # [h, n, 2]
        keys = self.op("Concat", past_key, heads(layer.wk, "wk", [1, 2, 0]), axis=2,
                       output=f"present_key.{index}")  # [h, 2, P+n]
        values = self.op("Concat", past_value, heads(layer.wv, "wv", [1, 0, 2]), axis=1,
                         output=f"present_value.{index}")  # [h, P+n, 2]
        scores = self.op("Add", self.op("MatMul", query, keys), future)  # [h, n, P+n]
        mixed = self.op("MatMul", self.op("Softmax", scores, axis=-1), values)  # [h, n, 2]
        flat = self.op("Reshape", self.op("Transpose", mixed, perm=[1, 0, 2]),
                       self.constant_once("rows_shape", np.array([0, -1], dtype=np.int64)))
        return self.op("Add", x, self.op("MatMul", flat, self.constant(f"blocks.{index}.attn.wo_t", layer.wo.T.copy())))

    def reglu(self, x: str, layer, index: int) -> str:
        def linear(source: str, weight: np.ndarray, name: str) -> str:
            return self.op("MatMul", source, self.constant(f"blocks.{index}.ffn.{name}_t", weight.T.copy()))

        hidden = self.op("Mul", self.op("Relu", linear(x, layer.w_gate, "w_gate")), linear(x, layer.w_up, "w_up"))
        return self.op("Add", x, linear(hidden, layer.w_down, "w_down"))

    def logits(self, x: str, unembed: np.ndarray) -> None:
        logits = self.op("MatMul", x, self.constant("unembed_t", unembed.T.copy()), output="logits")
        self.op("ArgMax", logits, axis=1, keepdims=0, select_last_index=0, output="next_token")
        self.outputs[:0] = [self.helper.make_tensor_value_info("logits", self.double, ["n", unembed.shape[0]]),
                            self.helper.make_tensor_value_info("next_token", self.onnx.TensorProto.INT64, ["n"])]

    def constant_once(self, name: str, array) -> str:
        if all(initializer.name != name for initializer in self.initializers):
            self.constant(name, array)
        return name


class OnnxDecoder:
    """An exported ONNX file run with onnxruntime: greedy decoding with the cache carried between calls."""

    def __init__(self, path: str | Path, threads: int | None = None):
        """``threads``: onnxruntime's intra-op threads (None: its default); its threads never spin while idle."""
        onnxruntime = require_module("onnxruntime", "onnx")
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.max_exact_tokens = int(metadata[HORIZON_KEY])
        self.halt_id = int(metadata[HALT_KEY])
        self.cache_inputs = [arg for arg in self.session.get_inputs() if arg.name.startswith("past_")]

    def empty_cache(self) -> dict[str, np.ndarray]:
        return {arg.name: np.zeros([0 if dim == "past" else dim for dim in arg.shape]) for arg in self.cache_inputs}

    def step(self, token_ids: list[int], cache: dict[str, np.ndarray]) -> tuple[int, dict[str, np.ndarray]]:
        """Feed ``token_ids``; (the argmax after the last of them, the grown cache)."""
        past = cache["past_key.0"].shape[2]
        if past + len(token_ids) > self.max_exact_tokens:
            raise ValueError(f"position {past + len(token_ids) - 1} lies beyond this model's precision horizon "
                             f"(max_exact_tokens = {self.max_exact_tokens})")
        names = [arg.name for arg in self.session.get_outputs()]
        results = self.session.run(None, {"input_ids": np.asarray(token_ids, dtype=np.int64), **cache})
        outputs = dict(zip(names, results))
        grown = {name.replace("present_", "past_"): value for name, value in outputs.items()
                 if name.startswith("present_")}
        return int(outputs["next_token"][-1]), grown

    def generate(self, prompt_ids: list[int], max_new_tokens: int, stop_id: int | None = None) -> list[int]:
        """Greedy decoding, as ``WasmformerDecoder.generate``: the generated ids, ``stop_id`` included."""
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        cache = self.empty_cache()
        for start in range(0, len(prompt_ids), PREFILL_CHUNK):
            next_id, cache = self.step(list(prompt_ids[start:start + PREFILL_CHUNK]), cache)
        generated = [next_id]
        while next_id != stop_id and len(generated) < max_new_tokens:
            next_id, cache = self.step([next_id], cache)
            generated.append(next_id)
        return generated
