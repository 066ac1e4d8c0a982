// `ivmc run --backend xen`: see xen_run.hpp.
#include "xen_run.hpp"

#include "guest_results.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/posix/qemu_process.hpp"
#include "ivmc/xen/xen_qemu.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ivmc::cli {
namespace {

// QEMU's 2 GiB less dom0's 512 MiB and Xen's own share, at 160 MiB per domU.
constexpr std::size_t kMaxDomains = 8;
// The grant pages a domU may share (xen-gntalloc's default limit is 1024 pages): both rings
// and the control area of one channel, with room to spare.
constexpr std::uint32_t kMaxRingKib = 1024;

void run_shell(const std::string& cmd, const std::string& what) {
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error(what + " (" + cmd + ")");
}

// dom0's console as it grows: its IVMC-STEP lines on stderr, so a long boot shows progress.
class ConsoleFollower {
public:
  explicit ConsoleFollower(std::string path) : path_(std::move(path)) {}
  void poll() {
    std::ifstream in(path_);
    if (!in) return;
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break; // a partial line: read it whole next time
      offset_ += line.size() + 1;
      if (const std::size_t at = line.find("IVMC-STEP "); at != std::string::npos) {
        std::string step = line.substr(at + 10);
        while (!step.empty() && (step.back() == '\r' || step.back() == ' ')) step.pop_back();
        fmt::print(stderr, "  xen: {}\n", step);
      }
    }
  }

private:
  std::string path_;
  std::size_t offset_ = 0;
};

} // namespace

std::string xen_plan(const sim::Scenario& s, const XenRunOptions& o) {
  NotifyPolicy policy = NotifyPolicy::polling;
  if (!parse_notify_policy(s.channel.notify, policy))
    throw std::runtime_error("channel.notify '" + s.channel.notify + "' is not a policy");
  if (s.channel.ring_kib > kMaxRingKib)
    throw std::runtime_error(fmt::format(
        "channel.ring_kib = {}: the xen backend shares at most {} KiB rings (a domU may grant "
        "1024 pages)",
        s.channel.ring_kib, kMaxRingKib));
  const std::uint32_t ring = s.channel.ring_kib * 1024;
  std::vector<std::string> vms; // in the order the scenario declares them
  for (const sim::VmConfig& v : s.vms)
    for (const sim::WorkloadConfig& w : s.workloads)
      if (w.from == v.name || w.to == v.name) {
        vms.push_back(v.name);
        break;
      }
  if (vms.size() > kMaxDomains)
    throw std::runtime_error(fmt::format(
        "{} VMs take part in workloads; one Xen machine under QEMU holds at most {} domUs",
        vms.size(), kMaxDomains));
  std::string plan = fmt::format("# ivmc run --backend xen: {} ({})\n", s.name, s.origin);
  for (std::size_t k = 0; k < vms.size(); ++k)
    plan += fmt::format("vm {} 10.0.{}.2\n", vms[k], k + 1);
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const sim::WorkloadConfig& w = s.workloads[i];
    for (const std::string& name : {w.from, w.to})
      if (name.empty() || name.find_first_of(" \t\n=#") != std::string::npos)
        throw std::runtime_error(
            fmt::format("workload {}: VM name '{}' cannot go in a plan", i, name));
    const bool ring_path = through_channel(s, w);
    if (ring_path && w.message_bytes > wire::max_payload_for(ring))
      throw std::runtime_error(
          fmt::format("workload {} ({} -> {}): {} B messages do not fit a {} KiB ring", i, w.from,
                      w.to, w.message_bytes, s.channel.ring_kib));
    if (w.message_bytes == 0 || w.message_bytes > (1u << 20))
      throw std::runtime_error(
          fmt::format("workload {}: message_bytes {} is not in 1..1 MiB", i, w.message_bytes));
    plan += fmt::format("work {} {} {} {} message={}", is_request_response(w) ? "rr" : "stream",
                        ring_path ? "ring" : "net", w.from, w.to, w.message_bytes);
    if (ring_path) plan += fmt::format(" policy={} ring={}", s.channel.notify, ring);
    plan += is_request_response(w) ? fmt::format(" count={}\n", o.rr_count)
                                   : fmt::format(" bytes={}\n", o.stream_bytes);
  }
  return plan;
}

