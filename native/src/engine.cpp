#include "engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace wf {

namespace {

// Integers below this magnitude are exact in float64, and so are sums and
// products of them that stay below it.
constexpr double kFloatExactIntegerLimit = 9007199254740992.0;  // 2^53
// How often (in generated tokens) the sink hears from a run when the caller did not say.
constexpr std::size_t kDefaultBatch = 4096;

bool is_small_integer(double value) {
    return std::fabs(value) < kFloatExactIntegerLimit && value == std::trunc(value);
}

// The recency feature at position t; load_embedding adds it to the recency slot
// and recall recomputes it, with the same operations.
double recency_offset(double t) { return 1.0 / std::log(2.0) - 1.0 / std::log(t + 2.0); }

// Mixes the bit patterns of the unembedding's inputs into an index of the argmax memo.
constexpr uint64_t kHashMultiplier = 0x9E3779B97F4A7C15ULL;  // 2^64 / golden ratio, odd
constexpr uint64_t kHashFinalMultiplier = 0xD6E8FEB86659FD93ULL;

// FFN units with at most this many variable gate / up terms run in loops of fixed length.
constexpr uint32_t kFixedGateTerms = 4;
constexpr uint32_t kFixedUpTerms = 1;
constexpr uint32_t kGenericShape = ~0u;

// relu(gate) as `gate > 0 ? gate : 0`, without a branch on the gate's sign (hard
// to predict): maxsd returns its second operand, +0.0, when gate <= 0 or is NaN.
inline double relu(double gate) {
#if defined(__SSE2__)
    return _mm_cvtsd_f64(_mm_max_sd(_mm_set_sd(gate), _mm_setzero_pd()));
#else
    return gate > 0.0 ? gate : 0.0;
#endif
}

// last_writer value of a slot that no layer writes.
constexpr int kNeverWritten = -1;

// Generated tokens the run buffers at most before the first hand-over, however large `batch` is
// (the buffer still grows past it when a caller asks for bigger batches).
constexpr std::size_t kMaxPendingReserve = std::size_t{1} << 16;

std::string horizon_message(std::size_t positions, int64_t horizon) {
    return "position " + std::to_string(static_cast<int64_t>(positions) - 1) +
           " lies beyond this model's precision horizon (max_exact_tokens = " + std::to_string(horizon) +
           "); stopping before any inexact token is produced";
}

}  // namespace

// ---------------------------------------------------------------------------
// Building: every specialisation is decided here, from the weights alone.

Engine::Engine(const ModelWeights& weights)
    : d_model_(weights.embed.cols),
      vocab_(weights.embed.rows),
      t_slot_(weights.t_slot),
      t2_slot_(weights.t2_slot),
      recency_slot_(weights.recency_slot),
      halt_id_(weights.halt_id),
      max_exact_tokens_(weights.max_exact_tokens) {
    if (vocab_ == 0 || d_model_ == 0) throw EngineFailure("the model has an empty embedding");
    for (int slot : {t_slot_, t2_slot_, recency_slot_}) {
        if (slot < 0 || static_cast<std::size_t>(slot) >= d_model_) throw EngineFailure("positional slot outside d_model");
    }
    if (halt_id_ < 0 || static_cast<std::size_t>(halt_id_) >= vocab_) throw EngineFailure("halt id outside the vocabulary");
    embed_.assign(weights.embed.data, weights.embed.data + vocab_ * d_model_);
    tokens_ = TokenHistory(vocab_);

    unembed_ = SparseRows::from_dense(weights.unembed);
    for (std::size_t row = 0; row < vocab_; ++row) {
        if (!unembed_.row_empty(row)) {
            unembed_rows_.push_back(static_cast<uint32_t>(row));
        } else if (first_zero_row_ < 0) {
            first_zero_row_ = static_cast<int64_t>(row);
        }
    }
    plan_unembedding();

    std::vector<SlotForm> slots = initial_slot_forms(weights);
    std::vector<int> last_writer(d_model_, kNeverWritten);  // the last earlier layer that writes each slot
    std::size_t widest_heads = 0, widest_units = 0;
    layers_.resize(weights.layers.size());
    for (std::size_t l = 0; l < weights.layers.size(); ++l) {
        plan_layer(weights.layers[l], slots, last_writer, layers_[l]);
        widest_heads = std::max(widest_heads, layers_[l].heads.size());
        widest_units = std::max(widest_units, layers_[l].ffn.units);
        // A slot this layer writes is no longer known from the weights, nor a function of the token.
        const LayerWeights& w = weights.layers[l];
        for (std::size_t slot = 0; slot < d_model_; ++slot) {
            bool writes = false;
            for (std::size_t c = 0; c < w.wo.cols && !writes; ++c) writes = w.wo.at(slot, c) != 0.0;
            for (std::size_t c = 0; c < w.down.cols && !writes; ++c) writes = w.down.at(slot, c) != 0.0;
            if (writes) {
                slots[slot].known = false;
                last_writer[slot] = static_cast<int>(l);
            }
        }
    }
    for (const Layer& layer : layers_) keeps_tokens_ = keeps_tokens_ || !layer.positional.empty();
    x_.assign(d_model_, 0.0);
    head_out_.assign(2 * widest_heads, 0.0);
    unit_out_.assign(widest_units, 0.0);
}

