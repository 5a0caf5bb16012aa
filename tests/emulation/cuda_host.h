// The CUDA emulation layer shared by the host emulations of the kernels: tests/emulation/
// harness.cpp (kernels/gram.cu, gp.cu, predict.cu; run by tests/cuda_agreement.rs) and
// tests/emulation/svgp_harness.cpp (kernels/svgp.cu; run by tests/svgp_cuda.rs). Include it
// before the kernels; run a grid with launch() and install the fault handlers with
// emu_install_handlers() at the start of main.
//
// Execution model:
// - every CUDA thread of a block is a fiber (its own stack, switched in user space); the blocks
//   of a grid run one after another, all threads of a block together;
// - __syncthreads is a barrier over the block, __syncwarp a barrier over the 32 lanes of the
//   caller's warp only, and __shfl_sync / __shfl_xor_sync exchange values within the warp only
//   (one warp barrier each). Every barrier checks that all its participants arrive at the same
//   kind of sync (a lane at __syncwarp while another is in a shuffle fails), a warp-wide sync or
//   shuffle (full mask, the only one the kernels use) fails if a lane of the warp has exited,
//   __syncthreads fails if a thread of the block has exited, and a block whose threads wait at
//   barriers no one else can reach fails as a deadlock;
// - between barriers a fiber runs until it blocks; which ready fiber runs next follows the
//   launch's schedule: the lowest ready thread index first (so warp 0 runs ahead of the others
//   as far as the barriers let it, and within a warp lane 0 first), the highest first, or seeded
//   random. The harnesses run the fused MLL kernels and the SVGP kernels twice under different
//   schedules and require bit-identical outputs (they are deterministic by design), and every
//   output is checked against the reference, so a missing barrier between two threads shows as
//   a difference;
// - dynamic shared memory (extern bgp_smem) is a fresh allocation of exactly the launch's
//   shared_mem_bytes per block, static shared arrays (BGP_STATIC_SHARED) are per block as well;
//   both are filled with NaN bytes first (a read before a write shows as a NaN). Bounds: compiled
//   with -fsanitize=address (when the compiler has it) every allocation, the global buffers
//   (exactly sized std::vectors) included, is checked on both sides; without it, shared memory
//   ends at a PROT_NONE page (reads and writes past the end fault) and the bytes before it are
//   a canary checked after the block.
#pragma once
#define BGP_HOST_EMULATION 1
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>
#define BGP_ASAN 1
#else
#define BGP_ASAN 0
#endif
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

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

struct dim3_ { unsigned x = 0, y = 0, z = 0; };
dim3_ threadIdx, blockIdx, blockDim, gridDim;

static std::string g_launch = "(none)";  // what is running, for error messages

[[noreturn]] static void emu_fail(const char* fmt, ...) {
    fflush(stdout);
    fprintf(stdout, "EMULATION ERROR in %s, block %u, thread %u: ", g_launch.c_str(), blockIdx.x, threadIdx.x);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fprintf(stdout, "\n");
    fflush(stdout);
    _exit(3);
}

// ---------------------------------------------------------------------------------------------
// Checked memory for shared arrays: exactly `bytes` usable bytes, NaN-filled.
struct Region {
    char* ptr = nullptr;
    size_t bytes = 0;
    char* base = nullptr;  // mapping (guard-page mode)
    size_t len = 0;
};
static const unsigned char CANARY = 0xA5;

static Region region_alloc(size_t bytes) {
    Region r;
    r.bytes = bytes;
#if BGP_ASAN
    r.ptr = (char*)malloc(bytes);  // ASan: redzones on both sides, malloc(0) has no usable byte
    if (!r.ptr) emu_fail("out of memory");
#else
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t body = (bytes + page - 1) / page * page + page;  // at least one canary page
    r.len = body + page;
    void* m = mmap(nullptr, r.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) emu_fail("mmap failed");
    r.base = (char*)m;
    if (mprotect(r.base + body, page, PROT_NONE) != 0) emu_fail("mprotect failed");
    r.ptr = (char*)(((uintptr_t)(r.base + body - bytes)) & ~(uintptr_t)7);  // ends at the guard page
    memset(r.base, CANARY, (size_t)(r.ptr - r.base));
#endif
    memset(r.ptr, 0xff, bytes);  // NaN in f32 and f64
    return r;
}

