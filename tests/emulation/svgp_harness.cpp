// Host emulation of kernels/svgp.cu (run by tests/svgp_cuda.rs): compiles the SVGP kernels as
// host C++ and checks, for every covariance kernel in f64 and f32, with the factor in shared
// memory and in the global workspace, the ELBO against an independent dense reference written
// here (uncentred points, its own kernel functions and Cholesky, var_f point by point) and every
// gradient (Z, q_mu, q_sqrt, log l, log s, log noise, mean, log alpha) against central
// differences of that reference, on members with masked points, a mini-batch scale c != 1,
// known noise (yvar), a forced jitter retry, no observed point (ELBO = -KL) and a failing one
// (s = inf: NaN everywhere, attempt -1); and the posterior (mean, var, A*) against the dense
// formula. Every launch has the host's shape (src/backend/cuda/launch.rs svgp_launch: one block
// of 256 threads per member, exactly its dynamic shared memory, the SVGP_SMEM decision), read
// from a plan file the test writes, and runs through the strict emulation of cuda_host.h
// (fibers, warp-scoped shuffles, per-block NaN-filled shared memory, bounds checks) under two
// schedules that must give bit-identical outputs. Usage: svgp_harness PLAN. Prints one summary
// line; exits 1 on a failure.
#include "cuda_host.h"
#include "svgp.cu"
#include "harness_common.h"

template <class Cov, typename T> struct K;
#define BGP_SVGP_ENTRIES(COV, KN, T, DT)                                    \
    template <> struct K<COV, T> {                                          \
        static constexpr auto elbo = svgp_elbo_##KN##_##DT;                 \
        static constexpr auto predict = svgp_predict_##KN##_##DT;           \
        static constexpr const char* name = #KN "_" #DT;                    \
    };
BGP_FOR_EACH_COVARIANCE(BGP_SVGP_ENTRIES, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_SVGP_ENTRIES, float, f32)

// One member in natural units. jf: the jitter of the attempt that is meant to work, relative
// to s (the kernel gets the table jit0 * s, jf * s).
struct Member {
    int M, N, D;
    std::vector<double> z, x, y, yv, qmu, Q, ls;
    std::vector<uint8_t> mask;
    double s, noise, mean, alpha, c, jf, jit0;
};

// The reference covariance of member m between points a and b (D each, uncentred).
static double ref_k(Kind kind, const Member& m, const double* a, const double* b) {
    double q = 0;
    for (int t = 0; t < m.D; ++t) { const double u = (a[t] - b[t]) / m.ls[t]; q += u * u; }
    return m.s * ref_phi(kind, q, m.alpha);
}

// The lower Cholesky factor (row-major M x M) of k(Z, Z) + jf s I; false on a pivot that is not
// positive (the rest of the factor is then not meaningful).
static bool ref_factor_zz(Kind kind, const Member& m, std::vector<double>& L) {
    const int M = m.M, D = m.D;
    L.assign((size_t)M * M, 0.0);
    for (int i = 0; i < M; ++i)
        for (int j = 0; j <= i; ++j) L[i * M + j] = ref_k(kind, m, &m.z[i * D], &m.z[j * D]) + (i == j ? m.jf * m.s : 0.0);
    for (int j = 0; j < M; ++j) {
        double p = L[j * M + j];
        for (int t = 0; t < j; ++t) p -= L[j * M + t] * L[j * M + t];
        if (!(p > 0)) return false;
        L[j * M + j] = sqrt(p);
        for (int i = j + 1; i < M; ++i) {
            double v = L[i * M + j];
            for (int t = 0; t < j; ++t) v -= L[i * M + t] * L[j * M + t];
            L[i * M + j] = v / L[j * M + j];
        }
    }
    return true;
}

