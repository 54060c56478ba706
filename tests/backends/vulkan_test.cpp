// The Vulkan backend's foundation: loader, device discovery and selection, the embedded shaders,
// the sub-allocating memory manager, pipelines, every pipeline family's self-test, and the
// driver workaround table. The op families against the CPU reference are in vulkan_ops_test.cpp
// (the matmul and embed ones in vulkan_matmul_test.cpp).
//
// Device tests run on whatever device MLLM_VK_DEVICE selects (lavapipe on CI). Without a Vulkan
// device they are skipped with the reason, except when CI=true: there a missing device fails.
#ifdef MLLM_HAVE_VULKAN

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_device.h"
#include "backends/vulkan/vk_loader.h"
#include "backends/vulkan/vk_memory.h"
#include "backends/vulkan/vk_self_test.h"
#include "backends/vulkan/vk_sequence.h"
#include "backends/vulkan/vk_shaders.h"
#include "core/error.h"
#include "tests/support/vulkan_fixture.h"

namespace mllm::vk {
namespace {

// ---------------------------------------------------------------------------------------------
// Without a device: the loader's message and device selection.

TEST(VulkanLoader, MissingLibraryNamesTheLoader) {
    try {
        Loader loader("libmllm-no-such-vulkan.so.1");
        FAIL() << "opened a library that does not exist";
    } catch (const Error& e) {
        EXPECT_NE(
            std::string(e.what()).find("no Vulkan loader (libmllm-no-such-vulkan.so.1) found"),
            std::string::npos)
            << e.what();
    }
}

DeviceProps fake_device(uint32_t index, std::string name, DeviceType type, uint64_t memory,
                        bool usable = true) {
    DeviceProps d;
    d.index = index;
    d.name = std::move(name);
    d.type = type;
    d.device_local_bytes = memory;
    d.usable = usable;
    if (!usable) d.unusable_reason = "no subgroup arithmetic in compute shaders";
    return d;
}

TEST(VulkanSelect, PrefersDiscreteThenIntegratedThenCpu) {
    const std::vector<DeviceProps> all = {
        fake_device(0, "llvmpipe (LLVM 15.0.6, 256 bits)", DeviceType::Cpu, 2ull << 30),
        fake_device(1, "Intel(R) UHD Graphics 620", DeviceType::Integrated, 4ull << 30),
        fake_device(2, "NVIDIA GeForce RTX 3060", DeviceType::Discrete, 12ull << 30),
        fake_device(3, "NVIDIA GeForce RTX 4090", DeviceType::Discrete, 24ull << 30),
    };
    EXPECT_EQ(select_device(all, ""), 3u);  // discrete, the larger one
    EXPECT_EQ(select_device({all[0], all[1]}, ""), 1u);
    EXPECT_EQ(select_device({all[0]}, ""), 0u);
    // An unusable discrete GPU loses to a usable CPU device.
    EXPECT_EQ(select_device(
                  {all[0], fake_device(1, "Old GPU", DeviceType::Discrete, 8ull << 30, false)}, ""),
              0u);
}

TEST(VulkanSelect, SelectorByIndexOrName) {
    const std::vector<DeviceProps> all = {
        fake_device(0, "llvmpipe (LLVM 15.0.6, 256 bits)", DeviceType::Cpu, 2ull << 30),
        fake_device(1, "AMD Radeon RX 7900", DeviceType::Discrete, 24ull << 30),
    };
    EXPECT_EQ(select_device(all, "0"), 0u);
    EXPECT_EQ(select_device(all, "1"), 1u);
    EXPECT_EQ(select_device(all, "LLVMPIPE"), 0u);  // case-insensitive substring
    EXPECT_EQ(select_device(all, "radeon"), 1u);
    try {
        select_device(all, "7");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("MLLM_VK_DEVICE=7 matches no Vulkan device"),
                  std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("1: AMD Radeon RX 7900"), std::string::npos);
    }
    EXPECT_THROW(select_device(all, "geforce"), Error);
}

TEST(VulkanSelect, NoDeviceOrNoUsableDevice) {
    try {
        select_device({}, "");
        FAIL();
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "no Vulkan device");
    }
    const std::vector<DeviceProps> bad = {
        fake_device(0, "Old GPU", DeviceType::Discrete, 1ull << 30, false)};
    try {
        select_device(bad, "");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no usable Vulkan device: Old GPU: no subgroup"),
                  std::string::npos)
            << e.what();
    }
    try {
        select_device(bad, "0");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot run the backend"), std::string::npos);
    }
}

