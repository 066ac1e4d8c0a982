// The path cost models of the simulated world (docs/costs.md): what each send and receive costs
// on the channel and on the hypervisor path, and when a frame reaches the receiver through the
// Dom0/vhost and NIC stages.
#include "world.hpp"

namespace ivmc::sim {

double World::nic_packets(const Pipe& p, std::size_t bytes) const {
  const bool tso = p.proto == Proto::tcp && (s_.platform.hypervisor == Hypervisor::xen ||
                                             s_.platform.guest_nic == GuestNic::virtio);
  const double unit = tso ? std::max(costs_.gso_bytes, costs_.mss_bytes) : costs_.mss_bytes;
  return std::max(1.0, std::ceil(static_cast<double>(bytes) / unit));
}

double World::interrupts_per_record() const {
  switch (policy_) {
  case NotifyPolicy::per_packet:
    return 1.0; // every record raises an interrupt, busy receiver or not (survey 3.3.4)
  case NotifyPolicy::atw:
    return 1.0 / std::max<std::uint32_t>(s_.channel.atw_batch, 1);
  default:
    return 0.0; // only a sleeper is woken (counted when it happens)
  }
}

// A Xen HVM guest's VM exit, charged per notification sent and interrupt taken; 0 elsewhere.
double World::hvm_exit_ns() const {
  return s_.platform.hypervisor == Hypervisor::xen && s_.platform.hvm ? costs_.xen_hvm_exit_ns
                                                                      : 0.0;
}

double World::poll_stretch() const {
  return policy_ == NotifyPolicy::polling ? 1.0 / costs_.poll_cpu_share : 1.0;
}

Nanos World::poll_wait() const {
  if (policy_ != NotifyPolicy::polling) return 0;
  return ns((1.0 - costs_.poll_cpu_share) * costs_.sched_slice_ns);
}

Nanos World::poll_detect() const {
  return ns(costs_.shm_poll_detect_ns) + poll_wait();
}

// ---------------------------------------------------------------------------------------------
// Cost models. The socket call is a per-message cost: `message_ends` says whether this frame
// pays it (the first piece of a message when sending, the last when receiving). Per-byte and
// per-packet costs are paid by every frame.

Nanos World::local_send_cost(const Pipe& p, std::size_t frame, bool message_ends) const {
  const auto& c = costs_;
  // With one copy (channel.copies = 1) the receiver reads the sender's mapped memory: the
  // sender writes only the record's descriptor.
  const double ring_copy = s_.channel.copies >= 2 ? c.shm_copy_ns_per_byte : 0.0;
  double t = c.shm_per_record_ns + static_cast<double>(frame) * ring_copy;
  if (s_.channel.layer >= 2 && message_ends) t += c.syscall_ns; // a socket below it
  if (s_.channel.layer == 3) {
    t += p.proto == Proto::tcp ? c.tcp_per_packet_ns : c.udp_per_packet_ns;
    t += static_cast<double>(frame) * c.copy_ns_per_byte; // the socket copy
    if (p.proto == Proto::tcp) { // an ACK per two segments comes back through the channel
      t += 0.5 * (c.shm_softirq_per_packet_ns + c.tcp_per_packet_ns +
                  interrupts_per_record() * (c.irq_ns + hvm_exit_ns()));
    }
  }
  return ns(t * poll_stretch());
}

Nanos World::local_recv_cost(const Pipe& p, std::size_t frame, bool message_ends) const {
  const auto& c = costs_;
  double t = c.shm_per_record_ns + static_cast<double>(frame) * c.shm_copy_ns_per_byte;
  if (s_.channel.layer >= 2 && message_ends) t += c.syscall_ns;
  if (s_.channel.layer == 3) {
    t += c.shm_softirq_per_packet_ns;
    t += p.proto == Proto::tcp ? c.tcp_per_packet_ns : c.udp_per_packet_ns;
    t += static_cast<double>(frame) * c.copy_ns_per_byte; // the socket copy
    if (p.proto == Proto::tcp) {                          // sending that ACK back
      t += 0.5 * (c.tcp_per_packet_ns + c.shm_per_record_ns +
                  interrupts_per_record() * (c.shm_doorbell_ns + hvm_exit_ns()));
    }
  }
  t += interrupts_per_record() * (c.irq_ns + hvm_exit_ns());
  return ns(t * poll_stretch());
}

// One side of loopback TCP (the host backend's remote path, whatever the workload's protocol):
// the socket call, the copy into or out of the kernel, and TCP per 64 KiB loopback packet.
Nanos World::loopback_cost(std::size_t frame) const {
  const auto& c = costs_;
  const double k = std::max(1.0, std::ceil(static_cast<double>(frame) / c.gso_bytes));
  return ns(c.syscall_ns + static_cast<double>(frame) * c.copy_ns_per_byte +
            k * c.tcp_per_packet_ns);
}

Nanos World::remote_send_cost(const Pipe& p, std::size_t frame) const {
  const auto& c = costs_;
  const double k = nic_packets(p, frame);
  if (c.remote_loopback != 0) return loopback_cost(frame);
  double front = 0, notify = 0;
  if (s_.platform.hypervisor == Hypervisor::xen) {
    front = c.xen_netfront_per_packet_ns;
    notify = c.xen_event_channel_ns;
  } else if (s_.platform.guest_nic == GuestNic::emulated) {
    front = c.kvm_emulated_per_packet_ns;
    notify = 0; // its exits are in the per-packet cost
  } else {
    front = c.kvm_virtio_per_packet_ns;
    notify = c.kvm_exit_ns;
  }
  const double stack = p.proto == Proto::tcp ? c.tcp_per_packet_ns : c.udp_per_packet_ns;
  return ns(c.syscall_ns + static_cast<double>(frame) * c.copy_ns_per_byte + k * (stack + front) +
            notify + hvm_exit_ns()); // an HVM's notify hypercall exits
}

Nanos World::remote_recv_cost(const Pipe& p, std::size_t frame) const {
  const auto& c = costs_;
  const double k = nic_packets(p, frame);
  if (c.remote_loopback != 0) return loopback_cost(frame);
  const double front = s_.platform.hypervisor == Hypervisor::xen     ? c.xen_netfront_per_packet_ns
                       : s_.platform.guest_nic == GuestNic::emulated ? c.kvm_emulated_per_packet_ns
                                                                     : c.kvm_virtio_per_packet_ns;
  const double stack = p.proto == Proto::tcp ? c.tcp_per_packet_ns : c.udp_per_packet_ns;
  // An HVM takes the frame's interrupt through a VM exit.
  return ns(c.syscall_ns + static_cast<double>(frame) * c.copy_ns_per_byte + k * (stack + front) +
            hvm_exit_ns());
}

// When a frame that leaves the sender's VM at `leaves` reaches the receiver's socket: through
// the host's Dom0 (or vhost worker), and between machines through both NICs and the wire. Each
// stage is reserved now for the time the frame will reach it, and serves it in its idle time
// from then on (stage.hpp: never behind reservations for later times).
Nanos World::remote_arrival(Pipe& p, std::size_t frame, Nanos leaves) {
  const auto& c = costs_;
  const double k = nic_packets(p, frame);
  const double bytes = static_cast<double>(frame);
  const Topology& topo = model_.topology();
  if (!topo.has_vm(p.to) || !topo.has_vm(p.from)) return leaves; // nobody will read it
  // Loopback TCP between processes: no hypervisor stage, no wire; the kernel hands the bytes
  // over and wakes the receiver.
  if (c.remote_loopback != 0) return leaves + ns(c.loopback_latency_ns);
  const HostId a = topo.host_of(p.from), b = topo.host_of(p.to);
  const bool xen = s_.platform.hypervisor == Hypervisor::xen;
  const double per_packet = xen ? c.xen_dom0_per_packet_ns : c.kvm_vhost_per_packet_ns;
  const double copy =
      xen ? c.xen_grant_copy_ns_per_byte * c.xen_grant_copies : c.kvm_host_copy_ns_per_byte;
  const double delay = xen ? c.xen_dom0_latency_ns : c.kvm_host_latency_ns;
  const Nanos now = model_.now_ns();
  if (a == b) {
    const Nanos out =
        host_stage_[a].serve(now, leaves + ns(delay), ns(k * per_packet + bytes * copy));
    return out + ns(c.wakeup_latency_ns);
  }
  // Between hosts each end does half the copying, and the wire carries headers too.
  Nanos t = host_stage_[a].serve(now, leaves + ns(delay), ns(k * per_packet + bytes * copy / 2));
  const double wire = (bytes + k * 66) / (s_.platform.link_gbps * 1e9 / 8) * 1e9;
  t = nic_stage_[a].serve(now, t, ns(k * c.nic_per_packet_ns + wire));
  t += ns(s_.platform.link_latency_us * 1e3);
  t = nic_stage_[b].serve(now, t, ns(k * c.nic_per_packet_ns));
  t = host_stage_[b].serve(now, t + ns(delay), ns(k * per_packet + bytes * copy / 2));
  return t + ns(c.wakeup_latency_ns);
}

} // namespace ivmc::sim