// The argmax memo is worth it when the unembedding reads a few slots only (this
// project's models read two: a constant and the next token's id).
void Engine::plan_unembedding() {
    std::vector<bool> read(d_model_, false);
    for (uint32_t row : unembed_rows_) unembed_.for_each_in_row(row, [&](uint32_t slot, double) { read[slot] = true; });
    for (std::size_t slot = 0; slot < d_model_; ++slot) {
        if (read[slot]) memo_.columns.push_back(static_cast<uint32_t>(slot));
    }
    memo_.enabled = !memo_.columns.empty() && memo_.columns.size() <= ArgmaxMemo::kMaxColumns;
    if (memo_.enabled) memo_.entries.assign(ArgmaxMemo::kEntries, ArgmaxMemo::Entry{});
}

std::vector<Engine::SlotForm> Engine::initial_slot_forms(const ModelWeights& weights) const {
    std::vector<SlotForm> slots(d_model_);
    for (std::size_t slot = 0; slot < d_model_; ++slot) {
        SlotForm& form = slots[slot];
        const double first = weights.embed.at(0, slot);
        form.known = static_cast<int>(slot) != recency_slot_;
        for (std::size_t row = 1; row < vocab_ && form.known; ++row) form.known = weights.embed.at(row, slot) == first;
        form.constant = first;
        form.per_t = static_cast<int>(slot) == t_slot_ ? 1.0 : 0.0;
        form.per_t2 = static_cast<int>(slot) == t2_slot_ ? 1.0 : 0.0;
    }
    return slots;
}

// True when the row reads only slots that are the same for every token; `value`
// is then the row's output, computed in the same order as at run time.
bool Engine::constant_row(const SparseRows& rows, std::size_t row, const std::vector<SlotForm>& slots,
                          double& value) const {
    bool constant = true;
    double sum = 0.0;
    rows.for_each_in_row(row, [&](uint32_t slot, double weight) {
        constant = constant && slots[slot].pure_constant();
        sum += weight * slots[slot].constant;
    });
    value = sum;
    return constant;
}

// True when the head's key is (a*t + c0, -b*t^2 + d*t + c1) with integers, b > 0,
// and every partial sum of its computation is an exact integer up to the horizon.
bool Engine::parabola_key(const Layer& layer, uint32_t head, const std::vector<SlotForm>& slots,
                          ParabolaKey& key) const {
    const int128 horizon = std::max<int64_t>(max_exact_tokens_, 1);
    int128 coefficient[2][3] = {{0, 0, 0}, {0, 0, 0}};  // [row][constant, t, t^2]
    int128 magnitude[2] = {0, 0};                       // bound on every partial sum
    for (int r = 0; r < 2; ++r) {
        bool affine = true;
        layer.wk.for_each_in_row(2 * head + r, [&](uint32_t slot, double weight) {
            const SlotForm& form = slots[slot];
            if (!form.known || !is_small_integer(weight) || !is_small_integer(form.constant)) {
                affine = false;
                return;
            }
            const int128 w = static_cast<int64_t>(weight);
            const int128 c = static_cast<int64_t>(form.constant);
            const int128 per_t = static_cast<int64_t>(form.per_t);
            const int128 per_t2 = static_cast<int64_t>(form.per_t2);
            coefficient[r][0] += w * c;
            coefficient[r][1] += w * per_t;
            coefficient[r][2] += w * per_t2;
            const int128 slot_bound = (c < 0 ? -c : c) + per_t * horizon + per_t2 * horizon * horizon;
            magnitude[r] += (w < 0 ? -w : w) * slot_bound;
        });
        if (!affine || magnitude[r] >= static_cast<int128>(kFloatExactIntegerLimit)) return false;
    }
    if (coefficient[0][2] != 0 || coefficient[1][2] >= 0) return false;
    key.a = static_cast<int64_t>(coefficient[0][1]);
    key.c0 = static_cast<int64_t>(coefficient[0][0]);
    key.b = static_cast<int64_t>(-coefficient[1][2]);
    key.d = static_cast<int64_t>(coefficient[1][1]);
    key.c1 = static_cast<int64_t>(coefficient[1][0]);
    return true;
}

