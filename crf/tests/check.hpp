// The CRF tests' one assertion: counts failures (main returns non-zero when any) instead of stopping at the first.
#pragma once

#include <cstdio>
#include <string>

inline int g_failures = 0;

inline void check(bool ok, const std::string& what) {
    if (!ok) {
        std::printf("FAIL: %s\n", what.c_str());
        ++g_failures;
    }
}
