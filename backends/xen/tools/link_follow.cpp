// See link_follow.hpp.
#include "link_follow.hpp"

#include "ivmc/core/race_ledger.hpp"
#include "ivmc/posix/clock.hpp"
#include "ivmc/posix/link_stream.hpp"
#include "ivmc/posix/tcp_path.hpp"
#include "ivmc/xen/offer_record.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ivmc::xen {
namespace {

using posix::MonotonicClock;
using posix::Report;

// XenStore reads are round trips through xenstored in dom0: under TCG on a loaded machine
// each took tens of ms, so reading the view before every send starved the stream. The sender
// reads when its watch fires (a change of its view or stop key, and the re-registration
// after a restore, which xenstored fires once like any new watch), and every kPollEvery
// anyway in case an event was missed.
constexpr Nanos kPollEvery = 1'000'000'000;
constexpr Nanos kPollFallback = 100'000'000;
constexpr Nanos kSendSlice = 20'000'000; // a ring send re-checks for a restore this often

std::string data_key(std::uint32_t domid, const char* leaf) {
  return "/local/domain/" + std::to_string(domid) + "/data/" + leaf;
}

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

std::string instance_name(std::uint64_t epoch) {
  return "l" + std::to_string(epoch);
}

// The ring as the sender's local path, until a restore broke it: then it fails every send at
// once and counts as broken, while its frames not yet consumed can still be read back (they are
// in this domain's own pages, which a restore keeps).
class RestorablePath final : public FramePath {
public:
  RestorablePath(Channel& channel, std::function<bool()> restored)
      : inner_(channel), restored_(std::move(restored)) {}
  Errc send(std::span<const std::byte> head, std::span<const std::byte> body,
            Nanos timeout) override {
    const Nanos deadline = MonotonicClock::read() + timeout;
    for (;;) {
      if (dead_) return Errc::peer_dead;
      const Nanos left = deadline - MonotonicClock::read();
      const Errc e = inner_.send(head, body, std::max<Nanos>(0, std::min(left, kSendSlice)));
      if (e != Errc::timed_out && e != Errc::would_block) return e;
      if (restored_())
        dead_ = true;
      else if (MonotonicClock::read() >= deadline)
        return e;
    }
  }
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos timeout) override {
    return inner_.recv(head, body, length, timeout);
  }
  std::size_t max_frame() const override { return inner_.max_frame(); }
  bool broken() const override { return dead_ || inner_.broken(); }
  Errc read_back_unconsumed(const std::function<bool(std::span<const std::byte>)>& visit) override {
    return inner_.read_back_unconsumed(visit);
  }
  void kill() { dead_ = true; }
  bool killed() const { return dead_; }

private:
  ChannelPath inner_;
  std::function<bool()> restored_;
  bool dead_ = false;
};

std::optional<ChangeKind> parse_move(const std::optional<std::string>& text) {
  if (text == "migration_in") return ChangeKind::migration_in;
  if (text == "migration_out") return ChangeKind::migration_out;
  return std::nullopt;
}

} // namespace

std::string view_key(std::uint32_t domid) {
  return data_key(domid, "ivmc-view");
}
std::string move_key(std::uint32_t domid) {
  return data_key(domid, "ivmc-move");
}
std::string stop_key(std::uint32_t domid) {
  return data_key(domid, "ivmc-stop");
}

