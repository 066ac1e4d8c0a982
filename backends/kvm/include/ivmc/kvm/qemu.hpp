// Launching test guests: QEMU with the image from guest/build_image.sh, an ivshmem-doorbell
// device, the ivmc-guest agent's arguments on the kernel command line, the serial console in a
// file, and a hard timeout.
//
// Every QEMU is a posix::QemuProcess (posix/qemu_process.hpp): a direct child that dies with
// its parent; QemuGuest kills it by pid (SIGKILL) and reaps it on timeout, on kill() and in
// its destructor: no QEMU outlives a failed test.
//
// Acceleration: TCG, unless a short boot probe shows that KVM really works (on the project's
// machines /dev/kvm exists but hardware virtualization does not: a KVM guest crawls).
#pragma once

#include "ivmc/core/platform.hpp"
#include "ivmc/posix/qemu_process.hpp"
#include "ivmc/posix/workload.hpp"

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::kvm {

struct GuestImage {
  std::string kernel, initrd;
  // Reads DIR/image.env (written by build_image.sh). Throws naming the file if it is missing.
  static GuestImage from_dir(const std::string& dir);
};

enum class Accel { tcg, kvm };
std::string_view to_string(Accel a);

// The qemu-system-x86_64 to use: posix::find_qemu (qemu_process.hpp).

// TCG unless KVM boots `image` to userspace within a few seconds. IVMC_QEMU_ACCEL=tcg|kvm
// overrides; the probe's answer is kept in `cache_file` for the current boot of this machine
// (keyed by /proc/sys/kernel/random/boot_id), so it runs once per boot.
Accel choose_accel(const std::string& qemu, const GuestImage& image, const std::string& cache_file);

// The guests' network (the remote path): a virtio-net NIC whose frames travel as UDP datagrams
// between two QEMUs on this machine (-netdev socket,udp=...), so two guests form a two-host
// LAN with no bridge, tap device or privileges. The guest's /init brings eth0 up with `ip`.
struct GuestNic {
  std::uint16_t local_port = 0;  // this QEMU's UDP port on 127.0.0.1
  std::uint16_t remote_port = 0; // the other QEMU's
  std::string ip;                // the guest's address with prefix, e.g. "10.0.0.1/24"
  unsigned mac_suffix = 1;       // 52:54:00:00:00:<suffix>: distinct per guest
  // User networking (slirp) instead of a guest-to-guest UDP socket: the guest reaches the
  // host's 127.0.0.1 at 10.0.2.2 (so `ip` is in 10.0.2.0/24, e.g. "10.0.2.15/24"); the ports
  // above are unused. Its connections live in this QEMU and do not survive a migration.
  bool user = false;
  // User networking only: forward the host's 127.0.0.1:forward_host_port to the guest's
  // forward_guest_port (TCP), so that other guests reach this one at 10.0.2.2:forward_host_port.
  std::uint16_t forward_host_port = 0, forward_guest_port = 0;
};
// A free UDP port on 127.0.0.1 (the kernel's choice; free when this returns).
std::uint16_t free_udp_port();

struct QemuOptions {
  std::string qemu = "qemu-system-x86_64";
  GuestImage image;
  Accel accel = Accel::tcg;
  unsigned memory_mib = 256;
  std::string ivshmem_socket; // an ivshmem server's socket: adds ivshmem-doorbell; empty: none
  unsigned vectors = 2;       // the doorbell device's vectors= (the server's --vectors)
  // master=on: the region migrates with the guest (peer mode blocks migration). On the
  // destination the device needs its own server, where the guest gets a new peer id.
  bool ivshmem_master = false;
  std::string qmp_socket; // QMP server socket (QmpClient, qmp.hpp); empty: none
  std::string incoming;   // -incoming URI ("unix:/tmp/x.sock"): a migration destination
  // Interrupt mode: q35 with an intel-iommu, intel_iommu=on, and the guest loads vfio-pci.
  bool iommu = false;
  std::optional<GuestNic> nic;          // the guests' network, if any
  std::vector<std::string> kernel_args; // extra kernel parameters
  std::vector<std::string> agent_args;  // the agent's command line (after "--")
  std::vector<std::string> qemu_args;   // extra QEMU arguments (networking)
  std::string serial_log;               // the guest console is written here (required)
  Nanos timeout = 180'000'000'000;      // from launch to power-off; then SIGKILL
};

// What a guest did, read from its console once QEMU ended.
struct GuestOutcome {
  bool timed_out = false;                   // killed at the deadline
  int qemu_status = -1;                     // QEMU's exit code, or -signal
  std::optional<int> agent_status;          // from the "IVMC-EXIT n" line
  std::vector<posix::ReportFields> reports; // every IVMC-RESULT line
  std::string console;                      // the whole serial log
  std::string qemu_output;                  // QEMU's own stdout/stderr
  Nanos wall = 0;                           // launch to end
  bool ok() const { return !timed_out && agent_status == 0; }
  // For test failures: why it ended, and the console's and QEMU's last lines.
  std::string describe() const;
};

class QemuGuest {
public:
  // Builds the command line and starts QEMU. Throws if it cannot be started.
  explicit QemuGuest(QemuOptions options);
  ~QemuGuest(); // kills and reaps QEMU if it still runs
  QemuGuest(const QemuGuest&) = delete;
  QemuGuest& operator=(const QemuGuest&) = delete;

  pid_t pid() const { return process_.pid(); }
  const std::vector<std::string>& command() const { return process_.command(); }
  // False once QEMU has ended (reaps it if so).
  bool running() { return process_.running(); }
  // Waits for QEMU to end, at most until the launch timeout (then kills it). Repeatable.
  GuestOutcome wait();
  // SIGKILL by pid, then reap. Safe to call more than once.
  void kill() { process_.kill(); }
  // True once the console holds `text` (e.g. "IVMC-INFO"); polls the log until `timeout`.
  bool wait_for_console(const std::string& text, Nanos timeout);

private:
  GuestOutcome outcome() const;

  QemuOptions options_;
  posix::QemuProcess process_;
  bool timed_out_ = false;
};

} // namespace ivmc::kvm