TEST(VulkanShaders, EveryModuleIsEmbedded) {
    for (const char* name :
         {"matmul_f32", "matmul_f16", "matmul_bf16", "matmul_q8_0", "matmul_q4_0", "matmul_q4_1",
          "matmul_q5_0", "matmul_q4_k", "matmul_q5_k", "matmul_q6_k", "embed_q4_k", "rms_norm",
          "elementwise", "rope", "kv_store", "attention"}) {
        const SpirvModule* m = find_shader(name);
        ASSERT_NE(m, nullptr) << name;
        ASSERT_GT(m->word_count, 5u);
        EXPECT_EQ(m->words[0], 0x07230203u) << name << ": not SPIR-V";  // the magic number
    }
    EXPECT_EQ(find_shader("no_such_shader"), nullptr);
}

// ---------------------------------------------------------------------------------------------
// With a device.

TEST(VulkanDevice, ListsDevicesWithProperties) {
    std::vector<DeviceProps> devices;
    try {
        devices = list_devices();
    } catch (const Error& e) {
        MLLM_NO_VULKAN_DEVICE(e.what());
    }
    if (devices.empty()) MLLM_NO_VULKAN_DEVICE("the driver lists no device");
    bool any_usable = false;
    for (const DeviceProps& d : devices) {
        const std::string line = describe(d);
        SCOPED_TRACE(line);
        EXPECT_FALSE(d.name.empty());
        EXPECT_NE(line.find(d.name), std::string::npos);
        if (!d.usable) {
            EXPECT_FALSE(d.unusable_reason.empty());
            continue;
        }
        EXPECT_GE(d.api_version, VK_API_VERSION_1_1);
        any_usable = true;
        EXPECT_GT(d.subgroup_size, 0u);
        EXPECT_LE(d.min_subgroup_size, d.subgroup_size);
        EXPECT_GE(d.max_subgroup_size, d.subgroup_size);
        EXPECT_TRUE(d.subgroup_arithmetic);
        EXPECT_GT(d.device_local_bytes, 0u);
        EXPECT_GE(d.max_workgroup_invocations, 128u);
        EXPECT_GE(d.max_push_constants_bytes, 128u);
        EXPECT_GT(d.max_storage_buffer_range, 0u);
        EXPECT_GT(d.min_storage_buffer_offset_alignment, 0u);
        if (d.type == DeviceType::Cpu) {
            EXPECT_TRUE(d.unified_memory) << "a CPU device's memory is the host's";
        }
        std::printf("[ device   ] %s\n", line.c_str());
    }
    EXPECT_TRUE(any_usable);
}

using VulkanTest = test::VulkanContextTest;

// Every pipeline family against its scalar host reference (backends/vulkan/vk_self_test.cpp):
// the elementwise ops, rope, kv_store + attention, activation rounding, and matmul and embed for
// every weight type, in the layouts this device uses.
TEST_F(VulkanTest, EveryPipelineFamilyMatchesItsHostReference) {
    for (const std::string& family : self_test_families()) {
        const SelfTestResult r = run_self_test(ctx(), family);
        EXPECT_TRUE(r.ok) << family << ": " << r.detail;
    }
    EXPECT_FALSE(run_self_test(ctx(), "no_such_family").ok);
}

TEST_F(VulkanTest, OpensTheSelectedDevice) {
    const DeviceProps& d = ctx().props();
    EXPECT_TRUE(d.usable);
    std::printf("[ using    ] %s\n", describe(d).c_str());
    // The environment's selection, when given, is honoured.
    if (const char* env = std::getenv("MLLM_VK_DEVICE"); env != nullptr && *env != '\0') {
        const auto devices = list_devices();
        EXPECT_EQ(d.index, select_device(devices, env));
    }
}

// --- Memory ---