static void region_free(Region& r, const char* what) {
#if BGP_ASAN
    (void)what;
    free(r.ptr);
#else
    for (char* p = r.base; p < r.ptr; ++p)
        if ((unsigned char)*p != CANARY) emu_fail("write %td bytes before the start of %s", r.ptr - p, what);
    munmap(r.base, r.len);
#endif
    r = Region{};
}

// ---------------------------------------------------------------------------------------------
// Fibers: x86-64 switches stacks with a few instructions, other targets use ucontext.
#if defined(__x86_64__)
extern "C" void bgp_emu_switch(void** save_sp, void* to_sp);
asm(R"(
    .text
    .globl bgp_emu_switch
    .type bgp_emu_switch,@function
bgp_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size bgp_emu_switch,.-bgp_emu_switch
)");
struct Ctx { void* sp = nullptr; };
static void ctx_make(Ctx& c, char* stack, size_t size, void (*fn)()) {
    void** sp = (void**)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
    *--sp = nullptr;      // return address of fn (never returns)
    *--sp = (void*)fn;    // popped by ret
    for (int i = 0; i < 6; ++i) *--sp = nullptr;  // rbp rbx r12..r15
    c.sp = sp;
}
static inline void ctx_swap(Ctx& from, Ctx& to) { bgp_emu_switch(&from.sp, to.sp); }
#else
struct Ctx { ucontext_t uc; };
static void ctx_make(Ctx& c, char* stack, size_t size, void (*fn)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, fn, 0);
}
static inline void ctx_swap(Ctx& from, Ctx& to) { swapcontext(&from.uc, &to.uc); }
#endif

static const size_t STACK = (BGP_ASAN ? 512 : 128) * 1024;
static std::vector<char*> g_stacks;  // pool, a guard page below each
static char* stack_of(unsigned t) {
    while (g_stacks.size() <= t) {
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        void* m = mmap(nullptr, STACK + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) emu_fail("mmap of a fiber stack failed");
        mprotect(m, page, PROT_NONE);
        g_stacks.push_back((char*)m + page);
    }
    return g_stacks[t];
}

enum SyncKind { SYNCTHREADS, SYNCWARP, SHFL_XOR, SHFL_IDX, VOTE };
static const char* SYNC_NAME[] = {"__syncthreads", "__syncwarp", "__shfl_xor_sync", "__shfl_sync", "__all_sync/__any_sync"};
// Completed barriers of each kind since the counters were last read (emu_take_counts): the
// harnesses report barriers and shuffles per member of each kernel generation.
static unsigned long long g_sync_count[5] = {};

struct Barrier {
    unsigned arrived = 0;
    int kind = -1;
    std::vector<unsigned> waiting;
};

struct Fiber {
    Ctx ctx;
    void* asan_fake = nullptr;
    bool exited = false;
    unsigned shfl_count = 0;
};

enum Order { ASCENDING, DESCENDING, RANDOM };
static const char* ORDER_NAME[] = {"lowest thread first", "highest thread first", "random"};

struct BlockRun {
    unsigned n = 0, nwarps = 0, live = 0;
    std::vector<Fiber> f;
    std::vector<Barrier> bar;  // [0] the block, [1 + w] warp w
    std::vector<unsigned> live_warp, warp_size;
    std::vector<std::array<uint64_t, 64>> shfl;  // per warp: two buffers of 32 lanes
    // Ready threads: a bit set for the lowest- and highest-first schedules, a list for random.
    std::array<uint64_t, 16> ready_bits{};
    std::vector<unsigned> ready_list;
    unsigned nready = 0;
    Order order = ASCENDING;
    std::mt19937_64 rng;
    unsigned cur = 0;
    const std::function<void()>* body = nullptr;
    Ctx sched;
    std::map<std::string, Region> statics;
};
static BlockRun g_run;
static const void* g_main_bottom = nullptr;
static size_t g_main_size = 0;
static unsigned long long g_switches = 0;
static void* g_sched_fake = nullptr;  // ASan's fake stack of the scheduler's context

