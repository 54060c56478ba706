#include "backends/vulkan/vk_memory.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <iterator>

#include "core/error.h"

namespace mllm::vk {

namespace {

constexpr VkBufferUsageFlags kBufferUsage =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT |
    VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
    VK_BUFFER_USAGE_TRANSFER_DST_BIT;

VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize a) {
    return (x + a - 1) / a * a;
}

double mib(VkDeviceSize b) {
    return static_cast<double>(b) / (1024.0 * 1024.0);
}

// The memory type for `use` among `allowed` (a memoryTypeBits mask): all `required` flags, then
// the most `preferred` flags and the fewest `avoided` ones, then the largest heap.
int pick_type(const VkPhysicalDeviceMemoryProperties& mem, uint32_t allowed,
              VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred,
              VkMemoryPropertyFlags avoided) {
    int best = -1;
    int best_score = 0;
    VkDeviceSize best_heap = 0;
    for (uint32_t t = 0; t < mem.memoryTypeCount; ++t) {
        if ((allowed & (1u << t)) == 0) continue;
        const VkMemoryPropertyFlags f = mem.memoryTypes[t].propertyFlags;
        if ((f & required) != required) continue;
        const int score = 2 * __builtin_popcount(f & preferred) - __builtin_popcount(f & avoided);
        const VkDeviceSize heap = mem.memoryHeaps[mem.memoryTypes[t].heapIndex].size;
        if (best < 0 || score > best_score || (score == best_score && heap > best_heap)) {
            best = static_cast<int>(t);
            best_score = score;
            best_heap = heap;
        }
    }
    return best;
}

}  // namespace

// --- Allocation ---

Allocation& Allocation::operator=(Allocation&& other) noexcept {
    if (this != &other) {
        reset();
        owner_ = other.owner_;
        block_ = other.block_;
        offset_ = other.offset_;
        size_ = other.size_;
        reserved_ = other.reserved_;
        use_ = other.use_;
        other.owner_ = nullptr;
        other.block_ = nullptr;
    }
    return *this;
}

void Allocation::reset() {
    if (owner_ != nullptr) owner_->release(*this);
    owner_ = nullptr;
    block_ = nullptr;
}

VkBuffer Allocation::buffer() const {
    return block_ != nullptr ? static_cast<MemoryManager::Block*>(block_)->buffer : VK_NULL_HANDLE;
}

VkDeviceMemory Allocation::memory() const {
    return block_ != nullptr ? static_cast<MemoryManager::Block*>(block_)->memory : VK_NULL_HANDLE;
}

uint8_t* Allocation::mapped() const {
    if (block_ == nullptr) return nullptr;
    uint8_t* base = static_cast<MemoryManager::Block*>(block_)->mapped;
    return base != nullptr ? base + offset_ : nullptr;
}

BufferRange Allocation::range() const {
    return {buffer(), offset_, reserved_};
}

BufferRange Allocation::range(VkDeviceSize offset, VkDeviceSize size) const {
    if (offset + size > reserved_)
        fail("internal: range [", offset, ", +", size, ") outside an allocation of ", reserved_,
             " bytes");
    return {buffer(), offset_ + offset, size};
}

// --- MemoryManager ---

MemoryManager::MemoryManager(const Device& device, VkDeviceSize block_bytes, bool map_device_memory)
    : device_(device), block_bytes_(block_bytes) {
    const DeviceProps& p = device.props();
    alignment_ = std::max<VkDeviceSize>(
        {16, p.min_storage_buffer_offset_alignment, p.non_coherent_atom_size});
    if (p.max_allocation_bytes != 0) block_bytes_ = std::min(block_bytes_, p.max_allocation_bytes);

    // Which memory types a buffer of ours may live in (the same for every size in practice).
    const DeviceFunctions& fn = device.fn();
    VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    info.size = alignment_;
    info.usage = kBufferUsage;
    info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VkBuffer probe = VK_NULL_HANDLE;
    check(fn.vkCreateBuffer(device.handle(), &info, nullptr, &probe), "vkCreateBuffer");
    VkMemoryRequirements req{};
    fn.vkGetBufferMemoryRequirements(device.handle(), probe, &req);
    fn.vkDestroyBuffer(device.handle(), probe, nullptr);
    alignment_ = std::max(alignment_, req.alignment);

    const VkPhysicalDeviceMemoryProperties& mem = device.memory_properties();
    constexpr VkMemoryPropertyFlags kLocal = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    constexpr VkMemoryPropertyFlags kHost =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    constexpr VkMemoryPropertyFlags kCached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    int types[kMemoryUses];
    if (p.unified_memory) {
        types[0] = pick_type(mem, req.memoryTypeBits, kLocal | kHost, kCached, 0);
    } else {
        // Plain VRAM; the small host-visible window of a discrete GPU is kept for staging.
        types[0] = pick_type(mem, req.memoryTypeBits, kLocal, 0, kHost);
    }
    if (types[0] < 0) types[0] = pick_type(mem, req.memoryTypeBits, 0, kLocal, 0);
    types[1] = pick_type(mem, req.memoryTypeBits, kHost, p.unified_memory ? kLocal : 0,
                         p.unified_memory ? 0 : kLocal | kCached);
    types[2] = pick_type(mem, req.memoryTypeBits, kHost, kCached, 0);
    for (int u = 0; u < kMemoryUses; ++u) {
        if (types[u] < 0) fail("Vulkan device ", p.name, " has no suitable memory type");
        pools_[u].memory_type = static_cast<uint32_t>(types[u]);
        pools_[u].host_visible = (mem.memoryTypes[types[u]].propertyFlags & kHost) == kHost;
    }
    if (!map_device_memory) pools_[static_cast<int>(MemoryUse::Device)].host_visible = false;
}

