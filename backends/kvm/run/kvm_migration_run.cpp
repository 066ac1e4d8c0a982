// The kvm backend's run with scripted migrations: see kvm_migration_run.hpp.
#include "ivmc/kvm/kvm_migration_run.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/experiment/choices.hpp"
#include "ivmc/experiment/membership.hpp"
#include "ivmc/guest_results/guest_results.hpp"
#include "ivmc/guest_results/migration_results.hpp"
#include "ivmc/guest_results/migration_run_rules.hpp"
#include "ivmc/kvm/dead_run_files.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"
#include "ivmc/kvm/kvm_membership.hpp"
#include "ivmc/kvm/qmp.hpp"
#include "ivmc/posix/clock.hpp"
#include "ivmc/posix/tcp_path.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace ivmc::kvm {
namespace {

using experiment::Detection;
using experiment::issue_at;
using experiment::Scenario;
using experiment::ScenarioIssue;
using guest_results::vm_named;
using posix::MonotonicClock;

constexpr std::uint16_t kGuestPort = 5000;
constexpr unsigned kVectors = 2;
constexpr Nanos kSecondNs = 1'000'000'000;

std::size_t round_up(std::size_t v, std::size_t to) {
  return (v + to - 1) / to * to;
}

struct Layout {
  std::uint32_t ring = 0;
  std::size_t slot = 0, region = 0, page = 0;
};

Layout layout_of(const Scenario& s) {
  Layout l;
  l.ring = s.channel.ring_kib * 1024;
  l.slot = round_up(Channel::area_bytes(l.ring, l.ring), 4096);
  l.region = std::size_t{1} << 20;
  while (l.region < 2 * l.slot + view_page::kPageBytes) l.region *= 2; // a BAR is a power of two
  l.page = l.region - view_page::kPageBytes;
  return l;
}

// Which ivshmem peers each host's server has now, from its notices.
class PeerBook {
public:
  void on_peer(std::size_t host, std::uint16_t peer, bool up) {
    {
      std::lock_guard lock(mutex_);
      if (up)
        peers_[host].insert(peer);
      else
        peers_[host].erase(peer);
    }
    changed_.notify_all();
  }
  // Waits until peer 0 of `host` is (or is not) connected; false on timeout.
  bool wait_zero(std::size_t host, bool connected, Nanos timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::nanoseconds(timeout),
                             [&] { return peers_[host].count(0) == (connected ? 1u : 0u); });
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::size_t, std::set<std::uint16_t>> peers_;
};

std::string enable_events() {
  return R"({"capabilities": [{"capability": "events", "state": true}]})";
}

// One migration as measured: QEMU's totals and the scenario time it started.
struct MigrationDone {
  double at_s = 0, total_ms = NAN, downtime_ms = NAN;
  double held_ms = NAN; // destination loaded -> RESUME: our update of the pages, then `cont`
  std::size_t from = 0, to = 0;
};

} // namespace

const guest_results::MigrationRules& migration_rules() {
  // 4 s: a TCG guest's migration takes about a second, and the next destination QEMU must be
  // up; 2 s after the last one for the stream to settle on its new path. Draws are played; the
  // hosts' membership sources are the core's (KvmMembership), all but IVC's group registration.
  static const guest_results::MigrationRules rules{"kvm",
                                                   4,
                                                   "a TCG guest's migration takes about a second",
                                                   2,
                                                   /*plays_draws=*/true,
                                                   /*no_generators=*/"",
                                                   /*trust_note=*/"",
                                                   {Detection::static_list, Detection::periodic,
                                                    Detection::adaptive, Detection::watch,
                                                    Detection::sync},
                                                   /*why_not_static=*/""};
  return rules;
}

std::vector<ScenarioIssue> migration_run_issues(const Scenario& s) {
  std::vector<ScenarioIssue> out = guest_results::migration_run_issues(s, migration_rules());
  if (s.workloads.size() == 1) {
    const auto* from = vm_named(s, s.workloads[0].from);
    const auto* to = vm_named(s, s.workloads[0].to);
    if (from && to && from->host != to->host)
      out.push_back(issue_at(
          s, "workload[0].from",
          "the migrating VM must start on its receiver's host (its master=on ivshmem device "
          "must be that server's first peer)"));
  }
  return out;
}

