// The host backend's workloads inside a VM process: streams (paced or as fast as the link
// takes them), request/response, each message checked end to end.
//
// Every message starts with a 24-byte header (its index in the pipe, when the application
// created it, the pipe, and a digest of these and the length) and carries a pattern derived
// from (pipe, index), so the receiver checks every byte, the order, and what is missing.
// Private to backends/host.
#pragma once

#include "ivmc/core/latency_histogram.hpp"
#include "ivmc/core/platform.hpp"
#include "vm_links.hpp"

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ivmc::host {

inline constexpr std::size_t kMessageHeader = 24;

struct MessageHeader {
  std::uint64_t index = 0;
  std::int64_t created = 0; // MonotonicClock, ns
  std::uint32_t pipe = 0;
  std::uint32_t bytes = 0; // the message's length (not in the header: its digest covers it)
};
// Writes header and pattern into `out` (out.size() >= kMessageHeader).
void fill_message(std::span<std::byte> out, const MessageHeader& h);
// Checks length, header and every pattern byte; false names nothing (the caller counts it).
bool check_message(std::span<const std::byte> in, std::uint32_t pipe, MessageHeader& h);

enum class Role : std::uint8_t { stream_send, stream_recv, rr_client, rr_server };
const char* to_string(Role r);
bool parse_role(std::string_view text, Role& out);

struct WorkSpec {
  std::uint32_t id = 0; // the scenario's workload index
  Role role = Role::stream_send;
  VmId peer = 0;
  std::uint32_t tx_pipe = 0, rx_pipe = 0; // by role: a sender uses tx, a receiver rx, rr both
  std::uint32_t bytes = 1024;
  double rate = 0; // stream: messages/s (0: as fast as possible)
  bool poisson = false;
  Nanos start = 0, stop = 0; // absolute (MonotonicClock)
  std::uint64_t seed = 1;
};

// When the run measures and when it ends (absolute MonotonicClock times).
struct RunWindow {
  Nanos measure_from = 0, measure_to = 0;
  Nanos give_up = 0; // receivers stop waiting for a sender's end of stream here
};

struct WorkResult {
  std::uint64_t sent = 0;            // messages the application handed to the link
  std::uint64_t sends = 0;           // link sends (requests and responses count)
  std::uint64_t sends_in_window = 0; // of which inside a race window (the board's flags)
  std::uint64_t delivered = 0;       // messages received and checked
  std::uint64_t measured_messages = 0, measured_bytes = 0, transactions = 0;
  std::uint64_t corrupt = 0;         // failed the check: never counted as delivered
  std::uint64_t reordered = 0;       // an index below the expected one
  std::uint64_t gaps = 0;            // messages skipped (lost)
  std::uint64_t recovered_bytes = 0; // read from a channel after it broke
  bool finished = true;              // the end of stream arrived (receivers) / was sent (senders)
  LatencyHistogram latency;          // ns; stream: one way, rr: round trip (bounded memory)
  std::string error;
};

// Runs one role to the end; never throws (errors land in result.error).
void run_work(VmContext& vm, const WorkSpec& spec, SenderEnd* tx, ReceiverEnd* rx,
              const RunWindow& window, const std::atomic<bool>& abort, WorkResult& result);

} // namespace ivmc::host
