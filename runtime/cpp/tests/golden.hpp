// The checked-in arrays the Python package produced (tests/data, written by `parity.py --write-golden`), shared by
// the tests that compare the C++ chain with them.
#pragma once

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "deeplab/model_meta.hpp"
#include "deeplab/npy.hpp"

struct Golden {
    deeplab::ModelMeta meta;
    deeplab::NpyArray image, logits, probs, labels, probs_crf, labels_crf;

    explicit Golden(const std::string& dir) {
        std::ifstream f(dir + "/meta.json");
        std::stringstream text;
        text << f.rdbuf();
        meta = deeplab::ModelMeta::from_json(text.str());
        image = deeplab::read_npy(dir + "/image.npy");
        logits = deeplab::read_npy(dir + "/logits.npy");
        probs = deeplab::read_npy(dir + "/probs.npy");
        labels = deeplab::read_npy(dir + "/labels.npy");
        probs_crf = deeplab::read_npy(dir + "/probs_crf.npy");
        labels_crf = deeplab::read_npy(dir + "/labels_crf.npy");
    }
    int height() const { return static_cast<int>(image.shape[0]); }
    int width() const { return static_cast<int>(image.shape[1]); }
};

/// The largest |a - b|; infinity when the sizes differ.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double m = 0;  // a plain loop: aarch64 GCC 12 -O3 crashes vectorizing an fmax reduction over it
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = std::fabs(double(a[i]) - b[i]);
        if (d > m) m = d;
    }
    return m;
}
