// C++ unit tests of the dense CRF library (run by CTest; no framework needed).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "crf/crf.hpp"

using namespace deeplab::crf;

namespace {

template <class E>
void check_throws(const std::function<void()>& f, const std::string& what) {
    try {
        f();
    } catch (const E&) {
        return;
    } catch (const std::exception& e) {
        check(false, what + " threw the wrong exception: " + e.what());
        return;
    }
    check(false, what + " did not throw");
}

// The lattice approximates a Gaussian of unit standard deviation in feature space; compare the
// normalised filter (K v) / (K 1) with a brute-force Gaussian filter on random points.
void test_lattice_matches_brute_force(int dim) {
    const int n = 400;
    std::mt19937 rng(42 + dim);
    std::uniform_real_distribution<float> pos(0.f, 6.f), val(0.f, 1.f);
    std::vector<float> features(static_cast<std::size_t>(dim) * n), values(n), ones(n, 1.f);
    for (auto& f : features) f = pos(rng);
    for (int i = 0; i < n; ++i) values[i] = std::sin(features[i]) * 0.5f + 0.5f * val(rng) * 0.2f;
    Permutohedral lat;
    lat.init(features.data(), dim, n);
    check(lat.n_vertices() > 0 && lat.n_vertices() <= static_cast<std::int64_t>(n) * (dim + 1), "vertex count");
    std::vector<float> kv(n), k1(n);
    lat.compute(values.data(), kv.data(), 1);
    lat.compute(ones.data(), k1.data(), 1);
    double err = 0.0, mean = 0.0, var = 0.0;
    for (int i = 0; i < n; ++i) {
        double num = 0.0, den = 0.0;
        for (int j = 0; j < n; ++j) {
            double d2 = 0.0;
            for (int k = 0; k < dim; ++k) {
                const double df =
                    features[static_cast<std::size_t>(k) * n + i] - features[static_cast<std::size_t>(k) * n + j];
                d2 += df * df;
            }
            const double g = std::exp(-0.5 * d2);
            num += g * values[j];
            den += g;
        }
        const double exact = num / den, approx = kv[i] / k1[i];
        err += std::fabs(exact - approx);
        mean += exact;
        var += exact * exact;
    }
    err /= n;
    mean /= n;
    const double spread = std::sqrt(var / n - mean * mean);
    std::printf("lattice d=%d: mean |error| %.4f (signal spread %.4f)\n", dim, err, spread);
    check(err < 0.25 * spread, "lattice filter close to the brute-force Gaussian, d=" + std::to_string(dim));
}

// A direct, sequential transcription of the reference lattice (std::map for the hash table, ping-pong
// blur with explicit neighbour lookups): the optimised lattice must give the same filter.
std::vector<double> naive_filter(const std::vector<float>& f, int d, int n, const std::vector<float>& in) {
    const int dp1 = d + 1;
    std::vector<float> scale(d);
    const float inv_std = static_cast<float>(std::sqrt(2.0 / 3.0) * dp1);
    for (int i = 0; i < d; ++i) scale[i] = static_cast<float>(1.0 / std::sqrt(double((i + 2) * (i + 1))) * inv_std);
    std::map<std::vector<int>, int> index;
    std::vector<std::vector<int>> keys;
    std::vector<int> offset(static_cast<std::size_t>(n) * dp1);
    std::vector<float> bary_all(static_cast<std::size_t>(n) * dp1);
    auto vertex = [&](const std::vector<int>& k) {
        auto it = index.find(k);
        if (it != index.end()) return it->second;
        keys.push_back(k);
        return index[k] = static_cast<int>(keys.size()) - 1;
    };
    for (int p = 0; p < n + (n % 4 != 0); ++p) {  // with the reference's zero padding point
        std::vector<float> el(dp1), rem(dp1), bary(d + 2, 0.f);
        std::vector<int> rank(dp1, 0);
        float sm = 0.f;
        for (int j = d; j > 0; --j) {
            const float cf = (p < n ? f[static_cast<std::size_t>(j - 1) * n + p] : 0.f) * scale[j - 1];
            el[j] = sm - j * cf;
            sm += cf;
        }
        el[0] = sm;
        int sum = 0;
        for (int i = 0; i <= d; ++i) {
            const float v = std::nearbyint(el[i] / dp1 * 1.f);
            rem[i] = v * dp1;
            sum += static_cast<int>(v);
        }
        for (int i = 0; i < d; ++i)
            for (int j = i + 1; j <= d; ++j) (el[i] - rem[i] < el[j] - rem[j] ? rank[i] : rank[j])++;
        for (int i = 0; i <= d; ++i) {
            rank[i] += sum;
            if (rank[i] < 0)
                rank[i] += dp1, rem[i] += dp1;
            else if (rank[i] > d)
                rank[i] -= dp1, rem[i] -= dp1;
        }
        for (int i = 0; i <= d; ++i) {
            const float v = (el[i] - rem[i]) / dp1;
            bary[d - rank[i]] += v;
            bary[d - rank[i] + 1] -= v;
        }
        bary[0] += 1.f + bary[d + 1];
        for (int r = 0; r <= d; ++r) {
            std::vector<int> k(d);
            for (int i = 0; i < d; ++i) k[i] = static_cast<int>(rem[i]) + (rank[i] <= d - r ? r : r - dp1);
            const int v = vertex(k);
            if (p < n) {
                offset[static_cast<std::size_t>(p) * dp1 + r] = v;
                bary_all[static_cast<std::size_t>(p) * dp1 + r] = bary[r];
            }
        }
    }
    const int m = static_cast<int>(keys.size());
    std::vector<double> val(m + 1, 0.0), tmp(m + 1, 0.0);
    for (int p = 0; p < n; ++p)
        for (int r = 0; r <= d; ++r)
            val[offset[static_cast<std::size_t>(p) * dp1 + r]] +=
                bary_all[static_cast<std::size_t>(p) * dp1 + r] * in[p];
    for (int j = 0; j <= d; ++j) {
        for (int v = 0; v < m; ++v) {
            std::vector<int> n1 = keys[v], n2 = keys[v];
            for (int k = 0; k < d; ++k) --n1[k], ++n2[k];
            if (j < d) n1[j] += dp1, n2[j] -= dp1;
            const auto a = index.find(n1), b = index.find(n2);
            tmp[v] =
                val[v] + 0.5 * ((a == index.end() ? 0.0 : val[a->second]) + (b == index.end() ? 0.0 : val[b->second]));
        }
        std::swap(val, tmp);
    }
    const double alpha = 1.0 / (1.0 + std::pow(2.0, -d));
    std::vector<double> out(n, 0.0);
    for (int p = 0; p < n; ++p)
        for (int r = 0; r <= d; ++r)
            out[p] += alpha * bary_all[static_cast<std::size_t>(p) * dp1 + r] *
                      val[offset[static_cast<std::size_t>(p) * dp1 + r]];
    return out;
}

void test_lattice_matches_naive_reference(int dim, float spread) {
    const int n = 2001;
    std::mt19937 rng(11 * dim);
    std::uniform_real_distribution<float> pos(0.f, spread), val(0.f, 1.f);
    std::vector<float> features(static_cast<std::size_t>(dim) * n), values(n), out(n);
    for (auto& f : features) f = pos(rng);
    for (auto& v : values) v = val(rng);
    Permutohedral lat;
    lat.init(features.data(), dim, n);
    lat.compute(values.data(), out.data(), 1);
    const auto ref = naive_filter(features, dim, n, values);
    double worst = 0.0;
    for (int i = 0; i < n; ++i) worst = std::max(worst, std::fabs(out[i] - ref[i]) / (1e-3 + std::fabs(ref[i])));
    check(worst < 1e-3, "lattice equals the naive reference lattice, d=" + std::to_string(dim) +
                            " (worst relative error " + std::to_string(worst) + ")");
}

void test_filter_is_linear_and_thread_independent() {
    const int n = 1000, dim = 3;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(0.f, 10.f);
    std::vector<float> f(dim * n), a(n * 4), b(n * 4), ab(n * 4);
    for (auto& x : f) x = u(rng);
    for (int i = 0; i < n * 4; ++i) {
        a[i] = u(rng);
        b[i] = u(rng);
        ab[i] = a[i] + 2.f * b[i];
    }
    Permutohedral lat;
    lat.init(f.data(), dim, n);
    std::vector<float> fa(n * 4), fb(n * 4), fab(n * 4);
    lat.compute(a.data(), fa.data(), 4);
    lat.compute(b.data(), fb.data(), 4);
    lat.compute(ab.data(), fab.data(), 4);
    double worst = 0.0;
    for (int i = 0; i < n * 4; ++i)
        worst = std::max(worst, std::fabs(double(fab[i]) - (fa[i] + 2.0 * fb[i])) / (1.0 + std::fabs(fab[i])));
    check(worst < 1e-4, "the filter is linear");
    set_num_threads(1);
    std::vector<float> one(n * 4);
    lat.compute(a.data(), one.data(), 4);
    set_num_threads(0);
    check(one == fa, "filter results do not depend on the thread count");
    // One value per point (a normalisation) is filtered by scalar code: lane 0 of the 4-lane kernels, bit for bit.
    std::vector<float> lane0(n), padded(n * 4, 0.f), scalar(n);
    for (int i = 0; i < n; ++i) padded[i * 4] = a[i * 4];
    lat.compute(padded.data(), fa.data(), 4);
    for (int i = 0; i < n; ++i) lane0[i] = a[i * 4];
    lat.compute(lane0.data(), scalar.data(), 1);
    bool same = true;
    for (int i = 0; i < n; ++i) same &= scalar[i] == fa[i * 4];
    check(same, "one value per point filters as lane 0 of four");
}

// The lattice of pixel positions (x / s, y / s) is stored as a grid (Permutohedral::Grid): it filters like the naive
// reference lattice, gives the same bits as the same lattice walked along chains, and as itself on one thread.
void test_grid_lattice() {
    struct Case {
        int width, height;
        float sigma;
    };
    for (const Case c : {Case{1, 1, 1.f}, Case{1, 9, 1.f}, Case{9, 1, 1.f}, Case{37, 23, 1.f}, Case{64, 48, 0.5f},
                         Case{61, 47, 3.f}, Case{50, 40, 10.f}, Case{200, 150, 1.f}}) {
        const int n = c.width * c.height, values = 21;
        const std::string what =
            std::to_string(c.width) + "x" + std::to_string(c.height) + " sigma " + std::to_string(c.sigma);
        std::vector<float> f(2 * static_cast<std::size_t>(n));
        for (int y = 0; y < c.height; ++y)
            for (int x = 0; x < c.width; ++x) {
                f[y * c.width + x] = x / c.sigma;
                f[n + y * c.width + x] = y / c.sigma;
            }
        Permutohedral grid, chains;
        chains.set_grid_allowed(false);
        grid.init(f.data(), 2, n);
        chains.init(f.data(), 2, n);
        // Below sigma 1 neighbouring pixels are more than a lattice step apart, and rows have gaps: chains.
        check((grid.grid().rows > 0) == (c.sigma >= 1.f), "pixel positions make a grid lattice from sigma 1, " + what);
        check(grid.n_vertices() == chains.n_vertices(), "the grid holds the same vertices, " + what);
        std::mt19937 rng(n);
        std::uniform_real_distribution<float> u(0.f, 1.f);
        std::vector<float> in(static_cast<std::size_t>(n) * values), a(in.size()), b(in.size()), one(in.size());
        for (auto& v : in) v = u(rng);
        grid.compute(in.data(), a.data(), values);
        chains.compute(in.data(), b.data(), values);
        check(a == b, "grid and chains give the same bits, " + what);
        set_num_threads(1);
        grid.compute(in.data(), one.data(), values);
        set_num_threads(0);
        check(one == a, "the grid's result does not depend on the thread count, " + what);
        std::vector<float> first(n);
        for (int i = 0; i < n; ++i) first[i] = in[static_cast<std::size_t>(i) * values];
        const auto ref = naive_filter(f, 2, n, first);
        double worst = 0.0;
        for (int i = 0; i < n; ++i)
            worst = std::max(worst,
                             std::fabs(a[static_cast<std::size_t>(i) * values] - ref[i]) / (1e-3 + std::fabs(ref[i])));
        check(worst < 1e-3, "the grid lattice equals the naive reference lattice, " + what);
    }
    // Scattered 2-D features leave gaps in the rows: chains.
    std::vector<float> sparse = {0.f, 50.f, 3.f, 90.f, 0.f, 7.f, 70.f, 20.f};
    Permutohedral lat;
    lat.init(sparse.data(), 2, 4);
    check(lat.grid().rows == 0, "scattered features keep chains");
}

std::vector<float> smooth_probs(int w, int h, int labels, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.f, 1.f);
    std::vector<float> p(static_cast<std::size_t>(labels) * w * h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const int region = ((x / 8) + 3 * (y / 8)) % labels;
            float sum = 0.f;
            for (int l = 0; l < labels; ++l) {
                const float v = std::exp((l == region ? 2.f : 0.f) + noise(rng));
                p[(static_cast<std::size_t>(l) * h + y) * w + x] = v;
                sum += v;
            }
            for (int l = 0; l < labels; ++l) p[(static_cast<std::size_t>(l) * h + y) * w + x] /= sum;
        }
    return p;
}

