#include "ivmc/core/topology.hpp"

#include <boost/graph/adjacency_list.hpp>

#include <algorithm>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>

namespace ivmc {

namespace {

struct Node {
  enum class Kind : std::uint8_t { host, vm } kind = Kind::host;
  std::uint32_t id = 0;
  // VMs only. `host` caches the target of the VM's one "resides" edge so host_of is O(1);
  // migrate_vm updates both together.
  HostId host = 0;
  VmAddress address;
};

struct Link {
  enum class Kind : std::uint8_t { resides, channel } kind = Kind::resides;
};

// listS vertices: descriptors stay valid when other vertices are removed (a VM shutting
// down), and removal is O(degree). setS out-edges: no parallel edges, O(log degree) lookup.
using Graph = boost::adjacency_list<boost::setS, boost::listS, boost::undirectedS, Node, Link>;
using Vertex = Graph::vertex_descriptor;

std::string vm_text(VmId vm) {
  return "VM " + std::to_string(vm);
}
std::string host_text(HostId host) {
  return "host " + std::to_string(host);
}

} // namespace

struct Topology::Impl {
  Graph graph;
  std::unordered_map<HostId, Vertex> hosts;
  std::unordered_map<VmId, Vertex> vms;
  // Where each VM of a small id lives (host + 1; 0: no such VM). has_vm, host_of and
  // co_resident are per-message questions in the simulator (asked on every send); a flat array
  // answers them from one cache line, not a hash bucket, a node and a vertex. Larger ids (a
  // real platform's, or hostile ones) are answered from `vms` alone, so the array never grows
  // beyond kDenseIds entries (8 MiB).
  static constexpr VmId kDenseIds = VmId{1} << 20;
  std::vector<std::uint64_t> residence;
  void set_residence(VmId vm, std::uint64_t host_plus_one) {
    if (vm >= kDenseIds) return;
    if (vm >= residence.size()) residence.resize(std::size_t{vm} + 1, 0);
    residence[vm] = host_plus_one;
  }
  // host + 1, or 0 when there is no such VM.
  std::uint64_t where(VmId vm) const {
    if (vm < kDenseIds) return vm < residence.size() ? residence[vm] : 0;
    const auto it = vms.find(vm);
    return it == vms.end() ? 0 : std::uint64_t{graph[it->second].host} + 1;
  }
  std::unordered_map<std::string, VmId> by_ip, by_mac;
  std::size_t channels = 0;
  Nanos last_time = 0;

