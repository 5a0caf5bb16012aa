// Fused per-member kernels: the MLL with its gradient (gp_mll_*) and the Cholesky of given
// matrices (chol_*), each with per-member jitter escalation (docs/design.md sections 1, 3, 4).
//
// Entry points: gp_mll_{warp,block,global}_<kernel>_<dtype> for every covariance kernel of
// covariance.cuh (rbf, matern12, matern32, matern52, rq) and dtype (f64, f32), and
// chol_{warp,block,global}_<dtype>, which involve no covariance kernel.
//
// One member is handled by one thread group, in three variants that share the same code:
//   *_warp_*     N <= 32: one warp per member, BGP_WARPS_PER_BLOCK members per block, the
//                member's matrix in shared memory (ld = N + 1);
//   *_block_*    N up to the opt-in shared-memory limit (168 in f64, 239 in f32 on an H100/H200): one block
//                of BGP_BLOCK threads per member, K built, factored, solved and inverted in shared
//                memory (ld = N + 1), so K never goes to global memory;
//   *_global_*   any N: one block of BGP_BLOCK threads per member working in a global workspace
//                of WORK_STRIDE = N * N + 2 * N elements per member (ld = N).
// Grid: warp variant ceil(B / BGP_WARPS_PER_BLOCK) blocks of 32 * BGP_WARPS_PER_BLOCK threads;
// block and global variants B blocks of BGP_BLOCK threads. Dynamic shared memory (bytes):
//   warp   BGP_WARPS_PER_BLOCK * warp_elems(N) * sizeof(T)
//   block  32 * 8 + (N * (N + 1) + 2 * N) * sizeof(T)
//   global 0 (static: 32 doubles of reduction scratch, BGP_TILE_ELEMS elements of T for the
//   tiles of the blocked Cholesky and of L^-T L^-1, and BGP_NB^2 doubles of tile sums)
// where warp_elems(N) = N * (N + 1) + 2 * N rounded up to even.
//
// Inputs of gp_mll (prepared on the host as the CPU backend prepares them, src/backend/member.rs):
// x (B, N, D) centred per member (row stride x_stride), r = y - m (B, N) residuals, 0 at masked
// points, the real lengthscales ls (B, D), s, noise (B,), rq_alpha (B,) (rq only; may be null for
// the other kernels), yvar (B, N) known noise variances added to the observed diagonal (null when
// the data has none). K = s phi(r^2) + diag(noise + yvar_i + jitter).
//
// Jitter: attempt t (0 .. nattempts-1) adds jit[b * nattempts + t] (the host's table,
// JitterPolicy::jitter, so both backends add the same numbers) to the observed diagonal;
// attempt[b] is the first that factored, or -1 when none did (then every output of the member is
// NaN). mll flags: bit 0 = gradient, bit 1 = write L (B, N, N; zeros above the diagonal) and
// alpha = K^-1 r (B, N) for prediction.
// Gradient layout per member (P = D + 3, + 1 for rq; src/layout.rs): d/dlog l_0..l_{D-1},
// d/dlog s, d/dlog noise, d/dmean, d/dlog alpha (rq). With W = alpha alpha^T - K^-1:
//   d/dlog l_d = 0.5 sum_ij W_ij s psi_ij u_d^2,   d/dlog s = 0.5 sum_ij W_ij Kf_ij,
//   d/dlog noise = 0.5 noise tr W,   d/dm = sum_i alpha_i,
//   d/dlog alpha = 0.5 sum_ij W_ij s dphi/dlog alpha_ij.
#include "covariance.cuh"

#define BGP_FLAG_GRAD 1
#define BGP_FLAG_FACTOR 2

template <typename T>
struct MllArgs {
    const T* x;
    long long x_stride;
    const T* r;
    const uint8_t* mask;
    const T* ls;
    const T* s;
    const T* noise;
    const T* rq_alpha;
    const T* yvar;
    const T* jit;
    int nattempts;
    int B, N, D, flags;
    T* out_mll;
    T* out_grad;
    int* out_attempt;
    T* out_l;
    T* out_alpha;
};

