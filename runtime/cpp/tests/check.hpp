// A minimal check macro set for the C++ tests (no test framework dependency).
#pragma once

#include <cstdio>
#include <exception>
#include <string>

#include "deeplab/error.hpp"

inline int g_failures = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++g_failures;                                                                 \
        }                                                                                 \
    } while (0)

/// `expr` throws deeplab::Error with `code` and a message containing `needle`.
#define CHECK_THROWS(expr, expected_code, needle)                                                                     \
    do {                                                                                                              \
        try {                                                                                                         \
            (void)(expr);                                                                                             \
            std::fprintf(stderr, "%s:%d: no exception from %s\n", __FILE__, __LINE__, #expr);                         \
            ++g_failures;                                                                                             \
        } catch (const deeplab::Error& e_) {                                                                          \
            if (e_.code() != (expected_code) || std::string(e_.what()).find(needle) == std::string::npos) {           \
                std::fprintf(stderr, "%s:%d: %s threw (%d) \"%s\", expected (%d) with \"%s\"\n", __FILE__, __LINE__,  \
                             #expr, static_cast<int>(e_.code()), e_.what(), static_cast<int>(expected_code), needle); \
                ++g_failures;                                                                                         \
            }                                                                                                         \
        }                                                                                                             \
    } while (0)

inline int report(const char* name) {
    if (g_failures)
        std::fprintf(stderr, "%s: %d check(s) failed\n", name, g_failures);
    else
        std::printf("%s: all checks passed\n", name);
    return g_failures ? 1 : 0;
}
