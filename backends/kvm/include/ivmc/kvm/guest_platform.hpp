// The guest platform: a process inside a QEMU guest as an ivshmem peer, driving QEMU's
// `ivshmem-doorbell` PCI device (1af4:1110) itself.
//
// - The shared region is BAR2, mapped whole (the server's shm object).
// - This peer's id is the IVPosition register (BAR0 + 8); a ring is one write to the Doorbell
//   register (BAR0 + 12) of (peer id << 16) | vector, which QEMU turns into a write to that
//   peer's eventfd: a host process (HostPlatform) or another guest's MSI-X vector.
// - Waiting: with interrupts off (polling mode) a wait just sleeps a little and the core
//   re-checks the ring; use NotifyPolicy::polling. With interrupts on, the device is bound to
//   vfio-pci and each MSI-X vector is tied to an eventfd (VFIO_DEVICE_SET_IRQS), so a ring
//   from a peer wakes the waiter (every notification policy works). This needs the guest
//   booted with an IOMMU (q35, `-device intel-iommu`, `intel_iommu=on`) and the vfio modules
//   loaded; the bus-master bit is set here, or QEMU drops the MSI-X writes.
//
// Channels are placed and addressed exactly as on the host (ivshmem_platform.hpp), so a guest
// and a host process, or two guests, share channels through one ivshmem server.
#pragma once

#include "ivmc/kvm/ivshmem_platform.hpp"

#include <memory>
#include <string>

namespace ivmc::kvm {

struct GuestDeviceOptions {
  std::string pci_address;              // "0000:00:04.0"; empty: the first 1af4:1110 device
  bool interrupts = false;              // VFIO MSI-X -> eventfds; false: polling (waits only sleep)
  unsigned vectors = 2;                 // QEMU's `vectors=` (the server's --vectors)
  Nanos setup_timeout = 10'000'000'000; // binding to vfio-pci and the group device appearing
  std::string sysfs = "/sys";           // for tests of the lookup
};

// Finds the ivshmem device: `options.pci_address` checked, or the first 1af4:1110 function.
// Throws naming what was looked at.
std::string find_ivshmem_device(const GuestDeviceOptions& options);

class GuestPlatform final : public IvshmemPlatform {
public:
  // Opens the device (and VFIO when interrupts are asked for) and starts the ticker. Throws an
  // IvshmemError naming the step, the path and the error.
  static std::unique_ptr<GuestPlatform> open(const GuestDeviceOptions& options);
  const std::string& pci_address() const { return pci_address_; }
  bool interrupts() const { return interrupts_; }

private:
  GuestPlatform(std::unique_ptr<IvshmemPort> port, std::string pci_address, bool interrupts);
  std::string pci_address_;
  bool interrupts_;
};

} // namespace ivmc::kvm