// Copies the factor in a (ld) to out (N, N) with zeros above the diagonal, or NaN everywhere.
template <typename T, class G>
__device__ void write_factor(const G& g, const T* a, int n, int ld, T* out, bool ok) {
    const long long nn = (long long)n * n;
    for (long long e = g.rank(); e < nn; e += g.size()) {
        const int i = (int)(e / n), j = (int)(e % n);
        out[e] = !ok ? bgp_nan<T>() : (j <= i ? a[(size_t)i * ld + j] : T(0));
    }
}

// The gradient sums one thread accumulates in a pass over pairs: BGP_DCHUNK lengthscale
// dimensions from d0, and (in the pass with d0 = 0) the outputscale, noise and alpha sums.
struct GradSums {
    double ls[BGP_DCHUNK];
    double s, n, a;
};

__device__ __forceinline__ GradSums grad_sums_zero() {
    GradSums q;
    #pragma unroll
    for (int c = 0; c < BGP_DCHUNK; ++c) q.ls[c] = 0.0;
    q.s = q.n = q.a = 0.0;
    return q;
}

// A diagonal term W_ii: the outputscale and noise sums only (u = 0 and d phi / d alpha = 0 at
// r = 0).
template <typename T>
__device__ __forceinline__ void add_diagonal(GradSums& q, double w, T s) {
    q.s += w * (double)s;
    q.n += w;
}

// An off-diagonal pair (i, j) of observed points with W_ij = w, counted twice (W and the kernel
// matrices are symmetric): the kernel is evaluated once for every sum of the pass.
template <class Cov, typename T>
__device__ __forceinline__ void add_pair(GradSums& q, const T* xi, const T* xj, const T* lsb, int D, int d0, T s,
                                         T shape, double w) {
    const T r2 = scaled_sqdist(xi, xj, lsb, D);
    const double w2 = 2.0 * w;
    if (d0 == 0) {
        q.s += w2 * (double)(s * Cov::phi(r2, shape));
        if (Cov::has_alpha) q.a += w2 * (double)(s * Cov::dphi_dlog_alpha(r2, shape));
    }
    const double wg = w2 * (double)(s * Cov::psi(r2, shape));
    #pragma unroll
    for (int c = 0; c < BGP_DCHUNK; ++c) {
        const int d = d0 + c;
        if (d < D) {
            const T u = (xi[d] - xj[d]) / lsb[d];
            q.ls[c] += wg * (double)(u * u);
        }
    }
}

// Sums a pass's GradSums over the group and writes its gradient entries of member b (layout of
// the file header): the pass's lengthscales, and with d0 = 0 outputscale, noise, mean (gmean,
// already summed) and alpha.
template <class Cov, typename T, class G>
__device__ __forceinline__ void write_gradient(const G& g, const MllArgs<T>& p, int b, int d0, const GradSums& q, double gmean,
                               T noise, double* scratch) {
    const int D = p.D, P = D + 3 + (Cov::has_alpha ? 1 : 0);
    #pragma unroll
    for (int c = 0; c < BGP_DCHUNK; ++c) {
        const double tot = group_sum(g, q.ls[c], scratch);
        if (g.rank() == 0 && d0 + c < D) p.out_grad[(size_t)b * P + d0 + c] = (T)(0.5 * tot);
    }
    if (d0 == 0) {
        const double ts = group_sum(g, q.s, scratch);
        const double tn = group_sum(g, q.n, scratch);
        const double ta = Cov::has_alpha ? group_sum(g, q.a, scratch) : 0.0;
        if (g.rank() == 0) {
            p.out_grad[(size_t)b * P + D] = (T)(0.5 * ts);
            p.out_grad[(size_t)b * P + D + 1] = (T)(0.5 * (double)noise * tn);
            p.out_grad[(size_t)b * P + D + 2] = (T)gmean;
            if (Cov::has_alpha) p.out_grad[(size_t)b * P + D + 3] = (T)(0.5 * ta);
        }
    }
}

