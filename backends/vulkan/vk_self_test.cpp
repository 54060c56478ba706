#include "backends/vulkan/vk_self_test.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>

#include "backends/vulkan/ops/vk_argmax.h"
#include "backends/vulkan/ops/vk_attention.h"
#include "backends/vulkan/ops/vk_elementwise.h"
#include "backends/vulkan/ops/vk_embed.h"
#include "backends/vulkan/ops/vk_kv_store.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_rms_norm.h"
#include "backends/vulkan/ops/vk_rope.h"
#include "backends/vulkan/ops/vk_round_activations.h"
#include "backends/vulkan/vk_self_test_util.h"
#include "backends/vulkan/vk_shaders.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quant/quant.h"

namespace mllm::vk {

namespace {

using namespace self_test;

constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                                  DType::Q4_1, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::string test_embed(Context& ctx, DType type) {
    const int64_t rows = 5, cols = 256;
    const size_t rb = row_bytes(type, cols);
    const std::vector<float> f = random_floats(static_cast<size_t>(rows * cols), 3);
    std::vector<uint8_t> table(rb * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r)
        quantize_row(type, f.data() + r * cols, table.data() + static_cast<size_t>(r) * rb, cols);
    const int32_t ids[] = {3, 0, 4, 1};
    std::vector<double> want;
    std::vector<float> row(static_cast<size_t>(cols));
    for (int32_t id : ids) {
        dequantize_row(type, table.data() + static_cast<size_t>(id) * rb, row.data(), cols);
        want.insert(want.end(), row.begin(), row.end());
    }
    const Allocation ta = upload(ctx, table.data(), table.size());
    const Allocation ia = upload(ctx, ids, sizeof(ids));
    const Allocation ya = ctx.memory().allocate(want.size() * 4);
    run(ctx, [&](Sequence& seq) {
        EmbedArgs a;
        a.table_type = type;
        a.cols = cols;
        a.rows = 4;
        a.table = ta.range();
        a.table_rows = rows;
        a.ids = ia.range();
        a.y = ya.range();
        record_embed(ctx, seq, a);
    });
    return compare(download(ctx, ya, want.size()), want, tolerance(want, 0, 1e-6));
}

// Plain, with the residual add fused in front, and each also rounding its output to Q8_0 blocks
// (pipelines of their own): y = norm(x [+ b]) * w, the sum written out, the rounded copy equal
// to the host's rounding of y.
std::string test_rms_norm(Context& ctx) {
    const int64_t rows = 3, cols = 96;
    const float eps = 1e-5f;
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * cols), 4);
    const std::vector<float> b = random_floats(static_cast<size_t>(rows * cols), 12);
    const std::vector<float> w = random_floats(static_cast<size_t>(cols), 5);
    const Allocation xa = upload(ctx, x), ba = upload(ctx, b), wa = upload(ctx, w);
    for (int variant = 0; variant < 4; ++variant) {
        const bool add = variant % 2 == 1, round = variant >= 2;
        std::vector<double> sum(x.size()), want(x.size());
        for (size_t i = 0; i < x.size(); ++i) sum[i] = add ? x[i] + b[i] : x[i];
        for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < cols; ++i) ss += sum[r * cols + i] * sum[r * cols + i];
            const double scale = 1 / std::sqrt(ss / static_cast<double>(cols) + eps);
            for (int64_t i = 0; i < cols; ++i)
                want[static_cast<size_t>(r * cols + i)] =
                    sum[static_cast<size_t>(r * cols + i)] * scale * w[static_cast<size_t>(i)];
        }
        const Allocation ya = ctx.memory().allocate(x.size() * 4);
        const Allocation sa = ctx.memory().allocate(x.size() * 4);
        const Allocation ra = ctx.memory().allocate(x.size() * 4);
        run(ctx, [&](Sequence& seq) {
            RmsNormArgs a;
            if (round) a.rounded = ra.range();
            a.rows = rows;
            a.cols = cols;
            a.eps = eps;
            a.x = xa.range();
            a.w = wa.range();
            a.y = ya.range();
            if (add) {
                a.b = ba.range();
                a.sum = sa.range();
            }
            record_rms_norm(ctx, seq, a);
        });
        const std::vector<float> y = download(ctx, ya, want.size());
        std::string err = compare(y, want, tolerance(want, 1e-5, 1e-6));
        if (err.empty() && add)
            err = compare(download(ctx, sa, sum.size()), sum, tolerance(sum, 1e-7, 0));
        if (err.empty() && round) err = check_rounded(ctx, ra, y, rows, cols);
        if (!err.empty()) return str_cat(add ? "with the add: " : "", err);
    }
    return "";
}