void Engine::plan_layer(const LayerWeights& weights, const std::vector<SlotForm>& slots,
                        const std::vector<int>& last_writer, Layer& layer) {
    layer.wq = SparseRows::from_dense(weights.wq);
    layer.wk = SparseRows::from_dense(weights.wk);
    layer.wv = SparseRows::from_dense(weights.wv);
    layer.wo_columns = SparseRows::from_dense(weights.wo, /*by_column=*/true);

    const uint32_t n_heads = static_cast<uint32_t>(weights.wq.rows / 2);
    for (uint32_t h = 0; h < n_heads; ++h) {
        const uint32_t x_row = 2 * h, y_row = 2 * h + 1;
        const bool no_value = layer.wv.row_empty(x_row) && layer.wv.row_empty(y_row);
        const bool unused = layer.wo_columns.row_empty(x_row) && layer.wo_columns.row_empty(y_row);
        if (no_value || unused) {  // its output is zero or goes nowhere
            layer.head_kinds.push_back("unused");
            continue;
        }
        double key_x = 0.0, key_y = 0.0, query_y = 0.0;
        // A query y that is the same for every token tells which chain (or end) can ever win.
        const bool fixed_query_y = constant_row(layer.wq, y_row, slots, query_y);
        ParabolaKey parabola;
        if (constant_row(layer.wk, x_row, slots, key_x) && constant_row(layer.wk, y_row, slots, key_y)) {
            layer.heads.push_back({HeadKind::kMean, h, static_cast<uint32_t>(layer.means.size())});
            layer.means.push_back(MeanState{MeanHead{}, plan_values(layer, h, last_writer, false)});
            layer.head_kinds.push_back("mean");
        } else if (parabola_key(layer, h, slots, parabola)) {
            layer.heads.push_back({HeadKind::kPositional, h, static_cast<uint32_t>(layer.positional.size())});
            // 'Every position ties' needs q_y == 0; the running sum is kept only when that can happen.
            const bool keeps_sum = !fixed_query_y || query_y == 0.0;
            layer.positional.push_back(
                PositionalState{PositionalHead(parabola), plan_values(layer, h, last_writer, true), keeps_sum, ValueSum{}});
            layer.head_kinds.push_back("positional");
        } else {
            const bool keep_upper = !fixed_query_y || query_y > 0.0;
            const bool keep_lower = !fixed_query_y || query_y < 0.0;
            const bool keep_extremes = !fixed_query_y || query_y == 0.0;
            layer.heads.push_back({HeadKind::kHull, h, static_cast<uint32_t>(layer.hulls.size())});
            layer.hulls.push_back(
                HullState{KeyHull(keep_upper, keep_lower, keep_extremes), plan_values(layer, h, last_writer, false)});
            layer.head_kinds.push_back(keep_upper && keep_lower ? "hull"
                                       : keep_upper             ? "hull-upper"
                                       : keep_lower             ? "hull-lower"
                                                                : "hull-extremes");
        }
    }
    layer.head_nonzeros = layer.wq.nonzeros() + layer.wk.nonzeros() + layer.wv.nonzeros() + layer.wo_columns.nonzeros();
    // Planning is done (it reads every term); the rows the heads compute at run time lose their constant lead.
    auto constant_of = [&](uint32_t slot, double& value) {
        value = slots[slot].constant;
        return slots[slot].pure_constant();
    };
    layer.wq.fold_leading(constant_of);
    layer.wk.fold_leading(constant_of);
    layer.wv.fold_leading(constant_of);
    plan_feed_forward(weights, slots, layer);
}