void test_refine_and_threads() {
    const int w = 48, h = 40, labels = 5;
    std::vector<std::uint8_t> img(static_cast<std::size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c)
                img[(static_cast<std::size_t>(y) * w + x) * 3 + c] = static_cast<std::uint8_t>((x / 8) * 40 + c * 10);
    const auto probs = smooth_probs(w, h, labels, 3);
    std::vector<float> out1(probs.size()), out2(probs.size());
    set_num_threads(1);
    refine(img.data(), w, h, probs.data(), labels, RefineParams::voc(), out1.data());
    set_num_threads(3);
    refine(img.data(), w, h, probs.data(), labels, RefineParams::voc(), out2.data());
    set_num_threads(0);
    check(out1 == out2, "refine is identical with 1 and 3 threads");
    for (int i = 0; i < w * h; ++i) {
        double s = 0.0;
        for (int l = 0; l < labels; ++l) s += out1[static_cast<std::size_t>(l) * w * h + i];
        if (std::fabs(s - 1.0) > 1e-4) {
            check(false, "refined probabilities sum to 1");
            break;
        }
    }
    std::vector<float> in_place = probs;
    refine(img.data(), w, h, in_place.data(), labels, RefineParams::voc(), in_place.data());
    check(in_place == out1, "refine works in place");
    // Calls after the first reuse the smoothness lattice (sigma 3: a lattice, not image space): a fresh build
    // gives the same result.
    std::vector<float> reused(probs.size()), fresh(probs.size());
    refine(img.data(), w, h, probs.data(), labels, RefineParams::pydensecrf(), reused.data());
    refine(img.data(), w, h, probs.data(), labels, RefineParams::pydensecrf(), reused.data());
    clear_lattice_cache();
    refine(img.data(), w, h, probs.data(), labels, RefineParams::pydensecrf(), fresh.data());
    check(fresh == reused, "a reused smoothness lattice equals a fresh one");
}