std::string test_elementwise(Context& ctx) {
    const int64_t rows = 3, cols = 64, n = rows * cols;
    const std::vector<float> a = random_floats(static_cast<size_t>(n), 6);
    const std::vector<float> b = random_floats(static_cast<size_t>(n), 7);
    const Allocation aa = upload(ctx, a), ba = upload(ctx, b);
    for (Elementwise op : {Elementwise::Add, Elementwise::Mul, Elementwise::Silu,
                           Elementwise::SwiGlu, Elementwise::Copy}) {
        const bool broadcast = op == Elementwise::Add;  // b's first row, for every row
        std::vector<double> want(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            const double av = a[static_cast<size_t>(i)];
            const double bv = b[static_cast<size_t>(broadcast ? i % cols : i)];
            const double silu = av / (1 + std::exp(-av));
            want[static_cast<size_t>(i)] = op == Elementwise::Add      ? av + bv
                                           : op == Elementwise::Mul    ? av * bv
                                           : op == Elementwise::Silu   ? silu
                                           : op == Elementwise::SwiGlu ? silu * bv
                                                                       : av;
        }
        const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(n * 4));
        run(ctx, [&](Sequence& seq) {
            ElementwiseArgs e;
            e.op = op;
            e.n = n;
            e.cols = cols;
            e.a = aa.range();
            e.b = ba.range();
            e.y = ya.range();
            e.b_broadcast = broadcast;
            record_elementwise(ctx, seq, e);
        });
        const std::string err =
            compare(download(ctx, ya, want.size()), want, tolerance(want, 1e-5, 1e-6));
        if (!err.empty()) return str_cat("op ", static_cast<int>(op), ": ", err);
    }
    // SwiGLU rounding its output for the matmul after it (a pipeline of its own).
    const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(n * 4));
    const Allocation ra = ctx.memory().allocate(static_cast<VkDeviceSize>(n * 4));
    run(ctx, [&](Sequence& seq) {
        ElementwiseArgs e;
        e.op = Elementwise::SwiGlu;
        e.n = n;
        e.cols = cols;
        e.a = aa.range();
        e.b = ba.range();
        e.y = ya.range();
        e.rounded = ra.range();
        record_elementwise(ctx, seq, e);
    });
    return check_rounded(ctx, ra, download(ctx, ya, static_cast<size_t>(n)), rows, cols);
}

std::string test_rope(Context& ctx) {
    const int64_t rows = 3;
    const int n_head = 2, hd = 64, width = n_head * hd;
    const int32_t pos[] = {0, 7, 3001};  // far positions exercise the range reduction
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * width), 8);
    const Allocation xa = upload(ctx, x), pa = upload(ctx, pos, sizeof(pos));
    for (graph::RopeMode mode : {graph::RopeMode::Normal, graph::RopeMode::Neox}) {
        std::vector<double> want(x.size());
        const float theta_scale = std::pow(10000.0f, -2.0f / static_cast<float>(hd));
        for (int64_t r = 0; r < rows; ++r) {
            float theta = static_cast<float>(pos[r]);
            for (int i = 0; i < hd / 2; ++i, theta *= theta_scale) {
                for (int h = 0; h < n_head; ++h) {
                    const int64_t base = r * width + h * hd;
                    const int64_t ia = base + (mode == graph::RopeMode::Normal ? 2 * i : i);
                    const int64_t ib =
                        base + (mode == graph::RopeMode::Normal ? 2 * i + 1 : i + hd / 2);
                    const double x0 = x[static_cast<size_t>(ia)], x1 = x[static_cast<size_t>(ib)];
                    want[static_cast<size_t>(ia)] = x0 * std::cos(theta) - x1 * std::sin(theta);
                    want[static_cast<size_t>(ib)] = x0 * std::sin(theta) + x1 * std::cos(theta);
                }
            }
        }
        // Alone, paired with a second tensor (the keys beside the queries; here x again), and
        // paired storing the keys and values (x again) into f16 caches of n_ctx rows.
        const int64_t n_ctx = 16;  // position 3001 is outside: its row is not stored
        for (int variant = 0; variant < 3; ++variant) {
            const bool pair = variant >= 1, store = variant == 2;
            const Allocation ya = ctx.memory().allocate(x.size() * 4);
            const Allocation y2a = ctx.memory().allocate(x.size() * 4);
            const std::vector<uint32_t> unset(static_cast<size_t>(n_ctx * width / 2), 0x7e007e00u);
            const Allocation kc = upload(ctx, unset.data(), unset.size() * 4);
            const Allocation vc = upload(ctx, unset.data(), unset.size() * 4);
            run(ctx, [&](Sequence& seq) {
                RopeArgs a;
                a.rows = rows;
                a.n_head = n_head;
                a.head_dim = hd;
                a.mode = mode;
                a.x = xa.range();
                a.positions = pa.range();
                a.y = ya.range();
                if (pair) {
                    a.n_head2 = n_head;
                    a.x2 = xa.range();
                    a.y2 = y2a.range();
                }
                if (store) {
                    a.v = xa.range();
                    a.k_cache = kc.range();
                    a.v_cache = vc.range();
                    a.n_ctx = n_ctx;
                }
                record_rope(ctx, seq, a);
            });
            // Vulkan's sin and cos promise about 2^-11 absolute.
            std::string err =
                compare(download(ctx, ya, want.size()), want, tolerance(want, 0, 2e-3));
            if (err.empty() && pair)
                err = compare(download(ctx, y2a, want.size()), want, tolerance(want, 0, 2e-3));
            if (err.empty() && store) err = check_cache_rows(ctx, kc, vc, want, x, pos, n_ctx);
            if (!err.empty())
                return str_cat(mode == graph::RopeMode::Normal ? "normal" : "neox",
                               store  ? " pair storing keys and values"
                               : pair ? " pair"
                                      : "",
                               ": ", err);
        }
    }
    return "";
}

