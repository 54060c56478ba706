#include "core/gguf/gguf_types.h"

namespace mllm {

size_t gguf_scalar_size(GgufType t) {
    switch (t) {
        case GgufType::U8:
        case GgufType::I8:
        case GgufType::BOOL:
            return 1;
        case GgufType::U16:
        case GgufType::I16:
            return 2;
        case GgufType::U32:
        case GgufType::I32:
        case GgufType::F32:
            return 4;
        case GgufType::U64:
        case GgufType::I64:
        case GgufType::F64:
            return 8;
        case GgufType::STRING:
        case GgufType::ARRAY:
            return 0;
    }
    return 0;
}

std::string_view gguf_type_name(GgufType t) {
    switch (t) {
        case GgufType::U8:
            return "uint8";
        case GgufType::I8:
            return "int8";
        case GgufType::U16:
            return "uint16";
        case GgufType::I16:
            return "int16";
        case GgufType::U32:
            return "uint32";
        case GgufType::I32:
            return "int32";
        case GgufType::F32:
            return "float32";
        case GgufType::BOOL:
            return "bool";
        case GgufType::STRING:
            return "string";
        case GgufType::ARRAY:
            return "array";
        case GgufType::U64:
            return "uint64";
        case GgufType::I64:
            return "int64";
        case GgufType::F64:
            return "float64";
    }
    return "unknown";
}

}  // namespace mllm
