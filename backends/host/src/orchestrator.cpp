// The host backend's run (orchestrator.hpp).
#include "ivmc/host/orchestrator.hpp"

#include "ivmc/core/pool.hpp"
#include "ivmc/core/topology.hpp"
#include "ivmc/experiment/membership.hpp"
#include "ivmc/host/board.hpp"
#include "ivmc/host/control.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"
#include "ivmc/posix/clock.hpp"
#include "vm_links.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

extern char** environ;

namespace ivmc::host {

namespace {

using posix::MonotonicClock;
constexpr Nanos kSecond = 1'000'000'000;
constexpr unsigned kVectors = 16;

Nanos ns(double seconds) {
  return static_cast<Nanos>(std::llround(seconds * 1e9));
}

// SIGINT / SIGTERM during a run: noticed by the event loop, which cleans up and throws.
volatile sig_atomic_t g_interrupt = 0;
extern "C" void on_interrupt(int signal) {
  g_interrupt = signal;
}

class SignalGuard {
public:
  SignalGuard() {
    g_interrupt = 0;
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }

private:
  struct sigaction old_int_ {
  }, old_term_{};
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return fmt::format("was killed by SIG{}", name ? name : std::to_string(WTERMSIG(status)));
  }
  return "stopped";
}

// Shared memory that runs killed outright (SIGKILL) left behind: ours are named
// ivmc-host-<pid>-h<n>; a name whose pid is gone is removed.
void remove_stale_regions() {
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    int pid = 0;
    if (std::sscanf(e->d_name, "ivmc-host-%d-h", &pid) != 1 || pid <= 0) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      std::error_code ec;
      std::filesystem::remove(std::filesystem::path("/dev/shm") / e->d_name, ec);
    }
  }
  ::closedir(d);
}

// One VM process.
struct VmProc {
  VmId id = 0;
  std::string name;
  pid_t pid = -1;
  ControlSocket ctl{-1};
  std::uint16_t port = 0;
  bool done = false;
  kvm::EnrolmentToken token{};  // its identity on every host's server; only it is given it
  std::vector<Message> reports; // work lines and the totals line
};

struct Migration {
  VmId vm = 0;
  HostId to = 0;
  Nanos started = 0, switch_at = 0;
};

class Run {
public:
  explicit Run(const Plan& plan) : plan_(plan) {}
  ~Run();
  Outcome play();

private:
  void start_servers();
  void spawn_vms();
  void configure_vms();
  std::optional<Message> next_from(VmProc& vm, Nanos timeout);
  Message expect(VmProc& vm, std::string_view verb, Nanos timeout);
  void handle(VmProc& vm, const Message& m);
  void pump(Nanos until);
  [[noreturn]] void fail_vm(VmProc& vm, const std::string& why);
  void check_interrupt();
  void refresh_races();
  void write_view(VmId observer);
  void apply(const TopologyEvent& ev);
  void start_migration(const EventPlan& e, Nanos now);
  void switch_over(const Migration& m);
  Outcome collect(Nanos wall_start);

  Nanos rel(Nanos t) const { return t - t0_; }

  const Plan& plan_;
  std::string dir_;
  std::vector<std::unique_ptr<kvm::IvshmemServerThread>> servers_;
  std::vector<kvm::EnrolmentToken> tokens_; // by VM index
  std::optional<Board> board_;
  std::vector<std::unique_ptr<VmProc>> vms_; // index id - 1
  Topology topology_;
  std::unique_ptr<MembershipSource> source_;
  ViewKeepingSource* views_ = nullptr;
  std::unique_ptr<RaceWindows> windows_;
  std::set<std::pair<VmId, VmId>> pairs_; // watched (observer, subject) pairs
  Nanos t0_ = 0;
  std::vector<Migration> in_flight_;
  std::set<VmId> migrating_;
  std::vector<double> migration_s_;
  std::uint64_t skipped_events_ = 0;
  std::size_t awaiting_acks_ = 0;
  // The hosts' pools (one per host when the scenario has one), as the simulator keeps them.
  std::vector<std::unique_ptr<SharedPool>> pools_;
  std::map<PairId, int> pool_refs_; // channels holding the pair's share
  std::map<PairId, std::map<std::uint32_t, std::uint64_t>> demand_; // latest, by sending pipe
  std::map<PairId, std::vector<std::pair<VmId, std::uint32_t>>> pair_senders_; // (vm, pipe)
  std::uint64_t pool_refusals_ = 0;
  // IVMC_HOST_TRACE=1: every message from the VMs on stderr, with the run's time.
  bool trace_ = std::getenv("IVMC_HOST_TRACE") != nullptr;
  double pool_util_sum_ = 0;
  std::uint64_t pool_util_samples_ = 0;
  void pool_message(VmProc& vm, const Message& m);
  void rebalance_pools();
};

