// The sparse variational GP (docs/design.md section 11): the ELBO of every member with its
// analytic gradient (svgp_elbo_<kernel>_<dtype>) and the posterior at test points
// (svgp_predict_<kernel>_<dtype>), mirroring src/backend/cpu/svgp/ (its module doc has the
// derivation; the names below are its names).
//
// One block per member (the host launches BGP_BLOCK threads; any block size works; the host
// emulation, tests/svgp_cuda.rs, runs the host's launches). Per member, with M inducing points
// and N (padded) points:
//   1. k(Z, Z) + jit_t I factored for t = 0 .. nattempts-1 until one works (attempt[b] = t, or
//      -1: every output of the member NaN);
//   2. pass 1 over the points in tiles of BGP_SVGP_TILE: A = L^-1 Kzx (tile), mu, e, w = c /
//      sigma2, and the sums P = A W A^T (double), h = A (w e), sum w, sum w e^2, sum log(2 pi
//      sigma2), sum w e and, with known noise, the per-point var_f terms of d/dlog noise;
//   3. the M x M work in double in the global workspace: S = Q Q^T, the ELBO, d/dq_mu, d/dQ,
//      C = -(q_mu h^T + (I - S) P), d/dKzz = sym(L^-T Phi(C) L^-1), R = L^-T (I - S),
//      L^-T q_mu, and the k(Z, Z) pairs' share of the kernel gradient;
//   4. pass 2 over the tiles: d/dKzx = R (A W) + (L^-T q_mu) (w e)^T and the (Z, X) pairs'
//      share of d/dZ, d/dlog l, d/dlog s and d/dlog alpha.
// The kernel gradient sums are owned by inducing point j (one thread per j: no atomics, a fixed
// order, deterministic) and reduced over j at the end.
//
// Inputs (prepared on the host as the CPU backend prepares them): zs (B, M, D) and xs (B, N, D)
// centred on the mean of Z per dimension and divided by the lengthscales, in T; mask (B, N);
// r = y - m (B, N), sigma2 = noise + yvar (B, N) in double (1 at masked points); q_mu (B, M) in
// double; q_sqrt (B, M, M) in T (zeros above the diagonal); ls, s, rq_alpha (null for the other
// kernels), noise and the data-term scale c per member in double; jit (B, nattempts) in double,
// added to k(Z, Z) in T. Outputs in double: elbo (B), attempt (B), and with BGP_SVGP_GRAD the
// gradients z (B, M, D), q_mu (B, M), q_sqrt (B, M, M; zeros above the diagonal) and hyp (B, P)
// in the layout of src/layout.rs (log l_0..l_{D-1}, log s, log noise, mean, log alpha for rq).
//
// Memory. Flag BGP_SVGP_SMEM: L (ld M + 1), the A tile and a column of M live in dynamic shared
// memory, svgp_smem_elems(M) elements of T after 32 doubles of reduction scratch (M <= 154 in
// f64, 224 in f32 with 227 KiB); without it they live in twork (svgp_twork_elems(M) per member).
// The double workspace dwork holds svgp_dwork_elems(M, D) doubles per member either way.
#include "covariance.cuh"

#define BGP_SVGP_TILE 32
#define BGP_SVGP_GRAD 1
#define BGP_SVGP_YVAR 2
#define BGP_SVGP_SMEM 4
// svgp_predict: also write A* = L^-1 k(Z, x*) (B, M, Mt) for the host's full covariance.
#define BGP_SVGP_WANT_A 8
#define BGP_LN_2PI 1.8378770664093454835606594728112

__device__ __forceinline__ long long svgp_smem_elems(int m) {
    return (long long)m * (m + 1) + (long long)m * BGP_SVGP_TILE + m;
}
__device__ __forceinline__ long long svgp_twork_elems(int m) { return svgp_smem_elems(m); }
// P, S/R, X (M x M each), h, L^-T q_mu, the kernel sums per inducing point (M x (D + 2)), the
// d/dKzx tile (M x TILE) and w, w e of the tile (2 TILE).
__device__ __forceinline__ long long svgp_dwork_elems(int m, int d) {
    return 3LL * m * m + 2LL * m + (long long)m * (d + 2) + (long long)m * BGP_SVGP_TILE + 2 * BGP_SVGP_TILE;
}