// How to compute a head's value rows: from a per-token table when they read only
// embedding slots; otherwise with wv now, and, for a head that can fetch past
// positions (`recallable`), term by term from the position's token, the position
// itself and the recorded slots. A slot is recorded once per version (the layer
// that last wrote it): heads of later layers that read the same version share
// the column, which the first layer reading it fills.
Engine::ValueSource Engine::plan_values(Layer& layer, uint32_t head, const std::vector<int>& last_writer,
                                        bool recallable) {
    ValueSource values;
    values.x_row = 2 * head;
    bool embedding_only = true;
    for (int r = 0; r < 2; ++r) {
        layer.wv.for_each_in_row(values.x_row + r, [&](uint32_t slot, double weight) {
            const int s = static_cast<int>(slot);
            const int positional_roles = (s == t_slot_) + (s == t2_slot_) + (s == recency_slot_);
            RecallTerm term{weight, slot, SlotOrigin::kEmbedding, 0};
            if (last_writer[slot] != kNeverWritten || positional_roles > 1) {  // a slot with two roles is simply recorded
                term.origin = SlotOrigin::kRecorded;
            } else if (s == t_slot_) {
                term.origin = SlotOrigin::kEmbeddingPlusT;
            } else if (s == t2_slot_) {
                term.origin = SlotOrigin::kEmbeddingPlusT2;
            } else if (s == recency_slot_) {
                term.origin = SlotOrigin::kEmbeddingPlusRecency;
            }
            embedding_only = embedding_only && term.origin == SlotOrigin::kEmbedding;
            values.terms[r].push_back(term);
        });
    }
    if (embedding_only) {
        // x[slot] is embed[token][slot] exactly for these slots: the same sums as wv @ x, in the same order.
        values.by_token.assign(2 * vocab_, 0.0);
        for (std::size_t token = 0; token < vocab_; ++token) {
            const double* embedding = embed_.data() + token * d_model_;
            for (int r = 0; r < 2; ++r) {
                double sum = 0.0;
                for (const RecallTerm& term : values.terms[r]) sum += term.weight * embedding[term.slot];
                values.by_token[2 * token + r] = sum;
            }
        }
        return values;
    }
    if (recallable) {
        for (auto& row : values.terms) {
            for (RecallTerm& term : row) {
                if (term.origin != SlotOrigin::kRecorded) continue;
                const ColumnKey key{term.slot, last_writer[term.slot]};
                const auto found = std::find(column_keys_.begin(), column_keys_.end(), key);
                term.column = static_cast<uint32_t>(found - column_keys_.begin());
                if (found == column_keys_.end()) {
                    column_keys_.push_back(key);
                    columns_.emplace_back();
                    layer.recorded.emplace_back(term.slot, term.column);
                }
            }
        }
    }
    return values;
}

double Engine::fold_leading_constants(const SparseRows& rows, std::size_t row, const std::vector<SlotForm>& slots,
                                     std::vector<FfnTerm>& terms) {
    double start = 0.0;
    bool leading = true;
    rows.for_each_in_row(row, [&](uint32_t slot, double weight) {
        leading = leading && slots[slot].pure_constant();
        if (leading) {
            start += weight * slots[slot].constant;  // what the run-time loop would compute first
        } else {
            terms.push_back({weight, slot});
        }
    });
    return start;
}

