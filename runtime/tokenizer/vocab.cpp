#include "runtime/tokenizer/vocab.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/error.h"
#include "core/gguf/gguf_reader.h"

namespace mllm::tokenizer_detail {

namespace {

uint16_t attr_of_type(int64_t type) {
    switch (type) {
        case 1:
            return kAttrNormal;
        case 2:
            return kAttrUnknown;
        case 3:
            return kAttrControl;
        case 4:
            return kAttrUserDefined;
        case 5:
            return kAttrUnused;
        case 6:
            return kAttrByte;
        default:
            return kAttrUndefined;
    }
}

bool is_integer_type(GgufType t) {
    switch (t) {
        case GgufType::U8:
        case GgufType::I8:
        case GgufType::U16:
        case GgufType::I16:
        case GgufType::U32:
        case GgufType::I32:
        case GgufType::U64:
        case GgufType::I64:
            return true;
        default:
            return false;
    }
}

// Token texts llama.cpp treats as ending generation whatever their declared type
// (llama-vocab.cpp keeps this list; it is how chat models' turn-end tokens are found).
constexpr std::array<std::string_view, 22> kEogTexts = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",  // DeepSeek
    "[e~[",
};

// Fill-in-the-middle tokens, found by text when no key names them. All become control tokens;
// the pad/repo/file-separator ones also end generation (they start a new document).
struct FimRole {
    const char* key;
    bool ends_generation;
    std::array<std::string_view, 8> texts;
};
const std::array<FimRole, 6> kFimRoles = {{
    {"tokenizer.ggml.fim_pre_token_id",
     false,
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "▁<PRE>", "<|code_prefix|>",
      "<|prefix|>", "<｜fim▁begin｜>"}},
    {"tokenizer.ggml.fim_suf_token_id",
     false,
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "▁<SUF>", "<|code_suffix|>",
      "<|suffix|>", "<｜fim▁hole｜>"}},
    {"tokenizer.ggml.fim_mid_token_id",
     false,
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "▁<MID>", "<|code_middle|>",
      "<|middle|>", "<｜fim▁end｜>"}},
    {"tokenizer.ggml.fim_pad_token_id",
     true,
     {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
    {"tokenizer.ggml.fim_rep_token_id",
     true,
     {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
    {"tokenizer.ggml.fim_sep_token_id", true, {"<|file_sep|>"}},
}};

}  // namespace

void Vocab::load(const GgufFile& f) {
    const std::string& path = f.path();
    const std::vector<std::string_view> tokens = f.get_string_array("tokenizer.ggml.tokens");
    if (tokens.empty()) fail(path, ": tokenizer.ggml.tokens is missing or empty");
    const size_t n = tokens.size();
    if (n > static_cast<size_t>(INT32_MAX)) fail(path, ": vocab of ", n, " tokens is too large");

    // Scores: float, or integer in a few converted files.
    const GgufValue* sv = f.find("tokenizer.ggml.scores");
    if (sv != nullptr && sv->type == GgufType::ARRAY && is_integer_type(sv->elem_type)) {
        for (const int64_t s : f.get_int_array("tokenizer.ggml.scores"))
            score.push_back(static_cast<float>(s));
    } else {
        score = f.get_float_array("tokenizer.ggml.scores");
    }
    if (score.empty()) score.assign(n, 0.0f);
    if (score.size() < n)
        fail(path, ": tokenizer.ggml.scores has ", score.size(), " entries for ", n, " tokens");

    const std::vector<int64_t> types = f.get_int_array("tokenizer.ggml.token_type");
    if (!types.empty() && types.size() < n)
        fail(path, ": tokenizer.ggml.token_type has ", types.size(), " entries for ", n, " tokens");

    text.resize(n);
    attr.resize(n);
    for (size_t i = 0; i < n; ++i) {
        // llama.cpp names empty tokens so that every token has a distinct text.
        text[i] = tokens[i].empty() ? str_cat("[EMPTY_", i, "]") : std::string(tokens[i]);
        attr[i] = types.empty() ? uint16_t{kAttrNormal} : attr_of_type(types[i]);
    }
    ids.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const auto [it, inserted] = ids.emplace(text[i], static_cast<int32_t>(i));
        if (!inserted)
            fail(path, ": duplicate token '", text[i], "' in vocab (ids ", it->second, " and ", i,
                 ")");
    }

    // Special ids. Keys hold uint32; 0xFFFFFFFF (or a negative int) means "none". Another id
    // outside the vocab is an error for BOS/EOS, which encode() emits; for the others it means
    // none, as llama.cpp only warns about those.
    const auto read_id = [&](const char* key, int32_t fallback, bool strict = false) -> int32_t {
        const std::optional<int64_t> v = f.get_int(key);
        if (!v) return in_range(fallback) ? fallback : -1;
        if (*v < 0 || *v >= 0x7FFFFFFF) return -1;
        if (*v < n_tokens()) return static_cast<int32_t>(*v);
        if (strict) fail(path, ": ", key, " = ", *v, " is outside the vocab of ", n, " tokens");
        return -1;
    };
    // Without keys llama.cpp assumes LLaMA's <unk>=0 <s>=1 </s>=2 for SentencePiece. (For BPE it
    // assumes 11, a punctuation token in GPT-2 vocabs; we assume none instead.)
    const bool spm = kind == VocabKind::Spm;
    bos = read_id("tokenizer.ggml.bos_token_id", spm ? 1 : -1, true);
    eos = read_id("tokenizer.ggml.eos_token_id", spm ? 2 : -1, true);
    unk = read_id("tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
    const int32_t eot = read_id("tokenizer.ggml.eot_token_id", -1);
    const int32_t eom = read_id("tokenizer.ggml.eom_token_id", -1);

    if (const auto v = f.get_bool("tokenizer.ggml.add_bos_token")) add_bos = *v;
    if (const auto v = f.get_bool("tokenizer.ggml.add_eos_token")) add_eos = *v;
    if (add_bos && bos < 0)
        fail(path, ": tokenizer.ggml.add_bos_token is set but there is no BOS token");
    if (add_eos && eos < 0)
        fail(path, ": tokenizer.ggml.add_eos_token is set but there is no EOS token");

    // End-of-generation set and the control tokens found by text, as llama.cpp's vocab loader.
    std::vector<int32_t> eog_ids;
    for (const FimRole& role : kFimRoles) {
        int32_t id = read_id(role.key, -1);
        if (id < 0) {
            for (const std::string_view t : role.texts) {
                if (!t.empty() && (id = find(t)) >= 0) {
                    attr[static_cast<size_t>(id)] |= kAttrControl;
                    break;
                }
            }
        }
        if (id >= 0 && role.ends_generation) eog_ids.push_back(id);
    }
    for (const std::string_view t : kEogTexts) {
        const int32_t id = find(t);
        if (id < 0) continue;
        eog_ids.push_back(id);
        attr[static_cast<size_t>(id)] |= kAttrControl;
    }
    // gpt-oss's message framing tokens are printed, not hidden.
    for (const char* t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
        if (const int32_t id = find(t); id >= 0) attr[static_cast<size_t>(id)] = kAttrUserDefined;
    }
    for (const int32_t id : {eos, eot, eom}) {
        if (id >= 0) eog_ids.push_back(id);
    }
    std::sort(eog_ids.begin(), eog_ids.end());
    eog_ids.erase(std::unique(eog_ids.begin(), eog_ids.end()), eog_ids.end());
    const auto erase_eog = [&](int32_t id, uint16_t new_attr) {
        eog_ids.erase(std::find(eog_ids.begin(), eog_ids.end(), id));
        attr[static_cast<size_t>(id)] = new_attr;
    };
    const auto eog_with_text = [&](std::string_view t) {
        for (const int32_t id : eog_ids) {
            if (text[static_cast<size_t>(id)] == t) return id;
        }
        return -1;
    };
    // Harmony-style vocabs (gpt-oss, solar-open): <|end|> closes a message, not the generation.
    const int32_t end_id = eog_with_text("<|end|>");
    const bool has_call = eog_with_text("<|call|>") >= 0 || eog_with_text("<|calls|>") >= 0;
    if (end_id >= 0 && has_call &&
        (eog_with_text("<|return|>") >= 0 || eog_with_text("<|flush|>") >= 0)) {
        erase_eog(end_id, kAttrUserDefined);
    }
    // Gemma 4 / PaddleOCR: </s> is ordinary text there.
    const int32_t s_id = eog_with_text("</s>");
    if (s_id >= 0 && eog_with_text("<|tool_response>") >= 0) erase_eog(s_id, kAttrNormal);
    eog = std::move(eog_ids);

    for (int32_t id = 0; id < n_tokens(); ++id) {
        if (has(id, kAttrControl | kAttrUserDefined | kAttrUnknown)) special.push_back(id);
    }
    std::stable_sort(special.begin(), special.end(), [&](int32_t a, int32_t b) {
        return text[static_cast<size_t>(a)].size() > text[static_cast<size_t>(b)].size();
    });

    // Phi-3's special tokens swallow the whitespace after them (llama.cpp keys this on the name).
    std::string name(f.get_string("general.name").value_or(""));
    std::transform(name.begin(), name.end(), name.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
        for (const int32_t id : special) attr[static_cast<size_t>(id)] |= kAttrRstrip;
        if (const int32_t id = find("</s>"); id >= 0) attr[static_cast<size_t>(id)] |= kAttrRstrip;
        for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) {
            if (const int32_t id = find(t); id >= 0)
                attr[static_cast<size_t>(id)] &= static_cast<uint16_t>(~kAttrRstrip);
        }
    }

    if (const auto t = f.get_string("tokenizer.chat_template")) chat_template = std::string(*t);
}

