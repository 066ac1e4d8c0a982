// The xen backend: see xen_backend.hpp.
#include "ivmc/xen/xen_backend.hpp"

#include "ivmc/guest_results/guest_results.hpp"
#include "ivmc/posix/qemu_process.hpp"
#include "ivmc/posix/workload.hpp"
#include "ivmc/xen/xen_migration_run.hpp"
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

namespace ivmc::xen {
namespace {

using experiment::Scenario;
using guest_results::GuestWorkloadOutcome;
using guest_results::report_number;
using guest_results::shell_quote;
using guest_results::through_channel;

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

std::vector<experiment::ScenarioIssue> XenBackend::check(const Scenario& s) const {
  auto out = xen_plan_issues(s); // in file order: the plan's keys, then events
  if (guest_results::plays_migrations(s, o_.ignore_events)) {
    for (auto& issue : xen_migration_issues(s)) {
      issue.what += "; or pass --ignore-events to run the workloads with the initial placement";
      out.push_back(std::move(issue));
    }
  }
  for (auto& issue : experiment::unrecorded_changes(s, "xen")) out.push_back(std::move(issue));
  return out;
}

experiment::RunResult XenBackend::run(const Scenario& scenario, std::uint64_t seed) {
  Scenario s = scenario;
  s.seed = seed; // the domains' workloads take no seed; kept for the record
  if (const auto issues = check(s); !issues.empty()) throw experiment::ScenarioError(issues);
  const XenRunOptions& o = o_;
  const auto wall0 = std::chrono::steady_clock::now();
  const std::string plan = xen_plan(s, o);
  std::filesystem::create_directories(o.log_dir);
  const std::string tag = fmt::format("xen-run-{}", ::getpid());
  const std::string work_dir = o.log_dir + "/" + tag;
  std::filesystem::create_directories(work_dir + "/plan");
  std::ofstream(work_dir + "/plan/ivmc-plan") << plan;

  // The image (cached: rebuilt only when the agent or the scripts changed).
  guest_results::build_guest_image(IVMC_SOURCE_DIR "/backends/xen/guest/build_image.sh",
                                   IVMC_XEN_AGENT, o.image_dir);
  std::string why;
  auto image = XenImage::from_dir(o.image_dir, why);
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

  XenBootOptions boot;
  boot.qemu = posix::find_qemu();
  if (boot.qemu.empty())
    throw std::runtime_error("qemu-system-x86_64 not found (scripts/deps.sh test, or set "
                             "IVMC_QEMU)");
  boot.image = *image;
  boot.serial_log = work_dir + "/console.log";
  // dom0 up (~20-40 s), each domU (~5-15 s), each workload (seconds; minutes at worst).
  boot.timeout = static_cast<Nanos>(
      (240 + 30 * s.vms.size() + 150 * s.workloads.size() + s.duration_s + 30 * s.events.size()) *
      1e9);
  if (o.progress)
    fmt::print(stderr,
               "booting Xen under QEMU (TCG) for {} workloads, one at a time (a minute or two); "
               "console in {}\n",
               s.workloads.size(), boot.serial_log);
  XenBoot machine(boot);
  std::atomic<bool> done{false};
  XenBootOutcome out;
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

  if (guest_results::plays_migrations(s, o.ignore_events)) {
    if (out.timed_out || !out.exit_code || *out.exit_code != 0) {
      // The outcome lines say more than the exit status when a side failed.
      xen_migration_results(s, out.console, wall0);
      throw std::runtime_error("the Xen run did not end cleanly: " + out.describe() +
                               " (console: " + boot.serial_log + ")");
    }
    return xen_migration_results(s, out.console, wall0);
  }
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
    outcomes[i].planned_local = through_channel(s, s.workloads[i]);
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
  return guest_results::guest_results(s, outcomes, summary, wall0);
}

std::unique_ptr<experiment::Backend> make_xen_backend(const experiment::BackendSettings& settings) {
  XenRunOptions o;
  o.image_dir = settings.cache_dir + "/xen-run-image";
  o.log_dir = guest_results::log_dir(settings.out_dir, "xen-logs");
  o.stream_bytes = settings.guest_bytes;
  o.ignore_events = settings.ignore_events;
  o.progress = settings.progress;
  return std::make_unique<XenBackend>(std::move(o));
}

} // namespace ivmc::xen
