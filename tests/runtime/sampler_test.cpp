#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace mllm {
namespace {

SamplerParams no_filters(float temperature, uint64_t seed) {
    SamplerParams p;
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.seed = seed;
    return p;
}

std::vector<float> softmax(const std::vector<float>& logits, float temperature) {
    float max = logits[0];
    for (float l : logits) max = std::max(max, l);
    std::vector<float> p(logits.size());
    double sum = 0;
    for (size_t i = 0; i < logits.size(); ++i)
        sum += p[i] = std::exp((logits[i] - max) / temperature);
    for (float& x : p) x = static_cast<float>(x / sum);
    return p;
}

std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int draws) {
    std::vector<int> counts(logits.size(), 0);
    for (int i = 0; i < draws; ++i)
        ++counts.at(
            static_cast<size_t>(s.sample(logits.data(), static_cast<int32_t>(logits.size()))));
    return counts;
}

// Pearson's chi-square statistic of observed counts against expected probabilities.
double chi_square(const std::vector<int>& counts, const std::vector<float>& probs, int draws) {
    double chi2 = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
        const double expected = static_cast<double>(probs[i]) * draws;
        if (expected == 0) {
            EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0 but was drawn";
            continue;
        }
        chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    return chi2;
}

const std::vector<float> kLogits = {1.0f, 3.5f, -2.0f, 0.5f, 3.0f, 2.0f, -0.5f, 1.5f};

TEST(Sampler, GreedyPicksArgmax) {
    Sampler s(no_filters(0.0f, 1));
    EXPECT_EQ(s.sample(kLogits.data(), static_cast<int32_t>(kLogits.size())), 1);
    const std::vector<float> neg = {-5.0f, -1.0f, -3.0f};
    EXPECT_EQ(s.sample(neg.data(), 3), 1);
    // Negative temperature is greedy too; it ignores the filters.
    SamplerParams p = no_filters(-1.0f, 1);
    p.top_k = 2;
    Sampler s2(p);
    EXPECT_EQ(s2.sample(kLogits.data(), static_cast<int32_t>(kLogits.size())), 1);
}

TEST(Sampler, PlainGreedyIsGreedyWithoutAPenalty) {
    EXPECT_TRUE(Sampler(no_filters(0.0f, 1)).plain_greedy());
    EXPECT_FALSE(Sampler(no_filters(0.7f, 1)).plain_greedy());
    SamplerParams p = no_filters(0.0f, 1);
    p.repeat_penalty = 1.1f;
    EXPECT_FALSE(Sampler(p).plain_greedy());
    p.repeat_last_n = 0;  // the penalty looks at nothing
    EXPECT_TRUE(Sampler(p).plain_greedy());
}

TEST(Sampler, GreedyTieGoesToLowestId) {
    Sampler s(no_filters(0.0f, 1));
    const std::vector<float> tie = {0.0f, 2.0f, 1.0f, 2.0f, 2.0f};
    EXPECT_EQ(s.sample(tie.data(), 5), 1);
    const std::vector<float> flat(100, 0.25f);
    EXPECT_EQ(s.sample(flat.data(), 100), 0);
}

TEST(Sampler, NanAndInfiniteLogits) {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> logits = {nan, -inf, 1.0f, nan, 0.5f};
    Sampler g(no_filters(0.0f, 1));
    EXPECT_EQ(g.sample(logits.data(), 5), 2);
    Sampler s(no_filters(1.0f, 1));
    for (int i = 0; i < 200; ++i) {
        const int32_t t = s.sample(logits.data(), 5);
        EXPECT_TRUE(t == 2 || t == 4) << t;
    }
    const std::vector<float> masked = {-inf, -inf, -inf};
    EXPECT_EQ(s.sample(masked.data(), 3), 0);
    const std::vector<float> one_inf = {0.0f, inf, 3.0f};
    EXPECT_EQ(s.sample(one_inf.data(), 3), 1);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDiffers) {
    const std::vector<float> flat = {0.1f, 0.0f, 0.2f, -0.1f, 0.05f, 0.15f, -0.05f, 0.0f};
    auto run = [&](uint64_t seed) {
        SamplerParams p;  // defaults: every filter on
        p.seed = seed;
        Sampler s(p);
        std::vector<int32_t> out;
        for (int i = 0; i < 64; ++i) {
            out.push_back(s.sample(flat.data(), static_cast<int32_t>(flat.size())));
            s.accept(out.back());
        }
        return out;
    };
    EXPECT_EQ(run(42), run(42));
    EXPECT_NE(run(42), run(43));
}

