// The guest platform: see include/ivmc/kvm/guest_platform.hpp.
// No fmt here: the statically linked guest agent uses this file.
#include "ivmc/kvm/guest_platform.hpp"

#include "eventfd_wait.hpp"
#include "ivmc/kvm/error.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace ivmc::kvm {
namespace {

constexpr std::uint32_t kIvPositionRegister = 8;
constexpr std::uint32_t kDoorbellRegister = 12;
constexpr std::size_t kBar0Bytes = 256;
constexpr std::size_t kPage = 4096;
constexpr Nanos kPollNap = 1'000'000; // polling mode: how long a "wait" sleeps

[[noreturn]] void fail(const std::string& step, const std::string& where, int err = errno) {
  throw IvshmemError("guest ivshmem device: " + step + "(" + where + "): " + std::strerror(err));
}

[[noreturn]] void fail_plain(const std::string& what) {
  throw IvshmemError("guest ivshmem device: " + what);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("open", path);
  std::string text;
  std::getline(in, text);
  return text;
}

void write_text(const std::string& path, const std::string& text, bool allow_exists = false) {
  posix::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) fail("open", path);
  if (::write(fd.get(), text.data(), text.size()) < 0 && !(allow_exists && errno == EEXIST))
    fail("write \"" + text + "\" to", path);
}

// The sysfs "resource" file: one "start end flags" line per BAR, in hex.
std::uint64_t bar_start(const std::string& device_dir, unsigned bar) {
  std::ifstream in(device_dir + "/resource");
  if (!in) fail("open", device_dir + "/resource");
  std::string line;
  for (unsigned i = 0; i <= bar; ++i) {
    if (!std::getline(in, line))
      fail_plain(device_dir + "/resource has no line for BAR " + std::to_string(bar));
  }
  return std::stoull(line.substr(0, line.find(' ')), nullptr, 16);
}

void nap(Nanos ns) {
  std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
}

// An mmap()ed range that unmaps itself.
struct Mapping {
  void* base = MAP_FAILED;
  std::size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (base != MAP_FAILED) ::munmap(base, size);
  }
  void map(int fd, std::size_t bytes, off_t offset, const std::string& what) {
    base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
    if (base == MAP_FAILED) fail("mmap", what);
    size = bytes;
  }
};

// BAR0's registers: mapped (sysfs resource0), or read and written through the VFIO device fd.
class Registers {
public:
  void use_mapping(volatile std::uint32_t* regs) { regs_ = regs; }
  void use_file(int fd, off_t offset) {
    fd_ = fd;
    offset_ = offset;
  }
  std::uint32_t read32(std::uint32_t reg) const {
    if (regs_ != nullptr) return regs_[reg / 4];
    std::uint32_t v = 0;
    if (::pread(fd_, &v, sizeof v, offset_ + reg) != static_cast<ssize_t>(sizeof v))
      fail("pread BAR0 register " + std::to_string(reg), "vfio device");
    return v;
  }
  // Never throws: a doorbell ring that cannot be delivered is only counted as failed.
  bool write32(std::uint32_t reg, std::uint32_t value) const {
    if (regs_ != nullptr) {
      regs_[reg / 4] = value;
      return true;
    }
    return ::pwrite(fd_, &value, sizeof value, offset_ + reg) == static_cast<ssize_t>(sizeof value);
  }

private:
  volatile std::uint32_t* regs_ = nullptr;
  int fd_ = -1;
  off_t offset_ = 0;
};

// Rings peer `remote` through the Doorbell register; waits on this guest's MSI-X eventfds, or
// (polling mode) only sleeps.
class GuestDoorbell final : public Doorbell {
public:
  GuestDoorbell(std::shared_ptr<const Registers> regs, std::uint16_t remote,
                WakeVectors remote_vectors, std::array<int, 2> wait_fds)
      : regs_(std::move(regs)), wait_fds_(wait_fds) {
    ring_values_[0] = (std::uint32_t{remote} << 16) | remote_vectors.data;
    ring_values_[1] = (std::uint32_t{remote} << 16) | remote_vectors.space;
  }

  void ring(Wake reason) override {
    // seq_cst fence: the records and flags the core stored before ringing are globally visible
    // before the MMIO write that makes QEMU signal the peer (the write itself is not an atomic).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    regs_->write32(kDoorbellRegister, ring_values_[static_cast<std::size_t>(reason)]);
  }