// Squared distance of two scaled points (the CPU's sq_dist: sum over k of (a_k - b_k)^2 in T),
// every term and the sum capped by cap_r2 as the CPU caps r^2 before the kernel.
template <typename T>
__device__ __forceinline__ T svgp_sq(const T* a, const T* b, int d) {
    T acc = T(0);
    for (int k = 0; k < d; ++k) {
        const T t = a[k] - b[k];
        acc += cap_r2(t * t);
    }
    return cap_r2(acc);
}

// X (m x ncols, row-major, ld ldx) <- L^-1 X; L lower triangular (ld ldl).
template <typename T, typename V, class G>
__device__ void svgp_lsolve(const G& g, const T* l, int ldl, int m, V* x, int ldx, int ncols) {
    for (int k = 0; k < m; ++k) {
        const V dk = (V)l[(size_t)k * ldl + k];
        for (int t = g.rank(); t < ncols; t += g.size()) x[(size_t)k * ldx + t] /= dk;
        g.sync();
        const long long tot = (long long)(m - k - 1) * ncols;
        for (long long e = g.rank(); e < tot; e += g.size()) {
            const int i = k + 1 + (int)(e / ncols), t = (int)(e % ncols);
            x[(size_t)i * ldx + t] -= (V)l[(size_t)i * ldl + k] * x[(size_t)k * ldx + t];
        }
        g.sync();
    }
}

// X <- L^-T X.
template <typename T, typename V, class G>
__device__ void svgp_ltsolve(const G& g, const T* l, int ldl, int m, V* x, int ldx, int ncols) {
    for (int k = m - 1; k >= 0; --k) {
        const V dk = (V)l[(size_t)k * ldl + k];
        for (int t = g.rank(); t < ncols; t += g.size()) x[(size_t)k * ldx + t] /= dk;
        g.sync();
        const long long tot = (long long)k * ncols;
        for (long long e = g.rank(); e < tot; e += g.size()) {
            const int i = (int)(e / ncols), t = (int)(e % ncols);
            x[(size_t)i * ldx + t] -= (V)l[(size_t)k * ldl + i] * x[(size_t)k * ldx + t];
        }
        g.sync();
    }
}

// k(Z, Z) + jit_t I factored in l (ld ldl) for t = 0, 1, ... until one works: returns t, or -1.
template <class Cov, typename T, class G>
__device__ int svgp_factor(const G& g, const T* zb, int m, int d, T s, T shape, const double* jit, int nattempts,
                           T* l, int ldl, T* col) {
    const long long tri = (long long)m * (m + 1) / 2;
    for (int t = 0; t < nattempts; ++t) {
        const T jt = (T)jit[t];
        for (long long idx = g.rank(); idx < tri; idx += g.size()) {
            int i, j;
            tri_index(idx, i, j);
            T v = s * Cov::phi(svgp_sq(zb + (size_t)i * d, zb + (size_t)j * d, d), shape);
            if (i == j) v += jt;
            l[(size_t)i * ldl + j] = v;
        }
        g.sync();
        const bool ok = group_cholesky(g, l, m, ldl, col);
        g.sync();
        if (ok) return t;
    }
    return -1;
}

// The Kzx tile a (m x nt, ld BGP_SVGP_TILE) of points t0 .. t0 + nt - 1 (0 for masked points),
// then a <- L^-1 a.
template <class Cov, typename T, class G>
__device__ void svgp_tile(const G& g, const T* zb, const T* xb, const uint8_t* mb, int t0, int nt, int m, int d, T s,
                          T shape, const T* l, int ldl, T* a) {
    const int TN = BGP_SVGP_TILE;
    for (int e = g.rank(); e < m * nt; e += g.size()) {
        const int j = e / nt, t = e % nt, i = t0 + t;
        const bool o = mb == nullptr || mb[i] != 0;
        a[(size_t)j * TN + t] = o ? s * Cov::phi(svgp_sq(zb + (size_t)j * d, xb + (size_t)i * d, d), shape) : T(0);
    }
    g.sync();
    svgp_lsolve(g, l, ldl, m, a, TN, nt);
}

