// The covariance kernels of batchgp as CUDA policies (docs/design.md section 10), mirroring
// src/kernel.rs exactly: every kernel is stationary and ARD, s phi(r^2) with
//   r^2 = sum_d (x_d - z_d)^2 / l_d^2,
// and each policy is one struct with three static functions of (r2, alpha):
//   phi              k / s
//   psi              the lengthscale weight -2 d phi / d r^2 (d k / d log l_d = s psi u_d^2
//                    with u_d = (x_d - z_d) / l_d); Matern 1/2's exp(-r) / r is defined as 0
//                    at r = 0, where u_d = 0 makes the product vanish, so coincident points
//                    never give NaN
//   dphi_dlog_alpha  d phi / d log alpha (rq; 0 for the others)
// `alpha` is rq's shape parameter (per member); the other kernels never read it.
//
// The fused kernels (gp.cu, gram.cu, predict.cu) are templated on the policy, and every entry
// point is emitted once per policy and precision by BGP_FOR_EACH_COVARIANCE, with the name
// <op>_<kernel>_<dtype> (gp_mll_warp_matern52_f64, gram_rq_f32, ...). The kernel names are the
// ones of Kernel::name in src/kernel.rs; src/backend/cuda/launch.rs builds the same names.
#pragma once

#include "common.cuh"

#define BGP_SQRT3 1.7320508075688772935274463415059
#define BGP_SQRT5 2.2360679774997896964091736687313

// The largest squared distance the kernels see, as the CPU's r2_limit (src/numeric/simd.rs):
// 1e300 in double, 1e37 in float. Beyond it every kernel's value and weights are their limit 0
// (rq takes it explicitly), and a weight times it stays finite, so a
// tiny lengthscale's r^2 = inf never meets a 0 weight as 0 * inf = NaN.
template <typename T> struct R2Limit;
template <> struct R2Limit<double> {
    __device__ __forceinline__ static double value() { return 1e300; }
};
template <> struct R2Limit<float> {
    __device__ __forceinline__ static float value() { return 1e37f; }
};

// min(t, limit) with inf and NaN taken as the limit (the CPU's test in src/kernel.rs).
template <typename T>
__device__ __forceinline__ T cap_r2(T t) {
    const T lim = R2Limit<T>::value();
    return t <= lim ? t : lim;
}

// exp(-r^2 / 2).
struct RbfCov {
    static constexpr bool has_alpha = false;
    template <typename T> __device__ __forceinline__ static T phi(T r2, T) { return exp(T(-0.5) * r2); }
    template <typename T> __device__ __forceinline__ static T psi(T r2, T) { return exp(T(-0.5) * r2); }
    template <typename T> __device__ __forceinline__ static T dphi_dlog_alpha(T, T) { return T(0); }
};

// Matern nu = 1/2: exp(-r).
struct Matern12Cov {
    static constexpr bool has_alpha = false;
    template <typename T> __device__ __forceinline__ static T phi(T r2, T) { return exp(-sqrt(r2)); }
    template <typename T> __device__ __forceinline__ static T psi(T r2, T) {
        const T r = sqrt(r2);
        return r > T(0) ? exp(-r) / r : T(0);
    }
    template <typename T> __device__ __forceinline__ static T dphi_dlog_alpha(T, T) { return T(0); }
};

// Matern nu = 3/2: (1 + sqrt(3) r) exp(-sqrt(3) r).
struct Matern32Cov {
    static constexpr bool has_alpha = false;
    template <typename T> __device__ __forceinline__ static T phi(T r2, T) {
        const T r = sqrt(r2);
        return (T(1) + T(BGP_SQRT3) * r) * exp(-T(BGP_SQRT3) * r);
    }
    template <typename T> __device__ __forceinline__ static T psi(T r2, T) {
        return T(3) * exp(-T(BGP_SQRT3) * sqrt(r2));
    }
    template <typename T> __device__ __forceinline__ static T dphi_dlog_alpha(T, T) { return T(0); }
};

