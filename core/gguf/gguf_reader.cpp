#include "core/gguf/gguf_reader.h"

#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/mapped_file.h"

namespace mllm {
namespace {

// Bounds-checked little-endian reader over the file image; every read names what it was
// reading so a truncated or corrupt file gets a message that says where it broke.
class Cursor {
  public:
    Cursor(const uint8_t* data, size_t size, const std::string& file)
        : data_(data), size_(size), file_(file) {}

    size_t pos() const { return pos_; }
    size_t remaining() const { return size_ - pos_; }

    const uint8_t* take(size_t n, std::string_view what) {
        if (n > remaining())
            fail(file_, ": truncated GGUF: ", what, " needs ", n, " bytes at offset ", pos_,
                 ", only ", remaining(), " left");
        const uint8_t* p = data_ + pos_;
        pos_ += n;
        return p;
    }
    template <typename T>
    T read(std::string_view what) {
        T v;
        std::memcpy(&v, take(sizeof(T), what), sizeof(T));
        return v;
    }
    std::string_view read_string(std::string_view what) {
        const uint64_t len = read<uint64_t>(what);
        if (len > remaining())
            fail(file_, ": corrupt GGUF: ", what, " claims ", len, " bytes but only ", remaining(),
                 " remain in the file");
        const uint8_t* p = take(static_cast<size_t>(len), what);
        return {reinterpret_cast<const char*>(p), static_cast<size_t>(len)};
    }

