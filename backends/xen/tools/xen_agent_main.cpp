// ivmc-xen-agent: the ivmc agent for Xen domains, in dom0 and in domUs (statically linked, so
// an initramfs needs no libraries for it).
//
//   dom0:  ivmc-xen-agent drive --peer 1 --job "stream policy=polling bytes=33554432"
//                               --job "ping policy=on_demand count=2000 message=64" --job exit
//   domU:  ivmc-xen-agent serve --peer 0
//   dom0:  ivmc-xen-agent pair --offerer 4 --mapper 5     (domU 4 streams to domU 5)
//   dom0:  ivmc-xen-agent membership --mode scan|watch    (domains appearing and going)
//
// `drive` offers one channel per job (named j0, j1, ...) to the peer domain with the job's
// text in the XenStore record, runs its own side (receiving a stream, or pinging) and prints
// one `IVMC-RESULT job=... ` line per job. `serve` maps the channels in turn and runs the other
// side (sending the stream, echoing) as the record's job says, until the job "exit". Jobs:
//   stream policy=P bytes=N message=M [kill=K|crash=K]   the domU streams N bytes to dom0
//       through the ring; with kill=K dom0 runs --kill-command after K bytes, with crash=K the
//       domU's agent exits abruptly after K bytes; dom0 then checks that the channel ends with
//       peer_dead, that what arrived is an intact prefix of the stream, and that it holds
//       everything the sender had reported sent (its progress, published in XenStore)
//   ping policy=P count=C message=M              C round trips of M bytes through the ring
//   tcp-stream bytes=N message=M / tcp-ping count=C message=M   the same over TCP through
//       the domains' network (dom0 listens on --listen-ip, port 5000 + job index)
//   relay-offer peer=D name=N policy=P bytes=B / relay-map peer=D ...   domU <-> domU: this
//       domU offers a channel named N to domU D (or maps D's) and streams through it; the
//       outcome goes back to dom0 over the job's channel (`pair` sends these)
//   relay-offer/relay-map ... work=send|recv|ping|echo message=M count=C ring=BYTES: the same
//       with any work (`plan` sends these), and net-listen/net-connect addr=IP:PORT work=...:
//       domU <-> domU over the domains' network (TCP routed by dom0)
//   exit                                         the domU's serve loop ends
//   dom0:  ivmc-xen-agent plan --plan FILE --domains FILE   (a scenario's workloads, see run_plan)
#include "ivmc/posix/clock.hpp"
#include "ivmc/posix/link_stream.hpp"
#include "ivmc/posix/tcp_path.hpp"
#include "ivmc/posix/workload.hpp"
#include "ivmc/xen/offer_record.hpp"
#include "ivmc/xen/xen_platform.hpp"
#include "ivmc/xen/xenstore_membership.hpp"
#include "link_follow.hpp"
#include "view_service.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace ivmc;
using namespace ivmc::xen;
using posix::MonotonicClock;
using posix::Report;

