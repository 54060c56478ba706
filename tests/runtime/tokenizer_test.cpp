// Tokenizers against llama.cpp's own outputs: the vocab test vectors of llama.cpp's
// test-tokenizer-0, the reference pack's tokenizations of text.txt and of its prompt, and the
// streaming/UTF-8 helpers.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/gguf/gguf_reader.h"
#include "core/gguf/gguf_writer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/support/test_env.h"

namespace mllm {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::unique_ptr<Tokenizer> load(const std::string& relative) {
    return Tokenizer::from_gguf(*GgufFile::open(test::shared_path(relative)));
}

std::vector<int32_t> parse_ids(const std::string& s) {
    std::vector<int32_t> ids;
    std::string cleaned = s;
    for (char& c : cleaned) {
        if (c == '[' || c == ']' || c == ',') c = ' ';
    }
    std::istringstream in(cleaned);
    for (int32_t id; in >> id;) ids.push_back(id);
    return ids;
}

// llama.cpp's test-tokenizer-0 reads <vocab>.inp as inputs separated by "\n__ggml_vocab_test__\n"
// (so an input keeps its own leading and trailing newlines) and <vocab>.out as one line of ids
// per input; it tokenizes with add_special = false and parse_special = false.
struct VocabCase {
    std::string text;
    std::vector<int32_t> ids;
};

std::vector<VocabCase> read_vocab_cases(const std::string& vocab) {
    const std::string inp = read_file(test::shared_path("models/vocab/" + vocab + ".inp"));
    const std::string out = read_file(test::shared_path("models/vocab/" + vocab + ".out"));
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> inputs;
    for (size_t pos = 0; pos < inp.size();) {
        const size_t next = inp.find(sep, pos);
        if (next == std::string::npos) {
            inputs.push_back(inp.substr(pos));
            break;
        }
        inputs.push_back(inp.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::vector<std::string> lines;
    std::istringstream out_lines(out);
    for (std::string line; std::getline(out_lines, line);) lines.push_back(line);
    if (inputs.size() != lines.size()) throw std::runtime_error(vocab + ": .inp/.out mismatch");
    std::vector<VocabCase> cases;
    for (size_t i = 0; i < inputs.size(); ++i) cases.push_back({inputs[i], parse_ids(lines[i])});
    return cases;
}

std::string ids_string(const std::vector<int32_t>& ids) {
    std::string s;
    for (const int32_t id : ids) s += std::to_string(id) + " ";
    return s;
}

class TokenizerVocabVectors : public testing::TestWithParam<std::string> {};

TEST_P(TokenizerVocabVectors, MatchLlamaCppExactly) {
    const std::string vocab = GetParam();
    const auto tok = load("models/vocab/" + vocab);
    const std::vector<VocabCase> cases = read_vocab_cases(vocab);
    ASSERT_EQ(cases.size(), 46u);
    for (const VocabCase& c : cases) {
        const std::vector<int32_t> got = tok->encode(c.text, false, false);
        EXPECT_EQ(ids_string(got), ids_string(c.ids)) << "input: '" << c.text << "'";
        // Byte fallback (SentencePiece) and byte-level BPE both spell any valid UTF-8 exactly.
        EXPECT_EQ(tok->decode(got), c.text);
    }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, TokenizerVocabVectors,
                         testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf",
                                         "ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.gguf",
                                         "ggml-vocab-qwen2.gguf"),
                         [](const testing::TestParamInfo<std::string>& p) {
                             std::string name = p.param.substr(11);  // after "ggml-vocab-"
                             name = name.substr(0, name.find('.'));
                             for (char& c : name) {
                                 if (c == '-') c = '_';
                             }
                             return name;
                         });

// llama.cpp's ids for all of text.txt with add_special (BOS where the vocab adds it).
class TokenizerRefText : public testing::TestWithParam<std::string> {};

TEST_P(TokenizerRefText, MatchLlamaCppExactly) {
    const std::string model = GetParam();
    const auto tok = load("models/ref/" + model + ".gguf");
    const std::string stem = model.substr(0, model.rfind('.'));
    const std::vector<int32_t> expected =
        parse_ids(read_file(test::shared_path("models/ref/" + stem + ".text.tokens")));
    const std::string text = read_file(test::shared_path("models/ref/text.txt"));
    const std::vector<int32_t> got = tok->encode(text, true, false);
    ASSERT_FALSE(expected.empty());
    EXPECT_EQ(ids_string(got), ids_string(expected));
    EXPECT_EQ(tok->decode(got), text);
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerRefText,
                         testing::Values("ref-llama-spm.f32", "ref-smollm-bpe.f16",
                                         "ref-qwen2-bpe.f16"),
                         [](const testing::TestParamInfo<std::string>& p) {
                             std::string name = p.param.substr(4);
                             for (char& c : name) {
                                 if (c == '-' || c == '.') c = '_';
                             }
                             return name;
                         });

TEST(TokenizerReference, PromptTokensOfEveryReferenceModel) {
    const auto ref =
        nlohmann::json::parse(read_file(test::shared_path("models/ref/reference.json")));
    const std::string default_prompt = ref.at("prompt").get<std::string>();
    ASSERT_GE(ref.at("models").size(), 3u);
    for (const auto& [file, entry] : ref.at("models").items()) {
        const std::string prompt = entry.value("prompt", default_prompt);
        const auto tok = load("models/ref/" + file);
        const std::vector<int32_t> expected = entry.at("prompt_tokens").get<std::vector<int32_t>>();
        EXPECT_EQ(ids_string(tok->encode(prompt, true, false)), ids_string(expected)) << file;
    }
}

TEST(TokenizerReference, TrainedModelGreedyTokensDecode) {
    const auto ref =
        nlohmann::json::parse(read_file(test::shared_path("models/ref/reference.json")));
    const auto ids = ref.at("models").at("../aidreams260K.gguf").at("greedy_tokens");
    const auto tok = load("models/aidreams260K.gguf");
    EXPECT_EQ(tok->n_vocab(), 512);
    EXPECT_EQ(tok->bos_id(), 1);
    EXPECT_EQ(tok->eos_id(), 2);
    EXPECT_TRUE(tok->adds_bos());
    // The first token is "▁\"": decode() drops the space prefix, token_to_piece keeps it.
    const std::vector<int32_t> generated = ids.get<std::vector<int32_t>>();
    EXPECT_EQ(tok->token_to_piece(generated.at(0)), " \"");
    const std::string text = tok->decode(generated);
    EXPECT_EQ(text.rfind("\"Echoes of vectors unfold, a gentle hum of precision,", 0), 0u) << text;
    EXPECT_EQ(tok->encode("", true, false), std::vector<int32_t>{1});
}

TEST(TokenizerPieces, SentencePiece) {
    const auto tok = load("models/vocab/ggml-vocab-llama-spm.gguf");
    EXPECT_EQ(tok->token_to_piece(tok->find_token("\xE2\x96\x81the")), " the");
    EXPECT_EQ(tok->token_to_piece(tok->find_token("<0x0A>")), "\n");
    EXPECT_EQ(tok->token_to_piece(tok->bos_id()), "");
    EXPECT_EQ(tok->token_to_piece(tok->bos_id(), true), "<s>");
    EXPECT_EQ(tok->token_to_piece(-1), "");
    EXPECT_EQ(tok->token_to_piece(tok->n_vocab()), "");
    EXPECT_THROW(tok->token_text(tok->n_vocab()), Error);
    EXPECT_TRUE(tok->is_end_of_generation(tok->eos_id()));
    EXPECT_FALSE(tok->is_end_of_generation(tok->bos_id()));
    EXPECT_FALSE(tok->is_end_of_generation(tok->n_vocab() + 5));
    // BOS and EOS only with add_special; the space prefix comes back off in decode().
    const std::vector<int32_t> ids = tok->encode("Hello world", true, false);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ(tok->decode(ids), "Hello world");
    EXPECT_FALSE(tok->chat_template().has_value());
}

TEST(TokenizerPieces, ByteLevelBpe) {
    const auto tok = load("models/vocab/ggml-vocab-qwen2.gguf");
    EXPECT_EQ(tok->n_vocab(), 151669);
    EXPECT_FALSE(tok->adds_bos());
    EXPECT_EQ(tok->token_to_piece(tok->find_token("\xC4\xA0the")), " the");  // "Ġthe"
    EXPECT_EQ(tok->token_to_piece(tok->find_token("\xC4\x8A")), "\n");       // "Ċ"
    const int32_t im_start = tok->find_token("<|im_start|>");
    const int32_t im_end = tok->find_token("<|im_end|>");
    ASSERT_GE(im_start, 0);
    ASSERT_GE(im_end, 0);
    EXPECT_EQ(tok->token_to_piece(im_end), "");
    EXPECT_EQ(tok->token_to_piece(im_end, true), "<|im_end|>");
    EXPECT_TRUE(tok->is_end_of_generation(im_end));
    EXPECT_TRUE(tok->is_end_of_generation(tok->find_token("<|endoftext|>")));
    EXPECT_FALSE(tok->is_end_of_generation(im_start));
    EXPECT_FALSE(tok->is_end_of_generation(tok->find_token("\xC4\xA0the")));
    // The model's padded output rows (151669..151935) spell nothing.
    EXPECT_EQ(tok->token_to_piece(151900), "");
}

TEST(TokenizerSpecial, ParseSpecialSplitsControlTokens) {
    const auto tok = load("models/vocab/ggml-vocab-qwen2.gguf");
    const std::string chat = "<|im_start|>user\nHi<|im_end|>\n";
    const int32_t im_start = tok->find_token("<|im_start|>");
    const int32_t im_end = tok->find_token("<|im_end|>");
    const std::vector<int32_t> parsed = tok->encode(chat, false, true);
    ASSERT_GE(parsed.size(), 4u);
    EXPECT_EQ(parsed.front(), im_start);
    EXPECT_NE(std::find(parsed.begin(), parsed.end(), im_end), parsed.end());
    EXPECT_EQ(tok->decode(parsed, true), chat);
    EXPECT_EQ(tok->decode(parsed, false), "user\nHi\n");
    // Without parse_special the markers are plain text.
    const std::vector<int32_t> plain = tok->encode(chat, false, false);
    EXPECT_EQ(std::find(plain.begin(), plain.end(), im_start), plain.end());
    EXPECT_EQ(tok->decode(plain), chat);
}

TEST(TokenizerSpecial, SentencePieceControlTokenAndSpacePrefix) {
    const auto tok = load("models/vocab/ggml-vocab-llama-spm.gguf");
    // As llama.cpp: text right after a special token gets the space prefix again.
    const std::vector<int32_t> a = tok->encode("</s>Hi", false, true);
    const std::vector<int32_t> b = tok->encode("Hi", false, false);
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(a.front(), tok->eos_id());
    EXPECT_EQ(std::vector<int32_t>(a.begin() + 1, a.end()), b);
    EXPECT_NE(tok->encode("</s>", false, false).front(), tok->eos_id());
}

TEST(TokenizerLoad, Qwen2VocabLoadsQuickly) {
    const auto file = GgufFile::open(test::shared_path("models/vocab/ggml-vocab-qwen2.gguf"));
    const auto t0 = std::chrono::steady_clock::now();
    const auto tok = Tokenizer::from_gguf(*file);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    RecordProperty("load_seconds", std::to_string(s));
    // Well under a second in Release; the bound leaves room for sanitizer and debug builds.
    EXPECT_LT(s, 3.0);
    EXPECT_EQ(tok->n_vocab(), 151669);
}

// A vocab-only GGUF in memory, for the error paths.
std::shared_ptr<const GgufFile> tiny_vocab(const std::string& model, const std::string& pre,
                                           int64_t bos = -1) {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    if (!model.empty()) w.set_string("tokenizer.ggml.model", model);
    if (!pre.empty()) w.set_string("tokenizer.ggml.pre", pre);
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab", "<s>"});
    w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1, 3});
    w.set_f32_array("tokenizer.ggml.scores", {0, 0, 1, 0});
    w.set_string_array("tokenizer.ggml.merges", {"a b"});
    if (bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
    w.set_bool("tokenizer.ggml.add_space_prefix", false);
    const std::vector<uint8_t> bytes = w.to_bytes();
    return GgufFile::parse(bytes.data(), bytes.size(), "tiny.gguf");
}

void expect_error_mentioning(const std::shared_ptr<const GgufFile>& f, const std::string& what) {
    try {
        Tokenizer::from_gguf(*f);
        ADD_FAILURE() << "no error; expected one mentioning " << what;
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
}

TEST(TokenizerLoad, ClearErrors) {
    expect_error_mentioning(tiny_vocab("", ""), "tokenizer.ggml.model is missing");
    expect_error_mentioning(tiny_vocab("wordpiece-9000", ""),
                            "unsupported tokenizer model 'wordpiece-9000'");
    expect_error_mentioning(tiny_vocab("gpt2", "no-such-pre"),
                            "unsupported BPE pre-tokenizer 'no-such-pre'");
    expect_error_mentioning(tiny_vocab("llama", "", 7), "bos_token_id = 7 is outside the vocab");
}

TEST(TokenizerLoad, TinyVocabsWork) {
    const auto spm = Tokenizer::from_gguf(*tiny_vocab("llama", "", 3));
    EXPECT_EQ(spm->encode("ab", false, false), (std::vector<int32_t>{2}));
    EXPECT_EQ(spm->encode("ab", true, false), (std::vector<int32_t>{3, 2}));
    const auto bpe = Tokenizer::from_gguf(*tiny_vocab("gpt2", "gpt-2"));
    EXPECT_EQ(bpe->encode("abba", false, false), (std::vector<int32_t>{2, 1, 0}));
    EXPECT_EQ(bpe->bos_id(), -1);
    EXPECT_FALSE(bpe->adds_bos());
}

TEST(Utf8StreamBuffer, HoldsCharactersSplitAcrossByteTokens) {
    // The 512-token vocab has no token for these characters: they become byte tokens.
    const auto tok = load("models/ref/ref-llama-spm.f32.gguf");
    const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80!";  // "café € 😀!"
    const std::vector<int32_t> ids = tok->encode(text, false, false);
    Utf8StreamBuffer buf;
    std::string all;
    int held = 0;
    for (const int32_t id : ids) {
        const std::string piece = tok->token_to_piece(id);
        const std::string out = buf.push(piece);
        EXPECT_TRUE(is_valid_utf8(out)) << "piece of token " << id;
        if (out.size() < piece.size()) ++held;
        all += out;
    }
    all += buf.flush();
    EXPECT_GT(held, 0);
    EXPECT_EQ(all, " " + text);
}

TEST(Utf8StreamBuffer, ReplacesBrokenSequences) {
    Utf8StreamBuffer buf;
    EXPECT_EQ(buf.push("a\xE2\x82"), "a");
    EXPECT_EQ(buf.push("\xAC"), "\xE2\x82\xAC");
    EXPECT_EQ(buf.push("\xE2\x82"
                       "b"),
              "\xEF\xBF\xBD"
              "b");                               // cut short: U+FFFD, then b
    EXPECT_EQ(buf.push("\x80"), "\xEF\xBF\xBD");  // stray continuation byte
    EXPECT_EQ(buf.push("\xF0\x9F"), "");
    EXPECT_EQ(buf.flush(), "\xEF\xBF\xBD");
    EXPECT_EQ(buf.flush(), "");
    EXPECT_EQ(buf.push("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

TEST(Utf8Validation, StrictUtf8) {
    EXPECT_TRUE(is_valid_utf8(""));
    EXPECT_TRUE(is_valid_utf8("plain ascii"));
    EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
    EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated
    EXPECT_FALSE(is_valid_utf8("\x80"));              // stray continuation
    EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate U+D800
    EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xFF"));
    EXPECT_EQ(first_invalid_utf8("ok \xC3\xA9 \xE2\x82 x"), 6u);
    EXPECT_EQ(first_invalid_utf8("fine"), 4u);
}

}  // namespace
}  // namespace mllm
