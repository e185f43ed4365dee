// The native engine: the wasmformer/1 forward pass with exact hard-max attention.
//
// It knows embeddings, 2-D heads, gated FFNs and argmax, nothing else. Every
// decision that makes it fast (sparse rows, skipped heads, O(1) heads) is taken
// once from the weights when the engine is built.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "heads.hpp"
#include "history.hpp"
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
    std::size_t generated = 0;  // tokens generated (and handed to the sink), halt included when halted
    std::string stop_reason;    // "halt" or "max_new_tokens"
};

struct EngineStats {
    int64_t position = 0;
    std::size_t hull_points = 0;      // keys kept by all hull heads
    std::size_t scanning_heads = 0;   // hull heads that left the exact integer regime
    std::size_t state_bytes = 0;      // memory held by attention state (hulls + per-position history)
    std::size_t history_bytes = 0;    // of which per-position history: token ids and recorded slots
    std::size_t recorded_slots = 0;   // (layer, slot) columns kept per position for positional heads
    std::size_t wide_slots = 0;       // of which stored as float64 (a value that is no 32-bit integer came)
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
    // The decoding loop of engines/base.py:generate; no max_new_tokens means no cap.
    // Generated tokens reach the caller only through `sink`, `batch` at a time.
    RunOutcome run(const std::vector<int32_t>& prompt, std::optional<int64_t> max_new_tokens, std::size_t batch,
                   const TokenSink& sink);

    int64_t position() const { return position_; }
    int32_t halt_id() const { return halt_id_; }
    std::size_t vocab_size() const { return vocab_; }
    int64_t max_exact_tokens() const { return max_exact_tokens_; }
    // Per layer, per head: "unused", "mean", "positional", "hull", "hull-upper", "hull-lower", "hull-extremes".
    std::vector<std::vector<std::string>> head_kinds() const;
    EngineStats stats() const;
    // The residual stream after the last step's final layer (what the unembedding read); for tests.
    const std::vector<double>& residual() const { return x_; }

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
    // Where a slot's value at a layer's input comes from, so that it can be
    // recomputed for any past position (load_embedding builds it this way).
    enum class SlotOrigin : uint8_t {
        kEmbedding,             // embed[token][slot]: no earlier layer writes it
        kEmbeddingPlusT,        // embed[token][slot] + t           (the t slot)
        kEmbeddingPlusT2,       // embed[token][slot] + t * t       (the t2 slot)
        kEmbeddingPlusRecency,  // embed[token][slot] + recency(t)  (the recency slot)
        kRecorded,              // written by an earlier layer: kept per position in a SlotColumn
    };
    // One nonzero of a projection row, with where its slot comes from.
    struct RecallTerm {
        double weight;
        uint32_t slot;
        SlotOrigin origin;
        uint32_t column;  // index into columns_ when origin == kRecorded
    };
    // A head's two value rows, computable now (from x) and for any past position.
    struct ValueSource {
        uint32_t x_row = 0;                   // row 2h of wv (the y row follows)
        std::vector<RecallTerm> terms[2];     // the x and y rows, in the order of SparseRows::dot
        std::vector<double> by_token;         // [vocab][2] when both rows read only embedding slots
    };
    struct ActiveHead {
        HeadKind kind;
        uint32_t head;   // index within the layer
        uint32_t state;  // index into the layer's vector of that kind
    };
    struct PositionalState {
        PositionalHead argmax;
        ValueSource values;
        bool keeps_sum;  // the query y can be 0, so 'every position ties' can happen
        ValueSum all;    // the sum of every value so far, when keeps_sum
    };
    struct HullState {
        KeyHull hull;
        ValueSource values;
    };
    struct MeanState {
        MeanHead mean;
        ValueSource values;
    };
    // One nonzero weight of the feed-forward block: the slot it reads or writes.
    struct FfnTerm {
        double weight;
        uint32_t slot;
    };
    // The FFN units that can be nonzero and reach the residual stream.
    //
    // A unit's gate (and up) row is split into a start, the sum of its leading
    // terms whose slot is a known constant (summed at build time in the run-time
    // order: the same double), and the terms that follow. Units are grouped by how
    // many such terms their gate and up have: the common small shapes run in loops
    // of compile-time length (no mispredicted loop exits), the rest in one generic
    // group. Per unit, `weights` holds gate start, up start, the gate weights, the
    // up weights; `slots` the slots of those terms; `outs` says which unit it is.
    struct UnitGroup {
        uint32_t gate_terms = 0;  // for the generic group: per unit, in gate_counts
        uint32_t up_terms = 0;
        bool generic = false;
        std::vector<double> weights;
        std::vector<uint32_t> slots;
        std::vector<uint32_t> outs;
        std::vector<uint32_t> gate_counts, up_counts;  // generic group only
    };
    // The scatter goes slot by slot, adding to each slot the outputs of the units
    // that write it in unit order (the order of the per-unit scatter it replaces),
    // the running sum in a register: destination d adds the units of
    // writes[destinations[d-1].end .. destinations[d].end) (FfnTerm.slot is the unit there).
    struct FfnDestination {
        uint32_t slot;
        uint32_t end;
    };
    struct FeedForward {
        std::size_t units = 0;
        std::vector<UnitGroup> groups;
        std::vector<FfnDestination> destinations;
        std::vector<FfnTerm> writes;
    };
    struct Layer {
        SparseRows wq, wk, wv;
        SparseRows wo_columns;  // column c of wo: where head output coordinate c goes
        FeedForward ffn;
        std::size_t head_nonzeros = 0;  // of wq, wk, wv, wo as the model has them (before folding)
        std::size_t ffn_nonzeros = 0;
        std::vector<ActiveHead> heads;
        std::vector<std::string> head_kinds;
        std::vector<MeanState> means;
        std::vector<PositionalState> positional;
        std::vector<HullState> hulls;
        // (slot, column): slots that an earlier layer computed and that this or a
        // later layer's positional heads read; x[slot] is appended to
        // columns_[column] here at every position.
        std::vector<std::pair<uint32_t, uint32_t>> recorded;
    };
    // A direct-mapped cache of the argmax of unembed @ x keyed by the few slots the
    // unembedding reads: the same inputs always give the same logits, so a hit
    // returns exactly what the scan would. Fixed size: no allocation per token.
    struct ArgmaxMemo {
        static constexpr std::size_t kMaxColumns = 4;
        static constexpr unsigned kEntryBits = 12;
        static constexpr std::size_t kEntries = std::size_t{1} << kEntryBits;
        struct Entry {
            uint64_t key[kMaxColumns];
            int32_t token = -1;  // -1: empty
        };
        bool enabled = false;
        std::vector<uint32_t> columns;  // the slots the unembedding reads, ascending
        std::vector<Entry> entries;
    };