namespace {

constexpr Nanos kSecond = 1'000'000'000;
constexpr std::uint64_t kProgressEvery = 1u << 20; // the sender publishes its progress this often

struct Job {
  std::string kind;
  std::map<std::string, std::string> args;
  std::uint64_t number(const std::string& key, std::uint64_t fallback) const {
    const auto it = args.find(key);
    if (it == args.end()) return fallback;
    std::uint32_t value = 0;
    if (!parse_decimal(it->second, UINT32_MAX, value))
      throw std::invalid_argument("job: " + key + "=" + it->second + " is not a number");
    return value;
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    const auto it = args.find(key);
    return it == args.end() ? fallback : it->second;
  }
};

// "kind key=value ..." (already validated for characters by parse_offer on the domU side).
Job parse_job(const std::string& text) {
  Job job;
  std::istringstream in(text);
  in >> job.kind;
  std::string item;
  while (in >> item) {
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("job '" + text + "': '" + item + "' is not key=value");
    job.args[item.substr(0, eq)] = item.substr(eq + 1);
  }
  if (job.kind != "stream" && job.kind != "ping" && job.kind != "tcp-stream" &&
      job.kind != "tcp-ping" && job.kind != "relay-offer" && job.kind != "relay-map" &&
      job.kind != "net-listen" && job.kind != "net-connect" && job.kind != "link-send" &&
      job.kind != "link-recv" && job.kind != "link-send-follow" && job.kind != "link-recv-follow" &&
      job.kind != "exit")
    throw std::invalid_argument("job '" + text + "': unknown kind '" + job.kind + "'");
  return job;
}

void print(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// Where a domU that may be restored leaves a job's outcome (link-send-follow).
std::string outcome_path(std::uint32_t domid) {
  return "/local/domain/" + std::to_string(domid) + "/data/ivmc-outcome";
}

std::string progress_path(std::uint32_t domid) {
  return "/local/domain/" + std::to_string(domid) + "/data/ivmc-progress";
}

XenEndpointOptions endpoint_options(const std::string& name, const Job& job,
                                    double peer_timeout_s) {
  XenEndpointOptions o;
  o.name = name;
  o.channel.ring_bytes = static_cast<std::uint32_t>(job.number("ring", 256 * 1024));
  NotifyPolicy policy = NotifyPolicy::on_demand;
  if (!parse_notify_policy(job.text("policy", "on_demand"), policy))
    throw std::invalid_argument("job: unknown policy '" + job.text("policy", "") + "'");
  o.channel.notify.policy = policy;
  o.channel.liveness.peer_timeout = static_cast<Nanos>(peer_timeout_s * 1e9);
  return o;
}

// dom0's side of a stream whose sender dies mid-stream: with kill=K dom0 runs the kill
// command (xl destroy: the domain goes, its kernel never runs the unmap notification) after K
// bytes; with crash=K the domU's agent exits abruptly after sending K bytes (its kernel unmaps
// the pages and the notification clears its liveness byte). Either way the channel must end
// with peer_dead, what arrived must be an intact prefix of the stream, and it must hold
// everything the sender had reported sent (its XenStore progress).
Report receive_until_dead(XenPlatform& platform, XenEndpoint& ep, const Job& job,
                          const std::string& kill_command, Nanos timeout) {
  Report r;
  const bool kill = job.args.count("kill") != 0;
  r.mode = kill ? "recv-kill" : "recv-crash";
  const std::uint64_t kill_at = job.number("kill", 8u << 20);
  std::vector<std::byte> buffer(ep.channel().max_message());
  posix::StreamChecksum sum;
  std::optional<std::thread> killer;
  std::uint64_t snapshot = 0;
  Nanos killed_at = -1, kill_done = -1, last_message = -1;
  auto read_progress = [&] {
    const auto text = platform.store().read(progress_path(ep.peer()), 32);
    std::uint32_t value = 0;
    if (text && parse_decimal(*text, UINT32_MAX, value)) snapshot = value;
  };
  Errc end = Errc::ok;
  for (;;) {
    std::size_t n = 0;
    end = ep.channel().recv(buffer, n, timeout);
    if (end != Errc::ok) break;
    last_message = MonotonicClock::read();
    sum.update(std::span(buffer.data(), n));
    r.bytes += n;
    ++r.messages;
    if (kill && !killer && r.bytes >= kill_at) {
      read_progress(); // the domain's XenStore directory goes with it: read it now
      killed_at = MonotonicClock::read();
      killer.emplace([&] {
        const int status = std::system(kill_command.c_str());
        kill_done = MonotonicClock::read();
        if (status != 0) print("IVMC-WARN kill command exited with " + std::to_string(status));
      });
    }
  }
  const Nanos ended_at = MonotonicClock::read();
  if (killer) killer->join();
  if (!kill) read_progress(); // the crashed agent published its final count (its init waits)
  r.checksum = sum.value();
  r.stats = ep.channel().stats();
  r.paths = posix::ring_counters(ep.channel());
  const Nanos detect_from = kill ? killed_at : last_message;
  char extra[256];
  std::snprintf(extra, sizeof extra,
                " end=%s sent_snapshot=%" PRIu64 " detect_ms=%.1f kill_cmd_ms=%.1f prefix_ok=%d"
                " from_ns=%lld",
                std::string(to_string(end)).c_str(), snapshot,
                detect_from < 0 ? -1.0 : (ended_at - detect_from) / 1e6,
                kill_done < 0 ? -1.0 : (kill_done - killed_at) / 1e6,
                sum.value() == posix::expected_checksum(r.bytes) ? 1 : 0,
                static_cast<long long>(detect_from));
  r.extra = extra;
  if (kill && !killer)
    r.error = "the stream ended before kill=" + std::to_string(kill_at) + ": " +
              std::string(to_string(end)) + " " + ep.channel().error_detail();
  else if (end != Errc::peer_dead)
    r.error = "ended with " + std::string(to_string(end)) +
              ", expected peer_dead: " + ep.channel().error_detail();
  else if (sum.value() != posix::expected_checksum(r.bytes))
    r.error = "the bytes received are not an intact prefix of the stream";
  else if (r.bytes < snapshot)
    r.error = "lost data: the sender had sent " + std::to_string(snapshot) + " bytes, " +
              std::to_string(r.bytes) + " arrived";
  else
    r.extra += " reason=\"" + ep.peer_gone_reason() + "\"";
  r.ok = r.error.empty();
  return r;
}

int drive(std::uint32_t peer, const std::vector<std::string>& jobs, const std::string& listen_ip,
          const std::string& kill_command, double timeout_s, double peer_timeout_s) {
  auto platform = XenPlatform::open();
  print("IVMC-INFO drive domid=" + std::to_string(platform->domid()) +
        " peer=" + std::to_string(peer));
  const Nanos timeout = static_cast<Nanos>(timeout_s * 1e9);
  bool all_ok = true;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const std::string name = "j" + std::to_string(i);
    Report r;
    std::string tag = " job=" + name + " kind=";
    try {
      const Job job = parse_job(jobs[i]);
      tag += job.kind + " policy=" + job.text("policy", "-");
      XenEndpointOptions o = endpoint_options(name, job, peer_timeout_s);
      std::string wire_job = jobs[i];
      const std::uint16_t tcp_port = static_cast<std::uint16_t>(5000 + i);
      if (job.kind.rfind("tcp-", 0) == 0)
        wire_job += " addr=" + listen_ip + ":" + std::to_string(tcp_port);
      o.job = wire_job;
      std::optional<posix::TcpListener> listener;
      if (job.kind.rfind("tcp-", 0) == 0) listener.emplace(listen_ip, tcp_port);
      const Nanos t0 = MonotonicClock::read();
      auto ep = platform->offer(peer, o);
      if (const Errc e = ep->wait_for_peer(timeout); e != Errc::ok)
        throw std::runtime_error("domain " + std::to_string(peer) + " did not map " + name + ": " +
                                 std::string(to_string(e)));
      const double setup_ms = (MonotonicClock::read() - t0) / 1e6;
      posix::WorkloadOptions w;
      w.bytes = job.number("bytes", 32u << 20);
      w.message = static_cast<std::uint32_t>(job.number("message", 4096));
      w.count = job.number("count", 1000);
      w.timeout = timeout;
      if (job.kind == "exit") {
        r.mode = "exit";
        r.ok = true;
      } else if (job.kind == "stream" && (job.args.count("kill") + job.args.count("crash")) != 0) {
        r = receive_until_dead(*platform, *ep, job, kill_command, timeout);
      } else if (job.kind == "stream") {
        r = posix::stream_recv(ep->channel(), w);
      } else if (job.kind == "ping") {
        r = posix::ping(ep->channel(), w);
      } else {
        posix::TcpPath tcp = listener->accept(timeout);
        posix::FrameWorkloadPath path(tcp);
        r = job.kind == "tcp-stream" ? posix::stream_recv(path, w) : posix::ping(path, w);
      }
      if (r.mode != "recv-kill" && r.mode != "recv-crash") {
        if (job.kind == "stream" && r.ok && r.checksum != posix::expected_checksum(w.bytes)) {
          r.ok = false;
          r.error = "checksum differs from the stream's";
        }
        ep->channel().close(5 * kSecond);
      }
      char setup[64];
      std::snprintf(setup, sizeof setup, " setup_ms=%.1f", setup_ms);
      r.extra += setup;
    } catch (const std::exception& e) {
      r.ok = false;
      r.error = e.what();
    }
    r.extra = tag + r.extra;
    print(r.line());
    all_ok = all_ok && r.ok;
  }
  return all_ok ? 0 : 1;
}

// A job's peer=DOMID.
std::uint32_t job_domain(const Job& job) {
  std::uint32_t domid = 0;
  if (!parse_decimal(job.text("peer", ""), kMaxDomainId, domid))
    throw std::invalid_argument("job: peer='" + job.text("peer", "") + "' is not a domain id");
  return domid;
}

// A job's addr=ADDRESS:PORT.
std::pair<std::string, std::uint16_t> job_address(const Job& job) {
  const std::string addr = job.text("addr", "");
  const std::size_t colon = addr.rfind(':');
  std::uint32_t port = 0;
  if (colon == std::string::npos || !parse_decimal(addr.substr(colon + 1), 65535, port))
    throw std::invalid_argument("job: addr='" + addr + "' is not ADDRESS:PORT");
  return {addr.substr(0, colon), static_cast<std::uint16_t>(port)};
}

// The work a domU does with another domU (send, recv, ping or echo) over `path`, checked as
// the vm tests check it: a stream's receiver compares the stream's checksum.
Report run_work(posix::WorkloadPath& path, const std::string& work,
                const posix::WorkloadOptions& w) {
  if (work == "send") return posix::stream_send(path, w);
  if (work == "ping") return posix::ping(path, w);
  if (work == "echo") return posix::echo(path, w);
  Report r = posix::stream_recv(path, w);
  if (r.ok && r.checksum != posix::expected_checksum(w.bytes)) {
    r.ok = false;
    r.error = "checksum differs from the stream's";
  }
  return r;
}

// domU <-> domU: this domain offers a ring to another domU or maps one from it (relay-offer,
// relay-map), or reaches it over the domains' network (net-listen, net-connect: TCP through
// netfront, dom0's netback and dom0's routing), and does its part of the work there:
//   work=send|recv|ping|echo (default: the offerer and the connector send, the others
//   receive), message=M, bytes=N (streams), count=C (pings), ring=BYTES (the offerer's rings).
// dom0 learns the outcome over the control channel the job came on (serve sends it back).
Report peer_job(XenPlatform& platform, const Job& job, posix::WorkloadOptions w, Nanos timeout) {
  const bool first = job.kind == "relay-offer" || job.kind == "net-connect";
  const std::string work = job.text("work", first ? "send" : "recv");
  if (work != "send" && work != "recv" && work != "ping" && work != "echo")
    throw std::invalid_argument("job: work='" + work + "' is not send, recv, ping or echo");
  w.count = work == "ping" ? job.number("count", 1000) : 0; // echo: until the peer closes
  Report r;
  if (job.kind == "net-listen" || job.kind == "net-connect") {
    const auto [host, port] = job_address(job);
    std::optional<posix::TcpListener> listener;
    if (job.kind == "net-listen") listener.emplace(host, port);
    posix::TcpPath tcp =
        listener ? listener->accept(timeout) : posix::TcpPath::connect(host, port, timeout);
    posix::FrameWorkloadPath path(tcp, work == "send");
    r = run_work(path, work, w);
    r.extra += " path=net";
  } else {
    const std::uint32_t other = job_domain(job);
    XenEndpointOptions o = endpoint_options(job.text("name", "p0"), job, 30);
    std::unique_ptr<XenEndpoint> pair;
    if (job.kind == "relay-offer") {
      pair = platform.offer(other, o);
      if (const Errc e = pair->wait_for_peer(timeout); e != Errc::ok)
        throw std::runtime_error("domain " + std::to_string(other) +
                                 " did not map: " + std::string(to_string(e)));
    } else {
      pair = platform.map(other, o, timeout);
    }
    posix::ChannelWorkloadPath path(pair->channel());
    r = run_work(path, work, w);
    if (work == "recv" || work == "echo") pair->channel().close(5 * kSecond);
    r.extra += " pair=1 path=ring other=" + std::to_string(other);
  }
  r.extra += " policy=" + job.text("policy", "-") + " work=" + work +
             " self=" + std::to_string(platform.domid());
  return r;
}

// Where dom0 publishes a domU's view: the domain ids it may reach through a ring (XenLoop's
// discovery: dom0 advertises co-residency, the guests follow). "N id id ...": N is the view's
// version.
std::string view_path(std::uint32_t domid) {
  return "/local/domain/" + std::to_string(domid) + "/data/ivmc-view";
}

// domU -> domU over a link (core/link.hpp): the ring while dom0's view says the receiver is
// co-resident, TCP over the domains' network otherwise, switched with nothing lost, duplicated
// or reordered (the receiver checks every byte in place). Each ring instance (epoch e) is the
// channel "l<e>". The sender reads its view at most every 10 ms (a XenStore read is a
// round trip through xenstored) and publishes its progress for dom0.
Report link_send_job(XenPlatform& platform, const Job& job, Nanos timeout) {
  const std::uint32_t peer = job_domain(job);
  const auto [host, port] = job_address(job);
  posix::TcpPath remote = posix::TcpPath::connect(host, port, timeout);
  std::unique_ptr<XenEndpoint> endpoint;
  std::unique_ptr<ChannelPath> local;
  std::uint64_t epoch = 0, version = 0;
  bool co_resident = false;
  Nanos view_read_at = -1;
  std::string view_text;
  auto refresh_view = [&] {
    const Nanos now = MonotonicClock::read();
    if (view_read_at >= 0 && now - view_read_at < 10'000'000) return;
    view_read_at = now;
    const std::string text = platform.store().read(view_path(platform.domid()), 256).value_or("");
    if (text == view_text) return;
    view_text = text;
    std::istringstream words(text);
    std::string word;
    words >> word; // the version dom0 wrote
    co_resident = false;
    while (words >> word) co_resident = co_resident || word == std::to_string(peer);
    ++version;
    print("IVMC-INFO view " + text + " co_resident=" + (co_resident ? "1" : "0"));
  };
  LinkEnvironment env;
  env.remote = &remote;
  env.open_local = [&](Nanos) -> LocalPath {
    if (!endpoint) {
      // Offered, not yet mapped: the receiver maps it once the path_end frame on the remote
      // path names this epoch; until then the ring holds what is sent.
      endpoint = platform.offer(peer, endpoint_options("l" + std::to_string(++epoch), job, 30));
      local = std::make_unique<ChannelPath>(endpoint->channel());
    }
    return {local.get(), epoch};
  };
  // The teardown: the instance goes only once the receiver consumed what it holds.
  env.release_local = [&] {
    if (endpoint) endpoint->channel().close(timeout);
    local.reset();
    endpoint.reset();
  };
  env.believes_co_resident = [&] {
    refresh_view();
    return co_resident;
  };
  env.view_version = [&] { return version; };
  env.probe_co_resident = env.believes_co_resident;
  LinkConfig config;
  // A ring here breaks only when a domain goes; a slow consumer (a TCG vCPU descheduled) is
  // not a reason to fall back.
  config.stale_timeout = 5 * kSecond;
  config.establish_timeout = 5 * kSecond;
  LinkSender sender(env, config, platform.clock());
  const std::string progress = progress_path(platform.domid());
  std::uint64_t next_publish = kProgressEvery;
  // views=K after=N: once the K-th view (the first included) arrived, N more bytes and done.
  const std::uint64_t views = job.number("views", 0), after = job.number("after", 8u << 20);
  Report r = posix::send_link_stream(sender, job.number("bytes", UINT32_MAX),
                                     static_cast<std::uint32_t>(job.number("message", 4096)),
                                     timeout, [&](std::uint64_t bytes, std::uint64_t& limit) {
                                       if (views != 0 && version >= views && limit > bytes + after)
                                         limit = bytes + after;
                                       if (bytes < next_publish) return;
                                       next_publish += kProgressEvery;
                                       platform.store().write(progress, std::to_string(bytes));
                                     });
  if (r.error.empty()) {
    if (const Errc e = sender.finish(timeout); e != Errc::ok)
      r.error = "link finish: " + std::string(to_string(e));
  }
  if (r.error.empty() && endpoint) {
    if (const Errc e = endpoint->channel().close(timeout); e != Errc::ok)
      r.error = "closing the ring: " + std::string(to_string(e));
  }
  // The TCP path needs no drain: its frames are in the kernel's send buffer, delivered before
  // the FIN when the socket closes, and the receiver reports what it got.
  r.ok = r.error.empty();
  r.paths.channels_opened = epoch; // one ring instance per epoch, each offered here
  r.extra = posix::link_counters(sender.stats()) + " epochs=" + std::to_string(epoch) +
            " views=" + std::to_string(version);
  return r;
}

Report link_recv_job(XenPlatform& platform, const Job& job, Nanos timeout) {
  const std::uint32_t peer = job_domain(job);
  const auto [host, port] = job_address(job);
  posix::TcpListener listener(host, port);
  posix::TcpPath remote = listener.accept(timeout);
  posix::ReceiverInstances<XenEndpoint> instances([&](std::uint64_t epoch, Nanos wait) {
    return platform.map(peer, endpoint_options("l" + std::to_string(epoch), job, 30),
                        std::max<Nanos>(wait, 50'000'000));
  });
  LinkEnvironment env;
  env.remote = &remote;
  instances.install(env);
  LinkReceiver receiver(env, platform.clock());
  std::vector<posix::PathChange> changes;
  Report r = posix::receive_link_stream(receiver, timeout, &changes);
  r.paths.channels_opened = instances.opened();
  const std::uint64_t bytes = job.number("bytes", 0); // 0: as many as the sender sends
  if (r.ok && bytes != 0 && r.bytes != bytes) {
    r.ok = false;
    r.error = "the stream ended after " + std::to_string(r.bytes) + " of " + std::to_string(bytes) +
              " bytes";
  }
  std::string path_changes;
  for (const auto& c : changes)
    path_changes += (path_changes.empty() ? "" : ",") + std::string(to_string(c.to)) + "@" +
                    std::to_string(c.bytes);
  r.extra += " changes=" + (path_changes.empty() ? std::string("none") : path_changes);
  return r;
}

// link-send-follow / link-recv-follow: peer-name=NAME peer=DOMID addr=IP:PORT policy=P
// ring=BYTES message=M race=resolution|prevention (link_follow.hpp).
FollowJob follow_job(const Job& job) {
  FollowJob f;
  f.peer_name = job.text("peer-name", "");
  if (f.peer_name.empty() || f.peer_name.size() > 32)
    throw std::invalid_argument("job: peer-name='" + f.peer_name + "' is not a VM name");
  f.peer = job_domain(job);
  std::tie(f.address, f.port) = job_address(job);
  f.ring = endpoint_options("l0", job, 30);
  f.message = static_cast<std::uint32_t>(job.number("message", 4096));
  if (!parse_race_policy(job.text("race", "resolution"), f.race) || f.race == RacePolicy::none)
    throw std::invalid_argument("job: race='" + job.text("race", "") +
                                "' is not resolution or prevention");
  return f;
}

// The domU's side of one job.
Report serve_job(XenPlatform& platform, XenEndpoint& ep, const Job& job, Nanos timeout) {
  posix::WorkloadOptions w;
  w.bytes = job.number("bytes", 32u << 20);
  w.message = static_cast<std::uint32_t>(job.number("message", 4096));
  w.count = 0; // echo until the peer closes
  w.timeout = timeout;
  if (job.kind == "ping") return posix::echo(ep.channel(), w);
  if (job.kind == "relay-offer" || job.kind == "relay-map" || job.kind == "net-listen" ||
      job.kind == "net-connect")
    return peer_job(platform, job, w, timeout);
  if (job.kind == "link-send") return link_send_job(platform, job, timeout);
  if (job.kind == "link-recv") return link_recv_job(platform, job, timeout);
  if (job.kind == "link-send-follow") return link_send_follow(platform, follow_job(job), timeout);
  if (job.kind == "link-recv-follow") return link_recv_follow(platform, follow_job(job), timeout);
  if (job.kind == "tcp-stream" || job.kind == "tcp-ping") { // with dom0, which listens
    const auto [host, port] = job_address(job);
    posix::TcpPath tcp = posix::TcpPath::connect(host, port, timeout);
    posix::FrameWorkloadPath path(tcp, job.kind == "tcp-stream");
    return job.kind == "tcp-stream" ? posix::stream_send(path, w) : posix::echo(path, w);
  }
  // stream: send, publishing how much send() accepted (the kill test's snapshot).
  Report r;
  r.mode = "send";
  std::vector<std::byte> buffer(w.message);
  posix::StreamChecksum sum;
  const std::string progress = progress_path(platform.domid());
  const Nanos start = MonotonicClock::read();
  std::uint64_t next_publish = kProgressEvery;
  const std::uint64_t crash_at = job.number("crash", UINT32_MAX); // crash=K: die after K bytes
  while (r.bytes < w.bytes) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(w.message, w.bytes - r.bytes));
    const std::span<std::byte> m(buffer.data(), n);
    posix::fill_stream(r.bytes, m);
    if (const Errc e = ep.channel().send(m, timeout); e != Errc::ok) {
      r.error = "send: " + std::string(to_string(e)) + " " + ep.channel().error_detail();
      r.paths = posix::ring_counters(ep.channel());
      return r;
    }
    sum.update(m);
    r.bytes += n;
    ++r.messages;
    if (r.bytes >= next_publish || r.bytes >= crash_at) {
      next_publish += kProgressEvery;
      platform.store().write(progress, std::to_string(r.bytes));
    }
    if (r.bytes >= crash_at) {
      print("IVMC-INFO crashing on purpose after " + std::to_string(r.bytes) + " bytes");
      std::_Exit(3); // no destructors: the kernel unmaps the pages (unmap notification)
    }
  }
  r.checksum = sum.value();
  r.paths = posix::ring_counters(ep.channel());
  if (const Errc e = ep.channel().close(timeout); e != Errc::ok) {
    r.error = "close: " + std::string(to_string(e));
    return r;
  }
  r.elapsed = MonotonicClock::read() - start;
  r.stats = ep.channel().stats();
  r.ok = true;
  return r;
}