TEST(Sampler, ResetRestartsTheSequence) {
    Sampler s(no_filters(1.0f, 7));
    std::vector<int32_t> first;
    std::vector<int32_t> second;
    for (int i = 0; i < 32; ++i)
        first.push_back(s.sample(kLogits.data(), static_cast<int32_t>(kLogits.size())));
    s.reset();
    for (int i = 0; i < 32; ++i)
        second.push_back(s.sample(kLogits.data(), static_cast<int32_t>(kLogits.size())));
    EXPECT_EQ(first, second);
}

TEST(Sampler, RandomSeedIsDrawnAndReported) {
    SamplerParams p = no_filters(1.0f, SamplerParams::kRandomSeed);
    Sampler a(p);
    Sampler b(p);
    EXPECT_NE(a.seed(), SamplerParams::kRandomSeed);
    EXPECT_NE(a.seed(), b.seed());  // 2^-64 chance of a false failure
    // Replaying the reported seed reproduces the run.
    Sampler replay(no_filters(1.0f, a.seed()));
    for (int i = 0; i < 32; ++i)
        EXPECT_EQ(a.sample(kLogits.data(), 8), replay.sample(kLogits.data(), 8));
}

TEST(Sampler, TopKOneEqualsGreedy) {
    SamplerParams p = no_filters(1.5f, 3);
    p.top_k = 1;
    Sampler s(p);
    std::mt19937 gen(5);
    std::normal_distribution<float> dist(0.0f, 2.0f);
    for (int trial = 0; trial < 50; ++trial) {
        std::vector<float> logits(1000);
        for (float& l : logits) l = dist(gen);
        Sampler greedy(no_filters(0.0f, 1));
        EXPECT_EQ(s.sample(logits.data(), 1000), greedy.sample(logits.data(), 1000));
    }
}

TEST(Sampler, TopKKeepsOnlyTheKHighest) {
    SamplerParams p = no_filters(1.0f, 11);
    p.top_k = 3;
    Sampler s(p);
    const int draws = 30000;
    const std::vector<int> counts = histogram(s, kLogits, draws);
    // Tokens 1 (3.5), 4 (3.0), 5 (2.0) survive, renormalized.
    std::vector<float> kept(kLogits.size(), -std::numeric_limits<float>::infinity());
    for (int id : {1, 4, 5}) kept[static_cast<size_t>(id)] = kLogits[static_cast<size_t>(id)];
    const std::vector<float> probs = softmax(kept, 1.0f);
    EXPECT_LT(chi_square(counts, probs, draws), 13.8);  // 2 dof, p = 0.001
}

TEST(Sampler, TopKLargerThanVocabIsHarmless) {
    SamplerParams p = no_filters(1.0f, 11);
    p.top_k = 1000;
    Sampler s(p);
    const int draws = 20000;
    const std::vector<int> counts = histogram(s, kLogits, draws);
    EXPECT_LT(chi_square(counts, softmax(kLogits, 1.0f), draws), 24.3);  // 7 dof, p = 0.001
}

TEST(Sampler, TinyTopPGivesArgmax) {
    SamplerParams p = no_filters(1.0f, 5);
    p.top_p = 1e-6f;
    Sampler s(p);
    for (int i = 0; i < 500; ++i)
        EXPECT_EQ(s.sample(kLogits.data(), static_cast<int32_t>(kLogits.size())), 1);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
    // Probabilities 0.5, 0.25, 0.125, 0.0625, ... : top_p = 0.7 needs the first two tokens.
    const std::vector<float> logits = {std::log(0.5f), std::log(0.25f), std::log(0.125f),
                                       std::log(0.0625f), std::log(0.0625f)};
    SamplerParams p = no_filters(1.0f, 9);
    p.top_p = 0.7f;
    Sampler s(p);
    const int draws = 20000;
    const std::vector<int> counts = histogram(s, logits, draws);
    EXPECT_EQ(counts[2] + counts[3] + counts[4], 0);
    EXPECT_LT(chi_square(counts, {2.0f / 3, 1.0f / 3, 0, 0, 0}, draws), 10.8);  // 1 dof
}

