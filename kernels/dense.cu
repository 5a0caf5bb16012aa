// Our O(N^2) passes of the vendor-library path for large N (src/backend/cuda/dense.rs, whose
// module doc gives the algorithm; cuSOLVER and cuBLAS do the O(N^3) work between them). Matrices
// are c members of N x N, column-major (entry (i, j) of member q at (q N + j) N + i).
//
// dense_shift_<dtype>(k0, a, jit, mask, C, N): a_q = k0_q + jit_q diag(mask_q) for every member
//   whose jit_q is not NaN (the others are not touched). Launch: 1-D grid-stride over C N N.
// dense_pairs_<kernel>_<dtype>(x, mask, ls, s, rq_alpha, alpha, kinv, C, N, D, sums): over the
//   lower triangle of kinv (K^-1; the upper triangle is not read), for observed i, j:
//   W_ij = alpha_i alpha_j - K^-1_ij; sums_q = (sum_ij W_ij Kf_ij, tr W, sum_ij W_ij A_ij) with
//   off-diagonal pairs counted twice, and M_ij = M_ji = W_ij G_ij written over kinv (0 at
//   masked pairs and on the diagonal, where u = 0). x centred (C, N, D), real lengthscales, as
//   gp_mll takes them. Launch: one block of BGP_BLOCK threads per member, no dynamic shared
//   memory; each pair belongs to one thread, which reads (i, j) and writes (i, j) and (j, i).
#include "covariance.cuh"

template <typename T>
__device__ void dense_shift(const T* __restrict__ k0, T* __restrict__ a, const T* __restrict__ jit,
                            const uint8_t* __restrict__ mask, int C, int N) {
    const long long nn = (long long)N * N;
    const long long total = (long long)C * nn;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const int q = (int)(e / nn);
        const T j = jit[q];
        if (j != j) continue;  // NaN: this member is not refactored
        const long long r = e - (long long)q * nn;
        const int col = (int)(r / N), row = (int)(r % N);
        a[e] = k0[e] + ((row == col && mask[(size_t)q * N + row]) ? j : T(0));
    }
}

template <class Cov, typename T>
__device__ void dense_pairs(const T* __restrict__ x, const uint8_t* __restrict__ mask, const T* __restrict__ ls,
                            const T* __restrict__ s, const T* __restrict__ rq_alpha, const T* __restrict__ alpha,
                            T* __restrict__ kinv, int C, int N, int D, T* __restrict__ sums) {
    BGP_STATIC_SHARED(double, scratch, 32);
    const BlockGroup g;
    const int q = blockIdx.x;
    if (q >= C) return;
    const T* xq = x + (size_t)q * N * D;
    const uint8_t* mq = mask + (size_t)q * N;
    const T* lq = ls + (size_t)q * D;
    const T* aq = alpha + (size_t)q * N;
    T* kq = kinv + (size_t)q * N * N;
    const T sq = s[q], al = cov_alpha<Cov>(rq_alpha, q);
    double wk = 0.0, tr = 0.0, wa = 0.0;
    const long long pairs = (long long)N * (N + 1) / 2;
    for (long long e = g.rank(); e < pairs; e += g.size()) {
        int i, j;
        tri_index(e, i, j);  // j <= i
        const size_t lo = (size_t)j * N + i, up = (size_t)i * N + j;
        if (!mq[i] || !mq[j]) {
            kq[lo] = T(0);
            kq[up] = T(0);
            continue;
        }
        const double w = (double)aq[i] * (double)aq[j] - (double)kq[lo];
        if (i == j) {
            wk += w * (double)sq;
            tr += w;
            kq[lo] = T(0);
            continue;
        }
        const T r2 = scaled_sqdist(xq + (size_t)i * D, xq + (size_t)j * D, lq, D);
        wk += 2.0 * w * (double)(sq * Cov::phi(r2, al));
        if (Cov::has_alpha) wa += 2.0 * w * (double)(sq * Cov::dphi_dlog_alpha(r2, al));
        const T m = (T)(w * (double)(sq * Cov::psi(r2, al)));
        kq[lo] = m;
        kq[up] = m;
    }
    wk = group_sum(g, wk, scratch);
    tr = group_sum(g, tr, scratch);
    wa = group_sum(g, wa, scratch);
    if (g.rank() == 0) {
        sums[(size_t)q * 3] = (T)wk;
        sums[(size_t)q * 3 + 1] = (T)tr;
        sums[(size_t)q * 3 + 2] = (T)wa;
    }
}

#define BGP_DENSE_SHIFT(T, DT)                                                                         \
    extern "C" __global__ void dense_shift_##DT(const T* k0, T* a, const T* jit, const uint8_t* mask, \
                                                int C, int N) {                                        \
        dense_shift<T>(k0, a, jit, mask, C, N);                                                        \
    }

#define BGP_DENSE_PAIRS(COV, KN, T, DT)                                                                 \
    extern "C" __global__ void dense_pairs_##KN##_##DT(const T* x, const uint8_t* mask, const T* ls,   \
                                                       const T* s, const T* rq_alpha, const T* alpha,   \
                                                       T* kinv, int C, int N, int D, T* sums) {         \
        dense_pairs<COV, T>(x, mask, ls, s, rq_alpha, alpha, kinv, C, N, D, sums);                      \
    }

BGP_DENSE_SHIFT(double, f64)
BGP_DENSE_SHIFT(float, f32)
BGP_FOR_EACH_COVARIANCE(BGP_DENSE_PAIRS, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_DENSE_PAIRS, float, f32)
