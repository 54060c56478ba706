#pragma once
// Chat: formats a conversation with the model's template (tokenizer.chat_template) and runs an
// interactive loop over it.
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/generate.h"

namespace mllm {

struct ChatMessage {
    std::string role;  // system | user | assistant
    std::string content;
};

// Template families recognised from the Jinja text a GGUF carries (as llama.cpp does, by their
// marker tokens rather than by running Jinja). Unknown or missing templates use ChatML.
enum class ChatFormat { ChatMl, Llama2, Llama3, Zephyr, Phi3, Gemma };
ChatFormat detect_chat_format(std::optional<std::string_view> jinja_template);

// The prompt text for `messages`, ending with the assistant's turn opener when add_assistant.
std::string format_chat(ChatFormat format, const std::vector<ChatMessage>& messages,
                        bool add_assistant);

// Reads user lines from `in` until EOF or "/exit", answers each on `out`.
int run_chat(Session& session, Sampler& sampler, const GenerateOptions& options,
             const std::string& system, std::istream& in, std::ostream& out);

}  // namespace mllm
