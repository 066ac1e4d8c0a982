// A guest backend's migration run's results: see migration_results.hpp.
#include "ivmc/guest_results/migration_results.hpp"

#include "ivmc/guest_results/guest_results.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace ivmc::guest_results {

void check_stream_delivered(const experiment::WorkloadConfig& w, const posix::ReportFields& a,
                            const posix::ReportFields& b) {
  if (a.at("bytes") != b.at("bytes") || a.at("checksum") != b.at("checksum"))
    throw std::runtime_error(fmt::format("{} sent {} B ({}), {} received {} B ({})", w.from,
                                         a.at("bytes"), a.at("checksum"), w.to, b.at("bytes"),
                                         b.at("checksum")));
}

void stream_migration_metrics(const experiment::WorkloadConfig& w, const posix::ReportFields& a,
                              const posix::ReportFields& b, std::map<std::string, double>& mx) {
  const double secs = report_number(b, "ns") / 1e9;
  const double mbps = report_number(b, "bytes") * 8 / secs / 1e6;
  const double messages = report_number(a, "messages");
  mx["w0_mbps"] = mbps;
  mx["w0_messages_per_s"] = report_number(b, "messages") / secs;
  mx["w0_local_share"] = report_number(a, "sent_local") / messages;
  mx["stream_mbps"] = mbps;
  mx["rr_transactions_per_s"] = 0;
  mx["sends"] = messages;
  race_metrics(a, messages, mx);
  mx["frames_local"] = report_number(a, "frames_local");
  mx["frames_remote"] = report_number(a, "frames_remote");
  mx["switches_to_local"] = report_number(a, "to_local");
  mx["switches_to_remote"] = report_number(a, "to_remote");
  mx["fallbacks"] = report_number(a, "fallbacks");
  mx["deferred_establishments"] = report_number(a, "deferred");
  mx["channels_opened"] = report_number(a, "channels_opened");
  mx["link_probes"] = report_number(a, "probes");
  // Pending data at a break: the frames the sender re-sent from its copy of the ring (those
  // the receiver had not consumed when the VM left); recovered: the frames the receiver still
  // drained from the old channel. Both in whole messages of the stream's size.
  mx["pending_bytes"] = report_number(a, "resent") * static_cast<double>(w.message_bytes);
  mx["recovered_bytes"] =
      report_number(b, "drained_after_break") * static_cast<double>(w.message_bytes);
  mx["udp_dropped"] = 0; // a TCP stream
  mx["trust_refusals"] = 0;
  mx["pool_refusals"] = 0;
  mx["pool_renewals"] = 0;
}

std::string stream_migration_summary(const std::map<std::string, double>& mx, double wall_s) {
  return fmt::format(
      "  {:.1f} Mb/s, {:.0f} messages, local share {:.2f}; {:.0f} sends in race windows "
      "(exposure {:.4f}), {:.0f} race operations ({:.0f} errors); every byte checked; {:.1f} s "
      "wall\n",
      mx.at("stream_mbps"), mx.at("sends"), mx.at("w0_local_share"), mx.at("sends_in_race_window"),
      mx.at("race_exposure"), mx.at("race_operations"), mx.at("race_errors"), wall_s);
}

} // namespace ivmc::guest_results
