// Host emulation of the batchgp CUDA kernels, compiled and run by tests/cuda_agreement.rs
// (kernels_in_host_emulation). It #includes kernels/*.cu as C++ (BGP_HOST_EMULATION) and runs
// the launches a plan file lists (argv[1], written by the test from the launch shapes of
// src/backend/cuda/launch.rs: grid, block and dynamic shared memory bytes), checking every
// result against a naive dense reference and central differences. The execution model (fibers,
// block and warp barriers, schedules, per-block shared memory, bounds checks) is the shared
// CUDA emulation layer in cuda_host.h.
#include "cuda_host.h"

#include "gram.cu"
#include "gp.cu"
#include "predict.cu"
#include "harness_common.h"

// ---------------------------------------------------------------------------------------------
// The entry points of one covariance kernel and precision, by the names the macros emit.
template <class Cov, typename T> struct K;
#define BGP_HARNESS_ENTRIES(COV, KN, T, DT)                                                       \
    template <> struct K<COV, T> {                                                                \
        static constexpr auto warp = gp_mll_warp_##KN##_##DT;                                     \
        static constexpr auto block = gp_mll_block_##KN##_##DT;                                   \
        static constexpr auto global = gp_mll_global_##KN##_##DT;                                 \
        static constexpr auto warp0 = gp_mll_warp_v0_##KN##_##DT;                                 \
        static constexpr auto warp8 = gp_mll_warp8_##KN##_##DT;                                   \
        static constexpr auto warp16 = gp_mll_warp16_##KN##_##DT;                                 \
        static constexpr auto block0 = gp_mll_block_v0_##KN##_##DT;                               \
        static constexpr auto global0 = gp_mll_global_v0_##KN##_##DT;                             \
        static constexpr auto gram = gram_##KN##_##DT;                                            \
        static constexpr auto predict = predict_##KN##_##DT;                                      \
        static constexpr auto cov = predict_cov_##KN##_##DT;                                      \
        static constexpr const char* name = #KN "_" #DT;                                          \
    };
BGP_FOR_EACH_COVARIANCE(BGP_HARNESS_ENTRIES, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_HARNESS_ENTRIES, float, f32)
template <typename T> struct Chol;
template <> struct Chol<double> {
    static constexpr auto warp = chol_warp_f64;
    static constexpr auto block = chol_block_f64;
    static constexpr auto global = chol_global_f64;
    static constexpr auto warp0 = chol_warp_v0_f64;
    static constexpr auto block0 = chol_block_v0_f64;
    static constexpr auto global0 = chol_global_v0_f64;
};
template <> struct Chol<float> {
    static constexpr auto warp = chol_warp_f32;
    static constexpr auto block = chol_block_f32;
    static constexpr auto global = chol_global_f32;
    static constexpr auto warp0 = chol_warp_v0_f32;
    static constexpr auto block0 = chol_block_v0_f32;
    static constexpr auto global0 = chol_global_v0_f32;
};

// One member's hyperparameters in natural units.
struct Hyp { std::vector<double> ls; double s, noise, mu, alpha; };

// Naive dense reference on the observed points of one member (raw, uncentred x): mll, and
// optionally k*^T K^-1 k* and k*^T K^-1 r for one test point z. yv is the member's known noise
// (N,) or null.
struct Ref { double mll, quad_z, mean_z; std::vector<double> alpha; };  // alpha = K^-1 r (n, 0 at masked)
static Ref reference(Kind kind, int n, int d, const double* x, const double* y, const uint8_t* m, const double* yv,
                     const Hyp& h, const double* z) {
    std::vector<int> o;
    for (int i = 0; i < n; ++i) if (m[i]) o.push_back(i);
    const int k = (int)o.size();
    auto kern = [&](const double* a, const double* b) {
        double q = 0;
        for (int t = 0; t < d; ++t) { double u = (a[t] - b[t]) / h.ls[t]; q += u * u; }
        return h.s * ref_phi(kind, q, h.alpha);
    };
    std::vector<double> K(k * k), r(k), kz(k);
    for (int a = 0; a < k; ++a) {
        r[a] = y[o[a]] - h.mu;
        if (z) kz[a] = kern(x + o[a] * d, z);
        for (int b = 0; b <= a; ++b)
            K[a * k + b] = kern(x + o[a] * d, x + o[b] * d) + (a == b ? h.noise + (yv ? yv[o[a]] : 0.0) : 0.0);
    }
    for (int j = 0; j < k; ++j) {
        double p = K[j * k + j];
        for (int t = 0; t < j; ++t) p -= K[j * k + t] * K[j * k + t];
        if (!(p > 0)) return {NAN, NAN, NAN, {}};
        const double lj = sqrt(p);
        K[j * k + j] = lj;
        for (int i = j + 1; i < k; ++i) {
            double v = K[i * k + j];
            for (int t = 0; t < j; ++t) v -= K[i * k + t] * K[j * k + t];
            K[i * k + j] = v / lj;
        }
    }
    auto fwd = [&](std::vector<double>& v) {
        for (int i = 0; i < k; ++i) {
            double a = v[i];
            for (int t = 0; t < i; ++t) a -= K[i * k + t] * v[t];
            v[i] = a / K[i * k + i];
        }
    };
    std::vector<double> u = r, w = kz;
    fwd(u);
    if (z) fwd(w);
    double ld = 0, qd = 0, qz = 0, mz = 0;
    for (int i = 0; i < k; ++i) { qd += u[i] * u[i]; ld += 2 * log(K[i * k + i]); qz += w[i] * w[i]; mz += w[i] * u[i]; }
    std::vector<double> al(n, 0.0), b = u;
    for (int i = k - 1; i >= 0; --i) {
        double a = b[i];
        for (int t = i + 1; t < k; ++t) a -= K[t * k + i] * b[t];
        b[i] = a / K[i * k + i];
        al[o[i]] = b[i];
    }
    return {-0.5 * qd - 0.5 * ld - 0.5 * k * log(2 * M_PI), qz, mz, al};
}