// Matern nu = 5/2: (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r).
struct Matern52Cov {
    static constexpr bool has_alpha = false;
    template <typename T> __device__ __forceinline__ static T phi(T r2, T) {
        const T r = sqrt(r2);
        return (T(1) + T(BGP_SQRT5) * r + T(5.0 / 3.0) * r2) * exp(-T(BGP_SQRT5) * r);
    }
    template <typename T> __device__ __forceinline__ static T psi(T r2, T) {
        const T r = sqrt(r2);
        return T(5.0 / 3.0) * (T(1) + T(BGP_SQRT5) * r) * exp(-T(BGP_SQRT5) * r);
    }
    template <typename T> __device__ __forceinline__ static T dphi_dlog_alpha(T, T) { return T(0); }
};

// Rational quadratic: (1 + r^2 / (2 alpha))^-alpha = exp(-alpha ln base), psi = phi / base,
// d phi / d log alpha = phi (r^2 / (2 base) - alpha ln base), as src/kernel.rs computes them:
// ln base is log1p(t), t = r^2 / (2 alpha) (for a large alpha, rq tending to rbf, log(1 + tiny)
// would keep only the digits of 1 + tiny), and log(r^2 / 2) - log(alpha) once t is beyond 1e30
// (t overflows for a small alpha); r^2 / (2 base) is alpha / (1 + 1 / t) for t > 1. r^2 at the
// cap (cap_r2: a tiny lengthscale) is infinite distance, where all three are their limit 0 (for
// alpha < 0.5 the value at the cap itself is not negligible).
struct RqCov {
    static constexpr bool has_alpha = true;
    template <typename T> __device__ __forceinline__ static T ln_base(T r2, T alpha) {
        const T t = r2 * (T(0.5) / alpha);
        return t < T(1e30) ? log1p(t) : log(T(0.5) * r2) - log(alpha);
    }
    template <typename T> __device__ __forceinline__ static T phi(T r2, T alpha) {
        return r2 >= R2Limit<T>::value() ? T(0) : exp(-alpha * ln_base(r2, alpha));
    }
    template <typename T> __device__ __forceinline__ static T psi(T r2, T alpha) {
        return r2 >= R2Limit<T>::value() ? T(0) : exp(-(alpha + T(1)) * ln_base(r2, alpha));
    }
    template <typename T> __device__ __forceinline__ static T dphi_dlog_alpha(T r2, T alpha) {
        if (r2 >= R2Limit<T>::value()) return T(0);
        const T t = r2 * (T(0.5) / alpha);
        const T lb = ln_base(r2, alpha);
        const T half = t > T(1) ? alpha / (T(1) + T(1) / t) : r2 / (T(2) * (T(1) + t));
        return exp(-alpha * lb) * (half - alpha * lb);
    }
};

// X(Policy, name, T, dtype) for every kernel, in the order of Kernel::ALL: each .cu file emits
// its entry points for one precision with BGP_FOR_EACH_COVARIANCE(ITS_MACRO, double, f64).
#define BGP_FOR_EACH_COVARIANCE(X, T, DT) \
    X(RbfCov, rbf, T, DT)                 \
    X(Matern12Cov, matern12, T, DT)       \
    X(Matern32Cov, matern32, T, DT)       \
    X(Matern52Cov, matern52, T, DT)       \
    X(RqCov, rq, T, DT)

// rq's alpha of member b (1 for the kernels that have none; their pointer may be null).
template <class Cov, typename T>
__device__ __forceinline__ T cov_alpha(const T* alpha, int b) {
    return Cov::has_alpha ? alpha[b] : T(1);
}

// How a coordinate difference is scaled by its lengthscale: divided by l_d (LsDiv, the v0
// kernels, gram.cu and predict.cu), or multiplied by 1 / l_d inverted once per member (LsInv,
// the v1 fused kernels: no FP64 division per pair and dimension). LsInv's `il` holds 1 / l_d for
// d < BGP_IL_MAX in shared memory (fill_inverse_ls); a member with more dimensions inverts the
// rest on the fly.
#define BGP_IL_MAX 32

template <typename T>
struct LsDiv {
    const T* ls;
    __device__ __forceinline__ T operator()(T diff, int d) const { return diff / ls[d]; }
};