int serve(std::uint32_t peer, double timeout_s, double peer_timeout_s) {
  auto platform = XenPlatform::open();
  print("IVMC-INFO serve domid=" + std::to_string(platform->domid()) +
        " peer=" + std::to_string(peer));
  const Nanos timeout = static_cast<Nanos>(timeout_s * 1e9);
  bool all_ok = true;
  for (std::size_t i = 0;; ++i) {
    const std::string name = "j" + std::to_string(i);
    Report r;
    bool stop = false;
    try {
      auto ep = platform->map(peer, endpoint_options(name, Job{}, peer_timeout_s), timeout);
      const Job job = parse_job(ep->job());
      if (job.kind == "link-send-follow") {
        // This domain may be saved and restored while the job runs: no mapping of dom0's
        // pages may outlive the start (a restored domain faults on it), so the control
        // channel goes now and the outcome goes to XenStore, under whatever id the domain
        // has at the end.
        ep->channel().close(timeout);
        ep.reset();
        try {
          r = link_send_follow(*platform, follow_job(job), timeout);
        } catch (const std::exception& e) {
          r.ok = false;
          r.error = e.what();
        }
        r.extra += " job=" + name + " kind=" + job.kind;
        platform->refresh_domid();
        platform->store().write(outcome_path(platform->domid()), r.line());
        print(r.line());
        all_ok = all_ok && r.ok;
        continue;
      }
      if (job.kind == "exit") {
        stop = true;
        r.mode = "exit";
        r.ok = true;
      } else {
        r = serve_job(*platform, *ep, job, timeout);
      }
      r.extra += " job=" + name + " kind=" + job.kind;
      if (job.kind.rfind("relay-", 0) == 0 || job.kind.rfind("net-", 0) == 0 ||
          job.kind.rfind("link-", 0) == 0) {
        // dom0 waits for the outcome on the channel
        const std::string line = r.line();
        ep->channel().send(std::as_bytes(std::span(line.data(), line.size())), timeout);
        ep->channel().close(timeout);
      }
    } catch (const std::exception& e) {
      r.ok = false;
      r.error = e.what();
      stop = true; // the protocol is lost: nothing sensible follows
    }
    print(r.line());
    all_ok = all_ok && r.ok;
    if (stop) break;
  }
  return all_ok ? 0 : 1;
}