MemoryManager::~MemoryManager() {
    for (Pool& pool : pools_) {
        for (auto& b : pool.blocks) {
            assert(b->count == 0 && "a Vulkan allocation outlives its memory manager");
            destroy_block(*b);
        }
    }
}

std::unique_ptr<MemoryManager::Block> MemoryManager::create_block(const Pool& pool,
                                                                  VkDeviceSize bytes) {
    const DeviceFunctions& fn = device_.fn();
    const VkDevice dev = device_.handle();
    auto b = std::make_unique<Block>();
    b->size = bytes;
    VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    info.size = bytes;
    info.usage = kBufferUsage;
    info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    check(fn.vkCreateBuffer(dev, &info, nullptr, &b->buffer), "vkCreateBuffer");
    VkMemoryRequirements req{};
    fn.vkGetBufferMemoryRequirements(dev, b->buffer, &req);
    if ((req.memoryTypeBits & (1u << pool.memory_type)) == 0) {
        fn.vkDestroyBuffer(dev, b->buffer, nullptr);
        fail("internal: Vulkan buffer cannot use memory type ", pool.memory_type);
    }
    VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    alloc.allocationSize = req.size;
    alloc.memoryTypeIndex = pool.memory_type;
    const VkResult r = fn.vkAllocateMemory(dev, &alloc, nullptr, &b->memory);
    if (r != VK_SUCCESS) {
        fn.vkDestroyBuffer(dev, b->buffer, nullptr);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
            VkDeviceSize held = 0;  // the caller holds mutex_
            for (const Pool& p : pools_)
                for (const auto& blk : p.blocks) held += blk->size;
            fail("out of Vulkan memory on ", device_.props().name, ": cannot allocate a block of ",
                 mib(req.size), " MiB (", mib(held), " MiB held)");
        }
        check(r, "vkAllocateMemory");
    }
    try {
        check(fn.vkBindBufferMemory(dev, b->buffer, b->memory, 0), "vkBindBufferMemory");
        if (pool.host_visible) {
            void* p = nullptr;
            check(fn.vkMapMemory(dev, b->memory, 0, VK_WHOLE_SIZE, 0, &p), "vkMapMemory");
            b->mapped = static_cast<uint8_t*>(p);
        }
    } catch (...) {
        destroy_block(*b);
        throw;
    }
    b->free.emplace(0, bytes);
    return b;
}

void MemoryManager::destroy_block(Block& b) {
    const DeviceFunctions& fn = device_.fn();
    if (b.mapped != nullptr) fn.vkUnmapMemory(device_.handle(), b.memory);
    if (b.buffer != VK_NULL_HANDLE) fn.vkDestroyBuffer(device_.handle(), b.buffer, nullptr);
    if (b.memory != VK_NULL_HANDLE) fn.vkFreeMemory(device_.handle(), b.memory, nullptr);
    b = Block{};
}

// First fit in one block: the lowest free range that holds `bytes` at an `align`ed offset.
bool MemoryManager::carve(Block& b, VkDeviceSize bytes, VkDeviceSize align, VkDeviceSize& offset) {
    for (auto it = b.free.begin(); it != b.free.end(); ++it) {
        const VkDeviceSize start = it->first;
        const VkDeviceSize end = start + it->second;
        const VkDeviceSize at = round_up(start, align);
        if (at + bytes > end) continue;
        b.free.erase(it);
        if (at > start) b.free.emplace(start, at - start);
        if (at + bytes < end) b.free.emplace(at + bytes, end - (at + bytes));
        offset = at;
        return true;
    }
    return false;
}

