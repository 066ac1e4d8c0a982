// Booting the Xen test image under QEMU: see include/ivmc/xen/xen_qemu.hpp.
#include "ivmc/xen/xen_qemu.hpp"

#include "ivmc/kvm/posix_clock.hpp"
#include "ivmc/xen/error.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace ivmc::xen {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string last_lines(const std::string& text, int n) {
  std::size_t at = text.size();
  while (n-- > 0 && at > 0) {
    at = text.rfind('\n', at - 1);
    if (at == std::string::npos) return text;
  }
  return text.substr(at);
}

} // namespace

std::optional<XenImage> XenImage::from_dir(const std::string& dir, std::string& why) {
  std::ifstream in(dir + "/image.env");
  if (!in) {
    why = dir + "/image.env is missing (the xen_vm_image test builds it)";
    return std::nullopt;
  }
  std::map<std::string, std::string> env;
  for (std::string line; std::getline(in, line);) {
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  XenImage image{env["XEN"], env["KERNEL"], env["INITRD"]};
  for (const std::string* f : {&image.xen, &image.kernel, &image.initrd}) {
    if (f->empty() || ::access(f->c_str(), R_OK) != 0) {
      why = fmt::format("{}/image.env names a file that is not there: '{}'", dir, *f);
      return std::nullopt;
    }
  }
  return image;
}

std::string XenBootOutcome::describe() const {
  std::string s = timed_out ? "QEMU was killed at the timeout"
                            : fmt::format("QEMU ended with status {}", qemu_status);
  s += exit_code ? fmt::format(", dom0 printed IVMC-EXIT {}", *exit_code)
                 : ", dom0 printed no IVMC-EXIT";
  s += fmt::format(" after {:.1f} s\n--- console (last lines):{}\n--- QEMU:{}", wall / 1e9,
                   last_lines(console, 40), last_lines(qemu_output, 10));
  return s;
}

XenBoot::XenBoot(XenBootOptions options) : options_(std::move(options)) {
  const XenImage& im = options_.image;
  std::string dom0 = im.kernel + " console=hvc0 earlyprintk=xen panic=-1";
  for (const std::string& a : options_.dom0_args) dom0 += " " + a;
  command_ = {options_.qemu, "-accel",
              "tcg",            // -accel kvm does not work on these machines (see the notes)
              "-cpu", "qemu64", // -cpu max crashes dom0 under Xen 4.17
              "-m", std::to_string(options_.memory_mib), "-smp", std::to_string(options_.cpus),
              "-display", "none", "-monitor", "none", "-nodefaults", "-no-reboot", "-serial",
              "file:" + options_.serial_log, "-kernel", im.xen, "-append",
              // dom0 gets one vCPU pinned to pCPU 0, so a domU's vCPU (one each) can run on
              // the other while dom0 works: a polling pair must not share a pCPU.
              fmt::format("console=com1 com1=115200,8n1 dom0_mem={0}M,max:{0}M dom0_max_vcpus=1 "
                          "dom0_vcpus_pin noreboot",
                          options_.dom0_memory_mib),
              // Multiboot modules: dom0's kernel with its command line, then its initramfs.
              // (A comma in an argument would split the module list: none here.)
              "-initrd", dom0 + "," + im.initrd};
  std::vector<char*> argv;
  for (std::string& s : command_) argv.push_back(s.data());
  argv.push_back(nullptr);
  qemu_output_path_ = options_.serial_log + ".qemu";
  (void)::unlink(options_.serial_log.c_str());
  const int out = ::open(qemu_output_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || null_in < 0) {
    if (out >= 0) ::close(out);
    if (null_in >= 0) ::close(null_in);
    throw XenError("XenBoot: cannot open " + qemu_output_path_);
  }
  const pid_t parent = ::getpid();
  started_ = kvm::MonotonicClock::read();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL); // QEMU dies with this process, whatever happens to it
    if (::getppid() != parent) ::_exit(126);
    ::dup2(null_in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execvp(argv[0], argv.data());
    const char msg[] = "XenBoot: exec of QEMU failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(out);
  ::close(null_in);
  if (pid_ < 0) throw XenError("XenBoot: fork failed");
}

XenBoot::~XenBoot() {
  kill();
}

void XenBoot::kill() {
  if (ended_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  if (::waitpid(pid_, &status, 0) == pid_)
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  ended_ = true;
}

XenBootOutcome XenBoot::wait() {
  XenBootOutcome out;
  const Nanos deadline = started_ + options_.timeout;
  Nanos exit_seen = -1;
  while (!ended_) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      ended_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      break;
    }
    const Nanos now = kvm::MonotonicClock::read();
    if (now >= deadline) {
      out.timed_out = true;
      kill();
      break;
    }
    if (exit_seen < 0 && read_file(options_.serial_log).find("IVMC-EXIT ") != std::string::npos)
      exit_seen = now;
    if (exit_seen >= 0 && now - exit_seen > 30'000'000'000) {
      kill(); // dom0 finished but Xen did not power the machine off
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  out.wall = kvm::MonotonicClock::read() - started_;
  out.qemu_status = status_;
  out.console = read_file(options_.serial_log);
  out.qemu_output = read_file(qemu_output_path_);
  const std::size_t at = out.console.rfind("IVMC-EXIT ");
  if (at != std::string::npos) out.exit_code = std::atoi(out.console.c_str() + at + 10);
  return out;
}

} // namespace ivmc::xen
