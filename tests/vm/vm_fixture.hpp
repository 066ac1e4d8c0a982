// Plumbing of the vm tests: the guest image (built by the vm_image fixture test), the
// acceleration chosen once, an ivshmem server for a test, and guests launched with the agent.
#pragma once

#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"
#include "ivmc/kvm/kvm_membership.hpp" // write_host_word
#include "ivmc/kvm/qemu.hpp"
#include "ivmc/posix/workload.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::vmtest {

inline constexpr Nanos kSecond = 1'000'000'000;
inline constexpr unsigned kVectors = 2;             // the servers' and devices' vectors
inline constexpr std::uint32_t kRing = 256 * 1024;  // per direction
inline constexpr Nanos kBootBudget = 120 * kSecond; // launch to power-off, per guest

inline const kvm::GuestImage& image() {
  static const kvm::GuestImage img = kvm::GuestImage::from_dir(IVMC_VM_IMAGE_DIR);
  return img;
}

inline const std::string& qemu() {
  static const std::string path = posix::find_qemu();
  return path;
}

inline kvm::Accel accel() {
  static const kvm::Accel a =
      kvm::choose_accel(qemu(), image(), std::string(IVMC_VM_IMAGE_DIR) + "/accel-probe");
  return a;
}

// An ivshmem server ("a host") served by a thread of the test process.
class Host {
public:
  // `on_peer`: the server's join/leave notices (a membership source's input), if wanted.
  Host(const std::string& tag, std::size_t region_bytes = 1u << 20, bool reuse_id_zero = false,
       std::function<void(std::uint16_t, bool)> on_peer = {}) {
    kvm::IvshmemServerOptions o;
    name_ = "ivmc-vm-" + tag + "-" + std::to_string(::getpid());
    const std::string& name = name_;
    o.socket_path = "/tmp/" + name + ".sock";
    o.shm_name = name;
    o.size = region_bytes;
    o.vectors = kVectors;
    o.reuse_id_zero = reuse_id_zero;
    o.log = [](std::string_view) {};
    o.on_peer = std::move(on_peer);
    server_ = std::make_unique<kvm::IvshmemServerThread>(o);
  }
  const std::string& socket() const { return server_->socket_path(); }
  const std::string& shm_name() const { return name_; } // /dev/shm/<name>

  // This host's membership source announcing itself to the guests on it: stores `value` in the
  // 64-bit word at `offset` of the region (the guest agent's --host-word).
  void set_host_word(std::size_t offset, std::uint64_t value) const {
    kvm::write_host_word(name_, offset, value);
  }

private:
  std::string name_;
  std::unique_ptr<kvm::IvshmemServerThread> server_;
};

struct GuestSpec {
  std::string name;                    // names the console log
  std::vector<std::string> agent_args; // after "--"
  bool interrupts = false;             // q35 + intel-iommu + vfio, and --irq vfio
  std::optional<kvm::GuestNic> nic;    // the guests' network
  bool master = false;                 // ivshmem master=on (migratable)
  std::string qmp;                     // QMP socket path, if any
  std::string incoming;                // -incoming URI: a migration destination
};

// A guest on `host` (its ivshmem device), or with no ivshmem device when `host` is null.
inline std::unique_ptr<kvm::QemuGuest> launch(const Host* host, const GuestSpec& spec) {
  kvm::QemuOptions o;
  o.qemu = qemu();
  o.image = image();
  o.accel = accel();
  if (host) o.ivshmem_socket = host->socket();
  o.vectors = kVectors;
  o.iommu = spec.interrupts;
  o.nic = spec.nic;
  o.ivshmem_master = spec.master;
  o.qmp_socket = spec.qmp;
  o.incoming = spec.incoming;
  o.agent_args = spec.agent_args;
  if (host) {
    o.agent_args.insert(o.agent_args.end(), {"--vectors", std::to_string(kVectors), "--irq",
                                             spec.interrupts ? "vfio" : "none"});
  }
  o.serial_log = std::string(IVMC_VM_LOG_DIR) + "/" + spec.name + ".log";
  o.timeout = kBootBudget;
  return std::make_unique<kvm::QemuGuest>(o);
}

// Bytes per stream: 32 MiB, or $IVMC_VM_BYTES (the benchmarks use more).
inline std::uint64_t stream_bytes() {
  if (const char* env = std::getenv("IVMC_VM_BYTES"); env && *env) return std::stoull(env);
  return 32u << 20;
}

// Endpoint options of the host processes' side of a channel.
inline kvm::EndpointOptions endpoint(NotifyPolicy policy, std::size_t offset = 0) {
  kvm::EndpointOptions e;
  e.offset = offset;
  e.channel.ring_bytes = kRing;
  e.channel.notify.policy = policy;
  // A TCG guest can stall for a while when both cores are busy.
  e.channel.liveness.peer_timeout = 30 * kSecond;
  return e;
}

// Waits for the guest to attach to (or create) the channel, failing early if it ended.
inline void wait_for_guest(kvm::HostEndpoint& ep, kvm::QemuGuest& guest) {
  for (Nanos waited = 0; waited < kBootBudget; waited += kSecond / 5) {
    if (ep.wait_for_peer(kSecond / 5) == Errc::ok) return;
    if (!guest.running()) {
      const kvm::GuestOutcome out = guest.wait();
      FAIL("the guest ended before it joined the channel: " << out.describe());
    }
  }
  FAIL("the guest did not join the channel in time: " << guest.wait().describe());
}

// The one IVMC-RESULT of a finished guest, after checking it ran to completion.
inline posix::ReportFields result_of(const kvm::GuestOutcome& out) {
  INFO(out.describe());
  REQUIRE(out.ok());
  REQUIRE(out.reports.size() == 1);
  return out.reports.front();
}

inline std::string hex16(std::uint64_t v) {
  char text[20];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return text;
}

// Prints a figure line the benchmarks note picks up ("VM-FIGURE what: value").
inline void figure(const std::string& what, double value, const char* unit) {
  std::printf("VM-FIGURE %s: %.3f %s\n", what.c_str(), value, unit);
  std::fflush(stdout);
}

} // namespace ivmc::vmtest