// The per-pair kernel terms of d/dlog l, d/dZ, d/dlog s and d/dlog alpha for inducing point
// zj and a point p (an inducing point or a data point), with weight g = d/dk(p, zj) and
// `zfactor` 2 for a (Z, Z) pair (both entries of the symmetric k(Z, Z)), 1 for a (Z, X) pair.
template <class Cov, typename T>
__device__ __forceinline__ void svgp_pair(const T* p, const T* zj, int d, T s, T shape, double g, double zfactor,
                                          const double* ls, double* gls, double* gz, double& gs, double& ga) {
    const T r2 = svgp_sq(zj, p, d);
    gs += g * (double)(s * Cov::phi(r2, shape));
    const double gw = g * (double)(s * Cov::psi(r2, shape));
    if (Cov::has_alpha) ga += g * (double)(s * Cov::dphi_dlog_alpha(r2, shape));
    for (int k = 0; k < d; ++k) {
        const double u = (double)p[k] - (double)zj[k];
        gls[k] += gw * cap_r2(u * u);
        gz[k] += zfactor * gw * u / ls[k];
    }
}

template <typename T>
struct SvgpArgs {
    const T* zs;
    const T* xs;
    const uint8_t* mask;
    const double* r;
    const double* sig2;
    const double* q_mu;
    const T* q_sqrt;
    const double* ls;
    const double* s;
    const double* rq_alpha;
    const double* noise;
    const double* cscale;
    const double* jit;
    int nattempts, B, M, N, D, flags;
    T* twork;
    double* dwork;
    double* out_elbo;
    int* out_attempt;
    double* out_gz;
    double* out_gqmu;
    double* out_gq;
    double* out_ghyp;
};

