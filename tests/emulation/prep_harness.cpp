// Host emulation of kernels/prep.cu (run by tests/cuda_host_path.rs): compiles gp_mll_prep as
// host C++ and checks, bit for bit, every array it writes against a reference written here: the
// residuals (T)(y - m) (0 at masked points, whatever y holds there: NaN), the hyperparameters in
// T, the jitter table (T)((start * md) * 10^(t-1)), and, when gathering, the members' rows of x,
// mask and yvar, for members listed out of order with repeats. Outputs are NaN-poisoned first
// and every entry must be written. Each
// plan line gives the precision, the resident batch, the launch's members, the flags, the launch
// shape the host uses (src/backend/cuda/launch.rs stride_launch) and the offsets of the
// parameter upload that the host writes (src/backend/cuda/host.rs ParamLayout), which the
// harness requires to be the kernel's. Usage: prep_harness PLAN. Prints one summary line; exits
// 1 on a failure.
#include "cuda_host.h"
#include "prep.cu"
#include "covariance.cuh"  // the kernel policies harness_common.h names
#include "harness_common.h"  // the plan reader

static int g_fail = 0;
static long long g_checks = 0;

template <typename T> static bool same(T a, T b) {
    return memcmp(&a, &b, sizeof(T)) == 0;
}

template <typename T>
static void check(const char* what, const std::vector<T>& got, const std::vector<T>& want, const std::string& ctx) {
    for (size_t e = 0; e < want.size(); ++e) {
        ++g_checks;
        if (!same(got[e], want[e])) {
            if (g_fail++ < 20)
                printf("FAIL %s %s[%zu]: got %.17g want %.17g\n", ctx.c_str(), what, e, (double)got[e], (double)want[e]);
            return;
        }
    }
}

template <typename T> static T poison() {
    T v;
    memset(&v, 0xff, sizeof v);
    return v;
}

struct Line {
    std::string dt;
    int B, N, D, C, alpha, yvar, gather, na;
    unsigned grid, block;
    uint64_t seed;
    size_t off[8];
};