// dom0: a domU's outcome from its control channel `ep`, re-emitted field by field with dom0's
// `tags` last (a domU's line is its own report, not dom0's word: it cannot pose as another
// workload). True when the domU reported ok=1.
bool relay_outcome(XenEndpoint& ep, Nanos timeout,
                   const std::vector<std::pair<std::string, std::string>>& tags) {
  std::vector<std::byte> buffer(ep.channel().max_message());
  std::size_t n = 0;
  std::optional<posix::ReportFields> fields;
  std::string problem;
  if (const Errc e = ep.channel().recv(buffer, n, timeout); e == Errc::ok) {
    fields = posix::parse_report(std::string_view(reinterpret_cast<const char*>(buffer.data()), n));
    if (!fields) problem = "its outcome is not a report line";
  } else {
    problem = "no outcome: " + std::string(to_string(e)) + " " + ep.channel().error_detail();
  }
  ep.channel().close(5 * kSecond);
  if (!fields)
    fields = posix::ReportFields{{"ok", "0"},
                                 {"error", "domain " + std::to_string(ep.peer()) + ": " + problem}};
  for (const auto& [key, value] : tags) (*fields)[key] = value;
  std::string line = "IVMC-RESULT";
  for (const auto& [key, value] : *fields) {
    std::string v = value;
    for (char& c : v)
      if (c < 0x20 || c > 0x7e || c == '"') c = '?';
    line += " " + key + "=" + (v.find(' ') == std::string::npos ? v : "\"" + v + "\"");
  }
  print(line);
  return fields->count("ok") && fields->at("ok") == "1";
}