// FFN units whose gate, up or down weights are all zero are dropped: their output
// is 0 or goes nowhere; so are units whose gate is a constant <= 0 (always off).
// `slots` are the forms at the layer's input; the FFN reads x after the layer's heads wrote to it.
void Engine::plan_feed_forward(const LayerWeights& weights, const std::vector<SlotForm>& slots, Layer& layer) const {
    std::vector<SlotForm> ffn_slots = slots;
    for (std::size_t slot = 0; slot < d_model_; ++slot) {
        for (std::size_t c = 0; c < weights.wo.cols; ++c) {
            if (weights.wo.at(slot, c) != 0.0) ffn_slots[slot].known = false;
        }
    }
    const SparseRows gate = SparseRows::from_dense(weights.gate);
    const SparseRows up = SparseRows::from_dense(weights.up);
    const SparseRows down = SparseRows::from_dense(weights.down);  // by destination slot
    layer.ffn_nonzeros = gate.nonzeros() + up.nonzeros() + down.nonzeros();
    FeedForward& ffn = layer.ffn;
    // groups[g * (kFixedUpTerms + 1) + u] has g gate terms and u up terms; the last one is generic.
    ffn.groups.resize((kFixedGateTerms + 1) * (kFixedUpTerms + 1) + 1);
    for (uint32_t g = 0; g <= kFixedGateTerms; ++g) {
        for (uint32_t u = 0; u <= kFixedUpTerms; ++u) {
            ffn.groups[g * (kFixedUpTerms + 1) + u].gate_terms = g;
            ffn.groups[g * (kFixedUpTerms + 1) + u].up_terms = u;
        }
    }
    ffn.groups.back().generic = true;

    std::vector<int64_t> unit_of(weights.gate.rows, -1);  // index among the kept units
    for (uint32_t f = 0; f < weights.gate.rows; ++f) {
        bool writes = false;
        for (std::size_t slot = 0; slot < d_model_ && !writes; ++slot) writes = weights.down.at(slot, f) != 0.0;
        if (gate.row_empty(f) || up.row_empty(f) || !writes) continue;
        std::vector<FfnTerm> gate_terms, up_terms;
        const double gate_start = fold_leading_constants(gate, f, ffn_slots, gate_terms);
        const double up_start = fold_leading_constants(up, f, ffn_slots, up_terms);
        if (gate_terms.empty() && !(gate_start > 0.0)) continue;  // relu(gate) is always 0
        const bool fixed = gate_terms.size() <= kFixedGateTerms && up_terms.size() <= kFixedUpTerms;
        UnitGroup& group = fixed ? ffn.groups[gate_terms.size() * (kFixedUpTerms + 1) + up_terms.size()]
                                 : ffn.groups.back();
        unit_of[f] = static_cast<int64_t>(ffn.units);
        group.outs.push_back(static_cast<uint32_t>(ffn.units++));
        group.weights.push_back(gate_start);
        group.weights.push_back(up_start);
        for (const auto* terms : {&gate_terms, &up_terms}) {
            for (const FfnTerm& term : *terms) group.weights.push_back(term.weight);
        }
        for (const auto* terms : {&gate_terms, &up_terms}) {
            for (const FfnTerm& term : *terms) group.slots.push_back(term.slot);
        }
        if (group.generic) {
            group.gate_counts.push_back(static_cast<uint32_t>(gate_terms.size()));
            group.up_counts.push_back(static_cast<uint32_t>(up_terms.size()));
        }
    }
    auto empty = [](const UnitGroup& group) { return group.outs.empty(); };
    ffn.groups.erase(std::remove_if(ffn.groups.begin(), ffn.groups.end(), empty), ffn.groups.end());

    for (uint32_t slot = 0; slot < d_model_; ++slot) {
        down.for_each_in_row(slot, [&](uint32_t f, double weight) {  // in unit order
            if (unit_of[f] >= 0) ffn.writes.push_back({weight, static_cast<uint32_t>(unit_of[f])});
        });
        const std::size_t previous_end = ffn.destinations.empty() ? 0 : ffn.destinations.back().end;
        if (ffn.writes.size() > previous_end) ffn.destinations.push_back({slot, static_cast<uint32_t>(ffn.writes.size())});
    }
}

// ---------------------------------------------------------------------------
// One forward pass.

int32_t Engine::step(int32_t token) {
    if (token < 0 || static_cast<std::size_t>(token) >= vocab_) {
        throw EngineFailure("token id " + std::to_string(token) + " is outside the vocabulary (size " +
                            std::to_string(vocab_) + ")");
    }
    if (position_ >= max_exact_tokens_) throw HorizonExceeded(horizon_message(position_ + 1, max_exact_tokens_));
    if (failed_) throw EngineFailure("this engine stopped at an error in an earlier step; build a new one");
    try {
        token_ = token;
        if (keeps_tokens_) tokens_.push_back(token);
        load_embedding(token);
        for (Layer& layer : layers_) {
            if (!layer.heads.empty()) attend(layer);
            feed_forward(layer);
        }
    } catch (const std::domain_error& error) {  // a non-finite query: half of this step is stored
        failed_ = true;
        throw EngineFailure(error.what());
    } catch (...) {
        failed_ = true;
        throw;
    }
    ++position_;
    return best_token();
}