Run::~Run() {
  // Every exit path: no VM process outlives the run.
  for (auto& vm : vms_) {
    if (vm->pid > 0) {
      ::kill(vm->pid, SIGKILL);
      ::kill(vm->pid, SIGCONT);
      int status = 0;
      while (::waitpid(vm->pid, &status, 0) < 0 && errno == EINTR) {
      }
      vm->pid = -1;
    }
  }
  servers_.clear(); // removes sockets, regions and lock files
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void Run::check_interrupt() {
  if (g_interrupt != 0) {
    throw std::runtime_error(fmt::format("interrupted by SIG{}", sigabbrev_np(g_interrupt)));
  }
}

void Run::start_servers() {
  remove_stale_regions();
  char tmpl[] = "/tmp/ivmc-host-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    throw std::runtime_error(fmt::format("host: mkdtemp: {}", std::strerror(errno)));
  }
  dir_ = tmpl;
  // The region every client of a server shares holds no channel: each channel instance gets
  // a sealed region of its own from the server's channel socket (vm_links.cpp). It stays for
  // the ivshmem protocol's sake, at its smallest.
  const std::size_t region = std::size_t{1} << 20;
  // Every VM is enrolled on every host's server (it may migrate to any), with a token of its
  // own that only its process receives (spawn_vms), for this uid. The servers hand a channel's
  // region to its two members only, and only if the scenario's trust list admits them.
  tokens_.clear();
  std::vector<kvm::Enrolment> enrolments;
  for (std::size_t i = 0; i < plan_.vms.size(); ++i) {
    tokens_.push_back(kvm::random_token());
    enrolments.push_back({tokens_.back(), ::getuid(), static_cast<VmId>(i + 1)});
  }
  std::optional<TrustList> trust;
  if (plan_.trusted) {
    trust.emplace();
    for (const auto& [a, b] : *plan_.trusted) {
      trust->allow(a, b);
      trust->allow(b, a);
    }
  }
  for (std::size_t h = 0; h < plan_.hosts; ++h) {
    kvm::IvshmemServerOptions o;
    o.channel_socket = true;
    o.enrolments = enrolments;
    o.trust = trust;
    o.socket_path = fmt::format("{}/h{}.sock", dir_, h);
    o.shm_name = fmt::format("ivmc-host-{}-h{}", ::getpid(), h);
    o.size = region;
    o.vectors = kVectors;
    o.max_peers = 256;
    o.log = [](std::string_view) {}; // the run reports what matters itself
    servers_.push_back(std::make_unique<kvm::IvshmemServerThread>(o));
  }
}

void Run::spawn_vms() {
  board_.emplace(Board::create(static_cast<std::uint32_t>(plan_.vms.size())));
  const std::string program = vm_program();
  if (::access(program.c_str(), X_OK) != 0) {
    throw std::runtime_error("host: the VM program " + program +
                             " is missing (build the ivmc-host-vm target, or set IVMC_HOST_VM)");
  }
  for (std::size_t i = 0; i < plan_.vms.size(); ++i) {
    auto vm = std::make_unique<VmProc>();
    vm->id = static_cast<VmId>(i + 1);
    vm->name = plan_.vms[i].name;
    vm->token = tokens_.at(i);
    auto [ours, theirs] = ControlSocket::pair();
    // The token travels through a pipe only this process inherits, never argv or environ.
    int token_pipe[2];
    if (::pipe2(token_pipe, O_CLOEXEC) != 0)
      throw std::runtime_error(fmt::format("host: pipe2: {}", std::strerror(errno)));
    const std::string hex = kvm::token_hex(vm->token);
    const bool written =
        ::write(token_pipe[1], hex.data(), hex.size()) == static_cast<ssize_t>(hex.size());
    ::close(token_pipe[1]);
    if (!written) {
      ::close(token_pipe[0]);
      throw std::runtime_error("host: could not hand VM " + vm->name + " its token");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, theirs.fd(), 3); // clears close-on-exec
    posix_spawn_file_actions_adddup2(&actions, board_->fd(), 4);
    posix_spawn_file_actions_adddup2(&actions, token_pipe[0], 5);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group: a terminal's Ctrl-C reaches the orchestrator, which stops the
    // VMs itself after cleaning up.
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    std::string name = vm->name;
    std::vector<char*> argv = {const_cast<char*>(program.c_str()),
                               const_cast<char*>("--control-fd"),
                               const_cast<char*>("3"),
                               const_cast<char*>("--board-fd"),
                               const_cast<char*>("4"),
                               const_cast<char*>("--token-fd"),
                               const_cast<char*>("5"),
                               const_cast<char*>("--name"),
                               name.data(),
                               nullptr};
    const int rc = ::posix_spawn(&vm->pid, program.c_str(), &actions, &attr, argv.data(), environ);
    ::close(token_pipe[0]);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      vm->pid = -1;
      throw std::runtime_error(
          fmt::format("host: starting VM {}: {}", vm->name, std::strerror(rc)));
    }
    vm->ctl = std::move(ours);
    vms_.push_back(std::move(vm));
  }
}

[[noreturn]] void Run::fail_vm(VmProc& vm, const std::string& why) {
  std::string how;
  if (vm.pid > 0) {
    // Give a dying process a moment to be reaped, so its cause of death can be named.
    int status = 0;
    for (int i = 0; i < 50; ++i) {
      const pid_t r = ::waitpid(vm.pid, &status, WNOHANG);
      if (r == vm.pid) {
        how = " (the process " + describe_status(status) + ")";
        vm.pid = -1;
        break;
      }
      ::usleep(2000);
    }
  }
  throw std::runtime_error(fmt::format("host: VM {}: {}{}", vm.name, why, how));
}

