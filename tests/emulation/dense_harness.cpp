// Host emulation of kernels/dense.cu (run by tests/cuda_dense.rs): the O(N^2) kernels of the
// large-N vendor path, for every covariance kernel in f64 and f32, at the launch shapes of the
// backend (read from the plan the test writes), under two schedules that must give bit-identical
// outputs:
// - dense_shift: a_q = k0_q + jit_q diag(mask_q) for the members with a jitter, the others
//   untouched (bit for bit);
// - dense_pairs: reads only the lower triangle of K^-1 (the upper one is NaN here), and gives
//   sum W Kf, tr W and sum W A (rq) per member and M = W o G on both triangles (0 at masked pairs
//   and on the diagonal), against a reference written here: its own phi (harness_common.h) and
//   psi = -2 dphi/dr2, A = alpha dphi/dalpha by central differences of it.
// Usage: dense_harness PLAN. Prints one summary line; exits 1 on a failure.
#include "cuda_host.h"
#include "dense.cu"
#include "harness_common.h"

template <class Cov, typename T> struct K;
#define BGP_DENSE_ENTRIES(COV, KN, T, DT)                          \
    template <> struct K<COV, T> {                                 \
        static constexpr auto pairs = dense_pairs_##KN##_##DT;     \
        static constexpr const char* name = #KN "_" #DT;           \
    };
BGP_FOR_EACH_COVARIANCE(BGP_DENSE_ENTRIES, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_DENSE_ENTRIES, float, f32)

static int g_fail = 0;
static long long g_checks = 0;

static void expect(bool ok, const std::string& what) {
    ++g_checks;
    if (!ok && g_fail++ < 20) printf("FAIL %s\n", what.c_str());
}

static bool near(double got, double want, double tol, double scale) {
    return fabs(got - want) <= tol * std::max(scale, fabs(want));
}

template <typename T> static void shift_case(int C, int N, Shape sh, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> U(-1, 1);
    std::vector<T> k0((size_t)C * N * N), a((size_t)C * N * N), jit(C);
    std::vector<uint8_t> mask((size_t)C * N);
    for (auto& v : k0) v = (T)U(rng);
    for (auto& v : a) v = (T)7;
    for (auto& m : mask) m = rng() % 3 != 0;
    for (int q = 0; q < C; ++q) jit[q] = q % 3 == 1 ? (T)NAN : (T)(1e-3 * (q + 1));
    launch("dense_shift", sh, Order(seed % 3), seed, [&] { dense_shift<T>(k0.data(), a.data(), jit.data(), mask.data(), C, N); });
    for (int q = 0; q < C; ++q)
        for (int j = 0; j < N; ++j)
            for (int i = 0; i < N; ++i) {
                const size_t e = ((size_t)q * N + j) * N + i;
                const T want = jit[q] != jit[q] ? (T)7 : (T)(k0[e] + ((i == j && mask[(size_t)q * N + i]) ? jit[q] : T(0)));
                ++g_checks;
                if (memcmp(&want, &a[e], sizeof(T)) != 0 && g_fail++ < 20)
                    printf("FAIL dense_shift C=%d N=%d member %d (%d, %d): %g vs %g\n", C, N, q, i, j, (double)a[e], (double)want);
            }
}

