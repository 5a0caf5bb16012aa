// Host emulation of the CUDA kernels at extreme lengthscales (issue 21, point 9), compiled and
// run by tests/lengthscales.rs: the data of that file (N = 6 points in 1-D, s = 1.7, noise 0.3,
// mean 0.2, rq's alpha = 1, and 1e-3 to 0.49 at tiny lengthscales) through gram_*, gp_mll_*
// (the variant each plan line names) and predict_*, in f64 and f32, with lengthscales from
// 1e-300 to f64::MAX. A tiny lengthscale makes every pair of distinct points uncorrelated,
// K = (s + noise) I; a huge one makes them fully correlated, K = s 1 1^T + noise I; MLL,
// gradient and prediction are checked against these closed forms (Sherman-Morrison), as the
// CPU's are in tests/lengthscales.rs. In f32 a lengthscale below float's range arrives as 0 and
// one above it as inf: the kernels must still give the limit, and never NaN for coincident
// coordinates (the prediction at x_0 itself).
#include "cuda_host.h"

#include "gram.cu"
#include "gp.cu"
#include "predict.cu"
#include "harness_common.h"

// The entry points this harness launches, by covariance kernel and precision.
template <class Cov, typename T> struct E;
#define BGP_EXTREME_ENTRIES(COV, KN, T, DT)                  \
    template <> struct E<COV, T> {                           \
        static constexpr auto warp8 = gp_mll_warp8_##KN##_##DT;   \
        static constexpr auto block = gp_mll_block_##KN##_##DT;   \
        static constexpr auto global = gp_mll_global_##KN##_##DT; \
        static constexpr auto gram = gram_##KN##_##DT;            \
        static constexpr auto predict = predict_##KN##_##DT;      \
        static constexpr const char* name = #KN "_" #DT;          \
    };
BGP_FOR_EACH_COVARIANCE(BGP_EXTREME_ENTRIES, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_EXTREME_ENTRIES, float, f32)

constexpr int N = 6;
constexpr double S = 1.7, NOISE = 0.3, MEAN = 0.2;

static int fails = 0, cases = 0;
static std::string g_case;
static void check(bool ok, const char* what, double got, double want) {
    if (ok) return;
    if (fails < 40) printf("FAIL %s: %s got %.12g want %.12g\n", g_case.c_str(), what, got, want);
    ++fails;
}
static void close(const char* what, double got, double want, double tol) {
    check(std::fabs(got - want) <= tol * (1 + std::fabs(want)), what, got, want);
}

// The closed forms for K = c 1 1^T + v I (c = s, v = noise when correlated; c = 0, v = s + noise
// when not): mll, d/d mean, d/dlog s, d/dlog noise.
struct Closed { double mll, g_mean, g_log_s, g_log_noise; };
static Closed closed(const double* r, bool correlated) {
    const double n = N, c = correlated ? S : 0.0, v = correlated ? NOISE : S + NOISE;
    double sum_r = 0, rr = 0;
    for (int i = 0; i < N; ++i) sum_r += r[i], rr += r[i] * r[i];
    const double den = v + n * c;
    double sum_a = 0, aa = 0;
    for (int i = 0; i < N; ++i) {
        const double a = (r[i] - c * sum_r / den) / v;
        sum_a += a, aa += a * a;
    }
    const double quad = (rr - c * sum_r * sum_r / den) / v;
    const double logdet = n * log(v) + log(1 + n * c / v);
    const double tr_inv = (n - c * n / den) / v;
    const double g_s = correlated ? 0.5 * S * (sum_a * sum_a - n / den) : 0.5 * S * (aa - tr_inv);
    return {-0.5 * quad - 0.5 * logdet - 0.5 * n * log(2 * M_PI), sum_a, g_s, 0.5 * NOISE * (aa - tr_inv)};
}