// dom0: offers domU `domu` the control channel `name` carrying `job` (its serve loop maps
// the channels j0, j1, ... in order).
std::unique_ptr<XenEndpoint> offer_job(XenPlatform& platform, std::uint32_t domu,
                                       const std::string& name, const std::string& job) {
  XenEndpointOptions o;
  o.name = name;
  o.job = job;
  o.channel.liveness.peer_timeout = 30 * kSecond;
  return platform.offer(domu, o);
}

// dom0: domU `offerer` streams to domU `mapper` through a channel of their own, once per
// policy; each domU's outcome comes back over its control channel and is printed.
int pair(std::uint32_t offerer, std::uint32_t mapper, const std::vector<std::string>& policies,
         std::uint64_t bytes, double timeout_s) {
  auto platform = XenPlatform::open();
  const Nanos timeout = static_cast<Nanos>(timeout_s * 1e9);
  bool all_ok = true;
  std::size_t index = 0;
  auto control = [&](std::uint32_t domu, const std::string& job) {
    return offer_job(*platform, domu, "j" + std::to_string(index), job);
  };
  for (const std::string& policy : policies) {
    const std::string args = " name=p" + std::to_string(index) + " policy=" + policy +
                             " bytes=" + std::to_string(bytes) + " message=4096";
    auto to_offerer = control(offerer, "relay-offer peer=" + std::to_string(mapper) + args);
    auto to_mapper = control(mapper, "relay-map peer=" + std::to_string(offerer) + args);
    for (auto* ep : {to_offerer.get(), to_mapper.get()})
      all_ok = relay_outcome(*ep, timeout, {{"pair", "1"}}) && all_ok;
    ++index;
  }
  for (const std::uint32_t domu : {offerer, mapper}) {
    auto ep = control(domu, "exit");
    ep->wait_for_peer(timeout);
  }
  return all_ok ? 0 : 1;
}

// dom0: domU `from` streams to domU `to` over a link (link-send/link-recv jobs) while dom0
// changes `from`'s view: co-resident at first, then not, then again, `flips` times, one
// change every `period_ms` (XenLoop's discovery advertising and withdrawing a peer). Both
// outcomes are printed with link=1 side=from|to.
int link(std::uint32_t from, std::uint32_t to, const std::string& addr, unsigned flips,
         double period_ms, const std::string& policy, double timeout_s) {
  auto platform = XenPlatform::open();
  const Nanos timeout = static_cast<Nanos>(timeout_s * 1e9);
  std::uint64_t version = 0;
  auto publish = [&](bool co_resident) {
    const std::string path = view_path(from);
    platform->store().write(path, std::to_string(++version) +
                                      (co_resident ? " " + std::to_string(to) : std::string()));
    platform->store().set_owner_and_reader(path, 0, from);
    print("IVMC-STEP view " + std::to_string(version) + " of domain " + std::to_string(from) +
          ": domain " + std::to_string(to) + (co_resident ? " co-resident" : " not co-resident"));
  };
  publish(true);
  const std::string common = " addr=" + addr + " policy=" + policy + " message=4096";
  auto to_ep = offer_job(*platform, to, "j0", "link-recv peer=" + std::to_string(from) + common);
  auto from_ep = offer_job(*platform, from, "j0",
                           "link-send peer=" + std::to_string(to) + common +
                               " views=" + std::to_string(flips + 1) +
                               " after=8388608 bytes=268435456"); // a cap, if views go missing
  // The first change only once the stream runs (the domUs map their jobs when their serve
  // loops start, seconds after `xl create` under TCG): each change must meet a live link.
  bool running =
      to_ep->wait_for_peer(timeout) == Errc::ok && from_ep->wait_for_peer(timeout) == Errc::ok;
  const Nanos deadline = MonotonicClock::read() + timeout;
  while (running && !platform->store().read(progress_path(from), 32)) {
    if (MonotonicClock::read() > deadline) running = false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!running)
    print("IVMC-WARN the link between domains " + std::to_string(from) + " and " +
          std::to_string(to) + " did not start: no view changes");
  for (unsigned k = 1; running && k <= flips; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(period_ms)));
    publish(k % 2 == 0);
  }
  bool ok = relay_outcome(*from_ep, timeout, {{"link", "1"}, {"side", "from"}});
  ok = relay_outcome(*to_ep, timeout, {{"link", "1"}, {"side", "to"}}) && ok;
  for (const std::uint32_t domu : {from, to}) {
    auto ep = offer_job(*platform, domu, "j1", "exit");
    ep->wait_for_peer(timeout);
  }
  platform->store().remove(view_path(from));
  return ok ? 0 : 1;
}