template <class Cov, typename T> static void pairs_case(int C, int N, int D, Shape sh, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> U(-1, 1);
    const Kind kind = kind_of<Cov>();
    std::vector<T> x((size_t)C * N * D), ls((size_t)C * D), s(C), ra(C), al((size_t)C * N), kinv((size_t)C * N * N);
    std::vector<uint8_t> mask((size_t)C * N);
    for (int q = 0; q < C; ++q) {
        for (int i = 0; i < N; ++i) {
            mask[(size_t)q * N + i] = i == 0 || rng() % 4 != 0;
            al[(size_t)q * N + i] = mask[(size_t)q * N + i] ? (T)U(rng) : T(0);
            for (int k = 0; k < D; ++k) x[((size_t)q * N + i) * D + k] = mask[(size_t)q * N + i] ? (T)U(rng) : T(0);
        }
        for (int k = 0; k < D; ++k) ls[(size_t)q * D + k] = (T)(0.4 + 0.6 * fabs(U(rng)));
        s[q] = (T)(0.5 + fabs(U(rng)));
        ra[q] = (T)(0.5 + 2 * fabs(U(rng)));
        for (int j = 0; j < N; ++j)
            for (int i = 0; i < N; ++i) kinv[((size_t)q * N + j) * N + i] = i >= j ? (T)U(rng) : (T)NAN;
    }
    const std::vector<T> kin = kinv;
    std::vector<T> sums((size_t)C * 3, (T)NAN), first;
    std::vector<T> out;
    for (int run = 0; run < 2; ++run) {
        kinv = kin;
        std::fill(sums.begin(), sums.end(), (T)NAN);
        launch(std::string("dense_pairs_") + K<Cov, T>::name, sh, run == 0 ? ASCENDING : DESCENDING, seed + run, [&] {
            K<Cov, T>::pairs(x.data(), mask.data(), ls.data(), s.data(), Cov::has_alpha ? ra.data() : nullptr, al.data(),
                             kinv.data(), C, N, D, sums.data());
        });
        if (run == 0) {
            first = sums;
            out = kinv;
        } else {
            expect(memcmp(first.data(), sums.data(), sums.size() * sizeof(T)) == 0 &&
                       memcmp(out.data(), kinv.data(), kinv.size() * sizeof(T)) == 0,
                   std::string(K<Cov, T>::name) + ": two schedules differ");
        }
    }
    const double tol = sizeof(T) == 8 ? 1e-6 : 2e-3, tol_sum = sizeof(T) == 8 ? 1e-10 : 1e-4;
    for (int q = 0; q < C; ++q) {
        const double sq = s[q], a = ra[q];
        double wk = 0, tr = 0, wa = 0, swk = 0, str_ = 0, swa = 0;
        for (int j = 0; j < N; ++j)
            for (int i = j; i < N; ++i) {
                const size_t lo = ((size_t)q * N + j) * N + i, up = ((size_t)q * N + i) * N + j;
                const bool obs = mask[(size_t)q * N + i] && mask[(size_t)q * N + j];
                double m = 0;
                if (obs) {
                    const double w = (double)al[(size_t)q * N + i] * al[(size_t)q * N + j] - (double)kin[lo];
                    if (i == j) {
                        wk += w * sq;
                        swk += fabs(w * sq);
                        tr += w;
                        str_ += fabs(w);
                    } else {
                        double r2 = 0;
                        for (int k = 0; k < D; ++k) {
                            const double u = ((double)x[((size_t)q * N + i) * D + k] - x[((size_t)q * N + j) * D + k]) / ls[(size_t)q * D + k];
                            r2 += u * u;
                        }
                        // Central differences with a relative step (points are distinct: r2 > 0).
                        const double h = 1e-6 * r2, ha = 1e-6 * a;
                        const double psi = -(ref_phi(kind, r2 + h, a) - ref_phi(kind, r2 - h, a)) / h;
                        const double dal = a * (ref_phi(kind, r2, a + ha) - ref_phi(kind, r2, a - ha)) / (2 * ha);
                        wk += 2 * w * sq * ref_phi(kind, r2, a);
                        swk += fabs(2 * w * sq * ref_phi(kind, r2, a));
                        if (kind == RQ) {
                            wa += 2 * w * sq * dal;
                            swa += fabs(2 * w * sq * dal);
                        }
                        m = w * sq * psi;
                    }
                }
                char buf[160];
                snprintf(buf, sizeof buf, "%s C=%d N=%d D=%d member %d M(%d,%d): %g vs %g", K<Cov, T>::name, C, N, D, q, i, j,
                         (double)kinv[lo], m);
                expect(near(kinv[lo], m, tol, 1e-8) && kinv[lo] == kinv[up], buf);
            }
        char buf[200];
        snprintf(buf, sizeof buf, "%s C=%d N=%d D=%d member %d sums: (%g %g %g) vs (%g %g %g)", K<Cov, T>::name, C, N, D, q,
                 (double)sums[q * 3], (double)sums[q * 3 + 1], (double)sums[q * 3 + 2], wk, tr, wa);
        expect(near(sums[q * 3], wk, tol_sum, swk) && near(sums[q * 3 + 1], tr, tol_sum, str_) &&
                   near(sums[q * 3 + 2], wa, tol, swa + 1e-12),
               buf);
    }
}

template <typename T> static void pairs_any(const std::string& kn, int C, int N, int D, Shape sh, uint64_t seed) {
    if (kn == "rbf") pairs_case<RbfCov, T>(C, N, D, sh, seed);
    else if (kn == "matern12") pairs_case<Matern12Cov, T>(C, N, D, sh, seed);
    else if (kn == "matern32") pairs_case<Matern32Cov, T>(C, N, D, sh, seed);
    else if (kn == "matern52") pairs_case<Matern52Cov, T>(C, N, D, sh, seed);
    else pairs_case<RqCov, T>(C, N, D, sh, seed);
}

int main(int argc, char** argv) {
    emu_install_handlers();
    if (argc != 2) {
        printf("usage: dense_harness PLAN\n");
        return 2;
    }
    int lines = 0;
    for_each_plan_line(argv[1], [&](const Plan& pl) {
        const std::string dt = pl.str("dt");
        const int C = (int)pl.num("C"), N = (int)pl.num("N");
        const Shape sh = pl.shape("shape");
        const uint64_t seed = (uint64_t)pl.num("seed");
        ++lines;
        if (pl.what == "shift") {
            if (dt == "f64") shift_case<double>(C, N, sh, seed);
            else shift_case<float>(C, N, sh, seed);
        } else {
            const std::string kn = pl.str("kernel");
            const int D = (int)pl.num("D");
            if (dt == "f64") pairs_any<double>(kn, C, N, D, sh, seed);
            else pairs_any<float>(kn, C, N, D, sh, seed);
        }
    });
    printf("%d plan lines, %lld checks, %d failures\n", lines, g_checks, g_fail);
    return g_fail == 0 && lines > 0 ? 0 : 1;
}