Report link_send_follow(XenPlatform& platform, const FollowJob& job, Nanos timeout) {
  posix::TcpPath remote = posix::TcpPath::connect(job.address, job.port, timeout);
  std::unique_ptr<XenEndpoint> endpoint;
  std::unique_ptr<RestorablePath> local;
  std::uint64_t counter = 0, epoch = 0, version = 0;
  std::uint64_t restores = 0, sends_in_window = 0, abandoned = 0;
  std::optional<FollowView> view;
  std::string view_text;
  bool stop = false;
  bool restored_pending = false;    // seen by refresh(), not yet acted on by the link
  std::optional<ChangeKind> window; // set from a restore until dom0's first view after it
  Nanos checked_at = -1;
  std::string domains = std::to_string(platform.domid());
  RaceLedger ledger;

  // A connection of its own for the watch (xen_platform: reads on a connection holding a
  // watch failed with EINVAL in the static agent), on this domain's view and stop keys. After
  // a restore the kernel registers the watches again, and xenstored fires a watch once when
  // it is registered: that event makes the sender read its domid; the watches then move to
  // the new domain's keys. Without a watch (registration failed) it reads every kPollFallback.
  std::unique_ptr<XenStore> watcher;
  std::uint32_t watched = 0;
  auto watch_own_keys = [&] {
    const std::uint32_t self = platform.domid();
    try {
      if (!watcher) watcher = std::make_unique<XenStore>();
      if (watched != 0) {
        watcher->unwatch(view_key(watched), "view");
        watcher->unwatch(stop_key(watched), "stop");
      }
      watcher->watch(view_key(self), "view");
      watcher->watch(stop_key(self), "stop");
      watched = self;
    } catch (const std::exception& e) {
      say(std::string("IVMC-WARN no XenStore watch, polling instead: ") + e.what());
      watcher.reset();
      watched = 0;
    }
  };
  auto watch_fired = [&] {
    if (!watcher) return false;
    bool any = false;
    try {
      while (watcher->next_event()) any = true;
    } catch (const std::exception&) {
      any = true; // trouble with the watch: read everything now
    }
    return any;
  };
  // The domain id, the view and the stop flag when the watch fired, and every kPollEvery.
  // True when a restore was noticed now.
  auto refresh = [&](bool force) {
    const Nanos now = MonotonicClock::read();
    const bool fired = watch_fired();
    const Nanos every = watcher ? kPollEvery : kPollFallback;
    if (!force && !fired && checked_at >= 0 && now - checked_at < every) return false;
    checked_at = now;
    bool restored = false;
    try {
      restored = platform.refresh_domid();
    } catch (const std::exception& e) {
      say(std::string("IVMC-WARN reading this domain's id: ") + e.what());
    }
    const std::uint32_t self = platform.domid();
    if (restored) {
      ++restores;
      restored_pending = true;
      domains += "," + std::to_string(self);
      window = parse_move(platform.store().read(move_key(self), 32));
      if (!window) window = ChangeKind::migration_out; // dom0 always says; a missing key: unknown
      say("IVMC-LINK restored as domain " + std::to_string(self));
      watch_own_keys();
    }
    const std::string text = platform.store().read(view_key(self), 512).value_or("");
    if (text != view_text) {
      view_text = text;
      view = parse_follow_view(text);
      if (!text.empty() && !view) say("IVMC-WARN view '" + text.substr(0, 64) + "' is not valid");
      if (view) window.reset(); // dom0 wrote this domain's view since it was restored
      ++version;
      say("IVMC-INFO view " + text);
    }
    stop = stop || platform.store().read(stop_key(self), 16).has_value();
    return restored;
  };
  auto peer_domain = [&]() -> std::optional<std::uint32_t> {
    if (!view) return std::nullopt;
    const auto it = view->peers.find(job.peer_name);
    if (it == view->peers.end()) return std::nullopt;
    return it->second;
  };

  LinkEnvironment env;
  env.remote = &remote;
  env.open_local = [&](Nanos) -> LocalPath {
    if (!endpoint) {
      const auto peer = peer_domain();
      if (!peer) return {};
      epoch = (std::uint64_t{platform.domid()} << 32) | ++counter;
      XenEndpointOptions o = job.ring;
      o.name = instance_name(epoch);
      try {
        endpoint = platform.offer(*peer, o);
      } catch (const std::exception& e) {
        say(std::string("IVMC-WARN offering a ring: ") + e.what());
        return {};
      }
      local = std::make_unique<RestorablePath>(endpoint->channel(), [&] { return refresh(false); });
    }
    return {local.get(), epoch};
  };
  env.release_local = [&] {
    // A restore the link has not noticed yet (a ring send failed first) must not reach the
    // endpoint's destructor: the ring's grants and event channels went with the old domain, and
    // unbinding a port the restored kernel no longer maps hits the evtchn driver's BUG_ON (a
    // domU oops in evtchn_ioctl, IOCTL_EVTCHN_UNBIND, once in a fresh-clone CI run).
    if (local && !local->killed()) {
      refresh(true);
      if (platform.domid() != static_cast<std::uint32_t>(epoch >> 32)) local->kill();
    }
    if (local && local->killed()) {
      // Its grants and event channels died with the old domain: nothing to close or unmap.
      local.reset();
      platform.abandon(std::move(endpoint));
      ++abandoned;
      ++version; // this domain follows a new view now (the link may come back to a ring)
      return;
    }
    if (endpoint) endpoint->channel().close(timeout); // the receiver drains it first
    local.reset();
    endpoint.reset();
  };
  env.believes_co_resident = [&] {
    refresh(false);
    if (restored_pending) {
      restored_pending = false;
      if (local) local->kill();
      if (local) return false; // leave the dead instance first; the view decides next time
    }
    return peer_domain().has_value();
  };
  env.view_version = [&] { return version; };
  env.probe_co_resident = [&] {
    refresh(true);
    return peer_domain().has_value();
  };
  env.on_operation = [&](LinkOperation op, Errc outcome, std::uint64_t bytes) {
    ledger.record(op, window, outcome, bytes);
  };
  LinkConfig config;
  config.race = job.race;
  config.resend_unconsumed = true;      // a restored sender's ring copy is one nobody reads
  config.stale_timeout = 5'000'000'000; // a TCG vCPU descheduled is not a reason to leave
  config.establish_timeout = 5'000'000'000;
  LinkSender sender(env, config, platform.clock());
  watch_own_keys();
  refresh(true);
  const std::string progress = data_key(platform.domid(), "ivmc-progress");
  platform.store().write(progress, "0"); // dom0 starts its clock at this
  say("IVMC-INFO link-follow started domid=" + std::to_string(platform.domid()));
  const Nanos start = MonotonicClock::read();
  Report r = posix::send_link_stream(sender, UINT64_MAX / 2, job.message, timeout,
                                     [&](std::uint64_t bytes, std::uint64_t& limit) {
                                       if (window) ++sends_in_window;
                                       if (stop) limit = std::min(limit, bytes);
                                     });
  if (r.error.empty()) {
    if (const Errc e = sender.finish(timeout); e != Errc::ok)
      r.error = "link finish: " + std::string(to_string(e));
  }
  if (r.error.empty() && endpoint) {
    if (const Errc e = endpoint->channel().close(timeout); e != Errc::ok)
      r.error = "closing the ring: " + std::string(to_string(e));
  }
  r.elapsed = MonotonicClock::read() - start;
  r.ok = r.error.empty();
  r.paths.channels_opened = counter;
  r.extra = posix::link_counters(sender.stats()) + " restores=" + std::to_string(restores) +
            " abandoned=" + std::to_string(abandoned) + " domains=" + domains +
            " views=" + std::to_string(version) +
            " sends_in_window=" + std::to_string(sends_in_window) +
            " race_outside=" + std::to_string(ledger.outside()) +
            " probes=" + std::to_string(sender.stats().probes);
  for (int op = 0; op < 3; ++op) {
    for (int k = 0; k < 4; ++k) {
      const RaceCell& c = ledger.cell(static_cast<LinkOperation>(op), static_cast<ChangeKind>(k));
      const std::string key = " race_" + std::to_string(op) + "_" + std::to_string(k) + "_";
      r.extra +=
          key + "ops=" + std::to_string(c.operations) + key + "errors=" + std::to_string(c.errors) +
          key + "deferred=" + std::to_string(c.deferred) + key + "bytes=" + std::to_string(c.bytes);
    }
  }
  return r;
}

