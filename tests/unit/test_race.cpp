// Race windows on a virtual clock: VM A streams to B on host 1, migrates to host 2 between two
// scans, and comes back. Every membership source is combined with every race policy; each
// link operation is classified by Table IV against the source's race windows.
#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/core/race_ledger.hpp"
#include "ivmc/core/topology.hpp"

#include "../support/local_pair.hpp"
#include "../support/local_platform.hpp"
#include "../support/queue_path.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

using namespace ivmc;
using namespace ivmc::test;

namespace {

constexpr Nanos kUs = 1'000;
constexpr Nanos kMs = 1'000'000;
constexpr VmId kA = 1, kB = 2;

struct Outcome {
  std::uint64_t sent = 0, delivered = 0, lost_at_receiver = 0, lost_at_sender = 0, fallbacks = 0,
                probes = 0, out_of_order = 0;
  RaceLedger ledger;
  Nanos window_ns = 0; // A's migration_out race window as the source recorded it
};

// Adversarial timing, beyond "between two scans".
struct Scenario {
  std::size_t message_bytes = 64;
  Nanos receiver_pause_from = -1, receiver_pause_to = -1; // B stops reading: the ring fills
  bool migrate_during_teardown = false; // A's move completes while its link tears down
  // Instead of the scripted out-and-back: A changes host at each of these step indices.
  std::vector<std::size_t> moves;
  std::size_t steps = 600; // 100 us each
};

Outcome run(const std::string& source_kind, RacePolicy race, Scenario sc = {}) {
  ManualClock clock(kUs); // every reading moves time by 1 us, so every wait ends
  Topology topo;
  topo.add_host(1);
  topo.add_host(2);
  MembershipParams params;
  params.period = 10 * kMs; // scans at 0, 10, 20 ... ms
  params.watch_delay = 50 * kUs;
  params.static_list_text = "host 1: 1 2\n";
  auto source = make_membership_source(source_kind, topo, params);
  RaceWindows windows(*source);
  auto report = [&](const TopologyEvent& ev) { source->on_event(ev); };
  report(topo.create_vm(kA, {1, "10.0.0.1", ""}, 1, 0));
  report(topo.create_vm(kB, {2, "10.0.0.2", ""}, 1, 0));
  if (auto* group = dynamic_cast<GroupRegistrationSource*>(source.get())) {
    group->register_vm(kA, 7, 0);
    group->register_vm(kB, 7, 0);
  }
  source->run_due(0);

  QueuePath remote;
  remote.set_virtual_time(true);
  std::vector<std::unique_ptr<LocalPair>> generations;
  Outcome out;
  auto classify = [&](VmId self, VmId peer) {
    return [&, self, peer](LinkOperation op, Errc outcome, std::uint64_t bytes) {
      out.ledger.record(op, windows.in_race_window(self, peer, clock.now()), outcome, bytes);
    };
  };
  LinkEnvironment tx_env;
  tx_env.remote = &remote;
  tx_env.open_local = [&](Nanos) -> LocalPath {
    if (!topo.co_resident(kA, kB)) return {}; // nothing to map on another host: deferred
    if (generations.empty() || generations.back()->broken) {
      generations.push_back(std::make_unique<LocalPair>(clock));
    }
    return {generations.back()->breakable.get(), generations.size() - 1};
  };
  bool pending_break = false; // the channel goes at the end of a teardown already under way
  auto break_channel = [&] {
    pending_break = false;
    if (!generations.empty() && !generations.back()->broken) generations.back()->break_now();
  };
  tx_env.release_local = [&] {
    if (pending_break) break_channel(); // A completes its move while the link tears down
  };
  tx_env.believes_co_resident = [&] { return source->believes_co_resident(kA, kB); };
  tx_env.view_version = [&] { return source->view_version(kA); };
  tx_env.probe_co_resident = [&] { return topo.co_resident(kA, kB); };
  tx_env.on_operation = classify(kA, kB);
  LinkEnvironment rx_env;
  rx_env.remote = &remote;
  rx_env.find_local = [&](std::uint64_t epoch, Nanos) -> FramePath* {
    return epoch < generations.size() ? generations[epoch]->rx_path.get() : nullptr;
  };
  rx_env.on_operation = classify(kB, kA);
  LinkConfig cfg;
  cfg.race = race;
  cfg.stale_timeout = 20 * kUs;
  LinkSender tx(tx_env, cfg, clock);
  LinkReceiver rx(rx_env, clock);
  // A view change reaches the link at once; inside a synchronous update that is before the
  // migration completes, so the link leaves the channel while it still works.
  source->subscribe([&](VmId observer, Nanos) {
    if (observer == kA) tx.refresh();
  });

  auto migrate = [&](HostId to, Nanos at) {
    const bool leaving = topo.host_of(kA) == topo.host_of(kB);
    if (leaving && sc.migrate_during_teardown) pending_break = true; // see release_local
    report(topo.migrate_vm(kA, to, at));
    if (leaving && !sc.migrate_during_teardown) break_channel();
  };

  std::vector<std::byte> buf(4096), msg(sc.message_bytes);
  std::uint64_t seq = 0, expected = 0;
  std::size_t next_move = 0;
  for (std::size_t step = 1; step <= sc.steps; ++step) {
    const Nanos t = static_cast<Nanos>(step) * 100 * kUs;
    clock.advance(t - clock.now() > 0 ? t - clock.now() : 0);
    while (source->next_due() <= clock.now()) source->run_due(source->next_due());
    if (sc.moves.empty()) {
      if (t == 15 * kMs + 100 * kUs) migrate(2, clock.now()); // between the scans at 10 and 20
      if (t == 35 * kMs + 100 * kUs) migrate(1, clock.now()); // back, between 30 and 40
    }
    while (next_move < sc.moves.size() && sc.moves[next_move] == step) {
      migrate(topo.host_of(kA) == 1 ? 2 : 1, clock.now());
      ++next_move;
    }
    std::memcpy(msg.data(), &seq, 8);
    REQUIRE(tx.send(msg, 5 * kMs) == Errc::ok);
    ++seq;
    if (pending_break) break_channel(); // no teardown came during this step: the move ends
    const bool paused = t >= sc.receiver_pause_from && t < sc.receiver_pause_to;
    for (; !paused;) { // the receiver takes whatever has arrived
      std::size_t n = 0;
      const Errc e = rx.recv(buf, n, 30 * kUs);
      if (e != Errc::ok) break;
      std::uint64_t got;
      std::memcpy(&got, buf.data(), 8);
      if (got < expected) ++out.out_of_order;
      expected = got + 1;
      ++out.delivered;
    }
  }
  out.sent = seq;
  out.lost_at_receiver = rx.stats().lost_messages;
  out.lost_at_sender = tx.stats().lost_messages;
  out.fallbacks = tx.stats().fallbacks;
  out.probes = tx.stats().probes;
  for (const auto& r : source->records()) {
    if (r.subject == kA && r.observer == kA && r.kind == ChangeKind::migration_out &&
        r.t_notified != kNever) {
      out.window_ns = r.t_notified - r.t_event;
    }
  }
  if (std::getenv("IVMC_PRINT_LEDGER")) {
    std::printf("%s / %s: delivered %llu, lost %llu, race window %.2f ms\n%s\n",
                source_kind.c_str(), std::string(to_string(race)).c_str(),
                (unsigned long long)out.delivered, (unsigned long long)out.lost_at_sender,
                out.window_ns / 1e6, out.ledger.table().c_str());
  }
  return out;
}

} // namespace

