// Launching test guests: see include/ivmc/kvm/qemu.hpp.
#include "ivmc/kvm/qemu.hpp"

#include "ivmc/kvm/error.hpp"
#include "ivmc/posix/clock.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace ivmc::kvm {
namespace {

constexpr Nanos kSecond = 1'000'000'000;
constexpr Nanos kProbeLimit = 8 * kSecond; // a KVM guest that works is in userspace by then

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string last_lines(const std::string& text, std::size_t count) {
  std::size_t at = text.size();
  for (std::size_t n = 0; at > 0 && n <= count;) {
    --at;
    if (text[at] == '\n') ++n;
  }
  return text.substr(at == 0 ? 0 : at + 1);
}

} // namespace

GuestImage GuestImage::from_dir(const std::string& dir) {
  const std::string env = dir + "/image.env";
  std::ifstream in(env);
  if (!in) {
    throw IvshmemError(fmt::format("guest image: {} is missing (build it with "
                                   "backends/kvm/guest/build_image.sh)",
                                   env));
  }
  GuestImage image;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("KERNEL=", 0) == 0) image.kernel = line.substr(7);
    if (line.rfind("INITRD=", 0) == 0) image.initrd = line.substr(7);
  }
  if (image.kernel.empty() || image.initrd.empty())
    throw IvshmemError(fmt::format("guest image: {} names no KERNEL or INITRD", env));
  return image;
}

std::uint16_t free_udp_port() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw IvshmemError("free_udp_port: socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw IvshmemError("free_udp_port: bind on 127.0.0.1 failed");
  return ntohs(addr.sin_port);
}

std::string_view to_string(Accel a) {
  return a == Accel::kvm ? "kvm" : "tcg";
}

Accel choose_accel(const std::string& qemu, const GuestImage& image,
                   const std::string& cache_file) {
  if (const char* env = std::getenv("IVMC_QEMU_ACCEL"); env && *env) {
    if (std::string_view(env) == "kvm") return Accel::kvm;
    if (std::string_view(env) == "tcg") return Accel::tcg;
    throw IvshmemError(fmt::format("IVMC_QEMU_ACCEL={} is neither tcg nor kvm", env));
  }
  {
    const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return Accel::tcg;
    ::close(fd);
  }
  std::string boot_id = read_file("/proc/sys/kernel/random/boot_id");
  while (!boot_id.empty() && boot_id.back() == '\n') boot_id.pop_back();
  {
    std::istringstream cached(read_file(cache_file));
    std::string id, answer;
    if (cached >> id >> answer && id == boot_id) return answer == "kvm" ? Accel::kvm : Accel::tcg;
  }
  // The probe: boot with KVM and no device; the agent fails at once, which proves userspace.
  QemuOptions probe;
  probe.qemu = qemu;
  probe.image = image;
  probe.accel = Accel::kvm;
  probe.agent_args = {"recv"};
  probe.serial_log = cache_file + ".log";
  probe.timeout = kProbeLimit;
  QemuGuest guest(probe);
  const GuestOutcome out = guest.wait();
  const Accel answer = out.agent_status.has_value() ? Accel::kvm : Accel::tcg;
  std::ofstream(cache_file) << boot_id << ' ' << to_string(answer) << '\n';
  return answer;
}

std::string GuestOutcome::describe() const {
  std::string why;
  if (timed_out)
    why = fmt::format("killed at its timeout after {:.1f} s", wall / 1e9);
  else if (!agent_status)
    why = fmt::format("QEMU ended (status {}) without IVMC-EXIT", qemu_status);
  else
    why = fmt::format("agent exit {} (QEMU status {}) after {:.1f} s", *agent_status, qemu_status,
                      wall / 1e9);
  return fmt::format("{}\n--- console (last lines) ---\n{}\n--- QEMU output ---\n{}", why,
                     last_lines(console, 25), last_lines(qemu_output, 10));
}

