// A host-backend VM process (vm_process.hpp).
#include "ivmc/host/vm_process.hpp"

#include "ivmc/host/board.hpp"
#include "ivmc/host/control.hpp"
#include "ivmc/posix/tcp_path.hpp"
#include "residence.hpp"
#include "traffic.hpp"
#include "vm_links.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

namespace ivmc::host {

namespace {

constexpr std::uint64_t kHelloMagic = 0x6f6c6c6568636d76; // "vmchello"
constexpr Nanos kSetupTimeout = 30'000'000'000;

Message expect(ControlSocket& ctl, std::string_view verb) {
  std::optional<Message> m = ctl.recv(kSetupTimeout);
  if (!m) throw ControlError(fmt::format("no {} from the orchestrator in time", verb));
  if (m->verb() != verb) {
    throw ControlError(fmt::format("expected {}, got {}", verb, m->verb()));
  }
  return std::move(*m);
}

NotifyPolicy notify_from(const std::string& text) {
  NotifyPolicy p{};
  if (!parse_notify_policy(text, p)) throw ControlError("vm: notify=" + text);
  return p;
}
RacePolicy race_from(const std::string& text) {
  RacePolicy p{};
  if (!parse_race_policy(text, p)) throw ControlError("vm: race=" + text);
  return p;
}

struct Job {
  WorkSpec spec;
  WorkResult result;
  std::thread thread;
};

class VmProcess {
public:
  VmProcess(ControlSocket ctl, Board board, kvm::EnrolmentToken token)
      : ctl_(std::move(ctl)), board_(std::move(board)), token_(token) {}
  int run();

private:
  void configure();
  void connect_paths();
  void start(const Message& m);
  void report();