// Half-precision vertex rows: used where the CPU converts in vector instructions (always on AArch64, whose kernels
// this test runs under qemu), close to float, the same bits whatever the thread count, and switched off again.
void test_half_rows() {
    const int w = 64, h = 48;
    std::vector<std::uint8_t> img(static_cast<std::size_t>(w) * h * 3);
    std::mt19937 rng(5);
    for (std::size_t i = 0; i < img.size(); ++i) img[i] = static_cast<std::uint8_t>((i / 3 % w) * 3 + rng() % 24);
    for (int labels : {5, 21}) {  // rows of 8 floats (16-byte half rows) and of 24 (64-byte half rows)
        const auto probs = smooth_probs(w, h, labels, 7);
        RefineParams params = RefineParams::pydensecrf();  // both kernels on lattices
        check(params.half_rows, "half rows are the presets' default");
        params.half_rows = false;
        std::vector<float> full(probs.size()), half1(probs.size()), half3(probs.size());
        refine(img.data(), w, h, probs.data(), labels, params, full.data());
        DenseCRF probe(1, labels);
        const bool used = probe.set_half_rows(true);
#if defined(__aarch64__)
        check(used, "half rows are used on AArch64");
#endif
        params.half_rows = true;
        set_num_threads(1);
        refine(img.data(), w, h, probs.data(), labels, params, half1.data());
        set_num_threads(3);
        refine(img.data(), w, h, probs.data(), labels, params, half3.data());
        set_num_threads(0);
        check(half1 == half3, "half rows: identical with 1 and 3 threads");
        float diff = 0.f;
        int agree = 0;
        for (int i = 0; i < w * h; ++i) {
            int a = 0, b = 0;
            for (int l = 0; l < labels; ++l) {
                const std::size_t k = static_cast<std::size_t>(l) * w * h + i;
                diff = std::max(diff, std::fabs(full[k] - half1[k]));
                if (full[k] > full[static_cast<std::size_t>(a) * w * h + i]) a = l;
                if (half1[k] > half1[static_cast<std::size_t>(b) * w * h + i]) b = l;
            }
            agree += a == b;
        }
        check(diff < 1e-2f && agree >= w * h * 995 / 1000, "half rows stay close to float");
        check(used == (full != half1), "half rows change the rounding exactly when they are used");
        DenseCRF2D crf(w, h, labels, nullptr);
        crf.set_half_rows(true);
        crf.set_unary_from_probabilities(probs.data(), params.clip);
        crf.add_pairwise_gaussian(params.gaussian_sxy, params.gaussian_sxy,
                                  Compatibility::potts(params.gaussian_weight));
        crf.add_pairwise_bilateral(params.bilateral_sxy, params.bilateral_sxy, params.bilateral_srgb,
                                   params.bilateral_srgb, params.bilateral_srgb, img.data(),
                                   Compatibility::potts(params.bilateral_weight));
        std::vector<float> q(probs.size());
        crf.inference(1, q.data());
        crf.set_half_rows(false);
        crf.inference(params.iterations, q.data());
        check(q == full, "half rows switched off: float again");
    }
}

