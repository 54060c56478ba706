#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace mllm {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

SamplerParams validated(SamplerParams p) {
    if (!std::isfinite(p.temperature))
        fail("sampler: temperature must be a finite number (<= 0 for greedy), got ", p.temperature);
    if (p.top_k < 0) fail("sampler: top_k must be >= 0 (0 turns it off), got ", p.top_k);
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
        fail("sampler: top_p must be in (0, 1] (1 turns it off), got ", p.top_p);
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
        fail("sampler: min_p must be in [0, 1] (0 turns it off), got ", p.min_p);
    if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
        fail("sampler: repeat_penalty must be a positive finite number (1 turns it off), got ",
             p.repeat_penalty);
    if (p.repeat_last_n < 0)
        fail("sampler: repeat_last_n must be >= 0 (0 turns the penalty off), got ",
             p.repeat_last_n);
    return p;
}

uint64_t resolve_seed(uint64_t seed) {
    if (seed != SamplerParams::kRandomSeed) return seed;
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

Sampler::Sampler(SamplerParams params)
    : params_(validated(params)), seed_(resolve_seed(params.seed)), rng_(seed_) {
    // The ring grows to repeat_last_n on its own; reserving a bounded part avoids early regrowth.
    history_.reserve(std::min<size_t>(static_cast<size_t>(params_.repeat_last_n), 4096));
}

void Sampler::accept(int32_t token) {
    const auto window = static_cast<size_t>(params_.repeat_last_n);
    if (window == 0) return;
    if (history_.size() < window) {
        history_.push_back(token);
    } else {
        history_[history_next_] = token;
        history_next_ = (history_next_ + 1) % window;
    }
}

void Sampler::reset() {
    history_.clear();
    history_next_ = 0;
    rng_.seed(seed_);
}

// Each distinct token among the last repeat_last_n accepted is penalized once, as llama.cpp
// does: a positive logit is divided by the penalty, a zero or negative one multiplied.
void Sampler::apply_repeat_penalty(int32_t n_vocab) {
    if (params_.repeat_penalty == 1.0f || history_.empty()) return;
    penalized_.assign(history_.begin(), history_.end());
    std::sort(penalized_.begin(), penalized_.end());
    penalized_.erase(std::unique(penalized_.begin(), penalized_.end()), penalized_.end());
    for (int32_t t : penalized_) {
        if (t < 0 || t >= n_vocab) continue;
        float& l = cand_[static_cast<size_t>(t)].logit;  // cand_ is still indexed by id here
        l = l <= 0.0f ? l * params_.repeat_penalty : l / params_.repeat_penalty;
    }
}

int32_t Sampler::greedy(int32_t n_vocab) const {
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; ++i)
        if (cand_[static_cast<size_t>(i)].logit > cand_[static_cast<size_t>(best)].logit) best = i;
    return best;
}

// Draws from the softmax of logit / temperature over cand_[0 .. n).
int32_t Sampler::draw(size_t n) {
    size_t top = 0;
    for (size_t i = 1; i < n; ++i)
        if (cand_[i].logit > cand_[top].logit ||
            (cand_[i].logit == cand_[top].logit && cand_[i].id < cand_[top].id))
            top = i;
    const float max = cand_[top].logit;
    if (!std::isfinite(max)) return cand_[top].id;  // everything masked, or an infinite logit

    const float inv_t = 1.0f / params_.temperature;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) {
        cand_[i].weight = std::exp((cand_[i].logit - max) * inv_t);
        sum += cand_[i].weight;
    }
    // 53 random bits -> a double in [0, 1); the standard distributions are not portable.
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    const double target = u * sum;
    double cum = 0.0;
    for (size_t i = 0; i < n; ++i) {
        cum += cand_[i].weight;
        if (target < cum) return cand_[i].id;
    }
    return cand_[top].id;  // only reachable through rounding in the running sum
}

int32_t Sampler::sample(const float* logits, int32_t n_vocab) {
    if (logits == nullptr || n_vocab <= 0)
        fail("sampler: sample() needs logits for a vocabulary of at least one token, got ",
             n_vocab);
    const auto nv = static_cast<size_t>(n_vocab);
    cand_.resize(nv);  // keeps its capacity: no allocation once the largest vocabulary was seen
    for (size_t i = 0; i < nv; ++i) {
        const float l = logits[i];
        cand_[i] = Candidate{std::isnan(l) ? kNegInf : l, static_cast<int32_t>(i), 0.0f};
    }
    apply_repeat_penalty(n_vocab);
    if (params_.temperature <= 0.0f) return greedy(n_vocab);

    // Highest logit first, lowest id first among equals: a total order, so results never depend
    // on how the standard library breaks ties.
    const auto higher = [](const Candidate& a, const Candidate& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    };
    size_t n = nv;
    bool sorted = false;

    if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
        const auto k = static_cast<size_t>(params_.top_k);
        std::partial_sort(cand_.begin(), cand_.begin() + static_cast<ptrdiff_t>(k), cand_.end(),
                          higher);
        n = k;
        sorted = true;
    }

    if (params_.top_p < 1.0f) {
        if (!sorted) std::sort(cand_.begin(), cand_.begin() + static_cast<ptrdiff_t>(n), higher);
        sorted = true;
        const float max = cand_[0].logit;
        if (!std::isfinite(max)) return cand_[0].id;
        double sum = 0.0;
        for (size_t i = 0; i < n; ++i) {
            cand_[i].weight = std::exp(cand_[i].logit - max);
            sum += cand_[i].weight;
        }
        // Keep the shortest prefix whose probability reaches top_p (at least one token).
        const double want = static_cast<double>(params_.top_p) * sum;
        double cum = 0.0;
        for (size_t i = 0; i < n; ++i) {
            cum += cand_[i].weight;
            if (cum >= want) {
                n = i + 1;
                break;
            }
        }
    }

    if (params_.min_p > 0.0f) {
        // p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p); the max always stays.
        float max = cand_[0].logit;
        if (!sorted)
            for (size_t i = 1; i < n; ++i) max = std::max(max, cand_[i].logit);
        const float threshold = max + std::log(params_.min_p);
        size_t kept = 0;
        for (size_t i = 0; i < n; ++i)
            if (cand_[i].logit >= threshold) cand_[kept++] = cand_[i];
        n = kept;
    }

    return draw(n);
}

}  // namespace mllm
