// The warp variant of the fused MLL kernel (N <= 32; included by gp.cu), register resident:
// lane i owns row i of K, of L, of L^-1 and of K^-1 in turn, in `row[j]` (j = 0..W-1, indexed
// only by unrolled loop counters, so the array stays in registers), and a column moves between
// lanes by shuffles instead of shared-memory round trips and warp barriers. Loops over columns
// stop at N (uniform across the warp); lanes >= N and masked points are identity rows, exactly as
// in the group version, so the numbers are the same up to rounding. Shared memory (N x (N + 1)
// elements of the member's region) is used once, to transpose L^-1 for K^-1 = L^-T L^-1 and for
// the backward solve.
//
// v0 (gp_mll_warp_v0_*): one member per warp (W = 32), coordinate differences divided by the
// lengthscales. v1: two members per warp for N <= 16 (gp_mll_warp16_*) and four for N <= 8
// (gp_mll_warp8_*), segments of W = 16 or 8 lanes, one per warp otherwise (gp_mll_warp_*);
// differences multiplied by lengthscales inverted once per member.
#pragma once

// A segment of W lanes (W = 8, 16 or 32, W >= N) per member, 32 / W members per warp. Shuffles stay inside the segment (width W), and every lane of the warp runs
// the same loops (N, D, the flags and the attempt count are the same for every member), so a
// member that fails an attempt, is out of jitter, or lies past B (its segment recomputes member
// B - 1 and writes nothing) never makes the warp diverge around a shuffle: while one member
// retries with the next jitter, one that has factored refactors with its own (the same
// numbers); the loop ends when every member of the warp has factored or the attempts run out.

// Lanes [lane - lane % W, + W) of the warp as a group (write_gradient's sums).
template <int W>
struct SegGroup {
    __device__ __forceinline__ int rank() const { return threadIdx.x & (W - 1); }
    __device__ __forceinline__ int size() const { return W; }
    __device__ __forceinline__ void sync() const { __syncwarp(); }
};