// The dense reference ELBO.
static double ref_elbo(Kind kind, const Member& m, bool yvar) {
    const int M = m.M, D = m.D;
    auto kern = [&](const double* a, const double* b) { return ref_k(kind, m, a, b); };
    std::vector<double> L;
    if (!ref_factor_zz(kind, m, L)) return NAN;
    double sum = 0;
    std::vector<double> a(M);
    for (int i = 0; i < m.N; ++i) {
        if (!m.mask[i]) continue;
        for (int j = 0; j < M; ++j) {
            double v = kern(&m.z[j * D], &m.x[i * D]);
            for (int t = 0; t < j; ++t) v -= L[j * M + t] * a[t];
            a[j] = v / L[j * M + j];
        }
        double mu = m.mean, a2 = 0, b2 = 0;
        for (int j = 0; j < M; ++j) { mu += a[j] * m.qmu[j]; a2 += a[j] * a[j]; }
        for (int k = 0; k < M; ++k) {
            double bk = 0;
            for (int j = k; j < M; ++j) bk += m.Q[j * M + k] * a[j];
            b2 += bk * bk;
        }
        const double v = m.s - a2 + b2, s2 = m.noise + (yvar ? m.yv[i] : 0.0), e = m.y[i] - mu;
        sum += -0.5 * log(2 * M_PI * s2) - (e * e + v) / (2 * s2);
    }
    double kl = -M;
    for (int i = 0; i < M; ++i) {
        kl += m.qmu[i] * m.qmu[i] - 2 * log(fabs(m.Q[i * M + i]));
        for (int j = 0; j <= i; ++j) kl += m.Q[i * M + j] * m.Q[i * M + j];
    }
    return m.c * sum - 0.5 * kl;
}

static int fails = 0, cases = 0;
static const char* g_name = "";
static void near(const char* what, int b, int idx, double got, double want, double tol, double floor) {
    ++cases;
    const bool ok = std::isnan(want) ? std::isnan(got)
                                     : std::isfinite(got) && fabs(got - want) <= tol * std::max(fabs(want), floor);
    if (ok) return;
    if (fails < 40) printf("FAIL %s %s member=%d idx=%d got %.12g want %.12g\n", g_name, what, b, idx, got, want);
    ++fails;
}

static Member random_member(std::mt19937_64& rng, int M, int N, int D, Kind kind) {
    std::uniform_real_distribution<double> u(0, 1);
    Member m;
    m.M = M; m.N = N; m.D = D;
    m.ls.resize(D);
    for (auto& l : m.ls) l = 0.6 + 0.8 * u(rng);
    m.z.resize(M * D);
    for (int j = 0; j < M; ++j)
        for (int k = 0; k < D; ++k) m.z[j * D + k] = 3.0 + (k == 0 ? 0.7 * m.ls[0] * (j + 0.3 * u(rng)) : 2.0 * u(rng));
    // Z spreads over 0.7 M l_0 along the first dimension (k(Z, Z) well conditioned), x over it.
    const double span = 0.7 * m.ls[0] * M;
    m.x.resize(N * D);
    for (int i = 0; i < N; ++i)
        for (int k = 0; k < D; ++k) m.x[i * D + k] = 3.0 + (k == 0 ? span : 2.0) * u(rng);
    m.y.resize(N);
    m.yv.resize(N);
    m.mask.assign(N, 1);
    for (int i = 0; i < N; ++i) { m.y[i] = sin(3 * m.x[i * D]) + 0.3 * u(rng); m.yv[i] = 0.1 * u(rng); }
    m.qmu.resize(M);
    for (auto& v : m.qmu) v = u(rng) - 0.5;
    m.Q.assign(M * M, 0.0);
    for (int i = 0; i < M; ++i)
        for (int j = 0; j <= i; ++j) m.Q[i * M + j] = i == j ? 0.4 + 0.6 * u(rng) : 0.2 * (u(rng) - 0.5);
    m.s = 0.8 + 0.8 * u(rng);
    m.noise = 0.05 + 0.1 * u(rng);
    m.mean = 0.2 * u(rng);
    m.alpha = kind == RQ ? 0.7 + u(rng) : 1.0;
    m.c = 1.0;
    m.jit0 = -1.0;  // no retry: the table is (jf s, ...)
    return m;
}

