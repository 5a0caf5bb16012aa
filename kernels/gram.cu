// Batched ARD-RBF Gram matrices with noise and mask (DESIGN.md sections 1 and 3):
//   K_b[i][j] = s_b exp(-0.5 sum_d (x_id - x_jd)^2 / l_bd^2) + noise_b [i == j],
// identity rows and columns for masked points. No jitter: this is what Backend::gram returns.
//
// Launch: 1-D grid-stride loop over the B * N * N entries (any grid, any block size).
#include "common.cuh"

template <typename T>
__device__ void rbf_gram(const T* __restrict__ x, long long x_stride, const uint8_t* __restrict__ mask,
                         const T* __restrict__ ls, const T* __restrict__ s, const T* __restrict__ noise,
                         int B, int N, int D, T* __restrict__ out) {
    const long long nn = (long long)N * N;
    const long long total = (long long)B * nn;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const int b = (int)(e / nn);
        const long long r = e - (long long)b * nn;
        const int i = (int)(r / N), j = (int)(r % N);
        out[e] = gram_entry(x + b * x_stride, mask + (size_t)b * N, ls + (size_t)b * D, s[b], noise[b], i, j, D);
    }
}

#define BGP_GRAM(T, NAME)                                                                            \
    extern "C" __global__ void rbf_gram_##NAME(const T* x, long long x_stride, const uint8_t* mask,  \
                                               const T* ls, const T* s, const T* noise, int B, int N, \
                                               int D, T* out) {                                       \
        rbf_gram<T>(x, x_stride, mask, ls, s, noise, B, N, D, out);                                   \
    }

BGP_GRAM(double, f64)
BGP_GRAM(float, f32)
