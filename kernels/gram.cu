// Batched Gram matrices of any covariance kernel with noise, known noise and mask
// (docs/design.md sections 1, 3 and 10):
//   K_b[i][j] = s_b phi(r^2_ij) + (noise_b + yvar_bi) [i == j],
// identity rows and columns for masked points. No jitter: this is what Backend::gram returns.
// Inputs as for gp_mll (gp.cu): x centred per member, real lengthscales, rq_alpha (B,) (rq
// only; may be null otherwise), yvar (B, N) or null.
//
// Entry points gram_<kernel>_<dtype>. Launch: 1-D grid-stride loop over the B * N * N entries
// (any grid, any block size).
#include "covariance.cuh"

template <class Cov, typename T>
__device__ void gram(const T* __restrict__ x, long long x_stride, const uint8_t* __restrict__ mask,
                     const T* __restrict__ ls, const T* __restrict__ s, const T* __restrict__ noise,
                     const T* __restrict__ rq_alpha, const T* __restrict__ yvar, int B, int N, int D,
                     T* __restrict__ out) {
    const long long nn = (long long)N * N;
    const long long total = (long long)B * nn;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const int b = (int)(e / nn);
        const long long r = e - (long long)b * nn;
        const int i = (int)(r / N), j = (int)(r % N);
        const T* yvb = yvar ? yvar + (size_t)b * N : nullptr;
        out[e] = gram_entry<Cov>(x + b * x_stride, mask + (size_t)b * N, ls + (size_t)b * D, s[b],
                                 cov_alpha<Cov>(rq_alpha, b), noise[b], yvb, i, j, D);
    }
}

#define BGP_GRAM(COV, KN, T, DT)                                                                      \
    extern "C" __global__ void gram_##KN##_##DT(const T* x, long long x_stride, const uint8_t* mask,  \
                                                const T* ls, const T* s, const T* noise,               \
                                                const T* rq_alpha, const T* yvar, int B, int N, int D, \
                                                T* out) {                                              \
        gram<COV, T>(x, x_stride, mask, ls, s, noise, rq_alpha, yvar, B, N, D, out);                   \
    }

BGP_FOR_EACH_COVARIANCE(BGP_GRAM, double, f64)
BGP_FOR_EACH_COVARIANCE(BGP_GRAM, float, f32)