template <class Cov, typename T, class G>
__device__ void gp_mll_member(const G& g, const MllArgs<T>& p, int b, T* a, int ld, T* alpha, T* tmp,
                              double* scratch, T* tile, double* kacc) {
    const int N = p.N, D = p.D;
    const T* xb = p.x + b * p.x_stride;
    const T* rb = p.r + (size_t)b * N;
    const uint8_t* mb = p.mask + (size_t)b * N;
    const T* lsb = p.ls + (size_t)b * D;
    const T* yvb = p.yvar ? p.yvar + (size_t)b * N : nullptr;
    const T s = p.s[b], noise = p.noise[b];
    const T shape = cov_alpha<Cov>(p.rq_alpha, b);
    const long long tri = (long long)N * (N + 1) / 2;

    int used = -1;
    for (int t = 0; t < p.nattempts; ++t) {
        const T diag_add = noise + p.jit[(size_t)b * p.nattempts + t];
        for (long long idx = g.rank(); idx < tri; idx += g.size()) {
            int i, j;
            tri_index(idx, i, j);
            a[(size_t)i * ld + j] = gram_entry<Cov>(xb, mb, lsb, s, shape, diag_add, yvb, i, j, D);
        }
        g.sync();
        const bool ok = tile ? group_cholesky_blocked(g, a, N, ld, tmp, tile) : group_cholesky(g, a, N, ld, tmp);
        g.sync();
        if (ok) {
            used = t;
            break;
        }
    }
    if (g.rank() == 0) p.out_attempt[b] = used;
    const int P = D + 3 + (Cov::has_alpha ? 1 : 0);
    if (used < 0) {
        if (g.rank() == 0) p.out_mll[b] = bgp_nan<T>();
        if (p.flags & BGP_FLAG_GRAD)
            for (int k = g.rank(); k < P; k += g.size()) p.out_grad[(size_t)b * P + k] = bgp_nan<T>();
        if (p.flags & BGP_FLAG_FACTOR) {
            write_factor(g, a, N, ld, p.out_l + (size_t)b * N * N, false);
            for (int i = g.rank(); i < N; i += g.size()) p.out_alpha[(size_t)b * N + i] = bgp_nan<T>();
        }
        return;
    }

    // The residuals of the observed points, 0 elsewhere (masked entries are never read into
    // arithmetic).
    double nobs = 0.0, logdet = 0.0;
    for (int i = g.rank(); i < N; i += g.size()) {
        const bool o = mb[i] != 0;
        alpha[i] = o ? rb[i] : T(0);
        if (o) {
            nobs += 1.0;
            logdet += log((double)a[(size_t)i * ld + i]);
        }
    }
    g.sync();
    nobs = group_sum(g, nobs, scratch);
    logdet = 2.0 * group_sum(g, logdet, scratch);
    group_forward(g, a, N, ld, alpha);
    double quad = 0.0;
    for (int i = g.rank(); i < N; i += g.size())
        if (mb[i] != 0) quad += (double)alpha[i] * (double)alpha[i];
    quad = group_sum(g, quad, scratch);
    group_backward(g, a, N, ld, alpha);
    const double log2pi = 1.8378770664093454835606594728112;
    if (g.rank() == 0) p.out_mll[b] = (T)(-0.5 * quad - 0.5 * logdet - 0.5 * nobs * log2pi);

    if (p.flags & BGP_FLAG_FACTOR) {
        write_factor(g, a, N, ld, p.out_l + (size_t)b * N * N, true);
        for (int i = g.rank(); i < N; i += g.size()) p.out_alpha[(size_t)b * N + i] = alpha[i];
        g.sync();  // the factor is read before the gradient overwrites it
    }
    if (!(p.flags & BGP_FLAG_GRAD)) return;

    double gmean = 0.0;
    for (int i = g.rank(); i < N; i += g.size())
        if (mb[i] != 0) gmean += (double)alpha[i];
    gmean = group_sum(g, gmean, scratch);

    group_spd_inverse(g, a, N, ld, tmp, tile, kacc);  // a (lower) = K^-1

    // W = alpha alpha^T - K^-1, summed over the observed lower triangle (off-diagonal twice).
    // Diagonal terms enter the outputscale and noise sums only (u = 0 and d phi / d alpha = 0
    // at r = 0). The kernel is evaluated once per pair and pass of BGP_DCHUNK dimensions.
    for (int d0 = 0; d0 < (D > 0 ? D : 1); d0 += BGP_DCHUNK) {
        GradSums q = grad_sums_zero();
        for (long long idx = g.rank(); idx < tri; idx += g.size()) {
            int i, j;
            tri_index(idx, i, j);
            if (mb[i] == 0 || mb[j] == 0) continue;
            const double w = (double)alpha[i] * (double)alpha[j] - (double)a[(size_t)i * ld + j];
            if (i == j) {
                if (d0 == 0) add_diagonal(q, w, s);
                continue;
            }
            add_pair<Cov>(q, xb + (size_t)i * D, xb + (size_t)j * D, lsb, D, d0, s, shape, w);
        }
        write_gradient<Cov>(g, p, b, d0, q, gmean, noise, scratch);
    }
}

