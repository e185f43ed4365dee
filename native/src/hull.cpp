#include "hull.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>

namespace wf {

void ValueSum::throw_empty() { throw std::logic_error("attention over an empty set of keys"); }

// ---------------------------------------------------------------------------
// UpperChain

UpperChain::UpperChain()
    : arena_(std::make_unique<NodeArena>()),
      vertices_(std::make_unique<VertexSet>(Order{}, ArenaAllocator<Vertex>(arena_.get()))) {}

void UpperChain::insert(IntPoint point, double value_x, double value_y) {
    if (hides(point)) return;  // no tree search for the many keys pushed far below (cleared keys)
    forget_memo_if_reached(point);
    VertexSet& vertices = *vertices_;
    Iterator next = vertices.lower_bound(point.x);  // first vertex with x >= point.x
    if (next != vertices.end() && next->x == point.x) {
        if (next->y == point.y) {  // the same key again: one vertex, summed values
            next->value.add(value_x, value_y);
            return;
        }
        if (next->y > point.y) return;  // straight below a vertex: never wins with q_y > 0
        // Straight above a vertex (the common case of a key rewritten with a newer
        // position): the old vertex can never win again, the new key takes its
        // place in the tree. The old vertex was on or above the chord of its
        // neighbours, so the new one is strictly above it and stays on the chain.
        next->y = point.y;
        next->value = ValueSum{};
        next->value.add(value_x, value_y);
        drop_hidden_neighbours(next);
        refresh_edges_around(next);
        note_ends();
        return;
    }
    if (next != vertices.end() && next != vertices.begin()) {
        const Iterator previous = std::prev(next);
        // A left turn previous -> point -> next means the point is strictly under that edge.
        if (orientation(point_of(*previous), point, point_of(*next)) > 0) return;
    }
    Vertex vertex;
    vertex.x = point.x;
    vertex.y = point.y;
    vertex.value.add(value_x, value_y);
    const Iterator inserted = vertices.insert(next, vertex);
    drop_hidden_neighbours(inserted);
    refresh_edges_around(inserted);
    note_ends();
}

// Dropping hidden neighbours never removes an end, so only inserts and replacements move them.
void UpperChain::note_ends() {
    left_end_ = point_of(*vertices_->begin());
    right_end_ = point_of(*vertices_->rbegin());
}

// Remove the vertices on either side that the new vertex has put strictly under the chain.
void UpperChain::drop_hidden_neighbours(Iterator inserted) {
    VertexSet& vertices = *vertices_;
    const IntPoint here = point_of(*inserted);
    while (inserted != vertices.begin()) {
        const Iterator previous = std::prev(inserted);
        if (previous == vertices.begin()) break;
        const Iterator before_previous = std::prev(previous);
        if (orientation(point_of(*before_previous), point_of(*previous), here) <= 0) break;
        vertices.erase(previous);
    }
    while (true) {
        const Iterator next = std::next(inserted);
        if (next == vertices.end()) break;
        const Iterator after_next = std::next(next);
        if (after_next == vertices.end()) break;
        if (orientation(here, point_of(*next), point_of(*after_next)) <= 0) break;
        vertices.erase(next);
    }
}

void UpperChain::refresh_edges_around(Iterator vertex) {
    if (vertex != vertices_->begin()) refresh_edge(std::prev(vertex));
    refresh_edge(vertex);
}

void UpperChain::refresh_edge(Iterator vertex) {
    const Iterator next = std::next(vertex);
    vertex->has_next = next != vertices_->end();
    if (vertex->has_next) {
        vertex->edge_dx = next->x - vertex->x;
        vertex->edge_dy = next->y - vertex->y;
    }
}

bool UpperChain::hides(IntPoint point) const {
    if (vertices_->empty()) return false;
    const IntPoint& left = left_end_;
    const IntPoint& right = right_end_;
    if (point.x < left.x || point.x > right.x) return false;
    // Concave over [left.x, right.x], the chain is on or above the chord of its
    // ends, so nowhere below the lower end: the cheapest test first.
    if (point.y < std::min(left.y, right.y)) return true;
    // A left turn left -> point -> right is strictly under the chord (straight
    // below an end included); with one vertex the turn is never strict.
    return orientation(left, point, right) > 0;
}

// A key scoring at least the memoised maximum may tie or beat the winners, or
// sum onto one of them: the memo can no longer be trusted.
void UpperChain::forget_memo_if_reached(IntPoint point) {
    if (!memo_.valid) return;
    // Coordinates are below 2^62 in magnitude, so the differences fit in int64.
    const int64_t dx = point.x - memo_.witness.x, dy = point.y - memo_.witness.y;
    if (sign_of_dot(memo_.qx, memo_.qy, dx, dy) >= 0) memo_.valid = false;
}

ValueSum UpperChain::best(double qx, double qy) const {
    // Comparing with == is enough: the answer depends on the real value of q only.
    if (memo_.valid && qx == memo_.qx && qy == memo_.qy) return memo_.winners;
    IntPoint witness{0, 0};
    const ValueSum winners = search_best(qx, qy, witness);
    memo_ = Memo{winners.count > 0, qx, qy, witness, winners};
    return winners;
}

// The winners and, in witness, the first of them (when there is one).
ValueSum UpperChain::search_best(double qx, double qy, IntPoint& witness) const {
    Iterator vertex = vertices_->lower_bound(Direction{qx, qy});
    ValueSum total;
    if (vertex == vertices_->end()) return total;
    witness = point_of(*vertex);
    total.add(vertex->value);
    // Collinear vertices along an edge perpendicular to q tie with the first best one.
    while (vertex->has_next && sign_of_dot(qx, qy, vertex->edge_dx, vertex->edge_dy) == 0) {
        ++vertex;
        total.add(vertex->value);
    }
    return total;
}

std::vector<UpperChain::StoredPoint> UpperChain::points() const {
    std::vector<StoredPoint> stored;
    stored.reserve(vertices_->size());
    for (const Vertex& vertex : *vertices_) stored.push_back({point_of(vertex), vertex.value});
    return stored;
}

// ---------------------------------------------------------------------------
// ExtremeColumn

void ExtremeColumn::offer(double key_x, double value_x, double value_y, bool larger_wins) {
    const bool beats = empty || (larger_wins ? key_x > x : key_x < x);
    if (beats) {
        empty = false;
        x = key_x;
        value = ValueSum{};
    }
    if (key_x == x) value.add(value_x, value_y);
}

// ---------------------------------------------------------------------------
// KeyHull

KeyHull::KeyHull(bool keep_upper, bool keep_lower, bool keep_extremes)
    : keep_upper_(keep_upper), keep_lower_(keep_lower), keep_extremes_(keep_extremes) {}

void KeyHull::insert(double key_x, double key_y, double value_x, double value_y) {
    if (keep_extremes_) {
        all_.add(value_x, value_y);
        max_x_.offer(key_x, value_x, value_y, /*larger_wins=*/true);
        min_x_.offer(key_x, value_x, value_y, /*larger_wins=*/false);
    }
    if (exact_ && !(is_exact_coordinate(key_x) && is_exact_coordinate(key_y))) leave_exact_regime();
    if (!exact_) {
        ValueSum value;
        value.add(value_x, value_y);
        append_to_scan(key_x, key_y, value);
        return;
    }
    const IntPoint point{static_cast<int64_t>(key_x), static_cast<int64_t>(key_y)};
    if (keep_upper_) upper_.insert(point, value_x, value_y);
    if (keep_lower_) lower_.insert(IntPoint{point.x, -point.y}, value_x, value_y);
}

bool KeyHull::ignores(double key_x, double key_y) const {
    // The extremes and the scan take every key, and a non-integral key changes the regime.
    if (keep_extremes_ || !exact_ || !is_exact_coordinate(key_x) || !is_exact_coordinate(key_y)) return false;
    const IntPoint point{static_cast<int64_t>(key_x), static_cast<int64_t>(key_y)};
    return (!keep_upper_ || upper_.hides(point)) && (!keep_lower_ || lower_.hides(IntPoint{point.x, -point.y}));
}

void KeyHull::query(double qx, double qy, double out[2]) const {
    if (!std::isfinite(qx) || !std::isfinite(qy)) {
        throw std::domain_error("an attention query is not finite: the model left its exact range");
    }
    ValueSum winners;
    if (qy == 0.0 && !keep_extremes_) {
        throw std::logic_error("hull head queried with q_y == 0 but built without its extreme columns");
    } else if (qx == 0.0 && qy == 0.0) {
        winners = all_;  // every score is 0: all keys tie
    } else if (qy == 0.0) {
        winners = (qx > 0.0 ? max_x_ : min_x_).value;
    } else if (!exact_) {
        winners = scan_best(qx, qy);
    } else if (qy > 0.0) {
        if (!keep_upper_) throw std::logic_error("hull head queried with q_y > 0 but built without its upper chain");
        winners = upper_.best(qx, qy);
    } else {
        if (!keep_lower_) throw std::logic_error("hull head queried with q_y < 0 but built without its lower chain");
        winners = lower_.best(qx, -qy);
    }
    winners.average_into(out);
}

// A key that is not an exact integer arrived: the chains' points (every key that
// could still win) move to a list that queries scan with float scores, as dense does.
void KeyHull::leave_exact_regime() {
    std::vector<UpperChain::StoredPoint> kept = upper_.points();
    for (UpperChain::StoredPoint stored : lower_.points()) {
        stored.point.y = -stored.point.y;
        kept.push_back(stored);
    }
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
        return a.point.x != b.point.x ? a.point.x < b.point.x : a.point.y < b.point.y;
    });
    for (std::size_t i = 0; i < kept.size(); ++i) {
        // A key on both chains carries the same sum in each: keep one copy.
        if (i > 0 && kept[i].point.x == kept[i - 1].point.x && kept[i].point.y == kept[i - 1].point.y) continue;
        scan_.push_back({static_cast<double>(kept[i].point.x), static_cast<double>(kept[i].point.y), kept[i].value});
    }
    upper_.clear();
    lower_.clear();
    exact_ = false;
}