// Dense lower Cholesky (double) of an n x n matrix, for the chol_* check; false if not SPD.
static bool dense_cholesky(int n, std::vector<double>& a) {
    for (int j = 0; j < n; ++j) {
        double p = a[j * n + j];
        for (int t = 0; t < j; ++t) p -= a[j * n + t] * a[j * n + t];
        if (!(p > 0)) return false;
        const double lj = sqrt(p);
        a[j * n + j] = lj;
        for (int i = j + 1; i < n; ++i) {
            double v = a[i * n + j];
            for (int t = 0; t < j; ++t) v -= a[i * n + t] * a[j * n + t];
            a[i * n + j] = v / lj;
        }
        for (int i = 0; i < j; ++i) a[i * n + j] = 0;
    }
    return true;
}

static int fails = 0, cases = 0;
static std::string g_case;
static void check(bool ok, const char* what, int b, int idx, double got, double want) {
    if (ok) return;
    if (fails < 40) printf("FAIL %s: %s member=%d idx=%d got %.12g want %.12g\n", g_case.c_str(), what, b, idx, got, want);
    ++fails;
}
template <typename V> static void same_bits(const char* what, const std::vector<V>& a, const std::vector<V>& b) {
    for (size_t i = 0; i < a.size(); ++i)
        if (memcmp(&a[i], &b[i], sizeof(V)) != 0) {
            check(false, what, -1, (int)i, (double)a[i], (double)b[i]);
            return;
        }
}

// The largest relative v1 - v0 difference seen, f32 [0] and f64 [1] (printed at the end).
static double g_worst[2] = {0, 0};

// The two kernel generations (src/backend/cuda/launch.rs Generation): v1, the entry points the
// plan's shapes are for, and v0 (the *_v0 entry points), whose launch this computes as
// launch.rs's v0 shapes do (a unit test there pins them): the warp variant one member per warp
// in BGP_WARPS_PER_BLOCK regions of warp_elems(n), the block variant without the inverse
// lengthscales, the global variant as v1. Every v1 output array must equal v0's to 1e-12 (f64)
// or 1e-5 (f32) in the max norm, relative to 1 + max |v0| (NaN where v0 has NaN): the v1
// changes reorder and rescale, they never change what is computed. (Entry by entry, f32 alpha
// at N = 70 moves by cond(K) eps ~ 6e-5 of itself under any reordering.)
enum Gen { V1, V0 };
// The v1 warp kernel the backend launches for order n (launch.rs Variant::Warp8, Warp16, Warp).
template <class Cov, typename T> static auto warp_v1(int n) {
    return n <= 8 ? K<Cov, T>::warp8 : n <= 16 ? K<Cov, T>::warp16 : K<Cov, T>::warp;
}
static const char* GEN_NAME[] = {"v1", "v0"};
static Shape v0_shape(const std::string& variant, Shape v1, int n, int B, size_t sz) {
    if (variant == "warp") {
        const size_t e = ((size_t)(n * (n + 1) + 2 * n) + 1) & ~(size_t)1;
        return Shape{(unsigned)((B + BGP_WARPS_PER_BLOCK - 1) / BGP_WARPS_PER_BLOCK), 32 * BGP_WARPS_PER_BLOCK,
                     (unsigned)(BGP_WARPS_PER_BLOCK * e * sz)};
    }
    if (variant == "block") return Shape{v1.grid, v1.block, (unsigned)(v1.smem - BGP_IL_MAX * sz)};
    return v1;
}
template <typename V> static void same_numbers(const char* what, const std::vector<V>& v1, const std::vector<V>& v0) {
    const double tol = sizeof(V) == 8 ? 1e-12 : 1e-5;
    double scale = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < v1.size(); ++i) {
        const double a = (double)v1[i], b = (double)v0[i];
        if (std::isnan(a) || std::isnan(b)) {
            if (std::isnan(a) != std::isnan(b)) {
                check(false, what, -1, (int)i, a, b);
                return;
            }
            continue;
        }
        scale = std::max(scale, std::fabs(b));
        if (std::fabs(a - b) > worst) worst = std::fabs(a - b), at = i;
    }
    if (worst > tol * (1 + scale)) check(false, what, -1, (int)at, (double)v1[at], (double)v0[at]);
    g_worst[sizeof(V) == 8] = std::max(g_worst[sizeof(V) == 8], worst / (1 + scale));
}