  WaitResult wait(Wake reason, Nanos timeout) override {
    const int fd = wait_fds_[static_cast<std::size_t>(reason)];
    if (fd < 0) { // polling mode: nobody can wake us; the core re-checks after this nap
      nap(std::clamp<Nanos>(timeout, 0, kPollNap));
      return WaitResult::timed_out;
    }
    int err = 0;
    return detail::wait_eventfd(fd, timeout, err);
  }

private:
  std::shared_ptr<const Registers> regs_;
  std::array<std::uint32_t, 2> ring_values_{};
  std::array<int, 2> wait_fds_;
};

class GuestPort final : public IvshmemPort {
public:
  GuestPort(const GuestDeviceOptions& options, const std::string& address)
      : dir_(options.sysfs + "/bus/pci/devices/" + address), address_(address),
        vectors_(options.vectors) {
    if (vectors_ < 1 || vectors_ > 256) fail_plain("vectors must be 1..256");
    if (options.interrupts) {
      open_vfio(options);
    } else {
      open_sysfs();
    }
    const std::uint32_t position = regs_->read32(kIvPositionRegister);
    // The device is QEMU's, but check anyway: a peer id is 16 bits.
    if (position > 0xffff) {
      fail_plain("IVPosition " + std::to_string(position) + " of " + address_ +
                 " is not a peer id: is this ivshmem-doorbell with a server (not ivshmem-plain)?");
    }
    id_ = static_cast<std::uint16_t>(position);
  }

  SharedRegion region() const override { return {static_cast<std::byte*>(bar2_.base), bar2_.size}; }
  std::uint16_t id() const override { return id_; }
  std::uint16_t current_id() const override {
    return static_cast<std::uint16_t>(regs_->read32(kIvPositionRegister));
  }
  unsigned vectors() const override { return vectors_; }

  std::unique_ptr<Doorbell> doorbell_to(std::uint16_t remote, WakeVectors remote_vectors,
                                        WakeVectors own) override {
    if (own.data >= vectors_ || own.space >= vectors_ || own.data == own.space ||
        remote_vectors.data >= vectors_ || remote_vectors.space >= vectors_) {
      fail_plain("doorbell vectors out of range for a device with " + std::to_string(vectors_) +
                 " vectors");
    }
    std::array<int, 2> wait{-1, -1};
    if (!irq_fds_.empty()) wait = {irq_fds_[own.data].get(), irq_fds_[own.space].get()};
    // QEMU drops rings to peers it does not know; the core's wait slices cover for that.
    return std::make_unique<GuestDoorbell>(regs_, remote, remote_vectors, wait);
  }

  std::vector<std::uint16_t> departed() override { return {}; }

private:
  void open_sysfs() {
    write_text(dir_ + "/enable", "1");
    auto regs = std::make_shared<Registers>();
    // BAR0 may share its page with another small BAR: map the page, index into it.
    const std::size_t in_page = bar_start(dir_, 0) % kPage;
    bar0_fd_ = posix::UniqueFd(::open((dir_ + "/resource0").c_str(), O_RDWR | O_SYNC | O_CLOEXEC));
    if (!bar0_fd_) fail("open", dir_ + "/resource0");
    bar0_.map(bar0_fd_.get(), kPage, 0, dir_ + "/resource0");
    regs->use_mapping(
        reinterpret_cast<volatile std::uint32_t*>(static_cast<char*>(bar0_.base) + in_page));
    regs_ = std::move(regs);
    posix::UniqueFd bar2(::open((dir_ + "/resource2").c_str(), O_RDWR | O_CLOEXEC));
    if (!bar2) fail("open", dir_ + "/resource2");
    struct stat st {};
    if (::fstat(bar2.get(), &st) != 0) fail("fstat", dir_ + "/resource2");
    bar2_.map(bar2.get(), static_cast<std::size_t>(st.st_size), 0, dir_ + "/resource2");
  }