experiment::RunResult run_with_migrations(const Scenario& s, const KvmRunOptions& o,
                                          const MigrationRunEnv& env) {
  const auto wall0 = std::chrono::steady_clock::now();
  const auto& w = s.workloads.at(0);
  const auto ids = experiment::vm_ids(s);
  const VmId m_id = ids.at(w.from), r_id = ids.at(w.to);
  const std::size_t home = vm_named(s, w.from)->host;
  // The migrations, scripted and drawn from the run's seed (check() passed: all of w.from's).
  const std::vector<guest_results::PlannedMigration> plan =
      guest_results::plan_migrations(s, migration_rules()).migrations;
  const Layout lay = layout_of(s);
  const std::string tag = fmt::format("ivmc-mig-{}", ::getpid());
  // A run an interrupted sweep killed left its shm objects and sockets (dead_run_files.hpp).
  remove_files_of_dead_runs("/dev/shm", "ivmc-mig-");
  remove_files_of_dead_runs("/tmp", "ivmc-mig-", {".sock", ".sock.lock", ".qmp", ".migrate"});
  auto progress = [&](const std::string& line) {
    if (o.progress) fmt::print(stderr, "[kvm] {}\n", line);
  };

  // The scenario's hosts that take part: an ivshmem server each.
  std::set<std::size_t> hosts = {home};
  for (const guest_results::PlannedMigration& p : plan) hosts.insert(p.host);
  PeerBook peers;
  std::map<std::size_t, std::unique_ptr<IvshmemServerThread>> servers;
  std::map<HostId, std::string> shm;
  for (const std::size_t h : hosts) {
    IvshmemServerOptions so;
    so.socket_path = fmt::format("/tmp/{}-h{}.sock", tag, h);
    so.shm_name = fmt::format("{}-h{}", tag, h);
    so.size = lay.region;
    so.vectors = kVectors;
    so.reuse_id_zero = true;        // M's master=on device must be ID 0 again when it returns
    so.announce_departures = false; // or R's QEMU corrupts its heap then (ivshmem_server.hpp)
    so.log = [](std::string_view) {};
    so.on_peer = [&peers, h](std::uint16_t peer, bool up) { peers.on_peer(h, peer, up); };
    servers[h] = std::make_unique<IvshmemServerThread>(so);
    shm[static_cast<HostId>(h)] = so.shm_name;
  }

  KvmMembershipOptions mo;
  mo.source_kind = std::string(experiment::to_string(s.membership.detection));
  mo.params = experiment::membership_params(s, ids);
  mo.host_word = lay.page; // the page's first word
  mo.initial_hosts = shm;
  mo.initial_vms = {{m_id, static_cast<HostId>(home)}, {r_id, static_cast<HostId>(home)}};
  mo.region_bytes = lay.region;
  KvmMembership membership(mo);

  // R's end of the remote path: a host port forwarded into R by its user networking.
  std::uint16_t port = 0;
  {
    posix::TcpListener probe; // the kernel's choice of a free port, released at once
    port = probe.port();
  }
  const std::string policy(to_string(s.channel.notify));
  const std::string slot = std::to_string(lay.slot);
  // The kernel hands /init at most 32 arguments: defaults left out (link-send with a view page
  // streams until its stop flag; vectors 2, no interrupts, session 0).
  std::vector<std::string> m_args = {"link-send",
                                     "--policy",
                                     policy,
                                     "--ring",
                                     std::to_string(lay.ring),
                                     "--slot-bytes",
                                     slot,
                                     "--message",
                                     std::to_string(w.message_bytes),
                                     "--remote",
                                     fmt::format("10.0.2.2:{}", port),
                                     "--view-page",
                                     std::to_string(lay.page),
                                     "--vm",
                                     std::to_string(m_id),
                                     "--peer-vm",
                                     std::to_string(r_id),
                                     "--race",
                                     std::string(to_string(s.membership.race))};
  const std::vector<std::string> r_args = {
      "link-recv",    "--policy", policy, "--listen", fmt::format("0.0.0.0:{}", kGuestPort),
      "--slot-bytes", slot};

  const Nanos budget = static_cast<Nanos>((s.duration_s + 240) * 1e9);
  auto base_options = [&](std::size_t host, const std::string& name) {
    QemuOptions q;
    q.qemu = env.qemu;
    q.image = env.image;
    q.accel = env.accel;
    q.ivshmem_socket = servers.at(host)->socket_path();
    q.vectors = kVectors;
    q.serial_log = fmt::format("{}/{}-{}.log", o.log_dir, tag, name);
    q.timeout = budget;
    return q;
  };
  auto m_options = [&](std::size_t host, std::size_t k) {
    QemuOptions q = base_options(host, fmt::format("{}-{}", w.from, k));
    q.ivshmem_master = true;
    q.qmp_socket = fmt::format("/tmp/{}-m{}.qmp", tag, k);
    q.nic = GuestNic{0, 0, "10.0.2.15/24", 1, true};
    q.agent_args = m_args;
    if (k > 0) {
      q.incoming = fmt::format("unix:/tmp/{}-m{}.migrate", tag, k);
      // Paused after loading until the truth (and, under sync, every view) is written.
      q.qemu_args = {"-S"};
    }
    return q;
  };

  // M first: its device must be peer 0 of its host's server; then R.
  auto m_guest = std::make_unique<QemuGuest>(m_options(home, 0));
  if (!peers.wait_zero(home, true, 30 * kSecondNs))
    throw std::runtime_error(fmt::format("{}'s QEMU never joined host {}'s server", w.from, home));
  QemuOptions r_o = base_options(home, w.to);
  r_o.nic = GuestNic{0, 0, "10.0.2.15/24", 2, true, port, kGuestPort};
  r_o.agent_args = r_args;
  QemuGuest r_guest(r_o);
  auto qmp = std::make_unique<QmpClient>(
      QmpClient::connect(fmt::format("/tmp/{}-m0.qmp", tag), 10 * kSecondNs));
  qmp->execute("migrate-set-capabilities", enable_events(), 10 * kSecondNs);
  progress(fmt::format("booting {} (migrates) and {} on host {} ({})", w.from, w.to, home,
                       to_string(env.accel)));
  const Nanos boot = 180 * kSecondNs;
  if (!m_guest->wait_for_console("IVMC-INFO link waiting", boot))
    throw std::runtime_error(
        fmt::format("{} did not start: {}", w.from, m_guest->wait().describe()));
  if (!r_guest.wait_for_console("IVMC-INFO link-recv listening", boot))
    throw std::runtime_error(fmt::format("{} did not start: {}", w.to, r_guest.wait().describe()));

  std::vector<MigrationDone> done;
  std::size_t at = home;
  // The first destination waits while the stream starts.
  std::unique_ptr<QemuGuest> next;
  auto prepare = [&](std::size_t k) {
    const std::size_t h = plan[k - 1].host;
    // A returning M needs ID 0 again: the source that left this host must be gone.
    if (!peers.wait_zero(h, false, 30 * kSecondNs))
      throw std::runtime_error(fmt::format("host {}'s peer 0 never left", h));
    next = std::make_unique<QemuGuest>(m_options(h, k));
  };
  if (!plan.empty()) prepare(1);

  membership.start_workloads();
  const Nanos t0 = MonotonicClock::read();
  progress(fmt::format("streaming {} -> {}; {} migration(s), membership {}", w.from, w.to,
                       plan.size(), mo.source_kind));
  auto sleep_until = [&](double t_s) {
    const Nanos due = t0 + static_cast<Nanos>(t_s * 1e9);
    const Nanos now = MonotonicClock::read();
    if (due > now) std::this_thread::sleep_for(std::chrono::nanoseconds(due - now));
  };
  for (std::size_t k = 1; k <= plan.size(); ++k) {
    const guest_results::PlannedMigration& e = plan[k - 1];
    auto dest = std::make_unique<QmpClient>(
        QmpClient::connect(fmt::format("/tmp/{}-m{}.qmp", tag, k), 10 * kSecondNs));
    dest->execute("migrate-set-capabilities", enable_events(), 10 * kSecondNs);
    sleep_until(e.at_s);
    MigrationDone d;
    d.at_s = static_cast<double>(MonotonicClock::read() - t0) / 1e9;
    d.from = at;
    d.to = e.host;
    qmp->discard_events();
    dest->discard_events();
    qmp->execute("migrate", fmt::format(R"({{"uri": "unix:/tmp/{}-m{}.migrate"}})", tag, k),
                 10 * kSecondNs);
    // The destination was started paused (-S): the switch-over is when it has loaded the
    // guest. The truth changes then, before the guest runs again (as the host backend does
    // with SIGSTOP), so the race flags in its page are up before its first instruction on the
    // new host; a synchronous source updates every view in the same step. Then `cont`.
    if (!dest->wait_event("MIGRATION", "completed", 120 * kSecondNs))
      throw std::runtime_error(fmt::format("migration {}: the destination never completed", k));
    const Nanos loaded = MonotonicClock::read();
    membership.migrated(m_id, static_cast<HostId>(e.host));
    dest->execute("cont", "", 10 * kSecondNs);
    if (!dest->wait_event("RESUME", "", 30 * kSecondNs))
      throw std::runtime_error(fmt::format("migration {}: no RESUME after cont", k));
    d.held_ms = static_cast<double>(MonotonicClock::read() - loaded) / 1e6;
    if (!qmp->wait_event("MIGRATION", "completed", 60 * kSecondNs))
      throw std::runtime_error(
          fmt::format("migration {} of {}: the source never completed", k, w.from));
    for (int i = 0; i < 100; ++i) { // the totals come a little after the completed event
      const std::string info = qmp->execute("query-migrate", "", 10 * kSecondNs);
      d.total_ms = json_number(info, "total-time").value_or(0);
      d.downtime_ms = json_number(info, "downtime").value_or(NAN);
      if (json_string(info, "status") == "completed" && d.total_ms > 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    progress(
        fmt::format("migration {}: {} host {} -> {} at {:.2f} s, {:.0f} ms (downtime {:.0f} ms, "
                    "held {:.0f} ms)",
                    k, w.from, d.from, d.to, d.at_s, d.total_ms, d.downtime_ms, d.held_ms));
    done.push_back(d);
    m_guest->kill(); // the paused source: its job is done
    m_guest = std::move(next);
    qmp = std::move(dest);
    at = e.host;
    if (k < plan.size()) prepare(k + 1);
  }
  sleep_until(s.duration_s);
  membership.stop_workloads();
  progress("stopping the stream");
  const GuestOutcome m_out = m_guest->wait();
  const GuestOutcome r_out = r_guest.wait();
  auto only = [&](const GuestOutcome& out, const std::string& who) {
    if (out.reports.size() != 1)
      throw std::runtime_error(fmt::format("{}: {}", who, out.describe()));
    const posix::ReportFields& r = out.reports.front();
    if (r.count("ok") == 0 || r.at("ok") != "1")
      throw std::runtime_error(fmt::format("{} failed: {}", who, out.describe()));
    return r;
  };
  const posix::ReportFields a = only(m_out, w.from), b = only(r_out, w.to);
  guest_results::check_stream_delivered(w, a, b);

  // The results schema, from what the guests measured.
  std::map<std::string, double> mx;
  guest_results::stream_migration_metrics(w, a, b, mx);
  const double messages = mx.at("sends");
  mx["membership_probes"] = static_cast<double>(membership.probes());
  // The receiver checked every byte in place and the checksums agree: nothing was lost.
  mx["lost_messages"] = 0;
  mx["lost_bytes"] = 0;
  double mig_sum = 0;
  for (const MigrationDone& d : done) mig_sum += d.total_ms / 1e3;
  mx["migrations"] = static_cast<double>(done.size());
  mx["migration_s_mean"] = done.empty() ? 0 : mig_sum / static_cast<double>(done.size());

  const auto drawn = std::count_if(
      plan.begin(), plan.end(), [](const guest_results::PlannedMigration& p) { return p.drawn; });
  experiment::RunResult out;
  out.metrics = experiment::schema_metrics(s, mx);
  out.events = static_cast<std::uint64_t>(messages);
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::string summary =
      fmt::format("{} on real QEMU guests ({}): {} -> {} streaming across {} live migration(s){}, "
                  "membership {}, race {}\n",
                  s.name, to_string(env.accel), w.from, w.to, done.size(),
                  drawn == 0 ? std::string()
                             : fmt::format(" ({} drawn by the generators, seed {})", drawn, s.seed),
                  mo.source_kind, to_string(s.membership.race));
  for (const MigrationDone& d : done)
    summary +=
        fmt::format("  migration at {:.2f} s: host {} -> {}, {:.0f} ms, downtime {:.0f} ms (then "
                    "held paused {:.0f} ms for the membership update)\n",
                    d.at_s, d.from, d.to, d.total_ms, d.downtime_ms, d.held_ms);
  for (const NotificationRecord& rec : membership.records())
    if (rec.kind == ChangeKind::migration_in && rec.subject == m_id && rec.observer == m_id)
      summary += fmt::format(
          "  {} learnt of its move after {:.1f} ms\n", w.from,
          rec.t_notified == kNever ? NAN : static_cast<double>(rec.t_notified - rec.t_event) / 1e6);
  summary += guest_results::stream_migration_summary(mx, out.wall_s);
  out.summary = summary;
  return out;
}

} // namespace ivmc::kvm
