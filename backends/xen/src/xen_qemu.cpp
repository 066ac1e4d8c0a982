// Booting the Xen test image under QEMU: see include/ivmc/xen/xen_qemu.hpp.
#include "ivmc/xen/xen_qemu.hpp"

#include "ivmc/posix/clock.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace ivmc::xen {

namespace {

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

namespace {

std::vector<std::string> boot_command(const XenBootOptions& o) {
  const XenImage& im = o.image;
  std::string dom0 = im.kernel + " console=hvc0 earlyprintk=xen panic=-1";
  for (const std::string& a : o.dom0_args) dom0 += " " + a;
  return {o.qemu, "-accel",
          "tcg",            // -accel kvm does not work on these machines (see the notes)
          "-cpu", "qemu64", // -cpu max crashes dom0 under Xen 4.17
          "-m", std::to_string(o.memory_mib), "-smp", std::to_string(o.cpus), "-display", "none",
          "-monitor", "none", "-nodefaults", "-no-reboot", "-serial", "file:" + o.serial_log,
          "-kernel", im.xen, "-append",
          // dom0 gets one vCPU pinned to pCPU 0, so a domU's vCPU (one each) can run on
          // the other while dom0 works: a polling pair must not share a pCPU.
          fmt::format("console=com1 com1=115200,8n1 dom0_mem={0}M,max:{0}M dom0_max_vcpus=1 "
                      "dom0_vcpus_pin noreboot",
                      o.dom0_memory_mib),
          // Multiboot modules: dom0's kernel with its command line, then its initramfs.
          // (A comma in an argument would split the module list: none here.)
          "-initrd", dom0 + "," + im.initrd};
}

} // namespace

XenBoot::XenBoot(XenBootOptions options)
    : options_(std::move(options)),
      process_(boot_command(options_), options_.serial_log, "XenBoot") {}

XenBoot::~XenBoot() {
  kill();
}

XenBootOutcome XenBoot::wait() {
  XenBootOutcome out;
  const Nanos deadline = process_.started() + options_.timeout;
  Nanos exit_seen = -1;
  while (process_.running()) {
    const Nanos now = posix::MonotonicClock::read();
    if (now >= deadline) {
      out.timed_out = true;
      kill();
      break;
    }
    if (exit_seen < 0 && process_.console().find("IVMC-EXIT ") != std::string::npos)
      exit_seen = now;
    if (exit_seen >= 0 && now - exit_seen > 30'000'000'000) {
      kill(); // dom0 finished but Xen did not power the machine off
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  out.wall = process_.wall();
  out.qemu_status = process_.status();
  out.console = process_.console();
  out.qemu_output = process_.output();
  const std::size_t at = out.console.rfind("IVMC-EXIT ");
  if (at != std::string::npos) out.exit_code = std::atoi(out.console.c_str() + at + 10);
  return out;
}

} // namespace ivmc::xen