  void open_vfio(const GuestDeviceOptions& options) {
    const Nanos deadline = posix::MonotonicClock::read() + options.setup_timeout;
    // Bind 1af4:1110 to vfio-pci (EEXIST: the id was added before).
    const std::string driver_link = dir_ + "/driver";
    char target[512] = {};
    const ssize_t n = ::readlink(driver_link.c_str(), target, sizeof target - 1);
    const std::string driver = n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "";
    if (driver.find("vfio-pci") == std::string::npos) {
      if (!driver.empty()) write_text(driver_link + "/unbind", address_);
      write_text(options.sysfs + "/bus/pci/drivers/vfio-pci/new_id", "1af4 1110", true);
    }
    // The IOMMU group, and its device node once vfio-pci has bound.
    char group_target[512] = {};
    const ssize_t g =
        ::readlink((dir_ + "/iommu_group").c_str(), group_target, sizeof group_target - 1);
    if (g <= 0) {
      fail("readlink", dir_ + "/iommu_group (no IOMMU: boot with -device intel-iommu and "
                              "intel_iommu=on)");
    }
    const std::string group_path(group_target, static_cast<std::size_t>(g));
    const std::string group_node = "/dev/vfio/" + group_path.substr(group_path.rfind('/') + 1);
    for (;;) {
      group_fd_ = posix::UniqueFd(::open(group_node.c_str(), O_RDWR | O_CLOEXEC));
      if (group_fd_) break;
      if (errno != ENOENT || posix::MonotonicClock::read() > deadline) fail("open", group_node);
      nap(10'000'000);
    }
    container_fd_ = posix::UniqueFd(::open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC));
    if (!container_fd_) fail("open", "/dev/vfio/vfio");
    if (::ioctl(container_fd_.get(), VFIO_GET_API_VERSION) != VFIO_API_VERSION)
      fail_plain("/dev/vfio/vfio speaks another VFIO API version");
    vfio_group_status status{};
    status.argsz = sizeof status;
    if (::ioctl(group_fd_.get(), VFIO_GROUP_GET_STATUS, &status) != 0)
      fail("VFIO_GROUP_GET_STATUS", group_node);
    if ((status.flags & VFIO_GROUP_FLAGS_VIABLE) == 0)
      fail_plain(group_node + " is not viable: another device of its group is not on vfio-pci");
    int container = container_fd_.get();
    if (::ioctl(group_fd_.get(), VFIO_GROUP_SET_CONTAINER, &container) != 0)
      fail("VFIO_GROUP_SET_CONTAINER", group_node);
    const unsigned long iommu = ::ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1
                                    ? VFIO_TYPE1v2_IOMMU
                                    : VFIO_TYPE1_IOMMU;
    if (::ioctl(container, VFIO_SET_IOMMU, iommu) != 0)
      fail("VFIO_SET_IOMMU", "/dev/vfio/vfio (is vfio_iommu_type1 loaded?)");
    device_fd_ =
        posix::UniqueFd(::ioctl(group_fd_.get(), VFIO_GROUP_GET_DEVICE_FD, address_.c_str()));
    if (!device_fd_) fail("VFIO_GROUP_GET_DEVICE_FD", address_);

    // BAR0 through the device fd (a 256-byte BAR need not be mappable), BAR2 mapped.
    const vfio_region_info bar0 = region_info(VFIO_PCI_BAR0_REGION_INDEX);
    if (bar0.size < kBar0Bytes) fail_plain("BAR0 of " + address_ + " is too small");
    auto regs = std::make_shared<Registers>();
    regs->use_file(device_fd_.get(), static_cast<off_t>(bar0.offset));
    regs_ = std::move(regs);
    const vfio_region_info bar2 = region_info(VFIO_PCI_BAR2_REGION_INDEX);
    if ((bar2.flags & VFIO_REGION_INFO_FLAG_MMAP) == 0)
      fail_plain("VFIO does not let BAR2 of " + address_ + " be mapped");
    bar2_.map(device_fd_.get(), bar2.size, static_cast<off_t>(bar2.offset), "BAR2 via VFIO");

    // Bus master on (PCI command bit 2), or the device's MSI-X writes are dropped.
    const vfio_region_info config = region_info(VFIO_PCI_CONFIG_REGION_INDEX);
    std::uint16_t command = 0;
    const auto command_at = static_cast<off_t>(config.offset + 4);
    if (::pread(device_fd_.get(), &command, sizeof command, command_at) != sizeof command)
      fail("pread PCI command", address_);
    command |= 0x6; // memory space + bus master
    if (::pwrite(device_fd_.get(), &command, sizeof command, command_at) != sizeof command)
      fail("pwrite PCI command", address_);