// Barriers per member of the fused kernels, by generation (printed at the end: the emulation's
// count of what the v1 changes remove).
struct Counts { double block = 0, warp = 0, shfl = 0; };
static std::map<std::string, Counts> g_counts;
static void take_counts(const std::string& key, int members) {
    Counts c;
    c.block = (double)g_sync_count[SYNCTHREADS] / members;
    c.warp = (double)g_sync_count[SYNCWARP] / members;
    c.shfl = (double)(g_sync_count[SHFL_XOR] + g_sync_count[SHFL_IDX] + g_sync_count[VOTE]) / members;
    g_counts[key] = c;
    for (auto& v : g_sync_count) v = 0;
}

// One plan line: key=value tokens.
// One case: B members of n points in d dimensions through one variant of kernel Cov in precision
// T, every launch with the plan's shape. Member 0 has a coincident pair of points (rows 0 and 1);
// with `empty`, member 2 has no observed point; with `yvar`, known noise is passed (member 1 all
// zeros), else a null pointer.
template <class Cov, typename T> static void run_case(const Plan& pl) {
    const Kind kind = kind_of<Cov>();
    const std::string variant = pl.str("variant");
    const int n = (int)pl.num("n"), d = (int)pl.num("d"), B = (int)pl.num("b"), M = (int)pl.num("m");
    const bool with_yvar = pl.num("yvar") != 0, empty = pl.num("empty") != 0;
    const Order order = (Order)pl.num("order"), order2 = (Order)pl.num("order2");
    const double tol = sizeof(T) == 8 ? 1e-10 : 2e-3;
    const Shape member = pl.shape("member"), gram_s = pl.shape("gram"), pred_s = pl.shape("predict"),
                cov_s = pl.shape("cov");
    const size_t work_per = (size_t)pl.num("work");
    g_case = std::string(K<Cov, T>::name) + " " + variant + " n=" + std::to_string(n) + " d=" + std::to_string(d) +
             " B=" + std::to_string(B) + (with_yvar ? " yvar" : "") + (empty ? " empty" : "");
    ++cases;
    std::mt19937_64 rng(pl.num("seed"));
    std::uniform_real_distribution<double> U(0, 1);
    const int na = 3, P = d + 3 + (Cov::has_alpha ? 1 : 0);
    std::vector<double> x(B * n * d), y(B * n), yv(B * n);
    std::vector<uint8_t> mask(B * n);
    std::vector<Hyp> hyp(B);
    for (auto& v : x) v = 3 * U(rng) + 10;  // an offset that the centring removes
    for (auto& v : y) v = U(rng);
    for (int i = 0; i < B * n; ++i) mask[i] = (i % n == 0) || U(rng) > 0.2;
    for (int i = 0; i < B * n; ++i) yv[i] = (i / n == 1) ? 0.0 : 0.2 * U(rng);
    if (n >= 2) {
        mask[1] = 1;
        for (int t = 0; t < d; ++t) x[d + t] = x[t];
    }
    if (empty && B >= 3) for (int i = 0; i < n; ++i) mask[2 * n + i] = 0;
    for (int i = 0; i < B * n; ++i)
        if (!mask[i]) { y[i] = NAN; yv[i] = NAN; for (int t = 0; t < d; ++t) x[i * d + t] = NAN; }
    for (auto& h : hyp) {
        h.ls.resize(d);
        for (auto& l : h.ls) l = 0.5 + U(rng);
        h.s = 0.5 + U(rng); h.noise = 0.05 + 0.1 * U(rng); h.mu = U(rng) - 0.5; h.alpha = 0.3 + 2 * U(rng);
    }
    // Host preparation as in src/backend/cuda/mll.rs: x centred on each member's observed
    // points (0 when masked), residuals, real lengthscales, yvar at observed points.
    std::vector<double> centre(B * d, 0.0);
    std::vector<T> xs(B * n * d, T(0)), r(B * n, T(0)), lt(B * d), st(B), nt_(B), mt(B), at(B), yt(B * n, T(0)),
        jit(B * na, T(0));
    for (int b = 0; b < B; ++b) {
        int cnt = 0;
        for (int i = 0; i < n; ++i)
            if (mask[b * n + i]) { ++cnt; for (int t = 0; t < d; ++t) centre[b * d + t] += x[(b * n + i) * d + t]; }
        for (int t = 0; t < d; ++t) centre[b * d + t] = cnt ? centre[b * d + t] / cnt : 0.0;
        for (int i = 0; i < n; ++i) {
            if (!mask[b * n + i]) continue;
            r[b * n + i] = T(y[b * n + i] - hyp[b].mu);
            yt[b * n + i] = T(yv[b * n + i]);
            for (int t = 0; t < d; ++t) xs[(b * n + i) * d + t] = T(x[(b * n + i) * d + t] - centre[b * d + t]);
        }
        for (int t = 0; t < d; ++t) lt[b * d + t] = T(hyp[b].ls[t]);
        st[b] = T(hyp[b].s); nt_[b] = T(hyp[b].noise); mt[b] = T(hyp[b].mu); at[b] = T(hyp[b].alpha);
    }
    // Exactly sized inputs: null for rq's alpha and yvar where the host passes null.
    std::vector<T> at_exact = Cov::has_alpha ? at : std::vector<T>();
    const T* ap = Cov::has_alpha ? at_exact.data() : nullptr;
    const T* yp = with_yvar ? yt.data() : nullptr;
    auto yv_of = [&](int b) { return with_yvar ? yv.data() + b * n : nullptr; };
    const std::string kn = K<Cov, T>::name;

    // Gram.
    std::vector<T> G(B * n * n);
    launch("gram_" + kn, gram_s, order, 1, [&] {
        K<Cov, T>::gram(xs.data(), n * d, mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, B, n, d, G.data());
    });
    for (int b = 0; b < B; ++b)
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) {
                const bool oi = mask[b * n + i], oj = mask[b * n + j];
                double want;
                if (!oi || !oj) want = i == j ? 1.0 : 0.0;
                else {
                    double q = 0;
                    for (int t = 0; t < d; ++t) { double u = (x[(b * n + i) * d + t] - x[(b * n + j) * d + t]) / hyp[b].ls[t]; q += u * u; }
                    want = hyp[b].s * ref_phi(kind, q, hyp[b].alpha);
                    if (i == j) want += hyp[b].noise + (with_yvar ? yv[b * n + i] : 0.0);
                }
                const double got = G[(b * n + i) * n + j];
                check(std::fabs(got - want) <= tol * (1 + std::fabs(want)), "gram", b, i * n + j, got, want);
            }

    const Shape member0 = v0_shape(variant, member, n, B, sizeof(T));
    // Cholesky of the Gram matrices through the same variant (chol_*), no jitter needed; v1
    // checked against the reference and against v0.
    {
        std::vector<T> Lc(B * n * n), Lc0(B * n * n), work(B * work_per);
        std::vector<int> att(B, -7), att0(B, -7);
        for (Gen gen : {V0, V1}) {
            std::vector<T>& out = gen == V1 ? Lc : Lc0;
            std::vector<int>& at = gen == V1 ? att : att0;
            std::fill(work.begin(), work.end(), T(NAN));
            const std::string name = std::string("chol_") + variant + (gen == V0 ? "_v0" : "") + (sizeof(T) == 8 ? "_f64" : "_f32");
            launch(name, gen == V1 ? member : member0, order2, 2, [&] {
                if (gen == V1) {
                    if (variant == "warp") Chol<T>::warp(G.data(), jit.data(), na, B, n, out.data(), at.data());
                    else if (variant == "block") Chol<T>::block(G.data(), jit.data(), na, B, n, out.data(), at.data());
                    else Chol<T>::global(G.data(), jit.data(), na, B, n, out.data(), at.data(), work.data());
                } else {
                    if (variant == "warp") Chol<T>::warp0(G.data(), jit.data(), na, B, n, out.data(), at.data());
                    else if (variant == "block") Chol<T>::block0(G.data(), jit.data(), na, B, n, out.data(), at.data());
                    else Chol<T>::global0(G.data(), jit.data(), na, B, n, out.data(), at.data(), work.data());
                }
            });
        }
        same_numbers("chol factor v1 == v0", Lc, Lc0);
        same_bits("chol attempt v1 == v0", att, att0);
        for (int b = 0; b < B; ++b) {
            std::vector<double> a(G.begin() + b * n * n, G.begin() + (b + 1) * n * n);
            const bool ok = dense_cholesky(n, a);
            check(ok && att[b] == 0, "chol attempt", b, 0, att[b], 0);
            for (int e = 0; e < n * n; ++e)
                check(std::fabs(double(Lc[b * n * n + e]) - a[e]) <= tol * 10 * (1 + std::fabs(a[e])), "chol factor", b, e, Lc[b * n * n + e], a[e]);
        }
    }

    std::vector<T> mll(B), grad(B * P), L(B * n * n), alpha(B * n), work(B * work_per);
    std::vector<int> att(B, -7);
    auto fused = [&](int flags, Order o, uint64_t seed, Gen gen = V1) {
        std::fill(work.begin(), work.end(), T(NAN));
        std::fill(mll.begin(), mll.end(), T(NAN));
        std::fill(grad.begin(), grad.end(), T(NAN));
        std::fill(att.begin(), att.end(), -7);
        for (auto& v : g_sync_count) v = 0;
        auto entry = K<Cov, T>::warp;
        if (variant == "warp") entry = gen == V0 ? K<Cov, T>::warp0 : warp_v1<Cov, T>(n);
        if (variant == "block") entry = gen == V1 ? K<Cov, T>::block : K<Cov, T>::block0;
        const std::string name = "gp_mll_" + variant + (gen == V0 ? "_v0_" : "_") + kn + " flags=" + std::to_string(flags);
        launch(name, gen == V1 ? member : member0, o, seed, [&] {
            if (variant != "global")
                entry(xs.data(), n * d, r.data(), mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data());
            else
                (gen == V1 ? K<Cov, T>::global : K<Cov, T>::global0)(xs.data(), n * d, r.data(), mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data(), work.data());
        });
        if (flags == 3)
            take_counts(std::string(K<Cov, T>::name) + " " + variant + " n=" + std::to_string(n) + " d=" + std::to_string(d) + " " + GEN_NAME[gen], B);
    };
    // v0 first, kept for the comparison with v1.
    fused(3, order, 9, V0);
    const auto mll0 = mll, grad0 = grad, L0 = L, alpha0 = alpha;
    const auto att0 = att;
    // Under two schedules: bit-identical outputs.
    fused(3, order2, 3);
    const auto mll2 = mll, grad2 = grad, L2 = L, alpha2 = alpha;
    const auto att2 = att;
    fused(3, order, 4);
    same_bits("mll under two schedules", mll, mll2);
    same_bits("gradient under two schedules", grad, grad2);
    same_bits("factor under two schedules", L, L2);
    same_bits("alpha under two schedules", alpha, alpha2);
    same_bits("attempt under two schedules", att, att2);
    same_numbers("mll v1 == v0", mll, mll0);
    same_numbers("gradient v1 == v0", grad, grad0);
    same_numbers("factor v1 == v0", L, L0);
    if (sizeof(T) == 8) {
        same_numbers("alpha v1 == v0", alpha, alpha0);
    } else {
        // f32: alpha = K^-1 r moves by about cond(K) eps under any change of rounding (N = 240:
        // 2e-5 of itself); where v1 and v0 differ by more than 1e-5, v1 must be as accurate as
        // v0 against the f64 reference (within twice v0's error).
        double scale = 0, diff = 0, e1 = 0, e0 = 0;
        for (int b = 0; b < B; ++b) {
            const Ref rf = reference(kind, n, d, x.data() + b * n * d, y.data() + b * n, mask.data() + b * n, yv_of(b), hyp[b], nullptr);
            for (int i = 0; i < n && !rf.alpha.empty(); ++i) {
                const double a1 = alpha[b * n + i], a0 = alpha0[b * n + i], w = rf.alpha[i];
                scale = std::max(scale, std::fabs(a0));
                diff = std::max(diff, std::fabs(a1 - a0));
                e1 = std::max(e1, std::fabs(a1 - w));
                e0 = std::max(e0, std::fabs(a0 - w));
            }
        }
        check(diff <= 1e-5 * (1 + scale) || e1 <= 2 * e0, "f32 alpha v1 as accurate as v0", -1, 0, e1, e0);
        if (diff > 1e-5 * (1 + scale)) printf("NOTE %s: f32 alpha |v1 - v0| %.3g of max |alpha|; error vs f64: v1 %.3g, v0 %.3g\n", g_case.c_str(), diff / (1 + scale), e1, e0);
    }
    same_bits("attempt v1 == v0", att, att0);
    for (int b = 0; b < B; ++b) {
        const double* xb = x.data() + b * n * d;
        auto ref = [&](const Hyp& h) { return reference(kind, n, d, xb, y.data() + b * n, mask.data() + b * n, yv_of(b), h, nullptr).mll; };
        const double want = ref(hyp[b]);
        check(att[b] == 0, "attempt", b, 0, att[b], 0);
        check(std::fabs(double(mll[b]) - want) <= tol * (1 + std::fabs(want)), "mll", b, 0, mll[b], want);
        const double h = 1e-5;
        for (int p = 0; p < P; ++p) {
            auto f = [&](double e) {
                Hyp h2 = hyp[b];
                if (p < d) h2.ls[p] *= exp(e);
                else if (p == d) h2.s *= exp(e);
                else if (p == d + 1) h2.noise *= exp(e);
                else if (p == d + 2) h2.mu += e;
                else h2.alpha *= exp(e);
                return ref(h2);
            };
            const double fd = (f(h) - f(-h)) / (2 * h);
            const double g = grad[b * P + p];
            check(std::fabs(g - fd) <= std::max(tol, 1e-5) * 10 * (1 + std::fabs(fd)), "gradient", b, p, g, fd);
        }
    }
    // Prediction from the factor and alpha the fused kernel writes (factor flag only); test
    // points centred as the member's training points.
    fused(2, order2, 5);
    std::vector<double> z(M * d);
    for (auto& v : z) v = 3 * U(rng) + 10;
    std::vector<T> zt(B * M * d), V(B * n * M), om(B * M), ov(B * M), oc(B * M * M);
    std::fill(V.begin(), V.end(), T(NAN));
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < M * d; ++t) zt[b * M * d + t] = T(z[t] - centre[b * d + t % d]);
    launch("predict_" + kn, pred_s, order, 6, [&] {
        K<Cov, T>::predict(xs.data(), n * d, mask.data(), zt.data(), M * d, lt.data(), st.data(), ap, mt.data(), L.data(), alpha.data(), att.data(), B, n, M, d, V.data(), om.data(), ov.data());
    });
    launch("predict_cov_" + kn, cov_s, order2, 7, [&] {
        K<Cov, T>::cov(zt.data(), M * d, lt.data(), st.data(), ap, att.data(), V.data(), B, n, M, d, oc.data());
    });
    for (int b = 0; b < B; ++b) {
        const double s = hyp[b].s;
        for (int t = 0; t < M; ++t) {
            Ref rf = reference(kind, n, d, x.data() + b * n * d, y.data() + b * n, mask.data() + b * n, yv_of(b), hyp[b], z.data() + t * d);
            const double wm = hyp[b].mu + rf.mean_z, wv = std::max(s - rf.quad_z, 0.0);
            check(std::fabs(double(om[b * M + t]) - wm) <= tol * (1 + std::fabs(wm)), "predict mean", b, t, om[b * M + t], wm);
            check(std::fabs(double(ov[b * M + t]) - wv) <= tol * (1 + s), "predict var", b, t, ov[b * M + t], wv);
            check(std::fabs(double(oc[(b * M + t) * M + t]) - (s - rf.quad_z)) <= tol * (1 + s), "predict cov diag", b, t, oc[(b * M + t) * M + t], s - rf.quad_z);
        }
        // An off-diagonal entry of the covariance of an empty member is the prior's.
        if (empty && b == 2 && M >= 2) {
            double q = 0;
            for (int t = 0; t < d; ++t) { double u = (z[t] - z[d + t]) / hyp[b].ls[t]; q += u * u; }
            const double want = s * ref_phi(kind, q, hyp[b].alpha);
            check(std::fabs(double(oc[(b * M) * M + 1]) - want) <= tol * (1 + s), "prior cov", b, 1, oc[(b * M) * M + 1], want);
        }
    }
}

