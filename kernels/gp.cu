// Fused per-member kernels: the MLL with its gradient (gp_mll_*) and the Cholesky of given
// matrices (chol_*), each with per-member jitter escalation (docs/design.md sections 1, 3, 4).
//
// Entry points: gp_mll_{warp8,warp16,warp,block,global}_<kernel>_<dtype> for every covariance kernel of
// covariance.cuh (rbf, matern12, matern32, matern52, rq) and dtype (f64, f32), and
// chol_{warp,block,global}_<dtype>, which involve no covariance kernel. Two generations of each
// (src/backend/cuda/launch.rs Generation; BATCHGP_CUDA_KERNELS=v0 selects the old): v1 under
// those names, and v0, the kernels as they were, as gp_mll_{warp,block,global}_v0_<kernel>_<dtype>
// and chol_{warp,block,global}_v0_<dtype>, kept until a GPU run has timed both (docs/gpu-notes.md).
// v1: lengthscales inverted once per member (covariance.cuh LsInv), row loops instead of
// tri_index, rowalg.cuh's linear algebra (one barrier per Cholesky column, solves in one warp,
// N + 4 barriers for K^-1 in the block variant), two or four members per warp for N <= 16.
//
// One member is handled by one thread group, in three variants that share the same code:
//   *_warp_*     N <= 32: one warp per member (v1: gp_mll_warp8_* and gp_mll_warp16_* put
//                four and two members on a warp for N <= 8 and N <= 16, a segment of W = 8 or 16
//                lanes each; gp_warp.cuh), BGP_WARPS_PER_BLOCK warps per block,
//                the member's matrix in shared memory (ld = N + 1);
//   *_block_*    N up to the opt-in shared-memory limit (168 in f64, 239 in f32 on an H100/H200): one block
//                of BGP_BLOCK threads per member, K built, factored, solved and inverted in shared
//                memory (ld = N + 1), so K never goes to global memory;
//   *_global_*   any N: one block of BGP_BLOCK threads per member working in a global workspace
//                of WORK_STRIDE = N * N + 2 * N elements per member (ld = N).
// Grid: warp variant ceil(B / (BGP_WARPS_PER_BLOCK * mpw)) blocks of 32 * BGP_WARPS_PER_BLOCK
// threads (mpw = warp_members_v1(N), 1 in v0); block and global variants B blocks of BGP_BLOCK
// threads. Dynamic shared memory (bytes):
//   warp   BGP_WARPS_PER_BLOCK * mpw * elems * sizeof(T), elems = warp_elems(N) (v0) or
//          warp_region_v1(N) = warp_elems(N) + BGP_IL_MAX (v1)
//   block  32 * 8 + (N * (N + 1) + 2 * N (+ BGP_IL_MAX in v1)) * sizeof(T)
//   global 0 (static: 32 doubles of reduction scratch, BGP_TILE_ELEMS elements of T for the
//   tiles of the blocked Cholesky and of L^-T L^-1, BGP_NB^2 doubles of tile sums, and in v1
//   BGP_IL_MAX elements of T for the inverse lengthscales)
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
#include "rowalg.cuh"

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
template <class Cov, typename T, class S>
__device__ __forceinline__ void add_pair(GradSums& q, const T* xi, const T* xj, const S& sc, int D, int d0, T s,
                                         T shape, double w) {
    const T r2 = scaled_sqdist_by(xi, xj, sc, D);
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
            q.ls[c] += wg * (double)scaled_sq(xi[d] - xj[d], sc, d);
        }
    }
}