TEST_F(VulkanTest, TensorsShareOneDeviceMemory) {
    MemoryManager mem(ctx().device(), 1 << 20);
    Allocation a = mem.allocate(1000);
    Allocation b = mem.allocate(3000);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a.memory(), b.memory());
    EXPECT_EQ(a.buffer(), b.buffer());
    EXPECT_NE(a.offset(), b.offset());
    // Aligned for descriptor binding, and not overlapping.
    const VkDeviceSize align = ctx().props().min_storage_buffer_offset_alignment;
    EXPECT_EQ(a.offset() % align, 0u);
    EXPECT_EQ(b.offset() % align, 0u);
    EXPECT_EQ(a.offset() % mem.alignment(), 0u);
    EXPECT_GE(a.reserved(), a.size());
    EXPECT_EQ(a.reserved() % mem.alignment(), 0u);
    EXPECT_TRUE(a.offset() + a.reserved() <= b.offset() || b.offset() + b.reserved() <= a.offset());
    const MemoryManager::Stats s = mem.stats(MemoryUse::Device);
    EXPECT_EQ(s.blocks, 1u);
    EXPECT_EQ(s.allocations, 2u);
    EXPECT_EQ(s.used_bytes, a.reserved() + b.reserved());
    EXPECT_EQ(s.reserved_bytes, VkDeviceSize{1} << 20);
    EXPECT_EQ(mem.bytes_used(), a.reserved() + b.reserved());
    // Larger alignments on request.
    Allocation c = mem.allocate(10, MemoryUse::Device, 4096);
    EXPECT_EQ(c.offset() % 4096, 0u);
    EXPECT_EQ(c.memory(), a.memory());
    a.reset();
    b.reset();
    c.reset();
    EXPECT_EQ(mem.bytes_used(), 0u);
}

TEST_F(VulkanTest, FreedRangesAreReusedAndMerged) {
    const VkDeviceSize block = 1 << 20;
    const VkDeviceSize chunk = 64 << 10;
    MemoryManager mem(ctx().device(), block);
    Allocation a = mem.allocate(chunk);
    Allocation b = mem.allocate(chunk);
    Allocation c = mem.allocate(chunk);
    EXPECT_EQ(a.offset(), 0u);
    EXPECT_EQ(b.offset(), chunk);
    EXPECT_EQ(c.offset(), 2 * chunk);
    // First fit: a freed hole is reused before the space after c.
    const VkDeviceSize b_offset = b.offset();
    b.reset();
    Allocation d = mem.allocate(chunk / 2);
    EXPECT_EQ(d.offset(), b_offset);
    d.reset();
    // a's and b's ranges merge into one hole that holds twice the size.
    a.reset();
    Allocation e = mem.allocate(2 * chunk);
    EXPECT_EQ(e.offset(), 0u);
    EXPECT_EQ(e.memory(), c.memory());
    e.reset();
    c.reset();
    // Everything merged back: the whole block is one free range again, and the block is kept.
    Allocation whole = mem.allocate(block);
    EXPECT_EQ(whole.offset(), 0u);
    EXPECT_EQ(mem.stats(MemoryUse::Device).blocks, 1u);
}

TEST_F(VulkanTest, NewBlocksWhenFullAndOversizedTensorsGetTheirOwn) {
    const VkDeviceSize block = 1 << 20;
    MemoryManager mem(ctx().device(), block);
    Allocation a = mem.allocate(block - 4096);
    Allocation b = mem.allocate(8192);  // does not fit in the first block's rest
    EXPECT_NE(a.memory(), b.memory());
    EXPECT_EQ(mem.stats(MemoryUse::Device).blocks, 2u);
    Allocation c = mem.allocate(1000);  // fits after a
    EXPECT_EQ(c.memory(), a.memory());
    Allocation big = mem.allocate(3 * block);  // a block of its own
    EXPECT_EQ(big.offset(), 0u);
    EXPECT_EQ(mem.stats(MemoryUse::Device).blocks, 3u);
    EXPECT_GE(mem.stats(MemoryUse::Device).reserved_bytes, 5 * block);
    big.reset();  // oversized blocks go back to the driver at once
    EXPECT_EQ(mem.stats(MemoryUse::Device).blocks, 2u);
    b.reset();  // an emptied block goes back while another remains
    EXPECT_EQ(mem.stats(MemoryUse::Device).blocks, 1u);
    a.reset();
    c.reset();
    EXPECT_EQ(mem.stats(MemoryUse::Device).blocks, 1u);  // the last one is kept
    EXPECT_EQ(mem.bytes_used(), 0u);
}