TEST_CASE("periodic scan opens a race window that prevention and synchronous update close",
          "[race][virtual-clock]") {
  SECTION("periodic scan, no race handling: the window costs messages, all accounted") {
    const Outcome o = run("periodic", RacePolicy::none);
    CHECK(o.window_ns >= 4 * kMs); // event at 15.1 ms, the next scan at 20 ms
    CHECK(o.lost_at_sender > 0);
    CHECK(o.lost_at_receiver == o.lost_at_sender); // every loss is seen, none is silent
    const RaceCell& pending = o.ledger.cell(LinkOperation::pending_data, ChangeKind::migration_out);
    CHECK(pending.errors == o.lost_at_sender); // each lost send ran in the migration_out window
    CHECK(o.delivered + o.lost_at_receiver == 600);
  }
  SECTION("periodic scan with resolution: one stale send times out, nothing is lost") {
    const Outcome o = run("periodic", RacePolicy::resolution);
    CHECK(o.lost_at_receiver == 0);
    CHECK(o.delivered == 600);
    CHECK(o.fallbacks == 1);
    CHECK(o.ledger.cell(LinkOperation::pending_data, ChangeKind::migration_out).errors == 1);
    CHECK(o.ledger.total().operations > 0); // the window was observed
  }
  SECTION("periodic scan with prevention: the probe sees the truth first") {
    const Outcome o = run("periodic", RacePolicy::prevention);
    CHECK(o.lost_at_receiver == 0);
    CHECK(o.delivered == 600);
    CHECK(o.fallbacks == 0);
    // No data touches the stale channel; only tearing it down can fail (Table IV: "possible
    // error"), as the channel A left is gone.
    CHECK(o.ledger.cell(LinkOperation::pending_data, ChangeKind::migration_out).errors == 0);
    CHECK(o.ledger.total().errors <= 1);
    CHECK(o.probes >= 600); // the price: a probe per send (and per view change)
  }
  SECTION("synchronous update, even without race handling: the window is closed") {
    const Outcome o = run("sync", RacePolicy::none);
    CHECK(o.window_ns == 0);
    CHECK(o.lost_at_receiver == 0);
    CHECK(o.lost_at_sender == 0);
    CHECK(o.delivered == 600);
    CHECK(o.ledger.total().errors == 0);
  }
}

