// A minimal CUDA preamble for compiling kernels/*.cu as host C++ (the host emulation of the
// kernels; copied from the EMULATION_HARNESS of tests/cuda_agreement.rs). Each CUDA thread of a
// block is a std::thread; __syncthreads and __syncwarp are barriers over the block,
// __shfl_xor_sync and __shfl_sync go through a shared array. Run a block with bgp_block(); the
// dynamic shared memory of every kernel is bgp_smem (8 MiB). Power-of-two thread counts up to
// 32, or multiples of 32, give the warp shuffles their CUDA meaning.
#pragma once
#define BGP_HOST_EMULATION 1
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>
using std::exp;
using std::fabs;
using std::isfinite;
using std::log;
using std::log1p;
using std::sqrt;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
#define __shared__ static
struct dim3_ { unsigned x = 0, y = 0, z = 0; };
inline thread_local dim3_ threadIdx;
inline dim3_ blockIdx, blockDim, gridDim;
inline std::barrier<>* g_bar = nullptr;
inline double g_shfl[1024];
inline void __syncthreads() { g_bar->arrive_and_wait(); }
inline void __syncwarp() { g_bar->arrive_and_wait(); }
inline double __shfl_xor_sync(unsigned, double v, int off) {
    g_shfl[threadIdx.x] = v;
    g_bar->arrive_and_wait();
    double r = g_shfl[threadIdx.x ^ off];
    g_bar->arrive_and_wait();
    return r;
}
template <typename V> inline V __shfl_sync(unsigned, V v, int src) {
    g_shfl[threadIdx.x] = (double)v;
    g_bar->arrive_and_wait();
    V r = (V)g_shfl[(threadIdx.x & ~31u) | (unsigned)src];
    g_bar->arrive_and_wait();
    return r;
}
inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
inline float __int_as_float(int v) { float d; memcpy(&d, &v, 4); return d; }
inline double bgp_smem[1 << 20];

// Runs fn as block `b` of nthreads threads (blockDim.x = nthreads).
inline void bgp_block(unsigned b, unsigned nthreads, const std::function<void()>& fn) {
    std::barrier<> bar(nthreads);
    g_bar = &bar;
    memset(g_shfl, 0, sizeof g_shfl);
    blockIdx.x = b;
    blockDim.x = nthreads;
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < nthreads; ++t) ts.emplace_back([t, &fn] { threadIdx.x = t; fn(); });
    for (auto& t : ts) t.join();
}