// Every parameter of the gradient as (pointer, on the log scale), in the kernel's output order:
// z (M, D), q_mu (M), Q lower (i >= j, row by row), log l, log s, log noise, mean, log alpha.
static std::vector<std::pair<double*, bool>> parameters(Member& m, bool rq) {
    std::vector<std::pair<double*, bool>> p;
    for (auto& v : m.z) p.push_back({&v, false});
    for (auto& v : m.qmu) p.push_back({&v, false});
    for (int i = 0; i < m.M; ++i)
        for (int j = 0; j <= i; ++j) p.push_back({&m.Q[i * m.M + j], false});
    for (auto& v : m.ls) p.push_back({&v, true});
    p.push_back({&m.s, true});
    p.push_back({&m.noise, true});
    p.push_back({&m.mean, false});
    if (rq) p.push_back({&m.alpha, true});
    return p;
}

template <typename V> static void same_bits(const char* what, const std::vector<V>& a, const std::vector<V>& b) {
    ++cases;
    for (size_t i = 0; i < a.size(); ++i)
        if (memcmp(&a[i], &b[i], sizeof(V)) != 0) {
            if (fails < 40)
                printf("FAIL %s %s under two schedules: idx=%zu got %.17g and %.17g\n", g_name, what, i, (double)a[i],
                       (double)b[i]);
            ++fails;
            return;
        }
}

// One plan line's launch: its shape and SMEM decision, and the two schedules.
struct Launch {
    Shape shape;
    bool smem;
    Order order, order2;
};