// Sums a pass's GradSums over the group and writes its gradient entries of member b (layout of
// the file header): the pass's lengthscales, and with d0 = 0 outputscale, noise, mean (gmean,
// already summed) and alpha. b < 0: sums only (a warp segment with nothing to write).
template <class Cov, typename T, class G>
__device__ __forceinline__ void write_gradient(const G& g, const MllArgs<T>& p, int b, int d0, const GradSums& q, double gmean,
                               T noise, double* scratch) {
    const int D = p.D, P = D + 3 + (Cov::has_alpha ? 1 : 0);
    #pragma unroll
    for (int c = 0; c < BGP_DCHUNK; ++c) {
        const double tot = group_sum(g, q.ls[c], scratch);
        if (g.rank() == 0 && b >= 0 && d0 + c < D) p.out_grad[(size_t)b * P + d0 + c] = (T)(0.5 * tot);
    }
    if (d0 == 0) {
        const double ts = group_sum(g, q.s, scratch);
        const double tn = group_sum(g, q.n, scratch);
        const double ta = Cov::has_alpha ? group_sum(g, q.a, scratch) : 0.0;
        if (g.rank() == 0 && b >= 0) {
            p.out_grad[(size_t)b * P + D] = (T)(0.5 * ts);
            p.out_grad[(size_t)b * P + D + 1] = (T)(0.5 * (double)noise * tn);
            p.out_grad[(size_t)b * P + D + 2] = (T)gmean;
            if (Cov::has_alpha) p.out_grad[(size_t)b * P + D + 3] = (T)(0.5 * ta);
        }
    }
}

