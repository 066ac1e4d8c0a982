// The SimGrid model drives the core's topology and membership: a VM live-migrates with the
// pre-copy plugin and back; each migration is applied once (SimGrid 3.32 fires the end signal
// twice), takes simulated time that grows with memory, and reaches each membership source as
// that source promises. One engine per process: this file holds one test case.
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/sim/model.hpp"

#include <catch2/catch.hpp>

#include <cstdio>

using namespace ivmc;

TEST_CASE("a simulated live migration reaches topology and membership once, at its end", "[sim]") {
  sim::PlatformSpec spec;
  spec.hosts = 2;
  sim::Model model(spec);
  SynchronousSource sync(model.topology());
  MembershipParams params;
  params.period = 500'000'000; // scans every 0.5 s
  auto periodic = make_membership_source("periodic", model.topology(), params);
  model.attach(sync);
  model.attach(*periodic);

  model.create_vm_at(0, 1, {1, "10.0.0.1", ""}, 0, 1024u << 20);
  model.create_vm_at(0, 2, {2, "10.0.0.2", ""}, 0, 256u << 20);
  model.migrate_at(1.0, 1, 1);
  model.migrate_at(8.0, 1, 0);
  model.migrate_at(1.0, 2, 1); // a smaller VM, at the same time
  model.run();

  REQUIRE(model.migrations().size() == 3);
  for (const auto& m : model.migrations()) {
    std::printf("sim: vm%u pm%u -> pm%u, %.3f s .. %.3f s (%.3f s)\n", m.vm, m.from, m.to, m.start,
                m.end, m.end - m.start);
  }
  std::printf("sim: %llu migration-end signals for %zu migrations\n",
              static_cast<unsigned long long>(model.migration_end_signals()),
              model.migrations().size());
  CHECK(model.migration_end_signals() >= 3); // 3.32 fires it twice per migration
  for (const auto& m : model.migrations()) CHECK(m.end > m.start);
  const auto& big = model.migrations()[1].vm == 1 ? model.migrations()[1] : model.migrations()[0];
  const auto& small = model.migrations()[0].vm == 2 ? model.migrations()[0] : model.migrations()[1];
  REQUIRE(big.vm == 1);
  REQUIRE(small.vm == 2);
  CHECK(big.end - big.start > small.end - small.start); // 1 GiB takes longer than 256 MiB
  CHECK(model.topology().host_of(1) == 0);              // went and came back
  CHECK(model.topology().host_of(2) == 1);

  // Each migration reached each source exactly once, at its end (t_event), and the periodic
  // source notified at the next scan on the observer's host.
  std::size_t sync_moves = 0;
  for (const auto& r : sync.records()) {
    if (r.kind == ChangeKind::migration_out || r.kind == ChangeKind::migration_in) {
      ++sync_moves;
      CHECK(r.t_notified == r.t_event);
    }
  }
  CHECK(sync_moves > 0);
  std::size_t scanned = 0;
  for (const auto& r : periodic->records()) {
    if (r.kind != ChangeKind::migration_out || r.t_notified == kNever) continue;
    ++scanned;
    CHECK(r.t_notified >= r.t_event);
    CHECK(r.t_notified % params.period == 0); // on the scan grid
    CHECK(r.t_notified - r.t_event < params.period);
  }
  CHECK(scanned > 0);
  CHECK(sync.records().size() == periodic->records().size()); // same changes, same observers
}