template <class Cov, typename T>
static void run_elbo(const Launch& ln, std::vector<Member> mem, bool yvar, bool grad_check) {
    const bool smem = ln.smem;
    const Kind kind = kind_of<Cov>();
    const bool f32 = sizeof(T) == 4;
    const double tol = f32 ? 4e-3 : 2e-6;
    const int B = (int)mem.size(), M = mem[0].M, N = mem[0].N, D = mem[0].D, NA = 3;
    const int P = D + 3 + (Cov::has_alpha ? 1 : 0);
    std::vector<T> zs(B * M * D), xs(B * N * D), q(B * M * M);
    std::vector<uint8_t> mask(B * N);
    std::vector<double> r(B * N), sig2(B * N, 1.0), qmu(B * M), ls(B * D), s(B), alpha(B), noise(B), c(B), jit(B * NA);
    for (int b = 0; b < B; ++b) {
        const Member& m = mem[b];
        std::vector<double> centre(D, 0.0);
        for (int k = 0; k < D; ++k) {
            for (int j = 0; j < M; ++j) centre[k] += m.z[j * D + k];
            centre[k] /= M;
        }
        for (int j = 0; j < M; ++j)
            for (int k = 0; k < D; ++k) zs[(b * M + j) * D + k] = (T)((m.z[j * D + k] - centre[k]) / m.ls[k]);
        for (int i = 0; i < N; ++i) {
            mask[b * N + i] = m.mask[i];
            for (int k = 0; k < D; ++k) xs[(b * N + i) * D + k] = m.mask[i] ? (T)((m.x[i * D + k] - centre[k]) / m.ls[k]) : T(0);
            if (m.mask[i]) {
                r[b * N + i] = m.y[i] - m.mean;
                sig2[b * N + i] = m.noise + (yvar ? m.yv[i] : 0.0);
            }
        }
        for (int e = 0; e < M * M; ++e) q[b * M * M + e] = (T)m.Q[e];
        for (int j = 0; j < M; ++j) qmu[b * M + j] = m.qmu[j];
        for (int k = 0; k < D; ++k) ls[b * D + k] = m.ls[k];
        s[b] = m.s; alpha[b] = m.alpha; noise[b] = m.noise; c[b] = m.c;
        // Attempt 0 adds jit0 s when jit0 > 0 (negative: a forced failure first), then jf s.
        if (m.jit0 < 0 && m.jit0 != -1.0) {
            jit[b * NA] = m.jit0 * m.s; jit[b * NA + 1] = m.jf * m.s; jit[b * NA + 2] = 10 * m.jf * m.s;
        } else {
            jit[b * NA] = m.jf * m.s; jit[b * NA + 1] = 10 * m.jf * m.s; jit[b * NA + 2] = 100 * m.jf * m.s;
        }
    }
    std::vector<T> twork(smem ? 1 : B * svgp_twork_elems(M));
    std::vector<double> dwork(B * svgp_dwork_elems(M, D));
    std::vector<double> elbo(B), gz(B * M * D), gqmu(B * M), gq(B * M * M), gh(B * P);
    std::vector<int> att(B);
    // Pass 0 without the gradient (first schedule), passes 1 and 2 with it under the two
    // schedules: the same ELBO, and bit-identical outputs.
    std::vector<double> e0, e1, gz1, gqmu1, gq1, gh1;
    std::vector<int> att1;
    for (int pass = 0; pass < 3; ++pass) {
        const int flags = (smem ? BGP_SVGP_SMEM : 0) | (yvar ? BGP_SVGP_YVAR : 0) | (pass > 0 ? BGP_SVGP_GRAD : 0);
        std::fill(twork.begin(), twork.end(), T(NAN));
        std::fill(dwork.begin(), dwork.end(), NAN);
        for (auto* v : {&elbo, &gz, &gqmu, &gq, &gh}) std::fill(v->begin(), v->end(), 7.0);
        std::fill(att.begin(), att.end(), 7);
        const Order o = pass == 1 ? ln.order2 : ln.order;
        launch(std::string("svgp_elbo_") + g_name + (pass ? " grad" : ""), ln.shape, o, 11 + pass, [&] {
            K<Cov, T>::elbo(zs.data(), xs.data(), mask.data(), r.data(), sig2.data(), qmu.data(), q.data(), ls.data(),
                            s.data(), Cov::has_alpha ? alpha.data() : nullptr, noise.data(), c.data(), jit.data(), NA,
                            B, M, N, D, flags, twork.data(), dwork.data(), elbo.data(), att.data(), gz.data(),
                            gqmu.data(), gq.data(), gh.data());
        });
        if (pass == 0) e0 = elbo;
        if (pass == 1) {
            for (int b = 0; b < B; ++b) near("elbo with and without the gradient", b, 0, elbo[b], e0[b], 0.0, 0.0);
            e1 = elbo, gz1 = gz, gqmu1 = gqmu, gq1 = gq, gh1 = gh, att1 = att;
        }
    }
    same_bits("elbo", elbo, e1);
    same_bits("attempt", att, att1);
    same_bits("d/dz", gz, gz1);
    same_bits("d/dq_mu", gqmu, gqmu1);
    same_bits("d/dq_sqrt", gq, gq1);
    same_bits("d/dhyp", gh, gh1);
    for (int b = 0; b < B; ++b) {
        Member m = mem[b];
        const bool failing = !std::isfinite(m.s);
        const int want_att = failing ? -1 : (m.jit0 < 0 && m.jit0 != -1.0 ? 1 : 0);
        ++cases;
        if (att[b] != want_att) {
            printf("FAIL %s attempt member=%d got %d want %d\n", g_name, b, att[b], want_att);
            ++fails;
        }
        if (failing) {
            near("failed elbo", b, 0, elbo[b], NAN, 0, 0);
            for (int k = 0; k < P; ++k) near("failed hyp gradient", b, k, gh[b * P + k], NAN, 0, 0);
            for (int k = 0; k < M * D; ++k) near("failed z gradient", b, k, gz[b * M * D + k], NAN, 0, 0);
            continue;
        }
        const double want = ref_elbo(kind, m, yvar);
        near("elbo", b, 0, elbo[b], want, tol, 1.0);
        if (!grad_check) continue;
        // Gradients in the kernel's order and central differences of the reference.
        std::vector<double> got;
        for (int e = 0; e < M * D; ++e) got.push_back(gz[b * M * D + e]);
        for (int j = 0; j < M; ++j) got.push_back(gqmu[b * M + j]);
        for (int i = 0; i < M; ++i) {
            for (int j = 0; j <= i; ++j) got.push_back(gq[b * M * M + i * M + j]);
            for (int j = i + 1; j < M; ++j) near("q_sqrt gradient above the diagonal", b, i * M + j, gq[b * M * M + i * M + j], 0.0, 0, 1);
        }
        for (int k = 0; k < P; ++k) got.push_back(gh[b * P + k]);
        auto ps = parameters(m, Cov::has_alpha);
        if (ps.size() != got.size()) { printf("FAIL harness: %zu parameters, %zu gradients\n", ps.size(), got.size()); ++fails; continue; }
        std::vector<double> fd(ps.size());
        double scale = 1.0;
        // Large M: every 7th of Z, q_mu and q_sqrt, and every hyperparameter.
        const size_t first_hyp = (size_t)(M * D + M + M * (M + 1) / 2);
        auto skip = [&](size_t k) { return ps.size() > 150 && k < first_hyp && k % 7 != 0; };
        for (size_t k = 0; k < ps.size(); ++k) {
            if (skip(k)) continue;
            double* v = ps[k].first;
            const double v0 = *v, h = 1e-5;
            auto at = [&](double dv) {
                *v = ps[k].second ? v0 * exp(dv) : v0 + dv;
                return ref_elbo(kind, m, yvar);
            };
            fd[k] = (at(h) - at(-h)) / (2 * h);
            *v = v0;
            scale = std::max(scale, fabs(fd[k]));
        }
        static const char* HYP[] = {"d/dlog l", "d/dlog s", "d/dlog noise", "d/dmean", "d/dlog alpha"};
        for (size_t k = 0; k < ps.size(); ++k) {
            if (skip(k)) continue;
            const int nz = M * D, nq = M + M * (M + 1) / 2;
            const char* what = (int)k < nz ? "d/dz" : (int)k < nz + M ? "d/dq_mu" : (int)k < nz + nq ? "d/dq_sqrt"
                             : (int)k < nz + nq + D ? HYP[0] : HYP[1 + (k - nz - nq - D)];
            near(what, b, (int)k, got[k], fd[k], tol, 1e-2 * scale);
        }
    }
}