std::optional<Message> Run::next_from(VmProc& vm, Nanos timeout) {
  try {
    std::optional<Message> m = vm.ctl.recv(timeout);
    if (m && m->verb() == "error") {
      fail_vm(vm, m->has("what") ? m->text("what") : std::string("failed"));
    }
    return m;
  } catch (const ControlError& e) {
    fail_vm(vm, std::string(e.what()).find("closed") != std::string::npos
                    ? "its process ended unexpectedly"
                    : e.what());
  }
}

Message Run::expect(VmProc& vm, std::string_view verb, Nanos timeout) {
  const Nanos deadline = MonotonicClock::read() + timeout;
  for (;;) {
    check_interrupt();
    const Nanos left = deadline - MonotonicClock::read();
    if (left <= 0) fail_vm(vm, fmt::format("no '{}' in time", verb));
    std::optional<Message> m = next_from(vm, std::min<Nanos>(left, 100'000'000));
    if (!m) continue;
    if (m->verb() == verb) return std::move(*m);
    handle(vm, *m);
  }
}

void Run::configure_vms() {
  // Per VM: its roles, with pipes numbered across the run.
  std::vector<std::vector<Message>> works(vms_.size());
  std::uint32_t pipe = 0;
  for (std::size_t w = 0; w < plan_.works.size(); ++w) {
    const WorkPlan& wp = plan_.works[w];
    auto base = [&](const char* role, VmId peer) {
      Message m("work");
      m.set("id", std::uint64_t{w}).set("role", std::string(role)).set("peer", std::uint64_t{peer});
      m.set("bytes", std::uint64_t{wp.bytes}).set("rate", wp.rate_per_s);
      m.set("poisson", unsigned{wp.poisson}).set("seed", plan_.seed * 1000003 + w);
      // Relative to the run's start (t0, sent with `start`).
      m.set("start", ns(wp.start_s)).set("stop", ns(wp.stop_s));
      return m;
    };
    pairs_.insert({wp.from, wp.to});
    pairs_.insert({wp.to, wp.from});
    const PairId pair = pair_id(wp.from, wp.to);
    if (wp.kind == WorkPlan::Kind::stream) {
      pair_senders_[pair].push_back({wp.from, pipe});
      Message s = base("stream_send", wp.to);
      s.set("tx", std::uint64_t{pipe}).set("local", unsigned{wp.local_allowed});
      s.set("once", unsigned{!wp.reestablish});
      Message r = base("stream_recv", wp.from);
      r.set("rx", std::uint64_t{pipe});
      works[wp.from - 1].push_back(std::move(s));
      works[wp.to - 1].push_back(std::move(r));
      pipe += 1;
    } else {
      pair_senders_[pair].push_back({wp.from, pipe});
      pair_senders_[pair].push_back({wp.to, pipe + 1});
      Message c = base("rr_client", wp.to);
      c.set("tx", std::uint64_t{pipe}).set("rx", std::uint64_t{pipe + 1});
      c.set("local", unsigned{wp.local_allowed}).set("once", unsigned{!wp.reestablish});
      Message s = base("rr_server", wp.from);
      s.set("rx", std::uint64_t{pipe}).set("tx", std::uint64_t{pipe + 1});
      s.set("local", unsigned{wp.local_allowed}).set("once", unsigned{!wp.reestablish});
      works[wp.from - 1].push_back(std::move(c));
      works[wp.to - 1].push_back(std::move(s));
      pipe += 2;
    }
  }
  for (auto& vm : vms_) {
    Message m("vm");
    m.set("id", std::uint64_t{vm->id}).set("name", vm->name).set("vectors", kVectors);
    m.set("hosts", std::uint64_t{plan_.hosts}).set("ring", std::uint64_t{plan_.channel.ring_bytes});
    m.set("notify", std::string(to_string(plan_.channel.notify.policy)));
    m.set("atw_batch", std::uint64_t{plan_.channel.notify.atw_batch});
    m.set("atw_window_ns", plan_.channel.notify.atw_window);
    m.set("spin_ns", plan_.channel.notify.spin_budget);
    m.set("race", std::string(to_string(plan_.link.race)));
    m.set("stale_ns", plan_.link.stale_timeout);
    m.set("pool", unsigned{plan_.pool.enabled});
    for (std::size_t i = 0; i < plan_.percentiles.size(); ++i) {
      m.set(fmt::format("p{}", i), plan_.percentiles[i]);
    }
    vm->ctl.send(m);
    for (std::size_t h = 0; h < servers_.size(); ++h) {
      vm->ctl.send(
          Message("host").set("index", std::uint64_t{h}).set("socket", servers_[h]->socket_path()));
    }
    for (const Message& w : works[vm->id - 1]) vm->ctl.send(w);
    vm->ctl.send(Message("configured"));
  }
  for (auto& vm : vms_)
    vm->port = static_cast<std::uint16_t>(expect(*vm, "ready", 30 * kSecond).u64("port"));
  for (auto& vm : vms_) {
    for (auto& other : vms_) {
      vm->ctl.send(
          Message("port").set("vm", std::uint64_t{other->id}).set("port", unsigned{other->port}));
    }
    vm->ctl.send(Message("connect"));
  }
  for (auto& vm : vms_) expect(*vm, "connected", 60 * kSecond);
}

