// The native engine: the wasmformer/1 forward pass with exact hard-max attention.
//
// It knows embeddings, 2-D heads, gated FFNs and argmax, nothing else. Every
// decision that makes it fast (sparse rows, skipped heads, O(1) heads) is taken
// once from the weights when the engine is built.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "heads.hpp"
#include "hull.hpp"
#include "sparse.hpp"

namespace wf {

struct LayerWeights {
    DenseView wq, wk, wv;  // [2H, D]
    DenseView wo;          // [D, 2H]
    DenseView gate, up;    // [F, D]
    DenseView down;        // [D, F]
};

struct ModelWeights {
    DenseView embed;    // [V, D]
    DenseView unembed;  // [V, D]
    std::vector<LayerWeights> layers;
    int t_slot = 0;
    int t2_slot = 0;
    int recency_slot = 0;
    int halt_id = 0;
    int64_t max_exact_tokens = 0;
};

// A run or step that cannot go on exactly (maps to the Python EngineError).
class EngineFailure : public std::runtime_error {
    using std::runtime_error::runtime_error;
};
// The next position would lie beyond max_exact_tokens (maps to PrecisionHorizonError).
class HorizonExceeded : public EngineFailure {
    using EngineFailure::EngineFailure;
};

// Receives generated tokens in order, a batch at a time.
using TokenSink = std::function<void(const int32_t* tokens, std::size_t count)>;

struct RunOutcome {
    std::vector<int32_t> trace;  // generated tokens, halt included when halted
    std::string stop_reason;     // "halt" or "max_tokens"
};

struct EngineStats {
    int64_t position = 0;
    std::size_t hull_points = 0;      // keys kept by all hull heads
    std::size_t scanning_heads = 0;   // hull heads that left the exact integer regime
    std::size_t state_bytes = 0;      // memory held by attention state
    std::size_t projection_nonzeros = 0;
};

enum class HeadKind { kMean, kPositional, kHull };

class Engine {
   public:
    explicit Engine(const ModelWeights& weights);
    Engine(const Engine&) = delete;  // hull state is owned, never shared
    Engine& operator=(const Engine&) = delete;

    // Feed the token at the next position; return the argmax next-token id.
    int32_t step(int32_t token);
    // The decoding loop of engines/base.py:generate; max_new_tokens < 0 means no limit.
    RunOutcome run(const std::vector<int32_t>& prompt, int64_t max_new_tokens, std::size_t batch,
                   const TokenSink& sink);

    int64_t position() const { return position_; }
    int32_t halt_id() const { return halt_id_; }
    int64_t max_exact_tokens() const { return max_exact_tokens_; }
    // Per layer, per head: "unused", "mean", "positional", "hull", "hull-upper", "hull-lower", "hull-extremes".
    std::vector<std::vector<std::string>> head_kinds() const;
    EngineStats stats() const;

   private:
    // What a residual slot holds at a layer's input when the weights alone tell:
    // constant + per_t * t + per_t2 * t^2 for every token.
    struct SlotForm {
        bool known = false;
        double constant = 0.0;
        double per_t = 0.0;
        double per_t2 = 0.0;
        bool pure_constant() const { return known && per_t == 0.0 && per_t2 == 0.0; }
    };
    struct ActiveHead {
        HeadKind kind;
        uint32_t head;   // index within the layer
        uint32_t state;  // index into the layer's vector of that kind
    };
    struct Layer {
        SparseRows wq, wk, wv;
        SparseRows wo_columns;    // column c of wo: where head output coordinate c goes
        SparseRows gate, up;
        SparseRows down_columns;  // column f of w_down: where unit f goes
        std::vector<ActiveHead> heads;
        std::vector<uint32_t> units;  // FFN units that can be nonzero and reach the residual
        std::vector<std::string> head_kinds;
        std::vector<MeanHead> means;
        std::vector<PositionalHead> positional;
        std::vector<KeyHull> hulls;
    };

    std::vector<SlotForm> initial_slot_forms(const ModelWeights& weights) const;
    void plan_layer(const LayerWeights& weights, const std::vector<SlotForm>& slots, Layer& layer);
    bool parabola_key(const Layer& layer, uint32_t head, const std::vector<SlotForm>& slots,
                      ParabolaKey& key) const;
    bool constant_row(const SparseRows& rows, std::size_t row, const std::vector<SlotForm>& slots,
                      double& value) const;

    void load_embedding(int32_t token);
    void attend(Layer& layer);
    void feed_forward(Layer& layer);
    int32_t best_token() const;
    void check_horizon(std::size_t positions) const;

    std::size_t d_model_ = 0;
    std::size_t vocab_ = 0;
    int t_slot_ = 0;
    int t2_slot_ = 0;
    int recency_slot_ = 0;
    int32_t halt_id_ = 0;
    int64_t max_exact_tokens_ = 0;
    int64_t position_ = 0;
    bool failed_ = false;  // a step threw halfway: the attention state is no longer consistent

    std::vector<double> embed_;  // [V, D] dense: one row is copied per token
    SparseRows unembed_;
    std::vector<uint32_t> unembed_rows_;  // rows with a nonzero, in id order
    int64_t first_zero_row_ = -1;         // the lowest id whose logit is always 0, if any
    std::vector<Layer> layers_;

    // Buffers reused by every step: no allocation per token.
    std::vector<double> x_;
    std::vector<double> head_out_;  // 2 per active head
    std::vector<double> unit_out_;  // 1 per active FFN unit
};

}  // namespace wf
