// The kvm backend: see kvm_backend.hpp.
#include "ivmc/kvm/kvm_backend.hpp"

#include "ivmc/experiment/choices.hpp"
#include "ivmc/guest_results/guest_results.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"
#include "ivmc/kvm/kvm_migration_run.hpp"
#include "ivmc/kvm/qemu.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <stdexcept>

namespace ivmc::kvm {
namespace {

using experiment::Scenario;
using experiment::WorkloadConfig;
using guest_results::GuestWorkloadOutcome;
using guest_results::through_channel;

constexpr Nanos kGuestBudget = 180'000'000'000; // launch to power-off, per guest

GuestImage prepare_image(const KvmRunOptions& o) {
  // Cached: the script rebuilds only when the agent, /init or the kernel changed.
  guest_results::build_guest_image(IVMC_SOURCE_DIR "/backends/kvm/guest/build_image.sh",
                                   IVMC_GUEST_AGENT, o.image_dir);
  return GuestImage::from_dir(o.image_dir);
}

posix::ReportFields only_report(const GuestOutcome& out, const std::string& what) {
  if (!out.ok() || out.reports.size() != 1)
    throw std::runtime_error(fmt::format("{}: {}", what, out.describe()));
  const posix::ReportFields& r = out.reports.front();
  if (r.count("ok") == 0 || r.at("ok") != "1")
    throw std::runtime_error(fmt::format("{} failed: {}", what, out.describe()));
  return r;
}

} // namespace

std::vector<experiment::ScenarioIssue> KvmBackend::check(const Scenario& s) const {
  std::vector<experiment::ScenarioIssue> out; // in file order: workloads, then events
  const std::uint32_t ring = s.channel.ring_kib * 1024;
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const WorkloadConfig& w = s.workloads[i];
    if (through_channel(s, w) && w.message_bytes > wire::max_payload_for(ring))
      out.push_back(experiment::issue_at(
          s, fmt::format("workload[{}].message_bytes", i),
          fmt::format("{} B messages do not fit a {} KiB ring (channel.ring_kib; at most {} B)",
                      w.message_bytes, s.channel.ring_kib, wire::max_payload_for(ring))));
  }
  if (guest_results::plays_migrations(s, o_.ignore_events)) {
    for (auto& issue : migration_run_issues(s)) {
      issue.what += "; or pass --ignore-events to run the workloads with the initial placement";
      out.push_back(std::move(issue));
    }
  }
  for (auto& issue : experiment::unrecorded_changes(s, "kvm")) out.push_back(std::move(issue));
  return out;
}