void Run::handle(VmProc& vm, const Message& m) {
  if (trace_) {
    fmt::print(stderr, "ivmc host: {:.6f} {} -> {}\n",
               static_cast<double>(MonotonicClock::read() - t0_) / 1e9, vm.name, m.encode());
  }
  if (m.verb() == "moved" || m.verb() == "attached" || m.verb() == "detached") {
    if (awaiting_acks_ > 0) --awaiting_acks_;
    return;
  }
  if (m.verb() == "work" || m.verb() == "totals") {
    vm.reports.push_back(m);
    return;
  }
  if (m.verb() == "done") {
    vm.done = true;
    return;
  }
  if (m.verb().starts_with("pool_") && !pools_.empty()) {
    pool_message(vm, m);
    return;
  }
  fail_vm(vm, "sent an unexpected '" + m.verb() + "'");
}

// Serves every VM's control socket until `until` (MonotonicClock).
void Run::pump(Nanos until) {
  std::vector<pollfd> fds;
  std::vector<VmProc*> who;
  for (auto& vm : vms_) {
    if (vm->done) continue; // it reported and is exiting: its socket's end is expected
    fds.push_back({vm->ctl.fd(), POLLIN, 0});
    who.push_back(vm.get());
  }
  for (;;) {
    check_interrupt();
    const Nanos now = MonotonicClock::read();
    if (now >= until) return;
    const Nanos left = until - now;
    timespec ts{static_cast<time_t>(left / kSecond), static_cast<long>(left % kSecond)};
    for (auto& f : fds) f.revents = 0;
    const int r = ::ppoll(fds.data(), fds.size(), &ts, nullptr);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw std::runtime_error(fmt::format("host: ppoll: {}", std::strerror(errno)));
    if (r == 0) return;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      while (!who[i]->done) {
        std::optional<Message> m = next_from(*who[i], 0);
        if (!m) break;
        handle(*who[i], *m);
      }
    }
  }
}

// A VM's request to the host's pool. The pipe, peer and host come from a VM process: checked
// against what that VM really sends on before they touch the pool.
void Run::pool_message(VmProc& vm, const Message& m) {
  const auto pipe = static_cast<std::uint32_t>(m.u64("pipe"));
  const auto peer = static_cast<VmId>(m.u64("peer"));
  const std::uint64_t host = m.u64("host");
  const PairId pair = pair_id(vm.id, peer);
  const auto senders = pair_senders_.find(pair);
  if (host >= pools_.size() || senders == pair_senders_.end() ||
      std::find(senders->second.begin(), senders->second.end(),
                std::pair<VmId, std::uint32_t>{vm.id, pipe}) == senders->second.end()) {
    fail_vm(vm, "asked the pool about a pipe it does not send on");
  }
  SharedPool& pool = *pools_[host];
  const Nanos now = rel(MonotonicClock::read());
  if (m.verb() == "pool_acquire") {
    const bool renew = m.u64("renew") != 0;
    Message reply("pool_refuse");
    reply.set("id", m.u64("id"));
    if (!pool.has_pair(pair)) {
      if (renew || !pool.add_pair(pair, now)) {
        if (!renew) ++pool_refusals_;
        vm.ctl.send(reply);
        return;
      }
      if (pool.config().policy == PoolPolicy::proportional) {
        // A new pair starts with what is free, at most its fair share (as in the simulator);
        // the next rebalance corrects it.
        pool.report_demand(pair, pool.config().chunk_bytes, now);
        for (const PoolResize& r : pool.rebalance(now)) {
          if (r.pair == pair) continue;
          for (const auto& [who, p] : pair_senders_[r.pair]) {
            vms_[who - 1]->ctl.send(Message("pool_resize").set("pipe", std::uint64_t{p}));
          }
        }
      }
    }
    if (!renew) ++pool_refs_[pair];
    const std::uint64_t ring =
        std::min<std::uint64_t>(pool.ring_bytes(pair), plan_.channel.ring_bytes);
    if (ring < 4096) { // no room until the next rebalance
      vm.ctl.send(reply);
      return;
    }
    vm.ctl.send(Message("pool_grant").set("id", m.u64("id")).set("ring", ring));
  } else if (m.verb() == "pool_release") {
    auto it = pool_refs_.find(pair);
    if (it == pool_refs_.end()) return; // refused before, or released already
    if (--it->second > 0) return;
    pool_refs_.erase(it);
    demand_.erase(pair);
    if (pool.has_pair(pair)) pool.remove_pair(pair, now);
  } else if (m.verb() == "pool_demand") {
    demand_[pair][pipe] = m.u64("bytes");
  } else {
    fail_vm(vm, "sent an unexpected '" + m.verb() + "'");
  }
}