// A key scoring below the memoised best (as the scan scores it) changes nothing
// the scan would find; any other key, NaN scores included, drops the memo.
void KeyHull::append_to_scan(double key_x, double key_y, const ValueSum& value) {
    if (scan_memo_.valid && !(scan_memo_.qx * key_x + scan_memo_.qy * key_y < scan_memo_.best_score)) {
        scan_memo_.valid = false;
    }
    scan_.push_back({key_x, key_y, value});
}

ValueSum KeyHull::scan_best(double qx, double qy) const {
    if (scan_memo_.valid && qx == scan_memo_.qx && qy == scan_memo_.qy) return scan_memo_.winners;
    double best_score = -INFINITY;
    const ValueSum winners = scan_best_uncached(qx, qy, best_score);
    scan_memo_ = ScanMemo{true, qx, qy, best_score, winners};
    return winners;
}

ValueSum KeyHull::scan_best_uncached(double qx, double qy, double& best_score) const {
    ValueSum winners;
    best_score = -INFINITY;
    for (const ScanPoint& point : scan_) {
        const double score = qx * point.x + qy * point.y;
        if (score > best_score) {
            best_score = score;
            winners = point.value;
        } else if (score == best_score) {
            winners.add(point.value);
        }
    }
    return winners;
}

std::size_t KeyHull::stored_points() const { return upper_.size() + lower_.size() + scan_.size(); }

std::size_t KeyHull::reserved_bytes() const {
    return upper_.reserved_bytes() + lower_.reserved_bytes() + scan_.capacity() * sizeof(ScanPoint);
}

}  // namespace wf
