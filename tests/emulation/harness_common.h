// What both emulation harnesses (harness.cpp, svgp_harness.cpp) share beyond the execution model
// of cuda_host.h: the reference's own kernel functions (src/kernel.rs), written independently of
// kernels/, and the plan-file reader. Include after the kernels (it names their covariance types).
#pragma once
#include <fstream>
#include <map>
#include <sstream>
#include <string>

// The reference's own kernel functions, by kind.
enum Kind { RBF, M12, M32, M52, RQ };
template <class Cov> constexpr Kind kind_of();
template <> constexpr Kind kind_of<RbfCov>() { return RBF; }
template <> constexpr Kind kind_of<Matern12Cov>() { return M12; }
template <> constexpr Kind kind_of<Matern32Cov>() { return M32; }
template <> constexpr Kind kind_of<Matern52Cov>() { return M52; }
template <> constexpr Kind kind_of<RqCov>() { return RQ; }
static double ref_phi(Kind k, double r2, double a) {
    const double r = sqrt(r2);
    switch (k) {
        case RBF: return exp(-0.5 * r2);
        case M12: return exp(-r);
        case M32: return (1 + sqrt(3.0) * r) * exp(-sqrt(3.0) * r);
        case M52: return (1 + sqrt(5.0) * r + 5.0 / 3.0 * r2) * exp(-sqrt(5.0) * r);
        default: return std::pow(1 + r2 / (2 * a), -a);
    }
}

// Calls f(Cov{}) with the covariance policy named `k` (Kernel::name); exits 2 on another name.
template <class F> static void with_covariance(const std::string& k, F f) {
    if (k == "rbf") f(RbfCov{});
    else if (k == "matern12") f(Matern12Cov{});
    else if (k == "matern32") f(Matern32Cov{});
    else if (k == "matern52") f(Matern52Cov{});
    else if (k == "rq") f(RqCov{});
    else { printf("unknown kernel %s\n", k.c_str()); exit(2); }
}

// One plan line: "WHAT key=value ...". A missing key or a bad value exits 2.
struct Plan {
    std::string what;
    std::map<std::string, std::string> kv;
    std::string str(const std::string& k) const {
        auto it = kv.find(k);
        if (it == kv.end()) { fprintf(stdout, "plan line lacks %s\n", k.c_str()); exit(2); }
        return it->second;
    }
    long num(const std::string& k) const { return std::stol(str(k)); }
    Shape shape(const std::string& k) const {
        Shape s;
        if (sscanf(str(k).c_str(), "%u,%u,%u", &s.grid, &s.block, &s.smem) != 3) { printf("bad shape %s\n", k.c_str()); exit(2); }
        return s;
    }
};

// Calls run(plan) for every line of the plan file at `path` (blank lines and # comments
// skipped); a token without '=' exits 2.
template <class F> static void for_each_plan_line(const char* path, F run) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ss(line);
        Plan pl;
        std::string tok;
        ss >> pl.what;
        while (ss >> tok) {
            const auto eq = tok.find('=');
            if (eq == std::string::npos) { printf("bad plan token %s\n", tok.c_str()); exit(2); }
            pl.kv[tok.substr(0, eq)] = tok.substr(eq + 1);
        }
        run(pl);
        fflush(stdout);
    }
}