  Vertex host_vertex(HostId host, const char* op) const {
    auto it = hosts.find(host);
    if (it == hosts.end())
      throw TopologyError(TopologyError::Code::unknown_host, host,
                          std::string(op) + ": unknown " + host_text(host));
    return it->second;
  }
  Vertex vm_vertex(VmId vm, const char* op) const {
    auto it = vms.find(vm);
    if (it == vms.end())
      throw TopologyError(TopologyError::Code::unknown_vm, vm,
                          std::string(op) + ": unknown " + vm_text(vm));
    return it->second;
  }
  void check_time(Nanos now, VmId vm, const char* op) const {
    if (now < last_time)
      throw TopologyError(TopologyError::Code::time_went_back, vm,
                          std::string(op) + ": " + vm_text(vm) + " at t=" + std::to_string(now) +
                              " is before the previous event at t=" + std::to_string(last_time));
  }
};

Topology::Topology() : impl_(std::make_unique<Impl>()) {}
Topology::~Topology() = default;
Topology::Topology(Topology&&) noexcept = default;
Topology& Topology::operator=(Topology&&) noexcept = default;

void Topology::add_host(HostId host) {
  if (impl_->hosts.count(host))
    throw TopologyError(TopologyError::Code::host_exists, host,
                        "add_host: " + host_text(host) + " already exists");
  Node n;
  n.kind = Node::Kind::host;
  n.id = host;
  impl_->hosts.emplace(host, boost::add_vertex(std::move(n), impl_->graph));
}

bool Topology::has_host(HostId host) const {
  return impl_->hosts.count(host) != 0;
}
std::size_t Topology::host_count() const {
  return impl_->hosts.size();
}

std::vector<HostId> Topology::hosts() const {
  std::vector<HostId> out;
  out.reserve(impl_->hosts.size());
  for (const auto& [id, v] : impl_->hosts) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

TopologyEvent Topology::create_vm(VmId vm, VmAddress address, HostId host, Nanos now) {
  auto& im = *impl_;
  if (im.vms.count(vm))
    throw TopologyError(TopologyError::Code::vm_exists, vm,
                        "create_vm: " + vm_text(vm) + " already exists (on " +
                            host_text(host_of(vm)) + ")");
  Vertex hv = im.host_vertex(host, "create_vm");
  im.check_time(now, vm, "create_vm");
  if (!address.ip.empty() && im.by_ip.count(address.ip))
    throw TopologyError(TopologyError::Code::address_in_use, vm,
                        "create_vm: IP " + address.ip + " of " + vm_text(vm) +
                            " is already used by " + vm_text(im.by_ip.at(address.ip)));
  if (!address.mac.empty() && im.by_mac.count(address.mac))
    throw TopologyError(TopologyError::Code::address_in_use, vm,
                        "create_vm: MAC " + address.mac + " of " + vm_text(vm) +
                            " is already used by " + vm_text(im.by_mac.at(address.mac)));

  if (!address.ip.empty()) im.by_ip.emplace(address.ip, vm);
  if (!address.mac.empty()) im.by_mac.emplace(address.mac, vm);
  Node n;
  n.kind = Node::Kind::vm;
  n.id = vm;
  n.host = host;
  n.address = std::move(address);
  Vertex v = boost::add_vertex(std::move(n), im.graph);
  boost::add_edge(v, hv, Link{Link::Kind::resides}, im.graph);
  im.vms.emplace(vm, v);
  im.set_residence(vm, std::uint64_t{host} + 1);
  im.last_time = now;
  return TopologyEvent{TopologyEvent::Kind::create, vm, host, host, now};
}

TopologyEvent Topology::shutdown_vm(VmId vm, Nanos now) {
  auto& im = *impl_;
  Vertex v = im.vm_vertex(vm, "shutdown_vm");
  im.check_time(now, vm, "shutdown_vm");
  Node& n = im.graph[v];
  HostId from = n.host;
  for (auto [e, end] = boost::out_edges(v, im.graph); e != end; ++e)
    if (im.graph[*e].kind == Link::Kind::channel) --im.channels;
  if (!n.address.ip.empty()) im.by_ip.erase(n.address.ip);
  if (!n.address.mac.empty()) im.by_mac.erase(n.address.mac);
  boost::clear_vertex(v, im.graph);
  boost::remove_vertex(v, im.graph);
  im.vms.erase(vm);
  im.set_residence(vm, 0);
  im.last_time = now;
  return TopologyEvent{TopologyEvent::Kind::shutdown, vm, from, from, now};
}

TopologyEvent Topology::migrate_vm(VmId vm, HostId to, Nanos now) {
  auto& im = *impl_;
  Vertex v = im.vm_vertex(vm, "migrate_vm");
  Vertex to_v = im.host_vertex(to, "migrate_vm");
  Node& n = im.graph[v];
  HostId from = n.host;
  if (from == to)
    throw TopologyError(TopologyError::Code::same_host, vm,
                        "migrate_vm: " + vm_text(vm) + " is already on " + host_text(to));
  im.check_time(now, vm, "migrate_vm");
  boost::remove_edge(v, im.hosts.at(from), im.graph);
  boost::add_edge(v, to_v, Link{Link::Kind::resides}, im.graph);
  n.host = to;
  im.set_residence(vm, std::uint64_t{to} + 1);
  im.last_time = now;
  return TopologyEvent{TopologyEvent::Kind::migrate, vm, from, to, now};
}

bool Topology::has_vm(VmId vm) const {
  return impl_->where(vm) != 0;
}
std::size_t Topology::vm_count() const {
  return impl_->vms.size();
}

HostId Topology::host_of(VmId vm) const {
  const std::uint64_t w = impl_->where(vm);
  if (w == 0) impl_->vm_vertex(vm, "host_of"); // throws unknown_vm
  return static_cast<HostId>(w - 1);
}

const VmAddress& Topology::address_of(VmId vm) const {
  return impl_->graph[impl_->vm_vertex(vm, "address_of")].address;
}

std::optional<VmId> Topology::vm_with_ip(std::string_view ip) const {
  auto it = impl_->by_ip.find(std::string(ip));
  if (it == impl_->by_ip.end()) return std::nullopt;
  return it->second;
}

std::optional<VmId> Topology::vm_with_mac(std::string_view mac) const {
  auto it = impl_->by_mac.find(std::string(mac));
  if (it == impl_->by_mac.end()) return std::nullopt;
  return it->second;
}

bool Topology::co_resident(VmId a, VmId b) const {
  const std::uint64_t wa = impl_->where(a), wb = impl_->where(b);
  if (wa == 0) impl_->vm_vertex(a, "co_resident"); // throws unknown_vm
  if (wb == 0) impl_->vm_vertex(b, "co_resident");
  return wa == wb;
}

std::vector<VmId> Topology::vms_on(HostId host) const {
  const auto& g = impl_->graph;
  Vertex hv = impl_->host_vertex(host, "vms_on");
  std::vector<VmId> out;
  out.reserve(boost::out_degree(hv, g));
  // A host's only edges are "resides" edges.
  for (auto [a, end] = boost::adjacent_vertices(hv, g); a != end; ++a) out.push_back(g[*a].id);
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t Topology::vm_count(HostId host) const {
  return boost::out_degree(impl_->host_vertex(host, "vm_count"), impl_->graph);
}

Nanos Topology::last_event_time() const {
  return impl_->last_time;
}

void Topology::add_channel(VmId a, VmId b) {
  auto& im = *impl_;
  Vertex va = im.vm_vertex(a, "add_channel");
  Vertex vb = im.vm_vertex(b, "add_channel");
  if (a == b)
    throw TopologyError(TopologyError::Code::self_channel, a,
                        "add_channel: " + vm_text(a) + " cannot have a channel to itself");
  auto [e, added] = boost::add_edge(va, vb, Link{Link::Kind::channel}, im.graph);
  (void)e;
  if (!added)
    throw TopologyError(TopologyError::Code::channel_exists, a,
                        "add_channel: " + vm_text(a) + " and " + vm_text(b) +
                            " already have a channel");
  ++im.channels;
}

void Topology::remove_channel(VmId a, VmId b) {
  auto& im = *impl_;
  Vertex va = im.vm_vertex(a, "remove_channel");
  Vertex vb = im.vm_vertex(b, "remove_channel");
  if (a == b || !boost::edge(va, vb, im.graph).second)
    throw TopologyError(TopologyError::Code::unknown_channel, a,
                        "remove_channel: " + vm_text(a) + " and " + vm_text(b) +
                            " have no channel");
  boost::remove_edge(va, vb, im.graph);
  --im.channels;
}

bool Topology::has_channel(VmId a, VmId b) const {
  Vertex va = impl_->vm_vertex(a, "has_channel");
  Vertex vb = impl_->vm_vertex(b, "has_channel");
  return a != b && boost::edge(va, vb, impl_->graph).second;
}

std::vector<VmId> Topology::channels_of(VmId vm) const {
  const auto& g = impl_->graph;
  Vertex v = impl_->vm_vertex(vm, "channels_of");
  std::vector<VmId> out;
  for (auto [e, end] = boost::out_edges(v, g); e != end; ++e)
    if (g[*e].kind == Link::Kind::channel) out.push_back(g[boost::target(*e, g)].id);
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t Topology::channel_count() const {
  return impl_->channels;
}

} // namespace ivmc