  private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
    const std::string& file_;
};

bool known_value_type(uint32_t t) {
    return t <= static_cast<uint32_t>(GgufType::F64);
}

void read_scalar(Cursor& cur, GgufType type, GgufValue& v, std::string_view what) {
    switch (type) {
        case GgufType::U8:
            v.u = cur.read<uint8_t>(what);
            v.i = static_cast<int64_t>(v.u);
            break;
        case GgufType::I8:
            v.i = cur.read<int8_t>(what);
            break;
        case GgufType::U16:
            v.u = cur.read<uint16_t>(what);
            v.i = static_cast<int64_t>(v.u);
            break;
        case GgufType::I16:
            v.i = cur.read<int16_t>(what);
            break;
        case GgufType::U32:
            v.u = cur.read<uint32_t>(what);
            v.i = static_cast<int64_t>(v.u);
            break;
        case GgufType::I32:
            v.i = cur.read<int32_t>(what);
            break;
        case GgufType::U64:
            v.u = cur.read<uint64_t>(what);
            v.i = static_cast<int64_t>(v.u);
            break;
        case GgufType::I64:
            v.i = cur.read<int64_t>(what);
            break;
        case GgufType::F32:
            v.f = cur.read<float>(what);
            break;
        case GgufType::F64:
            v.f = cur.read<double>(what);
            break;
        case GgufType::BOOL:
            v.u = cur.read<uint8_t>(what);
            break;
        default:
            break;
    }
    const bool is_signed = type == GgufType::I8 || type == GgufType::I16 || type == GgufType::I32 ||
                           type == GgufType::I64;
    if (is_signed && v.i >= 0) v.u = static_cast<uint64_t>(v.i);
}

bool is_integer(GgufType t) {
    return t == GgufType::U8 || t == GgufType::I8 || t == GgufType::U16 || t == GgufType::I16 ||
           t == GgufType::U32 || t == GgufType::I32 || t == GgufType::U64 || t == GgufType::I64;
}
bool is_unsigned(GgufType t) {
    return t == GgufType::U8 || t == GgufType::U16 || t == GgufType::U32 || t == GgufType::U64;
}

int64_t read_array_int(const uint8_t* p, GgufType t) {
    switch (t) {
        case GgufType::U8:
            return *p;
        case GgufType::I8:
            return static_cast<int8_t>(*p);
        case GgufType::U16: {
            uint16_t v;
            std::memcpy(&v, p, 2);
            return v;
        }
        case GgufType::I16: {
            int16_t v;
            std::memcpy(&v, p, 2);
            return v;
        }
        case GgufType::U32: {
            uint32_t v;
            std::memcpy(&v, p, 4);
            return v;
        }
        case GgufType::I32: {
            int32_t v;
            std::memcpy(&v, p, 4);
            return v;
        }
        case GgufType::U64: {
            uint64_t v;
            std::memcpy(&v, p, 8);
            return static_cast<int64_t>(v);
        }
        case GgufType::I64: {
            int64_t v;
            std::memcpy(&v, p, 8);
            return v;
        }
        default:
            return 0;
    }
}

}  // namespace

std::string GgufTensor::shape_string() const {
    std::string s = "[";
    for (int d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
    return s + "]";
}

GgufFile::~GgufFile() = default;

void GgufFile::populate() const {
    if (map_) map_->populate();
}

std::shared_ptr<const GgufFile> GgufFile::open(const std::string& path) {
    std::shared_ptr<GgufFile> f(new GgufFile());
    f->name_ = path;
    f->map_ = std::make_unique<MappedFile>(path);
    f->data_ = f->map_->data();
    f->size_ = f->map_->size();
    f->parse_header();
    return f;
}

std::shared_ptr<const GgufFile> GgufFile::parse(const uint8_t* data, size_t size,
                                                std::string name) {
    std::shared_ptr<GgufFile> f(new GgufFile());
    f->name_ = std::move(name);
    f->owned_.assign(data, data + size);
    f->data_ = f->owned_.data();
    f->size_ = size;
    f->parse_header();
    return f;
}

void GgufFile::parse_header() {
    Cursor cur(data_, size_, name_);
    if (size_ < 4 || cur.read<uint32_t>("magic") != kGgufMagic)
        fail(name_, ": not a GGUF file (bad magic; expected 'GGUF')");
    version_ = cur.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3)
        fail(name_, ": unsupported GGUF version ", version_,
             " (this runtime reads versions 2 and 3)");
    const uint64_t n_tensors = cur.read<uint64_t>("tensor count");
    const uint64_t n_kv = cur.read<uint64_t>("metadata count");
    // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info at
    // least 8 + 4 + 4 + 8; a count that cannot fit in the file is corrupt, and checking it here
    // keeps a hostile count from making us reserve gigabytes.
    if (n_kv > cur.remaining() / 13)
        fail(name_, ": corrupt GGUF: metadata count ", n_kv, " cannot fit in a ", size_,
             "-byte file");
    if (n_tensors > cur.remaining() / 24)
        fail(name_, ": corrupt GGUF: tensor count ", n_tensors, " cannot fit in a ", size_,
             "-byte file");

    kv_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
        const std::string key(cur.read_string("metadata key"));
        const uint32_t raw_type = cur.read<uint32_t>("metadata value type");
        if (!known_value_type(raw_type))
            fail(name_, ": corrupt GGUF: metadata '", key, "' has unknown value type ", raw_type);
        GgufValue v;
        v.type = static_cast<GgufType>(raw_type);
        if (v.type == GgufType::STRING) {
            v.str = cur.read_string("metadata string");
        } else if (v.type == GgufType::ARRAY) {
            const uint32_t raw_elem = cur.read<uint32_t>("array element type");
            if (!known_value_type(raw_elem))
                fail(name_, ": corrupt GGUF: array '", key, "' has unknown element type ",
                     raw_elem);
            v.elem_type = static_cast<GgufType>(raw_elem);
            if (v.elem_type == GgufType::ARRAY)
                fail(name_, ": unsupported GGUF: nested array in '", key, "'");
            v.count = cur.read<uint64_t>("array length");
            if (v.elem_type == GgufType::STRING) {
                if (v.count > cur.remaining() / 8)
                    fail(name_, ": corrupt GGUF: array '", key, "' claims ", v.count,
                         " strings, more than the file holds");
                v.strings.reserve(static_cast<size_t>(v.count));
                for (uint64_t j = 0; j < v.count; ++j)
                    v.strings.push_back(cur.read_string("array string"));
            } else {
                const size_t elem = gguf_scalar_size(v.elem_type);
                if (v.count > cur.remaining() / elem)
                    fail(name_, ": corrupt GGUF: array '", key, "' claims ", v.count,
                         " elements, more than the file holds");
                v.elems = cur.take(static_cast<size_t>(v.count) * elem, "array data");
            }
        } else {
            read_scalar(cur, v.type, v, "metadata value");
        }
        kv_.emplace_back(key, std::move(v));
    }
    for (size_t k = 0; k < kv_.size(); ++k) {
        if (!kv_index_.emplace(kv_[k].first, k).second)
            fail(name_, ": corrupt GGUF: duplicate metadata key '", kv_[k].first, "'");
    }

    if (const GgufValue* a = find("general.alignment")) {
        if (!is_integer(a->type) || a->u == 0 || a->u > (1u << 20) || (a->u & (a->u - 1)) != 0)
            fail(name_, ": corrupt GGUF: general.alignment must be a power of two up to 1 MiB");
        alignment_ = static_cast<uint32_t>(a->u);
    }

    tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t t = 0; t < n_tensors; ++t) {
        GgufTensor info;
        info.name = std::string(cur.read_string("tensor name"));
        const uint32_t n_dims = cur.read<uint32_t>("tensor dimension count");
        if (n_dims == 0 || n_dims > 4)
            fail(name_, ": corrupt GGUF: tensor '", info.name, "' has ", n_dims,
                 " dimensions (1 to 4 allowed)");
        info.n_dims = static_cast<int>(n_dims);
        uint64_t elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t ne = cur.read<uint64_t>("tensor dimension");
            if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                fail(name_, ": corrupt GGUF: tensor '", info.name, "' has invalid dimension ", ne);
            if (elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne)
                fail(name_, ": corrupt GGUF: tensor '", info.name, "' element count overflows");
            elements *= ne;
            info.ne[d] = static_cast<int64_t>(ne);
        }
        const uint32_t raw_type = cur.read<uint32_t>("tensor type");
        const DTypeTraits* traits = find_dtype(raw_type);
        if (traits == nullptr)
            fail(name_, ": tensor '", info.name, "' has unknown tensor type ", raw_type);
        info.type = traits->type;
        if (info.ne[0] % traits->block_size != 0)
            fail(name_, ": corrupt GGUF: tensor '", info.name, "' of type ", traits->name,
                 " has row length ", info.ne[0], ", not a multiple of its block size ",
                 traits->block_size);
        const uint64_t rows = elements / static_cast<uint64_t>(info.ne[0]);
        // Both products can wrap: a row of 2^62 f32 elements is 2^64 bytes.
        const uint64_t blocks = static_cast<uint64_t>(info.ne[0] / traits->block_size);
        if (blocks > std::numeric_limits<uint64_t>::max() / traits->type_size)
            fail(name_, ": corrupt GGUF: tensor '", info.name, "' byte size overflows");
        const uint64_t row = blocks * traits->type_size;
        if (rows != 0 && row > std::numeric_limits<uint64_t>::max() / rows)
            fail(name_, ": corrupt GGUF: tensor '", info.name, "' byte size overflows");
        info.nbytes = static_cast<size_t>(row * rows);
        info.offset = cur.read<uint64_t>("tensor offset");
        if (info.offset % alignment_ != 0)
            fail(name_, ": corrupt GGUF: tensor '", info.name, "' offset ", info.offset,
                 " is not aligned to ", alignment_);
        tensors_.push_back(std::move(info));
    }

    const size_t data_start = (cur.pos() + alignment_ - 1) / alignment_ * alignment_;
    if (!tensors_.empty() && data_start > size_)
        fail(name_, ": truncated GGUF: tensor data section starts past the end of the file");
    for (GgufTensor& info : tensors_) {
        const size_t avail = size_ - data_start;
        if (info.offset > avail || info.nbytes > avail - info.offset)
            fail(name_, ": truncated GGUF: tensor '", info.name, "' (", info.nbytes,
                 " bytes at offset ", info.offset, ") extends past the end of the file");
        info.data = data_ + data_start + info.offset;
    }
    for (size_t t = 0; t < tensors_.size(); ++t) {
        if (!tensor_index_.emplace(tensors_[t].name, t).second)
            fail(name_, ": corrupt GGUF: duplicate tensor name '", tensors_[t].name, "'");
    }
}

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!is_integer(v->type) || (!is_unsigned(v->type) && v->i < 0))
        fail(name_, ": metadata '", key, "' should be a non-negative integer, found ",
             gguf_type_name(v->type));
    return v->u;
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!is_integer(v->type))
        fail(name_, ": metadata '", key, "' should be an integer, found ", gguf_type_name(v->type));
    if (v->type == GgufType::U64 &&
        v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(name_, ": metadata '", key, "' value ", v->u, " does not fit a signed 64-bit integer");
    return v->i;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->type == GgufType::F32 || v->type == GgufType::F64) return v->f;
    if (is_integer(v->type))
        return is_unsigned(v->type) ? static_cast<double>(v->u) : static_cast<double>(v->i);
    fail(name_, ": metadata '", key, "' should be a number, found ", gguf_type_name(v->type));
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->type != GgufType::BOOL)
        fail(name_, ": metadata '", key, "' should be a bool, found ", gguf_type_name(v->type));
    return v->u != 0;
}

std::optional<std::string_view> GgufFile::get_string(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->type != GgufType::STRING)
        fail(name_, ": metadata '", key, "' should be a string, found ", gguf_type_name(v->type));
    return v->str;
}

std::vector<std::string_view> GgufFile::get_string_array(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return {};
    if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING)
        fail(name_, ": metadata '", key, "' should be an array of strings");
    return v->strings;
}

std::vector<float> GgufFile::get_float_array(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return {};
    if (v->type != GgufType::ARRAY ||
        (v->elem_type != GgufType::F32 && v->elem_type != GgufType::F64))
        fail(name_, ": metadata '", key, "' should be an array of floats");
    std::vector<float> out(static_cast<size_t>(v->count));
    for (size_t j = 0; j < out.size(); ++j) {
        if (v->elem_type == GgufType::F32) {
            std::memcpy(&out[j], v->elems + 4 * j, 4);
        } else {
            double d;
            std::memcpy(&d, v->elems + 8 * j, 8);
            out[j] = static_cast<float>(d);
        }
    }
    return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return {};
    if (v->type != GgufType::ARRAY || !is_integer(v->elem_type))
        fail(name_, ": metadata '", key, "' should be an array of integers");
    const size_t elem = gguf_scalar_size(v->elem_type);
    std::vector<int64_t> out(static_cast<size_t>(v->count));
    for (size_t j = 0; j < out.size(); ++j) {
        out[j] = read_array_int(v->elems + elem * j, v->elem_type);
        if (v->elem_type == GgufType::U64 && out[j] < 0)
            fail(name_, ": metadata '", key, "' element ", j,
                 " does not fit a signed 64-bit integer");
    }
    return out;
}

}  // namespace mllm
