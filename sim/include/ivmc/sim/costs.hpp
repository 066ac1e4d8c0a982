// The path cost models: what moving one message costs, in CPU time on each side and in time
// on the shared stages between them, for each path a co-resident (or remote) pair can take.
// Every parameter has a name (a scenario's [costs] table overrides it by that name) and a
// line of documentation; docs/costs.md derives the defaults and cites their sources.
//
// A message of m bytes travels as k = ceil(m / mss_bytes) packets wherever a TCP/IP stack or
// a virtual NIC carries it (the hypervisor paths, and a layer-3 channel, below IP, which carries IP
// packets); a layer-1 (library) or layer-2 (socket) channel carries the message whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::sim {

struct CostModel {
  // Guest kernel and stack (per side).
  double syscall_ns = 450;         // socket send()/recv() entry and exit in a guest
  double tcp_per_packet_ns = 1200; // TCP/IP per segment, one side (UDP: udp_per_packet_ns)
  double udp_per_packet_ns = 700;  // UDP/IP per datagram fragment, one side
  double copy_ns_per_byte = 0.12;  // a guest memcpy (about 8 GB/s: a cold copy in a VM)
  double mss_bytes = 1448;         // TCP payload per segment at MTU 1500
  double gso_bytes = 65536; // netfront and virtio offload TCP segmentation: a TCP send leaves
                            // the guest in packets of up to this size (not the emulated NIC,
                            // not UDP, not a channel below IP, which sees MTU packets)
  double irq_ns = 2500;     // taking an interrupt and scheduling the woken thread
  double wakeup_latency_ns = 9000;     // a notification to the sleeping receiver running
  double socket_buffer_bytes = 262144; // the remote path's window (TCP) / receive buffer

  // Xen split driver (netfront -> netback in Dom0 -> bridge -> netback -> netfront).
  double xen_netfront_per_packet_ns = 1500; // guest side, per packet, each end
  double xen_dom0_per_packet_ns = 4500;     // netback + bridge in Dom0, per packet (shared CPU)
  double xen_grant_copy_ns_per_byte = 0.35; // a grant copy (about 2.9 GB/s)
  double xen_grant_copies = 2;              // Dom0 copies per byte between two guests
  double xen_event_channel_ns = 1200;       // notify hypercall, sender CPU
  double xen_dom0_latency_ns = 15000;       // Dom0 scheduling delay added to each batch

  // KVM (virtio with vhost, or an emulated e1000).
  double kvm_virtio_per_packet_ns = 1800;    // guest virtio driver, per packet, each end
  double kvm_vhost_per_packet_ns = 2500;     // vhost worker on the host, per packet (shared)
  double kvm_emulated_per_packet_ns = 18000; // e1000: register accesses trap to QEMU
  double kvm_host_copy_ns_per_byte = 0.2;    // vhost copies between guests
  double kvm_exit_ns = 1500;                 // one VM exit (a doorbell write, a kick)
  double kvm_host_latency_ns = 10000;        // host-side scheduling delay added to each batch

  // Between machines (the physical network after the hypervisor path).
  double nic_per_packet_ns = 1000; // physical NIC driver, per packet, each host (shared)

  // The shared-memory channel.
  double shm_per_record_ns = 150;     // ring bookkeeping per record, each side
  double shm_copy_ns_per_byte = 0.12; // copy into / out of the ring (guest memcpy)
  double shm_doorbell_ns = 1200;      // ringing the peer (Xen event channel / ivshmem doorbell)
  double shm_poll_detect_ns = 150;    // a polling receiver seeing a new record (a line transfer)
  double shm_softirq_per_packet_ns = 800; // layer 3: re-injecting a packet into the stack

  // The parameter table: name, value, documentation. Overrides change values by name.
  struct Entry {
    std::string_view name;
    double CostModel::*field;
    std::string_view doc;
  };
  static const std::vector<Entry>& entries();
  // Throws std::invalid_argument naming the parameter (and the known names) when unknown, or
  // when the value is negative.
  void set(std::string_view name, double value);
  void apply(const std::map<std::string, double>& overrides);
};

} // namespace ivmc::sim