TEST_CASE("every membership source with every race policy keeps the stream whole where it "
          "promises to",
          "[race][virtual-clock]") {
  const auto kind =
      GENERATE(as<std::string>{}, "static", "group", "periodic", "adaptive", "watch", "sync");
  const auto race = GENERATE(RacePolicy::prevention, RacePolicy::resolution, RacePolicy::none);
  INFO(kind << " / " << to_string(race));
  const Outcome o = run(kind, race);
  CHECK(o.out_of_order == 0);
  // No silent loss: every message is delivered or counted lost by the sender. The receiver
  // sees a gap only when a later message reveals it.
  CHECK(o.delivered + o.lost_at_sender == o.sent);
  CHECK(o.lost_at_receiver <= o.lost_at_sender);
  if (race != RacePolicy::none) {
    CHECK(o.lost_at_receiver == 0); // prevention and resolution never lose data
    CHECK(o.delivered == 600);
  }
  if (kind == "sync") CHECK(o.lost_at_sender == 0);
}

TEST_CASE("adversarial moments: a full ring when the peer leaves, a move during teardown",
          "[race][virtual-clock]") {
  const auto race = GENERATE(RacePolicy::prevention, RacePolicy::resolution, RacePolicy::none);
  const auto kind = GENERATE(as<std::string>{}, "periodic", "watch", "sync");
  INFO(kind << " / " << to_string(race));
  SECTION("the receiver stalls, the ring fills mid-stream, then the sender's VM moves") {
    Scenario sc;
    sc.message_bytes = 1000; // 16 KiB rings: full after a few milliseconds of stall
    sc.receiver_pause_from = 12 * kMs;
    sc.receiver_pause_to = 18 * kMs;
    const Outcome o = run(kind, race, sc);
    CHECK(o.out_of_order == 0);
    CHECK(o.delivered + o.lost_at_sender == o.sent);
    if (race != RacePolicy::none) CHECK(o.delivered == 600);
  }
  SECTION("the move completes while the link is tearing the channel down") {
    Scenario sc;
    sc.migrate_during_teardown = true;
    const Outcome o = run(kind, race, sc);
    CHECK(o.out_of_order == 0);
    CHECK(o.delivered + o.lost_at_sender == o.sent);
    if (race != RacePolicy::none || kind == "sync") CHECK(o.delivered == 600);
  }
}

TEST_CASE("10,000 random migrations against a streaming link: exactly once, in order",
          "[race][virtual-clock][property]") {
  const auto kind = GENERATE(as<std::string>{}, "periodic", "watch", "sync");
  const auto race = GENERATE(RacePolicy::prevention, RacePolicy::resolution);
  INFO(kind << " / " << to_string(race));
  std::mt19937 rng(20261122);
  Scenario sc;
  sc.steps = 20000;
  for (std::size_t step = 2; step <= sc.steps; ++step) {
    if (rng() % 2 == 0) sc.moves.push_back(step); // a move every other step on average
  }
  sc.moves.resize(std::min<std::size_t>(sc.moves.size(), 10000));
  REQUIRE(sc.moves.size() == 10000);
  const Outcome o = run(kind, race, sc);
  CHECK(o.sent == sc.steps);
  CHECK(o.delivered == o.sent); // every message, once
  CHECK(o.out_of_order == 0);   // in order
  CHECK(o.lost_at_receiver == 0);
  CHECK(o.lost_at_sender == 0);
}
