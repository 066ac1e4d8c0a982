#include "ring_experiment.hpp"

#include "bare_ring.hpp"
#include "harness.hpp"

#include "ivmc/core/channel.hpp"

#include <fmt/format.h>

#include <cstring>
#include <optional>
#include <stdexcept>

namespace ivmc::bench {
namespace {

constexpr Nanos kSetupTimeout = 5'000'000'000;
constexpr Nanos kOpTimeout = 10'000'000'000;

ChannelConfig ring_config(const BenchOptions& o, const std::string& mode) {
  ChannelConfig c;
  c.ring_bytes = o.ring_bytes;
  // zero_copy polls too: it is the polled ring used through reserve/commit and peek/release.
  c.notify.policy = mode == "block" ? NotifyPolicy::on_demand : NotifyPolicy::polling;
  c.record_crc32c = mode == "poll_crc";     // the cost of the optional per-record check
  c.liveness.peer_timeout = 10'000'000'000; // a benchmark peer may be descheduled for a while
  return c;
}

void expect_ok(Errc e, const char* what, kvm::HostEndpoint& ep) {
  if (e != Errc::ok) {
    throw std::runtime_error(
        fmt::format("{}: {} ({})", what, to_string(e), ep.channel().error_detail()));
  }
}

// The zero-copy sender's message: its prepared bytes copied once into reserved ring space (as
// send() copies them), then committed.
Errc send_in_place(Channel& ch, std::span<const std::byte> msg, Nanos timeout) {
  WritableRecord space;
  if (const Errc e = ch.reserve(msg.size(), space, timeout); e != Errc::ok) return e;
  std::memcpy(space.first.data(), msg.data(), space.first.size());
  if (!space.second.empty()) {
    std::memcpy(space.second.data(), msg.data() + space.first.size(), space.second.size());
  }
  return ch.commit();
}

// The zero-copy receiver: every byte of the next message read in place, then released.
Errc read_in_place(Channel& ch, std::size_t& length, std::uint64_t& sink, Nanos timeout) {
  ReadableRecord record;
  if (const Errc e = ch.peek(record, timeout); e != Errc::ok) return e;
  sink ^= touch_bytes(record.first.data(), record.first.size());
  if (!record.second.empty()) sink ^= touch_bytes(record.second.data(), record.second.size());
  length = record.size();
  return ch.release();
}

// The zero-copy echo: the request viewed in place is copied straight into the response's
// reserved space, then the response committed and the request released.
Errc echo_in_place(Channel& ch, Nanos timeout) {
  ReadableRecord in;
  if (const Errc e = ch.peek(in, timeout); e != Errc::ok) return e;
  WritableRecord out;
  if (const Errc e = ch.reserve(in.size(), out, timeout); e != Errc::ok) return e;
  const std::span<const std::byte> from[2] = {in.first, in.second};
  const std::span<std::byte> to[2] = {out.first, out.second};
  std::size_t fi = 0, fo = 0, ti = 0, to_off = 0; // (span, offset) on each side
  while (fi < 2 && ti < 2) {
    const std::size_t n = std::min(from[fi].size() - fo, to[ti].size() - to_off);
    if (n > 0) std::memcpy(to[ti].data() + to_off, from[fi].data() + fo, n);
    fo += n;
    to_off += n;
    if (fo == from[fi].size()) ++fi, fo = 0;
    if (to_off == to[ti].size()) ++ti, to_off = 0;
  }
  if (const Errc e = ch.commit(); e != Errc::ok) return e;
  return ch.release();
}

} // namespace

RingExperiment::RingExperiment(const BenchOptions& options, const PairCpus& cpus,
                               kvm::HostPlatform& platform, std::string socket_path)
    : options_(options), cpus_(cpus), platform_(platform), socket_path_(std::move(socket_path)) {}

kvm::EndpointOptions RingExperiment::endpoint(const std::string& mode) const {
  kvm::EndpointOptions e;
  e.channel = ring_config(options_, mode);
  return e;
}

// Runs `parent_role` on a fresh channel's creator here, `child_role` on its attacher in a
// peer process with its own connection to the server.
template <class P, class C>
void RingExperiment::run(const std::string& what, const std::string& mode, P parent_role,
                         C child_role, PairPlacement* placement) {
  auto creator = platform_.create_channel(endpoint(mode));
  run_pair(
      what, cpus_.parent, cpus_.child,
      [&] {
        const Errc e = creator->wait_for_peer(kSetupTimeout);
        if (e != Errc::ok)
          throw std::runtime_error("peer never attached: " + std::string(to_string(e)));
        parent_role(*creator);
      },
      [&] {
        auto peer_platform = kvm::HostPlatform::connect(socket_path_, kSetupTimeout);
        auto attacher = peer_platform->attach_channel(endpoint(mode), kSetupTimeout);
        child_role(*attacher);
        return 0;
      },
      10, placement);
}

Throughput RingExperiment::throughput(const std::string& mode, std::size_t size) {
  Throughput result;
  const bool in_place = mode == "zero_copy";
  run(
      "ring stream", mode,
      [&](kvm::HostEndpoint& ep) {
        std::vector<std::byte> buf(size);
        std::uint64_t messages = 0, bytes = 0, sink = 0;
        double first = 0;
        for (;;) {
          std::size_t n = 0;
          const Errc e = in_place ? read_in_place(ep.channel(), n, sink, kOpTimeout)
                                  : ep.channel().recv(buf, n, kOpTimeout);
          if (e == Errc::peer_closed) break;
          expect_ok(e, "ring recv", ep);
          if (messages++ == 0) first = now_s();
          bytes += n;
        }
        const double elapsed = now_s() - first;
        asm volatile("" ::"r"(sink)); // every byte was read
        result.gbps = static_cast<double>(bytes) / elapsed / 1e9;
        result.msgs_per_s = static_cast<double>(messages) / elapsed;
      },
      [&](kvm::HostEndpoint& ep) {
        std::vector<std::byte> msg(size, std::byte{0x5a});
        const double t0 = now_s();
        for (std::uint64_t i = 0;; ++i) {
          const Errc e = in_place ? send_in_place(ep.channel(), msg, kOpTimeout)
                                  : ep.channel().send(msg, kOpTimeout);
          if (e != Errc::ok) { // the error's name first: some (a message too large) have no detail
            child_fail(fmt::format("ring send: {} {}", to_string(e), ep.channel().error_detail()));
          }
          if ((i & 63) == 0 && now_s() - t0 > options_.seconds_per_point) break;
        }
        if (ep.channel().close(kOpTimeout) != Errc::ok) child_fail("ring close");
      },
      &result.placement);
  return result;
}

PairedRtt RingExperiment::rtt(const std::string& mode, std::size_t size) {
  LineProbe line;
  EventfdProbe efd;
  const bool poll = mode != "block", in_place = mode == "zero_copy";
  const int rounds = std::max(3, options_.repeats * 3);
  const int n = poll ? options_.rtt_iterations : std::max(200, options_.rtt_iterations / 20);
  std::optional<BareRing> bare; // created before the fork, like the probes
  if (mode == "poll" && size == BareRing::kPayload) bare.emplace(options_.ring_bytes);
  PairedRtt out;
  run(
      "ring ping-pong", mode,
      [&](kvm::HostEndpoint& ep) {
        TscTimer timer;
        std::vector<std::byte> msg(size, std::byte{1}), buf(size);
        std::uint64_t sink = 0;
        for (int r = 0; r < rounds + 1; ++r) { // round 0 warms up
          const double base = median(poll ? line.parent_round(n) : efd.parent_round(n));
          const double floor = bare ? median(bare->parent_round(n)) : 0;
          std::vector<double> samples;
          for (int i = 0; i < n; ++i) {
            const std::uint64_t t0 = TscTimer::read();
            std::size_t got = 0;
            if (in_place) {
              expect_ok(send_in_place(ep.channel(), msg, kOpTimeout), "ring reserve", ep);
              expect_ok(read_in_place(ep.channel(), got, sink, kOpTimeout), "ring peek", ep);
            } else {
              expect_ok(ep.channel().send(msg, kOpTimeout), "ring send", ep);
              expect_ok(ep.channel().recv(buf, got, kOpTimeout), "ring recv", ep);
            }
            samples.push_back(timer.to_ns(TscTimer::read() - t0));
          }
          if (r == 0) continue;
          out.ring_ns.push_back(median(samples));
          out.baseline_ns.push_back(base);
          if (bare) out.bare_ns.push_back(floor);
        }
        asm volatile("" ::"r"(sink)); // every byte was read
      },
      [&](kvm::HostEndpoint& ep) {
        std::vector<std::byte> buf(size);
        for (int r = 0; r < rounds + 1; ++r) {
          poll ? line.child_round(n) : efd.child_round(n);
          if (bare) bare->child_round(n);
          for (int i = 0; i < n; ++i) {
            std::size_t got = 0;
            const bool ok = in_place ? echo_in_place(ep.channel(), kOpTimeout) == Errc::ok
                                     : ep.channel().recv(buf, got, kOpTimeout) == Errc::ok &&
                                           ep.channel().send(std::span(buf.data(), got),
                                                             kOpTimeout) == Errc::ok;
            if (!ok) child_fail("ring ping-pong: " + ep.channel().error_detail());
          }
        }
      });
  return out;
}

} // namespace ivmc::bench