template <class Cov, typename T, class G>
__device__ void svgp_elbo_member(const G& g, const SvgpArgs<T>& p, int b, T* smem, double* scratch) {
    const int M = p.M, N = p.N, D = p.D, TN = BGP_SVGP_TILE;
    const int P = D + 3 + (Cov::has_alpha ? 1 : 0);
    const bool grad = (p.flags & BGP_SVGP_GRAD) != 0, yvar = (p.flags & BGP_SVGP_YVAR) != 0;
    T* tb = (p.flags & BGP_SVGP_SMEM) ? smem : p.twork + (size_t)b * svgp_twork_elems(M);
    const int ldl = M + 1;
    T* l = tb;
    T* a = tb + (size_t)M * ldl;
    T* col = a + (size_t)M * TN;
    double* dw = p.dwork + (size_t)b * svgp_dwork_elems(M, D);
    double* Pm = dw;                       // P, later the transposed solve and then free
    double* Sm = Pm + (size_t)M * M;       // S, later R
    double* Xm = Sm + (size_t)M * M;       // Phi(C), L^-T Phi, then d/dKzz
    double* h = Xm + (size_t)M * M;        // A (w e)
    double* lq = h + M;                    // L^-T q_mu
    double* gls = lq + M;                  // (M, D) lengthscale sums per inducing point
    double* gsj = gls + (size_t)M * D;     // (M) outputscale sums
    double* gaj = gsj + M;                 // (M) alpha sums
    double* gzx = gaj + M;                 // (M, TN) d/dKzx of a tile
    double* wt = gzx + (size_t)M * TN;     // w of the tile's points (0 when masked)
    double* wet = wt + TN;                 // w e

    const T* zb = p.zs + (size_t)b * M * D;
    const T* xb = p.xs + (size_t)b * N * D;
    const uint8_t* mb = p.mask + (size_t)b * N;
    const double* rb = p.r + (size_t)b * N;
    const double* sb = p.sig2 + (size_t)b * N;
    const double* qmu = p.q_mu + (size_t)b * M;
    const T* q = p.q_sqrt + (size_t)b * M * M;
    const double* lsb = p.ls + (size_t)b * D;
    const double sd = p.s[b], c = p.cscale[b], noise = p.noise[b];
    const T s = (T)sd;
    const T shape = Cov::has_alpha ? (T)p.rq_alpha[b] : T(1);

    const int used = svgp_factor<Cov>(g, zb, M, D, s, shape, p.jit + (size_t)b * p.nattempts, p.nattempts, l, ldl, col);
    if (g.rank() == 0) p.out_attempt[b] = used;
    if (used < 0) {
        const double nan = bgp_nan<double>();
        if (g.rank() == 0) p.out_elbo[b] = nan;
        if (grad) {
            for (int e = g.rank(); e < M * D; e += g.size()) p.out_gz[(size_t)b * M * D + e] = nan;
            for (int e = g.rank(); e < M; e += g.size()) p.out_gqmu[(size_t)b * M + e] = nan;
            for (int e = g.rank(); e < M * M; e += g.size()) p.out_gq[(size_t)b * M * M + e] = nan;
            for (int e = g.rank(); e < P; e += g.size()) p.out_ghyp[(size_t)b * P + e] = nan;
        }
        return;
    }
    const double jitter = p.jit[(size_t)b * p.nattempts + used];

    // Pass 1.
    for (int e = g.rank(); e < M * M; e += g.size()) Pm[e] = 0.0;
    for (int j = g.rank(); j < M; j += g.size()) h[j] = 0.0;
    double sw = 0.0, swe2 = 0.0, slog = 0.0, gmean = 0.0, gnoise = 0.0;
    const long long tri = (long long)M * (M + 1) / 2;
    for (int t0 = 0; t0 < N; t0 += TN) {
        const int nt = N - t0 < TN ? N - t0 : TN;
        svgp_tile<Cov>(g, zb, xb, mb, t0, nt, M, D, s, shape, l, ldl, a);
        for (int t = g.rank(); t < nt; t += g.size()) {
            const int i = t0 + t;
            if (mb[i] == 0) {
                wt[t] = 0.0;
                wet[t] = 0.0;
                continue;
            }
            double f = 0.0;
            for (int j = 0; j < M; ++j) f += (double)a[(size_t)j * TN + t] * qmu[j];
            const double e = rb[i] - f, s2 = sb[i], w = c / s2;
            wt[t] = w;
            wet[t] = w * e;
            sw += w;
            swe2 += w * e * e;
            slog += BGP_LN_2PI + log(s2);
            gmean += w * e;
            if (yvar && grad) {
                // var_f = s - |a|^2 + |Q^T a|^2.
                double a2 = 0.0, b2 = 0.0;
                for (int k = 0; k < M; ++k) {
                    const double ak = (double)a[(size_t)k * TN + t];
                    a2 += ak * ak;
                    double bk = 0.0;
                    for (int j = k; j < M; ++j) bk += (double)q[(size_t)j * M + k] * (double)a[(size_t)j * TN + t];
                    b2 += bk * bk;
                }
                const double v = sd - a2 + b2;
                gnoise += w / (2.0 * s2) * (e * e + v - s2);
            }
        }
        g.sync();
        for (long long idx = g.rank(); idx < tri; idx += g.size()) {
            int i, j;
            tri_index(idx, i, j);
            double acc = 0.0;
            for (int t = 0; t < nt; ++t) acc += (double)a[(size_t)i * TN + t] * wt[t] * (double)a[(size_t)j * TN + t];
            Pm[(size_t)i * M + j] += acc;
        }
        for (int j = g.rank(); j < M; j += g.size()) {
            double acc = 0.0;
            for (int t = 0; t < nt; ++t) acc += (double)a[(size_t)j * TN + t] * wet[t];
            h[j] += acc;
        }
        g.sync();
    }
    sw = group_sum(g, sw, scratch);
    swe2 = group_sum(g, swe2, scratch);
    slog = group_sum(g, slog, scratch);
    gmean = group_sum(g, gmean, scratch);
    if (yvar && grad) gnoise = group_sum(g, gnoise, scratch);

    // The KL term, P mirrored, S = Q Q^T.
    double qsq = 0.0, logdet = 0.0, qmu2 = 0.0;
    for (long long idx = g.rank(); idx < tri; idx += g.size()) {
        int i, j;
        tri_index(idx, i, j);
        const double v = (double)q[(size_t)i * M + j];
        qsq += v * v;
        if (i == j) logdet += 2.0 * log(fabs(v));
    }
    for (int j = g.rank(); j < M; j += g.size()) qmu2 += qmu[j] * qmu[j];
    for (long long idx = g.rank(); idx < tri; idx += g.size()) {
        int i, j;
        tri_index(idx, i, j);
        if (i != j) Pm[(size_t)j * M + i] = Pm[(size_t)i * M + j];
    }
    for (int e = g.rank(); e < M * M; e += g.size()) {
        const int i = e / M, j = e % M, kk = i < j ? i : j;
        double acc = 0.0;
        for (int k = 0; k <= kk; ++k) acc += (double)q[(size_t)i * M + k] * (double)q[(size_t)j * M + k];
        Sm[e] = acc;
    }
    qsq = group_sum(g, qsq, scratch);
    logdet = group_sum(g, logdet, scratch);
    qmu2 = group_sum(g, qmu2, scratch);  // (syncs: P and S are complete after it)
    double trp = 0.0, trsp = 0.0;
    for (int e = g.rank(); e < M * M; e += g.size()) {
        trsp += Sm[e] * Pm[e];
        if (e / M == e % M) trp += Pm[e];
    }
    trp = group_sum(g, trp, scratch);
    trsp = group_sum(g, trsp, scratch);
    const double var_term = sd * sw - trp + trsp;
    const double kl = 0.5 * (qsq + qmu2 - (double)M - logdet);
    const double elbo = -0.5 * c * slog - 0.5 * swe2 - 0.5 * var_term - kl;
    if (g.rank() == 0) p.out_elbo[b] = elbo;
    if (!grad) return;

    // d/dq_mu, d/dQ, Phi(C).
    for (int j = g.rank(); j < M; j += g.size()) p.out_gqmu[(size_t)b * M + j] = h[j] - qmu[j];
    for (int e = g.rank(); e < M * M; e += g.size()) {
        const int i = e / M, j = e % M;
        double gq = 0.0, x = 0.0;
        if (j <= i) {
            double pq = 0.0, sp = 0.0;
            for (int k = j; k < M; ++k) pq += Pm[(size_t)i * M + k] * (double)q[(size_t)k * M + j];
            for (int k = 0; k < M; ++k) sp += Sm[(size_t)i * M + k] * Pm[(size_t)k * M + j];
            const double qij = (double)q[(size_t)i * M + j];
            gq = -pq - qij + (i == j ? 1.0 / qij : 0.0);
            const double cij = -(qmu[i] * h[j] + Pm[(size_t)i * M + j] - sp);
            x = i == j ? 0.5 * cij : cij;
        }
        p.out_gq[(size_t)b * M * M + e] = gq;
        Xm[e] = x;
    }
    for (int j = g.rank(); j < M; j += g.size()) lq[j] = qmu[j];
    g.sync();
    // d/dKzz = sym(L^-T Phi L^-1): X <- L^-T Phi, P <- X^T, P <- L^-T P, X <- sym(P).
    svgp_ltsolve(g, l, ldl, M, Xm, M, M);
    for (int e = g.rank(); e < M * M; e += g.size()) Pm[e] = Xm[(size_t)(e % M) * M + e / M];
    g.sync();
    svgp_ltsolve(g, l, ldl, M, Pm, M, M);
    for (int e = g.rank(); e < M * M; e += g.size()) {
        const int i = e / M, j = e % M;
        Xm[e] = 0.5 * (Pm[e] + Pm[(size_t)j * M + i]);
        Sm[e] = (i == j ? 1.0 : 0.0) - Sm[e];  // I - S, for R
    }
    g.sync();
    svgp_ltsolve(g, l, ldl, M, Sm, M, M);  // R = L^-T (I - S)
    svgp_ltsolve(g, l, ldl, M, lq, 1, 1);  // L^-T q_mu
    double trg = 0.0;
    for (int j = g.rank(); j < M; j += g.size()) trg += Xm[(size_t)j * M + j];
    trg = group_sum(g, trg, scratch);

    // The (Z, Z) pairs, owned by inducing point j.
    double* gzb = p.out_gz + (size_t)b * M * D;
    for (int j = g.rank(); j < M; j += g.size()) {
        double* glj = gls + (size_t)j * D;
        double* gzj = gzb + (size_t)j * D;
        for (int k = 0; k < D; ++k) glj[k] = gzj[k] = 0.0;
        double gs = 0.0, ga = 0.0;
        for (int i = 0; i < M; ++i)
            svgp_pair<Cov>(zb + (size_t)i * D, zb + (size_t)j * D, D, s, shape, Xm[(size_t)j * M + i], 2.0, lsb, glj,
                           gzj, gs, ga);
        gsj[j] = gs;
        gaj[j] = ga;
    }
    g.sync();

    // Pass 2: d/dKzx = R (A W) + (L^-T q_mu) (w e)^T, and the (Z, X) pairs.
    for (int t0 = 0; t0 < N; t0 += TN) {
        const int nt = N - t0 < TN ? N - t0 : TN;
        svgp_tile<Cov>(g, zb, xb, mb, t0, nt, M, D, s, shape, l, ldl, a);
        for (int t = g.rank(); t < nt; t += g.size()) {
            const int i = t0 + t;
            if (mb[i] == 0) {
                wt[t] = 0.0;
                wet[t] = 0.0;
                continue;
            }
            double f = 0.0;
            for (int j = 0; j < M; ++j) f += (double)a[(size_t)j * TN + t] * qmu[j];
            const double w = c / sb[i];
            wt[t] = w;
            wet[t] = w * (rb[i] - f);
        }
        g.sync();
        for (int e = g.rank(); e < M * nt; e += g.size()) {
            const int j = e / nt, t = e % nt;
            double acc = 0.0;
            for (int k = 0; k < M; ++k) acc += Sm[(size_t)j * M + k] * (double)a[(size_t)k * TN + t];
            gzx[(size_t)j * TN + t] = acc * wt[t] + lq[j] * wet[t];
        }
        g.sync();
        for (int j = g.rank(); j < M; j += g.size()) {
            double gs = gsj[j], ga = gaj[j];
            for (int t = 0; t < nt; ++t) {
                const int i = t0 + t;
                if (mb[i] == 0) continue;
                svgp_pair<Cov>(xb + (size_t)i * D, zb + (size_t)j * D, D, s, shape, gzx[(size_t)j * TN + t], 1.0, lsb,
                               gls + (size_t)j * D, gzb + (size_t)j * D, gs, ga);
            }
            gsj[j] = gs;
            gaj[j] = ga;
        }
        g.sync();
    }

    // Reductions over the inducing points, in order.
    double* gh = p.out_ghyp + (size_t)b * P;
    for (int k = g.rank(); k < D; k += g.size()) {
        double acc = 0.0;
        for (int j = 0; j < M; ++j) acc += gls[(size_t)j * D + k];
        gh[k] = acc;
    }
    if (g.rank() == 0) {
        double gs = -0.5 * sd * sw + jitter * trg, ga = 0.0;
        for (int j = 0; j < M; ++j) {
            gs += gsj[j];
            ga += gaj[j];
        }
        gh[D] = gs;
        gh[D + 1] = yvar ? gnoise * noise : 0.5 * (swe2 + var_term - noise * sw);
        gh[D + 2] = gmean;
        if (Cov::has_alpha) gh[D + 3] = ga;
    }
}