template <class Cov, typename T>
static void run_predict(const Launch& ln, std::vector<Member> mem, int Mt) {
    const bool smem = ln.smem;
    const Kind kind = kind_of<Cov>();
    const double tol = sizeof(T) == 4 ? 4e-3 : 1e-9;
    const int B = (int)mem.size(), M = mem[0].M, D = mem[0].D, NA = 3;
    std::vector<double> tx(Mt * D);
    std::mt19937_64 rng(99);
    std::uniform_real_distribution<double> u(0, 1);
    for (auto& v : tx) v = 2.5 + 3.0 * u(rng);
    std::vector<T> zs(B * M * D), ts(B * Mt * D), q(B * M * M);
    std::vector<double> qmu(B * M), s(B), alpha(B), mean(B), jit(B * NA);
    for (int b = 0; b < B; ++b) {
        const Member& m = mem[b];
        std::vector<double> centre(D, 0.0);
        for (int k = 0; k < D; ++k) {
            for (int j = 0; j < M; ++j) centre[k] += m.z[j * D + k];
            centre[k] /= M;
        }
        for (int j = 0; j < M; ++j)
            for (int k = 0; k < D; ++k) zs[(b * M + j) * D + k] = (T)((m.z[j * D + k] - centre[k]) / m.ls[k]);
        for (int t = 0; t < Mt; ++t)
            for (int k = 0; k < D; ++k) ts[(b * Mt + t) * D + k] = (T)((tx[t * D + k] - centre[k]) / m.ls[k]);
        for (int e = 0; e < M * M; ++e) q[b * M * M + e] = (T)m.Q[e];
        for (int j = 0; j < M; ++j) qmu[b * M + j] = m.qmu[j];
        s[b] = m.s; alpha[b] = m.alpha; mean[b] = m.mean;
        for (int k = 0; k < NA; ++k) jit[b * NA + k] = m.jf * m.s * std::pow(10.0, k);
    }
    std::vector<T> twork(smem ? 1 : B * svgp_twork_elems(M)), oa(B * M * Mt);
    std::vector<double> om(B * Mt), ov(B * Mt);
    std::vector<int> att(B);
    const int flags = (smem ? BGP_SVGP_SMEM : 0) | BGP_SVGP_WANT_A;
    std::vector<T> oa1;
    std::vector<double> om1, ov1;
    std::vector<int> att1;
    for (int pass = 0; pass < 2; ++pass) {
        std::fill(twork.begin(), twork.end(), T(NAN));
        std::fill(oa.begin(), oa.end(), T(7));
        std::fill(om.begin(), om.end(), 7.0);
        std::fill(ov.begin(), ov.end(), 7.0);
        std::fill(att.begin(), att.end(), 7);
        launch(std::string("svgp_predict_") + g_name, ln.shape, pass ? ln.order : ln.order2, 21 + pass, [&] {
            K<Cov, T>::predict(zs.data(), ts.data(), qmu.data(), q.data(), s.data(), Cov::has_alpha ? alpha.data() : nullptr,
                               mean.data(), jit.data(), NA, B, M, Mt, D, flags, twork.data(), om.data(), ov.data(),
                               att.data(), oa.data());
        });
        if (pass == 0) oa1 = oa, om1 = om, ov1 = ov, att1 = att;
    }
    same_bits("predict mean", om, om1);
    same_bits("predict var", ov, ov1);
    same_bits("predict attempt", att, att1);
    same_bits("A*", oa, oa1);
    for (int b = 0; b < B; ++b) {
        const Member& m = mem[b];
        if (!std::isfinite(m.s)) {
            near("failed predict mean", b, 0, om[b * Mt], NAN, 0, 0);
            continue;
        }
        // Dense: L, then per test point a = L^-1 k(Z, x*).
        auto kern = [&](const double* a, const double* c) { return ref_k(kind, m, a, c); };
        std::vector<double> L;
        // A reference that cannot factor poisons the comparison instead of passing it.
        if (!ref_factor_zz(kind, m, L)) std::fill(L.begin(), L.end(), NAN);
        std::vector<double> a(M);
        for (int t = 0; t < Mt; ++t) {
            for (int j = 0; j < M; ++j) {
                double v = kern(&m.z[j * D], &tx[t * D]);
                for (int k = 0; k < j; ++k) v -= L[j * M + k] * a[k];
                a[j] = v / L[j * M + j];
                near("A*", b, j * Mt + t, (double)oa[(b * M + j) * Mt + t], a[j], tol, m.s);
            }
            double mu = m.mean, a2 = 0, b2 = 0;
            for (int j = 0; j < M; ++j) { mu += a[j] * m.qmu[j]; a2 += a[j] * a[j]; }
            for (int k = 0; k < M; ++k) {
                double bk = 0;
                for (int j = k; j < M; ++j) bk += m.Q[j * M + k] * a[j];
                b2 += bk * bk;
            }
            near("predict mean", b, t, om[b * Mt + t], mu, tol, 1.0);
            near("predict var", b, t, ov[b * Mt + t], std::max(m.s - a2 + b2, 0.0), tol, m.s);
        }
    }
}

