// Real QEMU guests (TCG unless KVM really works) streaming through ivshmem with checksums:
// a host process and a guest (both directions), and two guests; polling first, then
// interrupt-driven through VFIO MSI-X. Every stream's checksum is compared on both ends and
// with the checksum of the expected bytes: nothing lost, duplicated, reordered or corrupted.
#include "vm_fixture.hpp"

#include <thread>

using namespace ivmc;
using namespace ivmc::vmtest;

namespace {

const std::uint64_t kHostBytes = stream_bytes();
const std::uint64_t kGuestBytes = stream_bytes();

std::string bytes_arg(std::uint64_t n) {
  return std::to_string(n);
}

double mb_per_s(std::uint64_t bytes, Nanos ns) {
  return ns > 0 ? static_cast<double>(bytes) / 1e6 / (static_cast<double>(ns) / 1e9) : 0.0;
}

// A host process (this one) and one guest over a channel the host creates at offset 0; the
// host runs `host_side` once the guest attached. Returns the host's and the guest's reports.
template <class HostSide>
std::pair<posix::Report, posix::ReportFields>
host_and_guest(const std::string& tag, NotifyPolicy policy, bool interrupts,
               std::vector<std::string> guest_args, HostSide host_side) {
  Host host(tag);
  auto platform = kvm::HostPlatform::connect(host.socket(), 5 * kSecond, kVectors);
  auto ep = platform->create_channel(endpoint(policy));
  guest_args.insert(guest_args.end(), {"--role", "attach", "--offset", "0"});
  auto guest = launch(&host, {tag, guest_args, interrupts, {}});
  wait_for_guest(*ep, *guest);
  const posix::Report mine = host_side(ep->channel());
  const kvm::GuestOutcome out = guest->wait();
  INFO("host side: " << mine.line());
  return {mine, result_of(out)};
}

// Two guests on one host: `a` creates the channel at offset 0, `b` attaches.
std::pair<posix::ReportFields, posix::ReportFields> two_guests(const std::string& tag,
                                                               std::vector<std::string> a_args,
                                                               std::vector<std::string> b_args,
                                                               bool interrupts) {
  Host host(tag);
  a_args.insert(a_args.end(), {"--role", "create", "--offset", "0"});
  b_args.insert(b_args.end(), {"--role", "attach", "--offset", "0"});
  auto a = launch(&host, {tag + "-a", a_args, interrupts, {}});
  auto b = launch(&host, {tag + "-b", b_args, interrupts, {}});
  const kvm::GuestOutcome out_a = a->wait();
  const kvm::GuestOutcome out_b = b->wait();
  INFO("guest a: " << out_a.describe());
  INFO("guest b: " << out_b.describe());
  return {result_of(out_a), result_of(out_b)};
}

void check_stream(const posix::ReportFields& sender, const posix::ReportFields& receiver,
                  std::uint64_t bytes) {
  CHECK(sender.at("ok") == "1");
  CHECK(receiver.at("ok") == "1");
  CHECK(sender.at("bytes") == std::to_string(bytes));
  CHECK(receiver.at("bytes") == std::to_string(bytes));
  CHECK(sender.at("checksum") == hex16(posix::expected_checksum(bytes)));
  CHECK(receiver.at("checksum") == hex16(posix::expected_checksum(bytes)));
  CHECK(sender.at("messages") == receiver.at("messages"));
}

posix::ReportFields fields(const posix::Report& r) {
  auto f = posix::parse_report(r.line());
  REQUIRE(f.has_value());
  return *f;
}

} // namespace

TEST_CASE("a host process streams to a guest through ivshmem (polling)", "[vm][host]") {
  INFO("accel " << to_string(accel()));
  posix::WorkloadOptions w;
  w.bytes = kHostBytes;
  auto [host, guest] =
      host_and_guest("h2g", NotifyPolicy::polling, false,
                     {"recv", "--bytes", bytes_arg(kHostBytes), "--policy", "polling"},
                     [&](Channel& ch) { return posix::stream_send(ch, w); });
  INFO(host.line());
  check_stream(fields(host), guest, kHostBytes);
  figure("host->guest polling stream (receiver)", mb_per_s(kHostBytes, std::stoll(guest.at("ns"))),
         "MB/s");
}

TEST_CASE("a guest streams to a host process through ivshmem (polling)", "[vm][host]") {
  posix::WorkloadOptions w;
  w.bytes = kHostBytes;
  auto [host, guest] = host_and_guest(
      "g2h", NotifyPolicy::polling, false,
      {"send", "--bytes", bytes_arg(kHostBytes), "--message", "4096", "--policy", "polling"},
      [&](Channel& ch) { return posix::stream_recv(ch, w); });
  INFO(host.line());
  check_stream(guest, fields(host), kHostBytes);
  figure("guest->host polling stream (receiver)", mb_per_s(kHostBytes, host.elapsed), "MB/s");
}