// The posterior of member b at its Mt test points ts (scaled as zs): mean m + A*^T q_mu and
// var max(s - |a|^2 + |Q^T a|^2, 0) per point; with BGP_SVGP_WANT_A, A* (M, Mt) to out_a.
template <class Cov, typename T, class G>
__device__ void svgp_predict_member(const G& g, const T* zs, const T* ts, const double* q_mu, const T* q_sqrt,
                                    const double* sv, const double* rq_alpha, const double* mean, const double* jit,
                                    int nattempts, int M, int Mt, int D, int flags, T* twork, int b, T* smem,
                                    double* out_mean, double* out_var, int* out_attempt, T* out_a) {
    const int TN = BGP_SVGP_TILE;
    T* tb = (flags & BGP_SVGP_SMEM) ? smem : twork + (size_t)b * svgp_twork_elems(M);
    const int ldl = M + 1;
    T* l = tb;
    T* a = tb + (size_t)M * ldl;
    T* col = a + (size_t)M * TN;
    const T* zb = zs + (size_t)b * M * D;
    const T* xb = ts + (size_t)b * Mt * D;
    const double* qmu = q_mu + (size_t)b * M;
    const T* q = q_sqrt + (size_t)b * M * M;
    const double sd = sv[b];
    const T s = (T)sd;
    const T shape = Cov::has_alpha ? (T)rq_alpha[b] : T(1);
    const int used = svgp_factor<Cov>(g, zb, M, D, s, shape, jit + (size_t)b * nattempts, nattempts, l, ldl, col);
    if (g.rank() == 0) out_attempt[b] = used;
    if (used < 0) {
        for (int t = g.rank(); t < Mt; t += g.size()) {
            out_mean[(size_t)b * Mt + t] = bgp_nan<double>();
            out_var[(size_t)b * Mt + t] = bgp_nan<double>();
        }
        return;
    }
    for (int t0 = 0; t0 < Mt; t0 += TN) {
        const int nt = Mt - t0 < TN ? Mt - t0 : TN;
        svgp_tile<Cov>(g, zb, xb, (const uint8_t*)nullptr, t0, nt, M, D, s, shape, l, ldl, a);
        for (int t = g.rank(); t < nt; t += g.size()) {
            double f = 0.0, a2 = 0.0, b2 = 0.0;
            for (int k = 0; k < M; ++k) {
                const double ak = (double)a[(size_t)k * TN + t];
                f += ak * qmu[k];
                a2 += ak * ak;
                double bk = 0.0;
                for (int j = k; j < M; ++j) bk += (double)q[(size_t)j * M + k] * (double)a[(size_t)j * TN + t];
                b2 += bk * bk;
            }
            const double v = sd - a2 + b2;
            out_mean[(size_t)b * Mt + t0 + t] = mean[b] + f;
            out_var[(size_t)b * Mt + t0 + t] = v >= 0.0 ? v : (v < 0.0 ? 0.0 : v);
        }
        if (flags & BGP_SVGP_WANT_A)
            for (int e = g.rank(); e < M * nt; e += g.size()) {
                const int k = e / nt, t = e % nt;
                out_a[((size_t)b * M + k) * Mt + t0 + t] = a[(size_t)k * TN + t];
            }
        g.sync();
    }
}