// Rows over more columns than a workgroup has threads, with a tie for the maximum (the lower
// column must win) and NaN (never wins) planted.
std::string test_argmax(Context& ctx) {
    const int64_t rows = 3, cols = 1001;
    std::vector<float> x = random_floats(static_cast<size_t>(rows * cols), 11);
    x[7] = x[900] = 5.0f;         // row 0: a tie
    x[cols + 3] = std::nanf("");  // row 1: NaN beside the maximum
    x[cols + 4] = 4.0f;
    x[2 * cols + cols - 1] = 6.0f;  // row 2: the last column
    std::vector<int32_t> want(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
        int64_t best = 0;
        for (int64_t i = 1; i < cols; ++i)
            if (x[static_cast<size_t>(r * cols + i)] > x[static_cast<size_t>(r * cols + best)])
                best = i;
        want[static_cast<size_t>(r)] = static_cast<int32_t>(best);
    }
    const Allocation xa = upload(ctx, x);
    const Allocation ya = ctx.memory().allocate(static_cast<VkDeviceSize>(rows * 4));
    run(ctx, [&](Sequence& seq) {
        ArgmaxArgs a;
        a.rows = rows;
        a.cols = cols;
        a.x = xa.range();
        a.y = ya.range();
        record_argmax(ctx, seq, a);
    });
    std::vector<int32_t> got(static_cast<size_t>(rows));
    ctx.read(ya, 0, got.data(), got.size() * sizeof(int32_t));
    for (size_t r = 0; r < got.size(); ++r)
        if (got[r] != want[r])
            return str_cat("row ", r, ": column ", got[r], ", expected ", want[r]);
    return "";
}

