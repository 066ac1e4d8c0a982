// Booting the Xen test image (guest/build_image.sh) under QEMU TCG: Xen as the multiboot
// kernel, dom0's kernel and initramfs as its modules, the serial console (Xen's and, through
// hvc0, dom0's) in a file, and a hard timeout.
//
// QEMU is a posix::QemuProcess (posix/qemu_process.hpp): a direct child that dies with its
// parent; it is killed by pid (SIGKILL) and reaped on timeout, on an early failure line and in
// the destructor: no QEMU outlives a failed test.
#pragma once

#include "ivmc/core/platform.hpp"
#include "ivmc/posix/qemu_process.hpp"

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace ivmc::xen {

struct XenImage {
  std::string xen, kernel, initrd;
  // Reads DIR/image.env; nullopt (and `why`) if it is missing or incomplete.
  static std::optional<XenImage> from_dir(const std::string& dir, std::string& why);
};

struct XenBootOptions {
  std::string qemu = "qemu-system-x86_64";
  XenImage image;
  unsigned memory_mib = 2048, cpus = 2;
  unsigned dom0_memory_mib = 512;
  std::vector<std::string> dom0_args; // extra dom0 kernel parameters (name=value reach /init)
  std::string serial_log;             // required
  Nanos timeout = 420'000'000'000;    // launch to power-off; then SIGKILL
};

struct XenBootOutcome {
  bool timed_out = false;
  int qemu_status = -1;         // exit code, or -signal
  std::optional<int> exit_code; // dom0's "IVMC-EXIT n"
  std::string console;          // the whole serial log
  std::string qemu_output;      // QEMU's own stdout/stderr
  Nanos wall = 0;
  std::string describe() const; // why it ended, with the console's last lines
};

class XenBoot {
public:
  explicit XenBoot(XenBootOptions options); // starts QEMU; throws if it cannot
  ~XenBoot();                               // kills and reaps QEMU if it still runs
  XenBoot(const XenBoot&) = delete;
  XenBoot& operator=(const XenBoot&) = delete;
  pid_t pid() const { return process_.pid(); }
  const std::vector<std::string>& command() const { return process_.command(); }
  // Waits until QEMU ends, the timeout passes (SIGKILL), or dom0 printed IVMC-EXIT and QEMU
  // did not end within 30 s of it (SIGKILL).
  XenBootOutcome wait();
  void kill() { process_.kill(); } // SIGKILL by pid, then reap; repeatable

private:
  XenBootOptions options_;
  posix::QemuProcess process_;
};

} // namespace ivmc::xen
