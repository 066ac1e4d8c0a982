// The ground truth of co-residency: which hosts exist, which VM runs on which host, and which
// VM pairs communicate. Membership sources (membership_sources.hpp) read it to build each VM's
// *belief*; the difference between the two is what the survey calls a race window.
//
// Kept in a Boost.Graph adjacency_list (hosts and VMs are vertices; "resides on" and "channel"
// are edges) behind an opaque pointer, so users of the core do not compile Boost. Lookups go
// through id -> vertex maps: O(1) by id, O(degree) for neighbourhoods; nothing scans all VMs.
// Sized for the simulation's 1,000 hosts and 10,000 VMs.
//
// Single-threaded: the platform (or the simulation) serialises every call.
#pragma once

#include "ivmc/core/membership.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc {

// A misuse of the topology: what was asked and which id it concerned.
class TopologyError : public std::runtime_error {
public:
  enum class Code : std::uint8_t {
    unknown_vm,
    unknown_host,
    vm_exists,
    host_exists,
    same_host,       // migrate_vm to the host the VM is already on
    self_channel,    // add_channel(a, a)
    channel_exists,  // add_channel twice for one pair
    unknown_channel, // remove_channel for a pair with no channel
    address_in_use,  // another VM already has this IP or MAC
    time_went_back,  // an event earlier than the previous one
  };
  TopologyError(Code code, std::uint32_t id, const std::string& what)
      : std::runtime_error(what), code_(code), id_(id) {}
  Code code() const { return code_; }
  // The VM or host id the error is about.
  std::uint32_t id() const { return id_; }

private:
  Code code_;
  std::uint32_t id_;
};

class Topology {
public:
  Topology();
  ~Topology();
  Topology(Topology&&) noexcept;
  Topology& operator=(Topology&&) noexcept;
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // Hosts are never removed: a host with no VMs is simply empty.
  void add_host(HostId host);
  bool has_host(HostId host) const;
  std::size_t host_count() const;
  std::vector<HostId> hosts() const; // sorted; O(hosts), for setup and reports

  // Each membership change returns the event it represents, to be passed on to the sources
  // (MembershipSource::on_event) before the next change. `now` may not go backwards: the
  // sources number changes in order of t_event. A non-empty IP or MAC must be unique.
  TopologyEvent create_vm(VmId vm, VmAddress address, HostId host, Nanos now);
  TopologyEvent shutdown_vm(VmId vm, Nanos now); // also removes its channels
  TopologyEvent migrate_vm(VmId vm, HostId to, Nanos now);

  bool has_vm(VmId vm) const;
  std::size_t vm_count() const;
  HostId host_of(VmId vm) const;
  const VmAddress& address_of(VmId vm) const;
  std::optional<VmId> vm_with_ip(std::string_view ip) const;
  std::optional<VmId> vm_with_mac(std::string_view mac) const; // MemPipe's peer VM organizer key
  // Whether a and b are on the same host (true for a == b).
  bool co_resident(VmId a, VmId b) const;
  std::vector<VmId> vms_on(HostId host) const; // sorted; O(VMs on the host)
  std::size_t vm_count(HostId host) const;     // O(1)
  // The time of the last membership change (0 before any).
  Nanos last_event_time() const;

  // Channels: undirected VM-VM edges for communicating pairs, wherever the two VMs run.
  void add_channel(VmId a, VmId b);
  void remove_channel(VmId a, VmId b);
  bool has_channel(VmId a, VmId b) const;
  std::vector<VmId> channels_of(VmId vm) const; // sorted; O(degree)
  std::size_t channel_count() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace ivmc