// Per-call thread limits, a cache of one's own, the validation and the reduced-resolution CRF.
void test_refine_options() {
    const int w = 48, h = 40, labels = 4;
    std::vector<std::uint8_t> img(static_cast<std::size_t>(w) * h * 3);
    for (std::size_t i = 0; i < img.size(); ++i) img[i] = static_cast<std::uint8_t>((i * 7919) % 251);
    const auto probs = smooth_probs(w, h, labels, 5);
    std::vector<float> reference(probs.size()), out(probs.size());
    RefineOptions none;
    none.cache = nullptr;
    const RefineParams lattice = RefineParams::pydensecrf();  // sigma 3: the smoothness kernel is a cached lattice
    refine(img.data(), w, h, probs.data(), labels, lattice, reference.data(), none);

    const int before = num_threads();
    {
        ThreadScope scope(1);
        check(num_threads() == 1, "a ThreadScope limits the calling thread's CRFs");
    }
    check(num_threads() == before, "a ThreadScope restores the count");
    LatticeCache cache(2);
    RefineOptions options;
    options.cache = &cache;
    options.threads = 1;
    refine(img.data(), w, h, probs.data(), labels, lattice, out.data(), options);
    check(out == reference && cache.size() == 1, "a cache of one's own is filled, same result");
    options.threads = 2;
    refine(img.data(), w, h, probs.data(), labels, lattice, out.data(), options);
    check(out == reference && num_threads() == before, "a cached lattice on 2 threads: same result");

    RefineParams bad = RefineParams::voc();
    bad.scale = 0.f;
    check_throws<std::invalid_argument>([&] { bad.validate(); }, "scale 0");
    bad = RefineParams::voc();
    bad.normalization = static_cast<Normalization>(4);
    check_throws<std::invalid_argument>([&] { bad.validate(); }, "normalization 4");

    const RefineParams video = RefineParams::video(RefineParams::pydensecrf());
    check(video.iterations == RefineParams::kVideoIterations && video.scale == RefineParams::kVideoScale &&
              video.bilateral_srgb == RefineParams::pydensecrf().bilateral_srgb,
          "the video CRF keeps the kernels and changes iterations and scale");
    RefineParams half = video;
    half.scale = 0.5f;
    refine(img.data(), w, h, probs.data(), labels, half, out.data());
    double worst = 0.0;
    for (int i = 0; i < w * h; ++i) {
        double s = 0.0;
        for (int l = 0; l < labels; ++l) s += out[static_cast<std::size_t>(l) * w * h + i];
        worst = std::max(worst, std::fabs(s - 1.0));
    }
    check(worst < 1e-4 && out != reference, "a CRF at half resolution gives full-size probabilities");
}