// MemPipe: demand re-assessed, pipes inflated or deflated (their senders renew their channel).
void Run::rebalance_pools() {
  const Nanos now = rel(MonotonicClock::read());
  for (auto& pool : pools_) {
    for (const auto& [pair, by_pipe] : demand_) {
      std::uint64_t bytes = 0;
      for (const auto& [pipe, b] : by_pipe) bytes += b;
      if (pool->has_pair(pair)) pool->report_demand(pair, bytes, now);
    }
    for (const PoolResize& r : pool->rebalance(now)) {
      for (const auto& [who, p] : pair_senders_[r.pair]) {
        vms_[who - 1]->ctl.send(Message("pool_resize").set("pipe", std::uint64_t{p}));
      }
    }
  }
}

void Run::write_view(VmId observer) {
  board_->set_view(observer, views_->view_of(observer), source_->view_version(observer));
}

void Run::refresh_races() {
  const Nanos now = rel(MonotonicClock::read());
  for (const auto& [o, s] : pairs_) board_->set_race(o, s, windows_->in_race_window(o, s, now));
}

void Run::apply(const TopologyEvent& ev) {
  source_->on_event(ev); // a synchronous source updates the views here (subscription)
  refresh_races();
}

void Run::start_migration(const EventPlan& e, Nanos now) {
  if (!topology_.has_vm(e.vm) || migrating_.count(e.vm)) {
    ++skipped_events_; // gone, or moving already: the simulator skips it too
    return;
  }
  const HostId here = topology_.host_of(e.vm);
  HostId to;
  if (e.host) {
    to = *e.host;
  } else {
    to = static_cast<HostId>(e.other >= here ? e.other + 1 : e.other);
  }
  if (to == here || to >= plan_.hosts) {
    ++skipped_events_;
    return;
  }
  // Pre-copy: the VM keeps running while its memory is copied at the migration bandwidth.
  const double ram_bits = static_cast<double>(plan_.vms[e.vm - 1].ram_mib) * 1048576.0 * 8.0;
  const Nanos precopy = ns(ram_bits / (plan_.migration_gbps * 1e9));
  migrating_.insert(e.vm);
  in_flight_.push_back({e.vm, to, now, now + precopy});
}

void Run::switch_over(const Migration& m) {
  VmProc& vm = *vms_[m.vm - 1];
  // The stop-and-copy: the VM's every thread stands still while the truth changes.
  if (::kill(vm.pid, SIGSTOP) != 0) fail_vm(vm, "cannot be stopped for its migration");
  int status = 0;
  while (::waitpid(vm.pid, &status, WUNTRACED) < 0) {
    if (errno != EINTR) fail_vm(vm, "cannot be waited for");
  }
  if (!WIFSTOPPED(status)) {
    vm.pid = -1;
    throw std::runtime_error(fmt::format("host: VM {}: its process {} during its migration",
                                         vm.name, describe_status(status)));
  }
  const Nanos t_event = MonotonicClock::read();
  const TopologyEvent ev = topology_.migrate_vm(m.vm, m.to, rel(t_event));
  board_->set_host(m.vm, m.to);
  apply(ev);
  vm.ctl.send(Message("move").set("host", unsigned{m.to})); // read once it runs again
  ++awaiting_acks_;
  ::kill(vm.pid, SIGCONT);
  migrating_.erase(m.vm);
  migration_s_.push_back(static_cast<double>(MonotonicClock::read() - m.started) / 1e9);
}

