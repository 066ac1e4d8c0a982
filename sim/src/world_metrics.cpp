// The run's metrics (docs/metrics.md), in the order of experiment::metric_names (checked), and
// its summary for people.
#include "world.hpp"

#include <fmt/format.h>

#include "ivmc/experiment/workload_summary.hpp"

#include <algorithm>
#include <limits>

#include <stdexcept>

namespace ivmc::sim {

RunResult World::collect(double wall_s) {
  RunResult r;
  auto add = [&](std::string name, double v) { r.metrics.push_back({std::move(name), v}); };
  const double span = static_cast<double>(end_ - warmup_) / 1e9;
  double stream_mbps = 0, rr_tps = 0;
  std::string summary = fmt::format("{}: {:.3f} s simulated, {} hosts, {} VMs, seed {}\n", s_.name,
                                    s_.duration_s, s_.platform.hosts, s_.vms.size(), s_.seed);
  const std::string timer = s_.membership.detection == Detection::periodic ||
                                    s_.membership.detection == Detection::adaptive
                                ? fmt::format("T {} ms", s_.membership.period_ms)
                            : s_.membership.detection == Detection::watch
                                ? fmt::format("delay {} us", s_.membership.watch_delay_us)
                                : std::string("no timer");
  summary += fmt::format(
      "  {} hosts; channel {}: layer {}, {}, {} KiB rings{}; membership {} ({}), "
      "race {}\n",
      experiment::to_string(s_.platform.hypervisor), s_.channel.enabled ? "on" : "off",
      s_.channel.layer, to_string(s_.channel.notify), s_.channel.ring_kib,
      s_.pool.enabled ? ", pool " + std::string(to_string(s_.pool.allocation)) : "",
      experiment::to_string(s_.membership.detection), timer, to_string(s_.membership.race));
  experiment::WorkloadSummary workloads;
  for (std::size_t i = 0; i < s_.workloads.size(); ++i) {
    const WorkloadConfig& w = s_.workloads[i];
    WorkloadStats& st = wstats_[i];
    const std::string pre = fmt::format("w{}_", i);
    const bool rr = experiment::is_request_response(w.kind);
    const double mbps = static_cast<double>(st.bytes) * 8 / span / 1e6;
    if (rr) {
      const double tps = static_cast<double>(st.transactions) / span;
      rr_tps += tps;
      add(pre + "transactions_per_s", tps);
    } else {
      stream_mbps += mbps;
      add(pre + "mbps", mbps);
      add(pre + "messages_per_s", static_cast<double>(st.messages) / span);
    }
    std::string lat;
    double tail_us = std::numeric_limits<double>::quiet_NaN();
    for (double pct : s_.latency_percentiles) {
      const double v = st.latency.empty() ? 0 : st.latency.percentile(pct) / 1e3; // us
      tail_us = v;
      add(pre + fmt::format("{}_p{}_us", rr ? "rtt" : "latency", pct), v);
      lat += fmt::format(" p{} {:.1f}", pct, v);
    }
    const Pipe& f = *workload_pipes_[i].first;
    const LinkStats& ls = f.sender->stats();
    const double local_share = ls.messages_sent ? static_cast<double>(ls.sent_local) /
                                                      static_cast<double>(ls.messages_sent)
                                                : 0;
    add(pre + "local_share", local_share);
    workloads.add(fmt::format("  {:<10} {:>6} -> {:<6} {:>7} B  {}{}  local {:.0f}%\n",
                              experiment::to_string(w.kind), w.from, w.to, w.message_bytes,
                              rr ? fmt::format("{:10.0f} trans/s",
                                               static_cast<double>(st.transactions) / span)
                                 : fmt::format("{:10.1f} Mb/s   ", mbps),
                              fmt::format("  {} us:{}", rr ? "rtt" : "latency", lat),
                              local_share * 100),
                  rr, rr ? static_cast<double>(st.transactions) / span : mbps, tail_us);
  }
  summary += workloads.text(s_.latency_percentiles.empty()
                                ? std::string("p-")
                                : fmt::format("p{}", s_.latency_percentiles.back()));
  add("stream_mbps", stream_mbps);
  add("rr_transactions_per_s", rr_tps);
  LinkStats total;
  for (auto& pp : pipes_) {
    const LinkStats& a = pp->sender->stats();
    const LinkStats& b = pp->receiver->stats();
    total.sent_local += a.sent_local;
    total.sent_remote += a.sent_remote;
    total.switches_to_local += a.switches_to_local;
    total.switches_to_remote += a.switches_to_remote;
    total.fallbacks += a.fallbacks;
    total.deferred += a.deferred;
    total.renewals += a.renewals;
    // A message lost under race=none is counted by the sender when it sends it into the stale
    // channel and again by the receiver as a gap: count it once. The receiver alone sees what
    // other policies lose; the sender alone what it lost after the last message the receiver
    // got. Each side's count is a subset of the losses, so the larger one is the best bound.
    total.lost_messages += std::max(a.lost_messages, b.lost_messages);
    total.lost_bytes += std::max(a.lost_bytes, b.lost_bytes);
    total.duplicates += b.duplicates;
    total.drained_after_break += b.drained_after_break;
  }
  add("notifications", static_cast<double>(data_rings_ + space_rings_));
  add("data_notifications", static_cast<double>(data_rings_));
  add("space_notifications", static_cast<double>(space_rings_));
  add("wakeups", static_cast<double>(doorbell_wakeups_));
  add("sleeps", static_cast<double>(sleeps_));
  add("membership_probes", static_cast<double>(source_->probes()));
  add("link_probes", static_cast<double>(link_probes_));
  add("sends", static_cast<double>(sends_));
  add("sends_in_race_window", static_cast<double>(sends_in_window_));
  add("race_exposure",
      sends_ ? static_cast<double>(sends_in_window_) / static_cast<double>(sends_) : 0);
  static constexpr const char* rows[] = {"establishment", "pending_data", "teardown"};
  static constexpr const char* cols[] = {"migration_in", "creation", "migration_out", "shutdown"};
  const RaceCell all = ledger_.total();
  add("race_operations", static_cast<double>(all.operations));
  add("race_errors", static_cast<double>(all.errors));
  add("race_deferred", static_cast<double>(all.deferred));
  for (int op = 0; op < 3; ++op) {
    for (int k = 0; k < 4; ++k) {
      const RaceCell& c = ledger_.cell(static_cast<LinkOperation>(op), static_cast<ChangeKind>(k));
      add(fmt::format("race_{}_{}", rows[op], cols[k]), static_cast<double>(c.operations));
    }
  }
  add("frames_local", static_cast<double>(total.sent_local));
  add("frames_remote", static_cast<double>(total.sent_remote));
  add("switches_to_local", static_cast<double>(total.switches_to_local));
  add("switches_to_remote", static_cast<double>(total.switches_to_remote));
  add("fallbacks", static_cast<double>(total.fallbacks));
  add("deferred_establishments", static_cast<double>(total.deferred));
  add("channels_opened", static_cast<double>(channels_opened_));
  add("pending_bytes", static_cast<double>(pending_bytes_));
  add("recovered_bytes", static_cast<double>(recovered_bytes_));
  add("lost_messages", static_cast<double>(total.lost_messages));
  add("lost_bytes", static_cast<double>(total.lost_bytes));
  add("udp_dropped", static_cast<double>(udp_dropped_));
  add("trust_refusals", static_cast<double>(trust_refusals_));
  add("pool_refusals", static_cast<double>(pool_refusals_));
  add("pool_renewals", static_cast<double>(total.renewals));
  add("pool_utilisation",
      pool_util_samples_ ? pool_util_sum_ / static_cast<double>(pool_util_samples_) : 0);
  double mig_s = 0;
  for (const auto& m : model_.migrations()) mig_s += m.end - m.start;
  add("migrations", static_cast<double>(model_.migrations().size()));
  add("migration_s_mean",
      model_.migrations().empty() ? 0 : mig_s / static_cast<double>(model_.migrations().size()));
  r.events = model_.events();
  r.wall_s = wall_s;
  summary += fmt::format(
      "  notifications {} (data {}, space {}), wakeups {}, membership probes {}\n"
      "  migrations {} (mean {:.3f} s), switches {} to local / {} to remote, fallbacks {}\n"
      "  race windows: {} operations ({} errors), {:.2f}% of sends; pending {} B, recovered {} "
      "B, lost {} B\n"
      "  {} events in {:.2f} s wall ({:.2f} M events/s)\n",
      data_rings_ + space_rings_, data_rings_, space_rings_, doorbell_wakeups_, source_->probes(),
      model_.migrations().size(),
      model_.migrations().empty() ? 0 : mig_s / static_cast<double>(model_.migrations().size()),
      total.switches_to_local, total.switches_to_remote, total.fallbacks, all.operations,
      all.errors,
      sends_ ? 100.0 * static_cast<double>(sends_in_window_) / static_cast<double>(sends_) : 0,
      pending_bytes_, recovered_bytes_, total.lost_bytes, model_.events(), wall_s,
      static_cast<double>(model_.events()) / std::max(wall_s, 1e-9) / 1e6);
  r.summary = summary;
  if (s_.output.changes) {
    r.changes_recorded = true;
    r.changes = change_records();
  }
  // metric_names() is the schema other backends write: it must be exactly this list.
  const std::vector<std::string> schema = experiment::metric_names(s_);
  bool same = schema.size() == r.metrics.size();
  for (std::size_t i = 0; same && i < schema.size(); ++i) same = schema[i] == r.metrics[i].name;
  if (!same) throw std::logic_error("metric_names() and World::collect() disagree");
  return r;
}

} // namespace ivmc::sim
