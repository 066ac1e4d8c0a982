// `ivmc run --backend kvm`: see kvm_run.hpp.
#include "kvm_run.hpp"

#include "guest_results.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"
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

namespace ivmc::cli {
namespace {

constexpr Nanos kGuestBudget = 180'000'000'000; // launch to power-off, per guest

kvm::GuestImage prepare_image(const KvmRunOptions& o) {
  // Cached: the script rebuilds only when the agent, /init or the kernel changed.
  build_guest_image(IVMC_SOURCE_DIR "/backends/kvm/guest/build_image.sh", IVMC_GUEST_AGENT,
                    o.image_dir);
  return kvm::GuestImage::from_dir(o.image_dir);
}

posix::ReportFields only_report(const kvm::GuestOutcome& out, const std::string& what) {
  if (!out.ok() || out.reports.size() != 1)
    throw std::runtime_error(fmt::format("{}: {}", what, out.describe()));
  const posix::ReportFields& r = out.reports.front();
  if (r.count("ok") == 0 || r.at("ok") != "1")
    throw std::runtime_error(fmt::format("{} failed: {}", what, out.describe()));
  return r;
}

} // namespace

sim::RunResult run_on_kvm(const sim::Scenario& s, const KvmRunOptions& o) {
  refuse_unplayed_events(s, o.ignore_events, "kvm");
  const auto wall0 = std::chrono::steady_clock::now();
  std::filesystem::create_directories(o.log_dir);
  const kvm::GuestImage image = prepare_image(o);
  const std::string qemu = posix::find_qemu();
  const kvm::Accel accel = kvm::choose_accel(qemu, image, o.image_dir + "/accel-probe");
  NotifyPolicy policy = NotifyPolicy::polling;
  if (!parse_notify_policy(s.channel.notify, policy))
    throw std::runtime_error("channel.notify '" + s.channel.notify + "' is not a policy");
  const bool interrupts = policy != NotifyPolicy::polling;
  const std::uint32_t ring = s.channel.ring_kib * 1024;

  std::vector<GuestWorkloadOutcome> outcomes;
  std::string summary = fmt::format("{} on real QEMU guests ({}), {} workloads one at a time\n",
                                    s.name, to_string(accel), s.workloads.size());
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const sim::WorkloadConfig& w = s.workloads[i];
    const bool rr = is_request_response(w);
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
      fmt::print(stderr, "[{}/{}] {} {} -> {} ({} B) over {}\n", i + 1, s.workloads.size(), w.kind,
                 w.from, w.to, w.message_bytes, local ? "the channel" : "the guests' TCP path");
    if (local && w.message_bytes > wire::max_payload_for(ring))
      throw std::runtime_error(fmt::format("workload {} ({} -> {}): {} B messages do not fit a {} "
                                           "KiB ring",
                                           i, w.from, w.to, w.message_bytes, s.channel.ring_kib));

    std::unique_ptr<kvm::IvshmemServerThread> server;
    kvm::QemuOptions base;
    base.qemu = qemu;
    base.image = image;
    base.accel = accel;
    base.timeout = kGuestBudget;
    if (local) {
      kvm::IvshmemServerOptions so;
      so.socket_path = "/tmp/ivmc-" + tag + ".sock";
      so.shm_name = "ivmc-" + tag;
      so.size = kvm::IvshmemPlatform::region_bytes_for(ring);
      so.vectors = 2;
      so.log = [](std::string_view) {};
      server = std::make_unique<kvm::IvshmemServerThread>(so);
      base.ivshmem_socket = server->socket_path();
      base.vectors = 2;
      base.iommu = interrupts;
      const std::vector<std::string> device = {"--vectors", "2", "--irq",
                                               interrupts ? "vfio" : "none"};
      from_args.insert(from_args.end(), {"--role", "create", "--ring", std::to_string(ring),
                                         "--policy", s.channel.notify});
      from_args.insert(from_args.end(), device.begin(), device.end());
      to_args.insert(to_args.end(), {"--role", "attach"});
      to_args.insert(to_args.end(), device.begin(), device.end());
    } else {
      from_args.insert(from_args.end(), {"--tcp-connect", "10.0.0.2:5000"});
      to_args.insert(to_args.end(), {"--tcp-listen", "10.0.0.2:5000"});
    }
    kvm::QemuOptions from_o = base, to_o = base;
    if (!local) {
      const std::uint16_t pf = kvm::free_udp_port(), pt = kvm::free_udp_port();
      from_o.nic = kvm::GuestNic{pf, pt, "10.0.0.1/24", 1};
      to_o.nic = kvm::GuestNic{pt, pf, "10.0.0.2/24", 2};
    }
    from_o.agent_args = from_args;
    to_o.agent_args = to_args;
    from_o.serial_log = o.log_dir + "/" + tag + "-" + w.from + ".log";
    to_o.serial_log = o.log_dir + "/" + tag + "-" + w.to + ".log";
    // The receiver first: the creator's messages wait in the ring, a TCP sender retries.
    kvm::QemuGuest to_guest(to_o);
    kvm::QemuGuest from_guest(from_o);
    const kvm::GuestOutcome from_out = from_guest.wait();
    const kvm::GuestOutcome to_out = to_guest.wait();
    const posix::ReportFields a =
        only_report(from_out, fmt::format("workload {}: guest {} ({})", i, w.from, from_args[0]));
    const posix::ReportFields b =
        only_report(to_out, fmt::format("workload {}: guest {} ({})", i, w.to, to_args[0]));

    outcomes.push_back({a, b, local});
  }
  return guest_results(s, outcomes, summary, wall0);
}

} // namespace ivmc::cli
