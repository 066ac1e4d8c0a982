// Scale: 1,000 hosts and 10,000 VMs in the SimGrid model, 100 live migrations, with a periodic
// membership scanner on every host. Reports wall time and peak memory.
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/sim/model.hpp"

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

using namespace ivmc;

TEST_CASE("1,000 hosts and 10,000 VMs: the model runs and applies every migration once",
          "[sim][scale]") {
  const auto t0 = std::chrono::steady_clock::now();
  sim::PlatformSpec spec;
  spec.hosts = 1000;
  sim::Model model(spec);
  MembershipParams params;
  params.period = 1'000'000'000; // every host scans once a second
  auto periodic = make_membership_source("periodic", model.topology(), params);
  model.attach(*periodic);
  for (VmId vm = 0; vm < 10000; ++vm) {
    model.create_vm_at(0, vm, {vm, "", ""}, vm % 1000, 512u << 20);
  }
  std::mt19937 rng(4);
  std::vector<VmId> movers(10000);
  std::iota(movers.begin(), movers.end(), 0);
  std::shuffle(movers.begin(), movers.end(), rng); // 100 distinct VMs: none moves twice at once
  for (int i = 0; i < 100; ++i) {
    const VmId vm = movers[static_cast<std::size_t>(i)];
    model.migrate_at(1.0 + i * 0.05, vm, static_cast<HostId>((vm % 1000 + 1 + rng() % 998) % 1000));
  }
  model.run();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("sim scale: 1000 hosts, 10000 VMs, %zu migrations in %.1f s simulated, %.2f s "
              "wall, peak RSS %.0f MiB, %llu scan probes\n",
              model.migrations().size(), model.now(), wall, ru.ru_maxrss / 1024.0,
              static_cast<unsigned long long>(periodic->probes()));
  CHECK(model.topology().vm_count() == 10000);
  CHECK(model.migrations().size() == 100);
  CHECK(model.migration_end_signals() >= model.migrations().size());
  for (const auto& m : model.migrations()) CHECK(m.end > m.start);
}