// kv_store then attention: 3 tokens at positions 0..2, 4 query heads over 2 KV heads of 64.
std::string test_attention(Context& ctx) {
    const int64_t rows = 3, n_ctx = 8;
    const int n_head = 4, n_head_kv = 2, hd = 64;
    const int64_t qw = n_head * hd, kw = n_head_kv * hd;
    const float scale = 1.0f / 8.0f;
    const int32_t pos[] = {0, 1, 2};
    const std::vector<float> q = random_floats(static_cast<size_t>(rows * qw), 9);
    const std::vector<float> k = random_floats(static_cast<size_t>(rows * kw), 10);
    const std::vector<float> v = random_floats(static_cast<size_t>(rows * kw), 11);
    auto half = [](float f) { return static_cast<double>(fp16_to_fp32(fp32_to_fp16(f))); };
    std::vector<double> want(q.size());
    for (int64_t t = 0; t < rows; ++t)
        for (int h = 0; h < n_head; ++h) {
            const int64_t kv = (h / (n_head / n_head_kv)) * hd;
            std::vector<double> s(static_cast<size_t>(t + 1));
            for (int64_t j = 0; j <= t; ++j) {
                double dot = 0;
                for (int d = 0; d < hd; ++d)
                    dot += q[static_cast<size_t>(t * qw + h * hd + d)] *
                           half(k[static_cast<size_t>(j * kw + kv + d)]);
                s[static_cast<size_t>(j)] = dot * scale;
            }
            const double mx = *std::max_element(s.begin(), s.end());
            double sum = 0;
            for (double& e : s) sum += (e = std::exp(e - mx));
            for (int d = 0; d < hd; ++d) {
                double o = 0;
                for (int64_t j = 0; j <= t; ++j)
                    o += s[static_cast<size_t>(j)] / sum *
                         half(v[static_cast<size_t>(j * kw + kv + d)]);
                want[static_cast<size_t>(t * qw + h * hd + d)] = o;
            }
        }
    const Allocation qa = upload(ctx, q), ka = upload(ctx, k), va = upload(ctx, v);
    const Allocation pa = upload(ctx, pos, sizeof(pos));
    const Allocation kc = ctx.memory().allocate(static_cast<VkDeviceSize>(2 * n_ctx * kw));
    const Allocation vc = ctx.memory().allocate(static_cast<VkDeviceSize>(2 * n_ctx * kw));
    const Allocation ya = ctx.memory().allocate(q.size() * 4);
    // Where the device's kernel can, its output also rounded for the matmul after it, as that
    // matmul takes it (packed for the integer dot-product kernel).
    const bool packed = matmul_int_dot(ctx.props(), DType::Q8_0);
    const bool round = attention_rounds(ctx.props(), hd, packed);
    const Allocation ra = ctx.memory().allocate(q.size() * 4);
    run(ctx, [&](Sequence& seq) {
        KvStoreArgs s;
        s.rows = rows;
        s.width = kw;
        s.n_ctx = n_ctx;
        s.k = ka.range();
        s.v = va.range();
        s.positions = pa.range();
        s.k_cache = kc.range();
        s.v_cache = vc.range();
        record_kv_store(ctx, seq, s);
        seq.barrier();
        AttentionArgs a;
        a.rows = rows;
        a.n_head = n_head;
        a.n_head_kv = n_head_kv;
        a.head_dim = hd;
        a.n_ctx = n_ctx;
        a.scale = scale;
        a.q = qa.range();
        a.positions = pa.range();
        a.k_cache = kc.range();
        a.v_cache = vc.range();
        a.out = ya.range();
        if (round) a.rounded = ra.range();
        a.round_packed = packed;
        record_attention(ctx, seq, a);
    });
    const std::vector<float> y = download(ctx, ya, want.size());
    const std::string err = compare(y, want, tolerance(want, 1e-4, 1e-5));
    return err.empty() && round ? check_rounded(ctx, ra, y, rows, qw, packed) : err;
}

std::string test_round_activations(Context& ctx) {
    const int64_t rows = 2, cols = 256;
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * cols), 12);
    const Allocation xa = upload(ctx, x);
    for (DType format : {DType::Q8_0, DType::Q8_K}) {
        std::vector<double> want;
        std::vector<uint8_t> blocks(row_bytes(format, cols));
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
            quantize_row(format, x.data() + r * cols, blocks.data(), cols);
            dequantize_row(format, blocks.data(), row.data(), cols);
            want.insert(want.end(), row.begin(), row.end());
        }
        const Allocation ya = ctx.memory().allocate(x.size() * 4);
        run(ctx, [&](Sequence& seq) {
            RoundActivationsArgs a;
            a.format = format;
            a.rows = rows;
            a.cols = cols;
            a.x = xa.range();
            a.y = ya.range();
            record_round_activations(ctx, seq, a);
        });
        const std::string err =
            compare(download(ctx, ya, want.size()), want, tolerance(want, 1e-6, 1e-7));
        if (!err.empty()) return str_cat(dtype_name(format), ": ", err);
    }
    return "";
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

uint64_t fnv1a(uint64_t h, const uint8_t* bytes, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 1099511628211ULL;
    return h;
}

