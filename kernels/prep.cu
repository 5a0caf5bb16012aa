// The per-call preparation of the fused MLL kernels (gp.cu) on the device, so that a repeated
// evaluation (a fit's next round) uploads only its hyperparameters (src/backend/cuda/host.rs):
// x, y, mask and yvar stay resident on the device for the whole fit, and this kernel forms, for
// the C members of a launch,
//   r[q][i]         = (T)(y[b][i] - mean_q) at observed points, 0 at masked ones (the residual is
//                     taken in double and then rounded, as the CPU backend and the host did)
//   ls, s, noise,
//   rq_alpha        the hyperparameters rounded to T
//   jit[q][t]       = (T)((start * md_q) * pow10[t]) for t >= 1, 0 for t = 0: JitterPolicy::jitter
//                     of attempt t with mean diagonal md_q, in the order of its multiplications
//   x, mask, yvar   member b's rows of the resident arrays (only when `gather` is set; else the
//                     caller passes views into the resident arrays and these are unused)
// where b = idx_q is the member's row in the resident arrays.
//
// `params` is one upload of doubles, C members laid out as src/backend/cuda/host.rs ParamLayout
// writes it: idx (C) | ls (C * D) | s (C) | noise (C) | mean (C) | md (C) | alpha (C, rq only)
// | pow10 (nattempts: 10^(t-1), t = 1.., entry 0 unused). Member indices travel as doubles
// (exact below 2^53) so that a call is one copy.
//
// Entry points gp_mll_prep_<dtype>. Launch: 1-D grid-stride loops (any grid, any block size).
#include "common.cuh"

template <typename T>
__device__ void gp_mll_prep(const double* __restrict__ params, int C, int N, int D, int has_alpha,
                            int nattempts, double jit_start, const T* __restrict__ x_res,
                            const double* __restrict__ y_res, const uint8_t* __restrict__ mask_res,
                            const T* __restrict__ yvar_res, int gather, T* __restrict__ x,
                            uint8_t* __restrict__ mask, T* __restrict__ yvar, T* __restrict__ r,
                            T* __restrict__ ls, T* __restrict__ s, T* __restrict__ noise,
                            T* __restrict__ rq_alpha, T* __restrict__ jit) {
    const double* idx = params;
    const double* p_ls = idx + C;
    const double* p_s = p_ls + (size_t)C * D;
    const double* p_noise = p_s + C;
    const double* p_mean = p_noise + C;
    const double* p_md = p_mean + C;
    const double* p_alpha = p_md + C;
    const double* pow10 = p_alpha + (has_alpha ? C : 0);
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    // Per point: the residual, and the member's rows when gathering.
    const long long points = (long long)C * N;
    for (long long e = first; e < points; e += stride) {
        const int q = (int)(e / N), i = (int)(e - (long long)q * N);
        const long long b = (long long)idx[q];
        const long long src = b * N + i;
        const bool obs = mask_res[src] != 0;
        r[e] = obs ? (T)(y_res[src] - p_mean[q]) : T(0);
        if (gather) {
            mask[e] = mask_res[src];
            if (yvar_res) yvar[e] = yvar_res[src];
            for (int k = 0; k < D; ++k) x[e * D + k] = x_res[src * D + k];
        }
    }
    // Per member: the hyperparameters in T and the jitter of every attempt.
    for (long long q = first; q < C; q += stride) {
        for (int k = 0; k < D; ++k) ls[q * D + k] = (T)p_ls[q * D + k];
        s[q] = (T)p_s[q];
        noise[q] = (T)p_noise[q];
        if (has_alpha) rq_alpha[q] = (T)p_alpha[q];
        const double scaled = jit_start * p_md[q];
        jit[q * nattempts] = T(0);
        for (int t = 1; t < nattempts; ++t) jit[q * nattempts + t] = (T)(scaled * pow10[t]);
    }
}

#define BGP_PREP(T, DT)                                                                                   \
    extern "C" __global__ void gp_mll_prep_##DT(                                                          \
        const double* params, int C, int N, int D, int has_alpha, int nattempts, double jit_start,        \
        const T* x_res, const double* y_res, const uint8_t* mask_res, const T* yvar_res, int gather,      \
        T* x, uint8_t* mask, T* yvar, T* r, T* ls, T* s, T* noise, T* rq_alpha, T* jit) {                 \
        gp_mll_prep<T>(params, C, N, D, has_alpha, nattempts, jit_start, x_res, y_res, mask_res,         \
                       yvar_res, gather, x, mask, yvar, r, ls, s, noise, rq_alpha, jit);                  \
    }

BGP_PREP(double, f64)
BGP_PREP(float, f32)