// The warp variant (N <= 32), register resident: lane i owns row i of K, of L, of L^-1 and of
// K^-1 in turn, in `row[j]` (j = 0..31, indexed only by unrolled loop counters, so the array
// stays in registers), and a column moves between lanes by shuffles instead of shared-memory
// round trips and warp barriers. Loops over columns stop at N (uniform across the warp); lanes
// >= N and masked points are identity rows, exactly as in the group version, so the numbers are
// the same up to rounding. Shared memory (N x (N + 1) elements of this warp's region) is used
// once, to transpose L^-1 for K^-1 = L^-T L^-1 and for the backward solve.
template <typename T>
__device__ __forceinline__ T lane_shfl(T v, int src) { return __shfl_sync(0xffffffffu, v, src); }

// Row `lane` (< N) of a lower-triangular matrix held in registers into shared memory (ld), zeros
// above the diagonal; lanes >= N store nothing.
template <typename T>
__device__ __forceinline__ void store_lower_row(T* sm, int ld, int N, int lane, const T (&row)[BGP_WARP]) {
    if (lane >= N) return;
    #pragma unroll
    for (int j = 0; j < BGP_WARP; ++j) {
        if (j >= N) break;
        sm[lane * ld + j] = j <= lane ? row[j] : T(0);
    }
}

