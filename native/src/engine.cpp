#include "engine.hpp"

#include <algorithm>
#include <cmath>
#include <string>

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

    unembed_ = SparseRows::from_dense(weights.unembed);
    for (std::size_t row = 0; row < vocab_; ++row) {
        if (!unembed_.row_empty(row)) {
            unembed_rows_.push_back(static_cast<uint32_t>(row));
        } else if (first_zero_row_ < 0) {
            first_zero_row_ = static_cast<int64_t>(row);
        }
    }

    std::vector<SlotForm> slots = initial_slot_forms(weights);
    std::size_t widest_heads = 0, widest_units = 0;
    layers_.resize(weights.layers.size());
    for (std::size_t l = 0; l < weights.layers.size(); ++l) {
        plan_layer(weights.layers[l], slots, layers_[l]);
        widest_heads = std::max(widest_heads, layers_[l].heads.size());
        widest_units = std::max(widest_units, layers_[l].units.size());
        // A slot this layer writes is no longer known from the weights.
        const LayerWeights& w = weights.layers[l];
        for (std::size_t slot = 0; slot < d_model_; ++slot) {
            bool written = false;
            for (std::size_t c = 0; c < w.wo.cols && !written; ++c) written = w.wo.at(slot, c) != 0.0;
            for (std::size_t c = 0; c < w.down.cols && !written; ++c) written = w.down.at(slot, c) != 0.0;
            if (written) slots[slot].known = false;
        }
    }
    x_.assign(d_model_, 0.0);
    head_out_.assign(2 * widest_heads, 0.0);
    unit_out_.assign(widest_units, 0.0);
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