// Jitter through gp_mll_<variant> (rbf, D = 1), B members on one launch (in the v1 warp variant
// they share a warp): member 0 has a negative diagonal until attempt 1's jitter; member 1 never
// factors (config 0: NaN outputs, attempt -1) or factors at attempt 0 (config 1: it refactors
// with its own jitter while member 0 retries). v1 is checked against the reference and v0.
template <typename T> static void run_fused_jitter(const Plan& pl, int config) {
    const std::string variant = pl.str("variant");
    const int n = (int)pl.num("n"), B = (int)pl.num("b"), na = 3, d = 1, P = d + 3;
    const Shape member = pl.shape("member");
    const size_t work_per = (size_t)pl.num("work");
    g_case = "jitter gp_mll_" + variant + "_rbf config " + std::to_string(config) + (sizeof(T) == 8 ? " f64" : " f32");
    ++cases;
    std::vector<double> x(B * n), y(B * n);
    std::vector<T> xs(B * n), r(B * n), lt(B, T(0.8)), st(B, T(1)), nt(B), jit(B * na);
    std::vector<uint8_t> mask(B * n, 1);
    for (int i = 0; i < B * n; ++i) {
        x[i] = 0.7 * (i % n) - 0.35 * (n - 1);
        y[i] = std::sin(1.3 * i);
        xs[i] = T(x[i]);
        r[i] = T(y[i]);
    }
    const double jit0[3] = {0, 4, 8}, jit_fail[3] = {0, 0.5, 1};
    for (int b = 0; b < B; ++b) {
        const bool fails = b == 1 && config == 0, easy = b == 1 && config == 1;
        nt[b] = T(easy ? 0.1 : -3.0);
        for (int t = 0; t < na; ++t) jit[b * na + t] = T(fails ? jit_fail[t] : jit0[t]);
    }
    std::vector<T> out[2][4];
    std::vector<int> att[2];
    for (Gen gen : {V1, V0}) {
        std::vector<T> mll(B, T(NAN)), grad(B * P, T(NAN)), L(B * n * n, T(NAN)), alpha(B * n, T(NAN)), work(B * work_per, T(NAN));
        std::vector<int> at(B, -7);
        auto args = [&](auto entry, auto... extra) {
            entry(xs.data(), n, r.data(), mask.data(), lt.data(), st.data(), nt.data(), nullptr, nullptr, jit.data(), na, B, n, d, 3, mll.data(), grad.data(), at.data(), L.data(), alpha.data(), extra...);
        };
        launch(g_case + " " + GEN_NAME[gen], gen == V1 ? member : v0_shape(variant, member, n, B, sizeof(T)), (Order)pl.num("order"), 11, [&] {
            if (variant == "warp") args(gen == V1 ? warp_v1<RbfCov, T>(n) : K<RbfCov, T>::warp0);
            else if (variant == "block") args(gen == V1 ? K<RbfCov, T>::block : K<RbfCov, T>::block0);
            else args(gen == V1 ? K<RbfCov, T>::global : K<RbfCov, T>::global0, work.data());
        });
        out[gen][0] = mll, out[gen][1] = grad, out[gen][2] = L, out[gen][3] = alpha, att[gen] = at;
    }
    const double tol = sizeof(T) == 8 ? 1e-10 : 2e-3;
    const auto& mll = out[V1][0];
    check(att[V1][0] == 1, "fused jitter attempt", 0, 0, att[V1][0], 1);
    Hyp h{{0.8}, 1.0, -3.0 + jit0[1], 0.0, 1.0};
    const double want = reference(RBF, n, d, x.data(), y.data(), mask.data(), nullptr, h, nullptr).mll;
    check(std::fabs(double(mll[0]) - want) <= tol * (1 + std::fabs(want)), "fused jitter mll", 0, 0, mll[0], want);
    if (B >= 2 && config == 0) {
        check(att[V1][1] == -1 && std::isnan((double)mll[1]), "fused jitter failure", 1, 0, att[V1][1], -1);
        for (int k = 0; k < P; ++k) check(std::isnan((double)out[V1][1][P + k]), "fused jitter failure gradient", 1, k, out[V1][1][P + k], NAN);
        for (int i = 0; i < n; ++i) check(std::isnan((double)out[V1][3][n + i]), "fused jitter failure alpha", 1, i, out[V1][3][n + i], NAN);
    }
    if (B >= 2 && config == 1) {
        Hyp h1{{0.8}, 1.0, 0.1, 0.0, 1.0};
        const double w1 = reference(RBF, n, d, x.data() + n, y.data() + n, mask.data() + n, nullptr, h1, nullptr).mll;
        check(att[V1][1] == 0 && std::fabs(double(mll[1]) - w1) <= tol * (1 + std::fabs(w1)), "fused jitter sibling", 1, 0, mll[1], w1);
    }
    same_bits("fused jitter attempts v1 == v0", att[V1], att[V0]);
    for (int o = 0; o < 4; ++o) same_numbers("fused jitter outputs v1 == v0", out[V1][o], out[V0][o]);
}