template <class Cov, typename T>
__device__ void gp_mll_warp_member(const MllArgs<T>& p, int b, T* sm) {
    const int lane = threadIdx.x & (BGP_WARP - 1);
    const int N = p.N, D = p.D, ld = N + 1;
    const T* xb = p.x + b * p.x_stride;
    const uint8_t* mb = p.mask + (size_t)b * N;
    const T* lsb = p.ls + (size_t)b * D;
    const T s = p.s[b], noise = p.noise[b];
    const T shape = cov_alpha<Cov>(p.rq_alpha, b);
    const bool obs = lane < N && mb[lane] != 0;
    const T* xi = xb + (size_t)(lane < N ? lane : 0) * D;
    const T yv = (obs && p.yvar) ? p.yvar[(size_t)b * N + lane] : T(0);

    T row[BGP_WARP];
    T diag = T(1);  // L_ii of this lane's row
    int used = -1;
    for (int t = 0; t < p.nattempts; ++t) {
        const T diag_add = noise + p.jit[(size_t)b * p.nattempts + t];
        // Row `lane` of K through this lane's own row of shared memory (a run-time loop, so
        // the kernel function is inlined once), then into registers.
        if (lane < N) {
            for (int j = 0; j < N; ++j) {
                T v = lane == j ? T(1) : T(0);
                if (obs && mb[j] != 0) {
                    if (lane == j)
                        v = p.yvar ? (s + diag_add) + yv : s + diag_add;
                    else
                        v = cov_value<Cov>(xi, xb + (size_t)j * D, lsb, s, shape, D);
                }
                sm[lane * ld + j] = v;
            }
        }
        #pragma unroll
        for (int j = 0; j < BGP_WARP; ++j) row[j] = (lane < N && j < N) ? sm[lane * ld + j] : (lane == j ? T(1) : T(0));
        // Right-looking Cholesky: column k is scaled by its lane's pivot, then every row i > k
        // updates its entries j in (k, i] with l_ik l_jk (l_jk shuffled from lane j).
        bool ok = true;
        #pragma unroll
        for (int k = 0; k < BGP_WARP; ++k) {
            if (k >= N) break;
            const T pv = lane_shfl(row[k], k);
            if (!(pv > T(0)) || !bgp_finite(pv)) {
                ok = false;
                break;
            }
            const T dk = sqrt(pv);
            if (lane == k) {
                row[k] = dk;
                diag = dk;
            } else if (lane > k) {
                row[k] = row[k] / dk;
            }
            const T lik = row[k];
            #pragma unroll
            for (int j = k + 1; j < BGP_WARP; ++j) {
                if (j >= N) break;
                const T ljk = lane_shfl(lik, j);
                if (lane >= j) row[j] -= lik * ljk;
            }
        }
        if (ok) {
            used = t;
            break;
        }
    }
    if (lane == 0) p.out_attempt[b] = used;
    const int P = D + 3 + (Cov::has_alpha ? 1 : 0);
    if (used < 0) {
        if (lane == 0) p.out_mll[b] = bgp_nan<T>();
        if (p.flags & BGP_FLAG_GRAD)
            for (int k = lane; k < P; k += BGP_WARP) p.out_grad[(size_t)b * P + k] = bgp_nan<T>();
        if (p.flags & BGP_FLAG_FACTOR) {
            for (int e = lane; e < N * N; e += BGP_WARP) p.out_l[(size_t)b * N * N + e] = bgp_nan<T>();
            if (lane < N) p.out_alpha[(size_t)b * N + lane] = bgp_nan<T>();
        }
        return;
    }

    const double nobs = warp_sum(obs ? 1.0 : 0.0);
    const double logdet = 2.0 * warp_sum(obs ? log((double)diag) : 0.0);
    // Forward substitution L v = r, column by column: lane k finishes v_k, the rows below use it.
    T v = obs ? p.r[(size_t)b * N + lane] : T(0);
    #pragma unroll
    for (int k = 0; k < BGP_WARP; ++k) {
        if (k >= N) break;
        const T vk = lane_shfl(v / diag, k);
        if (lane == k)
            v = vk;
        else if (lane > k)
            v -= row[k] * vk;
    }
    const double quad = warp_sum(obs ? (double)v * (double)v : 0.0);
    const double log2pi = 1.8378770664093454835606594728112;
    if (lane == 0) p.out_mll[b] = (T)(-0.5 * quad - 0.5 * logdet - 0.5 * nobs * log2pi);

    // L to shared memory (row i by lane i) for the backward solve, which walks rows of L.
    store_lower_row(sm, ld, N, lane, row);
    __syncwarp();
    // Backward substitution L^T a = v: lane k finishes a_k, the rows above subtract l_ki a_k.
    T al = v;
    for (int k = N - 1; k >= 0; --k) {
        const T ak = lane_shfl(al / diag, k);
        if (lane == k)
            al = ak;
        else if (lane < k)
            al -= sm[k * ld + lane] * ak;
    }
    if (p.flags & BGP_FLAG_FACTOR) {
        if (lane < N) {
            #pragma unroll
            for (int j = 0; j < BGP_WARP; ++j) {
                if (j >= N) break;
                p.out_l[(size_t)b * N * N + (size_t)lane * N + j] = j <= lane ? row[j] : T(0);
            }
            p.out_alpha[(size_t)b * N + lane] = al;
        }
    }
    if (!(p.flags & BGP_FLAG_GRAD)) return;
    const double gmean = warp_sum(obs ? (double)al : 0.0);

    // M = L^-1 in place, column j by column: m_j = 1 / l_jj, then for k > j lane k finishes
    // m_k = -(sum_{t=j}^{k-1} l_kt m_t) / l_kk from its running sum (times 1 / l_kk). l_ij is
    // last read at step j of column j, so row[j] can take m_ij once column j is done.
    const T inv_diag = T(1) / diag;
    #pragma unroll
    for (int j = 0; j < BGP_WARP; ++j) {
        if (j >= N) break;
        T acc = T(0);
        T mine = T(0);
        #pragma unroll
        for (int k = j; k < BGP_WARP; ++k) {
            if (k >= N) break;
            const T mk = lane_shfl(((lane == j ? T(1) : T(0)) - acc) * inv_diag, k);
            if (lane == k) mine = mk;
            if (lane > k) acc += row[k] * mk;
        }
        if (lane >= j) row[j] = mine;
    }
    __syncwarp();  // every lane has read L from shared memory
    store_lower_row(sm, ld, N, lane, row);
    __syncwarp();
    // Row i of K^-1 = M^T M: (K^-1)_ij = sum_k m_ki m_kj, with m_ki from column i of M in shared
    // memory and m_kj broadcast (m_kj = 0 for j > k).
    T kdiag = T(0);
    #pragma unroll
    for (int j = 0; j < BGP_WARP; ++j) row[j] = T(0);
    #pragma unroll
    for (int k = 0; k < BGP_WARP; ++k) {
        if (k >= N) break;
        const T mki = lane < N ? sm[k * ld + lane] : T(0);
        kdiag += mki * mki;
        #pragma unroll
        for (int j = 0; j <= k; ++j) row[j] += mki * sm[k * ld + j];
    }

    // Row `lane` of K^-1 back to shared memory, for the run-time loop below.
    __syncwarp();  // every lane has read M
    if (lane < N) {
        #pragma unroll
        for (int j = 0; j < BGP_WARP; ++j) {
            if (j >= N) break;
            sm[lane * ld + j] = row[j];
        }
    }
    // W = a a^T - K^-1 over the observed pairs: the diagonal enters the outputscale and noise
    // sums, each off-diagonal pair (j < i, counted twice) every sum.
    const double ai = (double)al;
    for (int d0 = 0; d0 < (D > 0 ? D : 1); d0 += BGP_DCHUNK) {
        GradSums q = grad_sums_zero();
        if (d0 == 0 && obs) add_diagonal(q, ai * ai - (double)kdiag, s);
        for (int j = 0; j < N; ++j) {
            const double aj = (double)lane_shfl(al, j);
            if (j < lane && obs && mb[j] != 0)
                add_pair<Cov>(q, xi, xb + (size_t)j * D, lsb, D, d0, s, shape, ai * aj - (double)sm[lane * ld + j]);
        }
        write_gradient<Cov>(WarpGroup{}, p, b, d0, q, gmean, noise, nullptr);
    }
}

