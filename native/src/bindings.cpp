// Python bindings (nanobind): the engine, its decoding loop and a single-hull test hook.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <Python.h>

#include <array>
#include <optional>
#include <utility>

#include "engine.hpp"
#include "heads.hpp"
#include "history.hpp"
#include "hull.hpp"

namespace nb = nanobind;
using Matrix = nb::ndarray<const double, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

namespace {

wf::DenseView view_of(const Matrix& matrix) {
    return wf::DenseView{matrix.data(), matrix.shape(0), matrix.shape(1)};
}

// layers: one (wq, wk, wv, wo, w_gate, w_up, w_down) tuple per block, float64, C-contiguous.
wf::ModelWeights model_weights(const Matrix& embed, const Matrix& unembed, const std::vector<std::vector<Matrix>>& layers,
                        int t_slot, int t2_slot, int recency_slot, int halt_id, int64_t max_exact_tokens) {
    wf::ModelWeights weights;
    weights.embed = view_of(embed);
    weights.unembed = view_of(unembed);
    const std::size_t d_model = weights.embed.cols;
    if (weights.unembed.cols != d_model || weights.unembed.rows != weights.embed.rows) {
        throw wf::EngineFailure("unembed must have the shape of embed");
    }
    for (const std::vector<Matrix>& layer : layers) {
        if (layer.size() != 7) throw wf::EngineFailure("a layer is (wq, wk, wv, wo, w_gate, w_up, w_down)");
        wf::LayerWeights w{view_of(layer[0]), view_of(layer[1]), view_of(layer[2]), view_of(layer[3]),
                           view_of(layer[4]), view_of(layer[5]), view_of(layer[6])};
        const std::size_t heads2 = w.wq.rows, units = w.gate.rows;
        const bool shapes_ok = heads2 % 2 == 0 && w.wq.cols == d_model && w.wk.rows == heads2 &&
                               w.wk.cols == d_model && w.wv.rows == heads2 && w.wv.cols == d_model &&
                               w.wo.rows == d_model && w.wo.cols == heads2 && w.gate.cols == d_model &&
                               w.up.rows == units && w.up.cols == d_model && w.down.rows == d_model &&
                               w.down.cols == units;
        if (!shapes_ok) throw wf::EngineFailure("layer tensor shapes disagree with wasmformer/1");
        weights.layers.push_back(w);
    }
    weights.t_slot = t_slot;
    weights.t2_slot = t2_slot;
    weights.recency_slot = recency_slot;
    weights.halt_id = halt_id;
    weights.max_exact_tokens = max_exact_tokens;
    return weights;
}

// The loop runs without the GIL; every batch of tokens it takes the GIL back to
// hand them to Python and to let Ctrl-C (or any Python exception) stop the run.
// The trace is built as a Python list as the batches arrive (no second copy of
// it in C++), and its items are one shared int object per token id: 8 bytes per
// token instead of a new int object each (ids above 256 are not cached by Python).
nb::tuple run_engine(wf::Engine& engine, const std::vector<int32_t>& prompt, std::optional<int64_t> max_new_tokens,
                     std::size_t callback_every, std::optional<nb::callable> callback) {
    std::vector<nb::object> token_objects(engine.vocab_size());
    for (std::size_t id = 0; id < token_objects.size(); ++id) token_objects[id] = nb::int_(id);
    nb::list trace;
    wf::TokenSink sink = [&](const int32_t* tokens, std::size_t count) {
        nb::gil_scoped_acquire hold;
        for (std::size_t i = 0; i < count; ++i) trace.append(token_objects[static_cast<std::size_t>(tokens[i])]);
        if (PyErr_CheckSignals() != 0) throw nb::python_error();
        if (callback) {
            nb::list batch;
            for (std::size_t i = 0; i < count; ++i) batch.append(token_objects[static_cast<std::size_t>(tokens[i])]);
            (*callback)(batch);
        }
    };
    wf::RunOutcome outcome;
    {
        nb::gil_scoped_release release;
        outcome = engine.run(prompt, max_new_tokens, callback_every, sink);
    }
    return nb::make_tuple(trace, outcome.stop_reason);
}

nb::dict engine_stats(const wf::Engine& engine) {
    const wf::EngineStats stats = engine.stats();
    nb::dict result;
    result["position"] = stats.position;
    result["hull_points"] = stats.hull_points;
    result["scanning_heads"] = stats.scanning_heads;
    result["state_bytes"] = stats.state_bytes;
    result["history_bytes"] = stats.history_bytes;
    result["recorded_slots"] = stats.recorded_slots;
    result["wide_slots"] = stats.wide_slots;
    result["projection_nonzeros"] = stats.projection_nonzeros;
    return result;
}

nb::tuple hull_query(const wf::KeyHull& hull, double qx, double qy) {
    double out[2];
    hull.query(qx, qy, out);
    return nb::make_tuple(out[0], out[1]);
}

// Test hook: a PositionalHead with the values of its positions kept beside it,
// answering as the engine does (the engine recomputes the values instead).
class PositionalProbe {
   public:
    explicit PositionalProbe(wf::ParabolaKey key) : head_(key) {}
    void append(double value_x, double value_y) {
        values_.push_back({value_x, value_y});
        all_.add(value_x, value_y);
    }
    nb::tuple query(double qx, double qy) const {
        const wf::PositionalWinners winners = head_.query(qx, qy, static_cast<int64_t>(values_.size()) - 1);
        wf::ValueSum sum = all_;
        if (!winners.all) {
            sum = wf::ValueSum{};
            sum.add(values_[winners.first][0], values_[winners.first][1]);
            if (winners.second != winners.first) sum.add(values_[winners.second][0], values_[winners.second][1]);
        }
        double out[2];
        sum.average_into(out);
        return nb::make_tuple(out[0], out[1]);
    }