TEST(Sampler, MinPFilters) {
    // p = 0.5, 0.3, 0.12, 0.05, 0.03; min_p = 0.2 keeps p >= 0.1: tokens 0, 1, 2.
    const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.12f),
                                       std::log(0.05f), std::log(0.03f)};
    SamplerParams p = no_filters(1.0f, 13);
    p.min_p = 0.2f;
    Sampler s(p);
    const int draws = 30000;
    const std::vector<int> counts = histogram(s, logits, draws);
    EXPECT_EQ(counts[3], 0);
    EXPECT_EQ(counts[4], 0);
    EXPECT_LT(chi_square(counts, {0.5f / 0.92f, 0.3f / 0.92f, 0.12f / 0.92f, 0, 0}, draws), 13.8);
    // min_p = 1 keeps only the most likely token.
    p.min_p = 1.0f;
    Sampler only_max(p);
    for (int i = 0; i < 200; ++i) EXPECT_EQ(only_max.sample(logits.data(), 5), 0);
}

TEST(Sampler, FiltersRunBeforeTemperature) {
    // llama.cpp's order: min_p judges the temperature-1 probabilities, so a high temperature
    // does not let the filtered tail back in.
    const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.12f),
                                       std::log(0.05f), std::log(0.03f)};
    SamplerParams p = no_filters(5.0f, 17);
    p.min_p = 0.2f;
    Sampler s(p);
    const std::vector<int> counts = histogram(s, logits, 20000);
    EXPECT_EQ(counts[3] + counts[4], 0);
    EXPECT_GT(counts[2], 0);
}

TEST(Sampler, RepetitionPenaltyDemotesRepeatedToken) {
    SamplerParams p = no_filters(0.0f, 1);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 4;
    Sampler s(p);
    const std::vector<float> logits = {2.0f, 2.9f, 1.0f, -1.0f, -1.2f};
    EXPECT_EQ(s.sample(logits.data(), 5), 1);
    s.accept(1);  // 2.9 / 1.5 = 1.93 < 2.0
    EXPECT_EQ(s.sample(logits.data(), 5), 0);
    s.accept(0);  // both penalized: 1.33 vs 1.93
    EXPECT_EQ(s.sample(logits.data(), 5), 1);

    // A negative logit is multiplied, so it drops further: -1.0 * 1.5 < -1.2.
    const std::vector<float> negative = {-1.0f, -1.2f};
    Sampler n(p);
    EXPECT_EQ(n.sample(negative.data(), 2), 0);
    n.accept(0);
    EXPECT_EQ(n.sample(negative.data(), 2), 1);
    // A token accepted many times is penalized once, not once per occurrence.
    n.accept(0);
    n.accept(0);
    const std::vector<float> close = {-1.0f,
                                      -1.6f};  // -1.5 (once) beats -1.6; -2.25 (twice) would not
    EXPECT_EQ(n.sample(close.data(), 2), 0);
}

TEST(Sampler, RepetitionPenaltyWindowAndReset) {
    SamplerParams p = no_filters(0.0f, 1);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 2;
    Sampler s(p);
    const std::vector<float> logits = {3.0f, 2.0f, 0.0f, 0.0f};
    s.accept(0);
    EXPECT_EQ(s.sample(logits.data(), 4), 1);  // 3 / 2 = 1.5 < 2
    s.accept(2);
    s.accept(3);  // token 0 has left the 2-token window
    EXPECT_EQ(s.sample(logits.data(), 4), 0);
    s.accept(0);
    EXPECT_EQ(s.sample(logits.data(), 4), 1);
    s.reset();
    EXPECT_EQ(s.sample(logits.data(), 4), 0);
    s.accept(99);  // outside the vocabulary: ignored
    EXPECT_EQ(s.sample(logits.data(), 4), 0);

    p.repeat_last_n = 0;  // window 0: penalty off
    Sampler off(p);
    off.accept(0);
    EXPECT_EQ(off.sample(logits.data(), 4), 0);
}

TEST(Sampler, RepetitionPenaltyShiftsSampledDistribution) {
    SamplerParams p = no_filters(1.0f, 21);
    p.repeat_penalty = 1.3f;
    Sampler s(p);
    s.accept(1);
    s.accept(4);
    const int draws = 30000;
    const std::vector<int> counts = histogram(s, kLogits, draws);
    std::vector<float> penalized = kLogits;
    penalized[1] /= 1.3f;
    penalized[4] /= 1.3f;
    EXPECT_LT(chi_square(counts, softmax(penalized, 1.0f), draws), 24.3);
}