template <typename T>
struct CholArgs {
    const T* a;
    const T* jit;
    int nattempts;
    int B, N;
    T* out_l;
    int* out_attempt;
};

template <typename T, class G>
__device__ void chol_member(const G& g, const CholArgs<T>& p, int b, T* a, int ld, T* col, T* tile) {
    const int N = p.N;
    const T* ab = p.a + (size_t)b * N * N;
    const long long tri = (long long)N * (N + 1) / 2;
    int used = -1;
    for (int t = 0; t < p.nattempts; ++t) {
        const T jit = p.jit[(size_t)b * p.nattempts + t];
        for (long long idx = g.rank(); idx < tri; idx += g.size()) {
            int i, j;
            tri_index(idx, i, j);
            const T v = ab[(size_t)i * N + j];
            a[(size_t)i * ld + j] = i == j ? v + jit : v;
        }
        g.sync();
        const bool ok = tile ? group_cholesky_blocked(g, a, N, ld, col, tile) : group_cholesky(g, a, N, ld, col);
        g.sync();
        if (ok) {
            used = t;
            break;
        }
    }
    if (g.rank() == 0) p.out_attempt[b] = used;
    write_factor(g, a, N, ld, p.out_l + (size_t)b * N * N, used >= 0);
}

__device__ __forceinline__ int warp_elems(int n) {
    const int e = n * (n + 1) + 2 * n;
    return (e + 1) & ~1;
}

#define BGP_MLL_PARAMS(T)                                                                          \
    const T *x, long long x_stride, const T *r, const uint8_t *mask, const T *ls, const T *s,      \
        const T *noise, const T *rq_alpha, const T *yvar, const T *jit, int nattempts, int B,      \
        int N, int D, int flags, T *out_mll, T *out_grad, int *out_attempt, T *out_l, T *out_alpha
