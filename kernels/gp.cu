// Fused per-member kernels: the MLL with its gradient (gp_mll_*) and the Cholesky of given
// matrices (chol_*), each with per-member jitter escalation (DESIGN.md sections 1, 3, 4).
//
// One member is handled by one thread group, in three variants that share the same code:
//   *_warp_<T>   N <= 32: one warp per member, BGP_WARPS_PER_BLOCK members per block, the
//                member's matrix in shared memory (ld = N + 1);
//   *_block_<T>  N up to the opt-in shared-memory limit (about 160 in f64 on an H100): one block
//                of BGP_BLOCK threads per member, K built, factored, solved and inverted in shared
//                memory (ld = N + 1), so K never goes to global memory;
//   *_global_<T> any N: one block of BGP_BLOCK threads per member working in a global workspace
//                of WORK_STRIDE = N * N + 2 * N elements per member (ld = N).
// Grid: warp variant ceil(B / BGP_WARPS_PER_BLOCK) blocks of 32 * BGP_WARPS_PER_BLOCK threads;
// block and global variants B blocks of BGP_BLOCK threads. Dynamic shared memory (bytes):
//   warp   BGP_WARPS_PER_BLOCK * warp_elems(N) * sizeof(T)
//   block  32 * 8 + (N * (N + 1) + 2 * N) * sizeof(T)
//   global 0 (static: 32 doubles of reduction scratch and BGP_TILE_ELEMS elements of T for
//   the blocked Cholesky tiles)
// where warp_elems(N) = N * (N + 1) + 2 * N rounded up to even.
//
// Jitter: attempt t (0 .. nattempts-1) adds jit[b * nattempts + t] (the host's table,
// JitterPolicy::jitter, so both backends add the same numbers) to the observed diagonal;
// attempt[b] is the first that factored, or -1 when none did (then every output of the member is
// NaN). mll flags: bit 0 = gradient, bit 1 = write L (B, N, N; zeros above the diagonal) and
// alpha = K^-1 r (B, N) for prediction.
// Gradient layout per member (D + 3): d/dlog l_0..l_{D-1}, d/dlog s, d/dlog noise, d/dmean.
#include "common.cuh"

#define BGP_FLAG_GRAD 1
#define BGP_FLAG_FACTOR 2

