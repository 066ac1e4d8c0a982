// ivmc: the command line. Subcommands grow with the product; with no subcommand it runs the
// main job on its embedded default (for now, the benchmark).
#include "ivmc/bench/bench.hpp"
#include "ivmc/kvm/ivshmem_server.hpp"
#include "ivmc/kvm/ivshmem_server_cli.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>
#include <exception>

namespace {

void add_bench(CLI::App& app, ivmc::bench::BenchOptions& o, bool& json) {
  app.add_flag("--json", json, "print one JSON object instead of the table");
  app.add_option("--sizes", o.sizes, "message sizes in bytes")
      ->capture_default_str()
      ->delimiter(',');
  app.add_option("--seconds", o.seconds_per_point, "seconds per throughput point")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 60.0));
  app.add_option("--repeats", o.repeats, "runs per figure (the median is reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 99));
  app.add_option("--ring-bytes", o.ring_bytes, "ring size per direction, a power of two")
      ->capture_default_str();
  app.add_option("--rtt-iterations", o.rtt_iterations, "round trips per latency figure")
      ->capture_default_str()
      ->check(CLI::Range(100, 10'000'000));
  app.add_option("--cpus", o.cpu_parent, "CPU of the measuring process")->capture_default_str();
  app.add_option("--peer-cpu", o.cpu_child, "CPU of the peer process")->capture_default_str();
}

int run_bench(ivmc::bench::BenchOptions o, bool json) {
  o.progress = !json && isatty(STDERR_FILENO);
  const auto report = ivmc::bench::run_bench(o);
  std::fputs((json ? ivmc::bench::to_json(report) + "\n" : ivmc::bench::to_table(report)).c_str(),
             stdout);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ivmc: shared-memory communication between co-resident VMs.\n"
               "With no subcommand: runs the benchmark (ivmc bench)."};
  app.require_subcommand(0, 1);

  ivmc::bench::BenchOptions bench_options;
  bool json = false;
  auto* bench = app.add_subcommand(
      "bench", "measure the ring against memcpy, a cache-line probe, TCP and UNIX sockets");
  add_bench(*bench, bench_options, json);

  ivmc::kvm::IvshmemServerOptions server_options;
  auto* server = app.add_subcommand(
      "ivshmem-server", "serve a shared region and doorbells to host peers and QEMU guests");
  ivmc::kvm::add_ivshmem_server_options(*server, server_options);

  CLI11_PARSE(app, argc, argv);
  try {
    if (*server) return ivmc::kvm::ivshmem_server_main(server_options);
    return run_bench(bench_options, json);
  } catch (const std::exception& e) {
    fmt::print(stderr, "ivmc: {}\n", e.what());
    return 1;
  }
}
