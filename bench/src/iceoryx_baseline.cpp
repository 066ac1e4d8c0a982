// The iceoryx baseline (see iceoryx_baseline.hpp): iceoryx 2.0's untyped publisher and
// subscriber between two fresh processes, through an iox-roudi started for the run.
#include "iceoryx_baseline.hpp"

#include "cleanup_guard.hpp"
#include "harness.hpp"
#include "placement.hpp"
#include "roudi.hpp"

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <stdexcept>
#include <thread>

namespace ivmc::bench {
namespace {

constexpr std::uint64_t kMaxQueue = iox::MAX_SUBSCRIBER_QUEUE_CAPACITY; // 256 in iceoryx 2.0
constexpr std::uint32_t kRttBytes = 64;
constexpr int kMaxRounds = 256;
constexpr double kConnectTimeout_s = 5;
constexpr double kStallTimeout_s = 20; // a step that takes this long has hung

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause(); // as the ring's polling consumer pauses between polls
#endif
}

// What the two processes share: MAP_SHARED memory mapped before the fork. The measuring
// process writes the results; the parent reads them after both children have exited (their
// exit orders those writes before the parent's reads).
struct Shared {
  std::atomic<std::uint64_t> sent{0};         // messages the peer published (stream)
  std::atomic<std::uint32_t> sender_done{0};  // the peer published its last message
  std::atomic<std::uint32_t> measure_done{0}; // the measuring process took its last message
  double gbps = 0, msgs_per_s = 0;
  ProcessPlacement measuring, peer; // each written by its process before it exits
  int rounds = 0;
  double rtt_ns[kMaxRounds], line_ns[kMaxRounds];
};

class SharedPage {
public:
  SharedPage() {
    void* p =
        mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("iceoryx baseline: mmap of the result page");
    shared_ = new (p) Shared;
  }
  ~SharedPage() { munmap(shared_, sizeof(Shared)); }
  Shared* operator->() { return shared_; }
  Shared& get() { return *shared_; }

private:
  Shared* shared_;
};

iox::capro::IdString_t id(const std::string& s) {
  return iox::capro::IdString_t(iox::cxx::TruncateToCapacity, s.c_str());
}

iox::capro::ServiceDescription topic(const std::string& instance, const char* event) {
  return {id("ivmc-bench"), id(instance), id(event)};
}

std::uint32_t queue_for(std::size_t size, std::uint32_t in_flight_bytes) {
  return static_cast<std::uint32_t>(
      std::clamp<std::uint64_t>(in_flight_bytes / std::max<std::size_t>(size, 1), 1, kMaxQueue));
}

iox::popo::UntypedPublisher make_publisher(const iox::capro::ServiceDescription& service) {
  iox::popo::PublisherOptions o;
  o.historyCapacity = 0;
  o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER; // no drops
  return iox::popo::UntypedPublisher(service, o);
}

iox::popo::UntypedSubscriber make_subscriber(const iox::capro::ServiceDescription& service,
                                             std::uint32_t queue) {
  iox::popo::SubscriberOptions o;
  o.queueCapacity = queue;
  o.historyRequest = 0;
  o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER; // pairs with WAIT_FOR_CONSUMER
  return iox::popo::UntypedSubscriber(service, o);
}

void wait_connected(const iox::popo::UntypedPublisher* pub,
                    const iox::popo::UntypedSubscriber* sub) {
  const double deadline = now_s() + kConnectTimeout_s;
  while ((sub && sub->getSubscriptionState() != iox::SubscribeState::SUBSCRIBED) ||
         (pub && !pub->hasSubscribers())) {
    if (now_s() > deadline) throw std::runtime_error("publisher and subscriber never connected");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void* loan(iox::popo::UntypedPublisher& pub, std::uint32_t size) {
  // The ring aligns payloads of 256 bytes or more to a cache line; so do we.
  const std::uint32_t align = size >= 256 ? 64 : iox::CHUNK_DEFAULT_USER_PAYLOAD_ALIGNMENT;
  const double deadline = now_s() + kStallTimeout_s;
  for (std::uint32_t tries = 1;; ++tries) {
    auto r = pub.loan(size, align);
    if (!r.has_error()) return r.value();
    if ((tries & 0xffff) == 0 && now_s() > deadline)
      throw std::runtime_error("loan of a " + std::to_string(size) + "-byte chunk kept failing");
    cpu_relax();
  }
}

// Polls take() until a chunk arrives; returns its user payload and size.
const std::byte* take(iox::popo::UntypedSubscriber& sub, std::uint32_t& size, double deadline) {
  for (std::uint32_t polls = 1;; ++polls) {
    auto r = sub.take();
    if (!r.has_error()) {
      size = iox::mepoo::ChunkHeader::fromUserPayload(r.value())->userPayloadSize();
      return static_cast<const std::byte*>(r.value());
    }
    if (r.get_error() != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE)
      throw std::runtime_error("take: the subscriber holds too many chunks");
    if ((polls & 0xffff) == 0 && now_s() > deadline) throw std::runtime_error("take timed out");
    cpu_relax();
  }
}

void wait_flag(const std::atomic<std::uint32_t>& flag, const char* what) {
  const double deadline = now_s() + kStallTimeout_s;
  // Acquire: what the other process wrote before raising the flag is visible after it.
  while (flag.load(std::memory_order_acquire) == 0) {
    if (now_s() > deadline) throw std::runtime_error(std::string("waited too long for ") + what);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// A fresh process pinned to `cpu` running `role` under its own iceoryx runtime. The process
// ends with exit(), not _exit(): the runtime's static destructor deregisters it from RouDi,
// which would otherwise keep the pid registered until its monitoring notices, and signal it
// when RouDi stops.
pid_t spawn(int cpu, const std::string& runtime_name, const std::function<void()>& role,
            ProcessPlacement* placement) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid != 0) return pid;
  int rc = 0;
  if (!die_with_parent(SIGKILL)) _exit(3);
  if (cpu >= 0) pin_to_cpu(cpu);
  try {
    // Warnings and errors only: iceoryx logs every registration at its default level.
    iox::log::LogManager::GetLogManager().SetDefaultLogLevel(
        iox::log::LogLevel::kWarn, iox::log::LogLevelOutput::kHideLogLevel);
    iox::runtime::PoshRuntime::initRuntime(
        iox::RuntimeName_t(iox::cxx::TruncateToCapacity, runtime_name.c_str()));
    const ProcessSample from = sample_process();
    role(); // its publisher and subscriber are gone when it returns or throws
    *placement = placement_between(from, sample_process());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ivmc bench (iceoryx process %s): %s\n", runtime_name.c_str(), e.what());
    rc = 3;
  }
  std::fflush(nullptr);
  std::exit(rc);
}

class IceoryxImpl final : public IceoryxBaseline {
public:
  IceoryxImpl(const PairCpus& cpus, std::uint32_t in_flight_bytes, std::unique_ptr<Roudi> roudi)
      : cpus_(cpus), in_flight_bytes_(in_flight_bytes), roudi_(std::move(roudi)) {}

  PairedRtt rtt(int rounds, int iterations) override {
    rounds = std::min(rounds, kMaxRounds);
    SharedPage shared;
    LineProbe line;
    const std::string instance = next_instance();
    run(
        "iceoryx ping-pong",
        [&] {
          auto ping = make_publisher(topic(instance, "ping"));
          auto pong = make_subscriber(topic(instance, "pong"), 4);
          wait_connected(&ping, &pong);
          TscTimer timer;
          std::vector<std::byte> msg(kRttBytes, std::byte{1});
          std::uint64_t sink = 0;
          for (int r = 0; r < rounds + 1; ++r) { // round 0 warms up
            const double base = median(line.parent_round(iterations));
            std::vector<double> samples;
            samples.reserve(static_cast<std::size_t>(iterations));
            const double deadline = now_s() + kStallTimeout_s;
            for (int i = 0; i < iterations; ++i) {
              const std::uint64_t t0 = TscTimer::read();
              void* out = loan(ping, kRttBytes);
              std::memcpy(out, msg.data(), kRttBytes);
              ping.publish(out);
              std::uint32_t got = 0;
              const std::byte* in = take(pong, got, deadline);
              sink ^= touch_bytes(in, got);
              pong.release(in);
              samples.push_back(timer.to_ns(TscTimer::read() - t0));
            }
            if (r == 0) continue;
            shared->rtt_ns[r - 1] = median(samples);
            shared->line_ns[r - 1] = base;
          }
          asm volatile("" ::"r"(sink)); // every byte was read
          shared->rounds = rounds;
          shared->measure_done.store(1, std::memory_order_release); // results written first
        },
        [&] {
          auto ping = make_subscriber(topic(instance, "ping"), 4);
          auto pong = make_publisher(topic(instance, "pong"));
          wait_connected(&pong, &ping);
          for (int r = 0; r < rounds + 1; ++r) {
            line.child_round(iterations);
            const double deadline = now_s() + kStallTimeout_s;
            for (int i = 0; i < iterations; ++i) {
              std::uint32_t got = 0;
              const std::byte* in = take(ping, got, deadline);
              void* out = loan(pong, got);
              std::memcpy(out, in, got);
              pong.publish(out);
              ping.release(in);
            }
          }
          wait_flag(shared->measure_done, "the last response to be taken");
        },
        shared.get());
    PairedRtt out;
    for (int r = 0; r < shared->rounds; ++r) {
      out.ring_ns.push_back(shared->rtt_ns[r]);
      out.baseline_ns.push_back(shared->line_ns[r]);
    }
    return out;
  }

  Throughput throughput(std::size_t size, double seconds) override {
    SharedPage shared;
    const std::string instance = next_instance();
    const auto bytes = static_cast<std::uint32_t>(size);
    const std::uint32_t queue = queue_for(size, in_flight_bytes_);
    run(
        "iceoryx stream",
        [&] {
          auto sub = make_subscriber(topic(instance, "stream"), queue);
          wait_connected(nullptr, &sub);
          std::uint64_t messages = 0, total = 0, sink = 0;
          double first = 0;
          const double deadline = now_s() + seconds + kStallTimeout_s;
          for (std::uint32_t polls = 1;; ++polls) {
            auto r = sub.take();
            if (!r.has_error()) {
              const auto* p = static_cast<const std::byte*>(r.value());
              const std::uint32_t n =
                  iox::mepoo::ChunkHeader::fromUserPayload(p)->userPayloadSize();
              if (messages++ == 0) first = now_s();
              sink ^= touch_bytes(p, n);
              total += n;
              sub.release(p);
              continue;
            }
            // Acquire: the count of messages sent is final once the flag is seen.
            if (shared->sender_done.load(std::memory_order_acquire) != 0 &&
                messages >= shared->sent.load(std::memory_order_relaxed)) {
              break;
            }
            if ((polls & 0xffff) == 0 && now_s() > deadline)
              throw std::runtime_error("the stream stalled");
            cpu_relax();
          }
          const double elapsed = now_s() - first;
          asm volatile("" ::"r"(sink)); // every byte was read
          if (total != messages * size) throw std::runtime_error("chunks of the wrong size");
          shared->gbps = static_cast<double>(total) / elapsed / 1e9;
          shared->msgs_per_s = static_cast<double>(messages) / elapsed;
          shared->measure_done.store(1, std::memory_order_release); // results written first
        },
        [&] {
          auto pub = make_publisher(topic(instance, "stream"));
          wait_connected(&pub, nullptr);
          std::vector<std::byte> msg(size, std::byte{0x5a});
          std::uint64_t sent = 0;
          const double t0 = now_s();
          for (;; ++sent) {
            void* out = loan(pub, bytes);
            std::memcpy(out, msg.data(), size);
            pub.publish(out);
            if ((sent & 63) == 0 && now_s() - t0 > seconds) break;
          }
          shared->sent.store(sent + 1, std::memory_order_relaxed); // published by the flag
          // Release: the count is visible before the flag that makes it final.
          shared->sender_done.store(1, std::memory_order_release);
          // Keep the publisher until everything was taken: its chunks are in the queue.
          wait_flag(shared->measure_done, "the subscriber to take the last message");
        },
        shared.get());
    Throughput result{shared->gbps, shared->msgs_per_s, {}};
    result.placement = last_placement_;
    result.placement.measuring = shared->measuring;
    result.placement.peer = shared->peer;
    return result;
  }

private:
  std::string next_instance() {
    return "p" + std::to_string(getpid()) + "-" + std::to_string(++runs_);
  }

  // Runs the two roles in fresh processes and waits for both; a process that fails or hangs
  // ends the other, and throws naming `what`.
  void run(const std::string& what, const std::function<void()>& measure,
           const std::function<void()>& peer, Shared& shared) {
    const std::string base = "ivmc-bench-" + std::to_string(getpid()) + "-" + std::to_string(runs_);
    const double steal_from = steal_ns(cpus_.parent) + steal_ns(cpus_.child), t0 = now_s();
    // Each runtime has a socket (and its lock file) named after it in /tmp, which a killed
    // process leaves behind: removed if the bench is interrupted, and after every run.
    const std::string names[2] = {base + "-peer", base + "-measure"};
    const std::string files[4] = {"/tmp/" + names[0], "/tmp/" + names[0] + ".lock",
                                  "/tmp/" + names[1], "/tmp/" + names[1] + ".lock"};
    const CleanupGuard file_guards[4] = {CleanupGuard(files[0]), CleanupGuard(files[1]),
                                         CleanupGuard(files[2]), CleanupGuard(files[3])};
    pid_t pids[2] = {spawn(cpus_.child, names[0], peer, &shared.peer), -1};
    CleanupGuard peer_guard(pids[0], SIGKILL);
    pids[1] = spawn(cpus_.parent, names[1], measure, &shared.measuring);
    CleanupGuard measure_guard(pids[1], SIGKILL);
    int status[2] = {0, 0};
    bool done[2] = {false, false};
    std::string failure;
    const double deadline = now_s() + kConnectTimeout_s + 3 * kStallTimeout_s;
    while (!done[0] || !done[1]) {
      for (int i = 0; i < 2; ++i) {
        if (done[i] || waitpid(pids[i], &status[i], WNOHANG) != pids[i]) continue;
        done[i] = true;
        if (!WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0) {
          failure = std::string(i == 0 ? "the peer" : "the measuring") +
                    " process failed (status " + std::to_string(status[i]) + ")";
        }
      }
      if (!failure.empty() || now_s() > deadline) {
        if (failure.empty()) failure = "the processes hung and were killed";
        for (int i = 0; i < 2; ++i) {
          if (done[i]) continue;
          kill(pids[i], SIGKILL);
          waitpid(pids[i], &status[i], 0);
          done[i] = true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (const std::string& f : files) unlink(f.c_str()); // gone already unless killed
    if (!failure.empty()) throw std::runtime_error(what + ": " + failure);
    const double steal_to = steal_ns(cpus_.parent) + steal_ns(cpus_.child), t1 = now_s();
    last_placement_.steal_share =
        steal_from < 0 || steal_to < 0 ? -1 : (steal_to - steal_from) / (2e9 * (t1 - t0));
  }

  PairCpus cpus_;
  std::uint32_t in_flight_bytes_;
  std::unique_ptr<Roudi> roudi_;
  int runs_ = 0;
  PairPlacement last_placement_; // steal during the last run()
};

} // namespace

bool iceoryx_built() {
  return true;
}

std::unique_ptr<IceoryxBaseline> start_iceoryx(const PairCpus& cpus,
                                               const std::vector<std::size_t>& sizes,
                                               std::uint32_t in_flight_bytes,
                                               std::string& why_not) {
  // One pool per message size: the payload plus room for 64-byte alignment (RouDi adds its
  // chunk header itself), enough chunks for a full queue on each side and the loans.
  std::map<std::uint32_t, std::uint32_t> pools;
  std::vector<std::size_t> all = sizes;
  all.push_back(kRttBytes);
  for (std::size_t s : all) {
    const auto chunk = static_cast<std::uint32_t>((s + 64 + 63) / 64 * 64);
    const std::uint32_t count = 2 * queue_for(s, in_flight_bytes) + 32;
    pools[chunk] = std::max(pools[chunk], count);
  }
  std::vector<MemPool> config;
  for (const auto& [chunk, count] : pools) config.push_back({chunk, count});
  auto roudi = Roudi::start(config, why_not);
  if (!roudi) return nullptr;
  return std::make_unique<IceoryxImpl>(cpus, in_flight_bytes, std::move(roudi));
}

} // namespace ivmc::bench