TEST_F(VulkanTest, MovedAllocationsFreeOnce) {
    MemoryManager mem(ctx().device(), 1 << 20);
    Allocation a = mem.allocate(100);
    Allocation b = std::move(a);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move)
    EXPECT_TRUE(b);
    std::vector<Allocation> list;
    list.push_back(std::move(b));
    list.push_back(mem.allocate(200));
    EXPECT_EQ(mem.stats().allocations, 2u);
    list.clear();
    EXPECT_EQ(mem.stats().allocations, 0u);
}

TEST_F(VulkanTest, UnifiedMemoryIsMappedInPlace) {
    MemoryManager& mem = ctx().memory();
    EXPECT_EQ(mem.host_visible(MemoryUse::Device), ctx().props().unified_memory);
    EXPECT_TRUE(mem.host_visible(MemoryUse::Upload));
    EXPECT_TRUE(mem.host_visible(MemoryUse::Readback));
    Allocation a = mem.allocate(256);
    if (ctx().props().unified_memory) {
        ASSERT_NE(a.mapped(), nullptr);
    } else {
        EXPECT_EQ(a.mapped(), nullptr);
    }
}

TEST_F(VulkanTest, WriteAndReadBothWays) {
    // Through the mapping where there is one, and through staging buffers (forced here, the
    // discrete-GPU path) on a second context.
    ContextOptions staged;
    staged.always_stage = true;
    std::unique_ptr<Context> other = Context::open(staged);
    EXPECT_FALSE(other->memory().host_visible(MemoryUse::Device));
    for (Context* c : {&ctx(), other.get()}) {
        std::vector<uint8_t> data(100003);
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
        Allocation a = c->memory().allocate(data.size() + 64);
        c->write(a, 17, data.data(), data.size());
        std::vector<uint8_t> back(data.size());
        c->read(a, 17, back.data(), back.size());
        EXPECT_EQ(back, data);
        EXPECT_THROW(c->write(a, a.reserved() - 2, data.data(), 8), Error);
    }
}

// --- Pipelines and Sequences ---

TEST_F(VulkanTest, PipelinesAreCreatedOncePerSpecialization) {
    Pipelines& p = ctx().pipelines();
    const PipelineDesc desc{"rms_norm", 3, 36, {ctx().props().subgroup_size}};
    const Pipeline& a = p.get(desc);
    const Pipeline& b = p.get(desc);
    EXPECT_EQ(&a, &b);
    EXPECT_EQ(a.workgroup_size(), ctx().props().subgroup_size);
    PipelineDesc other = desc;
    other.spec[0] *= 2;
    EXPECT_NE(&p.get(other), &a);
    EXPECT_THROW(p.get({"no_such_shader", 1, 0, {32}}), Error);
    EXPECT_THROW(p.get({"rms_norm", 3, 36, {ctx().props().max_workgroup_invocations + 1}}), Error);
}

// --- The workaround table (no device needed) ---

vk::DeviceProps usable_device(uint32_t vendor, uint32_t device, uint32_t api) {
    vk::DeviceProps d;
    d.vendor_id = vendor;
    d.device_id = device;
    d.api_version = api;
    d.subgroup_size = 32;
    d.min_subgroup_size = 8;
    d.max_subgroup_size = 64;
    d.subgroup_arithmetic = d.fp16 = d.int8_dot = d.usable = true;
    return d;
}