// sigma 3: a smoothness lattice; sigma 1: the smoothness kernel in image space.
void test_mean_field_lowers_kl(float smoothness_sigma) {
    const int w = 32, h = 24, labels = 4;
    const auto probs = smooth_probs(w, h, labels, 5);
    std::vector<std::uint8_t> img(static_cast<std::size_t>(w) * h * 3, 100);
    DenseCRF2D crf(w, h, labels);
    crf.set_unary_from_probabilities(probs.data());
    crf.add_pairwise_gaussian(smoothness_sigma, smoothness_sigma, Compatibility::potts(3));
    crf.add_pairwise_bilateral(20, 20, 10, 10, 10, img.data(), Compatibility::potts(5));
    std::vector<float> q(probs.size());
    crf.start_inference(q.data());
    const double kl0 = crf.kl_divergence(q.data());
    for (int i = 0; i < 5; ++i) crf.step_inference(q.data());
    check(crf.kl_divergence(q.data()) < kl0,
          "mean field lowers the KL divergence, smoothness sigma " + std::to_string(smoothness_sigma));
    std::vector<float> q5(probs.size());
    crf.inference(5, q5.data());
    double diff = 0.0;
    for (std::size_t i = 0; i < q.size(); ++i) diff = std::max(diff, std::fabs(double(q[i]) - q5[i]));
    check(diff < 1e-6, "five steps equal inference(5)");
}