void Engine::load_embedding(int32_t token) {
    const double* row = embed_.data() + static_cast<std::size_t>(token) * d_model_;
    std::copy(row, row + d_model_, x_.begin());
    const double t = static_cast<double>(position_);
    x_[t_slot_] += t;
    x_[t2_slot_] += t * t;
    x_[recency_slot_] += recency_offset(t);
}

void Engine::value_now(const Layer& layer, const ValueSource& values, double out[2]) const {
    if (!values.by_token.empty()) {
        out[0] = values.by_token[2 * static_cast<std::size_t>(token_)];
        out[1] = values.by_token[2 * static_cast<std::size_t>(token_) + 1];
        return;
    }
    out[0] = layer.wv.dot(values.x_row, x_.data());
    out[1] = layer.wv.dot(values.x_row + 1, x_.data());
}

void Engine::value_at(const ValueSource& values, int64_t position, double out[2]) const {
    const int32_t token = tokens_[static_cast<std::size_t>(position)];
    if (!values.by_token.empty()) {
        out[0] = values.by_token[2 * static_cast<std::size_t>(token)];
        out[1] = values.by_token[2 * static_cast<std::size_t>(token) + 1];
        return;
    }
    out[0] = recall(values.terms[0], token, position);
    out[1] = recall(values.terms[1], token, position);
}

// One value row at a past position: x[slot] as load_embedding and the earlier
// layers made it then, so the same products and sums as wv @ x at that step.
double Engine::recall(const std::vector<RecallTerm>& terms, int32_t token, int64_t position) const {
    const double* embedding = embed_.data() + static_cast<std::size_t>(token) * d_model_;
    const double t = static_cast<double>(position);
    double sum = 0.0;
    for (const RecallTerm& term : terms) {
        double x = 0.0;
        switch (term.origin) {
            case SlotOrigin::kEmbedding: x = embedding[term.slot]; break;
            case SlotOrigin::kEmbeddingPlusT: x = embedding[term.slot] + t; break;
            case SlotOrigin::kEmbeddingPlusT2: x = embedding[term.slot] + t * t; break;
            case SlotOrigin::kEmbeddingPlusRecency: x = embedding[term.slot] + recency_offset(t); break;
            case SlotOrigin::kRecorded: x = columns_[term.column][static_cast<std::size_t>(position)]; break;
        }
        sum += term.weight * x;
    }
    return sum;
}

void Engine::attend(Layer& layer) {
    const double* x = x_.data();
    for (const auto& [slot, column] : layer.recorded) columns_[column].push_back(x[slot]);
    for (std::size_t i = 0; i < layer.heads.size(); ++i) {
        const ActiveHead& head = layer.heads[i];
        const std::size_t x_row = 2 * head.head, y_row = x_row + 1;
        double* out = &head_out_[2 * i];
        double value[2];
        switch (head.kind) {
            case HeadKind::kMean: {
                MeanState& mean = layer.means[head.state];
                value_now(layer, mean.values, value);
                mean.mean.append(value[0], value[1]);
                mean.mean.query(out);
                break;
            }
            case HeadKind::kPositional: {
                PositionalState& positional = layer.positional[head.state];
                if (positional.keeps_sum) {
                    value_now(layer, positional.values, value);
                    positional.all.add(value[0], value[1]);
                }
                const PositionalWinners winners =
                    positional.argmax.query(layer.wq.dot(x_row, x), layer.wq.dot(y_row, x), position_);
                if (winners.all) {
                    if (!positional.keeps_sum) throw std::logic_error("positional head tied everywhere without its sum");
                    positional.all.average_into(out);
                    break;
                }
                ValueSum sum;
                value_at(positional.values, winners.first, value);
                sum.add(value[0], value[1]);
                if (winners.second != winners.first) {
                    value_at(positional.values, winners.second, value);
                    sum.add(value[0], value[1]);
                }
                sum.average_into(out);
                break;
            }
            case HeadKind::kHull: {
                HullState& hull = layer.hulls[head.state];
                const double key_x = layer.wk.dot(x_row, x), key_y = layer.wk.dot(y_row, x);
                // Most keys of an idle lookup head are cleared far below its chain: no value, no insert.
                if (!hull.hull.ignores(key_x, key_y)) {
                    value_now(layer, hull.values, value);
                    hull.hull.insert(key_x, key_y, value[0], value[1]);
                }
                hull.hull.query(layer.wq.dot(x_row, x), layer.wq.dot(y_row, x), out);
                break;
            }
        }
    }
    // Every head read the same x; only now do their outputs join the residual stream.
    for (std::size_t i = 0; i < layer.heads.size(); ++i) {
        const std::size_t x_row = 2 * layer.heads[i].head;
        layer.wo_columns.scatter(x_row, head_out_[2 * i], x_.data());
        layer.wo_columns.scatter(x_row + 1, head_out_[2 * i + 1], x_.data());
    }
}