std::vector<Fragment> Vocab::partition(std::string_view s, bool parse_special) const {
    std::vector<Fragment> frags;
    if (s.empty()) return frags;
    frags.push_back({-1, 0, s.size()});
    const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };

    std::vector<Fragment> next;
    for (const int32_t id : special) {
        const uint16_t a = attr[static_cast<size_t>(id)];
        if (!parse_special && (a & (kAttrControl | kAttrUnknown)) != 0) continue;
        const std::string& t = text[static_cast<size_t>(id)];
        next.clear();
        for (const Fragment& frag : frags) {
            if (frag.token >= 0) {
                next.push_back(frag);
                continue;
            }
            size_t off = frag.offset;
            size_t end = frag.offset + frag.length;
            while (off < end) {
                const size_t m = s.substr(0, end).find(t, off);
                if (m == std::string_view::npos) {
                    next.push_back({-1, off, end - off});
                    break;
                }
                size_t left_end = m;
                if (a & kAttrLstrip) {
                    while (left_end > off && is_space(s[left_end - 1])) --left_end;
                }
                if (left_end > off) next.push_back({-1, off, left_end - off});
                next.push_back({id, 0, 0});
                off = m + t.size();
                if (a & kAttrRstrip) {
                    while (off < end && is_space(s[off])) ++off;
                }
            }
        }
        frags.swap(next);
    }
    return frags;
}

bool Vocab::special_piece(int32_t id, bool render_special, std::string& out) const {
    const uint16_t a = attr[static_cast<size_t>(id)];
    if (a & (kAttrControl | kAttrUnknown)) {
        out = render_special ? text[static_cast<size_t>(id)] : std::string();
        return true;
    }
    if (a & kAttrUserDefined) {
        out = text[static_cast<size_t>(id)];
        return true;
    }
    if (a & (kAttrNormal | kAttrByte)) return false;
    out.clear();  // unused and undefined tokens spell nothing
    return true;
}

}  // namespace mllm::tokenizer_detail