void test_unaries() {
    const int n = 3, labels = 3;
    DenseCRF crf(n, labels);
    const std::int32_t lab[n] = {0, 1, 3};
    crf.set_unary_from_labels(lab, 0.7f, true);
    std::vector<float> q(n * labels);
    crf.inference(0, q.data());
    check(std::fabs(q[0 * n + 0] - 1.f / 3) < 1e-5, "label 0 is unknown: uniform");
    check(std::fabs(q[0 * n + 1] - 0.7f) < 1e-5, "label 1 gets gt_prob");
    check(std::fabs(q[2 * n + 2] - 0.7f) < 1e-5, "label 3 gets gt_prob");
    const float logits[n * labels] = {1, 2, 3, 0, 0, 0, -1, 5, 2};
    crf.set_unary_from_logits(logits);
    crf.inference(0, q.data());
    const double z = std::exp(1.0) + 1.0 + std::exp(-1.0);
    check(std::fabs(q[0] - std::exp(1.0) / z) < 1e-5, "logits unary is -log softmax");
}

void test_compatibilities() {
    const int w = 16, h = 12, labels = 3;
    const auto probs = smooth_probs(w, h, labels, 9);
    std::vector<float> a(probs.size()), b(probs.size());
    // Potts(w) equals Diagonal(-w) equals Matrix(-w I).
    DenseCRF2D p(w, h, labels), dg(w, h, labels), mx(w, h, labels);
    for (DenseCRF2D* c : {&p, &dg, &mx}) c->set_unary_from_probabilities(probs.data());
    p.add_pairwise_gaussian(2, 2, Compatibility::potts(3));
    dg.add_pairwise_gaussian(2, 2, Compatibility::diagonal({-3, -3, -3}));
    mx.add_pairwise_gaussian(2, 2, Compatibility::matrix({-3, 0, 0, 0, -3, 0, 0, 0, -3}));
    p.inference(4, a.data());
    dg.inference(4, b.data());
    double d1 = 0.0, d2 = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) d1 = std::max(d1, std::fabs(double(a[i]) - b[i]));
    mx.inference(4, b.data());
    for (std::size_t i = 0; i < a.size(); ++i) d2 = std::max(d2, std::fabs(double(a[i]) - b[i]));
    check(d1 < 1e-5 && d2 < 1e-5, "Potts, diagonal and matrix compatibilities agree");
}