// Jitter through chol_<variant>: member 0 has a zero last row and column (attempt 0 meets a
// zero pivot, attempt 1 succeeds with pivot sqrt(jitter)); member 1 is a plain SPD matrix.
template <typename T> static void run_jitter(const Plan& pl) {
    const std::string variant = pl.str("variant");
    const int n = (int)pl.num("n"), B = (int)pl.num("b"), na = 3;
    const Shape member = pl.shape("member");
    const size_t work_per = (size_t)pl.num("work");
    for (Gen gen : {V1, V0}) {
        g_case = std::string("jitter chol_") + variant + (gen == V0 ? "_v0" : "") + (sizeof(T) == 8 ? "_f64" : "_f32") + " n=" + std::to_string(n);
        ++cases;
        std::vector<T> A(B * n * n, T(0)), jit(B * na), L(B * n * n), work(B * work_per);
        std::fill(work.begin(), work.end(), T(NAN));
        std::vector<int> att(B, -7);
        for (int b = 0; b < B; ++b) {
            jit[b * na] = T(0), jit[b * na + 1] = T(1e-8), jit[b * na + 2] = T(1e-7);
            for (int i = 0; i < n; ++i) A[b * n * n + i * n + i] = (b == 0 && i == n - 1) ? T(0) : T(2);
        }
        A[n * n + 2 * n + 1] = A[n * n + n + 2] = T(1);
        launch(g_case, gen == V1 ? member : v0_shape(variant, member, n, B, sizeof(T)), (Order)pl.num("order"), 8, [&] {
            if (variant == "warp") (gen == V1 ? Chol<T>::warp : Chol<T>::warp0)(A.data(), jit.data(), na, B, n, L.data(), att.data());
            else if (variant == "block") (gen == V1 ? Chol<T>::block : Chol<T>::block0)(A.data(), jit.data(), na, B, n, L.data(), att.data());
            else (gen == V1 ? Chol<T>::global : Chol<T>::global0)(A.data(), jit.data(), na, B, n, L.data(), att.data(), work.data());
        });
        const double tl = sizeof(T) == 8 ? 1e-12 : 1e-6;
        check(att[0] == 1 && att[1] == 0, "chol attempts", 0, 0, att[0], att[1]);
        check(std::fabs(double(L[n * n - 1]) - 1e-4) < tl, "chol jitter pivot", 0, n * n - 1, L[n * n - 1], 1e-4);
        check(std::fabs(double(L[n * n + 2 * n + 1]) - 1 / sqrt(2.0)) < tl && L[n * n + n + 2] == T(0), "chol values", 1, 0, L[n * n + 2 * n + 1], 1 / sqrt(2.0));
    }
    for (int config = 0; config < 2; ++config) run_fused_jitter<T>(pl, config);
}