// The linker's build id (the NT_GNU_BUILD_ID note) of the executable or library holding this
// code, hashed; 0 where it has none.
uint64_t build_id_hash() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&build_id_hash), &info) == 0) return 0;
    struct Search {
        const void* base;
        uint64_t hash = 0;
    } search{info.dli_fbase};
    dl_iterate_phdr(
        [](dl_phdr_info* obj, size_t, void* data) {
            auto& s = *static_cast<Search*>(data);
            // The object mapped at dli_fbase: its lowest loaded segment starts there.
            uintptr_t start = UINTPTR_MAX;
            for (int i = 0; i < obj->dlpi_phnum; ++i)
                if (obj->dlpi_phdr[i].p_type == PT_LOAD)
                    start = std::min<uintptr_t>(start, obj->dlpi_addr + obj->dlpi_phdr[i].p_vaddr);
            if (start / 4096 != reinterpret_cast<uintptr_t>(s.base) / 4096) return 0;
            for (int i = 0; i < obj->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = obj->dlpi_phdr[i];
                if (ph.p_type != PT_NOTE) continue;
                // The notes, each a header, its name and its descriptor (4-byte aligned),
                // walked by offsets checked against the segment's size.
                const auto* notes = reinterpret_cast<const uint8_t*>(obj->dlpi_addr + ph.p_vaddr);
                const size_t size = ph.p_memsz;
                size_t at = 0;
                while (size - at >= sizeof(ElfW(Nhdr))) {
                    ElfW(Nhdr) note;
                    std::memcpy(&note, notes + at, sizeof(note));
                    const size_t name = at + sizeof(note);
                    const size_t desc = name + (size_t{note.n_namesz} + 3) / 4 * 4;
                    if (desc > size || size - desc < note.n_descsz) break;
                    if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
                        std::memcmp(notes + name, "GNU", 4) == 0)
                        s.hash = fnv1a(1469598103934665603ULL, notes + desc, note.n_descsz);
                    at = desc + (size_t{note.n_descsz} + 3) / 4 * 4;
                }
            }
            return 1;
        },
        &search);
    return search.hash;
}

// Changes whenever any embedded shader does, or (with a build id) the code itself, whose
// self-test problems and references decide a result too: a rebuilt backend tests itself again.
uint64_t build_hash() {
    uint64_t h = 1469598103934665603ULL;
    for (const SpirvModule& m : embedded_shaders())
        h = fnv1a(h, reinterpret_cast<const uint8_t*>(m.words), m.word_count * 4);
    return h ^ build_id_hash();
}

}  // namespace

std::string matmul_family(DType t) {
    return "matmul_" + lower(dtype_name(t));
}

std::string embed_family(DType t) {
    return "embed_" + lower(dtype_name(t));
}

std::vector<std::string> self_test_families() {
    std::vector<std::string> f;
    for (DType t : kWeightTypes) f.push_back(matmul_family(t));
    for (DType t : kWeightTypes) f.push_back(embed_family(t));
    for (const char* name :
         {"round_activations", "rms_norm", "elementwise", "rope", "attention", "argmax"})
        f.emplace_back(name);
    return f;
}

SelfTestResult run_self_test(Context& ctx, const std::string& family) {
    SelfTestResult r{family, false, ""};
    try {
        std::string err = "unknown pipeline family";
        for (DType t : kWeightTypes) {
            if (family == matmul_family(t)) err = test_matmul(ctx, t);
            if (family == embed_family(t)) err = test_embed(ctx, t);
        }
        if (family == "round_activations") err = test_round_activations(ctx);
        if (family == "rms_norm") err = test_rms_norm(ctx);
        if (family == "elementwise") err = test_elementwise(ctx);
        if (family == "rope") err = test_rope(ctx);
        if (family == "attention") err = test_attention(ctx);
        if (family == "argmax") err = test_argmax(ctx);
        r.ok = err.empty();
        r.detail = err;
    } catch (const Error& e) {
        r.detail = e.what();
    }
    return r;
}

SelfTestCache::SelfTestCache(const DeviceProps& d) {
    if (std::getenv("MLLM_VK_CORRUPT") != nullptr) return;  // a test run: trust nothing stored
    std::ostringstream what;
    // The features turned off choose the kernels' variants: results hold for one set of them.
    what << "self-test-" << std::hex << build_hash() << "-" << d.features_off
         << (d.cpu_kernels ? "-cpu" : "-gpu") << ".txt";
    path_ = device_cache_path(d, what.str());
    if (path_.empty()) return;
    std::ifstream in(path_);
    std::string family, verdict;
    while (in >> family >> verdict) {
        std::string detail;
        std::getline(in, detail);
        results_[family] = {family, verdict == "ok", detail.empty() ? "" : detail.substr(1)};
    }
}

const SelfTestResult& SelfTestCache::get(Context& ctx, const std::string& family) {
    auto it = results_.find(family);
    if (it != results_.end()) return it->second;
    const SelfTestResult& r = results_[family] = run_self_test(ctx, family);
    save();
    return r;
}

void SelfTestCache::save() const {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    // Written whole to a temporary file and renamed, so concurrent processes never read half.
    const std::string tmp = str_cat(path_, ".", ::getpid());
    {
        std::ofstream out(tmp);
        for (const auto& [family, r] : results_)
            out << family << (r.ok ? " ok" : " fail") << (r.detail.empty() ? "" : " " + r.detail)
                << "\n";
        if (!out) return;  // an unwritable cache only costs a re-test next time
    }
    std::filesystem::rename(tmp, path_, ec);
}

}  // namespace mllm::vk