// Member b on group g (block and global variants). a (ld) holds K, then L, then K^-1; alpha and
// tmp n values each (contiguous: the v1 Cholesky uses both as its column buffers); scratch 32
// doubles; tile and kacc the global variant's tiles (null in the block variant); il (V1)
// BGP_IL_MAX elements for the inverse lengthscales. V1: row loops, rowalg.cuh's factorisation,
// solves and inverse (K^-1 left in the upper triangle in the block variant), lengthscales
// inverted once (LsInv).
template <class Cov, typename T, class G, bool V1>
__device__ void gp_mll_member(const G& g, const MllArgs<T>& p, int b, T* a, int ld, T* alpha, T* tmp,
                              double* scratch, T* tile, double* kacc, T* il) {
    const int N = p.N, D = p.D;
    const T* xb = p.x + b * p.x_stride;
    const T* rb = p.r + (size_t)b * N;
    const uint8_t* mb = p.mask + (size_t)b * N;
    const T* lsb = p.ls + (size_t)b * D;
    const T* yvb = p.yvar ? p.yvar + (size_t)b * N : nullptr;
    const T s = p.s[b], noise = p.noise[b];
    const T shape = cov_alpha<Cov>(p.rq_alpha, b);
    const long long tri = (long long)N * (N + 1) / 2;
    if (V1) {
        fill_inverse_ls(il, lsb, D, g.rank(), g.size());
        g.sync();
    }
    const auto sc = LsScaleOf<V1, T>::make(lsb, il);

    int used = -1;
    for (int t = 0; t < p.nattempts; ++t) {
        const T diag_add = noise + p.jit[(size_t)b * p.nattempts + t];
        if (V1) {
            for (int i = g.warp(); i < N; i += g.warps())
                for (int j = g.lane(); j <= i; j += BGP_WARP)
                    a[(size_t)i * ld + j] = gram_entry_by<Cov>(xb, mb, sc, s, shape, diag_add, yvb, i, j, D);
        } else {
            for (long long idx = g.rank(); idx < tri; idx += g.size()) {
                int i, j;
                tri_index(idx, i, j);
                a[(size_t)i * ld + j] = gram_entry_by<Cov>(xb, mb, sc, s, shape, diag_add, yvb, i, j, D);
            }
        }
        g.sync();
        bool ok;
        if (V1)
            ok = tile ? group_cholesky_blocked<true>(g, a, N, ld, alpha, tile) : group_cholesky_v1(g, a, N, ld, alpha);
        else
            ok = tile ? group_cholesky_blocked<false>(g, a, N, ld, tmp, tile) : group_cholesky(g, a, N, ld, tmp);
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
    if (V1)
        group_solve_one_warp<T>(g, [&](const WarpGroup& w) { group_forward(w, a, N, ld, alpha); });
    else
        group_forward(g, a, N, ld, alpha);
    double quad = 0.0;
    for (int i = g.rank(); i < N; i += g.size())
        if (mb[i] != 0) quad += (double)alpha[i] * (double)alpha[i];
    quad = group_sum(g, quad, scratch);
    if (V1)
        group_solve_one_warp<T>(g, [&](const WarpGroup& w) { group_backward(w, a, N, ld, alpha); });
    else
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

    // a = K^-1: lower triangle, or upper (v1 block variant).
    const bool upper = V1 && !tile;
    if (upper)
        group_spd_inverse_v1(g, a, N, ld, tmp);
    else
        group_spd_inverse(g, a, N, ld, tmp, tile, kacc);

    // W = alpha alpha^T - K^-1, summed over the observed lower triangle (off-diagonal twice).
    // Diagonal terms enter the outputscale and noise sums only (u = 0 and d phi / d alpha = 0
    // at r = 0). The kernel is evaluated once per pair and pass of BGP_DCHUNK dimensions. v1:
    // warp w takes rows i = w, w + warps(), ..., its lanes the stored entries (i, j) of the row,
    // j < i (lower) or j > i (upper): W and the pair terms are symmetric.
    for (int d0 = 0; d0 < (D > 0 ? D : 1); d0 += BGP_DCHUNK) {
        GradSums q = grad_sums_zero();
        if (V1) {
            for (int i = g.warp(); i < N; i += g.warps()) {
                if (mb[i] == 0) continue;
                const double ai = (double)alpha[i];
                const T* ai_row = a + (size_t)i * ld;
                if (d0 == 0 && g.lane() == 0) add_diagonal(q, ai * ai - (double)ai_row[i], s);
                const int j0 = upper ? i + 1 : 0, j1 = upper ? N : i;
                for (int j = j0 + g.lane(); j < j1; j += BGP_WARP) {
                    if (mb[j] == 0) continue;
                    const double w = ai * (double)alpha[j] - (double)ai_row[j];
                    add_pair<Cov>(q, xb + (size_t)i * D, xb + (size_t)j * D, sc, D, d0, s, shape, w);
                }
            }
        } else {
            for (long long idx = g.rank(); idx < tri; idx += g.size()) {
                int i, j;
                tri_index(idx, i, j);
                if (mb[i] == 0 || mb[j] == 0) continue;
                const double w = (double)alpha[i] * (double)alpha[j] - (double)a[(size_t)i * ld + j];
                if (i == j) {
                    if (d0 == 0) add_diagonal(q, w, s);
                    continue;
                }
                add_pair<Cov>(q, xb + (size_t)i * D, xb + (size_t)j * D, sc, D, d0, s, shape, w);
            }
        }
        write_gradient<Cov>(g, p, b, d0, q, gmean, noise, scratch);
    }
}

// Elements of one warp's region in the v0 warp kernels (the matrix with ld = N + 1 and two
// columns), rounded up to even.
__device__ __forceinline__ int warp_elems(int n) {
    const int e = n * (n + 1) + 2 * n;
    return (e + 1) & ~1;
}

#include "gp_warp.cuh"

template <typename T>
struct CholArgs {
    const T* a;
    const T* jit;
    int nattempts;
    int B, N;
    T* out_l;
    int* out_attempt;
};

// col: n values (v0), 2n (V1, the column buffers of rowalg.cuh's Cholesky).
template <typename T, class G, bool V1>
__device__ void chol_member(const G& g, const CholArgs<T>& p, int b, T* a, int ld, T* col, T* tile) {
    const int N = p.N;
    const T* ab = p.a + (size_t)b * N * N;
    const long long tri = (long long)N * (N + 1) / 2;
    int used = -1;
    for (int t = 0; t < p.nattempts; ++t) {
        const T jit = p.jit[(size_t)b * p.nattempts + t];
        if (V1) {
            for (int i = g.warp(); i < N; i += g.warps())
                for (int j = g.lane(); j <= i; j += BGP_WARP) {
                    const T v = ab[(size_t)i * N + j];
                    a[(size_t)i * ld + j] = i == j ? v + jit : v;
                }
        } else {
            for (long long idx = g.rank(); idx < tri; idx += g.size()) {
                int i, j;
                tri_index(idx, i, j);
                const T v = ab[(size_t)i * N + j];
                a[(size_t)i * ld + j] = i == j ? v + jit : v;
            }
        }
        g.sync();
        bool ok;
        if (V1)
            ok = tile ? group_cholesky_blocked<true>(g, a, N, ld, col, tile) : group_cholesky_v1(g, a, N, ld, col);
        else
            ok = tile ? group_cholesky_blocked<false>(g, a, N, ld, col, tile) : group_cholesky(g, a, N, ld, col);
        g.sync();
        if (ok) {
            used = t;
            break;
        }
    }
    if (g.rank() == 0) p.out_attempt[b] = used;
    write_factor(g, a, N, ld, p.out_l + (size_t)b * N * N, used >= 0);
}

// chol_warp: the members of the calling warp one after another (v1: the warp kernel's launch,
// warp_members_v1(N) members per warp in regions of warp_region_v1(N) elements; v0: one member
// per warp in regions of warp_elems(N)).
template <typename T, bool V1>
__device__ __forceinline__ void chol_warp_members(const CholArgs<T>& p, T* smem) {
    const int w = threadIdx.x / BGP_WARP, N = p.N;
    const int mpw = V1 ? warp_members_v1(N) : 1;
    for (int m = 0; m < mpw; ++m) {
        const int b = (blockIdx.x * BGP_WARPS_PER_BLOCK + w) * mpw + m;
        if (b >= p.B) return;
        T* base = smem + (size_t)(w * mpw + m) * (V1 ? warp_region_v1(N) : warp_elems(N));
        chol_member<T, WarpGroup, V1>(WarpGroup{}, p, b, base, N + 1, base + (size_t)N * (N + 1), nullptr);
    }
}

#define BGP_MLL_PARAMS(T)                                                                          \
    const T *x, long long x_stride, const T *r, const uint8_t *mask, const T *ls, const T *s,      \
        const T *noise, const T *rq_alpha, const T *yvar, const T *jit, int nattempts, int B,      \
        int N, int D, int flags, T *out_mll, T *out_grad, int *out_attempt, T *out_l, T *out_alpha
#define BGP_MLL_ARGS                                                                               \
    x, x_stride, r, mask, ls, s, noise, rq_alpha, yvar, jit, nattempts, B, N, D, flags, out_mll,   \
        out_grad, out_attempt, out_l, out_alpha

// gp_mll_{warp,block,global}<SUF>_<KN>_<DT> for the covariance policy COV in precision T: the v1
// kernels (V1 = true, SUF empty) or the v0 ones (V1 = false, SUF = _v0). Block variant shared
// memory: 32 doubles of scratch, the matrix (ld = N + 1), alpha and tmp (N each), and (v1) the
// inverse lengthscales (BGP_IL_MAX).
#define BGP_GP_GEN(COV, KN, T, DT, V1, SUF)                                                        \
    extern "C" __global__ void __launch_bounds__(BGP_WARP * BGP_WARPS_PER_BLOCK, 4)                 \
        gp_mll_warp##SUF##_##KN##_##DT(BGP_MLL_PARAMS(T)) {                                        \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        if constexpr (V1)                                                                          \
            gp_mll_warp_v1<COV, T, BGP_WARP>(p, reinterpret_cast<T*>(bgp_smem));                   \
        else                                                                                       \
            gp_mll_warp_v0<COV, T>(p, reinterpret_cast<T*>(bgp_smem));                             \
    }                                                                                              \
    extern "C" __global__ void gp_mll_block##SUF##_##KN##_##DT(BGP_MLL_PARAMS(T)) {                \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        T* base = reinterpret_cast<T*>(bgp_smem + BGP_WARP);                                       \
        const int ld = N + 1;                                                                      \
        T* alpha = base + (size_t)N * ld;                                                          \
        gp_mll_member<COV, T, BlockGroup, V1>(BlockGroup{}, p, b, base, ld, alpha, alpha + N,      \
                                              bgp_smem, nullptr, nullptr, alpha + 2 * N);          \
    }                                                                                              \
    extern "C" __global__ void gp_mll_global##SUF##_##KN##_##DT(BGP_MLL_PARAMS(T), T* work) {      \
        BGP_STATIC_SHARED(double, scratch, BGP_WARP);                                              \
        BGP_STATIC_SHARED(T, tile, BGP_TILE_ELEMS);                                                \
        BGP_STATIC_SHARED(double, kacc, BGP_NB * BGP_NB);                                          \
        BGP_STATIC_SHARED(T, il, V1 ? BGP_IL_MAX : 1);                                             \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        T* base = work + (size_t)b * ((size_t)N * N + 2 * (size_t)N);                              \
        gp_mll_member<COV, T, BlockGroup, V1>(BlockGroup{}, p, b, base, N, base + (size_t)N * N,   \
                                              base + (size_t)N * N + N, scratch, tile, kacc, il);  \
    }