#define BGP_SVGP_PARAMS(T)                                                                              \
    const T *zs, const T *xs, const uint8_t *mask, const double *r, const double *sig2, const double *q_mu, \
        const T *q_sqrt, const double *ls, const double *s, const double *rq_alpha, const double *noise,    \
        const double *cscale, const double *jit, int nattempts, int B, int M, int N, int D, int flags,      \
        T *twork, double *dwork, double *out_elbo, int *out_attempt, double *out_gz, double *out_gqmu,      \
        double *out_gq, double *out_ghyp
#define BGP_SVGP_ARGS                                                                                   \
    zs, xs, mask, r, sig2, q_mu, q_sqrt, ls, s, rq_alpha, noise, cscale, jit, nattempts, B, M, N, D, flags, \
        twork, dwork, out_elbo, out_attempt, out_gz, out_gqmu, out_gq, out_ghyp

// svgp_elbo_<KN>_<DT> and svgp_predict_<KN>_<DT>: one block per member (blockIdx.x).
#define BGP_SVGP(COV, KN, T, DT)                                                                        \
    extern "C" __global__ void svgp_elbo_##KN##_##DT(BGP_SVGP_PARAMS(T)) {                              \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                           \
        const int b = blockIdx.x;                                                                       \
        if (b >= B) return;                                                                             \
        const SvgpArgs<T> p{BGP_SVGP_ARGS};                                                             \
        svgp_elbo_member<COV, T>(BlockGroup{}, p, b, reinterpret_cast<T*>(bgp_smem + BGP_WARP), bgp_smem); \
    }                                                                                                   \
    extern "C" __global__ void svgp_predict_##KN##_##DT(                                                \
        const T* zs, const T* ts, const double* q_mu, const T* q_sqrt, const double* s,                 \
        const double* rq_alpha, const double* mean, const double* jit, int nattempts, int B, int M,     \
        int Mt, int D, int flags, T* twork, double* out_mean, double* out_var, int* out_attempt,        \
        T* out_a) {                                                                                     \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                           \
        const int b = blockIdx.x;                                                                       \
        if (b >= B) return;                                                                             \
        svgp_predict_member<COV, T>(BlockGroup{}, zs, ts, q_mu, q_sqrt, s, rq_alpha, mean, jit,         \
                                    nattempts, M, Mt, D, flags, twork, b,                               \
                                    reinterpret_cast<T*>(bgp_smem + BGP_WARP), out_mean, out_var,       \
                                    out_attempt, out_a);                                                \
    }

BGP_FOR_EACH_COVARIANCE(BGP_SVGP, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_SVGP, float, f32)
