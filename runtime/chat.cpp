#include "runtime/chat.h"

#include <iostream>

#include "core/error.h"

namespace mllm {

ChatFormat detect_chat_format(std::optional<std::string_view> t) {
    if (!t) return ChatFormat::ChatMl;
    auto has = [&](std::string_view s) { return t->find(s) != std::string_view::npos; };
    if (has("<|im_start|>")) return ChatFormat::ChatMl;
    if (has("<|start_header_id|>")) return ChatFormat::Llama3;
    if (has("<start_of_turn>")) return ChatFormat::Gemma;
    if (has("<|user|>") && has("<|end|>")) return ChatFormat::Phi3;
    if (has("<|user|>")) return ChatFormat::Zephyr;
    if (has("[INST]")) return ChatFormat::Llama2;
    return ChatFormat::ChatMl;
}

std::string format_chat(ChatFormat format, const std::vector<ChatMessage>& messages,
                        bool add_assistant) {
    std::string out;
    switch (format) {
        case ChatFormat::ChatMl:
            for (const auto& m : messages)
                out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
            if (add_assistant) out += "<|im_start|>assistant\n";
            break;
        case ChatFormat::Llama3:
            for (const auto& m : messages)
                out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content +
                       "<|eot_id|>";
            if (add_assistant) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            break;
        case ChatFormat::Gemma:
            for (const auto& m : messages) {
                const std::string role = m.role == "assistant" ? "model" : "user";
                out += "<start_of_turn>" + role + "\n" + m.content + "<end_of_turn>\n";
            }
            if (add_assistant) out += "<start_of_turn>model\n";
            break;
        case ChatFormat::Phi3:
            for (const auto& m : messages) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
            if (add_assistant) out += "<|assistant|>\n";
            break;
        case ChatFormat::Zephyr:
            for (const auto& m : messages) out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
            if (add_assistant) out += "<|assistant|>\n";
            break;
        case ChatFormat::Llama2: {
            // [INST] <<SYS>> system <</SYS>> user [/INST] answer </s><s>[INST] ...
            std::string system;
            for (const auto& m : messages) {
                if (m.role == "system") {
                    system = "<<SYS>>\n" + m.content + "\n<</SYS>>\n\n";
                } else if (m.role == "user") {
                    out += "[INST] " + system + m.content + " [/INST]";
                    system.clear();
                } else {
                    out += " " + m.content + " </s><s>";
                }
            }
            break;
        }
    }
    return out;
}

int run_chat(Session& session, Sampler& sampler, const GenerateOptions& options,
             const std::string& system, std::istream& in, std::ostream& out) {
    const Tokenizer& tok = *session.model().tokenizer;
    const ChatFormat format = detect_chat_format(tok.chat_template());
    std::vector<ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    std::string formatted;  // what the session's context already holds, as text
    std::string line;
    out << "> " << std::flush;
    while (std::getline(in, line)) {
        if (line == "/exit") break;
        if (!is_valid_utf8(line)) {
            out << "(input is not valid UTF-8; try again)\n> " << std::flush;
            continue;
        }
        messages.push_back({"user", line});
        std::vector<int32_t> tokens;
        for (int attempt = 0; attempt < 2; ++attempt) {
            const std::string full = format_chat(format, messages, true);
            // Only the new text goes through the model; the context already holds the rest.
            tokens = tok.encode(full.substr(formatted.size()), formatted.empty(), true);
            formatted = full;
            if (session.n_past() + static_cast<int64_t>(tokens.size()) < session.n_ctx()) break;
            // Out of room: start over with the system message and this question alone.
            tokens.clear();
            session.reset();
            sampler.reset();
            formatted.clear();
            messages.erase(messages.begin() + (system.empty() ? 0 : 1), messages.end() - 1);
        }
        if (tokens.empty()) {
            out << "(that message does not fit the context; raise -c)\n> " << std::flush;
            messages.pop_back();
            continue;
        }
        const GenerateResult r =
            generate(session, sampler, tokens, options, [&](std::string_view piece) {
                out << piece << std::flush;
                return true;
            });
        out << "\n> " << std::flush;
        messages.push_back({"assistant", r.text});
        // The context now holds the prompt and the reply; the next turn's template text goes on
        // from there (closing this turn, opening the next).
        formatted += r.text;
    }
    return 0;
}

}  // namespace mllm