VkDeviceSize MemoryManager::limit_from_environment() {
    const char* env = std::getenv("MLLM_VK_MEMORY_LIMIT");
    if (env == nullptr || *env == '\0') return 0;
    char* end = nullptr;
    const unsigned long long mib_limit = std::strtoull(env, &end, 10);
    if (end == env || *end != '\0' || mib_limit == 0)
        fail("MLLM_VK_MEMORY_LIMIT=", env, " is not a positive number of MiB");
    return static_cast<VkDeviceSize>(mib_limit) << 20;
}

Allocation MemoryManager::allocate(VkDeviceSize bytes, MemoryUse use, VkDeviceSize align) {
    align = std::max(align, alignment_);
    const VkDeviceSize reserved = round_up(std::max<VkDeviceSize>(bytes, 1), alignment_);
    const VkDeviceSize max_alloc = device_.props().max_allocation_bytes;
    if (max_alloc != 0 && reserved > max_alloc)
        fail("a tensor of ", mib(bytes), " MiB exceeds the largest allocation of ",
             device_.props().name, " (", mib(max_alloc), " MiB)");

    std::lock_guard lock(mutex_);
    Pool& pool = pools_[static_cast<int>(use)];
    Block* block = nullptr;
    VkDeviceSize offset = 0;
    for (auto& b : pool.blocks) {
        if (carve(*b, reserved, align, offset)) {
            block = b.get();
            break;
        }
    }
    if (block == nullptr) {
        const VkDeviceSize size = std::max(block_bytes_, reserved);
        if (limit_ != 0) {
            VkDeviceSize held = 0;
            for (const Pool& p : pools_)
                for (const auto& b : p.blocks) held += b->size;
            if (held + size > limit_)
                fail("out of Vulkan memory on ", device_.props().name, ": ", mib(held),
                     " MiB held, a block of ", mib(size),
                     " MiB more exceeds MLLM_VK_MEMORY_LIMIT (", mib(limit_), " MiB)");
        }
        pool.blocks.push_back(create_block(pool, size));
        block = pool.blocks.back().get();
        const bool ok = carve(*block, reserved, align, offset);
        assert(ok && offset == 0);
        (void)ok;
    }
    block->used += reserved;
    block->count += 1;

    Allocation a;
    a.owner_ = this;
    a.block_ = block;
    a.offset_ = offset;
    a.size_ = bytes;
    a.reserved_ = reserved;
    a.use_ = use;
    return a;
}

void MemoryManager::release(Allocation& a) {
    std::lock_guard lock(mutex_);
    Pool& pool = pools_[static_cast<int>(a.use_)];
    auto* b = static_cast<Block*>(a.block_);
    // Give the range back, merged with the free ranges on either side.
    VkDeviceSize start = a.offset_;
    VkDeviceSize size = a.reserved_;
    auto next = b->free.lower_bound(start);
    if (next != b->free.end() && next->first == start + size) {
        size += next->second;
        next = b->free.erase(next);
    }
    if (next != b->free.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second == start) {
            start = prev->first;
            size += prev->second;
            b->free.erase(prev);
        }
    }
    b->free.emplace(start, size);
    b->used -= a.reserved_;
    b->count -= 1;
    // An empty block goes back to the driver, unless it is the pool's last regular-sized one
    // (kept for reuse; an oversized block made for one large tensor is always released).
    if (b->count == 0 && (pool.blocks.size() > 1 || b->size > block_bytes_)) {
        auto it = std::find_if(pool.blocks.begin(), pool.blocks.end(),
                               [&](const std::unique_ptr<Block>& p) { return p.get() == b; });
        destroy_block(*b);
        pool.blocks.erase(it);
    }
}

MemoryManager::Stats MemoryManager::stats(MemoryUse use) const {
    std::lock_guard lock(mutex_);
    Stats s;
    for (const auto& b : pools_[static_cast<int>(use)].blocks) {
        s.used_bytes += b->used;
        s.reserved_bytes += b->size;
        s.blocks += 1;
        s.allocations += b->count;
    }
    return s;
}

MemoryManager::Stats MemoryManager::stats() const {
    Stats total;
    for (int u = 0; u < kMemoryUses; ++u) {
        const Stats s = stats(static_cast<MemoryUse>(u));
        total.used_bytes += s.used_bytes;
        total.reserved_bytes += s.reserved_bytes;
        total.blocks += s.blocks;
        total.allocations += s.allocations;
    }
    return total;
}

}  // namespace mllm::vk