static inline void asan_start(void** fake, const void* bottom, size_t size) {
#if BGP_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}
static inline void asan_finish(void* fake, const void** bottom, size_t* size) {
#if BGP_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

// From a fiber back to the scheduler.
static void to_scheduler(bool exiting) {
    Fiber& f = g_run.f[g_run.cur];
    asan_start(exiting ? nullptr : &f.asan_fake, g_main_bottom, g_main_size);
    ctx_swap(f.ctx, g_run.sched);
    asan_finish(f.asan_fake, nullptr, nullptr);
}

static void make_ready(unsigned t) {
    BlockRun& r = g_run;
    if (r.order == RANDOM) r.ready_list.push_back(t);
    else r.ready_bits[t / 64] |= 1ull << (t % 64);
    r.nready++;
}

static unsigned next_ready() {
    BlockRun& r = g_run;
    r.nready--;
    if (r.order == RANDOM) {
        const size_t k = r.rng() % r.ready_list.size();
        const unsigned t = r.ready_list[k];
        r.ready_list[k] = r.ready_list.back();
        r.ready_list.pop_back();
        return t;
    }
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned w = r.order == ASCENDING ? i : 15 - i;
        const uint64_t m = r.ready_bits[w];
        if (!m) continue;
        const unsigned bit = r.order == ASCENDING ? (unsigned)__builtin_ctzll(m) : 63u - (unsigned)__builtin_clzll(m);
        r.ready_bits[w] &= ~(1ull << bit);
        return w * 64 + bit;
    }
    abort();
}

static void release(Barrier& b) {
    g_sync_count[b.kind]++;
    for (unsigned t : b.waiting) make_ready(t);
    b.waiting.clear();
    b.arrived = 0;
    b.kind = -1;
}

// The calling thread arrives at barrier `scope` (0: block, 1 + w: warp w) and waits.
static void arrive(unsigned scope, SyncKind kind) {
    BlockRun& r = g_run;
    const unsigned t = r.cur;
    Barrier& b = r.bar[scope];
    if (scope == 0 && r.live != r.n) emu_fail("__syncthreads after a thread of the block exited");
    if (scope > 0 && r.live_warp[scope - 1] != r.warp_size[scope - 1])
        emu_fail("%s with a full mask after a lane of warp %u exited", SYNC_NAME[kind], scope - 1);
    if (b.arrived == 0)
        b.kind = kind;
    else if (b.kind != kind)
        emu_fail("reaches %s while thread %u of its %s waits at %s", SYNC_NAME[kind], b.waiting[0],
                 scope == 0 ? "block" : "warp", SYNC_NAME[b.kind]);
    b.arrived++;
    b.waiting.push_back(t);
    const unsigned expected = scope == 0 ? r.live : r.live_warp[scope - 1];
    if (b.arrived == expected) release(b);
    to_scheduler(false);
}

static void thread_exit() {
    BlockRun& r = g_run;
    const unsigned t = r.cur, w = t / 32;
    r.f[t].exited = true;
    r.live--;
    r.live_warp[w]--;
    if (r.bar[1 + w].arrived > 0)
        emu_fail("exits while lane %u of its warp waits at %s", r.bar[1 + w].waiting[0], SYNC_NAME[r.bar[1 + w].kind]);
    if (r.bar[0].arrived > 0)
        emu_fail("exits while thread %u of its block waits at __syncthreads", r.bar[0].waiting[0]);
}

static void fiber_main() {
    asan_finish(nullptr, &g_main_bottom, &g_main_size);
    (*g_run.body)();
    thread_exit();
    to_scheduler(true);
    abort();  // never resumed
}

static void run_block(unsigned nthreads, Order order, uint64_t seed, const std::function<void()>& body) {
    BlockRun& r = g_run;
    r.n = nthreads;
    r.nwarps = (nthreads + 31) / 32;
    r.live = nthreads;
    r.f.assign(nthreads, Fiber{});
    r.bar.assign(1 + r.nwarps, Barrier{});
    r.live_warp.assign(r.nwarps, 0);
    r.warp_size.assign(r.nwarps, 0);
    for (unsigned t = 0; t < nthreads; ++t) r.live_warp[t / 32]++, r.warp_size[t / 32]++;
    r.shfl.assign(r.nwarps, {});
    r.order = order;
    r.rng.seed(seed);
    r.body = &body;
    r.ready_bits = {};
    r.ready_list.clear();
    r.nready = 0;
    for (unsigned t = 0; t < nthreads; ++t) {
        ctx_make(r.f[t].ctx, stack_of(t), STACK, fiber_main);
        make_ready(t);
    }
    while (r.live > 0) {
        if (r.nready == 0) {
            std::string w;
            for (unsigned s = 0; s < r.bar.size(); ++s)
                if (r.bar[s].arrived)
                    w += " " + std::to_string(r.bar[s].arrived) + " at " + SYNC_NAME[r.bar[s].kind] +
                         (s ? " (warp " + std::to_string(s - 1) + ")" : std::string(" (block)"));
            emu_fail("deadlock: %u threads live, waiting:%s", r.live, w.c_str());
        }
        const unsigned t = next_ready();
        r.cur = t;
        threadIdx.x = t;
        ++g_switches;
        asan_start(&g_sched_fake, stack_of(t), STACK);
        ctx_swap(r.sched, r.f[t].ctx);
        asan_finish(g_sched_fake, nullptr, nullptr);
    }
}

// The CUDA intrinsics the kernels use.
inline void __syncthreads() { arrive(0, SYNCTHREADS); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (mask != 0xffffffffu) emu_fail("__syncwarp with a partial mask is not emulated");
    arrive(1 + g_run.cur / 32, SYNCWARP);
}
template <typename V> static V warp_exchange(unsigned mask, V v, unsigned src, SyncKind kind) {
    static_assert(sizeof(V) <= 8, "shuffle of more than 8 bytes");
    if (mask != 0xffffffffu) emu_fail("%s with a partial mask is not emulated", SYNC_NAME[kind]);
    BlockRun& r = g_run;
    const unsigned t = r.cur, w = t / 32, lane = t % 32;
    Fiber& f = r.f[t];
    // Two buffers: the next shuffle's writes cannot reach this one's before every lane has
    // passed the next barrier, i.e. has read this one.
    uint64_t* buf = r.shfl[w].data() + 32 * (f.shfl_count & 1);
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof(V));
    buf[lane] = bits;
    arrive(1 + w, kind);
    if (src >= r.warp_size[w]) emu_fail("%s from lane %u outside the warp", SYNC_NAME[kind], src);
    V out;
    memcpy(&out, &buf[src], sizeof(V));
    f.shfl_count++;
    return out;
}
inline double __shfl_xor_sync(unsigned mask, double v, int off) {
    return warp_exchange(mask, v, (g_run.cur % 32) ^ (unsigned)off, SHFL_XOR);
}
// width (a power of two up to 32): src names a lane of the caller's segment of `width` lanes.
template <typename V> inline V __shfl_sync(unsigned mask, V v, int src, int width = 32) {
    if (width <= 0 || width > 32 || (width & (width - 1)) != 0) emu_fail("__shfl_sync with width %d", width);
    const unsigned lane = g_run.cur % 32, w = (unsigned)width;
    return warp_exchange(mask, v, (lane & ~(w - 1)) | ((unsigned)src & (w - 1)), SHFL_IDX);
}
// Warp votes: every lane's predicate through one exchange (a barrier of the warp), then the
// whole warp's answer in every lane.
static bool warp_vote(unsigned mask, int pred, bool all) {
    if (mask != 0xffffffffu) emu_fail("a vote with a partial mask is not emulated");
    BlockRun& r = g_run;
    const unsigned t = r.cur, w = t / 32, lane = t % 32;
    Fiber& f = r.f[t];
    uint64_t* buf = r.shfl[w].data() + 32 * (f.shfl_count & 1);
    buf[lane] = pred != 0;
    arrive(1 + w, VOTE);
    bool any = false, every = true;
    for (unsigned l = 0; l < r.warp_size[w]; ++l) any |= buf[l] != 0, every &= buf[l] != 0;
    f.shfl_count++;
    return all ? every : any;
}
inline int __all_sync(unsigned mask, int pred) { return warp_vote(mask, pred, true); }
inline int __any_sync(unsigned mask, int pred) { return warp_vote(mask, pred, false); }
inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
inline float __int_as_float(int v) { float d; memcpy(&d, &v, 4); return d; }

