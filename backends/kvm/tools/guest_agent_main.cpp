// ivmc-guest: the agent that runs inside a QEMU guest (started by the image's /init with the
// arguments after "--" on the kernel command line). It opens the ivshmem-doorbell device as a
// GuestPlatform, creates or attaches a channel at an offset of BAR2, runs one checked workload
// (workload.hpp) and prints its result as one `IVMC-RESULT ...` line on stdout (the serial
// console). Exit status 0 when the workload succeeded.
//
//   ivmc-guest recv --role attach --offset 0 --bytes 64M
//   ivmc-guest send --role create --ring 256K --policy polling --bytes 64M --message 4096
//   ivmc-guest ping --irq vfio --policy on_demand --count 1000 --message 64
//   ivmc-guest recv --tcp-listen 10.0.0.1:5000 --bytes 64M     (the remote path: TCP instead)
//   ivmc-guest send --tcp-connect 10.0.0.1:5000 --bytes 64M
//   ivmc-guest loop --policy on_demand --bytes 64G --after 32M --host-word 1044480
//                                          (both ends in this guest, across a live migration)
//   ivmc-guest link-send --remote 10.0.2.2:5000 --session 7 --host-word 1044480 --peer-host 1
//                        --slot-bytes 256K --moves 2 --after 16M
//                                          (a link to a host process: channel while on its
//                                           host, resumable TCP otherwise; link_stream.hpp)
#include "ivmc/kvm/guest_platform.hpp"
#include "ivmc/kvm/ivshmem_link_stream.hpp"
#include "ivmc/posix/tcp_path.hpp"
#include "ivmc/posix/workload.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace ivmc;
using namespace ivmc::kvm;
using namespace ivmc::posix;