   private:
    wf::PositionalHead head_;
    std::vector<std::array<double, 2>> values_;
    wf::ValueSum all_;
};

}  // namespace

NB_MODULE(_engine, m) {
    m.doc() = "wasmformer native engine: exact hard-max attention over 2-D convex hulls";

    nb::exception<wf::EngineFailure> engine_error(m, "EngineError", PyExc_RuntimeError);
    nb::exception<wf::HorizonExceeded>(m, "PrecisionHorizonError", engine_error);

    nb::class_<wf::Engine>(m, "Engine")
        .def("__init__",
             [](wf::Engine* self, const Matrix& embed, const Matrix& unembed,
                const std::vector<std::vector<Matrix>>& layers, int t_slot, int t2_slot, int recency_slot,
                int halt_id, int64_t max_exact_tokens) {
                 // The engine copies what it needs: the arrays may go once it is built.
                 new (self) wf::Engine(model_weights(embed, unembed, layers, t_slot, t2_slot, recency_slot,
                                                     halt_id, max_exact_tokens));
             },
             nb::arg("embed"), nb::arg("unembed"), nb::arg("layers"), nb::arg("t_slot"), nb::arg("t2_slot"),
             nb::arg("recency_slot"), nb::arg("halt_id"), nb::arg("max_exact_tokens"))
        .def("step", &wf::Engine::step, nb::arg("token_id"),
             "Feed the token at the next position; return the argmax next-token id.")
        .def("run", &run_engine, nb::arg("prompt"), nb::arg("max_new_tokens") = nb::none(),
             nb::arg("callback_every") = 4096, nb::arg("callback") = nb::none(),
             "Feed the prompt, then append argmax tokens until the halt token or max_new_tokens.\n"
             "Returns (trace, stop_reason); callback(list_of_ids) is called every callback_every tokens.")
        .def_prop_ro("position", &wf::Engine::position)
        .def_prop_ro("halt_id", &wf::Engine::halt_id)
        .def_prop_ro("max_exact_tokens", &wf::Engine::max_exact_tokens)
        .def("head_kinds", &wf::Engine::head_kinds)
        .def("stats", &engine_stats)
        .def("residual", &wf::Engine::residual,
             "The residual stream after the last step (what the unembedding read); for tests.");

    // Test hook: one hull head on its own, to compare against brute force.
    nb::class_<wf::KeyHull>(m, "Hull")
        .def(nb::init<bool, bool, bool>(), nb::arg("keep_upper") = true, nb::arg("keep_lower") = true,
             nb::arg("keep_extremes") = true)
        .def("insert", &wf::KeyHull::insert, nb::arg("kx"), nb::arg("ky"), nb::arg("vx"), nb::arg("vy"))
        .def("ignores", &wf::KeyHull::ignores, nb::arg("kx"), nb::arg("ky"))
        .def("query", &hull_query, nb::arg("qx"), nb::arg("qy"))
        .def_prop_ro("exact", &wf::KeyHull::exact)
        .def_prop_ro("stored_points", &wf::KeyHull::stored_points);

    // Test hook: the O(1) positional head, key(t) = (a t + c0, -b t^2 + d t + c1) for t = 0, 1, ...
    nb::class_<PositionalProbe>(m, "PositionalHead")
        .def("__init__",
             [](PositionalProbe* self, int64_t a, int64_t c0, int64_t b, int64_t d, int64_t c1) {
                 if (b <= 0) throw std::invalid_argument("a positional head needs b > 0");
                 new (self) PositionalProbe(wf::ParabolaKey{a, c0, b, d, c1});
             },
             nb::arg("a"), nb::arg("c0"), nb::arg("b"), nb::arg("d"), nb::arg("c1"))
        .def("append", &PositionalProbe::append, nb::arg("vx"), nb::arg("vy"))
        .def("query", &PositionalProbe::query, nb::arg("qx"), nb::arg("qy"));

    // Test hook: the per-position column of a recorded slot (adaptive width, exact read-back).
    nb::class_<wf::SlotColumn>(m, "SlotColumn")
        .def(nb::init<>())
        .def("append", &wf::SlotColumn::push_back, nb::arg("value"))
        .def("__len__", &wf::SlotColumn::size)
        .def("__getitem__",
             [](const wf::SlotColumn& column, std::size_t index) {
                 if (index >= column.size()) throw nb::index_error();
                 return column[index];
             })
        .def_prop_ro("form", [](const wf::SlotColumn& column) {
            switch (column.form()) {
                case wf::SlotColumn::Form::kUint8: return "uint8";
                case wf::SlotColumn::Form::kUint16: return "uint16";
                case wf::SlotColumn::Form::kBits32: return "bits32";
                case wf::SlotColumn::Form::kFloat64: break;
            }
            return "float64";
        });
}