void test_errors() {
    std::vector<float> f(2 * 10, 1.f);
    check_throws<std::invalid_argument>([] { DenseCRF(10, 0); }, "zero labels");
    check_throws<std::invalid_argument>([] { DenseCRF(-1, 3); }, "negative size");
    check_throws<OutOfMemory>([] { DenseCRF(200000000, 200); }, "too large for memory");
    check_throws<std::invalid_argument>(
        [&] {
            DenseCRF c(10, 2);
            std::vector<float> q(20);
            c.inference(-1, q.data());
        },
        "negative iterations");
    check_throws<std::invalid_argument>(
        [&] {
            f[3] = NAN;
            DenseCRF(10, 2).add_pairwise_energy(f.data(), 2, Compatibility::potts(1));
        },
        "NaN features");
    check_throws<std::overflow_error>(
        [&] {
            std::fill(f.begin(), f.end(), 1e9f);
            DenseCRF(10, 2).add_pairwise_energy(f.data(), 2, Compatibility::potts(1));
        },
        "lattice overflow");
    check_throws<std::invalid_argument>([] { Compatibility::potts(NAN); }, "NaN compatibility");
    check_throws<std::invalid_argument>(
        [&] {
            std::fill(f.begin(), f.end(), 1.f);
            DenseCRF(10, 2).add_pairwise_energy(f.data(), 2, Compatibility::diagonal({1, 2, 3}));
        },
        "diagonal of the wrong length");
    check_throws<std::invalid_argument>(
        [] {
            std::vector<float> u(6, NAN);
            DenseCRF(3, 2).set_unary_energy(u.data());
        },
        "NaN unary");
}

void test_empty_and_tiny() {
    DenseCRF2D empty(0, 5, 3);
    empty.add_pairwise_gaussian(3, 3, Compatibility::potts(3));
    std::vector<float> q(1);
    empty.inference(3, q.data());
    DenseCRF2D one(1, 1, 2);
    const float u[2] = {0.f, 1.f};
    one.set_unary_energy(u);
    const std::uint8_t px[3] = {1, 2, 3};
    one.add_pairwise_bilateral(3, 3, 3, 3, 3, px, Compatibility::potts(3));
    std::vector<float> q1(2);
    one.inference(3, q1.data());
    check(std::fabs(q1[0] + q1[1] - 1.f) < 1e-6 && q1[0] > q1[1], "1x1 image");
}

}  // namespace

int main() {
    test_lattice_matches_brute_force(2);
    test_lattice_matches_brute_force(3);
    test_lattice_matches_brute_force(5);
    for (int dim : {1, 2, 3, 5, 7}) {
        test_lattice_matches_naive_reference(dim, 4.f);
        test_lattice_matches_naive_reference(dim, 40.f);
    }
    test_filter_is_linear_and_thread_independent();
    test_grid_lattice();
    test_refine_and_threads();
    test_refine_options();
    test_half_rows();
    test_mean_field_lowers_kl(3.f);
    test_mean_field_lowers_kl(1.f);
    test_unaries();
    test_compatibilities();
    test_errors();
    test_empty_and_tiny();
    if (g_failures) {
        std::printf("%d check(s) failed\n", g_failures);
        return 1;
    }
    std::printf("all CRF checks passed\n");
    return 0;
}