namespace {

RacePolicy policy_of_race(const std::string& text) {
  RacePolicy p;
  if (!parse_race_policy(text, p))
    throw std::invalid_argument("unknown race policy '" + text + "'");
  return p;
}

// "4096", "64K", "16M", "1G" (binary multiples).
std::uint64_t parse_size(const std::string& text) {
  std::size_t used = 0;
  const std::uint64_t n = std::stoull(text, &used);
  const std::string unit = text.substr(used);
  if (unit.empty()) return n;
  if (unit == "K" || unit == "k") return n << 10;
  if (unit == "M" || unit == "m") return n << 20;
  if (unit == "G" || unit == "g") return n << 30;
  throw std::invalid_argument("bad size '" + text + "' (use 4096, 64K, 16M, 1G)");
}

// "10.0.0.1:5000" -> address and port.
std::pair<std::string, std::uint16_t> parse_endpoint(const std::string& text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("'" + text + "' is not ADDRESS:PORT");
  const unsigned long port = std::stoul(text.substr(colon + 1));
  if (port == 0 || port > 65535) throw std::invalid_argument("bad port in '" + text + "'");
  return {text.substr(0, colon), static_cast<std::uint16_t>(port)};
}

// Both ends of one channel inside this guest, through BAR2: a sender thread and this thread
// receiving. For live migration: with master=on the region moves with the guest, and the
// stream carries on. The sender watches for a topology change: IVPosition (a new peer id), and
// the host word, a 64-bit word at `host_word` in BAR2 that each host's membership source sets
// to its own identity when a guest arrives (QEMU keeps a master=on device at peer id 0 on
// every server, so the id alone cannot tell). After the `moves`-th change it sends `after`
// more bytes and closes.
Report loop_stream(GuestPlatform& platform, const EndpointOptions& endpoint,
                   std::uint64_t max_bytes, std::uint64_t after, std::uint32_t message,
                   Nanos timeout, std::optional<std::size_t> host_word, unsigned moves_wanted) {
  auto tx = platform.create_channel(endpoint);
  auto rx = platform.attach_channel(endpoint, timeout);
  Report r;
  r.mode = "loop";
  if (message == 0 || message > tx->channel().max_message()) {
    r.error = "message size " + std::to_string(message) + " does not fit the ring";
    return r;
  }
  const std::uint16_t id_before = platform.id();
  std::uint16_t id_after = id_before;
  std::uint64_t* word = nullptr;
  if (host_word) {
    if (*host_word % 8 != 0 || *host_word + 8 > platform.region().size)
      throw std::invalid_argument("--host-word is not an aligned offset inside BAR2");
    word = reinterpret_cast<std::uint64_t*>(platform.region().base + *host_word);
  }
  // Relaxed: the word is a hint; nothing else is read through it.
  auto host_now = [&] { return word ? std::atomic_ref(*word).load(std::memory_order_relaxed) : 0; };
  const std::uint64_t host_before = host_now();
  std::uint64_t host_after = host_before;
  unsigned moves = 0;
  std::string hosts = std::to_string(host_before); // the host words seen, in order
  std::uint64_t sent = 0, moved_at = 0, sent_checksum = 0;
  std::string send_error;
  std::printf("IVMC-INFO loop started peer_id=%u\n", id_before);
  std::fflush(stdout);
  std::thread sender([&] {
    std::vector<std::byte> buffer(message);
    StreamChecksum sum;
    std::uint64_t limit = max_bytes;
    for (std::uint64_t i = 0; sent < limit; ++i) {
      if ((i & 255u) == 0 && moves < moves_wanted) {
        const std::uint16_t id = platform.current_id();
        const std::uint64_t host = host_now();
        if (id != id_after || host != host_after) {
          ++moves;
          moved_at = sent;
          if (moves == moves_wanted) limit = std::min(limit, sent + after);
          std::printf("IVMC-TOPOLOGY peer_id %u -> %u host %llu -> %llu after %llu bytes\n",
                      id_after, id, static_cast<unsigned long long>(host_after),
                      static_cast<unsigned long long>(host), static_cast<unsigned long long>(sent));
          std::fflush(stdout);
          id_after = id;
          host_after = host;
          hosts += "," + std::to_string(host);
        }
      }
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(message, limit - sent));
      const std::span<std::byte> m(buffer.data(), n);
      fill_stream(sent, m);
      if (const Errc e = tx->channel().send(m, timeout); e != Errc::ok) {
        send_error = "send: " + std::string(to_string(e)) + " " + tx->channel().error_detail();
        break;
      }
      sum.update(m);
      sent += n;
    }
    sent_checksum = sum.value();
    if (send_error.empty()) {
      if (const Errc e = tx->channel().close(timeout); e != Errc::ok)
        send_error = "close: " + std::string(to_string(e));
    }
  });
  std::vector<std::byte> buffer(rx->channel().max_message());
  StreamChecksum sum;
  Nanos first = -1, last = -1, max_gap = 0;
  std::string recv_error;
  for (;;) {
    std::size_t n = 0;
    const Errc e = rx->channel().recv(buffer, n, timeout);
    if (e == Errc::peer_closed) break;
    if (e != Errc::ok) {
      recv_error = "recv: " + std::string(to_string(e)) + " " + rx->channel().error_detail();
      break;
    }
    const Nanos now = MonotonicClock::read();
    if (first < 0) first = now;
    if (last >= 0) max_gap = std::max(max_gap, now - last);
    last = now;
    sum.update(std::span(buffer.data(), n));
    r.bytes += n;
    ++r.messages;
  }
  sender.join(); // the sender's close() returned once everything was consumed
  r.checksum = sum.value();
  r.elapsed = first < 0 ? 0 : last - first;
  r.stats = rx->channel().stats();
  r.paths = ring_counters(tx->channel()); // both ends of one ring instance are this agent's
  char extra[320];
  std::snprintf(
      extra, sizeof extra,
      " sent=%llu sent_checksum=%016llx id_before=%u id_after=%u host_before=%llu "
      "host_after=%llu moved=%d moves=%u hosts=%s moved_at=%llu max_gap_ns=%lld",
      static_cast<unsigned long long>(sent), static_cast<unsigned long long>(sent_checksum),
      id_before, id_after, static_cast<unsigned long long>(host_before),
      static_cast<unsigned long long>(host_after), moves > 0 ? 1 : 0, moves, hosts.c_str(),
      static_cast<unsigned long long>(moved_at), static_cast<long long>(max_gap));
  r.extra = extra;
  if (!send_error.empty())
    r.error = send_error;
  else if (!recv_error.empty())
    r.error = recv_error;
  else if (r.bytes != sent)
    r.error = "received " + std::to_string(r.bytes) + " of " + std::to_string(sent);
  else if (r.checksum != sent_checksum)
    r.error = "checksum mismatch";
  r.ok = r.error.empty();
  return r;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ivmc guest agent: one checked channel workload over the ivshmem device"};
  app.require_subcommand(1, 1);
  std::string role = "attach", policy_text = "polling", irq = "none", ring_text = "256K";
  std::string bytes_text = "16M", device, tcp_listen, tcp_connect;
  std::size_t offset = 0;
  unsigned vectors = 2;
  std::uint32_t message = 4096;
  std::uint64_t count = 1000;
  double timeout_s = 60, peer_timeout_s = 20;
  auto common = [&](CLI::App* sub) {
    sub->add_option("--role", role, "create (side 0) or attach (side 1)")
        ->check(CLI::IsMember({"create", "attach"}));
    sub->add_option("--offset", offset, "channel offset in BAR2 (a page multiple)");
    sub->add_option("--ring", ring_text, "ring bytes per direction (creator)");
    sub->add_option("--policy", policy_text, "notification policy (creator)");
    sub->add_option("--irq", irq, "none (polling: waits only sleep) or vfio (MSI-X eventfds)")
        ->check(CLI::IsMember({"none", "vfio"}));
    sub->add_option("--vectors", vectors, "the device's vectors= (the server's --vectors)");
    sub->add_option("--device", device, "PCI address (default: the first 1af4:1110)");
    sub->add_option("--bytes", bytes_text, "stream bytes (send/recv)");
    sub->add_option("--message", message, "bytes per message (send/ping)");
    sub->add_option("--count", count,
                    "round trips (ping); messages to return (echo; default: "
                    "until the peer closes)");
    sub->add_option("--tcp-listen", tcp_listen, "ADDRESS:PORT: run over TCP, accepting here");
    sub->add_option("--tcp-connect", tcp_connect, "ADDRESS:PORT: run over TCP, connecting here");
    sub->add_option("--timeout", timeout_s, "seconds to wait for the peer and each message");
    sub->add_option("--peer-timeout", peer_timeout_s, "seconds without a heartbeat: peer dead");
  };
  for (const char* mode : {"send", "recv", "echo", "ping"}) common(app.add_subcommand(mode));
  std::string after_text = "32M";
  CLI::App* loop = app.add_subcommand("loop", "both ends of a channel in this guest (migration)");
  common(loop);
  loop->add_option("--after", after_text, "bytes to send once the topology changed");
  std::size_t host_word_offset = 0;
  unsigned moves_wanted = 1;
  loop->add_option("--moves", moves_wanted, "topology changes before the last --after bytes");
  loop->add_option("--host-word", host_word_offset, "BAR2 offset of the host word to watch");
  CLI::App* link = app.add_subcommand(
      "link-send", "a link to a host process across migrations (channel or resumable TCP)");
  common(link);
  std::string remote_text, slot_text = "256K";
  std::uint64_t session = 0, peer_host = 0;
  unsigned slots = 2;
  link->add_option("--remote", remote_text, "ADDRESS:PORT of the receiver's resumable path")
      ->required();
  link->add_option("--session", session, "the stream's session id (the receiver's)");
  // Required unless --view-page (then the host word is the view page's first word).
  link->add_option("--host-word", host_word_offset, "BAR2 offset of the host word");
  link->add_option("--peer-host", peer_host, "the receiver's host word value");
  link->add_option("--slot-bytes", slot_text, "bytes per channel slot (one per epoch)");
  link->add_option("--slots", slots, "channel slots from offset 0");
  link->add_option("--after", after_text, "bytes to send after the last move");
  link->add_option("--moves", moves_wanted, "host changes before the last --after bytes");
  std::size_t view_page_offset = 0;
  unsigned self_vm = 0, peer_vm = 0;
  link->add_option("--view-page", view_page_offset,
                   "BAR2 offset of the view page: the view, truth and race flags from there "
                   "(view_page.hpp; with --vm and --peer-vm), start and stop by its flags");
  std::string race_text = "resolution";
  link->add_option("--race", race_text, "the race policy (prevention, resolution, none)");
  link->add_option("--vm", self_vm, "this guest's VM id in the view page");
  link->add_option("--peer-vm", peer_vm, "the receiver's VM id in the view page");
  CLI::App* link_recv = app.add_subcommand(
      "link-recv", "the receiving end of link-send in a guest (channel slots or resumable TCP)");
  common(link_recv);
  std::string listen_text;
  link_recv->add_option("--listen", listen_text, "ADDRESS:PORT of this end's resumable path")
      ->required();
  link_recv->add_option("--session", session, "the stream's session id");
  link_recv->add_option("--slot-bytes", slot_text, "bytes per channel slot (one per epoch)");
  link_recv->add_option("--slots", slots, "channel slots from offset 0");
  CLI11_PARSE(app, argc, argv);
  const std::string mode = app.get_subcommands().front()->get_name();

