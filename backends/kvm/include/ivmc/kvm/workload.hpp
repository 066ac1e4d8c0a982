// Checked workloads over one channel, run the same way by the guest agent (ivmc-guest) and by
// host processes in the vm tests: a stream of N bytes with a checksum, echo, and ping (round
// trips). The stream's bytes are a function of their position, and the checksum depends on
// every byte and its order, so a receiver's checksum equals expected_checksum(N) exactly when
// nothing was lost, duplicated, reordered or corrupted.
//
// Reports are one line of key=value pairs (`IVMC-RESULT mode=recv ok=1 bytes=...`), the
// agent's protocol with its launcher: parse_report() reads them back.
#pragma once

#include "ivmc/core/channel.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ivmc::kvm {

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
  std::uint64_t bytes = 16u << 20;  // stream: total bytes
  std::uint32_t message = 4096;     // stream/ping: bytes per message (the last may be shorter)
  std::uint64_t count = 1000;       // ping: round trips
  Nanos timeout = 60'000'000'000;   // longest wait for any single message
  bool close = true;                // close the channel at the end (orderly)
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
  std::string line() const; // "IVMC-RESULT mode=... ok=1 ..."
};

// Sends `bytes` of the stream in `message`-byte messages, then closes.
Report stream_send(Channel& channel, const WorkloadOptions& options);
// Receives until `bytes` arrived (or the peer closed); checks the checksum against the stream.
Report stream_recv(Channel& channel, const WorkloadOptions& options);
// Returns every message until the peer closes.
Report echo(Channel& channel, const WorkloadOptions& options);
// `count` round trips of `message` bytes through a peer running echo().
Report ping(Channel& channel, const WorkloadOptions& options);

// One parsed IVMC-RESULT line: its key=value pairs ("error" may contain spaces, quoted).
using ReportFields = std::map<std::string, std::string>;
std::optional<ReportFields> parse_report(std::string_view line);

} // namespace ivmc::kvm