TEST_CASE("a host process and a guest ping-pong through ivshmem (polling)", "[vm][host]") {
  posix::WorkloadOptions w;
  w.count = 2000;
  w.message = 64;
  auto [host, guest] =
      host_and_guest("pp", NotifyPolicy::polling, false, {"echo", "--policy", "polling"},
                     [&](Channel& ch) { return posix::ping(ch, w); });
  INFO(host.line());
  CHECK(host.ok);
  CHECK(host.messages == w.count);
  CHECK(guest.at("messages") == std::to_string(w.count));
  figure("host<->guest polling 64 B round trip p50", host.rtt_p50 / 1e3, "us");
  figure("host<->guest polling 64 B round trip p99", host.rtt_p99 / 1e3, "us");
}

TEST_CASE("two guests stream through ivshmem (polling)", "[vm][guests]") {
  auto [a, b] = two_guests(
      "g2g",
      {"send", "--bytes", bytes_arg(kGuestBytes), "--message", "4096", "--policy", "polling"},
      {"recv", "--bytes", bytes_arg(kGuestBytes)}, false);
  check_stream(a, b, kGuestBytes);
  figure("guest->guest polling stream (receiver)", mb_per_s(kGuestBytes, std::stoll(b.at("ns"))),
         "MB/s");
}

TEST_CASE("two guests ping-pong through ivshmem (polling)", "[vm][guests]") {
  auto [a, b] =
      two_guests("g2g-pp", {"ping", "--count", "2000", "--message", "64", "--policy", "polling"},
                 {"echo"}, false);
  CHECK(a.at("ok") == "1");
  CHECK(b.at("messages") == "2000");
  figure("guest<->guest polling 64 B round trip p50", std::stoll(a.at("rtt_p50_ns")) / 1e3, "us");
  figure("guest<->guest polling 64 B round trip p99", std::stoll(a.at("rtt_p99_ns")) / 1e3, "us");
}

// Interrupt-driven: the channel's creator picks on_demand, so every receiver with nothing to
// read and every sender facing a full ring sleeps until the peer rings. Guests sleep on MSI-X
// vectors tied to eventfds through VFIO; the host process on its ivshmem eventfds.

TEST_CASE("two guests stream through ivshmem, interrupt-driven (VFIO MSI-X)", "[vm][guests][irq]") {
  auto [a, b] = two_guests(
      "g2g-irq",
      {"send", "--bytes", bytes_arg(kGuestBytes), "--message", "4096", "--policy", "on_demand"},
      {"recv", "--bytes", bytes_arg(kGuestBytes)}, true);
  check_stream(a, b, kGuestBytes);
  // Sleeps were ended by doorbells, not wait timeouts: the receiver's (woken by data rings) or
  // the sender's (woken by space rings), whichever side was faster this run; the ping-pong
  // test below needs both directions every time.
  CHECK(std::stoull(a.at("wakeups")) + std::stoull(b.at("wakeups")) > 0);
  figure("guest->guest on_demand (VFIO) stream (receiver)",
         mb_per_s(kGuestBytes, std::stoll(b.at("ns"))), "MB/s");
}

TEST_CASE("two guests ping-pong through ivshmem, interrupt-driven (VFIO MSI-X)",
          "[vm][guests][irq]") {
  auto [a, b] = two_guests("g2g-irq-pp",
                           {"ping", "--count", "300", "--message", "64", "--policy", "on_demand"},
                           {"echo"}, true);
  CHECK(a.at("ok") == "1");
  CHECK(b.at("messages") == "300");
  CHECK(std::stoull(a.at("wakeups")) > 0);
  CHECK(std::stoull(b.at("wakeups")) > 0);
  figure("guest<->guest on_demand (VFIO) 64 B round trip p50", std::stoll(a.at("rtt_p50_ns")) / 1e3,
         "us");
  figure("guest<->guest on_demand (VFIO) 64 B round trip p99", std::stoll(a.at("rtt_p99_ns")) / 1e3,
         "us");
}