template <typename T>
struct LsInv {
    const T* ls;
    const T* il;
    __device__ __forceinline__ T operator()(T diff, int d) const {
        return diff * (d < BGP_IL_MAX ? il[d] : T(1) / ls[d]);
    }
};

// The scaling of a kernel generation: LsDiv for v0, LsInv for v1.
template <bool V1, typename T>
struct LsScaleOf {
    __device__ __forceinline__ static LsDiv<T> make(const T* ls, const T*) { return LsDiv<T>{ls}; }
};
template <typename T>
struct LsScaleOf<true, T> {
    __device__ __forceinline__ static LsInv<T> make(const T* ls, const T* il) { return LsInv<T>{ls, il}; }
};

// il[d] = 1 / ls[d] for d < min(D, BGP_IL_MAX), by the `rank`-th of `size` threads (the caller
// syncs before the values are read).
template <typename T>
__device__ __forceinline__ void fill_inverse_ls(T* il, const T* ls, int D, int rank, int size) {
    for (int d = rank; d < D && d < BGP_IL_MAX; d += size) il[d] = T(1) / ls[d];
}

// One dimension's scaled squared difference (sc(diff, k))^2, capped by cap_r2; 0 for a zero
// difference whatever the lengthscale (a lengthscale below float's range is 0 in float, and
// 0 / 0 or 0 * inf must not turn coincident coordinates into an infinite distance).
template <typename T, class S>
__device__ __forceinline__ T scaled_sq(T diff, const S& sc, int k) {
    if (diff == T(0)) return T(0);
    const T t = sc(diff, k);
    return cap_r2(t * t);
}

// Squared scaled distance sum_d (sc(a_d - b_d, d))^2, every term and the sum capped by cap_r2,
// so that any finite positive lengthscale gives the kernel's defined value (1e-300 to
// f64::MAX, as the CPU backend; tests/cuda_agreement.rs checks it in the host emulation).
template <typename T, class S>
__device__ __forceinline__ T scaled_sqdist_by(const T* a, const T* b, const S& sc, int d) {
    T acc = T(0);
    for (int k = 0; k < d; ++k) acc += scaled_sq(a[k] - b[k], sc, k);
    return cap_r2(acc);
}

// Squared scaled distance sum_d ((a_d - b_d) / l_d)^2.
template <typename T>
__device__ __forceinline__ T scaled_sqdist(const T* a, const T* b, const T* ls, int d) {
    return scaled_sqdist_by(a, b, LsDiv<T>{ls}, d);
}

// Kf(a, b) = s phi(r^2(a, b)).
template <class Cov, typename T>
__device__ __forceinline__ T cov_value(const T* a, const T* b, const T* ls, T s, T alpha, int d) {
    return s * Cov::phi(scaled_sqdist(a, b, ls, d), alpha);
}

// Entry (i, j) of K = Kf + diag(diag_add + yvar_i) with the mask: identity for a masked row or
// column. x points at the member's (N, D) inputs, yvar at its (N,) known noise variances or is
// null; diag_add is noise + jitter. The diagonal is summed as the CPU backend sums it:
// (s + diag_add) + yvar_i.
// gram_entry_by scales by `sc` (LsDiv or LsInv).
template <class Cov, typename T, class S>
__device__ __forceinline__ T gram_entry_by(const T* x, const uint8_t* mask, const S& sc, T s, T alpha, T diag_add,
                                           const T* yvar, int i, int j, int d) {
    const bool oi = mask[i] != 0, oj = mask[j] != 0;
    if (!oi || !oj) return i == j ? T(1) : T(0);
    if (i == j) return yvar ? (s + diag_add) + yvar[i] : s + diag_add;
    return s * Cov::phi(scaled_sqdist_by(x + (size_t)i * d, x + (size_t)j * d, sc, d), alpha);
}

template <class Cov, typename T>
__device__ __forceinline__ T gram_entry(const T* x, const uint8_t* mask, const T* ls, T s, T alpha, T diag_add,
                                        const T* yvar, int i, int j, int d) {
    return gram_entry_by<Cov>(x, mask, LsDiv<T>{ls}, s, alpha, diag_add, yvar, i, j, d);
}