template <int W>
__device__ __forceinline__ double seg_sum(double v) {
    #pragma unroll
    for (int off = W / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

template <int W>
__device__ __forceinline__ double group_sum(const SegGroup<W>&, double v, double*) { return seg_sum<W>(v); }

template <int W, typename T>
__device__ __forceinline__ T seg_shfl(T v, int src) { return __shfl_sync(0xffffffffu, v, src, W); }

// Row `lane` (< N) of a lower-triangular matrix held in registers into shared memory (ld), zeros
// above the diagonal.
template <int W, typename T>
__device__ __forceinline__ void store_lower_row_seg(T* sm, int ld, int N, int lane, const T (&row)[W]) {
    if (lane >= N) return;
    #pragma unroll
    for (int j = 0; j < W; ++j) {
        if (j >= N) break;
        sm[lane * ld + j] = j <= lane ? row[j] : T(0);
    }
}

// Member b (b >= p.B: a segment with no member) on the segment of the calling lane; sm is the
// member's region (N x (N + 1) elements), il (V1) BGP_IL_MAX elements for its inverse
// lengthscales.
template <class Cov, typename T, int W, bool V1>
__device__ void gp_mll_warp_member(const MllArgs<T>& p, int b, T* sm, T* il) {
    const int lane = threadIdx.x & (W - 1);
    const int N = p.N, D = p.D, ld = N + 1;
    const bool live = b < p.B;
    const int bb = live ? b : p.B - 1;
    const T* xb = p.x + bb * p.x_stride;
    const uint8_t* mb = p.mask + (size_t)bb * N;
    const T* lsb = p.ls + (size_t)bb * D;
    const T s = p.s[bb], noise = p.noise[bb];
    const T shape = cov_alpha<Cov>(p.rq_alpha, bb);
    const bool obs = lane < N && mb[lane] != 0;
    const T* xi = xb + (size_t)(lane < N ? lane : 0) * D;
    const T yv = (obs && p.yvar) ? p.yvar[(size_t)bb * N + lane] : T(0);
    if (V1) {
        fill_inverse_ls(il, lsb, D, lane, W);
        __syncwarp();
    }
    const auto sc = LsScaleOf<V1, T>::make(lsb, il);

    T row[W];
    T diag = T(1);
    int used = -1;
    for (int t = 0; t < p.nattempts; ++t) {
        const T diag_add = noise + p.jit[(size_t)bb * p.nattempts + (used >= 0 ? used : t)];
        if (lane < N) {
            for (int j = 0; j < N; ++j) {
                T v = lane == j ? T(1) : T(0);
                if (obs && mb[j] != 0) {
                    if (lane == j)
                        v = p.yvar ? (s + diag_add) + yv : s + diag_add;
                    else
                        v = s * Cov::phi(scaled_sqdist_by(xi, xb + (size_t)j * D, sc, D), shape);
                }
                sm[lane * ld + j] = v;
            }
        }
        #pragma unroll
        for (int j = 0; j < W; ++j) row[j] = (lane < N && j < N) ? sm[lane * ld + j] : (lane == j ? T(1) : T(0));
        bool ok = true;
        #pragma unroll
        for (int k = 0; k < W; ++k) {
            if (k >= N) break;
            const T pv = seg_shfl<W>(row[k], k);
            ok = ok && pv > T(0) && bgp_finite(pv);
            const T dk = sqrt(pv);
            if (lane == k) {
                row[k] = dk;
                diag = dk;
            } else if (lane > k) {
                row[k] = row[k] / dk;
            }
            const T lik = row[k];
            #pragma unroll
            for (int j = k + 1; j < W; ++j) {
                if (j >= N) break;
                const T ljk = seg_shfl<W>(lik, j);
                if (lane >= j) row[j] -= lik * ljk;
            }
        }
        if (used < 0 && ok) used = t;
        if (__all_sync(0xffffffffu, used >= 0)) break;
    }
    if (live && lane == 0) p.out_attempt[b] = used;
    const int P = D + 3 + (Cov::has_alpha ? 1 : 0);
    if (live && used < 0) {
        if (lane == 0) p.out_mll[b] = bgp_nan<T>();
        if (p.flags & BGP_FLAG_GRAD)
            for (int k = lane; k < P; k += W) p.out_grad[(size_t)b * P + k] = bgp_nan<T>();
        if (p.flags & BGP_FLAG_FACTOR) {
            for (int e = lane; e < N * N; e += W) p.out_l[(size_t)b * N * N + e] = bgp_nan<T>();
            if (lane < N) p.out_alpha[(size_t)b * N + lane] = bgp_nan<T>();
        }
    }
    const bool good = live && used >= 0;
    if (!__any_sync(0xffffffffu, good)) return;

    const double nobs = seg_sum<W>(obs ? 1.0 : 0.0);
    const double logdet = 2.0 * seg_sum<W>(obs ? log((double)diag) : 0.0);
    T v = obs ? p.r[(size_t)bb * N + lane] : T(0);
    #pragma unroll
    for (int k = 0; k < W; ++k) {
        if (k >= N) break;
        const T vk = seg_shfl<W>(v / diag, k);
        if (lane == k)
            v = vk;
        else if (lane > k)
            v -= row[k] * vk;
    }
    const double quad = seg_sum<W>(obs ? (double)v * (double)v : 0.0);
    const double log2pi = 1.8378770664093454835606594728112;
    if (good && lane == 0) p.out_mll[b] = (T)(-0.5 * quad - 0.5 * logdet - 0.5 * nobs * log2pi);

    store_lower_row_seg<W>(sm, ld, N, lane, row);
    __syncwarp();
    T al = v;
    for (int k = N - 1; k >= 0; --k) {
        const T ak = seg_shfl<W>(al / diag, k);
        if (lane == k)
            al = ak;
        else if (lane < k)
            al -= sm[k * ld + lane] * ak;
    }
    if ((p.flags & BGP_FLAG_FACTOR) && good && lane < N) {
        #pragma unroll
        for (int j = 0; j < W; ++j) {
            if (j >= N) break;
            p.out_l[(size_t)b * N * N + (size_t)lane * N + j] = j <= lane ? row[j] : T(0);
        }
        p.out_alpha[(size_t)b * N + lane] = al;
    }
    if (!(p.flags & BGP_FLAG_GRAD)) return;
    const double gmean = seg_sum<W>(obs ? (double)al : 0.0);

    const T inv_diag = T(1) / diag;
    #pragma unroll
    for (int j = 0; j < W; ++j) {
        if (j >= N) break;
        T acc = T(0);
        T mine = T(0);
        #pragma unroll
        for (int k = j; k < W; ++k) {
            if (k >= N) break;
            const T mk = seg_shfl<W>(((lane == j ? T(1) : T(0)) - acc) * inv_diag, k);
            if (lane == k) mine = mk;
            if (lane > k) acc += row[k] * mk;
        }
        if (lane >= j) row[j] = mine;
    }
    __syncwarp();
    store_lower_row_seg<W>(sm, ld, N, lane, row);
    __syncwarp();
    T kdiag = T(0);
    #pragma unroll
    for (int j = 0; j < W; ++j) row[j] = T(0);
    #pragma unroll
    for (int k = 0; k < W; ++k) {
        if (k >= N) break;
        const T mki = lane < N ? sm[k * ld + lane] : T(0);
        kdiag += mki * mki;
        #pragma unroll
        for (int j = 0; j <= k; ++j) row[j] += mki * sm[k * ld + j];
    }
    __syncwarp();
    if (lane < N) {
        #pragma unroll
        for (int j = 0; j < W; ++j) {
            if (j >= N) break;
            sm[lane * ld + j] = row[j];
        }
    }
    const double ai = (double)al;
    for (int d0 = 0; d0 < (D > 0 ? D : 1); d0 += BGP_DCHUNK) {
        GradSums q = grad_sums_zero();
        if (d0 == 0 && obs) add_diagonal(q, ai * ai - (double)kdiag, s);
        for (int j = 0; j < N; ++j) {
            const double aj = (double)seg_shfl<W>(al, j);
            if (j < lane && obs && mb[j] != 0)
                add_pair<Cov>(q, xi, xb + (size_t)j * D, sc, D, d0, s, shape, ai * aj - (double)sm[lane * ld + j]);
        }
        write_gradient<Cov>(SegGroup<W>{}, p, good ? b : -1, d0, q, gmean, noise, nullptr);
    }
}

// Members per warp of the v1 warp kernels for order n (gp_mll_warp8_*: four, N <= 8;
// gp_mll_warp16_*: two, N <= 16; gp_mll_warp_*: one), and the elements of shared memory of one
// member (its matrix and two columns, warp_elems, then its inverse lengthscales);
// src/backend/cuda/launch.rs mirrors both (Variant::Warp8, Warp16, Warp).
__device__ __forceinline__ int warp_members_v1(int n) { return n <= 8 ? 4 : n <= 16 ? 2 : 1; }
__device__ __forceinline__ int warp_region_v1(int n) { return warp_elems(n) + BGP_IL_MAX; }

// The body of a v1 warp kernel of segment width W: the calling lane's member. One width per
// entry point: the three instantiations in one kernel shared its register allocation and
// spilled (348 bytes at 128 registers in f64), each alone does not.
template <class Cov, typename T, int W>
__device__ __forceinline__ void gp_mll_warp_v1(const MllArgs<T>& p, T* smem) {
    constexpr int mpw = BGP_WARP / W;
    const int w = threadIdx.x / BGP_WARP;
    const int first = (blockIdx.x * BGP_WARPS_PER_BLOCK + w) * mpw;
    if (first >= p.B) return;
    const int seg = (threadIdx.x & (BGP_WARP - 1)) / W;
    T* sm = smem + (size_t)(w * mpw + seg) * warp_region_v1(p.N);
    gp_mll_warp_member<Cov, T, W, true>(p, first + seg, sm, sm + warp_elems(p.N));
}

// The v0 warp kernel's body: one member per warp, BGP_WARPS_PER_BLOCK warps_elems(N) regions.
template <class Cov, typename T>
__device__ __forceinline__ void gp_mll_warp_v0(const MllArgs<T>& p, T* smem) {
    const int w = threadIdx.x / BGP_WARP;
    const int b = blockIdx.x * BGP_WARPS_PER_BLOCK + w;
    if (b >= p.B) return;
    T* sm = smem + (size_t)w * warp_elems(p.N);
    gp_mll_warp_member<Cov, T, BGP_WARP, false>(p, b, sm, nullptr);
}