Outcome Run::play() {
  SignalGuard signals;
  const Nanos wall_start = MonotonicClock::read();
  start_servers();
  spawn_vms();
  configure_vms();
  // The truth at start, and the membership source over it (views start from the truth).
  for (std::size_t h = 0; h < plan_.hosts; ++h) topology_.add_host(static_cast<HostId>(h));
  const auto address = experiment::vm_address;
  const MembershipParams& params = plan_.membership_params; // static: the list too
  for (std::size_t i = 0; i < plan_.vms.size(); ++i) {
    if (!plan_.vms[i].host) continue;
    const auto id = static_cast<VmId>(i + 1);
    topology_.create_vm(id, address(id), *plan_.vms[i].host, 0);
    board_->set_host(id, *plan_.vms[i].host);
  }
  if (plan_.pool.enabled) {
    for (std::size_t h = 0; h < plan_.hosts; ++h) {
      pools_.push_back(std::make_unique<SharedPool>(plan_.pool.config));
    }
  }
  source_ = make_membership_source(plan_.membership, topology_, params);
  views_ = dynamic_cast<ViewKeepingSource*>(source_.get());
  if (views_ == nullptr) throw std::logic_error("host: a membership source without views");
  windows_ = std::make_unique<RaceWindows>(*source_);
  source_->subscribe([this](VmId observer, Nanos) { write_view(observer); });
  for (auto& vm : vms_) write_view(vm->id);
  for (std::size_t i = 0; i < plan_.vms.size(); ++i) {
    if (!plan_.vms[i].host) continue;
    vms_[i]->ctl.send(Message("attach").set("host", unsigned{*plan_.vms[i].host}));
    expect(*vms_[i], "attached", 30 * kSecond);
  }
  // Start: everything is relative to t0 from here on.
  t0_ = MonotonicClock::read() + 50'000'000;
  const Nanos end = t0_ + ns(plan_.duration_s);
  const Nanos give_up = end + 15 * kSecond;
  for (auto& vm : vms_) {
    Message m("start");
    m.set("t0", t0_).set("from", t0_ + ns(plan_.warmup_s)).set("to", end);
    m.set("give_up", give_up);
    vm->ctl.send(m);
  }
  // The works' own start and stop are sent with the roles: they are absolute too.
  std::vector<EventPlan> events = plan_.events;
  std::stable_sort(events.begin(), events.end(),
                   [](const EventPlan& a, const EventPlan& b) { return a.at_s < b.at_s; });
  std::size_t next_event = 0;
  Nanos next_progress = t0_ + 5 * kSecond;
  const bool proportional = !pools_.empty() && plan_.pool.config.policy == PoolPolicy::proportional;
  Nanos next_rebalance = t0_ + plan_.pool.rebalance;
  Nanos next_sample = t0_; // pool utilisation, every millisecond (as the simulator samples it)
  for (;;) {
    Nanos due = end;
    if (proportional) due = std::min(due, next_rebalance);
    if (!pools_.empty()) due = std::min(due, next_sample);
    if (next_event < events.size()) due = std::min(due, t0_ + ns(events[next_event].at_s));
    for (const Migration& m : in_flight_) due = std::min(due, m.switch_at);
    const Nanos source_due = source_->next_due();
    if (source_due != kNever) due = std::min(due, t0_ + source_due);
    pump(due);
    const Nanos now = MonotonicClock::read();
    if (now >= end) break;
    // Events at time t are reported before the source's work at t.
    while (next_event < events.size() && t0_ + ns(events[next_event].at_s) <= now) {
      const EventPlan& e = events[next_event++];
      switch (e.kind) {
      case EventPlan::Kind::migrate:
        start_migration(e, now);
        break;
      case EventPlan::Kind::create:
        if (topology_.has_vm(e.vm)) {
          ++skipped_events_;
          break;
        }
        apply(topology_.create_vm(e.vm, address(e.vm), e.host.value_or(0), rel(now)));
        board_->set_host(e.vm, e.host.value_or(0));
        vms_[e.vm - 1]->ctl.send(Message("attach").set("host", unsigned{e.host.value_or(0)}));
        ++awaiting_acks_;
        break;
      case EventPlan::Kind::shutdown:
        if (!topology_.has_vm(e.vm) || migrating_.count(e.vm)) {
          ++skipped_events_;
          break;
        }
        board_->set_host(e.vm, std::nullopt);
        apply(topology_.shutdown_vm(e.vm, rel(now)));
        vms_[e.vm - 1]->ctl.send(Message("detach"));
        ++awaiting_acks_;
        break;
      }
    }
    for (std::size_t i = 0; i < in_flight_.size();) {
      if (in_flight_[i].switch_at <= MonotonicClock::read()) {
        const Migration m = in_flight_[i];
        in_flight_.erase(in_flight_.begin() + static_cast<std::ptrdiff_t>(i));
        switch_over(m);
      } else {
        ++i;
      }
    }
    if (source_->next_due() != kNever && t0_ + source_->next_due() <= MonotonicClock::read()) {
      source_->run_due(rel(MonotonicClock::read()));
      refresh_races();
    }
    if (proportional && MonotonicClock::read() >= next_rebalance) {
      next_rebalance += plan_.pool.rebalance;
      rebalance_pools();
    }
    if (!pools_.empty() && MonotonicClock::read() >= next_sample) {
      next_sample += 1'000'000;
      double u = 0;
      for (auto& pool : pools_) u += pool->allocated_fraction();
      pool_util_sum_ += u / static_cast<double>(pools_.size());
      ++pool_util_samples_;
    }
    if (plan_.progress && now >= next_progress) {
      next_progress += 5 * kSecond;
      fmt::print(stderr, "ivmc host: {:.0f}/{:.0f} s, {} migrations\n",
                 static_cast<double>(now - t0_) / 1e9, plan_.duration_s, migration_s_.size());
    }
  }
  // The end: every VM finishes its streams, reports, and exits.
  for (auto& vm : vms_) vm->ctl.send(Message("stop"));
  const Nanos deadline = give_up + 30 * kSecond;
  for (;;) {
    bool all = true;
    for (auto& vm : vms_) all = all && vm->done;
    if (all) break;
    if (MonotonicClock::read() > deadline) {
      for (auto& vm : vms_) {
        if (!vm->done) fail_vm(*vm, "did not report after the run's end");
      }
    }
    pump(std::min(deadline, MonotonicClock::read() + 100'000'000));
  }
  for (auto& vm : vms_) {
    int status = 0;
    while (::waitpid(vm->pid, &status, 0) < 0 && errno == EINTR) {
    }
    vm->pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      throw std::runtime_error(fmt::format("host: VM {}: its process {} after reporting", vm->name,
                                           describe_status(status)));
    }
  }
  return collect(wall_start);
}

