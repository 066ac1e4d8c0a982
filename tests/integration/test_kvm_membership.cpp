// The KVM hosts' membership source with real shm objects and QMP events as QEMU sends them
// (RESUME with its wall-clock timestamp): views go out through each guest's host word, and
// the core source's records give the race windows.
#include "ivmc/kvm/kvm_membership.hpp"
#include "ivmc/posix/clock.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

using namespace ivmc;
using namespace ivmc::kvm;
using namespace ivmc::posix;

namespace {

constexpr std::size_t kRegion = 1u << 16, kWord = kRegion - 4096;

// A host's shm object, mapped to read the word back.
struct ShmHost {
  explicit ShmHost(const std::string& tag)
      : name("ivmc-test-membership-" + tag + "-" + std::to_string(::getpid())) {
    const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, kRegion) == 0);
    base = ::mmap(nullptr, kRegion, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(base != MAP_FAILED);
  }
  ~ShmHost() {
    ::munmap(base, kRegion);
    ::shm_unlink(("/" + name).c_str());
  }
  std::uint64_t word() const {
    auto* w = reinterpret_cast<std::uint64_t*>(static_cast<char*>(base) + kWord);
    return std::atomic_ref(*w).load(std::memory_order_relaxed); // a snapshot
  }
  std::string name;
  void* base = nullptr;
};

// Hosts 1 and 2 (their shm objects) under one membership source, guest 7 created on host 1.
struct TwoHosts {
  TwoHosts(const std::string& tag, KvmMembershipOptions o)
      : a(tag + "a"), b(tag + "b"), m(with_word(o)) {
    m.add_host(1, a.name);
    m.add_host(2, b.name);
    m.add_guest(7, 1);
  }
  static KvmMembershipOptions with_word(KvmMembershipOptions o) {
    o.host_word = kWord;
    return o;
  }
  ShmHost a, b;
  KvmMembership m;
};

QmpEvent resume_now() {
  QmpEvent e;
  e.name = "RESUME";
  e.timestamp =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  e.received = MonotonicClock::read();
  return e;
}

const NotificationRecord* own_arrival(const std::vector<NotificationRecord>& records, VmId vm,
                                      std::size_t nth) {
  for (const NotificationRecord& r : records)
    if (r.subject == vm && r.observer == vm && r.kind == ChangeKind::migration_in && nth-- == 0)
      return &r;
  return nullptr;
}

} // namespace

TEST_CASE("KVM membership (watch): a RESUME moves the guest and its word at once",
          "[membership][kvm]") {
  TwoHosts t("w", {});
  auto& [a, b, m] = t;
  CHECK(a.word() == 1);
  CHECK(b.word() == 0);
  m.on_qmp_event(7, 2, resume_now());
  CHECK(m.host_of(7) == 2);
  CHECK(b.word() == 2); // written before on_qmp_event returned
  QmpEvent other = resume_now();
  other.name = "STOP";
  m.on_qmp_event(7, 1, other); // not a move
  CHECK(m.host_of(7) == 2);
  m.on_qmp_event(7, 1, resume_now());
  CHECK(a.word() == 1);
  const auto records = m.records();
  for (std::size_t i = 0; i < 2; ++i) {
    const NotificationRecord* r = own_arrival(records, 7, i);
    REQUIRE(r != nullptr);
    CHECK(r->t_notified >= r->t_event);
    CHECK(r->t_notified - r->t_event < 1'000'000'000); // immediate (a loaded machine: < 1 s)
  }
  const auto arrivals = m.arrivals();
  REQUIRE(arrivals.size() == 2);
  CHECK(arrivals[0].host == 2);
  CHECK(arrivals[1].host == 1);
  for (const auto& arrival : arrivals)
    CHECK(arrival.published >= arrival.resumed - 1'000'000); // two clocks: 1 ms
  m.guest_ended(7, 2);                                       // not where it is: ignored
  CHECK(m.host_of(7) == 1);
  m.guest_ended(7, 1);
  CHECK(m.host_of(7) == 0);
  CHECK_THROWS_WITH(m.on_qmp_event(7, 9, resume_now()), Catch::Contains("unknown host 9"));
}

TEST_CASE("KVM membership (periodic scan): the word changes at a later scan", "[membership][kvm]") {
  KvmMembershipOptions o;
  o.policy = KvmMembershipOptions::Policy::periodic;
  o.period = 300'000'000; // long against the scheduling noise of a loaded machine
  TwoHosts t("p", o);
  auto& [a, b, m] = t;
  CHECK(m.policy_name() == "periodic");
  // Creation is learnt at a scan too.
  for (int i = 0; i < 100 && a.word() != 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(a.word() == 1);
  const Nanos t0 = MonotonicClock::read();
  m.on_qmp_event(7, 2, resume_now());
  for (int i = 0; i < 200 && b.word() != 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const Nanos seen = MonotonicClock::read() - t0;
  REQUIRE(b.word() == 2);
  CHECK(seen < o.period + 1'000'000'000); // a period, plus a loaded machine's lateness
  const NotificationRecord* r = own_arrival(m.records(), 7, 0);
  REQUIRE(r != nullptr);
  CHECK(r->t_notified >= r->t_event);
  CHECK(r->t_notified - r->t_event <= o.period + 1'000'000'000); // a period (+ lateness)
}

TEST_CASE("KVM membership: a server's disconnect notice ends a guest unless it moved away",
          "[membership][kvm]") {
  TwoHosts t("n", {});
  auto& m = t.m;
  m.bind_peer(1, 0, 7);
  m.on_server_notice(1, 0, true); // joining: nothing happens
  CHECK(m.host_of(7) == 1);
  m.on_qmp_event(7, 2, resume_now()); // migrated to B ...
  m.bind_peer(2, 0, 7);
  m.on_server_notice(1, 0, false); // ... so the source's device leaving A is not a shutdown
  CHECK(m.host_of(7) == 2);
  m.on_server_notice(1, 5, false); // a peer nobody bound: ignored
  m.on_server_notice(2, 0, false); // the guest's QEMU on B ends: shutdown
  CHECK(m.host_of(7) == 0);
}