// One group of FFN units with a fixed number of gate and up terms.
template <uint32_t kGateTerms, uint32_t kUpTerms>
void Engine::run_units(const UnitGroup& group, const double* x, double* out) {
    constexpr uint32_t kWeights = 2 + kGateTerms + kUpTerms, kSlots = kGateTerms + kUpTerms;
    const double* weight = group.weights.data();
    const uint32_t* slot = group.slots.data();
    for (const uint32_t unit : group.outs) {
        double gate = weight[0], up = weight[1];
        for (uint32_t k = 0; k < kGateTerms; ++k) gate += weight[2 + k] * x[slot[k]];
        for (uint32_t k = 0; k < kUpTerms; ++k) up += weight[2 + kGateTerms + k] * x[slot[kGateTerms + k]];
        out[unit] = relu(gate) * up;
        weight += kWeights;
        slot += kSlots;
    }
}

void Engine::run_generic_units(const UnitGroup& group, const double* x, double* out) {
    const double* weight = group.weights.data();
    const uint32_t* slot = group.slots.data();
    for (std::size_t i = 0; i < group.outs.size(); ++i) {
        double gate = *weight++, up = *weight++;
        for (uint32_t k = 0; k < group.gate_counts[i]; ++k) gate += *weight++ * x[*slot++];
        for (uint32_t k = 0; k < group.up_counts[i]; ++k) up += *weight++ * x[*slot++];
        out[group.outs[i]] = relu(gate) * up;
    }
}

// x += w_down @ (relu(w_gate @ x) * (w_up @ x)): every unit reads x before any writes it.
void Engine::feed_forward(Layer& layer) {
    const FeedForward& ffn = layer.ffn;
    const double* x = x_.data();
    double* out = unit_out_.data();
    static_assert(kFixedGateTerms == 4 && kFixedUpTerms == 1, "the dispatch below lists every fixed shape");
    for (const UnitGroup& group : ffn.groups) {
        switch (group.generic ? kGenericShape : group.gate_terms * (kFixedUpTerms + 1) + group.up_terms) {
            case 0: run_units<0, 0>(group, x, out); break;
            case 1: run_units<0, 1>(group, x, out); break;
            case 2: run_units<1, 0>(group, x, out); break;
            case 3: run_units<1, 1>(group, x, out); break;
            case 4: run_units<2, 0>(group, x, out); break;
            case 5: run_units<2, 1>(group, x, out); break;
            case 6: run_units<3, 0>(group, x, out); break;
            case 7: run_units<3, 1>(group, x, out); break;
            case 8: run_units<4, 0>(group, x, out); break;
            case 9: run_units<4, 1>(group, x, out); break;
            default: run_generic_units(group, x, out); break;
        }
    }
    // Slot by slot, adding in unit order: the sums of the per-unit scatter, kept in a register.
    double* residual = x_.data();
    const FfnTerm* write = ffn.writes.data();
    for (const FfnDestination& destination : ffn.destinations) {
        double sum = residual[destination.slot];
        for (const FfnTerm* end = ffn.writes.data() + destination.end; write != end; ++write) {
            sum += write->weight * out[write->slot];
        }
        residual[destination.slot] = sum;
    }
}