  ControlSocket ctl_;
  Board board_;
  kvm::EnrolmentToken token_; // this VM's identity on every host's server
  VmId self_ = 0;
  std::string name_;
  std::vector<std::string> sockets_;
  unsigned vectors_ = 16;
  std::vector<double> percentiles_;
  std::unique_ptr<Residence> residence_;
  std::unique_ptr<VmContext> vm_;
  std::map<std::uint32_t, bool> local_allowed_; // tx pipe -> may it take the channel?
  std::map<std::uint32_t, bool> reestablish_;   // tx pipe -> set up again after a break?
  std::unique_ptr<PoolClient> pool_;
  std::vector<std::unique_ptr<Job>> jobs_;
  std::map<std::uint32_t, VmId> tx_pipes_, rx_pipes_; // pipe -> peer
  std::map<std::uint32_t, std::unique_ptr<SenderEnd>> senders_;
  std::map<std::uint32_t, std::unique_ptr<ReceiverEnd>> receivers_;
  std::unique_ptr<posix::TcpListener> listener_;
  std::map<VmId, std::uint16_t> ports_;
  std::atomic<bool> abort_{false};
  std::uint64_t pending_bytes_ = 0;
};

void VmProcess::configure() {
  const Message vm = expect(ctl_, "vm");
  self_ = static_cast<VmId>(vm.u64("id"));
  if (self_ == 0 || self_ > board_.vms()) throw ControlError("vm: id out of the board's range");
  name_ = vm.text("name");
  vectors_ = static_cast<unsigned>(vm.u64("vectors"));
  const auto hosts = vm.u64("hosts");
  ChannelConfig cc;
  cc.ring_bytes = static_cast<std::uint32_t>(vm.u64("ring"));
  cc.notify.policy = notify_from(vm.text("notify"));
  cc.notify.atw_batch = static_cast<std::uint32_t>(vm.u64("atw_batch"));
  cc.notify.atw_window = vm.i64("atw_window_ns");
  cc.notify.spin_budget = vm.i64("spin_ns");
  LinkConfig lc;
  lc.race = race_from(vm.text("race"));
  lc.stale_timeout = vm.i64("stale_ns");
  // A process that left a host can still write into that host's region (it stays mapped
  // here): what it wrote after the peer stopped reading is re-sent from the ring, so the
  // race policies decide what is lost, not the order in which the two noticed the move.
  lc.resend_unconsumed = lc.race != RacePolicy::none;
  for (std::size_t i = 0; vm.has(fmt::format("p{}", i)); ++i) {
    percentiles_.push_back(vm.real(fmt::format("p{}", i)));
  }
  for (;;) {
    const std::optional<Message> m = ctl_.recv(kSetupTimeout);
    if (!m) throw ControlError("configuration did not end in time");
    if (m->verb() == "configured") break;
    if (m->verb() == "host") {
      if (m->u64("index") != sockets_.size()) throw ControlError("host: out of order");
      sockets_.push_back(m->text("socket"));
    } else if (m->verb() == "work") {
      auto job = std::make_unique<Job>();
      WorkSpec& s = job->spec;
      s.id = static_cast<std::uint32_t>(m->u64("id"));
      if (!parse_role(m->text("role"), s.role)) throw ControlError("work: role=" + m->text("role"));
      s.peer = static_cast<VmId>(m->u64("peer"));
      if (s.peer == 0 || s.peer > board_.vms() || s.peer == self_) throw ControlError("work: peer");
      s.bytes = static_cast<std::uint32_t>(m->u64("bytes"));
      if (s.bytes < kMessageHeader) throw ControlError("work: bytes below the header");
      s.rate = m->real("rate");
      s.poisson = m->u64("poisson") != 0;
      s.start = m->i64("start");
      s.stop = m->i64("stop");
      s.seed = m->u64("seed");
      const bool sends = s.role != Role::stream_recv;
      const bool receives = s.role != Role::stream_send;
      if (sends) {
        s.tx_pipe = static_cast<std::uint32_t>(m->u64("tx"));
        tx_pipes_[s.tx_pipe] = s.peer;
        local_allowed_[s.tx_pipe] = m->u64("local") != 0;
        reestablish_[s.tx_pipe] = m->u64("once") == 0;
      }
      if (receives) {
        s.rx_pipe = static_cast<std::uint32_t>(m->u64("rx"));
        rx_pipes_[s.rx_pipe] = s.peer;
      }
      jobs_.push_back(std::move(job));
    } else {
      throw ControlError("configuration: unexpected " + m->verb());
    }
  }
  if (sockets_.size() != hosts) throw ControlError("vm: host sockets missing");
  residence_ = std::make_unique<Residence>(sockets_, vectors_, token_);
  vm_ = std::make_unique<VmContext>(self_, board_, *residence_);
  vm_->channel = cc;
  vm_->link = lc;
  if (vm.u64("pool") != 0) {
    pool_ = std::make_unique<PoolClient>(ctl_);
    vm_->pool = pool_.get();
  }
  listener_ = std::make_unique<posix::TcpListener>();
  ctl_.send(Message("ready").set("port", unsigned{listener_->port()}));
}

void VmProcess::connect_paths() {
  for (;;) {
    const Message m = [&] {
      std::optional<Message> x = ctl_.recv(kSetupTimeout);
      if (!x) throw ControlError("no connect in time");
      return std::move(*x);
    }();
    if (m.verb() == "connect") break;
    if (m.verb() != "port") throw ControlError("ports: unexpected " + m.verb());
    ports_[static_cast<VmId>(m.u64("vm"))] = static_cast<std::uint16_t>(m.u64("port"));
  }
  // Accept the receivers' paths on a thread while this VM connects its senders' (every VM
  // does both at once).
  std::map<std::uint32_t, posix::TcpPath> accepted;
  std::string accept_error;
  std::thread acceptor([&] {
    try {
      const Nanos deadline = posix::MonotonicClock::read() + kSetupTimeout;
      while (accepted.size() < rx_pipes_.size()) {
        const Nanos left = deadline - posix::MonotonicClock::read();
        if (left <= 0) throw std::runtime_error("the senders' TCP paths did not all arrive");
        std::optional<posix::TcpPath> path = listener_->try_accept(left);
        if (!path) continue;
        // The hello is hostile input: 16 bytes, our magic, a pipe we receive on, once.
        std::array<std::byte, 16> hello{};
        std::size_t n = 0;
        if (path->recv(hello, {}, n, 5'000'000'000) != Errc::ok || n != hello.size()) continue;
        std::uint64_t magic = 0, pipe = 0;
        std::memcpy(&magic, hello.data(), 8);
        std::memcpy(&pipe, hello.data() + 8, 8);
        if (magic != kHelloMagic || !rx_pipes_.count(static_cast<std::uint32_t>(pipe)) ||
            pipe > UINT32_MAX || accepted.count(static_cast<std::uint32_t>(pipe))) {
          continue;
        }
        accepted.emplace(static_cast<std::uint32_t>(pipe), std::move(*path));
      }
    } catch (const std::exception& e) {
      accept_error = e.what();
    }
  });
  std::string connect_error;
  for (const auto& [pipe, peer] : tx_pipes_) {
    try {
      if (!ports_.count(peer)) throw std::runtime_error("no port for VM " + std::to_string(peer));
      posix::TcpPath path = posix::TcpPath::connect("127.0.0.1", ports_[peer], kSetupTimeout);
      std::array<std::byte, 16> hello{};
      const std::uint64_t p = pipe;
      std::memcpy(hello.data(), &kHelloMagic, 8);
      std::memcpy(hello.data() + 8, &p, 8);
      if (path.send(hello, {}, 5'000'000'000) != Errc::ok) {
        throw std::runtime_error("sending the hello failed");
      }
      senders_[pipe] = std::make_unique<SenderEnd>(*vm_, pipe, peer, local_allowed_[pipe],
                                                   reestablish_[pipe], std::move(path));
    } catch (const std::exception& e) {
      connect_error = fmt::format("pipe {}: {}", pipe, e.what());
      break;
    }
  }
  acceptor.join();
  if (!connect_error.empty()) throw std::runtime_error(connect_error);
  if (!accept_error.empty()) throw std::runtime_error(accept_error);
  for (auto& [pipe, path] : accepted) {
    receivers_[pipe] = std::make_unique<ReceiverEnd>(*vm_, pipe, rx_pipes_[pipe], std::move(path));
  }
  ctl_.send(Message("connected"));
}

void VmProcess::start(const Message& m) {
  RunWindow window;
  window.measure_from = m.i64("from");
  window.measure_to = m.i64("to");
  window.give_up = m.i64("give_up");
  const Nanos t0 = m.i64("t0");
  for (auto& job : jobs_) {
    Job* j = job.get();
    j->spec.start += t0; // sent relative to the run's start
    j->spec.stop += t0;
    SenderEnd* tx =
        j->spec.role == Role::stream_recv ? nullptr : senders_.at(j->spec.tx_pipe).get();
    ReceiverEnd* rx =
        j->spec.role == Role::stream_send ? nullptr : receivers_.at(j->spec.rx_pipe).get();
    j->thread = std::thread(
        [this, j, tx, rx, window] { run_work(*vm_, j->spec, tx, rx, window, abort_, j->result); });
  }
}

void VmProcess::report() {
  for (auto& job : jobs_) {
    if (job->thread.joinable()) job->thread.join();
  }
  for (auto& job : jobs_) {
    WorkResult& r = job->result;
    Message m("work");
    m.set("id", unsigned{job->spec.id}).set("role", std::string(to_string(job->spec.role)));
    m.set("sent", r.sent).set("sends", r.sends).set("sends_in_window", r.sends_in_window);
    m.set("delivered", r.delivered).set("measured_messages", r.measured_messages);
    m.set("measured_bytes", r.measured_bytes).set("transactions", r.transactions);
    m.set("corrupt", r.corrupt).set("reordered", r.reordered).set("gaps", r.gaps);
    m.set("recovered_bytes", r.recovered_bytes).set("finished", unsigned{r.finished});
    m.set("samples", r.latency.count());
    for (std::size_t i = 0; i < percentiles_.size(); ++i) { // us, within the histogram's bound
      if (!r.latency.empty())
        m.set(fmt::format("p{}", i), r.latency.percentile(percentiles_[i]) / 1e3);
    }
    if (!r.error.empty()) {
      std::string e = r.error;
      std::replace_if(
          e.begin(), e.end(), [](char c) { return c <= ' ' || c == '=' || c > '~'; }, '_');
      m.set("error", e);
    }
    if (job->spec.role != Role::stream_recv) {
      const LinkStats& ls = senders_.at(job->spec.tx_pipe)->link().stats();
      m.set("tx_messages", ls.messages_sent).set("tx_local", ls.sent_local);
      m.set("tx_remote", ls.sent_remote).set("to_local", ls.switches_to_local);
      m.set("to_remote", ls.switches_to_remote).set("fallbacks", ls.fallbacks);
      m.set("deferred", ls.deferred).set("renewals", ls.renewals).set("probes", ls.probes);
      m.set("resent", ls.resent).set("tx_lost_messages", ls.lost_messages);
      m.set("tx_lost_bytes", ls.lost_bytes);
      m.set("channels_opened", senders_.at(job->spec.tx_pipe)->channels_opened());
    }
    if (job->spec.role != Role::stream_send) {
      const LinkStats& ls = receivers_.at(job->spec.rx_pipe)->link().stats();
      m.set("rx_lost_messages", ls.lost_messages).set("rx_lost_bytes", ls.lost_bytes);
      m.set("duplicates", ls.duplicates).set("drained", ls.drained_after_break);
    }
    ctl_.send(m);
  }
  // Close every channel first, so their counters are in the totals.
  senders_.clear();
  receivers_.clear();
  Message t("totals");
  const ChannelTotals& c = vm_->totals;
  // relaxed: every thread that added to them has been joined.
  t.set("data_notifications", c.data_notifications.load(std::memory_order_relaxed));
  t.set("space_notifications", c.space_notifications.load(std::memory_order_relaxed));
  t.set("sleeps", c.sleeps.load(std::memory_order_relaxed));
  t.set("wakeups", c.wakeups.load(std::memory_order_relaxed));
  t.set("pending_bytes", pending_bytes_);
  const RaceLedger ledger = vm_->ledger();
  for (int op = 0; op < 3; ++op) {
    for (int k = 0; k < 4; ++k) {
      const RaceCell& cell =
          ledger.cell(static_cast<LinkOperation>(op), static_cast<ChangeKind>(k));
      t.set(fmt::format("race_{}_{}_ops", op, k), cell.operations);
      t.set(fmt::format("race_{}_{}_errors", op, k), cell.errors);
      t.set(fmt::format("race_{}_{}_deferred", op, k), cell.deferred);
    }
  }
  ctl_.send(t);
  ctl_.send(Message("done"));
}

int VmProcess::run() {
  configure();
  connect_paths();
  for (;;) {
    std::optional<Message> m = ctl_.recv(kForever);
    if (!m) continue;
    const std::string& verb = m->verb();
    if (verb == "start") {
      start(*m);
    } else if (verb == "attach") {
      const auto host = static_cast<HostId>(m->u64("host"));
      residence_->attach(host);
      ctl_.send(Message("attached").set("host", unsigned{host}));
    } else if (verb == "move") {
      const auto host = static_cast<HostId>(m->u64("host"));
      pending_bytes_ += residence_->detach(fmt::format("{} migrated to host {}", name_, host));
      residence_->attach(host);
      ctl_.send(Message("moved").set("host", unsigned{host}));
    } else if (verb == "pool_grant" || verb == "pool_refuse") {
      if (!pool_) throw ControlError("a pool answer without a pool");
      pool_->deliver(*m);
    } else if (verb == "pool_resize") {
      const auto it = senders_.find(static_cast<std::uint32_t>(m->u64("pipe")));
      if (it == senders_.end()) throw ControlError("pool_resize: not a pipe this VM sends on");
      it->second->request_renew();
    } else if (verb == "detach") {
      pending_bytes_ += residence_->detach(name_ + " shut down");
      ctl_.send(Message("detached"));
    } else if (verb == "stop") {
      report();
      return 0;
    } else if (verb == "abort") {
      abort_ = true; // seq_cst store: the workload threads poll it
      report();
      return 0;
    } else {
      throw ControlError("unexpected " + verb);
    }
  }
}

} // namespace

// The enrolment token from the orchestrator's pipe: 64 hex digits, then end of file.
kvm::EnrolmentToken read_token(int fd) {
  char text[80];
  std::size_t got = 0;
  for (;;) {
    const ssize_t n = ::read(fd, text + got, sizeof text - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
    if (got == sizeof text) break;
  }
  ::close(fd);
  kvm::EnrolmentToken token{};
  if (!kvm::parse_token_hex(std::string_view(text, got), token))
    throw std::runtime_error("the enrolment token on the token fd is not 64 hex digits");
  return token;
}

int run_vm_process(int control_fd, int board_fd, int token_fd) {
  ControlSocket ctl(control_fd);
  try {
    VmProcess vm(ControlSocket(::dup(control_fd)), Board::open_read_only(board_fd),
                 read_token(token_fd));
    return vm.run();
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::replace_if(
        what.begin(), what.end(), [](char c) { return c <= ' ' || c == '=' || c > '~'; }, '_');
    try {
      ctl.send(Message("error").set("what", what));
    } catch (const std::exception&) {
    }
    return 1;
  }
}

} // namespace ivmc::host
