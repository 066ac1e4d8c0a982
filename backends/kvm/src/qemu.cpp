// Launching test guests: see include/ivmc/kvm/qemu.hpp.
#include "ivmc/kvm/qemu.hpp"

#include "ivmc/kvm/error.hpp"
#include "ivmc/kvm/posix_clock.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

bool executable(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), X_OK) == 0;
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

std::string find_qemu() {
  if (const char* env = std::getenv("IVMC_QEMU"); env && *env) {
    return executable(env) ? std::string(env) : std::string();
  }
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/qemu-system-x86_64";
    if (executable(candidate)) return candidate;
  }
  return {};
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

QemuGuest::QemuGuest(QemuOptions options) : options_(std::move(options)) {
  if (options_.serial_log.empty()) throw IvshmemError("QemuGuest: serial_log is required");
  std::string append = "console=ttyS0 quiet panic=-1";
  if (options_.iommu) append += " intel_iommu=on ivmc_modules=vfio-pci,vfio_iommu_type1";
  if (options_.nic) append += " ivmc_ip=" + options_.nic->ip;
  for (const std::string& a : options_.kernel_args) append += " " + a;
  append += " --";
  for (const std::string& a : options_.agent_args) {
    if (a.empty() || a.find_first_of(" \"\t\n") != std::string::npos)
      throw IvshmemError(fmt::format("QemuGuest: agent argument '{}' cannot go on a kernel "
                                     "command line (empty, or a space or quote in it)",
                                     a));
    append += " " + a;
  }
  auto& c = command_;
  c = {options_.qemu,
       "-accel",
       std::string(to_string(options_.accel)),
       "-m",
       std::to_string(options_.memory_mib),
       "-smp",
       "1",
       "-nodefaults",
       "-display",
       "none",
       "-no-reboot",
       "-serial",
       "file:" + options_.serial_log};
  if (options_.iommu) c.insert(c.end(), {"-M", "q35", "-device", "intel-iommu"});
  if (!options_.ivshmem_socket.empty()) {
    c.insert(c.end(),
             {"-chardev", "socket,path=" + options_.ivshmem_socket + ",id=ivshmem", "-device",
              fmt::format("ivshmem-doorbell,chardev=ivshmem,vectors={}{}", options_.vectors,
                          options_.ivshmem_master ? ",master=on" : "")});
  }
  if (!options_.qmp_socket.empty()) {
    (void)::unlink(options_.qmp_socket.c_str()); // a stale socket of an earlier run
    c.insert(c.end(), {"-qmp", "unix:" + options_.qmp_socket + ",server=on,wait=off"});
  }
  if (!options_.incoming.empty()) c.insert(c.end(), {"-incoming", options_.incoming});
  if (options_.nic) {
    const GuestNic& n = *options_.nic;
    c.insert(
        c.end(),
        {"-netdev",
         n.user ? std::string("user,id=net0,restrict=off")
                : fmt::format("socket,id=net0,udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
                              n.remote_port, n.local_port),
         "-device",
         fmt::format("virtio-net-pci,netdev=net0,mac=52:54:00:00:00:{:02x}", n.mac_suffix & 0xff)});
  }
  c.insert(c.end(), options_.qemu_args.begin(), options_.qemu_args.end());
  c.insert(c.end(),
           {"-kernel", options_.image.kernel, "-initrd", options_.image.initrd, "-append", append});

  // Everything the child needs is prepared before fork(): it only calls async-signal-safe
  // functions before exec.
  std::vector<char*> argv;
  for (std::string& s : c) argv.push_back(s.data());
  argv.push_back(nullptr);
  qemu_output_path_ = options_.serial_log + ".qemu";
  (void)::unlink(options_.serial_log.c_str()); // a stale console must not be read as this one's
  const int out = ::open(qemu_output_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || null_in < 0) {
    if (out >= 0) ::close(out);
    if (null_in >= 0) ::close(null_in);
    throw IvshmemError(fmt::format("QemuGuest: cannot open {}", qemu_output_path_));
  }
  const pid_t parent = ::getpid();
  started_ = MonotonicClock::read();
  pid_ = ::fork();
  if (pid_ == 0) {
    // QEMU dies with this process, whatever happens to it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(null_in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execv(argv[0], argv.data());
    const char msg[] = "QemuGuest: execv of QEMU failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(out);
  ::close(null_in);
  if (pid_ < 0) throw IvshmemError("QemuGuest: fork failed");
}

QemuGuest::~QemuGuest() {
  kill();
  if (!options_.qmp_socket.empty()) (void)::unlink(options_.qmp_socket.c_str());
  constexpr std::string_view kUnix = "unix:";
  if (options_.incoming.rfind(kUnix, 0) == 0)
    (void)::unlink(options_.incoming.substr(kUnix.size()).c_str());
}

void QemuGuest::reap(bool block) {
  if (ended_ || pid_ <= 0) return;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == pid_) {
    ended_ = true;
    ended_at_ = MonotonicClock::read();
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  } else if (r < 0) {
    ended_ = true; // not our child any more (reaped elsewhere): nothing left to kill
    ended_at_ = MonotonicClock::read();
  }
}

bool QemuGuest::running() {
  reap(false);
  return !ended_;
}

void QemuGuest::kill() {
  reap(false);
  if (ended_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

GuestOutcome QemuGuest::wait() {
  const Nanos deadline = started_ + options_.timeout;
  while (!ended_) {
    reap(false);
    if (ended_) break;
    if (MonotonicClock::read() >= deadline) {
      timed_out_ = true;
      kill();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return outcome();
}

bool QemuGuest::wait_for_console(const std::string& text, Nanos timeout) {
  const Nanos deadline = MonotonicClock::read() + timeout;
  for (;;) {
    if (read_file(options_.serial_log).find(text) != std::string::npos) return true;
    reap(false);
    if (ended_ || MonotonicClock::read() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

GuestOutcome QemuGuest::outcome() const {
  GuestOutcome out;
  out.timed_out = timed_out_;
  out.qemu_status = status_;
  out.console = read_file(options_.serial_log);
  out.qemu_output = read_file(qemu_output_path_);
  out.wall = (ended_ ? ended_at_ : MonotonicClock::read()) - started_;
  std::istringstream lines(out.console);
  std::string line;
  while (std::getline(lines, line)) {
    if (const auto at = line.find("IVMC-EXIT "); at != std::string::npos) {
      try {
        out.agent_status = std::stoi(line.substr(at + 10));
      } catch (const std::exception&) {
        // a garbled line: the status stays unknown
      }
    } else if (auto fields = parse_report(line)) {
      out.reports.push_back(std::move(*fields));
    }
  }
  return out;
}

} // namespace ivmc::kvm