experiment::RunResult KvmBackend::run(const Scenario& scenario, std::uint64_t seed) {
  Scenario s = scenario;
  s.seed = seed; // the generators' draws (the guests' workloads take no seed)
  if (const auto issues = check(s); !issues.empty()) throw experiment::ScenarioError(issues);
  const KvmRunOptions& o = o_;
  const auto wall0 = std::chrono::steady_clock::now();
  std::filesystem::create_directories(o.log_dir);
  const GuestImage image = prepare_image(o);
  const std::string qemu = posix::find_qemu();
  const Accel accel = choose_accel(qemu, image, o.image_dir + "/accel-probe");
  if (guest_results::plays_migrations(s, o.ignore_events))
    return run_with_migrations(s, o, MigrationRunEnv{qemu, image, accel});
  const bool interrupts = s.channel.notify != NotifyPolicy::polling;
  const std::uint32_t ring = s.channel.ring_kib * 1024;

  std::vector<GuestWorkloadOutcome> outcomes;
  std::string summary = fmt::format("{} on real QEMU guests ({}), {} workloads one at a time\n",
                                    s.name, to_string(accel), s.workloads.size());
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const WorkloadConfig& w = s.workloads[i];
    const bool rr = experiment::is_request_response(w.kind);
    const bool local = through_channel(s, w);
    const std::string tag = fmt::format("run-{}-w{}", ::getpid(), i);
    const std::string message = std::to_string(w.message_bytes);
    const std::string bytes = std::to_string(o.stream_bytes);
    const std::string count = std::to_string(o.rr_count);
    std::vector<std::string> from_args = rr ? std::vector<std::string>{"ping", "--count", count}
                                            : std::vector<std::string>{"send", "--bytes", bytes};
    std::vector<std::string> to_args = rr ? std::vector<std::string>{"echo", "--count", count}
                                          : std::vector<std::string>{"recv", "--bytes", bytes};
    from_args.insert(from_args.end(), {"--message", message, "--timeout", "120"});
    to_args.insert(to_args.end(), {"--timeout", "120"});
    if (o.progress)
      fmt::print(stderr, "[{}/{}] {} {} -> {} ({} B) over {}\n", i + 1, s.workloads.size(),
                 experiment::to_string(w.kind), w.from, w.to, w.message_bytes,
                 local ? "the channel" : "the guests' TCP path");

    std::unique_ptr<IvshmemServerThread> server;
    QemuOptions base;
    base.qemu = qemu;
    base.image = image;
    base.accel = accel;
    base.timeout = kGuestBudget;
    if (local) {
      IvshmemServerOptions so;
      so.socket_path = "/tmp/ivmc-" + tag + ".sock";
      so.shm_name = "ivmc-" + tag;
      so.size = IvshmemPlatform::region_bytes_for(ring);
      so.vectors = 2;
      so.log = [](std::string_view) {};
      server = std::make_unique<IvshmemServerThread>(so);
      base.ivshmem_socket = server->socket_path();
      base.vectors = 2;
      base.iommu = interrupts;
      const std::vector<std::string> device = {"--vectors", "2", "--irq",
                                               interrupts ? "vfio" : "none"};
      from_args.insert(from_args.end(), {"--role", "create", "--ring", std::to_string(ring),
                                         "--policy", std::string(to_string(s.channel.notify))});
      from_args.insert(from_args.end(), device.begin(), device.end());
      to_args.insert(to_args.end(), {"--role", "attach"});
      to_args.insert(to_args.end(), device.begin(), device.end());
    } else {
      from_args.insert(from_args.end(), {"--tcp-connect", "10.0.0.2:5000"});
      to_args.insert(to_args.end(), {"--tcp-listen", "10.0.0.2:5000"});
    }
    QemuOptions from_o = base, to_o = base;
    if (!local) {
      const std::uint16_t pf = free_udp_port(), pt = free_udp_port();
      from_o.nic = GuestNic{pf, pt, "10.0.0.1/24", 1};
      to_o.nic = GuestNic{pt, pf, "10.0.0.2/24", 2};
    }
    from_o.agent_args = from_args;
    to_o.agent_args = to_args;
    from_o.serial_log = o.log_dir + "/" + tag + "-" + w.from + ".log";
    to_o.serial_log = o.log_dir + "/" + tag + "-" + w.to + ".log";
    // The receiver first: the creator's messages wait in the ring, a TCP sender retries.
    QemuGuest to_guest(to_o);
    QemuGuest from_guest(from_o);
    const GuestOutcome from_out = from_guest.wait();
    const GuestOutcome to_out = to_guest.wait();
    const posix::ReportFields a =
        only_report(from_out, fmt::format("workload {}: guest {} ({})", i, w.from, from_args[0]));
    const posix::ReportFields b =
        only_report(to_out, fmt::format("workload {}: guest {} ({})", i, w.to, to_args[0]));

    outcomes.push_back({a, b, local});
  }
  return guest_results::guest_results(s, outcomes, summary, wall0);
}

std::unique_ptr<experiment::Backend> make_kvm_backend(const experiment::BackendSettings& settings) {
  KvmRunOptions o;
  o.image_dir = settings.cache_dir + "/run-image";
  o.log_dir = guest_results::log_dir(settings.out_dir, "guest-logs");
  o.stream_bytes = settings.guest_bytes;
  o.ignore_events = settings.ignore_events;
  o.progress = settings.progress;
  return std::make_unique<KvmBackend>(std::move(o));
}

} // namespace ivmc::kvm
