// The cost parameter table: see include/ivmc/sim/costs.hpp and docs/costs.md.
#include "ivmc/sim/costs.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ivmc::sim {

const std::vector<CostModel::Entry>& CostModel::entries() {
  using C = CostModel;
  static const std::vector<Entry> table = {
      {"syscall_ns", &C::syscall_ns, "socket call entry and exit in a guest"},
      {"tcp_per_packet_ns", &C::tcp_per_packet_ns, "TCP/IP per segment, one side"},
      {"udp_per_packet_ns", &C::udp_per_packet_ns, "UDP/IP per datagram fragment, one side"},
      {"copy_ns_per_byte", &C::copy_ns_per_byte, "a guest memcpy, per byte"},
      {"mss_bytes", &C::mss_bytes, "payload per packet on a TCP/IP or virtual NIC path"},
      {"gso_bytes", &C::gso_bytes, "TCP segmentation offload size on netfront and virtio"},
      {"irq_ns", &C::irq_ns, "taking an interrupt and scheduling the woken thread"},
      {"wakeup_latency_ns", &C::wakeup_latency_ns, "notification to the sleeper running"},
      {"socket_buffer_bytes", &C::socket_buffer_bytes, "remote path window / receive buffer"},
      {"xen_netfront_per_packet_ns", &C::xen_netfront_per_packet_ns, "netfront, per packet"},
      {"xen_dom0_per_packet_ns", &C::xen_dom0_per_packet_ns, "netback and bridge, per packet"},
      {"xen_grant_copy_ns_per_byte", &C::xen_grant_copy_ns_per_byte, "a grant copy, per byte"},
      {"xen_grant_copies", &C::xen_grant_copies, "Dom0 copies per byte between two guests"},
      {"xen_event_channel_ns", &C::xen_event_channel_ns, "event channel notify hypercall"},
      {"xen_dom0_latency_ns", &C::xen_dom0_latency_ns, "Dom0 scheduling delay per batch"},
      {"kvm_virtio_per_packet_ns", &C::kvm_virtio_per_packet_ns, "virtio driver, per packet"},
      {"kvm_vhost_per_packet_ns", &C::kvm_vhost_per_packet_ns, "vhost worker, per packet"},
      {"kvm_emulated_per_packet_ns", &C::kvm_emulated_per_packet_ns, "e1000, per packet"},
      {"kvm_host_copy_ns_per_byte", &C::kvm_host_copy_ns_per_byte, "vhost copy, per byte"},
      {"kvm_exit_ns", &C::kvm_exit_ns, "one VM exit (a kick, a doorbell write)"},
      {"kvm_host_latency_ns", &C::kvm_host_latency_ns, "host scheduling delay per batch"},
      {"nic_per_packet_ns", &C::nic_per_packet_ns, "physical NIC driver, per packet"},
      {"shm_per_record_ns", &C::shm_per_record_ns, "ring bookkeeping per record, one side"},
      {"shm_copy_ns_per_byte", &C::shm_copy_ns_per_byte, "copy into or out of the ring"},
      {"shm_doorbell_ns", &C::shm_doorbell_ns, "ringing the peer's doorbell"},
      {"shm_poll_detect_ns", &C::shm_poll_detect_ns, "a poller seeing a new record"},
      {"shm_softirq_per_packet_ns", &C::shm_softirq_per_packet_ns,
       "layer 3: re-injecting a packet into the stack"},
      {"xen_hvm_exit_ns", &C::xen_hvm_exit_ns,
       "Xen HVM guest: a VM exit per notification sent or interrupt taken"},
      {"remote_loopback", &C::remote_loopback,
       "1: the remote path is loopback TCP between processes (host), 0: the hypervisor's"},
      {"loopback_latency_ns", &C::loopback_latency_ns,
       "loopback TCP: a send to the blocked receiver running"},
      {"poll_cpu_share", &C::poll_cpu_share, "the fraction of time a busy poller has its core"},
      {"sched_slice_ns", &C::sched_slice_ns,
       "mean wait for a poller's peer that is off its core to run again"},
  };
  return table;
}

void CostModel::set(std::string_view name, double value) {
  for (const Entry& e : entries()) {
    if (e.name != name) continue;
    if (!(value >= 0) || !std::isfinite(value)) {
      throw std::invalid_argument("costs." + std::string(name) +
                                  ": expected a finite number >= 0, got " + std::to_string(value));
    }
    if (name == "mss_bytes" && value < 64) {
      throw std::invalid_argument("costs.mss_bytes: expected at least 64");
    }
    if (name == "remote_loopback" && value != 0 && value != 1) {
      throw std::invalid_argument("costs.remote_loopback: expected 0 or 1");
    }
    if (name == "poll_cpu_share" && (value <= 0 || value > 1)) {
      throw std::invalid_argument("costs.poll_cpu_share: expected a share in (0, 1]");
    }
    this->*(e.field) = value;
    return;
  }
  std::string known;
  for (const Entry& e : entries()) known += (known.empty() ? "" : ", ") + std::string(e.name);
  throw std::invalid_argument("costs." + std::string(name) +
                              ": unknown cost parameter; known: " + known);
}

void CostModel::apply(const std::map<std::string, double>& overrides) {
  for (const auto& [name, value] : overrides) set(name, value);
}

} // namespace ivmc::sim
