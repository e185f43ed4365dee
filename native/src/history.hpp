// Per-position storage for the positional heads: what they need to recompute a
// past position's value exactly, and nothing more.
//
// A positional head may fetch any past position, so something has to be kept for
// every position. Instead of the head's float64 value pair (16 bytes per head per
// position), the engine keeps the token id of every position once (shared by all
// heads: values that read only embedding slots and the position itself are
// recomputed from it), plus the few residual slots that earlier layers
// computed and some positional head reads, each in the narrowest exact form
// (usually 1 to 4 bytes).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

namespace wf {

// Append-only array in fixed-size chunks: random access, no copy of the old
// contents when it grows (so no transient doubling of memory), and resident
// memory that follows the number of positions stored.
template <class T>
class ChunkedHistory {
   public:
    static constexpr unsigned kChunkBits = 16;  // 64Ki entries per chunk
    static constexpr std::size_t kChunkSize = std::size_t{1} << kChunkBits;
    static constexpr std::size_t kChunkMask = kChunkSize - 1;

    ChunkedHistory() = default;
    ChunkedHistory(const ChunkedHistory&) = delete;  // owns its chunks (and says so to type traits)
    ChunkedHistory& operator=(const ChunkedHistory&) = delete;
    ChunkedHistory(ChunkedHistory&&) = default;
    ChunkedHistory& operator=(ChunkedHistory&&) = default;

    void push_back(T value) {
        if ((size_ & kChunkMask) == 0) chunks_.emplace_back(new T[kChunkSize]);  // one allocation per 64Ki
        chunks_.back()[size_ & kChunkMask] = value;
        ++size_;
    }
    T operator[](std::size_t index) const { return chunks_[index >> kChunkBits][index & kChunkMask]; }
    std::size_t size() const { return size_; }
    std::size_t reserved_bytes() const {
        return chunks_.size() * kChunkSize * sizeof(T) + chunks_.capacity() * sizeof(chunks_[0]);
    }
    void clear() {
        chunks_.clear();
        chunks_.shrink_to_fit();
        size_ = 0;
    }

   private:
    std::vector<std::unique_ptr<T[]>> chunks_;
    std::size_t size_ = 0;
};

// The token id at every position, in 16 bits when the vocabulary allows.
class TokenHistory {
   public:
    explicit TokenHistory(std::size_t vocab_size = 0)
        : narrow_(vocab_size <= std::size_t{std::numeric_limits<uint16_t>::max()} + 1) {}

    void push_back(int32_t token) {
        if (narrow_) {
            narrow_tokens_.push_back(static_cast<uint16_t>(token));
        } else {
            wide_tokens_.push_back(token);
        }
    }
    int32_t operator[](std::size_t index) const {
        return narrow_ ? static_cast<int32_t>(narrow_tokens_[index]) : wide_tokens_[index];
    }
    std::size_t reserved_bytes() const { return narrow_tokens_.reserved_bytes() + wide_tokens_.reserved_bytes(); }

   private:
    bool narrow_;
    ChunkedHistory<uint16_t> narrow_tokens_;
    ChunkedHistory<int32_t> wide_tokens_;
};

// One residual slot's value (as some layers read it) for every position, in the
// narrowest form that holds every value so far exactly: uint8, uint16, 32 bits
// (read back as int32 or uint32, whichever range every value fits: addresses,
// bytes, wasm i32 values), or float64. A value that does not fit the current
// form moves the column to a wider one, converting what it holds once; a column
// widens at most three times. Either way it reads back the exact double stored.
class SlotColumn {
   public:
    enum class Form : uint8_t { kUint8, kUint16, kBits32, kFloat64 };

    void push_back(double value) {
        while (!try_push(value)) widen_for(value);
    }
    double operator[](std::size_t index) const {
        switch (form_) {
            case Form::kUint8: return static_cast<double>(bytes_[index]);
            case Form::kUint16: return static_cast<double>(halves_[index]);
            case Form::kBits32: return from_bits(bits_[index]);
            case Form::kFloat64: break;
        }
        return doubles_[index];
    }
    Form form() const { return form_; }
    std::size_t size() const { return size_; }
    std::size_t reserved_bytes() const {
        return bytes_.reserved_bytes() + halves_.reserved_bytes() + bits_.reserved_bytes() + doubles_.reserved_bytes();
    }

   private:
    // -0.0 would come back as +0.0: it stays float64 (as does NaN, which fails every test).
    static bool is_plain_integer(double value) {
        return value == std::trunc(value) && !(value == 0.0 && std::signbit(value));
    }
    template <class Integer>
    static bool fits(double value) {
        return value >= static_cast<double>(std::numeric_limits<Integer>::min()) &&
               value <= static_cast<double>(std::numeric_limits<Integer>::max()) && is_plain_integer(value);
    }
    // While every value fits both int32 and uint32 they lie in [0, 2^31), where both readings agree.
    double from_bits(uint32_t bits) const {
        return all_unsigned_ ? static_cast<double>(bits) : static_cast<double>(static_cast<int32_t>(bits));
    }

    bool try_push(double value) {
        switch (form_) {
            case Form::kUint8:
                if (!fits<uint8_t>(value)) return false;
                bytes_.push_back(static_cast<uint8_t>(value));
                break;
            case Form::kUint16:
                if (!fits<uint16_t>(value)) return false;
                halves_.push_back(static_cast<uint16_t>(value));
                break;
            case Form::kBits32: {
                const bool is_signed = fits<int32_t>(value), is_unsigned = fits<uint32_t>(value);
                if (!(is_signed && all_signed_) && !(is_unsigned && all_unsigned_)) return false;
                all_signed_ = all_signed_ && is_signed;
                all_unsigned_ = all_unsigned_ && is_unsigned;
                // Both casts are exact here; a negative int32 keeps its two's complement bits.
                bits_.push_back(is_unsigned ? static_cast<uint32_t>(value)
                                            : static_cast<uint32_t>(static_cast<int32_t>(value)));
                break;
            }
            case Form::kFloat64:
                doubles_.push_back(value);
                break;
        }
        ++size_;
        return true;
    }

    // Moves every stored value to the next form wide enough for `value` too.
    void widen_for(double value) {
        Form wider = Form::kFloat64;
        if (form_ == Form::kUint8 && fits<uint16_t>(value)) {
            wider = Form::kUint16;
        } else if (form_ != Form::kBits32 && (fits<int32_t>(value) || fits<uint32_t>(value))) {
            wider = Form::kBits32;  // the values so far are in [0, 2^16): both 32-bit readings remain open
        }
        const std::size_t count = size_;
        SlotColumn widened;
        widened.form_ = wider;
        for (std::size_t i = 0; i < count; ++i) widened.try_push((*this)[i]);
        *this = std::move(widened);
    }

    Form form_ = Form::kUint8;
    std::size_t size_ = 0;
    bool all_signed_ = true;    // kBits32: every value so far fits int32
    bool all_unsigned_ = true;  // kBits32: every value so far fits uint32
    ChunkedHistory<uint8_t> bytes_;
    ChunkedHistory<uint16_t> halves_;
    ChunkedHistory<uint32_t> bits_;
    ChunkedHistory<double> doubles_;
};

}  // namespace wf