// Members of one launch: 0 masked points, 1 c = 2.5, 2 s = inf (fails), 3 no observed point,
// 4 a forced retry (attempt 0 adds -10 s).
template <class Cov, typename T>
static void run_kernel(const Launch& ln, uint64_t seed, int M, int N, int D, bool yvar, bool grad_check) {
    const Kind kind = kind_of<Cov>();
    const double jf = sizeof(T) == 4 ? 1e-4 : 1e-6;
    std::mt19937_64 rng(seed);
    std::vector<Member> mem;
    for (int b = 0; b < 5; ++b) {
        Member m = random_member(rng, M, N, D, kind);
        m.jf = jf;
        if (b == 0) for (int i = 0; i < N; i += 3) m.mask[i] = 0;
        if (b == 1) m.c = 2.5;
        if (b == 2) m.s = INFINITY;
        if (b == 3) m.mask.assign(N, 0);
        if (b == 4) m.jit0 = -10.0;
        mem.push_back(m);
    }
    g_name = K<Cov, T>::name;
    run_elbo<Cov, T>(ln, mem, yvar, grad_check);
    run_predict<Cov, T>(ln, mem, 37);
}

template <typename T> static void dispatch(const std::string& k, const Launch& ln, uint64_t seed, int M, int N, int D,
                                           bool yvar, bool grad) {
    if (k == "rbf") run_kernel<RbfCov, T>(ln, seed, M, N, D, yvar, grad);
    else if (k == "matern12") run_kernel<Matern12Cov, T>(ln, seed, M, N, D, yvar, grad);
    else if (k == "matern32") run_kernel<Matern32Cov, T>(ln, seed, M, N, D, yvar, grad);
    else if (k == "matern52") run_kernel<Matern52Cov, T>(ln, seed, M, N, D, yvar, grad);
    else if (k == "rq") run_kernel<RqCov, T>(ln, seed, M, N, D, yvar, grad);
    else { printf("unknown kernel %s\n", k.c_str()); exit(2); }
}

