#pragma once
// How the Vulkan tests treat a machine without a Vulkan device: skipped with the reason, except
// on CI (CI=true), where a missing device is a failure, never a skip.
#include <gtest/gtest.h>

#include "tests/support/test_env.h"

#define MLLM_NO_VULKAN_DEVICE(reason)                                                          \
    do {                                                                                       \
        if (::mllm::test::in_ci()) FAIL() << "no Vulkan device on CI (CI=true): " << (reason); \
        GTEST_SKIP() << "Vulkan unavailable: " << (reason);                                    \
    } while (0)