// dom0: a scenario's link stream across scripted moves (issue 14, Xen part). Plan lines:
//   host NAME H                  the scenario host each VM starts on
//   follow FROM TO key=value...  FROM streams to TO over a link that follows dom0's views:
//                                message= policy= ring= race= duration_ms=
//   migrate NAME H at_ms=T       at T ms after the stream started, NAME moves to host H:
//                                `xl save` to a file, `xl restore -p` (a new domain id), then
//                                unpaused; one machine stands for every host
//   membership scan|watch|sync period_ms=P   how dom0's view service learns (view_service.hpp)
// Prints both ends' outcomes (w=0 side=from|to), one IVMC-MOVE line per move and one
// IVMC-SERVICE line. Returns 0 when everything ran and both ends reported ok.
int play_migrations(XenPlatform& platform, const std::vector<std::vector<std::string>>& lines,
                    std::map<std::string, std::uint32_t> domids,
                    const std::map<std::string, std::string>& addresses, Nanos timeout) {
  std::map<std::string, ViewService::Vm> vms;
  for (const auto& [name, domid] : domids) vms[name].domid = domid;
  std::vector<std::string> follow;
  struct Move {
    std::string vm;
    std::size_t host = 0;
    std::uint32_t at_ms = 0;
  };
  std::vector<Move> moves;
  ViewService::Learning learning = ViewService::Learning::scan;
  std::uint32_t period_ms = 500;
  auto number = [](const std::string& text, const char* what) {
    std::uint32_t v = 0;
    if (!parse_decimal(text, 100'000'000, v))
      throw std::runtime_error(std::string("plan: ") + what + " '" + text + "' is not a number");
    return v;
  };
  auto value_of = [&](const std::string& word, const std::string& key) {
    if (word.rfind(key + "=", 0) != 0)
      throw std::runtime_error("plan: expected " + key + "=..., got '" + word + "'");
    return number(word.substr(key.size() + 1), key.c_str());
  };
  for (const auto& w : lines) {
    if (w[0] == "host") {
      if (!vms.count(w[1])) throw std::runtime_error("plan: host of unknown vm " + w[1]);
      vms[w[1]].host = number(w[2], "host");
    } else if (w[0] == "migrate") {
      if (!vms.count(w[1])) throw std::runtime_error("plan: migrate of unknown vm " + w[1]);
      moves.push_back({w[1], number(w[2], "host"), value_of(w[3], "at_ms")});
    } else if (w[0] == "membership") {
      if (w[1] == "scan")
        learning = ViewService::Learning::scan;
      else if (w[1] == "watch")
        learning = ViewService::Learning::watch;
      else if (w[1] == "sync")
        learning = ViewService::Learning::sync;
      else
        throw std::runtime_error("plan: membership " + w[1] + " is not scan, watch or sync");
      period_ms = std::max<std::uint32_t>(1, value_of(w[2], "period_ms"));
    } else {
      if (!follow.empty()) throw std::runtime_error("plan: one follow line only");
      follow = w;
    }
  }
  if (follow.size() < 3 || !vms.count(follow[1]) || !vms.count(follow[2]) || follow[1] == follow[2])
    throw std::runtime_error("plan: a follow FROM TO line between two plan vms is needed");
  const std::string from = follow[1], to = follow[2];
  for (const Move& m : moves)
    if (m.vm != from) throw std::runtime_error("plan: only the sender " + from + " moves");
  std::uint32_t duration_ms = 10'000;
  std::string args;
  for (std::size_t k = 3; k < follow.size(); ++k) {
    if (follow[k].rfind("duration_ms=", 0) == 0)
      duration_ms = value_of(follow[k], "duration_ms");
    else
      args += " " + follow[k];
  }

  ViewService service(vms, learning, static_cast<Nanos>(period_ms) * 1'000'000);
  const std::string addr = " addr=" + addresses.at(to) + ":7000";
  auto to_ep = offer_job(platform, domids[to], "j0",
                         "link-recv-follow peer-name=" + from +
                             " peer=" + std::to_string(domids[from]) + addr + args);
  auto from_ep = offer_job(platform, domids[from], "j0",
                           "link-send-follow peer-name=" + to +
                               " peer=" + std::to_string(domids[to]) + addr + args);
  std::uint32_t sender = domids[from];
  // The sender's serve loop maps its job, closes the control channel (it may be restored,
  // see serve) and publishes progress 0 when its stream starts: the scenario's time 0.
  bool running = from_ep->wait_for_peer(timeout) == Errc::ok;
  const Nanos wait_end = MonotonicClock::read() + timeout;
  while (running && !platform.store().read(progress_path(sender), 32)) {
    // A sender that failed before streaming left its outcome instead.
    if (MonotonicClock::read() > wait_end || platform.store().read(outcome_path(sender), 4096))
      running = false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const Nanos t0 = MonotonicClock::read();
  from_ep.reset(); // the sender detached already
  if (!running) print("IVMC-WARN the stream from " + from + " never started");
  auto shell = [&](const std::string& cmd) {
    const Nanos a = MonotonicClock::read();
    const int status = std::system((cmd + " </dev/null").c_str());
    if (status != 0)
      throw std::runtime_error("'" + cmd + "' exited with " + std::to_string(status));
    return (MonotonicClock::read() - a) / 1e6;
  };
  bool ok = running;
  std::size_t host_of_from = vms[from].host;
  for (std::size_t k = 0; running && k < moves.size(); ++k) {
    const Move& m = moves[k];
    const Nanos due = t0 + static_cast<Nanos>(m.at_ms) * 1'000'000;
    if (const Nanos now = MonotonicClock::read(); due > now)
      std::this_thread::sleep_for(std::chrono::nanoseconds(due - now));
    const double at_s = (MonotonicClock::read() - t0) / 1e9;
    // dom0's /dev/shm: its own tmpfs (the root one has no room for a domU's 160 MiB).
    const std::string image = "/dev/shm/ivmc-" + from + ".save";
    try {
      service.moving(from, m.host);
      const double save_ms = shell("xl save " + from + " " + image);
      const double restore_ms = shell("xl restore -p " + image);
      std::remove(image.c_str());
      // The new domain's id, from the toolstack (xl domid NAME).
      std::uint32_t domid = 0;
      if (FILE* pipe = ::popen(("xl domid " + from + " 2>/dev/null").c_str(), "r")) {
        char buf[32] = {};
        const bool got = std::fgets(buf, sizeof buf, pipe) != nullptr;
        ::pclose(pipe);
        std::string text = got ? buf : "";
        while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
        if (!parse_decimal(text, kMaxDomainId, domid)) domid = 0;
      }
      if (domid == 0) throw std::runtime_error("xl domid " + from + ": no domain after restore");
      // The kind of change this is for the stream's sender, relative to its receiver's host;
      // left before the domain runs again (owned by dom0, readable by the domain).
      const bool joins = m.host == vms[to].host;
      const std::string kind = joins ? "migration_in" : "migration_out";
      platform.store().write(move_key(domid), kind);
      platform.store().set_owner_and_reader(move_key(domid), 0, domid);
      if (learning == ViewService::Learning::sync) service.learn_now(from, domid);
      const Nanos resumed = MonotonicClock::read();
      shell("xl unpause " + from);
      const double unpause_ms = (MonotonicClock::read() - resumed) / 1e6;
      char line[320];
      std::snprintf(line, sizeof line,
                    "IVMC-MOVE k=%zu vm=%s from_host=%zu to_host=%zu at_s=%.3f save_ms=%.0f "
                    "restore_ms=%.0f unpause_ms=%.0f old_domid=%u new_domid=%u kind=%s "
                    "resumed_ns=%lld",
                    k + 1, from.c_str(), host_of_from, m.host, at_s, save_ms, restore_ms,
                    unpause_ms, sender, domid, kind.c_str(), static_cast<long long>(resumed));
      print(line);
      host_of_from = m.host;
      sender = domid;
    } catch (const std::exception& e) {
      print(std::string("IVMC-WARN move ") + std::to_string(k + 1) + ": " + e.what());
      ok = running = false;
    }
  }
  Nanos end = t0 + static_cast<Nanos>(duration_ms) * 1'000'000;
  if (running && !moves.empty()) {
    // Under TCG a move takes tens of seconds, longer than the scenario allows: the stream
    // runs until the service has written the moved domain's view, and kSettle after that,
    // so that the link can follow it (back to a ring) before it ends.
    constexpr Nanos kSettle = 3'000'000'000;
    const Nanos give_up = MonotonicClock::read() + timeout;
    while (service.view_written_at(sender) == kNever && MonotonicClock::read() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    end = std::max(end, MonotonicClock::read() + kSettle);
  }
  if (const Nanos now = MonotonicClock::read(); running && end > now)
    std::this_thread::sleep_for(std::chrono::nanoseconds(end - now));
  platform.store().write(stop_key(sender), "1");
  platform.store().set_owner_and_reader(stop_key(sender), 0, sender);
  // The sender's outcome, from its XenStore directory (its words: bounded, parsed, re-emitted
  // field by field with dom0's tags).
  std::optional<posix::ReportFields> fields;
  // A sender that never started has nothing to report soon: wait briefly then.
  const Nanos outcome_end = MonotonicClock::read() + (running ? timeout : 5'000'000'000);
  while (!fields && MonotonicClock::read() < outcome_end && platform.domain_exists(sender) &&
         platform.domain_exists(domids[to])) {
    if (const auto text = platform.store().read(outcome_path(sender), 4096))
      fields = posix::parse_report(*text);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!fields) fields = posix::ReportFields{{"ok", "0"}, {"error", "no outcome from the sender"}};
  (*fields)["w"] = "0";
  (*fields)["side"] = "from";
  (*fields)["vm"] = from;
  std::string line = "IVMC-RESULT";
  for (const auto& [key, value] : *fields) {
    std::string v = value;
    for (char& c : v)
      if (c < 0x20 || c > 0x7e || c == '"') c = '?';
    line += " " + key + "=" + (v.find(' ') == std::string::npos ? v : "\"" + v + "\"");
  }
  print(line);
  ok = fields->count("ok") && fields->at("ok") == "1" && ok;
  ok = relay_outcome(*to_ep, timeout, {{"w", "0"}, {"side", "to"}, {"vm", to}}) && ok;
  char summary[200];
  std::snprintf(summary, sizeof summary,
                "IVMC-SERVICE learning=%s period_ms=%u directory_reads=%llu view_writes=%llu",
                learning == ViewService::Learning::scan    ? "scan"
                : learning == ViewService::Learning::watch ? "watch"
                                                           : "sync",
                period_ms, static_cast<unsigned long long>(service.directory_reads()),
                static_cast<unsigned long long>(service.writes()));
  print(summary);
  for (const auto& [name, domid] :
       std::map<std::string, std::uint32_t>{{from, sender}, {to, domids[to]}}) {
    if (!platform.domain_exists(domid)) {
      print("IVMC-WARN vm " + name + " (domain " + std::to_string(domid) + ") is gone");
      ok = false;
      continue;
    }
    auto ep = offer_job(platform, domid, "j1", "exit");
    if (ep->wait_for_peer(std::min<Nanos>(timeout, 30'000'000'000)) != Errc::ok) {
      print("IVMC-WARN vm " + name + " did not take its exit job");
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

// dom0: runs a scenario's workloads between domUs (`ivmc run --backend xen` writes the plan;
// dom0's /init creates one domU per `vm` line and lists their domain ids). Plan lines:
//   vm NAME ADDRESS                                   a domU and its address on the network
//   work stream|rr ring|net FROM TO key=value...      one workload, run to the end before the
//       next: through a ring the two domUs share (FROM offers, policy= ring=) or over their
//       network (TO listens); message= bytes= (stream) count= (rr)
// Each domU's outcome comes back over its control channel and is printed as an IVMC-RESULT
// line with w=INDEX side=from|to vm=NAME added by dom0. At the end every domU gets "exit".
int run_plan(const std::string& plan_path, const std::string& domains_path, double timeout_s) {
  struct Vm {
    std::string address;
    std::uint32_t domid = 0;
    std::size_t next_job = 0; // the domU's serve loop maps j0, j1, ... in order
  };
  std::map<std::string, Vm> vms;
  std::vector<std::vector<std::string>> works, moves;
  auto words_of = [](const std::string& line) {
    std::vector<std::string> words;
    std::istringstream in(line);
    for (std::string w; in >> w;) words.push_back(w);
    return words;
  };
  std::ifstream plan(plan_path);
  if (!plan) throw std::runtime_error("plan: cannot read " + plan_path);
  std::size_t line_no = 0;
  for (std::string line; std::getline(plan, line);) {
    ++line_no;
    const auto words = words_of(line);
    const std::string where = plan_path + ":" + std::to_string(line_no);
    if (words.empty() || words[0][0] == '#') continue;
    if (words[0] == "vm" && words.size() == 3) {
      vms[words[1]].address = words[2];
    } else if ((words[0] == "host" && words.size() == 3) ||
               (words[0] == "migrate" && words.size() == 4) ||
               (words[0] == "membership" && words.size() == 3) ||
               (words[0] == "follow" && words.size() >= 3)) {
      moves.push_back(words); // checked by play_migrations
    } else if (words[0] == "work" && words.size() >= 5 &&
               (words[1] == "stream" || words[1] == "rr") &&
               (words[2] == "ring" || words[2] == "net")) {
      for (std::size_t i = 5; i < words.size(); ++i)
        if (words[i].find('=') == std::string::npos)
          throw std::runtime_error(where + ": '" + words[i] + "' is not key=value");
      works.push_back(words);
    } else {
      throw std::runtime_error(where +
                               ": not 'vm NAME ADDRESS' or 'work stream|rr ring|net "
                               "FROM TO key=value...': " +
                               line);
    }
  }
  std::ifstream domains(domains_path);
  if (!domains) throw std::runtime_error("plan: cannot read " + domains_path);
  for (std::string line; std::getline(domains, line);) {
    const auto words = words_of(line);
    if (words.size() != 2 || !vms.count(words[0]) ||
        !parse_decimal(words[1], kMaxDomainId, vms[words[0]].domid))
      throw std::runtime_error(domains_path + ": not 'NAME DOMID' of a plan vm: " + line);
  }
  for (const auto& [name, vm] : vms)
    if (vm.domid == 0) throw std::runtime_error("plan: vm " + name + " has no domain");

  auto platform = XenPlatform::open();
  const Nanos timeout = static_cast<Nanos>(timeout_s * 1e9);
  if (!moves.empty()) {
    std::map<std::string, std::uint32_t> domids;
    for (const auto& [name, vm] : vms) domids[name] = vm.domid;
    std::map<std::string, std::string> addresses;
    for (const auto& [name, vm] : vms) addresses[name] = vm.address;
    return play_migrations(*platform, moves, domids, addresses, timeout);
  }
  auto control = [&](Vm& vm, const std::string& job) {
    return offer_job(*platform, vm.domid, "j" + std::to_string(vm.next_job++), job);
  };
  bool all_ok = true;
  for (std::size_t i = 0; i < works.size(); ++i) {
    const auto& w = works[i];
    const bool rr = w[1] == "rr", ring = w[2] == "ring";
    for (const std::string* name : {&w[3], &w[4]})
      if (!vms.count(*name)) throw std::runtime_error("plan: work uses unknown vm " + *name);
    Vm& from = vms[w[3]];
    Vm& to = vms[w[4]];
    std::string args;
    for (std::size_t k = 5; k < w.size(); ++k) args += " " + w[k];
    print("IVMC-STEP work " + std::to_string(i) + " " + w[1] + " " + w[3] + " -> " + w[4] +
          " over " + w[2]);
    std::string from_job, to_job;
    if (ring) {
      const std::string name = " name=w" + std::to_string(i);
      from_job = "relay-offer peer=" + std::to_string(to.domid) + name;
      to_job = "relay-map peer=" + std::to_string(from.domid) + name;
    } else {
      const std::string addr = " addr=" + to.address + ":" + std::to_string(6000 + i);
      from_job = "net-connect" + addr;
      to_job = "net-listen" + addr;
    }
    from_job += std::string(" work=") + (rr ? "ping" : "send") + args;
    to_job += std::string(" work=") + (rr ? "echo" : "recv") + args;
    auto to_ep = control(to, to_job); // the listener (or mapper) first
    auto from_ep = control(from, from_job);
    const std::string index = std::to_string(i);
    all_ok =
        relay_outcome(*from_ep, timeout, {{"w", index}, {"side", "from"}, {"vm", w[3]}}) && all_ok;
    all_ok = relay_outcome(*to_ep, timeout, {{"w", index}, {"side", "to"}, {"vm", w[4]}}) && all_ok;
  }
  for (auto& [name, vm] : vms) {
    auto ep = control(vm, "exit");
    if (ep->wait_for_peer(timeout) != Errc::ok) {
      print("IVMC-WARN vm " + name + " did not take its exit job");
      all_ok = false;
    }
  }
  return all_ok ? 0 : 1;
}

// dom0: reports every domain that appears or goes, as the XenStore membership source in
// `mode` learns it, until `seconds` passed (or it is killed).
int membership(XenStoreMembership::Mode mode, double period_ms, double seconds) {
  XenStoreMembership m(mode, static_cast<Nanos>(period_ms * 1e6));
  const char* name = mode == XenStoreMembership::Mode::scan ? "scan" : "watch";
  std::string present;
  for (const std::uint32_t id : m.domains())
    present += (present.empty() ? "" : ",") + std::to_string(id);
  print(std::string("IVMC-MEMBERSHIP source=") + name + " start domains=" + present);
  const Nanos end = MonotonicClock::read() + static_cast<Nanos>(seconds * 1e9);
  while (MonotonicClock::read() < end) {
    for (const auto& c : m.wait(200'000'000)) {
      char line[256];
      std::snprintf(line, sizeof line,
                    "IVMC-MEMBERSHIP source=%s change=%s domid=%u t_ns=%lld dom0_believes=%d "
                    "view_version=%llu reads=%llu",
                    name, std::string(to_string(c.kind)).c_str(), c.domid,
                    static_cast<long long>(c.detected),
                    m.source().believes_co_resident(0, c.domid) ? 1 : 0,
                    static_cast<unsigned long long>(m.source().view_version(0)),
                    static_cast<unsigned long long>(m.directory_reads()));
      print(line);
    }
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ivmc Xen agent: checked channel workloads between Xen domains"};
  app.require_subcommand(1, 1);
  std::uint32_t peer = 0;
  std::vector<std::string> jobs;
  std::string listen_ip = "10.0.0.1", kill_command = "true";
  double timeout_s = 120, peer_timeout_s = 30;
  CLI::App* drive_cmd =
      app.add_subcommand("drive", "dom0: offer one channel per job, run its side");
  drive_cmd->add_option("--peer", peer, "the domU's domain id")->required();
  drive_cmd->add_option("--job", jobs, "a job (see the source's header)")->required();
  drive_cmd->add_option("--listen-ip", listen_ip, "dom0's address for the tcp jobs");
  drive_cmd->add_option("--kill-command", kill_command, "run mid-stream by 'stream ... kill=K'");
  CLI::App* serve_cmd = app.add_subcommand("serve", "domU: map the offered channels, run the jobs");
  serve_cmd->add_option("--peer", peer, "the offering domain (dom0: 0)");
  std::uint32_t pair_offerer = 0, pair_mapper = 0;
  std::vector<std::string> pair_policies = {"polling", "on_demand"};
  std::uint64_t pair_bytes = 32u << 20;
  CLI::App* pair_cmd = app.add_subcommand("pair", "dom0: two domUs stream to each other");
  pair_cmd->add_option("--offerer", pair_offerer, "the domU that offers and sends")->required();
  pair_cmd->add_option("--mapper", pair_mapper, "the domU that maps and receives")->required();
  pair_cmd->add_option("--policy", pair_policies, "one stream per policy");
  pair_cmd->add_option("--bytes", pair_bytes, "bytes per stream");
  pair_cmd->add_option("--timeout", timeout_s, "seconds to wait for each outcome");
  std::string mode_text = "watch";
  double period_ms = 500, seconds = 3600;
  CLI::App* member_cmd =
      app.add_subcommand("membership", "dom0: report domains appearing and going (XenStore)");
  member_cmd->add_option("--mode", mode_text, "scan (periodic, XenLoop) or watch (event-driven)")
      ->check(CLI::IsMember({"scan", "watch"}));
  member_cmd->add_option("--period-ms", period_ms, "scan period");
  member_cmd->add_option("--for", seconds, "seconds to run");
  std::uint32_t link_from = 0, link_to = 0;
  unsigned flips = 4;
  double flip_ms = 400;
  std::string link_addr, link_policy = "on_demand";
  CLI::App* link_cmd = app.add_subcommand(
      "link", "dom0: a domU streams to another over a link while dom0 changes its view");
  link_cmd->add_option("--from", link_from, "the sending domU")->required();
  link_cmd->add_option("--to", link_to, "the receiving domU")->required();
  link_cmd->add_option("--addr", link_addr, "the receiver's ADDRESS:PORT (TCP path)")->required();
  link_cmd->add_option("--flips", flips, "view changes after the first");
  link_cmd->add_option("--period-ms", flip_ms, "time between view changes");
  link_cmd->add_option("--policy", link_policy, "the rings' notification policy");
  link_cmd->add_option("--timeout", timeout_s, "seconds to wait for each outcome");
  std::string plan_path, domains_path;
  CLI::App* plan_cmd =
      app.add_subcommand("plan", "dom0: run a scenario's workloads between domUs (ivmc run)");
  plan_cmd->add_option("--plan", plan_path, "the plan (vm and work lines)")->required();
  plan_cmd->add_option("--domains", domains_path, "NAME DOMID per vm")->required();
  plan_cmd->add_option("--timeout", timeout_s, "seconds to wait for each outcome");
  for (CLI::App* sub : {drive_cmd, serve_cmd}) {
    sub->add_option("--timeout", timeout_s, "seconds to wait for the peer and each message");
    sub->add_option("--peer-timeout", peer_timeout_s, "seconds without a heartbeat: peer dead");
  }
  CLI11_PARSE(app, argc, argv);
  try {
    if (app.got_subcommand(pair_cmd))
      return pair(pair_offerer, pair_mapper, pair_policies, pair_bytes, timeout_s);
    if (app.got_subcommand(member_cmd))
      return membership(mode_text == "scan" ? XenStoreMembership::Mode::scan
                                            : XenStoreMembership::Mode::watch,
                        period_ms, seconds);
    if (app.got_subcommand(link_cmd))
      return link(link_from, link_to, link_addr, flips, flip_ms, link_policy, timeout_s);
    if (app.got_subcommand(plan_cmd)) return run_plan(plan_path, domains_path, timeout_s);
    if (app.got_subcommand(drive_cmd))
      return drive(peer, jobs, listen_ip, kill_command, timeout_s, peer_timeout_s);
    return serve(peer, timeout_s, peer_timeout_s);
  } catch (const std::exception& e) {
    Report r;
    r.mode = app.got_subcommand(drive_cmd) ? "drive" : "serve";
    r.error = e.what();
    print(r.line());
    return 1;
  }
}
