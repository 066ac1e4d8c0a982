// The simulated world's links (internal): one direction of a workload is a Pipe, a real
// LinkSender in VM `from` and a real LinkReceiver in VM `to`, over a SimRemotePath (frames with
// their arrival times) and, when local, a real Channel in heap memory (a Generation), whose
// doorbells (SimDoorbell) schedule the woken endpoint's next step instead of waking a thread.
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/core/latency_histogram.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/membership.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <new>
#include <vector>

namespace ivmc::sim {

// What travels in every frame before the application's bytes: which application message this
// piece belongs to, and when the application started sending it.
struct FrameMeta {
  std::uint64_t message = 0;
  std::uint32_t piece = 0, pieces = 1;
  Nanos created = 0;
};
constexpr std::size_t kMetaBytes = sizeof(FrameMeta);
static_assert(kMetaBytes == 24);

enum class Proto { tcp, udp };

struct Pipe;

// A doorbell that schedules the woken endpoint's next step instead of waking a thread.
class SimDoorbell final : public Doorbell {
public:
  std::function<void(Wake)> on_ring;
  std::uint64_t rings = 0;
  void ring(Wake reason) override {
    ++rings;
    if (on_ring) on_ring(reason);
  }
  WaitResult wait(Wake, Nanos) override { return WaitResult::timed_out; } // never blocks
};

// The memory of one channel instance: a private anonymous mapping. Channel::create zeroes the
// whole area, rings included; release_rings() then hands the rings' pages back to the kernel
// (their content stays zero: a later read sees zero, a write faults in a fresh page). So a ring
// costs memory only where records were written: a one-way stream never writes its reverse ring
// (1,000 channels of 2 x 256 KiB were 516 MiB resident from the start; now about half, as the
// forward rings fill). The simulator does write every record's bytes into its ring and read
// them back, as a real channel does: that is what it simulates.
class ChannelMemory {
public:
  explicit ChannelMemory(std::size_t bytes);
  ~ChannelMemory();
  ChannelMemory(const ChannelMemory&) = delete;
  ChannelMemory& operator=(const ChannelMemory&) = delete;
  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  // After Channel::create: drops the pages of both rings (wire::Identity's ring_offset and
  // ring_bytes), which create() left all zero and no record has been written into yet.
  void release_rings();

private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// One local path instance: a real channel in real memory between two VMs.
struct Generation {
  std::uint64_t epoch = 0;
  std::uint32_t ring_bytes = 0;
  std::unique_ptr<ChannelMemory> memory;
  SimDoorbell tx_bell, rx_bell;
  std::unique_ptr<Channel> tx, rx;
  std::unique_ptr<ChannelPath> tx_path, rx_path;
  bool broken = false;
  bool released = false;
  ~Generation() { // the channels go before their memory
    rx_path.reset();
    tx_path.reset();
    rx.reset();
    tx.reset();
  }
};

// The remote path as state: frames with the time they reach the receiver's socket.
class SimRemotePath final : public FramePath {
public:
  struct Frame {
    std::vector<std::byte> bytes;
    Nanos arrival;
  };
  std::function<Nanos(std::size_t frame_bytes)> arrival_of; // set by the pipe
  std::function<void(Nanos arrival)> on_enqueue;
  Clock* clock = nullptr;
  std::deque<Frame> frames;
  std::uint64_t in_flight_bytes = 0; // sent, not yet read by the receiver (the TCP window)
  // The buffers of frames already read, re-used by later sends: no allocation per frame (at
  // most as many as were ever in flight at once).
  std::vector<std::vector<std::byte>> spare;

  Errc send(std::span<const std::byte> head, std::span<const std::byte> body, Nanos) override {
    Frame f;
    if (!spare.empty()) {
      f.bytes = std::move(spare.back());
      spare.pop_back();
    }
    f.bytes.resize(head.size() + body.size());
    if (!head.empty()) std::memcpy(f.bytes.data(), head.data(), head.size());
    if (!body.empty()) std::memcpy(f.bytes.data() + head.size(), body.data(), body.size());
    // In order: a later frame never overtakes an earlier one on one path.
    f.arrival = std::max(arrival_of(f.bytes.size()), frames.empty() ? 0 : frames.back().arrival);
    in_flight_bytes += f.bytes.size();
    const Nanos arrival = f.arrival;
    frames.push_back(std::move(f));
    if (on_enqueue) on_enqueue(arrival);
    return Errc::ok;
  }
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos) override {
    if (frames.empty() || frames.front().arrival > clock->now()) return Errc::would_block;
    Frame& f = frames.front();
    length = f.bytes.size();
    if (length > head.size() + body.size()) return Errc::buffer_too_small;
    const std::size_t h = std::min(head.size(), length);
    std::memcpy(head.data(), f.bytes.data(), h);
    if (length > h) std::memcpy(body.data(), f.bytes.data() + h, length - h);
    in_flight_bytes -= length;
    spare.push_back(std::move(f.bytes));
    frames.pop_front();
    return Errc::ok;
  }
  std::size_t max_frame() const override { return 64u << 20; }
};

// Per-workload figures.
struct WorkloadStats {
  std::uint64_t messages = 0, bytes = 0; // delivered within the measured interval
  std::uint64_t transactions = 0;        // rr
  LatencyHistogram latency; // ns; stream: one-way, rr: round trip (bounded memory, 1/256 error)
};

// One direction of one workload: a LinkSender in VM `from`, a LinkReceiver in VM `to`.
struct Pipe {
  VmId from = 0, to = 0;
  Proto proto = Proto::tcp;
  SimRemotePath remote;
  std::vector<std::unique_ptr<Generation>> generations;
  Generation* tx_gen = nullptr; // the sender's current local instance
  Generation* rx_gen = nullptr; // the receiver's
  std::unique_ptr<LinkSender> sender;
  std::unique_ptr<LinkReceiver> receiver;
  bool ever_local = false, local_forbidden = false;
  bool existed = false, gone = false, retry_pending = false; // both VMs are up / one stopped

  // Sender state.
  struct Outgoing {
    std::uint64_t id;
    std::size_t bytes;
    Nanos created;
    std::uint32_t next_piece = 0, pieces = 1;
  };
  std::deque<Outgoing> outbox;
  bool tx_busy = false;
  bool tx_waiting = false; // for ring space or the remote window
  bool flush_pending = false;
  Nanos send_offset = 0;        // the current send's CPU time: data is visible this much later
  std::function<void()> refill; // stream workloads: more to send
  // Receiver state.
  enum class RxState { idle, busy, polling, spinning, sleeping } rx_state = RxState::idle;
  bool rx_rested = false; // it slept: the next message pays for the interrupt
  std::function<void(const FrameMeta&, std::size_t bytes)> on_message; // whole message read
  std::vector<std::byte> rx_buffer, tx_buffer;
  FrameMeta rx_meta; // the frame being processed (state of the busy receiver)
  std::size_t rx_frame = 0;
  bool rx_last = false;
  std::uint64_t rx_spin_token = 0;
  std::int64_t rx_core_host = -1; // the host whose core this receiver holds while it polls
};

} // namespace ivmc::sim
