// A checked stream over a link across live migration: see include/ivmc/kvm/ivshmem_link_stream.hpp.
// No fmt here: the statically linked guest agent uses this file.
#include "ivmc/kvm/ivshmem_link_stream.hpp"

#include "ivmc/core/race_ledger.hpp"
#include "ivmc/posix/clock.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>

namespace ivmc::kvm {

using posix::link_counters;
using posix::MonotonicClock;
using posix::PathChange;
using posix::receive_link_stream;
using posix::ReceiverInstances;
using posix::Report;
using posix::ResumablePath;
using posix::send_link_stream;
using posix::TcpListener;
using posix::TcpPath;

std::size_t LinkSlots::offset(std::uint64_t epoch) const {
  if (epoch == 0 || count == 0) throw std::invalid_argument("link slots: no slot for epoch 0");
  return first_offset + ((epoch - 1) % count) * slot_bytes;
}

Report link_send(IvshmemPlatform& platform, const LinkSendOptions& o) {
  Report r;
  const SharedRegion region = platform.region();
  if (o.host_word % 8 != 0 || o.host_word + 8 > region.size)
    throw std::invalid_argument("--host-word is not an aligned offset inside BAR2");
  if (o.slots.offset(o.slots.count) + o.slots.slot_bytes > o.host_word)
    throw std::invalid_argument("the channel slots overlap the host word");
  auto* word = reinterpret_cast<std::uint64_t*>(region.base + o.host_word);
  std::optional<ViewPageReader> page;
  view_page::View view; // the latest snapshot of the page's entry (with a view page)
  if (o.view) {
    if (o.view->page % view_page::kPageBytes != 0 ||
        o.view->page + view_page::kPageBytes > region.size ||
        o.slots.offset(o.slots.count) + o.slots.slot_bytes > o.view->page)
      throw std::invalid_argument("--view-page is not a free page inside BAR2");
    if (o.view->peer == 0 || o.view->peer > view_page::kMaxVms)
      throw std::invalid_argument("--peer-vm is not in 1..15");
    page.emplace(region.base + o.view->page, o.view->self);
  }
  // With a view page the view is the page's entry; else the host word (relaxed: the word is a
  // hint from the host's membership source; nothing is read through it).
  auto host_now = [&]() -> std::uint64_t {
    if (page) return (view = page->read()).host;
    return std::atomic_ref(*word).load(std::memory_order_relaxed);
  };

  ResumablePath remote(
      ResumablePath::Role::sender,
      [&](Nanos t) { return TcpPath::try_connect(o.remote_address, o.remote_port, t); }, o.remote);
  std::unique_ptr<IvshmemEndpoint> endpoint;
  std::unique_ptr<ChannelPath> local;
  std::uint64_t epoch = 0, version = 0;
  if (page) {
    std::printf("IVMC-INFO link waiting for the start flag\n");
    std::fflush(stdout);
    const Nanos deadline = MonotonicClock::read() + o.timeout;
    while (!page->started()) {
      if (MonotonicClock::read() > deadline)
        throw std::runtime_error("the host never set the view page's start flag");
      ::usleep(1000);
    }
  }
  std::uint64_t host = host_now();
  std::string hosts = std::to_string(host);

  RaceLedger ledger;
  std::uint64_t sends_in_window = 0;
  LinkEnvironment env;
  env.remote = &remote;
  env.open_local = [&](Nanos) -> LocalPath {
    if (!endpoint) {
      EndpointOptions e = o.endpoint;
      e.offset = o.slots.offset(++epoch);
      endpoint = platform.create_channel(e);
      local = std::make_unique<ChannelPath>(endpoint->channel());
    }
    return {local.get(), epoch};
  };
  // The instance is given up at once: after a move its region is a copy nobody else reads,
  // and frames it may not have delivered were re-sent remote (LinkConfig::resend_unconsumed).
  env.release_local = [&] {
    local.reset();
    endpoint.reset();
  };
  if (page) {
    const VmId peer = o.view->peer;
    env.believes_co_resident = [&, peer] { return (view = page->read()).believes(peer); };
    env.view_version = [&] { return view.version; };
    env.probe_co_resident = [&, peer] { return (view = page->read()).co_resident(peer); };
    // Table IV: each operation in the race window the host's RaceWindows says is open now.
    env.on_operation = [&, peer](LinkOperation op, Errc outcome, std::uint64_t bytes) {
      ledger.record(op, (view = page->read()).race_with(peer), outcome, bytes);
    };
  } else {
    env.believes_co_resident = [&] { return host == o.peer_host; };
    env.view_version = [&] { return version; };
    env.probe_co_resident = [&] { return host_now() == o.peer_host; };
  }
  LinkConfig config = o.link;
  config.resend_unconsumed = true;
  LinkSender sender(env, config, platform.clock());

  std::printf("IVMC-INFO link started peer_id=%u host=%llu\n", platform.id(),
              static_cast<unsigned long long>(host));
  std::fflush(stdout);
  unsigned moves = 0;
  const Nanos start = MonotonicClock::read();
  r = send_link_stream(sender, o.max_bytes, o.message, o.timeout,
                       [&](std::uint64_t bytes, std::uint64_t& limit) {
                         const std::uint64_t now_host = host_now();
                         if (page) {
                           if (page->stopped()) limit = std::min(limit, bytes);
                           if (view.race_with(o.view->peer)) ++sends_in_window;
                         }
                         if (now_host == host) return;
                         // The membership source says this guest is on another host now: the
                         // view changes, and the remote connection stayed behind with the old
                         // QEMU.
                         std::printf("IVMC-LINK host %llu -> %llu after %llu bytes\n",
                                     static_cast<unsigned long long>(host),
                                     static_cast<unsigned long long>(now_host),
                                     static_cast<unsigned long long>(bytes));
                         std::fflush(stdout);
                         host = now_host;
                         hosts += "," + std::to_string(host);
                         ++version;
                         remote.request_reconnect();
                         if (++moves == o.moves) limit = std::min(limit, bytes + o.after);
                       });
  r.mode = "link-send";
  if (!r.error.empty()) r.error += " " + remote.last_error();
  // Nothing may be lost at the end either: the remote path is acknowledged, the channel drains.
  // The remote path is flushed before the finish frame too: frames sent remote before a move
  // back may have been acknowledged only on the connection the move left behind, and the
  // receiver answers a reconnection (its HELLO carries what it delivered) only until it has
  // read the finish frame and exited.
  auto flush_remote = [&] {
    if (!r.error.empty()) return;
    if (const Errc e = remote.flush(o.timeout); e != Errc::ok)
      r.error =
          "remote path not acknowledged: " + std::string(to_string(e)) + " " + remote.last_error();
  };
  flush_remote();
  if (r.error.empty()) {
    if (const Errc e = sender.finish(o.timeout); e != Errc::ok)
      r.error = "link finish: " + std::string(to_string(e));
  }
  if (r.error.empty() && endpoint) {
    if (const Errc e = endpoint->channel().close(o.timeout); e != Errc::ok)
      r.error = "closing the channel: " + std::string(to_string(e));
  }
  flush_remote(); // the finish frame itself, when it went remote
  r.elapsed = MonotonicClock::read() - start;
  r.paths.channels_opened = epoch; // one instance per epoch, each created here
  r.extra = link_counters(sender.stats()) + " moves=" + std::to_string(moves) + " hosts=" + hosts +
            " connections=" + std::to_string(remote.stats().connections) +
            " remote_resent=" + std::to_string(remote.stats().resent) +
            " probes=" + std::to_string(sender.stats().probes);
  if (page) {
    r.extra += " sends_in_window=" + std::to_string(sends_in_window) +
               " race_outside=" + std::to_string(ledger.outside());
    for (int op = 0; op < 3; ++op) {
      for (int k = 0; k < 4; ++k) {
        const RaceCell& c = ledger.cell(static_cast<LinkOperation>(op), static_cast<ChangeKind>(k));
        const std::string key = " race_" + std::to_string(op) + "_" + std::to_string(k) + "_";
        r.extra += key + "ops=" + std::to_string(c.operations) + key +
                   "errors=" + std::to_string(c.errors) + key +
                   "deferred=" + std::to_string(c.deferred) + key +
                   "bytes=" + std::to_string(c.bytes);
      }
    }
  }
  r.ok = r.error.empty();
  return r;
}

Report link_receive(IvshmemPlatform& platform, TcpListener& listener, const LinkReceiveOptions& o,
                    std::vector<PathChange>* changes) {
  Report r;
  ResumablePath remote(
      ResumablePath::Role::receiver, [&](Nanos t) { return listener.try_accept(t); }, o.remote);
  ReceiverInstances<IvshmemEndpoint> instances([&](std::uint64_t epoch, Nanos timeout) {
    EndpointOptions e = o.endpoint;
    e.offset = o.slots.offset(epoch);
    return platform.attach_channel(e, std::max<Nanos>(timeout, 1'000'000));
  });
  LinkEnvironment env;
  env.remote = &remote;
  instances.install(env);
  LinkReceiver receiver(env, platform.clock());

  r = receive_link_stream(receiver, o.timeout, changes);
  r.paths.channels_opened = instances.opened();
  if (!r.error.empty()) r.error += "; remote: " + remote.last_error();
  r.extra += " connections=" + std::to_string(remote.stats().connections);
  return r;
}

} // namespace ivmc::kvm