template <typename T> static void run(const Line& L) {
    std::mt19937_64 rng(L.seed);
    std::uniform_real_distribution<double> U(-2.0, 2.0);
    const int B = L.B, N = L.N, D = L.D, C = L.C, na = L.na;
    // The resident arrays, as host.rs Resident uploads them (x, yvar 0 at masked points).
    std::vector<uint8_t> mask_res((size_t)B * N);
    std::vector<double> y_res((size_t)B * N);
    std::vector<T> x_res((size_t)B * N * D, T(0)), yvar_res(L.yvar ? (size_t)B * N : 0, T(0));
    for (size_t e = 0; e < mask_res.size(); ++e) {
        mask_res[e] = (rng() % 4) != 0;
        y_res[e] = mask_res[e] ? U(rng) * 3.0 : NAN;
        for (int k = 0; k < D; ++k) x_res[e * D + k] = mask_res[e] ? (T)U(rng) : T(0);
        if (L.yvar) yvar_res[e] = mask_res[e] ? (T)(0.01 + 0.1 * fabs(U(rng))) : T(0);
    }
    // The members of the launch: a run of rows without gathering, else any rows (repeats too).
    std::vector<int> idx(C);
    const int first = (int)(rng() % (unsigned)(B - C + 1));
    for (int q = 0; q < C; ++q) idx[q] = L.gather ? (int)(rng() % (unsigned)B) : first + q;
    // The parameter upload, in the layout the host writes.
    const size_t o_ls = C, o_s = o_ls + (size_t)C * D, o_noise = o_s + C, o_mean = o_noise + C, o_md = o_mean + C,
                 o_alpha = o_md + C, o_pow = o_alpha + (L.alpha ? C : 0), len = o_pow + na;
    const size_t want_off[8] = {o_ls, o_s, o_noise, o_mean, o_md, o_alpha, o_pow, len};
    for (int k = 0; k < 8; ++k)
        if (want_off[k] != L.off[k]) {
            printf("FAIL parameter layout: offset %d is %zu in the host, %zu in the kernel\n", k, L.off[k], want_off[k]);
            ++g_fail;
            return;
        }
    std::vector<double> params(len);
    for (int q = 0; q < C; ++q) {
        params[q] = idx[q];
        for (int k = 0; k < D; ++k) params[o_ls + q * D + k] = exp(U(rng));
        params[o_s + q] = exp(U(rng));
        params[o_noise + q] = exp(U(rng) - 3);
        params[o_mean + q] = U(rng);
        params[o_md + q] = params[o_s + q] + params[o_noise + q] + 0.1 * fabs(U(rng));
        if (L.alpha) params[o_alpha + q] = exp(U(rng));
    }
    params[o_pow] = 0;
    for (int t = 1; t < na; ++t) params[o_pow + t] = pow(10.0, t - 1);
    const double start = sizeof(T) == 8 ? 1e-8 : 1e-6;
    // Outputs, poisoned.
    std::vector<T> x(L.gather ? (size_t)C * N * D : 0, poison<T>()), yvar(L.gather && L.yvar ? (size_t)C * N : 0, poison<T>());
    std::vector<uint8_t> mask(L.gather ? (size_t)C * N : 0, 0xee);
    std::vector<T> r((size_t)C * N, poison<T>()), ls((size_t)C * D, poison<T>()), s(C, poison<T>()), noise(C, poison<T>()),
        alpha(L.alpha ? C : 0, poison<T>()), jit((size_t)C * na, poison<T>());
    char buf[200];
    snprintf(buf, sizeof buf, "%s B=%d N=%d D=%d C=%d alpha=%d yvar=%d gather=%d", L.dt.c_str(), B, N, D, C, L.alpha, L.yvar,
             L.gather);
    const std::string ctx = buf;
    launch("gp_mll_prep_" + L.dt + " " + ctx, Shape{L.grid, L.block, 0}, Order((L.seed % 3)), L.seed, [&] {
        gp_mll_prep<T>(params.data(), C, N, D, L.alpha, na, start, x_res.data(), y_res.data(), mask_res.data(),
                       L.yvar ? yvar_res.data() : nullptr, L.gather, L.gather ? x.data() : nullptr,
                       L.gather ? mask.data() : nullptr, L.gather && L.yvar ? yvar.data() : nullptr, r.data(), ls.data(),
                       s.data(), noise.data(), L.alpha ? alpha.data() : nullptr, jit.data());
    });
    // The reference.
    std::vector<T> wr((size_t)C * N), wls((size_t)C * D), ws(C), wnoise(C), walpha(L.alpha ? C : 0), wjit((size_t)C * na);
    std::vector<T> wx(x.size()), wyvar(yvar.size());
    std::vector<uint8_t> wmask(mask.size());
    for (int q = 0; q < C; ++q) {
        const size_t b = (size_t)idx[q];
        for (int i = 0; i < N; ++i) {
            const size_t src = b * N + i, dst = (size_t)q * N + i;
            wr[dst] = mask_res[src] ? (T)(y_res[src] - params[o_mean + q]) : T(0);
            if (L.gather) {
                wmask[dst] = mask_res[src];
                if (L.yvar) wyvar[dst] = yvar_res[src];
                for (int k = 0; k < D; ++k) wx[dst * D + k] = x_res[src * D + k];
            }
        }
        for (int k = 0; k < D; ++k) wls[q * D + k] = (T)params[o_ls + q * D + k];
        ws[q] = (T)params[o_s + q];
        wnoise[q] = (T)params[o_noise + q];
        if (L.alpha) walpha[q] = (T)params[o_alpha + q];
        wjit[(size_t)q * na] = T(0);
        for (int t = 1; t < na; ++t) wjit[(size_t)q * na + t] = (T)((start * params[o_md + q]) * params[o_pow + t]);
    }
    check("r", r, wr, ctx);
    check("ls", ls, wls, ctx);
    check("s", s, ws, ctx);
    check("noise", noise, wnoise, ctx);
    check("rq_alpha", alpha, walpha, ctx);
    check("jit", jit, wjit, ctx);
    check("x", x, wx, ctx);
    check("mask", mask, wmask, ctx);
    check("yvar", yvar, wyvar, ctx);
}

int main(int argc, char** argv) {
    emu_install_handlers();
    if (argc != 2) {
        printf("usage: prep_harness PLAN\n");
        return 2;
    }
    int lines = 0;
    for_each_plan_line(argv[1], [&](const Plan& pl) {
        Line L;
        L.dt = pl.str("dt");
        L.B = (int)pl.num("B");
        L.N = (int)pl.num("N");
        L.D = (int)pl.num("D");
        L.C = (int)pl.num("C");
        L.alpha = (int)pl.num("alpha");
        L.yvar = (int)pl.num("yvar");
        L.gather = (int)pl.num("gather");
        L.na = (int)pl.num("na");
        const Shape sh = pl.shape("shape");
        L.grid = sh.grid;
        L.block = sh.block;
        L.seed = (uint64_t)pl.num("seed");
        if (sscanf(pl.str("off").c_str(), "%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu", &L.off[0], &L.off[1], &L.off[2], &L.off[3],
                   &L.off[4], &L.off[5], &L.off[6], &L.off[7]) != 8) {
            printf("bad offsets\n");
            exit(2);
        }
        ++lines;
        if (L.dt == "f64") run<double>(L);
        else run<float>(L);
    });
    printf("%d plan lines, %lld checks, %d failures\n", lines, g_checks, g_fail);
    return g_fail == 0 && lines > 0 ? 0 : 1;
}
