// The v1 group linear algebra of the fused kernels (gp.cu): the same factorisation, solves and
// inverse as common.cuh's group_* routines, with row loops instead of tri_index (warp w of the
// group takes rows w, w + warps(), ..., its lanes the columns of a row, so shared memory is
// walked along rows) and fewer group barriers: one per column in the Cholesky (three before),
// none per column in the solves (one warp solves while the others wait at one barrier; the
// same operations in the same order as group_forward/backward), one per column in the
// triangular inverse and two in all for L^-T L^-1 (two per column and two per row before).
// The v0 routines stay in common.cuh, selectable beside these (src/backend/cuda/launch.rs,
// BATCHGP_CUDA_KERNELS=v0), and the SVGP kernels use them.
#pragma once

#include "common.cuh"

// Columns k0 .. k1-1 of a right-looking Cholesky of the n x n matrix a (lower triangle), whose
// columns before k0 are done, with the updates restricted to columns < k1 (k1 = n: the whole
// trailing matrix). One group barrier per column: column k is read from `buf` (2n elements, two
// column buffers used in turn), written there for column k + 1 by the lane that updates it, so
// that column k of a can be overwritten with L's column while the others still read it, and
// l_ik l_jk = (a_ik / p) a_jk needs no division per entry. Returns false (in every thread) at
// the first pivot that is not positive and finite.
template <typename T, class G>
__device__ bool group_cholesky_columns_v1(const G& g, T* a, int n, int ld, T* buf, int k0, int k1) {
    for (int i = k0 + g.rank(); i < n; i += g.size()) buf[(k0 & 1) * n + i] = a[(size_t)i * ld + k0];
    g.sync();
    for (int k = k0; k < k1; ++k) {
        const T* cur = buf + (k & 1) * n;
        T* nxt = buf + ((k + 1) & 1) * n;
        const T p = cur[k];
        if (!(p > T(0)) || !bgp_finite(p)) return false;
        const T dk = sqrt(p);
        const T inv = T(1) / dk;
        for (int i = k + g.rank(); i < n; i += g.size()) a[(size_t)i * ld + k] = i == k ? dk : cur[i] * inv;
        for (int i = k + 1 + g.warp(); i < n; i += g.warps()) {
            const T ci = cur[i] * inv * inv;
            const int jend = i < k1 - 1 ? i : k1 - 1;
            T* row = a + (size_t)i * ld;
            for (int j = k + 1 + g.lane(); j <= jend; j += BGP_WARP) {
                const T v = row[j] - ci * cur[j];
                row[j] = v;
                if (j == k + 1) nxt[i] = v;
            }
        }
        g.sync();
    }
    return true;
}

// In-place lower Cholesky (group_cholesky's contract, `buf` 2n elements): n + 1 barriers.
template <typename T, class G>
__device__ bool group_cholesky_v1(const G& g, T* a, int n, int ld, T* buf) {
    return group_cholesky_columns_v1(g, a, n, ld, buf, 0, n);
}

// A solve (group_forward or group_backward) by the group's first warp, the others waiting at
// one barrier: the same operations in the same order, warp barriers only.
template <typename T, class G, class Solve>
__device__ __forceinline__ void group_solve_one_warp(const G& g, Solve solve) {
    if (g.warp() == 0) solve(WarpGroup{});
    g.sync();
}

// In place: L (lower) -> K^-1 = L^-T L^-1 in the UPPER triangle (a[j][i] = (K^-1)_ij for j <= i;
// the strict lower triangle is scratch), tmp n values. The triangular inverse M = L^-1 is
// group_spd_inverse's (M^T built in the upper triangle from the last column, one thread per
// row, the same sums in the same order) with M's diagonal kept in tmp until L's is no longer
// read, so each column needs one barrier; then M is copied to the lower triangle and every
// entry (K^-1)_ij = sum_{k >= i} m_ki m_kj (j <= i) is summed at once from it into the upper
// triangle (the diagonal through tmp), instead of row by row with two barriers each.
template <typename T, class G>
__device__ void group_spd_inverse_v1(const G& g, T* a, int n, int ld, T* tmp) {
    for (int i = g.rank(); i < n; i += g.size()) tmp[i] = T(1) / a[(size_t)i * ld + i];
    g.sync();
    for (int j = n - 1; j >= 0; --j) {
        const T inv = tmp[j];
        for (int i = j + 1 + g.rank(); i < n; i += g.size()) {
            double acc = 0.0;  // in double in both precisions: these sums run over up to N terms
            for (int k = j + 1; k < i; ++k) acc += (double)a[(size_t)k * ld + i] * (double)a[(size_t)k * ld + j];
            acc += (double)tmp[i] * (double)a[(size_t)i * ld + j];
            a[(size_t)j * ld + i] = -(T)acc * inv;
        }
        g.sync();
    }
    // M's diagonal into place and M^T (upper) to M (lower).
    for (int i = g.rank(); i < n; i += g.size()) a[(size_t)i * ld + i] = tmp[i];
    for (int i = 1 + g.warp(); i < n; i += g.warps())
        for (int j = g.lane(); j < i; j += BGP_WARP) a[(size_t)i * ld + j] = a[(size_t)j * ld + i];
    g.sync();
    for (int i = g.warp(); i < n; i += g.warps()) {
        for (int j = g.lane(); j <= i; j += BGP_WARP) {
            double acc = 0.0;
            for (int k = i; k < n; ++k) acc += (double)a[(size_t)k * ld + i] * (double)a[(size_t)k * ld + j];
            if (j < i)
                a[(size_t)j * ld + i] = (T)acc;
            else
                tmp[i] = (T)acc;
        }
    }
    g.sync();
    for (int i = g.rank(); i < n; i += g.size()) a[(size_t)i * ld + i] = tmp[i];
    g.sync();
}
