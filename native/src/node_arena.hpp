// A recycling allocator for the nodes of the hull trees.
//
// Hull vertices are created and dropped all the time; an arena of fixed-size
// blocks with a free list reuses dropped nodes, so a steady-state decode does
// no heap allocation, and a whole hull is released at once when the engine dies.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace wf {

class NodeArena {
   public:
    NodeArena() = default;
    NodeArena(const NodeArena&) = delete;
    NodeArena& operator=(const NodeArena&) = delete;

    void* allocate(std::size_t bytes) {
        if (block_bytes_ == 0) block_bytes_ = round_up(bytes);
        if (bytes > block_bytes_) throw std::bad_alloc();  // only one node type per arena
        if (free_list_ != nullptr) {
            FreeBlock* block = free_list_;
            free_list_ = block->next;
            return block;
        }
        if (chunks_.empty() || used_in_chunk_ == kBlocksPerChunk) {
            chunks_.emplace_back(new std::byte[block_bytes_ * kBlocksPerChunk]);
            used_in_chunk_ = 0;
        }
        return chunks_.back().get() + block_bytes_ * used_in_chunk_++;
    }

    void release(void* pointer) {
        auto* block = static_cast<FreeBlock*>(pointer);
        block->next = free_list_;
        free_list_ = block;
    }

    std::size_t reserved_bytes() const { return chunks_.size() * block_bytes_ * kBlocksPerChunk; }

   private:
    struct FreeBlock {
        FreeBlock* next;
    };
    static constexpr std::size_t kBlocksPerChunk = 256;
    static std::size_t round_up(std::size_t bytes) {
        const std::size_t align = alignof(std::max_align_t);
        return (bytes + align - 1) / align * align;
    }

    std::vector<std::unique_ptr<std::byte[]>> chunks_;
    FreeBlock* free_list_ = nullptr;
    std::size_t block_bytes_ = 0;
    std::size_t used_in_chunk_ = 0;
};

// std::allocator-compatible handle to a NodeArena (the container keeps the arena alive by contract).
template <class T>
class ArenaAllocator {
   public:
    using value_type = T;

    explicit ArenaAllocator(NodeArena* arena) : arena_(arena) {}
    template <class U>
    ArenaAllocator(const ArenaAllocator<U>& other) : arena_(other.arena()) {}

    T* allocate(std::size_t count) {
        if (count != 1) return static_cast<T*>(::operator new(count * sizeof(T)));
        return static_cast<T*>(arena_->allocate(sizeof(T)));
    }
    void deallocate(T* pointer, std::size_t count) {
        if (count != 1) {
            ::operator delete(pointer);
            return;
        }
        arena_->release(pointer);
    }

    NodeArena* arena() const { return arena_; }
    template <class U>
    bool operator==(const ArenaAllocator<U>& other) const { return arena_ == other.arena(); }
    template <class U>
    bool operator!=(const ArenaAllocator<U>& other) const { return arena_ != other.arena(); }

   private:
    NodeArena* arena_;
};

}  // namespace wf