    std::vector<SlotForm> initial_slot_forms(const ModelWeights& weights) const;
    void plan_layer(const LayerWeights& weights, const std::vector<SlotForm>& slots,
                    const std::vector<int>& last_writer, Layer& layer);
    ValueSource plan_values(Layer& layer, uint32_t head, const std::vector<int>& last_writer, bool recallable);
    void plan_feed_forward(const LayerWeights& weights, const std::vector<SlotForm>& slots, Layer& layer) const;
    // Appends the row's terms to `terms` but for its leading known constants, whose sum it returns.
    static double fold_leading_constants(const SparseRows& rows, std::size_t row, const std::vector<SlotForm>& slots,
                                         std::vector<FfnTerm>& terms);
    template <uint32_t kGateTerms, uint32_t kUpTerms>
    static void run_units(const UnitGroup& group, const double* x, double* out);
    static void run_generic_units(const UnitGroup& group, const double* x, double* out);
    void plan_unembedding();
    bool parabola_key(const Layer& layer, uint32_t head, const std::vector<SlotForm>& slots,
                      ParabolaKey& key) const;
    bool constant_row(const SparseRows& rows, std::size_t row, const std::vector<SlotForm>& slots,
                      double& value) const;

    void load_embedding(int32_t token);
    void attend(Layer& layer);
    void feed_forward(Layer& layer);
    // The head's value at the current position (from x_) and at a past position.
    void value_now(const Layer& layer, const ValueSource& values, double out[2]) const;
    void value_at(const ValueSource& values, int64_t position, double out[2]) const;
    double recall(const std::vector<RecallTerm>& terms, int32_t token, int64_t position) const;
    int32_t best_token();
    int32_t scan_best_token() const;
    void check_horizon(std::size_t positions) const;

    std::size_t d_model_ = 0;
    std::size_t vocab_ = 0;
    int t_slot_ = 0;
    int t2_slot_ = 0;
    int recency_slot_ = 0;
    int32_t halt_id_ = 0;
    int64_t max_exact_tokens_ = 0;
    int64_t position_ = 0;
    int32_t token_ = 0;          // the token at position_, while a step runs
    bool keeps_tokens_ = false;  // some positional head recomputes past values from tokens_
    bool failed_ = false;  // a step threw halfway: the attention state is no longer consistent

    std::vector<double> embed_;  // [V, D] dense: one row is copied per token
    SparseRows unembed_;
    std::vector<uint32_t> unembed_rows_;  // rows with a nonzero, in id order
    int64_t first_zero_row_ = -1;         // the lowest id whose logit is always 0, if any
    ArgmaxMemo memo_;
    std::vector<Layer> layers_;

    // Per-position history for the positional heads (history.hpp).
    TokenHistory tokens_;              // the token at every position
    // A recorded slot: the slot and the layer that last wrote it before it is read.
    struct ColumnKey {
        uint32_t slot;
        int version;
        bool operator==(const ColumnKey& other) const { return slot == other.slot && version == other.version; }
    };
    std::vector<SlotColumn> columns_;     // recorded slots, see Layer::recorded
    std::vector<ColumnKey> column_keys_;  // what columns_[i] holds

    // Buffers reused by every step: no allocation per token.
    std::vector<double> x_;
    std::vector<double> head_out_;  // 2 per active head
    std::vector<double> unit_out_;  // 1 per active FFN unit
    std::vector<int32_t> pending_;  // generated tokens not yet handed to the sink
};

}  // namespace wf
