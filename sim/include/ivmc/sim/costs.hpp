// The path cost models: what moving one message costs, in CPU time on each side and in time
// on the shared stages between them, for each path a co-resident (or remote) pair can take.
// Every parameter has a name (a scenario's [costs] table overrides it by that name) and a
// line of documentation; docs/costs.md derives the defaults and cites their sources, and
// analysis/calibrate_costs.py compares the model with the published figures they were fitted to.
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
  // Where each default comes from (docs/costs.md, "Calibration"; analysis/calibrate_costs.py
  // prints model against paper). W08 = Wang, Wright and Gopalan, "XenLoop", HPDC 2008: T2 =
  // Table 2 (bandwidth), T3 = Table 3 (latency), F4 = Fig. 4 (UDP_STREAM by size); Xen 3.2.0,
  // Linux 2.6.18.8 guests, dual-core 2.8 GHz Pentium D. "Fit" = chosen so that the model
  // reproduces that figure (16 KiB streams, 16 B RR, two VMs on one host); the Dom0 values are
  // effective ones (they absorb two cores shared by three domains). M06 = Menon, Cox and
  // Zwaenepoel, USENIX ATC 2006, abstract. "Estimate" = engineering judgement, no source.

  // Guest kernel and stack (per side).
  double syscall_ns = 450;             // socket call entry and exit. Estimate
  double tcp_per_packet_ns = 750;      // TCP/IP per segment. Fit: W08 T2, XenLoop TCP
  double udp_per_packet_ns = 700;      // UDP/IP per datagram fragment. Estimate
  double copy_ns_per_byte = 0.12;      // guest memcpy (8 GB/s). Estimate (BENCHMARKS.md)
  double mss_bytes = 1448;             // TCP payload at MTU 1500. Standard (20+20+12 B)
  double gso_bytes = 65536;            // TSO/GSO size (below). Standard: Linux's limit
  double irq_ns = 1200;                // an interrupt + scheduling. Fit: W08 F4, XenLoop
  double wakeup_latency_ns = 10000;    // notify to sleeper running. Fit: W08 T3, XenLoop RR
  double socket_buffer_bytes = 262144; // remote window / receive buffer. Estimate
  // netfront and virtio offload TCP segmentation: a TCP send leaves the guest in packets of up
  // to gso_bytes (not the emulated NIC, not UDP, not a channel below IP, which sees MTU packets).

  // Xen split driver (netfront -> netback in Dom0 -> bridge -> netback -> netfront).
  double xen_netfront_per_packet_ns = 1500; // per packet, each end. Estimate
  double xen_dom0_per_packet_ns = 22000;    // netback+bridge (shared). Fit: W08 F4, UDP
  double xen_grant_copy_ns_per_byte = 1.55; // one grant copy. Fit: W08 T2, netfront TCP
  double xen_grant_copies = 1;              // per byte, guest to guest. M06: rx copy only
  double xen_event_channel_ns = 1200;       // notify hypercall, sender CPU. Estimate
  double xen_dom0_latency_ns = 5000;        // Dom0 delay per frame. Fit: W08 T3, netfront RR

  // KVM (virtio with vhost, or an emulated e1000).
  double kvm_virtio_per_packet_ns = 1800;    // guest driver, per packet, each end. Estimate
  double kvm_vhost_per_packet_ns = 2500;     // vhost worker, per packet (shared). Estimate
  double kvm_emulated_per_packet_ns = 18000; // e1000 with its traps to QEMU. Estimate
  double kvm_host_copy_ns_per_byte = 0.2;    // vhost copy between guests. Estimate
  double kvm_exit_ns = 1500;                 // one VM exit (a kick). Estimate
  double kvm_host_latency_ns = 10000;        // host delay per frame. Estimate

  // Between machines (the physical network after the hypervisor path).
  double nic_per_packet_ns = 1000; // NIC driver, per packet, each host (shared). Estimate

  // The shared-memory channel.
  double shm_per_record_ns = 150;         // ring bookkeeping per record. Estimate
  double shm_copy_ns_per_byte = 0.12;     // copy into / out of the ring. Estimate (as above)
  double shm_doorbell_ns = 1200;          // ringing the peer (event channel). Estimate
  double shm_poll_detect_ns = 150;        // a poller seeing a record (a line). Estimate
  double shm_softirq_per_packet_ns = 200; // layer 3: re-injecting a packet. Fit: as irq_ns

  // Xen HVM guests (platform.hvm): a notification sent (event channel, doorbell) or an
  // interrupt taken leaves the guest through a VMX transition that a PV guest does not make
  // (seed 002: IVCOM's HVM mode cuts these transitions by 90 %). Estimate, as kvm_exit_ns.
  double xen_hvm_exit_ns = 1500;
  // What the host backend has and the papers' machines lack (issue 15). The defaults turn each
  // off, so the papers' profile gives the results it gave before these existed.
  // The remote path: 0 = the hypervisor's NIC path (above); 1 = loopback TCP between processes
  // of one machine (the host backend): per side syscall_ns + bytes * copy_ns_per_byte +
  // packets * tcp_per_packet_ns, packets of gso_bytes, no shared stage, the receiver running
  // loopback_latency_ns after the send.
  double remote_loopback = 0;
  double loopback_latency_ns = 0; // loopback TCP: send to the blocked receiver running
  // A busy poller holds a core, and shares it with whatever else runs there: it has its core
  // for poll_cpu_share of the time (1: always), so its CPU costs stretch by 1 / share, and a
  // peer it waits for is off its core (1 - share) of the time, for sched_slice_ns on average.
  // A blocking endpoint pays the wake-up (wakeup_latency_ns, irq_ns) instead.
  double poll_cpu_share = 1;
  double sched_slice_ns = 0;

  // The parameter table: name, value, documentation. Overrides change values by name.
  struct Entry {
    std::string_view name;
    double CostModel::*field;
    std::string_view doc;
  };
  static const std::vector<Entry>& entries();
  // Throws std::invalid_argument naming the parameter (and the known names) when unknown, or
  // when the value is negative or not finite, or outside its range (mss_bytes >= 64,
  // remote_loopback 0 or 1, 0 < poll_cpu_share <= 1).
  void set(std::string_view name, double value);
  void apply(const std::map<std::string, double>& overrides);
};

} // namespace ivmc::sim