template <typename T>
struct MllArgs {
    const T* x;
    long long x_stride;
    const T* y;
    const uint8_t* mask;
    const T* ls;
    const T* s;
    const T* noise;
    const T* mean;
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

template <typename T, class G>
__device__ void gp_mll_member(const G& g, const MllArgs<T>& p, int b, T* a, int ld, T* alpha, T* tmp,
                              double* scratch, T* tile) {
    const int N = p.N, D = p.D;
    const T* xb = p.x + b * p.x_stride;
    const T* yb = p.y + (size_t)b * N;
    const uint8_t* mb = p.mask + (size_t)b * N;
    const T* lsb = p.ls + (size_t)b * D;
    const T s = p.s[b], noise = p.noise[b], mu = p.mean[b];
    const long long tri = (long long)N * (N + 1) / 2;

    int used = -1;
    for (int t = 0; t < p.nattempts; ++t) {
        const T diag_add = noise + p.jit[(size_t)b * p.nattempts + t];
        for (long long idx = g.rank(); idx < tri; idx += g.size()) {
            int i, j;
            tri_index(idx, i, j);
            a[(size_t)i * ld + j] = gram_entry(xb, mb, lsb, s, diag_add, i, j, D);
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
    const int G2 = D + 3;
    if (used < 0) {
        if (g.rank() == 0) p.out_mll[b] = bgp_nan<T>();
        if (p.flags & BGP_FLAG_GRAD)
            for (int k = g.rank(); k < G2; k += g.size()) p.out_grad[(size_t)b * G2 + k] = bgp_nan<T>();
        if (p.flags & BGP_FLAG_FACTOR) {
            write_factor(g, a, N, ld, p.out_l + (size_t)b * N * N, false);
            for (int i = g.rank(); i < N; i += g.size()) p.out_alpha[(size_t)b * N + i] = bgp_nan<T>();
        }
        return;
    }

    // r = y - mean on observed points, 0 elsewhere (masked y is never read into arithmetic).
    double nobs = 0.0, logdet = 0.0;
    for (int i = g.rank(); i < N; i += g.size()) {
        const bool o = mb[i] != 0;
        alpha[i] = o ? yb[i] - mu : T(0);
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

    group_spd_inverse(g, a, N, ld, tmp);  // a (lower) = K^-1

    // W = alpha alpha^T - K^-1, summed over the observed lower triangle (off-diagonal twice).
    for (int d0 = 0; d0 < (D > 0 ? D : 1); d0 += BGP_DCHUNK) {
        double acc[BGP_DCHUNK];
        #pragma unroll
        for (int c = 0; c < BGP_DCHUNK; ++c) acc[c] = 0.0;
        double acc_s = 0.0, acc_n = 0.0;
        for (long long idx = g.rank(); idx < tri; idx += g.size()) {
            int i, j;
            tri_index(idx, i, j);
            if (mb[i] == 0 || mb[j] == 0) continue;
            const double w = (double)alpha[i] * (double)alpha[j] - (double)a[(size_t)i * ld + j];
            if (i == j) {
                acc_s += w * (double)s;
                acc_n += w;
                continue;
            }
            const T* xi = xb + (size_t)i * D;
            const T* xj = xb + (size_t)j * D;
            const T kf = rbf(xi, xj, lsb, s, D);
            const double wk = 2.0 * w * (double)kf;
            acc_s += wk;
            #pragma unroll
            for (int c = 0; c < BGP_DCHUNK; ++c) {
                const int d = d0 + c;
                if (d < D) {
                    const T u = (xi[d] - xj[d]) / lsb[d];
                    acc[c] += wk * (double)(u * u);
                }
            }
        }
        #pragma unroll
        for (int c = 0; c < BGP_DCHUNK; ++c) {
            const double tot = group_sum(g, acc[c], scratch);
            if (g.rank() == 0 && d0 + c < D) p.out_grad[(size_t)b * G2 + d0 + c] = (T)(0.5 * tot);
        }
        if (d0 == 0) {
            const double ts = group_sum(g, acc_s, scratch);
            const double tn = group_sum(g, acc_n, scratch);
            if (g.rank() == 0) {
                p.out_grad[(size_t)b * G2 + D] = (T)(0.5 * ts);
                p.out_grad[(size_t)b * G2 + D + 1] = (T)(0.5 * (double)noise * tn);
                p.out_grad[(size_t)b * G2 + D + 2] = (T)gmean;
            }
        }
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
    const T *x, long long x_stride, const T *y, const uint8_t *mask, const T *ls, const T *s,      \
        const T *noise, const T *mean, const T *jit, int nattempts, int B, int N, int D, int flags, \
        T *out_mll, T *out_grad, int *out_attempt, T *out_l, T *out_alpha
#define BGP_MLL_ARGS                                                                               \
    x, x_stride, y, mask, ls, s, noise, mean, jit, nattempts, B, N, D, flags, out_mll, out_grad,   \
        out_attempt, out_l, out_alpha

#define BGP_GP(T, NAME)                                                                            \
    extern "C" __global__ void gp_mll_warp_##NAME(BGP_MLL_PARAMS(T)) {                             \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int w = threadIdx.x / BGP_WARP;                                                      \
        const int b = blockIdx.x * BGP_WARPS_PER_BLOCK + w;                                        \
        if (b >= B) return;                                                                        \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        T* base = reinterpret_cast<T*>(bgp_smem) + (size_t)w * warp_elems(N);                      \
        const int ld = N + 1;                                                                      \
        gp_mll_member<T>(WarpGroup{}, p, b, base, ld, base + (size_t)N * ld,                       \
                         base + (size_t)N * ld + N, nullptr, nullptr);                             \
    }                                                                                              \
    extern "C" __global__ void gp_mll_block_##NAME(BGP_MLL_PARAMS(T)) {                            \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        T* base = reinterpret_cast<T*>(bgp_smem + BGP_WARP);                                       \
        const int ld = N + 1;                                                                      \
        gp_mll_member<T>(BlockGroup{}, p, b, base, ld, base + (size_t)N * ld,                      \
                         base + (size_t)N * ld + N, bgp_smem, nullptr);                            \
    }                                                                                              \
    extern "C" __global__ void gp_mll_global_##NAME(BGP_MLL_PARAMS(T), T* work) {                  \
        __shared__ double scratch[BGP_WARP];                                                       \
        __shared__ T tile[BGP_TILE_ELEMS];                                                         \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const MllArgs<T> p{BGP_MLL_ARGS};                                                          \
        T* base = work + (size_t)b * ((size_t)N * N + 2 * (size_t)N);                              \
        gp_mll_member<T>(BlockGroup{}, p, b, base, N, base + (size_t)N * N,                        \
                         base + (size_t)N * N + N, scratch, tile);                                 \
    }                                                                                              \
    extern "C" __global__ void chol_warp_##NAME(const T* a, const T* jit, int nattempts, int B,    \
                                                int N, T* out_l, int* out_attempt) {               \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int w = threadIdx.x / BGP_WARP;                                                      \
        const int b = blockIdx.x * BGP_WARPS_PER_BLOCK + w;                                        \
        if (b >= B) return;                                                                        \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        T* base = reinterpret_cast<T*>(bgp_smem) + (size_t)w * warp_elems(N);                      \
        chol_member<T>(WarpGroup{}, p, b, base, N + 1, base + (size_t)N * (N + 1), nullptr);       \
    }                                                                                              \
    extern "C" __global__ void chol_block_##NAME(const T* a, const T* jit, int nattempts, int B,   \
                                                 int N, T* out_l, int* out_attempt) {              \
        BGP_DYNAMIC_SHARED double bgp_smem[];                                                      \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        T* base = reinterpret_cast<T*>(bgp_smem + BGP_WARP);                                       \
        chol_member<T>(BlockGroup{}, p, b, base, N + 1, base + (size_t)N * (N + 1), nullptr);      \
    }                                                                                              \
    extern "C" __global__ void chol_global_##NAME(const T* a, const T* jit, int nattempts, int B,  \
                                                  int N, T* out_l, int* out_attempt, T* work) {    \
        __shared__ T tile[BGP_TILE_ELEMS];                                                         \
        const int b = blockIdx.x;                                                                  \
        if (b >= B) return;                                                                        \
        const CholArgs<T> p{a, jit, nattempts, B, N, out_l, out_attempt};                          \
        T* base = work + (size_t)b * ((size_t)N * N + 2 * (size_t)N);                              \
        chol_member<T>(BlockGroup{}, p, b, base, N, base + (size_t)N * N, tile);                   \
    }

BGP_GP(double, f64)
BGP_GP(float, f32)