// argmax of unembed @ x, remembered by the values of the slots it reads.
int32_t Engine::best_token() {
    if (!memo_.enabled) return scan_best_token();
    uint64_t key[ArgmaxMemo::kMaxColumns] = {};
    uint64_t hash = 0;
    for (std::size_t i = 0; i < memo_.columns.size(); ++i) {
        std::memcpy(&key[i], &x_[memo_.columns[i]], sizeof(double));
        hash = (hash ^ key[i]) * kHashMultiplier;
    }
    hash = (hash ^ (hash >> 32)) * kHashFinalMultiplier;
    ArgmaxMemo::Entry& entry = memo_.entries[hash >> (64 - ArgmaxMemo::kEntryBits)];
    if (entry.token >= 0 && std::equal(key, key + ArgmaxMemo::kMaxColumns, entry.key)) return entry.token;
    const int32_t token = scan_best_token();
    std::copy(key, key + ArgmaxMemo::kMaxColumns, entry.key);
    entry.token = token;
    return token;
}

// The lowest id wins an exact tie, as np.argmax.
int32_t Engine::scan_best_token() const {
    int64_t best = -1;
    double best_logit = 0.0;
    for (uint32_t row : unembed_rows_) {
        const double logit = unembed_.dot(row, x_.data());
        if (best < 0 || logit > best_logit) {
            best = row;
            best_logit = logit;
        }
    }
    if (first_zero_row_ >= 0 &&
        (best < 0 || best_logit < 0.0 || (best_logit == 0.0 && first_zero_row_ < best))) {
        best = first_zero_row_;
    }
    return static_cast<int32_t>(best);
}

// ---------------------------------------------------------------------------
// The decoding loop: the same stop rules and horizon checks as engines/base.py:generate.

void Engine::check_horizon(std::size_t positions) const {
    if (static_cast<int64_t>(positions) > max_exact_tokens_) {
        throw HorizonExceeded(horizon_message(positions, max_exact_tokens_));
    }
}

RunOutcome Engine::run(const std::vector<int32_t>& prompt, std::optional<int64_t> max_new_tokens, std::size_t batch,
                       const TokenSink& sink) {
    if (prompt.empty()) throw EngineFailure("the prompt is empty");
    if (batch == 0) batch = kDefaultBatch;
    check_horizon(prompt.size());
    for (std::size_t i = 0; i + 1 < prompt.size(); ++i) step(prompt[i]);
    int32_t next = step(prompt.back());

    RunOutcome outcome;
    pending_.clear();
    pending_.reserve(std::min(batch, kMaxPendingReserve));
    auto deliver = [&]() {
        if (sink && !pending_.empty()) sink(pending_.data(), pending_.size());
        pending_.clear();
    };
    while (true) {
        pending_.push_back(next);
        ++outcome.generated;
        if (pending_.size() >= batch) deliver();
        if (next == halt_id_) {
            outcome.stop_reason = "halt";
            break;
        }
        if (max_new_tokens && static_cast<int64_t>(outcome.generated) >= *max_new_tokens) {
            outcome.stop_reason = "max_new_tokens";
            break;
        }
        if (static_cast<int64_t>(prompt.size() + outcome.generated) > max_exact_tokens_) {
            deliver();  // the caller has seen every token generated before the refusal
            check_horizon(prompt.size() + outcome.generated);
        }
        next = step(next);
    }
    deliver();
    return outcome;
}

// ---------------------------------------------------------------------------
// Introspection.

std::vector<std::vector<std::string>> Engine::head_kinds() const {
    std::vector<std::vector<std::string>> kinds;
    for (const Layer& layer : layers_) kinds.push_back(layer.head_kinds);
    return kinds;
}

EngineStats Engine::stats() const {
    EngineStats stats;
    stats.position = position_;
    stats.projection_nonzeros = unembed_.nonzeros();
    stats.history_bytes = tokens_.reserved_bytes();
    for (const SlotColumn& column : columns_) {
        stats.history_bytes += column.reserved_bytes();
        stats.wide_slots += column.form() == SlotColumn::Form::kFloat64 ? 1 : 0;
    }
    stats.recorded_slots = columns_.size();
    stats.state_bytes = stats.history_bytes;
    for (const Layer& layer : layers_) {
        for (const HullState& state : layer.hulls) {
            stats.hull_points += state.hull.stored_points();
            stats.scanning_heads += state.hull.exact() ? 0 : 1;
            stats.state_bytes += state.hull.reserved_bytes();
        }
        stats.projection_nonzeros += layer.head_nonzeros + layer.ffn_nonzeros;
    }
    return stats;
}

}  // namespace wf