// gp_mll_warp<W>_<KN>_<DT>: the v1 warp kernel with 32 / W members per warp (W = 8, 16).
#define BGP_GP_PACKED(COV, KN, T, DT, W)                                                           \
    extern "C" __global__ void __launch_bounds__(BGP_WARP * BGP_WARPS_PER_BLOCK, 4)                 \
        gp_mll_warp##W##_##KN##_##DT(BGP_MLL_PARAMS(T)) {                                          \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        gp_mll_warp_v1<COV, T, W>(p, reinterpret_cast<T*>(bgp_smem));                              \
    }
#define BGP_GP(COV, KN, T, DT)                                                                     \
    BGP_GP_GEN(COV, KN, T, DT, true, )                                                             \
    BGP_GP_PACKED(COV, KN, T, DT, 8)                                                               \
    BGP_GP_PACKED(COV, KN, T, DT, 16)                                                              \
    BGP_GP_GEN(COV, KN, T, DT, false, _v0)

// chol_{warp,block,global}<SUF>_<DT> in precision T (no covariance kernel involved), v1 or v0.
#define BGP_CHOL_GEN(T, DT, V1, SUF)                                                               \
    extern "C" __global__ void chol_warp##SUF##_##DT(const T* a, const T* jit, int nattempts,      \
                                                     int B, int N, T* out_l, int* out_attempt) {   \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        chol_warp_members<T, V1>(p, reinterpret_cast<T*>(bgp_smem));                               \
    }                                                                                              \
    extern "C" __global__ void chol_block##SUF##_##DT(const T* a, const T* jit, int nattempts,     \
                                                      int B, int N, T* out_l, int* out_attempt) {  \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        T* base = reinterpret_cast<T*>(bgp_smem + BGP_WARP);                                       \
        chol_member<T, BlockGroup, V1>(BlockGroup{}, p, b, base, N + 1, base + (size_t)N * (N + 1), \
                                       nullptr);                                                   \
    }                                                                                              \
    extern "C" __global__ void chol_global##SUF##_##DT(const T* a, const T* jit, int nattempts,    \
                                                       int B, int N, T* out_l, int* out_attempt,   \
                                                       T* work) {                                  \
        BGP_STATIC_SHARED(T, tile, BGP_TILE_ELEMS);                                                \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        T* base = work + (size_t)b * ((size_t)N * N + 2 * (size_t)N);                              \
        chol_member<T, BlockGroup, V1>(BlockGroup{}, p, b, base, N, base + (size_t)N * N, tile);   \
    }
#define BGP_CHOL(T, DT)                                                                            \
    BGP_CHOL_GEN(T, DT, true, )                                                                    \
    BGP_CHOL_GEN(T, DT, false, _v0)

// (BGP_GP_ONE: only the entry points that file defines, for measuring one kernel's costs.)
#ifndef BGP_GP_ONE
BGP_FOR_EACH_COVARIANCE(BGP_GP, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_GP, float, f32)
BGP_CHOL(double, f64)
BGP_CHOL(float, f32)
#endif
