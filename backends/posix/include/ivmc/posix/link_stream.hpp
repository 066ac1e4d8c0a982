// A checked stream over a link (link.hpp) on any platform: the sender's loop and the
// receiver's, which checks every byte in place against the stream (workload.hpp's content and
// checksum), so that nothing is lost, duplicated or reordered across path switches; and a
// receiver's local instances by epoch. The KVM guest's link (kvm/ivshmem_link_stream.hpp) and
// the Xen agent's link both run on these.
#pragma once

#include "ivmc/core/link.hpp"
#include "ivmc/posix/workload.hpp"

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ivmc::posix {

// When the receiver's link changed path, and how much it had by then.
struct PathChange {
  Nanos when = 0; // MonotonicClock
  PathKind to = PathKind::remote;
  std::uint64_t bytes = 0;
};

// A receiver's local instances, by epoch (the current one, and at most a lagging one), for any
// platform: `open(epoch, timeout)` maps or attaches that instance's endpoint and throws while
// the sender has not set it up yet (the link then asks again). Installs find_local and
// release_local into a link environment; must outlive the link end that uses it. opened()
// counts the instances it opened (a report's channels_opened).
template <class Endpoint>
class ReceiverInstances {
public:
  using Open = std::function<std::unique_ptr<Endpoint>(std::uint64_t epoch, Nanos timeout)>;
  explicit ReceiverInstances(Open open) : open_(std::move(open)) {}
  std::uint64_t opened() const { return opened_; }
  void install(LinkEnvironment& env) {
    env.find_local = [this](std::uint64_t epoch, Nanos timeout) -> FramePath* {
      if (auto it = instances_.find(epoch); it != instances_.end()) return it->second.path.get();
      Instance instance;
      try {
        instance.endpoint = open_(epoch, timeout);
      } catch (const std::exception&) {
        return nullptr; // not there yet: the link asks again
      }
      instance.path = std::make_unique<ChannelPath>(instance.endpoint->channel());
      current_ = epoch;
      ++opened_;
      return (instances_[epoch] = std::move(instance)).path.get();
    };
    env.release_local = [this] { instances_.erase(current_); };
  }

private:
  struct Instance {
    std::unique_ptr<Endpoint> endpoint;
    std::unique_ptr<ChannelPath> path;
  };
  Open open_;
  std::map<std::uint64_t, Instance> instances_;
  std::uint64_t current_ = 0;
  std::uint64_t opened_ = 0;
};

// The checked stream over any platform's link.
// Sends the stream until `limit` bytes; `before_send(bytes_so_far, limit)` runs before each
// message (a platform follows its membership view there, and may lower the limit). Prints
// `IVMC-LINK path ...` on each switch. Finishing the stream (and draining the platform's
// paths) is the caller's; the report has bytes, messages, checksum, the frames the link sent
// on each path, and the error if any (the ring instances opened are the caller's to add).
Report send_link_stream(LinkSender& sender, std::uint64_t limit, std::uint32_t message,
                        Nanos timeout,
                        const std::function<void(std::uint64_t, std::uint64_t&)>& before_send);
// Receives until the sender finishes, checking every byte in place against the stream.
Report receive_link_stream(LinkReceiver& receiver, Nanos timeout,
                           std::vector<PathChange>* changes = nullptr);
// The link's counters as " key=value" pairs for a report line.
std::string link_counters(const LinkStats& stats);

} // namespace ivmc::posix