TEST(VulkanWorkarounds, EntriesMatchVendorDeviceAndVersions) {
    const vk::Workaround w{
        0x5143, {0x6030001, 0x6040001},           VK_MAKE_API_VERSION(0, 1, 1, 0),
        300,    bit(vk::Feature::Fp16Arithmetic), "test"};
    vk::DeviceProps d = usable_device(0x5143, 0x6040001, VK_MAKE_API_VERSION(0, 1, 0, 87));
    d.driver_version = 299;
    EXPECT_TRUE(vk::matches(w, d));
    d.device_id = 0x6050002;  // not listed
    EXPECT_FALSE(vk::matches(w, d));
    d.device_id = 0x6030001;
    d.api_version = VK_MAKE_API_VERSION(0, 1, 1, 0);  // fixed in this version
    EXPECT_FALSE(vk::matches(w, d));
    d.api_version = VK_MAKE_API_VERSION(0, 1, 0, 87);
    d.driver_version = 300;  // fixed in this driver
    EXPECT_FALSE(vk::matches(w, d));
    d.driver_version = 0;
    d.vendor_id = 0x13b5;
    EXPECT_FALSE(vk::matches(w, d));
}

TEST(VulkanWorkarounds, KnownBadDriversLoseTheirFeaturesOrTheDevice) {
    // A Mali-G71 on a current driver: fp16 arithmetic off, the rest kept.
    vk::DeviceProps g71 = usable_device(0x13b5, 0x60a00002, VK_MAKE_API_VERSION(0, 1, 1, 0));
    vk::apply_workarounds(g71, vk::workaround_table(), {});
    EXPECT_TRUE(g71.off(vk::Feature::Fp16Arithmetic));
    EXPECT_FALSE(g71.fp16);
    EXPECT_TRUE(g71.int8_dot);
    EXPECT_TRUE(g71.subgroup_reductions());
    EXPECT_TRUE(g71.usable);
    ASSERT_EQ(g71.workarounds.size(), 1u);
    EXPECT_NE(g71.workarounds[0].find("fp16_arithmetic off"), std::string::npos);

    // A Mali on a driver older than 1.0.66 is not used at all, and describe() says why.
    vk::DeviceProps old = usable_device(0x13b5, 0x72110000, VK_MAKE_API_VERSION(0, 1, 0, 61));
    vk::apply_workarounds(old, vk::workaround_table(), {});
    EXPECT_FALSE(old.usable);
    EXPECT_NE(old.unusable_reason.find("specialization constant"), std::string::npos)
        << old.unusable_reason;
    EXPECT_NE(vk::describe(old).find("workaround: device off"), std::string::npos);

    // An old Adreno 640: no pipeline cache, no fp16 arithmetic, and not used.
    vk::DeviceProps adreno = usable_device(0x5143, 0x6040001, VK_MAKE_API_VERSION(0, 1, 0, 31));
    vk::apply_workarounds(adreno, vk::workaround_table(), {});
    EXPECT_TRUE(adreno.off(vk::Feature::PipelineCache));
    EXPECT_TRUE(adreno.off(vk::Feature::Fp16Arithmetic));
    EXPECT_FALSE(adreno.usable);

    // Nothing known about NVIDIA, AMD, Intel or Mesa's CPU device.
    for (uint32_t vendor : {0x10deu, 0x1002u, 0x8086u, 0x10005u}) {
        vk::DeviceProps d = usable_device(vendor, 1, VK_MAKE_API_VERSION(0, 1, 3, 0));
        vk::apply_workarounds(d, vk::workaround_table(), {});
        EXPECT_EQ(d.features_off, 0u) << std::hex << vendor;
    }
}

TEST(VulkanWorkarounds, FeaturesTurnedOffByHand) {
    vk::DeviceProps d = usable_device(0x10de, 1, VK_MAKE_API_VERSION(0, 1, 3, 0));
    vk::apply_workarounds(d, {}, {"subgroup_arithmetic", "integer_dot", "subgroup_size_control"});
    EXPECT_FALSE(d.subgroup_reductions());
    EXPECT_FALSE(d.int8_dot);
    EXPECT_EQ(d.min_subgroup_size, 32u);
    EXPECT_EQ(d.max_subgroup_size, 32u);
    EXPECT_TRUE(d.usable);
    ASSERT_EQ(d.workarounds.size(), 1u);
    EXPECT_NE(d.workarounds[0].find("MLLM_VK_DISABLE_FEATURES"), std::string::npos);
    try {
        vk::apply_workarounds(d, {}, {"fp17"});
        FAIL() << "an unknown feature name was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("unknown feature 'fp17'"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("subgroup_arithmetic"), std::string::npos);
    }
}
}  // namespace
}  // namespace mllm::vk

#endif  // MLLM_HAVE_VULKAN
