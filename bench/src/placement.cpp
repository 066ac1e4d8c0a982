#include "placement.hpp"

#include "baselines.hpp"
#include "harness.hpp"

#include <cpuid.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <sstream>

namespace ivmc::bench {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

int read_int(const std::string& path) {
  const std::string s = read_line(path);
  return s.empty() ? -1 : std::atoi(s.c_str());
}

// A field of /proc/cpuinfo for `cpu` ("" if absent).
std::string cpuinfo_field(int cpu, const std::string& field) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  int current = -1;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "processor") current = std::atoi(value.c_str());
    if (key == field && (cpu < 0 || current == cpu)) return value;
  }
  return {};
}

// Whether a sysfs CPU list ("0-3,8,10-11") names `cpu`.
bool in_cpu_list(const std::string& list, int cpu) {
  std::stringstream parts(list);
  std::string part;
  while (std::getline(parts, part, ',')) {
    const auto dash = part.find('-');
    const int lo = std::atoi(part.c_str());
    const int hi = dash == std::string::npos ? lo : std::atoi(part.c_str() + dash + 1);
    if (!part.empty() && cpu >= lo && cpu <= hi) return true;
  }
  return false;
}

// One CPU's clock, measured on it (the calling thread moves there and stays).
double ghz_on(int cpu) {
  if (cpu >= 0) pin_to_cpu(cpu);
  return measure_ghz();
}

} // namespace

ProcessSample sample_process() {
  ProcessSample s;
  s.cpu = sched_getcpu();
  std::ifstream in("/proc/thread-self/schedstat");
  in >> s.run_ns >> s.wait_ns;
  rusage ru{};
  if (getrusage(RUSAGE_THREAD, &ru) == 0) s.involuntary = ru.ru_nivcsw;
  s.t = now_s();
  return s;
}

ProcessPlacement placement_between(const ProcessSample& from, const ProcessSample& to) {
  ProcessPlacement p;
  p.cpu_start = from.cpu;
  p.cpu_end = to.cpu;
  const double wall_ns = (to.t - from.t) * 1e9;
  if (wall_ns > 0) {
    p.cpu_share = static_cast<double>(to.run_ns - from.run_ns) / wall_ns;
    p.wait_share = static_cast<double>(to.wait_ns - from.wait_ns) / wall_ns;
  }
  p.involuntary = to.involuntary - from.involuntary;
  return p;
}

double steal_ns(int cpu) {
  std::ifstream in("/proc/stat");
  const std::string want = "cpu" + std::to_string(cpu);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    if (name != want) continue;
    unsigned long long v[8] = {};
    for (auto& x : v) fields >> x; // user nice system idle iowait irq softirq steal
    return static_cast<double>(v[7]) * 1e9 / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return -1;
}

double measure_ghz() {
  TscTimer timer;
  double best = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::uint64_t x = 1;
    constexpr std::uint64_t kLoops = 250'000; // 8 multiplications of 3 cycles each: ~2 ms
    const std::uint64_t t0 = TscTimer::read();
    for (std::uint64_t i = 0; i < kLoops; ++i) {
      // Eight multiplications, each waiting for the last: 3 cycles apiece on x86 cores since
      // Sandy Bridge and Zen. (Additions of an immediate would not do: recent Intel cores
      // fold them in the renamer, at no latency.)
      asm volatile("imul $3, %0\n\timul $3, %0\n\timul $3, %0\n\timul $3, %0\n\t"
                   "imul $3, %0\n\timul $3, %0\n\timul $3, %0\n\timul $3, %0"
                   : "+r"(x));
    }
    const double ns = timer.to_ns(TscTimer::read() - t0);
    best = std::max(best, static_cast<double>(kLoops * 8 * 3) / ns);
  }
  return best;
}