Report link_recv_follow(XenPlatform& platform, const FollowJob& job, Nanos timeout) {
  posix::TcpListener listener(job.address, job.port);
  posix::TcpPath remote = listener.accept(timeout);
  posix::ReceiverInstances<XenEndpoint> instances([&](std::uint64_t epoch, Nanos wait) {
    const auto offerer = static_cast<std::uint32_t>(epoch >> 32);
    if (offerer == 0 || offerer > kMaxDomainId)
      throw std::runtime_error("epoch names no domain"); // the sender's word: not trusted
    // dom0's view of this domain must list the peer VM with that id (the trust list).
    const auto view =
        parse_follow_view(platform.store().read(view_key(platform.domid()), 512).value_or(""));
    const bool listed =
        view && view->peers.count(job.peer_name) != 0 && view->peers.at(job.peer_name) == offerer;
    if (!listed) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      throw std::runtime_error("not in this domain's view yet");
    }
    XenEndpointOptions o = job.ring;
    o.name = instance_name(epoch);
    return platform.map(offerer, o, std::max<Nanos>(wait, 50'000'000));
  });
  LinkEnvironment env;
  env.remote = &remote;
  instances.install(env);
  LinkReceiver receiver(env, platform.clock());
  std::vector<posix::PathChange> changes;
  Report r = posix::receive_link_stream(receiver, timeout, &changes);
  r.paths.channels_opened = instances.opened();
  std::string path_changes;
  for (const auto& c : changes)
    path_changes += (path_changes.empty() ? "" : ",") + std::string(to_string(c.to)) + "@" +
                    std::to_string(c.bytes);
  r.extra += " changes=" + (path_changes.empty() ? std::string("none") : path_changes);
  return r;
}

} // namespace ivmc::xen