#define BGP_MLL_ARGS                                                                               \
    x, x_stride, r, mask, ls, s, noise, rq_alpha, yvar, jit, nattempts, B, N, D, flags, out_mll,   \
        out_grad, out_attempt, out_l, out_alpha

// gp_mll_{warp,block,global}_<KN>_<DT> for the covariance policy COV in precision T.
#define BGP_GP(COV, KN, T, DT)                                                                     \
    extern "C" __global__ void __launch_bounds__(BGP_WARP * BGP_WARPS_PER_BLOCK, 4)                 \
        gp_mll_warp_##KN##_##DT(BGP_MLL_PARAMS(T)) {                                               \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int w = threadIdx.x / BGP_WARP;                                                      \
        const int b = blockIdx.x * BGP_WARPS_PER_BLOCK + w;                                        \
        if (b >= B) return;                                                                        \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        T* base = reinterpret_cast<T*>(bgp_smem) + (size_t)w * warp_elems(N);                      \
        gp_mll_warp_member<COV, T>(p, b, base);                                                    \
    }                                                                                              \
    extern "C" __global__ void gp_mll_block_##KN##_##DT(BGP_MLL_PARAMS(T)) {                       \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        T* base = reinterpret_cast<T*>(bgp_smem + BGP_WARP);                                       \
        const int ld = N + 1;                                                                      \
        gp_mll_member<COV, T>(BlockGroup{}, p, b, base, ld, base + (size_t)N * ld,                 \
                              base + (size_t)N * ld + N, bgp_smem, nullptr, nullptr);              \
    }                                                                                              \
    extern "C" __global__ void gp_mll_global_##KN##_##DT(BGP_MLL_PARAMS(T), T* work) {             \
        BGP_STATIC_SHARED(double, scratch, BGP_WARP);                                              \
        BGP_STATIC_SHARED(T, tile, BGP_TILE_ELEMS);                                                \
        BGP_STATIC_SHARED(double, kacc, BGP_NB * BGP_NB);                                          \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        T* base = work + (size_t)b * ((size_t)N * N + 2 * (size_t)N);                              \
        gp_mll_member<COV, T>(BlockGroup{}, p, b, base, N, base + (size_t)N * N,                   \
                              base + (size_t)N * N + N, scratch, tile, kacc);                      \
    }

// chol_{warp,block,global}_<DT> in precision T (no covariance kernel involved).
#define BGP_CHOL(T, DT)                                                                            \
    extern "C" __global__ void chol_warp_##DT(const T* a, const T* jit, int nattempts, int B,      \
                                              int N, T* out_l, int* out_attempt) {                 \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int w = threadIdx.x / BGP_WARP;                                                      \
        const int b = blockIdx.x * BGP_WARPS_PER_BLOCK + w;                                        \
        if (b >= B) return;                                                                        \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        T* base = reinterpret_cast<T*>(bgp_smem) + (size_t)w * warp_elems(N);                      \
        chol_member<T>(WarpGroup{}, p, b, base, N + 1, base + (size_t)N * (N + 1), nullptr);       \
    }                                                                                              \
    extern "C" __global__ void chol_block_##DT(const T* a, const T* jit, int nattempts, int B,     \
                                               int N, T* out_l, int* out_attempt) {                \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        T* base = reinterpret_cast<T*>(bgp_smem + BGP_WARP);                                       \
        chol_member<T>(BlockGroup{}, p, b, base, N + 1, base + (size_t)N * (N + 1), nullptr);      \
    }                                                                                              \
    extern "C" __global__ void chol_global_##DT(const T* a, const T* jit, int nattempts, int B,    \
                                                int N, T* out_l, int* out_attempt, T* work) {      \
        BGP_STATIC_SHARED(T, tile, BGP_TILE_ELEMS);                                                \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        T* base = work + (size_t)b * ((size_t)N * N + 2 * (size_t)N);                              \
        chol_member<T>(BlockGroup{}, p, b, base, N, base + (size_t)N * N, tile);                   \
    }

BGP_FOR_EACH_COVARIANCE(BGP_GP, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_GP, float, f32)
BGP_CHOL(double, f64)
BGP_CHOL(float, f32)
