// Exact hard-max attention for one 2-D head with arbitrary keys.
//
// score_j = q . k_j is maximised over a convex-hull vertex of the keys: on the
// upper chain when q_y > 0, on the lower chain when q_y < 0, at the extreme x
// when q_y == 0, and by every key when q == 0. Each chain is a balanced tree
// ordered by x (O(log n) insert and query); a key that falls strictly inside
// can never win again and is dropped, keys lying on a hull edge are kept
// because a query perpendicular to that edge ties them all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "exact.hpp"
#include "node_arena.hpp"

namespace wf {

// The values of one or more keys, summed, and how many keys they came from.
struct ValueSum {
    double x = 0.0;
    double y = 0.0;
    int64_t count = 0;

    void add(double value_x, double value_y) {
        x += value_x;
        y += value_y;
        count += 1;
    }
    void add(const ValueSum& other) {
        x += other.x;
        y += other.y;
        count += other.count;
    }
    // The average value: what softmax gives to exactly tied scores.
    void average_into(double out[2]) const {
        if (count == 1) {  // x / 1 is x exactly: skip the two divisions of the common one-winner case
            out[0] = x;
            out[1] = y;
            return;
        }
        if (count == 0) throw_empty();
        const double n = static_cast<double>(count);
        out[0] = x / n;
        out[1] = y / n;
    }
    [[noreturn]] static void throw_empty();
};

// The upper convex chain (x increasing) of a set of integer points, edges'
// interior points included; identical points share a vertex.
class UpperChain {
   public:
    UpperChain();

    void insert(IntPoint point, double value_x, double value_y);
    // O(1): the point is strictly under the chord of the chain's two ends, so
    // strictly under the chain: no q_y > 0 query can ever pick it, insert drops it.
    bool hides(IntPoint point) const;
    // The summed values of every point maximising qx*x + qy*y; requires qy > 0.
    ValueSum best(double qx, double qy) const;

    std::size_t size() const { return vertices_->size(); }
    bool empty() const { return vertices_->empty(); }
    std::size_t reserved_bytes() const { return arena_->reserved_bytes(); }

    struct StoredPoint {
        IntPoint point;
        ValueSum value;
    };
    std::vector<StoredPoint> points() const;
    void clear() {
        vertices_->clear();
        memo_.valid = false;
    }

   private:
    struct Vertex {
        int64_t x;          // the tree's order: never changes while the vertex is stored
        mutable int64_t y;  // may rise in place when a new key straight above replaces it
        mutable ValueSum value;
        // The edge to the next vertex (valid when has_next): the search key of queries.
        mutable int64_t edge_dx = 0;
        mutable int64_t edge_dy = 0;
        mutable bool has_next = false;
    };
    struct Direction {
        double qx;
        double qy;
    };
    // Orders vertices by x; a Direction probe finds the first vertex that its
    // successor does not strictly beat, which is the first best vertex.
    struct Order {
        using is_transparent = void;
        bool operator()(const Vertex& a, const Vertex& b) const { return a.x < b.x; }
        bool operator()(const Vertex& a, int64_t x) const { return a.x < x; }
        bool operator()(int64_t x, const Vertex& a) const { return x < a.x; }
        bool operator()(const Vertex& a, const Direction& q) const {
            return a.has_next && sign_of_dot(q.qx, q.qy, a.edge_dx, a.edge_dy) > 0;
        }
    };
    using VertexSet = std::set<Vertex, Order, ArenaAllocator<Vertex>>;
    using Iterator = VertexSet::iterator;

    // The last query and its answer. It stays valid while every key inserted
    // since scores strictly below the answer's score (checked against one
    // winner, the witness): such a key wins nothing, and anything it pushes off
    // the chain scored below it, so the winners and their values are unchanged.
    struct Memo {
        bool valid = false;
        double qx = 0.0;
        double qy = 0.0;
        IntPoint witness{0, 0};
        ValueSum winners;
    };

    static IntPoint point_of(const Vertex& vertex) { return IntPoint{vertex.x, vertex.y}; }
    void forget_memo_if_reached(IntPoint point);
    void note_ends();
    ValueSum search_best(double qx, double qy, IntPoint& witness) const;
    void drop_hidden_neighbours(Iterator inserted);
    void refresh_edges_around(Iterator vertex);
    void refresh_edge(Iterator vertex);

    // The arena must outlive the tree that allocates from it.
    std::unique_ptr<NodeArena> arena_;
    std::unique_ptr<VertexSet> vertices_;
    mutable Memo memo_;
    // Copies of the first and last vertex (when not empty): hides() runs for
    // every key, and reaching the last vertex of a std::set is a call.
    IntPoint left_end_{0, 0};
    IntPoint right_end_{0, 0};
};

// Every key at the largest (or smallest) x seen so far, summed: the answer when q_y == 0.
struct ExtremeColumn {
    bool empty = true;
    double x = 0.0;
    ValueSum value;

    void offer(double key_x, double value_x, double value_y, bool larger_wins);
};

// One head's keys and values: hull chains while every key is an exact
// integer, a plain list scanned with float scores after that.
class KeyHull {
   public:
    // keep_upper / keep_lower: which chains queries can need; keep_extremes: whether
    // q_y == 0 can happen, which needs the extreme columns and the sum of all values
    // (all decided from the weights).
    KeyHull(bool keep_upper, bool keep_lower, bool keep_extremes = true);

    void insert(double key_x, double key_y, double value_x, double value_y);
    // O(1): inserting this key would change no answer this head can be asked for,
    // whatever its value; the caller may skip both the insert and the value.
    bool ignores(double key_x, double key_y) const;
    // The average value of the keys with the highest score q . k.
    void query(double qx, double qy, double out[2]) const;

    bool exact() const { return exact_; }
    std::size_t stored_points() const;
    std::size_t reserved_bytes() const;

   private:
    struct ScanPoint {
        double x;
        double y;
        ValueSum value;
    };
    // The scan's last query: valid while every key appended since scored strictly
    // below best_score, computed as the scan computes it.
    struct ScanMemo {
        bool valid = false;
        double qx = 0.0;
        double qy = 0.0;
        double best_score = 0.0;
        ValueSum winners;
    };
    void leave_exact_regime();
    void append_to_scan(double key_x, double key_y, const ValueSum& value);
    ValueSum scan_best(double qx, double qy) const;
    ValueSum scan_best_uncached(double qx, double qy, double& best_score) const;

    bool keep_upper_;
    bool keep_lower_;
    bool keep_extremes_;
    bool exact_ = true;
    UpperChain upper_;  // the keys (x, y)
    UpperChain lower_;  // the keys (x, -y): its upper chain is the lower chain of the keys
    ExtremeColumn max_x_;
    ExtremeColumn min_x_;
    ValueSum all_;
    std::vector<ScanPoint> scan_;  // used once a key is not an exact integer
    mutable ScanMemo scan_memo_;
};

}  // namespace wf