CpuDescription describe_cpu(int cpu) {
  CpuDescription d;
  d.cpu = cpu;
  const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu);
  d.core_id = read_int(base + "/topology/core_id");
  d.package_id = read_int(base + "/topology/physical_package_id");
  d.core_siblings = read_line(base + "/topology/thread_siblings_list");
  for (int index = 0; index < 8; ++index) {
    const std::string cache = base + "/cache/index" + std::to_string(index);
    const int level = read_int(cache + "/level");
    if (level < 0) break;
    if (read_line(cache + "/type") == "Instruction") continue;
    if (level == 2) {
      d.l2_shared = read_line(cache + "/shared_cpu_list");
      d.l2_size = read_line(cache + "/size");
    }
    if (level >= 3 || (level == 2 && d.llc_shared.empty())) {
      d.llc_shared = read_line(cache + "/shared_cpu_list");
      d.llc_size = read_line(cache + "/size");
    }
  }
  const std::string khz = read_line(base + "/cpufreq/scaling_cur_freq");
  d.reported_mhz = !khz.empty() ? std::atof(khz.c_str()) / 1000
                                : std::atof(cpuinfo_field(cpu, "cpu MHz").c_str());
  return d;
}

std::string cpu_model_name() {
  return cpuinfo_field(-1, "model name");
}

std::string hypervisor_vendor() {
  const std::string flags = cpuinfo_field(-1, "flags");
  if (flags.find(" hypervisor") == std::string::npos) return {};
#if defined(__x86_64__)
  // The hypervisor's signature leaf, as lscpu reads it ("KVMKVMKVM", "XenVMMXenVMM", ...).
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid(0x40000000, a, b, c, d);
  char name[13] = {};
  std::memcpy(name, &b, 4);
  std::memcpy(name + 4, &c, 4);
  std::memcpy(name + 8, &d, 4);
  std::string vendor(name);
  if (vendor.rfind("KVMKVMKVM", 0) == 0) return "KVM";
  if (vendor.rfind("XenVMMXenVMM", 0) == 0) return "Xen";
  if (!vendor.empty()) return vendor;
#endif
  return "unknown";
}

double worst_wait(const RunRecord& run) {
  return std::max(run.measuring.wait_share, run.peer.wait_share);
}

std::string speed_of(const RunRecord& run) {
  return worst_wait(run) < 0.10 && run.steal_share < 0.05 ? "full" : "shared";
}

std::string speed_mode(const RunRecord& run) {
  return run.speed + (run.near ? "/near" : "/far");
}

void load_average(double (&load)[3]) {
  load[0] = load[1] = load[2] = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
    std::fclose(f);
  }
}

} // namespace ivmc::bench

namespace ivmc::bench {

MachineReport describe_machine(const PairCpus& cpus) {
  MachineReport m;
  m.model_name = cpu_model_name();
  m.hypervisor = hypervisor_vendor();
  m.online_cpus = online_cpus();
  load_average(m.load_start);
  if (cpus.parent < 0) {
    m.topology = "one CPU online: both processes share it";
    return m;
  }
  for (int cpu : {cpus.parent, cpus.child}) {
    CpuDescription d = describe_cpu(cpu);
    d.measured_ghz_start = ghz_on(cpu);
    m.cpus.push_back(d);
  }
  pin_to_cpu(cpus.parent);
  const CpuDescription& a = m.cpus[0];
  const int other = cpus.child;
  const bool core = in_cpu_list(a.core_siblings, other);
  const bool l2 = in_cpu_list(a.l2_shared, other);
  const bool llc = in_cpu_list(a.llc_shared, other);
  m.topology = fmt::format(
      "CPUs {} and {}: {}, {}, {}", cpus.parent, cpus.child,
      core ? "one core (SMT siblings)" : "separate cores",
      l2 ? "one shared L2 (" + a.l2_size + ")" : "separate L2 (" + a.l2_size + " each)",
      llc ? "one shared last-level cache (" + a.llc_size + ")" : "separate last-level caches");
  if (!m.hypervisor.empty()) {
    m.topology += fmt::format(", as this {} guest is told; the host places the vCPUs, and the "
                              "cache-line probe measures where they are",
                              m.hypervisor);
  }
  return m;
}

void finish_machine(MachineReport& m, const PairCpus& cpus, double steal_start_ns,
                    double wall_seconds) {
  load_average(m.load_end);
  const double steal_end = steal_ns(cpus.parent) + steal_ns(cpus.child);
  if (cpus.parent >= 0 && steal_start_ns >= 0 && steal_end >= 0 && wall_seconds > 0) {
    m.steal_share = (steal_end - steal_start_ns) / (2e9 * wall_seconds);
  }
  for (CpuDescription& d : m.cpus) d.measured_ghz_end = ghz_on(d.cpu);
  if (cpus.parent >= 0) pin_to_cpu(cpus.parent);
}

} // namespace ivmc::bench