namespace {

// QemuGuest's command line; throws on options that cannot make one.
std::vector<std::string> guest_command(const QemuOptions& o) {
  if (o.serial_log.empty()) throw IvshmemError("QemuGuest: serial_log is required");
  std::string append = "console=ttyS0 quiet panic=-1";
  if (o.iommu) append += " intel_iommu=on ivmc_modules=vfio-pci,vfio_iommu_type1";
  if (o.nic) append += " ivmc_ip=" + o.nic->ip;
  for (const std::string& a : o.kernel_args) append += " " + a;
  append += " --";
  for (const std::string& a : o.agent_args) {
    if (a.empty() || a.find_first_of(" \"\t\n") != std::string::npos)
      throw IvshmemError(fmt::format("QemuGuest: agent argument '{}' cannot go on a kernel "
                                     "command line (empty, or a space or quote in it)",
                                     a));
    append += " " + a;
  }
  std::vector<std::string> c = {o.qemu,
                                "-accel",
                                std::string(to_string(o.accel)),
                                "-m",
                                std::to_string(o.memory_mib),
                                "-smp",
                                "1",
                                "-nodefaults",
                                "-display",
                                "none",
                                "-no-reboot",
                                "-serial",
                                "file:" + o.serial_log};
  if (o.iommu) c.insert(c.end(), {"-M", "q35", "-device", "intel-iommu"});
  if (!o.ivshmem_socket.empty()) {
    c.insert(c.end(), {"-chardev", "socket,path=" + o.ivshmem_socket + ",id=ivshmem", "-device",
                       fmt::format("ivshmem-doorbell,chardev=ivshmem,vectors={}{}", o.vectors,
                                   o.ivshmem_master ? ",master=on" : "")});
  }
  if (!o.qmp_socket.empty()) {
    (void)::unlink(o.qmp_socket.c_str()); // a stale socket of an earlier run
    c.insert(c.end(), {"-qmp", "unix:" + o.qmp_socket + ",server=on,wait=off"});
  }
  if (!o.incoming.empty()) c.insert(c.end(), {"-incoming", o.incoming});
  if (o.nic) {
    const GuestNic& n = *o.nic;
    c.insert(
        c.end(),
        {"-netdev",
         n.user ? std::string("user,id=net0,restrict=off") +
                      (n.forward_host_port != 0
                           ? fmt::format(",hostfwd=tcp:127.0.0.1:{}-:{}", n.forward_host_port,
                                         n.forward_guest_port)
                           : std::string())
                : fmt::format("socket,id=net0,udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
                              n.remote_port, n.local_port),
         "-device",
         fmt::format("virtio-net-pci,netdev=net0,mac=52:54:00:00:00:{:02x}", n.mac_suffix & 0xff)});
  }
  c.insert(c.end(), o.qemu_args.begin(), o.qemu_args.end());
  c.insert(c.end(), {"-kernel", o.image.kernel, "-initrd", o.image.initrd, "-append", append});
  return c;
}

} // namespace

QemuGuest::QemuGuest(QemuOptions options)
    : options_(std::move(options)),
      process_(guest_command(options_), options_.serial_log, "QemuGuest") {}

QemuGuest::~QemuGuest() {
  kill();
  if (!options_.qmp_socket.empty()) (void)::unlink(options_.qmp_socket.c_str());
  constexpr std::string_view kUnix = "unix:";
  if (options_.incoming.rfind(kUnix, 0) == 0)
    (void)::unlink(options_.incoming.substr(kUnix.size()).c_str());
}

GuestOutcome QemuGuest::wait() {
  const Nanos deadline = process_.started() + options_.timeout;
  while (process_.running()) {
    if (posix::MonotonicClock::read() >= deadline) {
      timed_out_ = true;
      kill();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return outcome();
}

bool QemuGuest::wait_for_console(const std::string& text, Nanos timeout) {
  const Nanos deadline = posix::MonotonicClock::read() + timeout;
  for (;;) {
    if (process_.console().find(text) != std::string::npos) return true;
    if (!process_.running() || posix::MonotonicClock::read() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

GuestOutcome QemuGuest::outcome() const {
  GuestOutcome out;
  out.timed_out = timed_out_;
  out.qemu_status = process_.status();
  out.console = process_.console();
  out.qemu_output = process_.output();
  out.wall = process_.wall();
  std::istringstream lines(out.console);
  std::string line;
  while (std::getline(lines, line)) {
    if (const auto at = line.find("IVMC-EXIT "); at != std::string::npos) {
      try {
        out.agent_status = std::stoi(line.substr(at + 10));
      } catch (const std::exception&) {
        // a garbled line: the status stays unknown
      }
    } else if (auto fields = posix::parse_report(line)) {
      out.reports.push_back(std::move(*fields));
    }
  }
  return out;
}

} // namespace ivmc::kvm