  Report report;
  report.mode = mode;
  try {
    const Nanos timeout = static_cast<Nanos>(timeout_s * 1e9);
    WorkloadOptions w;
    w.bytes = parse_size(bytes_text);
    w.message = message;
    w.count = count;
    if (mode == "echo" && app.get_subcommands().front()->count("--count") == 0) w.count = 0;
    w.timeout = timeout;
    auto run = [&](WorkloadPath& path) {
      if (mode == "send") return stream_send(path, w);
      if (mode == "recv") return stream_recv(path, w);
      if (mode == "echo") return echo(path, w);
      return ping(path, w);
    };

    if (!tcp_listen.empty() || !tcp_connect.empty()) {
      // The remote path: the same workload over TCP through the guest's network.
      std::optional<TcpPath> tcp;
      if (!tcp_listen.empty()) {
        const auto [address, port] = parse_endpoint(tcp_listen);
        TcpListener listener(address, port);
        std::printf("IVMC-INFO tcp listening on %s\n", tcp_listen.c_str());
        std::fflush(stdout);
        tcp.emplace(listener.accept(timeout));
      } else {
        const auto [address, port] = parse_endpoint(tcp_connect);
        tcp.emplace(TcpPath::connect(address, port, timeout));
      }
      // A stream's sender learns that everything arrived when the receiver closes.
      FrameWorkloadPath path(*tcp, mode == "send");
      report = run(path);
    } else {
      NotifyPolicy policy;
      if (!parse_notify_policy(policy_text, policy))
        throw std::invalid_argument("unknown policy '" + policy_text + "'");
      GuestDeviceOptions device_options;
      device_options.pci_address = device;
      device_options.interrupts = irq == "vfio";
      device_options.vectors = vectors;
      auto platform = GuestPlatform::open(device_options);
      std::printf("IVMC-INFO device=%s peer_id=%u region_bytes=%zu irq=%s\n",
                  platform->pci_address().c_str(), platform->id(), platform->region().size,
                  irq.c_str());
      std::fflush(stdout);

      EndpointOptions endpoint;
      endpoint.offset = offset;
      endpoint.channel.ring_bytes = static_cast<std::uint32_t>(parse_size(ring_text));
      endpoint.channel.notify.policy = policy;
      endpoint.channel.liveness.peer_timeout = static_cast<Nanos>(peer_timeout_s * 1e9);
      std::unique_ptr<IvshmemEndpoint> ep;
      if (mode == "loop" || mode == "link-send" || mode == "link-recv") {
        // loop_stream and link_send make their channels
      } else if (role == "create") {
        ep = platform->create_channel(endpoint);
        if (const Errc e = ep->wait_for_peer(timeout); e != Errc::ok)
          throw std::runtime_error("no peer attached: " + std::string(to_string(e)));
      } else {
        ep = platform->attach_channel(endpoint, timeout);
      }
      if (mode == "link-send") {
        LinkSendOptions l;
        l.endpoint = endpoint;
        l.slots.slot_bytes = parse_size(slot_text);
        l.slots.count = slots;
        l.host_word = host_word_offset;
        l.peer_host = peer_host;
        const auto [address, port] = parse_endpoint(remote_text);
        l.remote_address = address;
        l.remote_port = port;
        l.remote.session = session;
        if (link->count("--view-page") != 0) {
          // The kernel passes /init at most 32 arguments: the view page implies the rest
          // (the stream runs until the page's stop flag, the host word is the page's first).
          l.view = LinkViewOptions{view_page_offset, self_vm, peer_vm};
          l.link.race = policy_of_race(race_text);
          if (link->count("--host-word") == 0) l.host_word = view_page_offset;
          if (link->count("--bytes") == 0) w.bytes = std::uint64_t{1} << 50;
          if (link->count("--moves") == 0) moves_wanted = 0;
        } else if (link->count("--host-word") == 0 || link->count("--peer-host") == 0) {
          throw std::invalid_argument(
              "link-send needs --host-word and --peer-host, or --view-page");
        }
        l.link.stale_timeout = 200'000'000; // a TCG guest's peer can be slow to consume
        l.max_bytes = w.bytes;
        l.after = parse_size(after_text);
        l.moves = moves_wanted;
        l.message = message;
        l.timeout = timeout;
        report = link_send(*platform, l);
      } else if (mode == "link-recv") {
        const auto [address, port] = parse_endpoint(listen_text);
        TcpListener listener(address, port);
        LinkReceiveOptions l;
        l.endpoint = endpoint;
        l.slots.slot_bytes = parse_size(slot_text);
        l.slots.count = slots;
        l.remote.session = session;
        l.timeout = timeout;
        std::printf("IVMC-INFO link-recv listening on %s\n", listen_text.c_str());
        std::fflush(stdout);
        report = link_receive(*platform, listener, l);
        report.mode = "link-recv";
      } else if (mode == "loop") {
        std::optional<std::size_t> host_word;
        if (loop->count("--host-word") != 0) host_word = host_word_offset;
        report = loop_stream(*platform, endpoint, w.bytes, parse_size(after_text), message, timeout,
                             host_word, moves_wanted);
      } else {
        ChannelWorkloadPath path(ep->channel());
        report = run(path);
      }
    }
  } catch (const std::exception& e) {
    report.ok = false;
    report.error = e.what();
  }
  std::printf("%s\n", report.line().c_str());
  std::fflush(stdout);
  return report.ok ? 0 : 1;
}
