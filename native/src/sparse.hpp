// Compressed sparse rows: the projections of this project's models are almost all zeros.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace wf {

// A row-major dense matrix borrowed from the caller (only read while building).
struct DenseView {
    const double* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;

    double at(std::size_t row, std::size_t col) const { return data[row * cols + col]; }
};

class SparseRows {
   public:
    SparseRows() = default;
    // Rows of `dense`, or rows of its transpose (columns of `dense`) when `by_column`.
    static SparseRows from_dense(const DenseView& dense, bool by_column = false);

    std::size_t rows() const { return row_start_.empty() ? 0 : row_start_.size() - 1; }
    std::size_t nonzeros() const { return weight_.size(); }
    bool row_empty(std::size_t row) const { return row_start_[row] == row_start_[row + 1]; }

    // sum_i w[row, i] * x[i], in column order (from the row's folded start, see fold_leading).
    double dot(std::size_t row, const double* x) const {
        double sum = start_.empty() ? 0.0 : start_[row];
        for (uint32_t i = row_start_[row]; i < row_start_[row + 1]; ++i) sum += weight_[i] * x[index_[i]];
        return sum;
    }
    // x[i] += w[row, i] * scale for every nonzero of the row.
    void scatter(std::size_t row, double scale, double* x) const {
        for (uint32_t i = row_start_[row]; i < row_start_[row + 1]; ++i) x[index_[i]] += weight_[i] * scale;
    }

    template <class Visit>
    void for_each_in_row(std::size_t row, Visit visit) const {
        for (uint32_t i = row_start_[row]; i < row_start_[row + 1]; ++i) visit(index_[i], weight_[i]);
    }

    // Replaces each row's leading terms whose input is a known constant by their
    // sum, computed now in the order dot() would (so dot() returns the same
    // double, with fewer terms). `constant_of(index, value)` says whether x[index]
    // is always `value`. Only for dot(): for_each_in_row no longer sees those terms.
    template <class ConstantOf>
    void fold_leading(ConstantOf constant_of) {
        std::vector<uint32_t> row_start{0}, index;
        std::vector<double> weight, start(rows(), 0.0);
        for (std::size_t row = 0; row < rows(); ++row) {
            bool leading = true;
            for (uint32_t i = row_start_[row]; i < row_start_[row + 1]; ++i) {
                double value = 0.0;
                leading = leading && constant_of(index_[i], value);
                if (leading) {
                    start[row] += weight_[i] * value;
                } else {
                    index.push_back(index_[i]);
                    weight.push_back(weight_[i]);
                }
            }
            row_start.push_back(static_cast<uint32_t>(weight.size()));
        }
        row_start_.swap(row_start);
        index_.swap(index);
        weight_.swap(weight);
        start_.swap(start);
    }

   private:
    std::vector<double> start_;  // per row, after fold_leading; empty means 0.0 everywhere
    std::vector<uint32_t> row_start_;
    std::vector<uint32_t> index_;
    std::vector<double> weight_;
};

inline SparseRows SparseRows::from_dense(const DenseView& dense, bool by_column) {
    SparseRows sparse;
    const std::size_t outer = by_column ? dense.cols : dense.rows;
    const std::size_t inner = by_column ? dense.rows : dense.cols;
    sparse.row_start_.reserve(outer + 1);
    sparse.row_start_.push_back(0);
    for (std::size_t r = 0; r < outer; ++r) {
        for (std::size_t c = 0; c < inner; ++c) {
            const double weight = by_column ? dense.at(c, r) : dense.at(r, c);
            if (weight != 0.0) {
                sparse.index_.push_back(static_cast<uint32_t>(c));
                sparse.weight_.push_back(weight);
            }
        }
        sparse.row_start_.push_back(static_cast<uint32_t>(sparse.weight_.size()));
    }
    return sparse;
}

}  // namespace wf
