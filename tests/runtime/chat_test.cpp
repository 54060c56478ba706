// Chat templates and the interactive loop.
#include <gtest/gtest.h>

#include <sstream>

#include "runtime/chat.h"
#include "tests/support/test_env.h"

namespace mllm {
namespace {

TEST(ChatTemplate, DetectsFamiliesByTheirMarkers) {
    EXPECT_EQ(detect_chat_format(std::nullopt), ChatFormat::ChatMl);
    EXPECT_EQ(detect_chat_format("{% for m in messages %}<|im_start|>{{ m.role }}"),
              ChatFormat::ChatMl);
    EXPECT_EQ(detect_chat_format("<|start_header_id|>{{ role }}<|end_header_id|>"),
              ChatFormat::Llama3);
    EXPECT_EQ(detect_chat_format("<start_of_turn>user"), ChatFormat::Gemma);
    EXPECT_EQ(detect_chat_format("<|user|>{{ content }}<|end|>"), ChatFormat::Phi3);
    EXPECT_EQ(detect_chat_format("<|user|>{{ content }}</s>"), ChatFormat::Zephyr);
    EXPECT_EQ(detect_chat_format("[INST] {{ content }} [/INST]"), ChatFormat::Llama2);
    EXPECT_EQ(detect_chat_format("something else"), ChatFormat::ChatMl);
}

TEST(ChatTemplate, FormatsChatMlAndLlama2) {
    const std::vector<ChatMessage> m = {
        {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
    EXPECT_EQ(format_chat(ChatFormat::ChatMl, m, true),
              "<|im_start|>system\nBe "
              "brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
              "Hello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(format_chat(ChatFormat::Llama2, m, true),
              "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]");
    // A conversation's text only grows turn by turn, so the session can feed just the new part.
    const std::vector<ChatMessage> first(m.begin(), m.begin() + 2);
    const std::string before = format_chat(ChatFormat::ChatMl, first, true) + "Hello";
    EXPECT_EQ(format_chat(ChatFormat::ChatMl, m, true).rfind(before, 0), 0u);
}

TEST(ChatLoop, AnswersEachLineAndKeepsTheContext) {
    auto model = load_model(test::shared_path("models/ref/ref-qwen2-bpe.f16.gguf"));
    SessionOptions o;
    o.n_ctx = 256;
    Session session(model, o);
    SamplerParams sp;
    sp.temperature = 0;
    Sampler sampler(sp);
    GenerateOptions go;
    go.n_predict = 5;
    std::istringstream in("hello\nwhat next\n/exit\nnever read\n");
    std::ostringstream out;
    EXPECT_EQ(run_chat(session, sampler, go, "You are terse.", in, out), 0);
    const std::string text = out.str();
    EXPECT_EQ(std::count(text.begin(), text.end(), '>'), 3)
        << text;  // a prompt per turn and the last
    // Both turns are in the context: the second one continued the first.
    EXPECT_GT(session.n_past(), 20);
}

TEST(ChatLoop, StartsOverWhenTheContextIsFull) {
    auto model = load_model(test::shared_path("models/ref/ref-qwen2-bpe.f16.gguf"));
    SessionOptions o;
    o.n_ctx = 48;
    Session session(model, o);
    SamplerParams sp;
    sp.temperature = 0;
    Sampler sampler(sp);
    GenerateOptions go;
    go.n_predict = 8;
    std::string lines;
    for (int i = 0; i < 6; ++i) lines += "tell me more about it\n";
    std::istringstream in(lines);
    std::ostringstream out;
    EXPECT_EQ(run_chat(session, sampler, go, "", in, out), 0);
    EXPECT_LE(session.n_past(), 48);
}

}  // namespace
}  // namespace mllm