sim::RunResult run_on_xen(const sim::Scenario& s, const XenRunOptions& o) {
  refuse_unplayed_events(s, o.ignore_events, "xen");
  if (s.workloads.empty()) throw std::runtime_error(s.origin + ": no workloads to run");
  const auto wall0 = std::chrono::steady_clock::now();
  const std::string plan = xen_plan(s, o);
  std::filesystem::create_directories(o.log_dir);
  const std::string tag = fmt::format("xen-run-{}", ::getpid());
  const std::string work_dir = o.log_dir + "/" + tag;
  std::filesystem::create_directories(work_dir + "/plan");
  std::ofstream(work_dir + "/plan/ivmc-plan") << plan;

  // The image (cached: rebuilt only when the agent or the scripts changed).
  build_guest_image(IVMC_SOURCE_DIR "/backends/xen/guest/build_image.sh", IVMC_XEN_AGENT,
                    o.image_dir);
  std::string why;
  auto image = xen::XenImage::from_dir(o.image_dir, why);
  if (!image) throw std::runtime_error("the Xen image in " + o.image_dir + ": " + why);

  // dom0's initramfs for this run: the image's, followed by a second archive holding only
  // /ivmc-plan (the kernel unpacks concatenated archives in order).
  const std::string initrd = work_dir + "/dom0-run.gz";
  run_shell(fmt::format("cp {} {} && (cd {} && echo ivmc-plan | cpio -o -H newc --quiet -R 0:0 | "
                        "gzip -1) >>{}",
                        shell_quote(image->initrd), shell_quote(initrd),
                        shell_quote(work_dir + "/plan"), shell_quote(initrd)),
            "dom0's initramfs for this run could not be made (cpio, gzip)");
  image->initrd = initrd;

  xen::XenBootOptions boot;
  boot.qemu = posix::find_qemu();
  if (boot.qemu.empty())
    throw std::runtime_error("qemu-system-x86_64 not found (scripts/deps.sh test, or set "
                             "IVMC_QEMU)");
  boot.image = *image;
  boot.serial_log = work_dir + "/console.log";
  // dom0 up (~20-40 s), each domU (~5-15 s), each workload (seconds; minutes at worst).
  boot.timeout = static_cast<Nanos>((240 + 30 * s.vms.size() + 150 * s.workloads.size()) * 1e9);
  if (o.progress)
    fmt::print(stderr,
               "booting Xen under QEMU (TCG) for {} workloads, one at a time (a minute or two); "
               "console in {}\n",
               s.workloads.size(), boot.serial_log);
  xen::XenBoot machine(boot);
  std::atomic<bool> done{false};
  xen::XenBootOutcome out;
  std::thread waiter([&] {
    out = machine.wait();
    done = true; // seq_cst: the outcome written above is visible to whoever reads done
  });
  ConsoleFollower follower(boot.serial_log);
  while (!done) { // seq_cst load: pairs with the store after the outcome
    if (o.progress) follower.poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  waiter.join();
  if (o.progress) follower.poll();
  std::error_code ignored; // the run's initramfs is the image's plus the plan: not worth keeping
  std::filesystem::remove(initrd, ignored);

  // Every workload's two outcome lines (dom0 adds w=, side= and vm= to what the domUs sent).
  std::vector<GuestWorkloadOutcome> outcomes(s.workloads.size());
  std::vector<int> seen(s.workloads.size(), 0);
  std::istringstream console(out.console);
  for (std::string line; std::getline(console, line);) {
    auto f = posix::parse_report(line);
    if (!f || !f->count("w") || !f->count("side")) continue;
    const double w = report_number(*f, "w");
    if (!(w >= 0) || w >= static_cast<double>(outcomes.size())) continue;
    const auto i = static_cast<std::size_t>(w);
    const bool from = f->at("side") == "from";
    if (!f->count("ok") || f->at("ok") != "1") {
      const auto err = f->find("error");
      throw std::runtime_error(fmt::format(
          "workload {} ({} -> {}): {}'s side failed: {} (console: {})", i, s.workloads[i].from,
          s.workloads[i].to, from ? s.workloads[i].from : s.workloads[i].to,
          err == f->end() ? std::string("no error given") : err->second, boot.serial_log));
    }
    (from ? outcomes[i].from : outcomes[i].to) = std::move(*f);
    seen[i] |= from ? 1 : 2;
  }
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    if (seen[i] != 3)
      throw std::runtime_error(fmt::format("workload {} ({} -> {}): no outcome from {}: {}", i,
                                           s.workloads[i].from, s.workloads[i].to,
                                           seen[i] == 0   ? "either domain"
                                           : seen[i] == 1 ? "the receiver"
                                                          : "the sender",
                                           out.describe()));
    outcomes[i].local = through_channel(s, s.workloads[i]);
  }
  if (out.timed_out || !out.exit_code || *out.exit_code != 0)
    throw std::runtime_error("the Xen run did not end cleanly: " + out.describe());
  std::size_t domains = 0;
  std::istringstream lines(plan);
  for (std::string line; std::getline(lines, line);) domains += line.rfind("vm ", 0) == 0;
  const std::string summary =
      fmt::format("{} on Xen 4.17 under QEMU (TCG): {} domUs, workloads one at a time, ring "
                  "(granted pages) or TCP through dom0\n",
                  s.name, domains);
  return guest_results(s, outcomes, summary, wall0);
}

} // namespace ivmc::cli