template <typename T> static void dispatch_kernel(const Plan& pl) {
    with_covariance(pl.str("kernel"), [&](auto cov) { run_case<decltype(cov), T>(pl); });
}

int main(int argc, char** argv) {
    if (argc < 2) { printf("usage: harness PLAN\n"); return 2; }
    emu_install_handlers();
    std::map<std::string, int> per_variant;
    for_each_plan_line(argv[1], [&](const Plan& pl) {
        const bool f64 = pl.str("dtype") == "f64";
        if (pl.what == "case") f64 ? dispatch_kernel<double>(pl) : dispatch_kernel<float>(pl);
        else if (pl.what == "jitter") f64 ? run_jitter<double>(pl) : run_jitter<float>(pl);
        else { printf("unknown plan line %s\n", pl.what.c_str()); exit(2); }
        per_variant[pl.str("variant") + "/" + pl.str("dtype")]++;
    });
    printf("barriers per member of gp_mll (flags 3), by case and generation: __syncthreads, __syncwarp, shuffles+votes\n");
    for (auto& [k, c] : g_counts) printf("COUNT %s: %.1f %.1f %.1f\n", k.c_str(), c.block, c.warp, c.shfl);
    printf("largest |v1 - v0| / (1 + max |v0|) over every output array: f64 %.3g, f32 %.3g\n", g_worst[1], g_worst[0]);
    std::string pv;
    for (auto& [k, v] : per_variant) pv += " " + k + ":" + std::to_string(v);
    printf("%d cases (variant/dtype:%s), %llu launches, %llu blocks, %llu thread switches, bounds checked by %s, %d failures\n",
           cases, pv.c_str(), g_launches, g_blocks, g_switches, BGP_ASAN ? "AddressSanitizer" : "guard pages", fails);
    return fails != 0;
}