TEST(Sampler, DistributionMatchesSoftmaxAtTemperatureOne) {
    Sampler s(no_filters(1.0f, 12345));
    const int draws = 200000;
    const std::vector<int> counts = histogram(s, kLogits, draws);
    const std::vector<float> probs = softmax(kLogits, 1.0f);
    // 7 degrees of freedom: 24.32 is the 0.999 quantile. The seed is fixed, so this is
    // deterministic; the bound says the generator is not merely lucky.
    EXPECT_LT(chi_square(counts, probs, draws), 24.32);
    for (size_t i = 0; i < probs.size(); ++i) {
        const double expected = probs[i] * draws;
        const double sigma = std::sqrt(draws * probs[i] * (1 - probs[i]));
        EXPECT_NEAR(counts[i], expected, 5 * sigma + 1) << "token " << i;
    }
}

TEST(Sampler, TemperatureScalesTheDistribution) {
    for (float t : {0.5f, 2.0f}) {
        Sampler s(no_filters(t, 99));
        const int draws = 100000;
        const std::vector<int> counts = histogram(s, kLogits, draws);
        EXPECT_LT(chi_square(counts, softmax(kLogits, t), draws), 24.32) << "temperature " << t;
    }
}

TEST(Sampler, LargeVocabularyWithDefaults) {
    // The usual configuration on a real vocabulary size: the draw lands among the top 40.
    std::mt19937 gen(3);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    std::vector<float> logits(151936);
    for (float& l : logits) l = dist(gen);
    std::vector<float> sorted = logits;
    std::nth_element(sorted.begin(), sorted.begin() + 39, sorted.end(), std::greater<float>());
    const float kth = sorted[39];
    SamplerParams p;
    p.seed = 1;
    Sampler s(p);
    for (int i = 0; i < 100; ++i) {
        const int32_t t = s.sample(logits.data(), static_cast<int32_t>(logits.size()));
        ASSERT_GE(logits[static_cast<size_t>(t)], kth);
        s.accept(t);
    }
}

void expect_invalid(const SamplerParams& p, const std::string& needle) {
    try {
        Sampler s(p);
        ADD_FAILURE() << "expected mllm::Error mentioning '" << needle << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(Sampler, InvalidParamsThrow) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    SamplerParams p;
    p.top_p = 0.0f;
    expect_invalid(p, "top_p must be in (0, 1]");
    p.top_p = 1.5f;
    expect_invalid(p, "top_p must be in (0, 1]");
    p.top_p = -0.1f;
    expect_invalid(p, "top_p");
    p.top_p = nan;
    expect_invalid(p, "top_p");
    p = SamplerParams{};
    p.top_k = -1;
    expect_invalid(p, "top_k must be >= 0");
    p = SamplerParams{};
    p.min_p = -0.01f;
    expect_invalid(p, "min_p must be in [0, 1]");
    p.min_p = 1.01f;
    expect_invalid(p, "min_p");
    p = SamplerParams{};
    p.temperature = nan;
    expect_invalid(p, "temperature");
    p.temperature = inf;
    expect_invalid(p, "temperature");
    p = SamplerParams{};
    p.repeat_penalty = 0.0f;
    expect_invalid(p, "repeat_penalty");
    p.repeat_penalty = -1.0f;
    expect_invalid(p, "repeat_penalty");
    p.repeat_penalty = inf;
    expect_invalid(p, "repeat_penalty");
    p = SamplerParams{};
    p.repeat_last_n = -1;
    expect_invalid(p, "repeat_last_n must be >= 0");
}

TEST(Sampler, ValidEdgeParamsAccepted) {
    SamplerParams p;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.top_k = 0;
    p.repeat_last_n = 0;
    p.repeat_penalty = 0.5f;  // < 1 rewards repetition; allowed
    EXPECT_NO_THROW(Sampler{p});
    p.min_p = 1.0f;
    EXPECT_NO_THROW(Sampler{p});
}

TEST(Sampler, InvalidSampleArgumentsThrow) {
    Sampler s(SamplerParams{});
    EXPECT_THROW(s.sample(kLogits.data(), 0), Error);
    EXPECT_THROW(s.sample(nullptr, 8), Error);
}

}  // namespace
}  // namespace mllm