// Plan lines (tests/svgp_cuda.rs): "svgp kernel=K dtype=f64|f32 m=M n=N d=D yvar=0|1 grad=0|1
// shape=GRID,BLOCK,SMEM_BYTES smem=0|1 order=O order2=O2 seed=S", the shape and smem flag from
// the host's svgp_launch; grad=0 checks the ELBO (with and without the gradient) and the
// posterior but not the gradient against central differences.
int main(int argc, char** argv) {
    if (argc < 2) { printf("usage: svgp_harness PLAN\n"); return 2; }
    emu_install_handlers();
    int lines = 0, on_smem = 0;
    for_each_plan_line(argv[1], [&](const Plan& pl) {
        if (pl.what != "svgp") { printf("unknown plan line %s\n", pl.what.c_str()); exit(2); }
        Launch ln;
        ln.shape = pl.shape("shape");
        ln.smem = pl.num("smem") != 0;
        ln.order = (Order)pl.num("order");
        ln.order2 = (Order)pl.num("order2");
        const int M = (int)pl.num("m"), N = (int)pl.num("n"), D = (int)pl.num("d");
        const bool yvar = pl.num("yvar") != 0, grad = pl.num("grad") != 0;
        const uint64_t seed = (uint64_t)pl.num("seed");
        if (pl.str("dtype") == "f64") dispatch<double>(pl.str("kernel"), ln, seed, M, N, D, yvar, grad);
        else dispatch<float>(pl.str("kernel"), ln, seed, M, N, D, yvar, grad);
        ++lines;
        on_smem += ln.smem;
    });
    printf("%d plan lines (%d with the factor in shared memory, %d in global), %d checks (ELBO, gradients, "
           "posterior, bit-identical under two schedules), %llu launches, %llu blocks, %llu thread switches, bounds "
           "checked by %s, %d failures\n",
           lines, on_smem, lines - on_smem, cases, g_launches, g_blocks, g_switches,
           BGP_ASAN ? "AddressSanitizer" : "guard pages", fails);
    return fails != 0;
}