TEST_CASE("a host process streams to a guest, interrupt-driven (VFIO MSI-X)", "[vm][host][irq]") {
  posix::WorkloadOptions w;
  w.bytes = kHostBytes;
  auto [host, guest] = host_and_guest("h2g-irq", NotifyPolicy::on_demand, true,
                                      {"recv", "--bytes", bytes_arg(kHostBytes)},
                                      [&](Channel& ch) { return posix::stream_send(ch, w); });
  INFO(host.line());
  check_stream(fields(host), guest, kHostBytes);
  // Which side sleeps depends on which is faster this run: a slow TCG guest keeps the ring full
  // (the host sleeps for space and the guest's BAR0 rings wake it), a fast one drains it (the
  // guest sleeps and the host's eventfd writes reach it through MSI-X). Either way doorbells
  // ended sleeps; the ping-pong test below checks both directions every time.
  CHECK(std::stoull(guest.at("wakeups")) + host.stats.wakeups > 0);
  figure("host->guest on_demand (VFIO) stream (receiver)",
         mb_per_s(kHostBytes, std::stoll(guest.at("ns"))), "MB/s");
}

TEST_CASE("a host process and a guest ping-pong, interrupt-driven (VFIO MSI-X)",
          "[vm][host][irq]") {
  posix::WorkloadOptions w;
  w.count = 300;
  w.message = 64;
  // Each round trip after a pause: the guest has gone to sleep, and only the host's ring (an
  // MSI-X interrupt through VFIO) wakes it in time. Without pauses a guest slowed by a loaded
  // machine finds each ping already there and never sleeps (wakeups 0, no interrupt tested).
  w.think = 2'000'000;
  auto [host, guest] = host_and_guest("pp-irq", NotifyPolicy::on_demand, true, {"echo"},
                                      [&](Channel& ch) { return posix::ping(ch, w); });
  INFO(host.line());
  CHECK(host.ok);
  CHECK(guest.at("messages") == std::to_string(w.count));
  CHECK(host.stats.wakeups > 0); // the guest's BAR0 rings reached the host
  CHECK(std::stoull(guest.at("sleeps")) > 0);
  CHECK(std::stoull(guest.at("wakeups")) > 0); // and the host's reached the guest
  figure("host<->guest on_demand (VFIO) 64 B round trip p50", host.rtt_p50 / 1e3, "us");
  figure("host<->guest on_demand (VFIO) 64 B round trip p99", host.rtt_p99 / 1e3, "us");
}

// The guests' remote path, for comparison: the same workloads over TCP between two guests whose
// virtio-net NICs are joined by a QEMU UDP socket (no ivshmem device).
namespace {

std::pair<posix::ReportFields, posix::ReportFields>
two_guests_tcp(const std::string& tag, std::vector<std::string> a_args,
               std::vector<std::string> b_args) {
  const std::uint16_t port_a = kvm::free_udp_port(), port_b = kvm::free_udp_port();
  REQUIRE(port_a != port_b);
  a_args.insert(a_args.end(), {"--tcp-listen", "10.0.0.1:5000"});
  b_args.insert(b_args.end(), {"--tcp-connect", "10.0.0.1:5000"});
  auto a =
      launch(nullptr, {tag + "-a", a_args, false, kvm::GuestNic{port_a, port_b, "10.0.0.1/24", 1}});
  auto b =
      launch(nullptr, {tag + "-b", b_args, false, kvm::GuestNic{port_b, port_a, "10.0.0.2/24", 2}});
  const kvm::GuestOutcome out_a = a->wait();
  const kvm::GuestOutcome out_b = b->wait();
  INFO("guest a: " << out_a.describe());
  INFO("guest b: " << out_b.describe());
  return {result_of(out_a), result_of(out_b)};
}

} // namespace

TEST_CASE("two guests stream over their TCP path (virtio-net)", "[vm][guests][tcp]") {
  auto [a, b] = two_guests_tcp("g2g-tcp", {"recv", "--bytes", bytes_arg(kGuestBytes)},
                               {"send", "--bytes", bytes_arg(kGuestBytes), "--message", "4096"});
  check_stream(b, a, kGuestBytes);
  figure("guest->guest TCP stream (receiver)", mb_per_s(kGuestBytes, std::stoll(a.at("ns"))),
         "MB/s");
}

TEST_CASE("two guests ping-pong over their TCP path (virtio-net)", "[vm][guests][tcp]") {
  auto [a, b] = two_guests_tcp("g2g-tcp-pp", {"echo", "--count", "300"},
                               {"ping", "--count", "300", "--message", "64"});
  CHECK(a.at("messages") == "300");
  CHECK(b.at("ok") == "1");
  figure("guest<->guest TCP 64 B round trip p50", std::stoll(b.at("rtt_p50_ns")) / 1e3, "us");
  figure("guest<->guest TCP 64 B round trip p99", std::stoll(b.at("rtt_p99_ns")) / 1e3, "us");
}
