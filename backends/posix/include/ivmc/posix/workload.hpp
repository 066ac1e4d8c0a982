// Checked workloads over one channel, run the same way by the guest agent (ivmc-guest) and by
// host processes in the vm tests: a stream of N bytes with a checksum, echo, and ping (round
// trips). The stream's bytes are a function of their position, and the checksum depends on
// every byte and its order, so a receiver's checksum equals expected_checksum(N) exactly when
// nothing was lost, duplicated, reordered or corrupted.
//
// Reports are one line of key=value pairs (`IVMC-RESULT mode=recv ok=1 bytes=...`), the
// agent's protocol with its launcher: parse_report() reads them back. Each carries what the
// workload measured of its paths (PathCounters): frames sent on a ring and on the network, and
// the ring instances opened.
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ivmc::posix {

// The stream's content and checksum (64-bit FNV-1a over 64-bit little-endian words; a partial
// last word is zero-padded, and the length is mixed in at the end).
class StreamChecksum {
public:
  void update(std::span<const std::byte> bytes);
  std::uint64_t value() const; // of everything so far
  std::uint64_t bytes() const { return bytes_; }

private:
  void word(std::uint64_t w) { hash_ = (hash_ ^ w) * 0x100000001b3ull; }
  std::uint64_t hash_ = 0xcbf29ce484222325ull;
  std::uint64_t bytes_ = 0;
  std::uint64_t carry_ = 0; // bytes of an incomplete word, low byte first
};

// Writes the stream's bytes [position, position + out.size()) into `out`.
void fill_stream(std::uint64_t position, std::span<std::byte> out);
// The checksum of the first `bytes` bytes of the stream.
std::uint64_t expected_checksum(std::uint64_t bytes);

struct WorkloadOptions {
  std::uint64_t bytes = 16u << 20; // stream: total bytes
  std::uint32_t message = 4096;    // stream/ping: bytes per message (the last may be shorter)
  std::uint64_t count = 1000;      // ping: round trips; echo: stop after this many (0: at close)
  Nanos timeout = 60'000'000'000;  // longest wait for any single message
  bool close = true;               // close the channel at the end (orderly)
  Nanos think = 0;                 // ping: pause before each round trip (the peer goes idle)
};

// What an agent measured of the paths it used: frames it sent on a ring (the local path) and
// on the network (the remote path), and the ring instances it opened an end of (created,
// attached, offered or mapped). Counted where the frames went (a channel's own send counter, a
// frame path's accepted sends, a link's per-path counters), never copied from a plan.
struct PathCounters {
  std::uint64_t frames_local = 0, frames_remote = 0, channels_opened = 0;
};

// The outcome of one workload, printable as one line.
struct Report {
  std::string mode;
  bool ok = false;
  std::string error; // empty when ok
  std::uint64_t bytes = 0, messages = 0, checksum = 0;
  Nanos elapsed = 0; // first message to last
  // ping: round-trip times
  Nanos rtt_min = 0, rtt_p50 = 0, rtt_p99 = 0, rtt_mean = 0;
  ChannelStats stats{};
  PathCounters paths{};     // frames_local=, frames_remote=, channels_opened= on the line
  std::string extra;        // more " key=value" pairs for the line (no spaces in values)
  std::string line() const; // "IVMC-RESULT mode=... ok=1 ..."
};

// What a workload runs over: a channel, or any link frame path (the TCP remote path).
class WorkloadPath {
public:
  virtual ~WorkloadPath() = default;
  virtual Errc send(std::span<const std::byte> message, Nanos timeout) = 0;
  virtual Errc recv(std::span<std::byte> buffer, std::size_t& length, Nanos timeout) = 0;
  virtual std::size_t max_message() const = 0;
  // Orderly end (a channel's close(): waits until the peer consumed everything sent).
  virtual Errc finish(Nanos timeout) = 0;
  virtual ChannelStats stats() const { return {}; }
  virtual std::string detail() const { return {}; } // why it failed, if it knows more
  // What was sent over this path so far, and the ring instance it is (if it is one).
  virtual PathCounters counters() const = 0;
};

// A ring's counters: the frames its own send counter saw, and the one instance it is.
inline PathCounters ring_counters(const Channel& channel) {
  return {channel.stats().messages_sent, 0, 1};
}

class ChannelWorkloadPath final : public WorkloadPath {
public:
  explicit ChannelWorkloadPath(Channel& channel) : channel_(channel) {}
  Errc send(std::span<const std::byte> m, Nanos timeout) override {
    return channel_.send(m, timeout);
  }
  Errc recv(std::span<std::byte> b, std::size_t& n, Nanos timeout) override {
    return channel_.recv(b, n, timeout);
  }
  std::size_t max_message() const override { return channel_.max_message(); }
  Errc finish(Nanos timeout) override { return channel_.close(timeout); }
  ChannelStats stats() const override { return channel_.stats(); }
  std::string detail() const override { return channel_.error_detail(); }
  PathCounters counters() const override { return ring_counters(channel_); }

private:
  Channel& channel_;
};

// A frame path (link.hpp) as a workload path. A frame path has no orderly close: with
// `finish_waits` finish() reads until the peer closes the path (a stream's sender knows then
// that everything arrived); otherwise it does nothing.
class FrameWorkloadPath final : public WorkloadPath {
public:
  explicit FrameWorkloadPath(FramePath& path, bool finish_waits = false)
      : path_(path), finish_waits_(finish_waits) {}
  Errc send(std::span<const std::byte> m, Nanos timeout) override {
    const Errc e = path_.send({}, m, timeout);
    if (e == Errc::ok) ++frames_sent_;
    return e;
  }
  Errc recv(std::span<std::byte> b, std::size_t& n, Nanos timeout) override {
    return path_.recv({}, b, n, timeout);
  }
  std::size_t max_message() const override {
    return std::min<std::size_t>(path_.max_frame(), 1u << 20);
  }
  Errc finish(Nanos timeout) override;
  PathCounters counters() const override { return {0, frames_sent_, 0}; }

private:
  FramePath& path_;
  bool finish_waits_;
  std::uint64_t frames_sent_ = 0; // frames the path accepted
};

// Sends `bytes` of the stream in `message`-byte messages, then finishes (closes).
Report stream_send(WorkloadPath& path, const WorkloadOptions& options);
// Receives until `bytes` arrived (or the peer closed); checks the checksum against the stream.
// Its elapsed time runs from the first message to the last: the stream's throughput.
Report stream_recv(WorkloadPath& path, const WorkloadOptions& options);
// Returns every message until the peer closes.
Report echo(WorkloadPath& path, const WorkloadOptions& options);
// `count` round trips of `message` bytes through a peer running echo().
Report ping(WorkloadPath& path, const WorkloadOptions& options);

// The same over a channel.
inline Report stream_send(Channel& c, const WorkloadOptions& o) {
  ChannelWorkloadPath p(c);
  return stream_send(p, o);
}
inline Report stream_recv(Channel& c, const WorkloadOptions& o) {
  ChannelWorkloadPath p(c);
  return stream_recv(p, o);
}
inline Report echo(Channel& c, const WorkloadOptions& o) {
  ChannelWorkloadPath p(c);
  return echo(p, o);
}
inline Report ping(Channel& c, const WorkloadOptions& o) {
  ChannelWorkloadPath p(c);
  return ping(p, o);
}

// One parsed IVMC-RESULT line: its key=value pairs ("error" may contain spaces, quoted).
using ReportFields = std::map<std::string, std::string>;
std::optional<ReportFields> parse_report(std::string_view line);

// The measured path counters of a parsed line. The line comes from another machine (a guest's
// console, a domU's outcome relayed by dom0): each of frames_local, frames_remote and
// channels_opened must be a plain decimal of 1 to 15 digits (no sign, space or exponent, so
// that sums stay exact in a double); nullopt if any is missing or is not.
std::optional<PathCounters> parse_path_counters(const ReportFields& fields);

} // namespace ivmc::posix
