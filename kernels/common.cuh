// Shared device helpers of the batchgp kernels: thread groups, reductions and the group-level
// dense linear algebra (Cholesky, triangular solves, inverse) that the fused per-member kernels
// in gp.cu instantiate for a warp, a block in shared memory and a block working in global memory.
// The covariance kernels (policies) and the Gram entry are in covariance.cuh.
//
// Conventions (docs/design.md sections 1, 3, 4):
// - matrices are row-major with a leading dimension `ld` (>= n; shared-memory copies pad it to
//   n + 1 so that walking a column does not hit one bank);
// - only the lower triangle of a factor is meaningful;
// - a masked point (mask[i] == 0) has the identity row and column in K, residual 0, and its x and
//   y are never read into arithmetic (selected away, never multiplied by 0);
// - reductions and the inverse's dot products accumulate in double in both precisions, in a
//   fixed order (deterministic).
#pragma once

#include <stdint.h>

// Shared memory declarations. The host emulation (tests/emulation/cuda_host.h, used by
// tests/cuda_agreement.rs and tests/svgp_cuda.rs) compiles these kernels as C++ with
// BGP_HOST_EMULATION defined and defines BGP_STATIC_SHARED itself, giving each emulated block
// its own bounds-checked copy of every static array (and each block an exactly sized dynamic
// region behind bgp_smem).
#ifdef BGP_HOST_EMULATION
#define BGP_DYNAMIC_SHARED extern
#else
#define BGP_DYNAMIC_SHARED extern __shared__
// A static shared array `T name[count]` of the block.
#define BGP_STATIC_SHARED(T, name, count) __shared__ T name[count]
#endif

#define BGP_WARP 32
// Threads of the block-per-member kernels (block in shared or global memory).
#define BGP_BLOCK 256
// Matrices per block of the warp-per-member kernels (N <= 32).
#define BGP_WARPS_PER_BLOCK 4
// Lengthscale dimensions accumulated per pass of the gradient reduction.
#define BGP_DCHUNK 8

// A whole thread block working on one member.
// Besides rank and size, a group names its warps (warp(), warps()) and the lane in a warp, for
// the row loops of the v1 code: warp w takes rows w, w + warps(), ..., its lanes the columns of
// each row (no tri_index, shared memory walked along rows).
struct BlockGroup {
    __device__ __forceinline__ int rank() const { return threadIdx.x; }
    __device__ __forceinline__ int size() const { return blockDim.x; }
    __device__ __forceinline__ void sync() const { __syncthreads(); }
    __device__ __forceinline__ int warp() const { return threadIdx.x / BGP_WARP; }
    __device__ __forceinline__ int warps() const { return blockDim.x / BGP_WARP; }
    __device__ __forceinline__ int lane() const { return threadIdx.x & (BGP_WARP - 1); }
};

// One warp working on one member (several members per block, never __syncthreads).
struct WarpGroup {
    __device__ __forceinline__ int rank() const { return threadIdx.x & (BGP_WARP - 1); }
    __device__ __forceinline__ int size() const { return BGP_WARP; }
    __device__ __forceinline__ void sync() const { __syncwarp(); }
    __device__ __forceinline__ int warp() const { return 0; }
    __device__ __forceinline__ int warps() const { return 1; }
    __device__ __forceinline__ int lane() const { return threadIdx.x & (BGP_WARP - 1); }
};