void Engine::plan_layer(const LayerWeights& weights, const std::vector<SlotForm>& slots, Layer& layer) {
    layer.wq = SparseRows::from_dense(weights.wq);
    layer.wk = SparseRows::from_dense(weights.wk);
    layer.wv = SparseRows::from_dense(weights.wv);
    layer.wo_columns = SparseRows::from_dense(weights.wo, /*by_column=*/true);
    layer.gate = SparseRows::from_dense(weights.gate);
    layer.up = SparseRows::from_dense(weights.up);
    layer.down_columns = SparseRows::from_dense(weights.down, /*by_column=*/true);

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
        ParabolaKey parabola;
        if (constant_row(layer.wk, x_row, slots, key_x) && constant_row(layer.wk, y_row, slots, key_y)) {
            layer.heads.push_back({HeadKind::kMean, h, static_cast<uint32_t>(layer.means.size())});
            layer.means.emplace_back();
            layer.head_kinds.push_back("mean");
        } else if (parabola_key(layer, h, slots, parabola)) {
            layer.heads.push_back({HeadKind::kPositional, h, static_cast<uint32_t>(layer.positional.size())});
            layer.positional.emplace_back(parabola);
            layer.head_kinds.push_back("positional");
        } else {
            // A query y that is the same for every token tells which chain can ever be asked.
            const bool fixed_query_y = constant_row(layer.wq, y_row, slots, query_y);
            const bool keep_upper = !fixed_query_y || query_y > 0.0;
            const bool keep_lower = !fixed_query_y || query_y < 0.0;
            layer.heads.push_back({HeadKind::kHull, h, static_cast<uint32_t>(layer.hulls.size())});
            layer.hulls.emplace_back(keep_upper, keep_lower);
            layer.head_kinds.push_back(keep_upper && keep_lower ? "hull"
                                       : keep_upper             ? "hull-upper"
                                       : keep_lower             ? "hull-lower"
                                                                : "hull-extremes");
        }
    }
    for (uint32_t f = 0; f < weights.gate.rows; ++f) {
        if (!layer.gate.row_empty(f) && !layer.up.row_empty(f) && !layer.down_columns.row_empty(f)) {
            layer.units.push_back(f);
        }
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
        load_embedding(token);
        for (Layer& layer : layers_) {
            attend(layer);
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
    x_[recency_slot_] += 1.0 / std::log(2.0) - 1.0 / std::log(t + 2.0);
}

void Engine::attend(Layer& layer) {
    const double* x = x_.data();
    for (std::size_t i = 0; i < layer.heads.size(); ++i) {
        const ActiveHead& head = layer.heads[i];
        const std::size_t x_row = 2 * head.head, y_row = x_row + 1;
        const double value_x = layer.wv.dot(x_row, x), value_y = layer.wv.dot(y_row, x);
        double* out = &head_out_[2 * i];
        switch (head.kind) {
            case HeadKind::kMean: {
                MeanHead& mean = layer.means[head.state];
                mean.append(value_x, value_y);
                mean.query(out);
                break;
            }
            case HeadKind::kPositional: {
                PositionalHead& positional = layer.positional[head.state];
                positional.append(value_x, value_y);
                positional.query(layer.wq.dot(x_row, x), layer.wq.dot(y_row, x), out);
                break;
            }
            case HeadKind::kHull: {
                KeyHull& hull = layer.hulls[head.state];
                hull.insert(layer.wk.dot(x_row, x), layer.wk.dot(y_row, x), value_x, value_y);
                hull.query(layer.wq.dot(x_row, x), layer.wq.dot(y_row, x), out);
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

void Engine::feed_forward(Layer& layer) {
    const double* x = x_.data();
    for (std::size_t j = 0; j < layer.units.size(); ++j) {
        const uint32_t unit = layer.units[j];
        const double gate = layer.gate.dot(unit, x);
        unit_out_[j] = gate > 0.0 ? gate * layer.up.dot(unit, x) : 0.0;  // relu(gate) * up
    }
    for (std::size_t j = 0; j < layer.units.size(); ++j) {
        if (unit_out_[j] != 0.0) layer.down_columns.scatter(layer.units[j], unit_out_[j], x_.data());
    }
}

// argmax of unembed @ x; the lowest id wins an exact tie.
int32_t Engine::best_token() const {
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

RunOutcome Engine::run(const std::vector<int32_t>& prompt, int64_t max_new_tokens, std::size_t batch,
                       const TokenSink& sink) {
    if (prompt.empty()) throw EngineFailure("the prompt is empty");
    if (batch == 0) batch = kDefaultBatch;
    check_horizon(prompt.size());
    for (std::size_t i = 0; i + 1 < prompt.size(); ++i) step(prompt[i]);
    int32_t next = step(prompt.back());

    RunOutcome outcome;
    std::size_t delivered = 0;
    auto deliver = [&]() {
        if (sink && outcome.trace.size() > delivered) {
            sink(outcome.trace.data() + delivered, outcome.trace.size() - delivered);
        }
        delivered = outcome.trace.size();
    };
    while (true) {
        outcome.trace.push_back(next);
        if (outcome.trace.size() - delivered >= batch) deliver();
        if (next == halt_id_) {
            outcome.stop_reason = "halt";
            break;
        }
        if (max_new_tokens >= 0 && static_cast<int64_t>(outcome.trace.size()) >= max_new_tokens) {
            outcome.stop_reason = "max_tokens";
            break;
        }
        if (static_cast<int64_t>(prompt.size() + outcome.trace.size()) > max_exact_tokens_) {
            deliver();  // the caller has seen every token generated before the refusal
            check_horizon(prompt.size() + outcome.trace.size());
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
    for (const Layer& layer : layers_) {
        for (const KeyHull& hull : layer.hulls) {
            stats.hull_points += hull.stored_points();
            stats.scanning_heads += hull.exact() ? 0 : 1;
            stats.state_bytes += hull.reserved_bytes();
        }
        for (const PositionalHead& positional : layer.positional) stats.state_bytes += positional.reserved_bytes();
        stats.projection_nonzeros += layer.wq.nonzeros() + layer.wk.nonzeros() + layer.wv.nonzeros() +
                                     layer.wo_columns.nonzeros() + layer.gate.nonzeros() + layer.up.nonzeros() +
                                     layer.down_columns.nonzeros();
    }
    return stats;
}

}  // namespace wf
