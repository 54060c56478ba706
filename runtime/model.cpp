#include "runtime/model.h"

#include "core/error.h"

namespace mllm {

std::shared_ptr<const Model> load_model(const std::string& path) {
    auto model = std::make_shared<Model>();
    model->file = GgufFile::open(path);
    model->config = graph::read_model_config(*model->file);
    // After the checks, so a bad file fails fast; the weights are then read in place.
    model->file->populate();
    model->tokenizer = Tokenizer::from_gguf(*model->file);
    // The embedding may have padding rows past the vocabulary (Qwen2: 151936 rows, 151669
    // tokens), never fewer rows than tokens.
    if (model->tokenizer->n_vocab() > model->config.n_vocab)
        fail(path, ": the vocabulary has ", model->tokenizer->n_vocab(),
             " tokens but token_embd.weight only ", model->config.n_vocab, " rows");
    return model;
}

}  // namespace mllm