__device__ __forceinline__ double warp_sum(double v) {
    #pragma unroll
    for (int off = BGP_WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// Sum over the group, returned to every thread. `scratch` holds at least 32 doubles for a block
// group (unused for a warp group). Every thread of the group must call it.
__device__ __forceinline__ double group_sum(const WarpGroup&, double v, double*) { return warp_sum(v); }

__device__ __forceinline__ double group_sum(const BlockGroup& g, double v, double* scratch) {
    v = warp_sum(v);
    const int lane = threadIdx.x & (BGP_WARP - 1);
    const int wid = threadIdx.x / BGP_WARP;
    const int nw = (blockDim.x + BGP_WARP - 1) / BGP_WARP;
    if (lane == 0) scratch[wid] = v;
    __syncthreads();
    double t = 0.0;
    for (int w = 0; w < nw; ++w) t += scratch[w];
    __syncthreads();
    return t;
}

template <typename T> __device__ __forceinline__ T bgp_nan();
template <> __device__ __forceinline__ double bgp_nan<double>() { return __longlong_as_double(0x7ff8000000000000LL); }
template <> __device__ __forceinline__ float bgp_nan<float>() { return __int_as_float(0x7fc00000); }

template <typename T> __device__ __forceinline__ bool bgp_finite(T v) { return isfinite(v); }

// Row r and column c (c <= r) of the idx-th entry of a lower triangle stored row by row.
__device__ __forceinline__ void tri_index(long long idx, int& r, int& c) {
    // A single-precision estimate, then exact integer correction.
    long long rr = (long long)((sqrtf(8.0f * (float)idx + 1.0f) - 1.0f) * 0.5f);
    if (rr < 0) rr = 0;
    while (rr * (rr + 1) / 2 > idx) --rr;
    while ((rr + 1) * (rr + 2) / 2 <= idx) ++rr;
    r = (int)rr;
    c = (int)(idx - rr * (rr + 1) / 2);
}

// Column k of a Cholesky factorisation whose earlier columns are done: checks the pivot, scales
// the column by 1 / sqrt(pivot) in place and copies it to `col` (n values) so that later updates
// read it contiguously. Returns false (in every thread) when the pivot is not positive and finite.
template <typename T, class G>
__device__ bool group_cholesky_column(const G& g, T* a, int k, int n, int ld, T* col) {
    const T p = a[(size_t)k * ld + k];
    g.sync();  // everyone has read the pivot before it is overwritten
    if (!(p > T(0)) || !bgp_finite(p)) return false;
    const T dk = sqrt(p);
    for (int i = k + g.rank(); i < n; i += g.size()) {
        const T v = i == k ? dk : a[(size_t)i * ld + k] / dk;
        a[(size_t)i * ld + k] = v;
        col[i] = v;
    }
    g.sync();
    return true;
}

// In-place lower Cholesky of the n x n matrix a (lower triangle read and written). Returns false
// (in every thread) at the first pivot that is not positive and finite; a is then garbage.
// Right-looking, unblocked, three group syncs per column; column k is also copied to `col`
// (n values) so that the trailing update reads it contiguously.
template <typename T, class G>
__device__ bool group_cholesky(const G& g, T* a, int n, int ld, T* col) {
    for (int k = 0; k < n; ++k) {
        if (!group_cholesky_column(g, a, k, n, ld, col)) return false;
        const int m = n - k - 1;
        const long long tri = (long long)m * (m + 1) / 2;
        for (long long idx = g.rank(); idx < tri; idx += g.size()) {
            int r, c;
            tri_index(idx, r, c);
            const int i = k + 1 + r, j = k + 1 + c;
            a[(size_t)i * ld + j] -= col[i] * col[j];
        }
        g.sync();
    }
    return true;
}

// Panel width and tile size of the blocked Cholesky (the global-memory variant).
#define BGP_NB 32
// Shared memory of group_cholesky_blocked's tiles, in elements of T.
#define BGP_TILE_ELEMS (2 * BGP_NB * (BGP_NB + 1))

template <typename T, class G>
__device__ bool group_cholesky_columns_v1(const G& g, T* a, int n, int ld, T* buf, int k0, int k1);

// As group_cholesky, blocked for matrices in global memory: for each panel of BGP_NB columns,
// the panel is factored column by column (its updates stay inside the panel), then the trailing
// matrix is updated once, tile by tile, from the panel rows staged in `tile` (shared memory,
// BGP_TILE_ELEMS elements), so each trailing entry is read and written once per panel instead
// of once per column. V1: the panel by rowalg.cuh's group_cholesky_columns_v1 (one barrier per
// column; `col` then holds 2n elements).
template <bool V1, typename T, class G>
__device__ bool group_cholesky_blocked(const G& g, T* a, int n, int ld, T* col, T* tile) {
    const int TS = BGP_NB, TL = BGP_NB + 1;
    T* ta = tile;            // rows of the row tile, panel columns: ta[r * TL + t]
    T* tb = tile + TS * TL;  // rows of the column tile
    for (int k0 = 0; k0 < n; k0 += BGP_NB) {
        const int k1 = n < k0 + BGP_NB ? n : k0 + BGP_NB;
        if (V1 && !group_cholesky_columns_v1(g, a, n, ld, col, k0, k1)) return false;
        for (int k = k0; k < (V1 ? k0 : k1); ++k) {
            if (!group_cholesky_column(g, a, k, n, ld, col)) return false;
            // The rest of the panel: columns k+1 .. k1-1, rows i >= j.
            const int w = k1 - k - 1;
            if (w > 0) {
                const long long tot = (long long)(n - k - 1) * w;
                for (long long e = g.rank(); e < tot; e += g.size()) {
                    const int i = k + 1 + (int)(e / w), j = k + 1 + (int)(e % w);
                    if (j <= i) a[(size_t)i * ld + j] -= col[i] * col[j];
                }
            }
            g.sync();
        }
        // Trailing update: a[i][j] -= sum_{t in panel} a[i][t] a[j][t], k1 <= j <= i < n.
        const int m = n - k1;
        if (m <= 0) break;
        const int kb = k1 - k0;
        const int nt = (m + TS - 1) / TS;
        const long long ntiles = (long long)nt * (nt + 1) / 2;
        for (long long tt = 0; tt < ntiles; ++tt) {
            int ti, tj;
            tri_index(tt, ti, tj);
            const int i0 = k1 + ti * TS, j0 = k1 + tj * TS;
            for (int e = g.rank(); e < TS * kb; e += g.size()) {
                const int r = e / kb, t = e % kb;
                ta[r * TL + t] = i0 + r < n ? a[(size_t)(i0 + r) * ld + k0 + t] : T(0);
                tb[r * TL + t] = j0 + r < n ? a[(size_t)(j0 + r) * ld + k0 + t] : T(0);
            }
            g.sync();
            for (int e = g.rank(); e < TS * TS; e += g.size()) {
                const int r = e / TS, c = e % TS;
                const int i = i0 + r, j = j0 + c;
                if (i < n && j <= i) {
                    T acc = T(0);
                    for (int t = 0; t < kb; ++t) acc += ta[r * TL + t] * tb[c * TL + t];
                    a[(size_t)i * ld + j] -= acc;
                }
            }
            g.sync();
        }
    }
    return true;
}

// v <- L^-1 v (forward substitution), column oriented.
template <typename T, class G>
__device__ void group_forward(const G& g, const T* l, int n, int ld, T* v) {
    for (int k = 0; k < n; ++k) {
        const T vk = v[k] / l[(size_t)k * ld + k];
        g.sync();  // everyone has read v[k]
        for (int i = k + 1 + g.rank(); i < n; i += g.size()) v[i] -= l[(size_t)i * ld + k] * vk;
        if (g.rank() == 0) v[k] = vk;
        g.sync();
    }
}

// v <- L^-T v (backward substitution), column oriented.
template <typename T, class G>
__device__ void group_backward(const G& g, const T* l, int n, int ld, T* v) {
    for (int k = n - 1; k >= 0; --k) {
        const T vk = v[k] / l[(size_t)k * ld + k];
        g.sync();
        for (int i = g.rank(); i < k; i += g.size()) v[i] -= l[(size_t)k * ld + i] * vk;
        if (g.rank() == 0) v[k] = vk;
        g.sync();
    }
}

// M = L^-1 by block columns of BGP_NB, last first, leaving M^T in the upper triangle (a[k][i] =
// M_ik for k <= i, the diagonal included) as the unblocked loop of group_spd_inverse does. For
// block column J = [j0, j1) and every row i >= j0:
//   m_ij = -(S_ij + sum_{k=j+1}^{min(i, j1-1)} m_ik L_kj) / L_jj,  S_ij = sum_{k=j1}^{i} m_ik L_kj,
// with m_ii = 1 / L_ii. S is a product of tiles (M rows below J, already inverted, times the
// L block column below J), staged through `tile` and summed in `kacc` (double), row tiles from
// the bottom up so that S can take the slots of the L block column it no longer needs; then each
// thread finishes its own rows across the block's columns with L_JJ in shared memory. One or two
// syncs per tile product instead of two per column, and the serial chain of a thread is one
// block's width instead of the matrix's.
template <typename T, class G>
__device__ void group_trtri_tiled(const G& g, T* a, int n, int ld, T* tile, double* kacc) {
    const int TS = BGP_NB, TL = BGP_NB + 1;
    T* ta = tile;            // M_{I,K}: ta[r * TL + t] = m_{i0 + r, k0 + t}
    T* tb = tile + TS * TL;  // L_{K,J}: tb[t * TL + c] = L_{k0 + t, j0 + c}; later L_JJ
    const int nt = (n + TS - 1) / TS;
    for (int tJ = nt - 1; tJ >= 0; --tJ) {
        const int j0 = tJ * TS, j1 = n < j0 + TS ? n : j0 + TS, w = j1 - j0;
        for (int tI = nt - 1; tI > tJ; --tI) {
            const int i0 = tI * TS;
            for (int e = g.rank(); e < TS * TS; e += g.size()) kacc[e] = 0.0;
            for (int tK = tJ + 1; tK <= tI; ++tK) {
                const int k0 = tK * TS;
                for (int e = g.rank(); e < TS * TS; e += g.size()) {
                    const int r = e % TS, t = e / TS;  // consecutive threads: consecutive i
                    const int i = i0 + r, k = k0 + t;
                    ta[r * TL + t] = (i < n && k <= i) ? a[(size_t)k * ld + i] : T(0);
                    const int kk = k0 + e / TS, j = j0 + e % TS;  // consecutive threads: consecutive j
                    tb[(e / TS) * TL + e % TS] = (kk < n && j < j1) ? a[(size_t)kk * ld + j] : T(0);
                }
                g.sync();
                for (int e = g.rank(); e < TS * TS; e += g.size()) {
                    const int r = e / TS, c = e % TS;
                    double acc = 0.0;
                    for (int t = 0; t < TS; ++t) acc += (double)ta[r * TL + t] * (double)tb[t * TL + c];
                    kacc[e] += acc;
                }
                g.sync();
            }
            // S_I into the slots of L_{I,J}: only row tiles below I (done) read those.
            for (int e = g.rank(); e < TS * TS; e += g.size()) {
                const int i = i0 + e / TS, j = j0 + e % TS;
                if (i < n && j < j1) a[(size_t)i * ld + j] = (T)kacc[e];
            }
        }
        g.sync();  // S is written; L_JJ is still in place
        for (int e = g.rank(); e < TS * TS; e += g.size()) {
            const int r = e / TS, c = e % TS;
            tb[r * TL + c] = (r < w && c <= r) ? a[(size_t)(j0 + r) * ld + j0 + c] : T(0);
        }
        g.sync();
        for (int i = j0 + g.rank(); i < n; i += g.size()) {
            T* row = a + (size_t)i * ld;
            const bool in_block = i < j1;
            for (int j = j1 - 1; j >= j0; --j) {
                if (in_block && j > i) continue;
                const int c = j - j0;
                const T ljj = tb[c * TL + c];
                if (in_block && j == i) {
                    row[j] = T(1) / ljj;
                    continue;
                }
                double acc = in_block ? 0.0 : (double)row[j];
                const int kend = in_block ? i : j1 - 1;
                for (int k = j + 1; k <= kend; ++k) acc += (double)row[k] * (double)tb[(k - j0) * TL + c];
                row[j] = (T)(-acc / (double)ljj);
            }
        }
        g.sync();
        // M^T of block column J into the upper triangle (rows J of it).
        const long long tot = (long long)w * (n - j0);
        for (long long e = g.rank(); e < tot; e += g.size()) {
            const int j = j0 + (int)(e % w), i = j0 + (int)(e / w);
            if (i >= j) a[(size_t)j * ld + i] = a[(size_t)i * ld + j];
        }
        g.sync();
    }
}

// K^-1 = M^T M from M^T stored in the upper triangle (a[i][k] = M_ki for i <= k, the
// diagonal included): (K^-1)_ij = sum_{k >= i} a[i][k] a[j][k] for j <= i. Tile pairs (ti, tj),
// tj <= ti, of BGP_NB rows each; for each, the k-tiles from ti on are staged in `tile` (rows i0..
// and j0.., BGP_NB columns, zero left of the diagonal), and every entry of the pair sums into
// `kacc` (double, both precisions). Strictly lower entries are written when their pair is done
// (the lower triangle is not read here); the diagonal waits in tmp until every pair has read
// the upper triangle's diagonal, then goes into place. One sync per k-tile instead of two per
// row, and every thread busy on every tile.
template <typename T, class G>
__device__ void group_mtm_tiled(const G& g, T* a, int n, int ld, T* tmp, T* tile, double* kacc) {
    const int TS = BGP_NB, TL = BGP_NB + 1;
    T* ta = tile;
    T* tb = tile + TS * TL;
    const int nt = (n + TS - 1) / TS;
    for (int ti = 0; ti < nt; ++ti) {
        for (int tj = 0; tj <= ti; ++tj) {
            const int i0 = ti * TS, j0 = tj * TS;
            for (int e = g.rank(); e < TS * TS; e += g.size()) kacc[e] = 0.0;
            for (int kt = ti; kt < nt; ++kt) {
                const int k0 = kt * TS;
                for (int e = g.rank(); e < TS * TS; e += g.size()) {
                    const int r = e / TS, t = e % TS;
                    const int i = i0 + r, j = j0 + r, k = k0 + t;
                    ta[r * TL + t] = (i < n && k < n && k >= i) ? a[(size_t)i * ld + k] : T(0);
                    tb[r * TL + t] = (j < n && k < n && k >= j) ? a[(size_t)j * ld + k] : T(0);
                }
                g.sync();
                for (int e = g.rank(); e < TS * TS; e += g.size()) {
                    const int r = e / TS, c = e % TS;
                    double acc = 0.0;
                    for (int t = 0; t < TS; ++t) acc += (double)ta[r * TL + t] * (double)tb[c * TL + t];
                    kacc[e] += acc;
                }
                g.sync();
            }
            for (int e = g.rank(); e < TS * TS; e += g.size()) {
                const int r = e / TS, c = e % TS;
                const int i = i0 + r, j = j0 + c;
                if (i < n && j < i)
                    a[(size_t)i * ld + j] = (T)kacc[e];
                else if (i < n && j == i)
                    tmp[i] = (T)kacc[e];
            }
            // (the next pair's first sync orders these writes before kacc is zeroed again by
            // the same threads; no other thread touches entry e)
        }
    }
    g.sync();
    for (int i = g.rank(); i < n; i += g.size()) a[(size_t)i * ld + i] = tmp[i];
    g.sync();
}

// In place: L (lower) -> K^-1 = L^-T L^-1 (lower triangle). The strict upper triangle of a is
// used as scratch (nothing else reads it); tmp holds n values. With `tile` (BGP_TILE_ELEMS
// elements of T) and `kacc` (BGP_NB * BGP_NB doubles) in shared memory, as the global variant
// has them, both L^-1 and L^-T L^-1 are formed tile by tile (group_trtri_tiled,
// group_mtm_tiled); otherwise column by column and row by row.
template <typename T, class G>
__device__ void group_spd_inverse(const G& g, T* a, int n, int ld, T* tmp, T* tile = nullptr,
                                  double* kacc = nullptr) {
    if (tile && kacc) {
        group_trtri_tiled(g, a, n, ld, tile, kacc);
        group_mtm_tiled(g, a, n, ld, tmp, tile, kacc);
        return;
    }
    // Triangular inverse M = L^-1, trailing block first: with L = [[l, 0], [c, L2]],
    // M = [[1/l, 0], [-L2^-1 c / l, L2^-1]]. M is kept transposed in the upper triangle
    // (a[k][i] = M[i][k], k <= i) so that the threads, one per row i, read it contiguously;
    // column j of L (below the diagonal) stays intact until step j has used it.
    for (int j = n - 1; j >= 0; --j) {
        for (int i = j + 1 + g.rank(); i < n; i += g.size()) {
            double acc = 0.0;  // in double in both precisions: these sums run over up to N terms
            for (int k = j + 1; k <= i; ++k) acc += (double)a[(size_t)k * ld + i] * (double)a[(size_t)k * ld + j];
            tmp[i] = (T)acc;
        }
        const T inv = T(1) / a[(size_t)j * ld + j];
        g.sync();
        for (int i = j + 1 + g.rank(); i < n; i += g.size()) a[(size_t)j * ld + i] = -tmp[i] * inv;
        if (g.rank() == 0) a[(size_t)j * ld + j] = inv;
        g.sync();
    }
    // M back to the lower triangle.
    const long long tri = (long long)n * (n - 1) / 2;
    for (long long idx = g.rank(); idx < tri; idx += g.size()) {
        int r, c;
        tri_index(idx, r, c);
        const int i = r + 1, j = c;  // strictly lower: j < i
        a[(size_t)i * ld + j] = a[(size_t)j * ld + i];
    }
    g.sync();
    // (M^T M)_ij = sum_{k >= max(i, j)} M_ki M_kj, row by row from the top: row i reads only
    // rows >= i; each row is computed into tmp before any of it is written.
    for (int i = 0; i < n; ++i) {
        for (int j = g.rank(); j < i; j += g.size()) {
            double acc = 0.0;
            for (int k = i; k < n; ++k) acc += (double)a[(size_t)k * ld + i] * (double)a[(size_t)k * ld + j];
            tmp[j] = (T)acc;
        }
        double dacc = 0.0;
        if (g.rank() == 0)
            for (int k = i; k < n; ++k) dacc += (double)a[(size_t)k * ld + i] * (double)a[(size_t)k * ld + i];
        g.sync();
        for (int j = g.rank(); j < i; j += g.size()) a[(size_t)i * ld + j] = tmp[j];
        if (g.rank() == 0) a[(size_t)i * ld + i] = (T)dacc;
        g.sync();
    }
}
