#pragma once
// Device memory: a sub-allocator over large blocks. Each block is one VkDeviceMemory with one
// VkBuffer over all of it; a tensor is a range of a block's buffer (never a VkDeviceMemory or a
// VkBuffer of its own: drivers limit allocations to a few thousand and they are slow to make).
// Ranges are placed first-fit from each block's free list, and freed ranges merge with their
// neighbours. Hand-written because Debian packages no Vulkan memory allocator (VMA); it needs no
// more than this.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/vulkan/vk_api.h"
#include "backends/vulkan/vk_device.h"

namespace mllm::vk {

enum class MemoryUse : uint8_t {
    Device,    // weights, activations, KV cache: device-local, and host-mapped when the device has
               // unified memory (iGPUs, lavapipe) so weights are written in place
    Upload,    // staging memory the host writes and the device reads
    Readback,  // staging memory the device writes and the host reads (host-cached if possible)
};
constexpr int kMemoryUses = 3;

// A part of a buffer, as a descriptor binds it.
struct BufferRange {
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceSize offset = 0;
    VkDeviceSize size = 0;
};

class MemoryManager;

// One sub-allocation; frees itself when destroyed. Move-only.
class Allocation {
  public:
    Allocation() = default;
    Allocation(Allocation&& other) noexcept { *this = std::move(other); }
    Allocation& operator=(Allocation&& other) noexcept;
    Allocation(const Allocation&) = delete;
    Allocation& operator=(const Allocation&) = delete;
    ~Allocation() { reset(); }
    void reset();  // frees now

    explicit operator bool() const { return owner_ != nullptr; }
    VkBuffer buffer() const;
    VkDeviceMemory memory() const;
    VkDeviceSize offset() const { return offset_; }      // in the block's buffer and memory
    VkDeviceSize size() const { return size_; }          // as asked
    VkDeviceSize reserved() const { return reserved_; }  // rounded up to the alignment
    MemoryUse use() const { return use_; }
    // The host address of offset(), or nullptr when the memory is not host-visible. Host-visible
    // memory is always host-coherent here: no flushes needed.
    uint8_t* mapped() const;
    // The whole reserved range, or a part of it (offset relative to this allocation).
    BufferRange range() const;
    BufferRange range(VkDeviceSize offset, VkDeviceSize size) const;

  private:
    friend class MemoryManager;
    MemoryManager* owner_ = nullptr;
    void* block_ = nullptr;  // MemoryManager::Block
    VkDeviceSize offset_ = 0;
    VkDeviceSize size_ = 0;
    VkDeviceSize reserved_ = 0;
    MemoryUse use_ = MemoryUse::Device;
};

class MemoryManager {
  public:
    static constexpr VkDeviceSize kDefaultBlockBytes = VkDeviceSize{64} << 20;

    // `block_bytes` is the size of each block (larger requests get a block of their own, up to
    // the device's largest allocation). With `map_device_memory` false, MemoryUse::Device
    // allocations are never host-mapped even where the device could (the discrete-GPU path).
    explicit MemoryManager(const Device& device, VkDeviceSize block_bytes = kDefaultBlockBytes,
                           bool map_device_memory = true);
    ~MemoryManager();
    MemoryManager(const MemoryManager&) = delete;
    MemoryManager& operator=(const MemoryManager&) = delete;

    // Throws mllm::Error when the device is out of memory or `bytes` exceeds its largest
    // allocation. The offset is a multiple of alignment() (and of `align` when larger).
    Allocation allocate(VkDeviceSize bytes, MemoryUse use = MemoryUse::Device,
                        VkDeviceSize align = 0);

    // Whether allocations for `use` are host-mapped.
    bool host_visible(MemoryUse use) const { return pools_[static_cast<int>(use)].host_visible; }
    // Every offset and size is a multiple of this (the storage-buffer offset alignment, at least
    // 16 bytes).
    VkDeviceSize alignment() const { return alignment_; }
    VkDeviceSize block_bytes() const { return block_bytes_; }

    struct Stats {
        VkDeviceSize used_bytes = 0;      // reserved by live allocations
        VkDeviceSize reserved_bytes = 0;  // held from the driver (the blocks)
        size_t blocks = 0;
        size_t allocations = 0;
    };
    Stats stats() const;
    Stats stats(MemoryUse use) const;
    VkDeviceSize bytes_used() const { return stats().used_bytes; }

  private:
    friend class Allocation;
    struct Block {
        VkDeviceMemory memory = VK_NULL_HANDLE;
        VkBuffer buffer = VK_NULL_HANDLE;
        VkDeviceSize size = 0;
        uint8_t* mapped = nullptr;
        std::map<VkDeviceSize, VkDeviceSize> free;  // offset -> size, never adjacent
        VkDeviceSize used = 0;
        size_t count = 0;
    };
    struct Pool {
        uint32_t memory_type = 0;
        bool host_visible = false;
        std::vector<std::unique_ptr<Block>> blocks;
    };

    std::unique_ptr<Block> create_block(const Pool& pool, VkDeviceSize bytes);
    void destroy_block(Block& b);
    void release(Allocation& a);
    static bool carve(Block& b, VkDeviceSize bytes, VkDeviceSize align, VkDeviceSize& offset);

    // MLLM_VK_MEMORY_LIMIT=<MiB>: the most device memory to hold (0: what the driver gives).
    static VkDeviceSize limit_from_environment();

    const Device& device_;
    VkDeviceSize block_bytes_;
    VkDeviceSize limit_ = limit_from_environment();
    VkDeviceSize alignment_ = 16;
    Pool pools_[kMemoryUses];
    mutable std::mutex mutex_;
};

}  // namespace mllm::vk
