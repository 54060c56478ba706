#pragma once
// Token sampler: turns one step's logits into a token id.
//
// temperature <= 0 is greedy: the highest logit wins, the lowest id on ties. Otherwise the
// stages run in llama.cpp's default order, each on what the one before left:
//   repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw from the softmax.
// So top-p and min-p see the probabilities at temperature 1, as in llama.cpp. The repetition
// penalty also applies before a greedy pick (llama.cpp does the same with --temp 0).
//
// Determinism: the draw uses std::mt19937_64 seeded with `seed` (whose output the C++ standard
// fixes) and turns its 64-bit words into doubles without a standard-library distribution, so the
// same seed, logits and accepted tokens give the same token sequence on every platform and
// standard library. reset() restarts the generator from the same seed.
#include <cstdint>
#include <random>
#include <vector>

namespace mllm {

struct SamplerParams {
    // seed value that asks for a fresh seed from std::random_device (Sampler::seed() reports it).
    static constexpr uint64_t kRandomSeed = ~uint64_t{0};

    float temperature = 0.8f;     // <= 0: greedy
    int top_k = 40;               // 0: off; otherwise keep the k highest logits
    float top_p = 0.95f;          // in (0, 1]; 1: off
    float min_p = 0.05f;          // in [0, 1]; 0: off; keep p >= min_p * max p
    float repeat_penalty = 1.0f;  // > 0; 1: off
    int repeat_last_n = 64;       // >= 0; how many accepted tokens the penalty looks back over
    uint64_t seed = kRandomSeed;
};

class Sampler {
  public:
    // Throws mllm::Error naming the parameter when one is out of range.
    explicit Sampler(SamplerParams params);

    // Picks a token from logits[0 .. n_vocab). Does not record it: call accept() with the token
    // the caller keeps (the prompt's tokens too, so the repetition penalty sees them).
    int32_t sample(const float* logits, int32_t n_vocab);
    void accept(int32_t token);
    // Forgets accepted tokens and restarts the random generator from the seed.
    void reset();

    const SamplerParams& params() const { return params_; }
    // Whether sample() is the plain argmax of the logits (greedy without a repetition penalty),
    // which Session::eval_greedy computes on the device.
    bool plain_greedy() const {
        return params_.temperature <= 0.0f &&
               (params_.repeat_penalty == 1.0f || params_.repeat_last_n == 0);
    }
    uint64_t seed() const { return seed_; }  // the seed in use (drawn if kRandomSeed was asked)

  private:
    struct Candidate {
        float logit;
        int32_t id;
        float weight;  // unnormalized probability, filled by the stages that need it
    };
    void apply_repeat_penalty(int32_t n_vocab);
    int32_t greedy(int32_t n_vocab) const;
    int32_t draw(size_t n);

    SamplerParams params_;
    uint64_t seed_;
    std::mt19937_64 rng_;
    std::vector<Candidate> cand_;     // reused every call
    std::vector<int32_t> history_;    // ring of the last repeat_last_n accepted tokens
    size_t history_next_ = 0;         // where the next accepted token goes once the ring is full
    std::vector<int32_t> penalized_;  // scratch: distinct tokens of history_
};

}  // namespace mllm
