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
};
template <> struct Chol<float> {
    static constexpr auto warp = chol_warp_f32;
    static constexpr auto block = chol_block_f32;
    static constexpr auto global = chol_global_f32;
};

// One member's hyperparameters in natural units.
struct Hyp { std::vector<double> ls; double s, noise, mu, alpha; };

// Naive dense reference on the observed points of one member (raw, uncentred x): mll, and
// optionally k*^T K^-1 k* and k*^T K^-1 r for one test point z. yv is the member's known noise
// (N,) or null.
struct Ref { double mll, quad_z, mean_z; };
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
        if (!(p > 0)) return {NAN, NAN, NAN};
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
    return {-0.5 * qd - 0.5 * ld - 0.5 * k * log(2 * M_PI), qz, mz};
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

    // Cholesky of the Gram matrices through the same variant (chol_*), no jitter needed.
    {
        std::vector<T> Lc(B * n * n), work(B * work_per);
        std::fill(work.begin(), work.end(), T(NAN));
        std::vector<int> att(B, -7);
        launch(std::string("chol_") + variant + (sizeof(T) == 8 ? "_f64" : "_f32"), member, order2, 2, [&] {
            if (variant == "warp") Chol<T>::warp(G.data(), jit.data(), na, B, n, Lc.data(), att.data());
            else if (variant == "block") Chol<T>::block(G.data(), jit.data(), na, B, n, Lc.data(), att.data());
            else Chol<T>::global(G.data(), jit.data(), na, B, n, Lc.data(), att.data(), work.data());
        });
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
    auto fused = [&](int flags, Order o, uint64_t seed) {
        std::fill(work.begin(), work.end(), T(NAN));
        std::fill(mll.begin(), mll.end(), T(NAN));
        std::fill(grad.begin(), grad.end(), T(NAN));
        std::fill(att.begin(), att.end(), -7);
        launch("gp_mll_" + variant + "_" + kn + " flags=" + std::to_string(flags), member, o, seed, [&] {
            if (variant == "warp")
                K<Cov, T>::warp(xs.data(), n * d, r.data(), mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data());
            else if (variant == "block")
                K<Cov, T>::block(xs.data(), n * d, r.data(), mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data());
            else
                K<Cov, T>::global(xs.data(), n * d, r.data(), mask.data(), lt.data(), st.data(), nt_.data(), ap, yp, jit.data(), na, B, n, d, flags, mll.data(), grad.data(), att.data(), L.data(), alpha.data(), work.data());
        });
    };
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

// Jitter through chol_<variant>: member 0 has a zero last row and column (attempt 0 meets a
// zero pivot, attempt 1 succeeds with pivot sqrt(jitter)); member 1 is a plain SPD matrix.
template <typename T> static void run_jitter(const Plan& pl) {
    const std::string variant = pl.str("variant");
    const int n = (int)pl.num("n"), B = (int)pl.num("b"), na = 3;
    const Shape member = pl.shape("member");
    const size_t work_per = (size_t)pl.num("work");
    g_case = std::string("jitter chol_") + variant + (sizeof(T) == 8 ? "_f64" : "_f32") + " n=" + std::to_string(n);
    ++cases;
    std::vector<T> A(B * n * n, T(0)), jit(B * na), L(B * n * n), work(B * work_per);
    std::fill(work.begin(), work.end(), T(NAN));
    std::vector<int> att(B, -7);
    for (int b = 0; b < B; ++b) {
        jit[b * na] = T(0), jit[b * na + 1] = T(1e-8), jit[b * na + 2] = T(1e-7);
        for (int i = 0; i < n; ++i) A[b * n * n + i * n + i] = (b == 0 && i == n - 1) ? T(0) : T(2);
    }
    A[n * n + 2 * n + 1] = A[n * n + n + 2] = T(1);
    launch(g_case, member, (Order)pl.num("order"), 8, [&] {
        if (variant == "warp") Chol<T>::warp(A.data(), jit.data(), na, B, n, L.data(), att.data());
        else if (variant == "block") Chol<T>::block(A.data(), jit.data(), na, B, n, L.data(), att.data());
        else Chol<T>::global(A.data(), jit.data(), na, B, n, L.data(), att.data(), work.data());
    });
    const double tl = sizeof(T) == 8 ? 1e-12 : 1e-6;
    check(att[0] == 1 && att[1] == 0, "chol attempts", 0, 0, att[0], att[1]);
    check(std::fabs(double(L[n * n - 1]) - 1e-4) < tl, "chol jitter pivot", 0, n * n - 1, L[n * n - 1], 1e-4);
    check(std::fabs(double(L[n * n + 2 * n + 1]) - 1 / sqrt(2.0)) < tl && L[n * n + n + 2] == T(0), "chol values", 1, 0, L[n * n + 2 * n + 1], 1 / sqrt(2.0));
}

template <typename T> static void dispatch_kernel(const Plan& pl) {
    const std::string k = pl.str("kernel");
    if (k == "rbf") run_case<RbfCov, T>(pl);
    else if (k == "matern12") run_case<Matern12Cov, T>(pl);
    else if (k == "matern32") run_case<Matern32Cov, T>(pl);
    else if (k == "matern52") run_case<Matern52Cov, T>(pl);
    else if (k == "rq") run_case<RqCov, T>(pl);
    else { printf("unknown kernel %s\n", k.c_str()); exit(2); }
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
    std::string pv;
    for (auto& [k, v] : per_variant) pv += " " + k + ":" + std::to_string(v);
    printf("%d cases (variant/dtype:%s), %llu launches, %llu blocks, %llu thread switches, bounds checked by %s, %d failures\n",
           cases, pv.c_str(), g_launches, g_blocks, g_switches, BGP_ASAN ? "AddressSanitizer" : "guard pages", fails);
    return fails != 0;
}