Outcome Run::collect(Nanos wall_start) {
  Outcome out;
  auto& mx = out.metrics;
  const double span = plan_.duration_s - plan_.warmup_s;
  // The reports, by workload and role.
  struct Roles {
    const Message* sender = nullptr;   // stream_send or rr_client
    const Message* receiver = nullptr; // stream_recv or rr_server
  };
  std::vector<Roles> roles(plan_.works.size());
  std::vector<const Message*> totals;
  std::uint64_t sends = 0, in_window = 0, delivered = 0;
  for (auto& vm : vms_) {
    for (const Message& m : vm->reports) {
      if (m.verb() == "totals") {
        totals.push_back(&m);
        continue;
      }
      const std::uint64_t id = m.u64("id");
      if (id >= roles.size()) fail_vm(*vm, "reported an unknown workload");
      const std::string& role = m.text("role");
      (role == "stream_send" || role == "rr_client" ? roles[id].sender : roles[id].receiver) = &m;
      sends += m.u64("sends");
      in_window += m.u64("sends_in_window");
      delivered += m.u64("delivered");
      // Never deliver what was not sent: a failed check fails the run.
      if (m.u64("corrupt") != 0 || m.u64("reordered") != 0) {
        fail_vm(*vm, fmt::format("workload {} received {} corrupted and {} reordered messages", id,
                                 m.u64("corrupt"), m.u64("reordered")));
      }
      if (m.has("error")) fail_vm(*vm, fmt::format("workload {}: {}", id, m.text("error")));
    }
  }
  double stream_mbps = 0, rr_tps = 0;
  std::uint64_t lost_messages = 0, lost_bytes = 0, recovered = 0;
  std::uint64_t frames_local = 0, frames_remote = 0, to_local = 0, to_remote = 0, fallbacks = 0,
                deferred = 0, opened = 0, renewals = 0, probes = 0, trust_refusals = 0;
  std::string summary = fmt::format("{} on this machine's CPUs (host backend), {:.1f} s\n",
                                    plan_.name, plan_.duration_s);
  for (std::size_t i = 0; i < plan_.works.size(); ++i) {
    const WorkPlan& w = plan_.works[i];
    const Roles& r = roles[i];
    if (r.sender == nullptr || r.receiver == nullptr) {
      throw std::runtime_error(fmt::format("host: workload {} was not reported by both VMs", i));
    }
    const bool rr = w.kind == WorkPlan::Kind::request_response;
    const std::string pre = fmt::format("w{}_", i);
    const Message& measuring = rr ? *r.sender : *r.receiver; // who sees the message arrive
    double headline;
    if (rr) {
      headline = static_cast<double>(measuring.u64("transactions")) / span;
      mx[pre + "transactions_per_s"] = headline;
      rr_tps += headline;
    } else {
      headline = static_cast<double>(measuring.u64("measured_bytes")) * 8 / span / 1e6;
      mx[pre + "mbps"] = headline;
      mx[pre + "messages_per_s"] = static_cast<double>(measuring.u64("measured_messages")) / span;
      stream_mbps += headline;
    }
    for (std::size_t p = 0; p < plan_.percentiles.size(); ++p) {
      const std::string key = fmt::format("p{}", p);
      mx[pre + fmt::format("{}_p{}_us", rr ? "rtt" : "latency", plan_.percentiles[p])] =
          measuring.has(key) ? measuring.real(key) : std::nan("");
    }
    const std::uint64_t tx_messages = r.sender->u64("tx_messages");
    const std::uint64_t tx_local = r.sender->u64("tx_local");
    mx[pre + "local_share"] =
        tx_messages ? static_cast<double>(tx_local) / static_cast<double>(tx_messages) : 0;
    // Every message the application sent is either delivered and checked, or lost: the
    // difference is measured here, end to end, not taken from any one counter.
    auto lost_on = [&](const Message& snd, const Message& rcv) {
      const std::uint64_t sent = snd.u64("sent"), got = rcv.u64("delivered");
      return sent > got ? sent - got : 0;
    };
    const std::uint64_t lost =
        lost_on(*r.sender, *r.receiver) + (rr ? lost_on(*r.receiver, *r.sender) : 0);
    lost_messages += lost;
    lost_bytes += lost * w.bytes;
    for (const Message* m : {r.sender, r.receiver}) {
      recovered += m->u64("recovered_bytes");
      if (!m->has("tx_messages")) continue;
      frames_local += m->u64("tx_local");
      frames_remote += m->u64("tx_remote");
      to_local += m->u64("to_local");
      to_remote += m->u64("to_remote");
      fallbacks += m->u64("fallbacks");
      deferred += m->u64("deferred");
      opened += m->u64("channels_opened");
      renewals += m->u64("renewals");
      probes += m->u64("probes");
    }
    if (w.trust_refused) trust_refusals += rr ? 2 : 1;
    std::string lat;
    for (double pct : plan_.percentiles) {
      lat += fmt::format(" p{} {:.1f}", pct,
                         mx[pre + fmt::format("{}_p{}_us", rr ? "rtt" : "latency", pct)]);
    }
    summary += fmt::format(
        "  w{} {:<6} {:>6} -> {:<6} {:>7} B  {}  {} us:{}  local {:.0f}%  lost {}\n", i,
        rr ? "rr" : "stream", plan_.vms[w.from - 1].name, plan_.vms[w.to - 1].name, w.bytes,
        rr ? fmt::format("{:10.0f} trans/s", headline) : fmt::format("{:10.1f} Mb/s", headline),
        rr ? "rtt" : "latency", lat, 100 * mx[pre + "local_share"], lost);
  }
  std::uint64_t data_n = 0, space_n = 0, wakeups = 0, sleeps = 0, pending = 0;
  RaceCell cells[3][4]{};
  for (const Message* t : totals) {
    data_n += t->u64("data_notifications");
    space_n += t->u64("space_notifications");
    wakeups += t->u64("wakeups");
    sleeps += t->u64("sleeps");
    pending += t->u64("pending_bytes");
    for (int op = 0; op < 3; ++op) {
      for (int k = 0; k < 4; ++k) {
        cells[op][k].operations += t->u64(fmt::format("race_{}_{}_ops", op, k));
        cells[op][k].errors += t->u64(fmt::format("race_{}_{}_errors", op, k));
        cells[op][k].deferred += t->u64(fmt::format("race_{}_{}_deferred", op, k));
      }
    }
  }
  mx["stream_mbps"] = stream_mbps;
  mx["rr_transactions_per_s"] = rr_tps;
  mx["notifications"] = static_cast<double>(data_n + space_n);
  mx["data_notifications"] = static_cast<double>(data_n);
  mx["space_notifications"] = static_cast<double>(space_n);
  mx["wakeups"] = static_cast<double>(wakeups);
  mx["sleeps"] = static_cast<double>(sleeps);
  mx["membership_probes"] = static_cast<double>(source_->probes());
  mx["link_probes"] = static_cast<double>(probes);
  mx["sends"] = static_cast<double>(sends);
  mx["sends_in_race_window"] = static_cast<double>(in_window);
  mx["race_exposure"] = sends ? static_cast<double>(in_window) / static_cast<double>(sends) : 0;
  std::uint64_t race_ops = 0, race_errors = 0, race_deferred = 0;
  static constexpr const char* rows[] = {"establishment", "pending_data", "teardown"};
  static constexpr const char* cols[] = {"migration_in", "creation", "migration_out", "shutdown"};
  for (int op = 0; op < 3; ++op) {
    for (int k = 0; k < 4; ++k) {
      race_ops += cells[op][k].operations;
      race_errors += cells[op][k].errors;
      race_deferred += cells[op][k].deferred;
      mx[fmt::format("race_{}_{}", rows[op], cols[k])] =
          static_cast<double>(cells[op][k].operations);
    }
  }
  mx["race_operations"] = static_cast<double>(race_ops);
  mx["race_errors"] = static_cast<double>(race_errors);
  mx["race_deferred"] = static_cast<double>(race_deferred);
  mx["frames_local"] = static_cast<double>(frames_local);
  mx["frames_remote"] = static_cast<double>(frames_remote);
  mx["switches_to_local"] = static_cast<double>(to_local);
  mx["switches_to_remote"] = static_cast<double>(to_remote);
  mx["fallbacks"] = static_cast<double>(fallbacks);
  mx["deferred_establishments"] = static_cast<double>(deferred);
  mx["channels_opened"] = static_cast<double>(opened);
  mx["pending_bytes"] = static_cast<double>(pending);
  mx["recovered_bytes"] = static_cast<double>(recovered);
  mx["lost_messages"] = static_cast<double>(lost_messages);
  mx["lost_bytes"] = static_cast<double>(lost_bytes);
  // Datagrams ride the link like streams here (the ring, TCP as the remote path): nothing can
  // drop them, so the simulator's drop count has no counterpart (backends/host/README.md).
  bool datagrams = false;
  for (const WorkPlan& w : plan_.works) datagrams = datagrams || w.datagram;
  mx["udp_dropped"] = datagrams ? std::nan("") : 0;
  mx["trust_refusals"] = static_cast<double>(trust_refusals);
  mx["pool_refusals"] = static_cast<double>(pool_refusals_);
  mx["pool_renewals"] = static_cast<double>(renewals);
  mx["pool_utilisation"] =
      pool_util_samples_ ? pool_util_sum_ / static_cast<double>(pool_util_samples_) : 0;
  double mig_sum = 0;
  for (double s : migration_s_) mig_sum += s;
  mx["migrations"] = static_cast<double>(migration_s_.size());
  mx["migration_s_mean"] =
      migration_s_.empty() ? 0 : mig_sum / static_cast<double>(migration_s_.size());
  out.events = delivered;
  out.wall_s = static_cast<double>(MonotonicClock::read() - wall_start) / 1e9;
  summary += fmt::format(
      "  notifications {} (data {}, space {}), wakeups {}, membership probes {}\n"
      "  migrations {} (mean {:.3f} s), switches {} to local / {} to remote, fallbacks {}\n"
      "  race windows: {} operations ({} errors), {:.2f}% of sends; pending {} B, recovered {} B, "
      "lost {} messages\n"
      "  {} messages checked end to end in {:.2f} s wall\n",
      data_n + space_n, data_n, space_n, wakeups, source_->probes(), migration_s_.size(),
      mx["migration_s_mean"], to_local, to_remote, fallbacks, race_ops, race_errors,
      100 * mx["race_exposure"], pending, recovered, lost_messages, delivered, out.wall_s);
  out.summary = summary;
  return out;
}

} // namespace

std::string vm_program() {
  if (const char* p = std::getenv("IVMC_HOST_VM"); p != nullptr && *p) return p;
  return IVMC_HOST_VM_PROGRAM;
}

Outcome play(const Plan& plan) {
  Run run(plan);
  return run.play();
}

} // namespace ivmc::host