// Dynamic shared memory: the kernels' `extern double bgp_smem[]` names this block's region.
double (*bgp_dyn_smem)[] = nullptr;
#define bgp_smem (*bgp_dyn_smem)
// Static shared arrays: one exactly sized region per block and name.
template <typename T> static T* static_shared(const char* name, size_t count) {
    auto it = g_run.statics.find(name);
    if (it == g_run.statics.end()) it = g_run.statics.emplace(name, region_alloc(count * sizeof(T))).first;
    else if (it->second.bytes != count * sizeof(T)) emu_fail("static shared %s declared with two sizes", name);
    return reinterpret_cast<T*>(it->second.ptr);
}
#define BGP_STATIC_SHARED(T, name, count) T* const name = static_shared<T>(#name, (size_t)(count))

// (grid.x, block.x, dynamic shared memory bytes) of a launch.
struct Shape { unsigned grid = 0, block = 0, smem = 0; };
static unsigned long long g_launches = 0, g_blocks = 0;

// Runs `body` as the grid of `s`: blocks one after another, each with its own shared memory.
static void launch(const std::string& what, Shape s, Order order, uint64_t seed, const std::function<void()>& body) {
    if (s.grid == 0 || s.block == 0 || s.block > 1024) {
        g_launch = what;
        emu_fail("bad launch shape grid %u block %u", s.grid, s.block);
    }
    g_launch = what + " <<<" + std::to_string(s.grid) + ", " + std::to_string(s.block) + ", " +
               std::to_string(s.smem) + ">>> " + ORDER_NAME[order];
    ++g_launches;
    gridDim.x = s.grid;
    blockDim.x = s.block;
    for (unsigned b = 0; b < s.grid; ++b) {
        blockIdx.x = b;
        Region dyn = region_alloc(s.smem);
        bgp_dyn_smem = reinterpret_cast<double (*)[]>(dyn.ptr);
        run_block(s.block, order, seed * 1000003 + b, body);
        region_free(dyn, "dynamic shared memory");
        for (auto& [name, reg] : g_run.statics) region_free(reg, name.c_str());
        g_run.statics.clear();
        bgp_dyn_smem = nullptr;
        ++g_blocks;
    }
    g_launch = "(between launches)";
}


// An access to a guard page (past the end of a shared array, or a fiber's stack overflowing).
static void on_segv(int) {
    static const char msg[] = "EMULATION ERROR: out-of-bounds access (SIGSEGV) in ";
    (void)!write(1, msg, sizeof msg - 1);
    (void)!write(1, g_launch.data(), g_launch.size());
    (void)!write(1, "\n", 1);
    _exit(3);
}


// The fault handlers (guard pages) or ASan's report hook, and a time limit: call first in main.
static void emu_install_handlers() {
#if BGP_ASAN
    __sanitizer_set_death_callback(+[] { printf("EMULATION ERROR: AddressSanitizer report in %s\n", g_launch.c_str()); });
#else
    static char altstack[1 << 16];
    stack_t ss{};
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_handler = on_segv;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
#endif
    alarm(900);  // a hang (a barrier the emulation does not see through) fails rather than blocks CI
}