// One plan line: kernel Cov in precision T through the gp_mll variant `variant`, at lengthscale
// `l` (given as its f64 bits in hex, so that f64::MAX travels exactly), rq with shape `alpha`
// (1, or below 0.5 at a tiny lengthscale: rq's limit 0 at infinite distance, not its value at
// the cap).
template <class Cov, typename T> static void run_extreme(const Plan& pl) {
    const std::string variant = pl.str("variant");
    uint64_t bits = std::stoull(pl.str("lbits"), nullptr, 16);
    double l;
    memcpy(&l, &bits, sizeof l);
    const double shape = std::stod(pl.str("alpha"));
    const bool correlated = l > 1;
    const Shape member = pl.shape("member"), gram_s = pl.shape("gram"), pred_s = pl.shape("predict");
    const size_t work_per = (size_t)pl.num("work");
    const Order order = (Order)pl.num("order");
    char buf[64];
    snprintf(buf, sizeof buf, " l=%g alpha=%g ", l, shape);
    g_case = std::string(E<Cov, T>::name) + buf + variant;
    ++cases;
    const double tol = sizeof(T) == 8 ? 1e-10 : 2e-4;
    const int B = 1, d = 1, na = 3, P = d + 3 + (Cov::has_alpha ? 1 : 0);
    // x_i = -1 + 0.37 i centred on its mean; y_i = sin(1.3 i) + 0.1 i.
    double xr[N], r[N];
    for (int i = 0; i < N; ++i) xr[i] = -1.0 + 0.37 * i, r[i] = std::sin(1.3 * i) + 0.1 * i - MEAN;
    const double centre = -1.0 + 0.37 * (N - 1) / 2.0;
    std::vector<T> xs(N), rt(N), lt{T(l)}, st{T(S)}, nt{T(NOISE)}, mt{T(MEAN)}, at{T(shape)}, jit(na, T(0));
    for (int i = 0; i < N; ++i) xs[i] = T(xr[i] - centre), rt[i] = T(r[i]);
    std::vector<uint8_t> mask(N, 1);
    const T* ap = Cov::has_alpha ? at.data() : nullptr;

    std::vector<T> G(N * N, T(NAN));
    launch("gram", gram_s, order, 1, [&] {
        E<Cov, T>::gram(xs.data(), N, mask.data(), lt.data(), st.data(), nt.data(), ap, nullptr, B, N, d, G.data());
    });
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {
            const double want = (i == j ? S + NOISE : correlated ? S : 0.0);
            close("gram", G[i * N + j], want, tol);
        }

    std::vector<T> mll(B, T(NAN)), grad(B * P, T(NAN)), L(N * N, T(NAN)), alpha(N, T(NAN)), work(work_per, T(NAN));
    std::vector<int> att(B, -7);
    launch("gp_mll_" + variant, member, order, 2, [&] {
        auto args = [&](auto entry, auto... extra) {
            entry(xs.data(), N, rt.data(), mask.data(), lt.data(), st.data(), nt.data(), ap, nullptr, jit.data(), na, B, N, d,
                  BGP_FLAG_GRAD | BGP_FLAG_FACTOR, mll.data(), grad.data(), att.data(), L.data(), alpha.data(), extra...);
        };
        if (variant == "warp") args(E<Cov, T>::warp8);
        else if (variant == "block") args(E<Cov, T>::block);
        else args(E<Cov, T>::global, work.data());
    });
    const Closed want = closed(r, correlated);
    check(att[0] == 0, "attempt", att[0], 0);
    close("mll", mll[0], want.mll, tol);
    check(grad[0] == T(0), "d/dlog l is its limit 0", grad[0], 0);
    close("d/dlog s", grad[d], want.g_log_s, tol);
    close("d/dlog noise", grad[d + 1], want.g_log_noise, tol);
    close("d/d mean", grad[d + 2], want.g_mean, tol);
    if (Cov::has_alpha) check(std::isfinite((double)grad[d + 3]) && std::fabs((double)grad[d + 3]) < tol, "d/dlog alpha", grad[d + 3], 0);

    // Prediction at x_0 itself and halfway between x_0 and x_1.
    const int M = 2;
    std::vector<T> zt{T(xr[0] - centre), T(xr[0] + 0.185 - centre)}, V(N * M, T(NAN)), om(M), ov(M);
    launch("predict", pred_s, order, 3, [&] {
        E<Cov, T>::predict(xs.data(), N, mask.data(), zt.data(), M, lt.data(), st.data(), ap, mt.data(), L.data(),
                           alpha.data(), att.data(), B, N, M, d, V.data(), om.data(), ov.data());
    });
    if (correlated) {
        // k* = s 1: mean m + s sum(alpha), var s - s^2 n / (noise + n s), at every point.
        for (int t = 0; t < M; ++t) {
            close("predicted mean", om[t], MEAN + S * want.g_mean, tol);
            close("predicted var", ov[t], S - S * S * N / (NOISE + N * S), tol * 10);
        }
    } else {
        close("mean at x_0", om[0], MEAN + S * r[0] / (S + NOISE), tol);
        close("var at x_0", ov[0], S - S * S / (S + NOISE), tol * 10);
        close("mean between points", om[1], MEAN, tol);
        close("var between points", ov[1], S, tol);
    }
}

template <typename T> static void dispatch_kernel(const Plan& pl) {
    with_covariance(pl.str("kernel"), [&](auto cov) { run_extreme<decltype(cov), T>(pl); });
}

int main(int argc, char** argv) {
    if (argc < 2) { printf("usage: extremes_harness PLAN\n"); return 2; }
    emu_install_handlers();
    for_each_plan_line(argv[1], [&](const Plan& pl) {
        if (pl.what != "extreme") { printf("unknown plan line %s\n", pl.what.c_str()); exit(2); }
        pl.str("dtype") == "f64" ? dispatch_kernel<double>(pl) : dispatch_kernel<float>(pl);
    });
    printf("%d cases, bounds checked by %s, %d failures\n", cases, BGP_ASAN ? "AddressSanitizer" : "guard pages", fails);
    return fails != 0;
}