    // One eventfd per MSI-X vector.
    vfio_irq_info irq{};
    irq.argsz = sizeof irq;
    irq.index = VFIO_PCI_MSIX_IRQ_INDEX;
    if (::ioctl(device_fd_.get(), VFIO_DEVICE_GET_IRQ_INFO, &irq) != 0)
      fail("VFIO_DEVICE_GET_IRQ_INFO", address_);
    if (irq.count < vectors_) {
      fail_plain(address_ + " has " + std::to_string(irq.count) + " MSI-X vectors, " +
                 std::to_string(vectors_) +
                 " needed (QEMU's vectors= and the server's "
                 "--vectors must match)");
    }
    std::vector<std::byte> set(sizeof(vfio_irq_set) + sizeof(std::int32_t) * vectors_);
    auto* request = reinterpret_cast<vfio_irq_set*>(set.data());
    request->argsz = static_cast<std::uint32_t>(set.size());
    request->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    request->index = VFIO_PCI_MSIX_IRQ_INDEX;
    request->start = 0;
    request->count = vectors_;
    for (unsigned v = 0; v < vectors_; ++v) {
      irq_fds_.emplace_back(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
      if (!irq_fds_.back()) fail("eventfd", "MSI-X vector " + std::to_string(v));
      const std::int32_t fd = irq_fds_.back().get();
      std::memcpy(request->data + sizeof fd * v, &fd, sizeof fd);
    }
    if (::ioctl(device_fd_.get(), VFIO_DEVICE_SET_IRQS, request) != 0)
      fail("VFIO_DEVICE_SET_IRQS", address_ + " MSI-X");
  }

  vfio_region_info region_info(unsigned index) {
    vfio_region_info info{};
    info.argsz = sizeof info;
    info.index = index;
    if (::ioctl(device_fd_.get(), VFIO_DEVICE_GET_REGION_INFO, &info) != 0)
      fail("VFIO_DEVICE_GET_REGION_INFO " + std::to_string(index), address_);
    return info;
  }

  std::string dir_;
  std::string address_;
  unsigned vectors_;
  std::uint16_t id_ = 0;
  // Declared before the mappings and regs_, so they are closed after them.
  posix::UniqueFd container_fd_, group_fd_, device_fd_, bar0_fd_;
  std::vector<posix::UniqueFd> irq_fds_;
  Mapping bar0_, bar2_;
  std::shared_ptr<const Registers> regs_;
};

} // namespace

std::string find_ivshmem_device(const GuestDeviceOptions& options) {
  const std::string devices = options.sysfs + "/bus/pci/devices";
  auto is_ivshmem = [&](const std::string& address) {
    const std::string dir = devices + "/" + address;
    if (::access((dir + "/vendor").c_str(), R_OK) != 0) return false;
    return read_text(dir + "/vendor") == "0x1af4" && read_text(dir + "/device") == "0x1110";
  };
  if (!options.pci_address.empty()) {
    if (!is_ivshmem(options.pci_address))
      fail_plain(devices + "/" + options.pci_address + " is not an ivshmem device (1af4:1110)");
    return options.pci_address;
  }
  DIR* dir = ::opendir(devices.c_str());
  if (dir == nullptr) fail("opendir", devices);
  std::vector<std::string> found;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != ".." && is_ivshmem(name)) found.push_back(name);
  }
  ::closedir(dir);
  if (found.empty()) {
    fail_plain("no ivshmem device (1af4:1110) under " + devices +
               ": start QEMU with -device ivshmem-doorbell,chardev=...");
  }
  std::sort(found.begin(), found.end());
  return found.front();
}

std::unique_ptr<GuestPlatform> GuestPlatform::open(const GuestDeviceOptions& options) {
  const std::string address = find_ivshmem_device(options);
  return std::unique_ptr<GuestPlatform>(new GuestPlatform(
      std::make_unique<GuestPort>(options, address), address, options.interrupts));
}

GuestPlatform::GuestPlatform(std::unique_ptr<IvshmemPort> port, std::string pci_address,
                             bool interrupts)
    : IvshmemPlatform(std::move(port)), pci_address_(std::move(pci_address)),
      interrupts_(interrupts) {}

} // namespace ivmc::kvm
