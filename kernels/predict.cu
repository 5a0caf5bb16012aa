// Posterior prediction (docs/design.md section 6) from the factor L and alpha = K^-1 r that
// gp_mll_* writes with its factor flag (same covariance kernel and precision):
//   mean = m + K*^T alpha,  V = L^-1 K*,  var = max(s - colsum(V^2), 0),  cov = K** - V^T V.
// (var_y = var + noise and the confidence bounds are formed on the host in f64, as on the CPU.)
// K*[i][t] = Kf(x_i, x*_t) for an observed training point i, 0 for a masked one (whose L row is
// the identity's, so V[i][t] = 0 as well).
//
// Training points x and test points xt are centred on the same per-member centre (the mean of
// the member's observed training points), ls are the real lengthscales, rq_alpha (B,) is rq's
// shape (may be null for the other kernels).
//
// predict_<kernel>_<dtype>: one thread per (member, test point); grid ceil(M / 128) * B blocks
// of 128 threads (member = blockIdx.x / ceil(M / 128)); v is a (B, N, M) workspace (t fastest,
// so the forward substitutions of neighbouring test points read and write neighbouring
// addresses).
// predict_cov_<kernel>_<dtype>: 1-D grid-stride loop over B * M * M entries, reading v.
// A member with attempt[b] < 0 (no factor) gets NaN everywhere.
#include "covariance.cuh"

#define BGP_PREDICT_THREADS 128

template <class Cov, typename T>
__device__ void predict(const T* __restrict__ x, long long x_stride, const uint8_t* __restrict__ mask,
                        const T* __restrict__ xt, long long xt_stride, const T* __restrict__ ls,
                        const T* __restrict__ s, const T* __restrict__ rq_alpha, const T* __restrict__ mean,
                        const T* __restrict__ l, const T* __restrict__ alpha, const int* __restrict__ attempt,
                        int B, int N, int M, int D, T* v, T* out_mean, T* out_var) {
    const int tiles = (M + BGP_PREDICT_THREADS - 1) / BGP_PREDICT_THREADS;
    const int b = blockIdx.x / tiles;
    const int t = (blockIdx.x % tiles) * BGP_PREDICT_THREADS + threadIdx.x;
    if (b >= B || t >= M) return;
    const size_t o = (size_t)b * M + t;
    if (attempt[b] < 0) {
        const T nan = bgp_nan<T>();
        out_mean[o] = nan;
        out_var[o] = nan;
        for (int i = 0; i < N; ++i) v[((size_t)b * N + i) * M + t] = nan;
        return;
    }
    const T* xb = x + b * x_stride;
    const T* xs = xt + b * xt_stride + (size_t)t * D;
    const uint8_t* mb = mask + (size_t)b * N;
    const T* lsb = ls + (size_t)b * D;
    const T* lb = l + (size_t)b * N * N;
    const T* ab = alpha + (size_t)b * N;
    T* vb = v + (size_t)b * N * M + t;
    const T sb = s[b];
    const T shape = cov_alpha<Cov>(rq_alpha, b);
    double mu = 0.0, ss = 0.0;
    for (int i = 0; i < N; ++i) {
        const T ks = mb[i] != 0 ? cov_value<Cov>(xb + (size_t)i * D, xs, lsb, sb, shape, D) : T(0);
        if (mb[i] != 0) mu += (double)ks * (double)ab[i];
        const T* li = lb + (size_t)i * N;
        T acc = ks;
        for (int j = 0; j < i; ++j) acc -= li[j] * vb[(size_t)j * M];
        const T vi = acc / li[i];
        vb[(size_t)i * M] = vi;
        ss += (double)vi * (double)vi;
    }
    const T m = (T)((double)mean[b] + mu);
    T var = (T)((double)sb - ss);
    if (!(var >= T(0))) var = var < T(0) ? T(0) : var;  // clamp, keep NaN as NaN
    out_mean[o] = m;
    out_var[o] = var;
}

template <class Cov, typename T>
__device__ void predict_cov(const T* __restrict__ xt, long long xt_stride, const T* __restrict__ ls,
                            const T* __restrict__ s, const T* __restrict__ rq_alpha,
                            const int* __restrict__ attempt, const T* __restrict__ v,
                            int B, int N, int M, int D, T* __restrict__ out) {
    const long long mm = (long long)M * M;
    const long long total = (long long)B * mm;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const int b = (int)(e / mm);
        const long long r = e - (long long)b * mm;
        const int t = (int)(r / M), u = (int)(r % M);
        if (attempt[b] < 0) {
            out[e] = bgp_nan<T>();
            continue;
        }
        const T* xb = xt + b * xt_stride;
        const T k = t == u ? s[b]
                           : cov_value<Cov>(xb + (size_t)t * D, xb + (size_t)u * D, ls + (size_t)b * D, s[b],
                                            cov_alpha<Cov>(rq_alpha, b), D);
        const T* vb = v + (size_t)b * N * M;
        double acc = 0.0;
        for (int i = 0; i < N; ++i) acc += (double)vb[(size_t)i * M + t] * (double)vb[(size_t)i * M + u];
        out[e] = (T)((double)k - acc);
    }
}

#define BGP_PREDICT(COV, KN, T, DT)                                                                    \
    extern "C" __global__ void predict_##KN##_##DT(                                                     \
        const T* x, long long x_stride, const uint8_t* mask, const T* xt, long long xt_stride,          \
        const T* ls, const T* s, const T* rq_alpha, const T* mean, const T* l, const T* alpha,          \
        const int* attempt, int B, int N, int M, int D, T* v, T* out_mean, T* out_var) {                \
        predict<COV, T>(x, x_stride, mask, xt, xt_stride, ls, s, rq_alpha, mean, l, alpha, attempt, B,  \
                        N, M, D, v, out_mean, out_var);                                                 \
    }                                                                                                   \
    extern "C" __global__ void predict_cov_##KN##_##DT(const T* xt, long long xt_stride, const T* ls,   \
                                                       const T* s, const T* rq_alpha, const int* attempt, \
                                                       const T* v, int B, int N, int M, int D, T* out) { \
        predict_cov<COV, T>(xt, xt_stride, ls, s, rq_alpha, attempt, v, B, N, M, D, out);               \
    }

BGP_FOR_EACH_COVARIANCE(BGP_PREDICT, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_PREDICT, float, f32)
