// The results schema (results.hpp): metric_names is the one list every backend reports, and
// read_results reads what a sweep wrote.
#include "ivmc/experiment/results.hpp"

#include "csv.hpp"
#include "files.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <stdexcept>

namespace ivmc::experiment {

using namespace detail;

std::vector<std::string> metric_names(const Scenario& s) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const WorkloadConfig& w = s.workloads[i];
    const std::string pre = fmt::format("w{}_", i);
    const bool rr = is_request_response(w.kind);
    if (rr) {
      names.push_back(pre + "transactions_per_s");
    } else {
      names.push_back(pre + "mbps");
      names.push_back(pre + "messages_per_s");
    }
    for (double pct : s.latency_percentiles)
      names.push_back(pre + fmt::format("{}_p{}_us", rr ? "rtt" : "latency", pct));
    names.push_back(pre + "local_share");
  }
  for (const char* n :
       {"stream_mbps", "rr_transactions_per_s", "notifications", "data_notifications",
        "space_notifications", "wakeups", "sleeps", "membership_probes", "link_probes", "sends",
        "sends_in_race_window", "race_exposure", "race_operations", "race_errors", "race_deferred"})
    names.emplace_back(n);
  for (const char* row : {"establishment", "pending_data", "teardown"})
    for (const char* col : {"migration_in", "creation", "migration_out", "shutdown"})
      names.push_back(fmt::format("race_{}_{}", row, col));
  for (const char* n :
       {"frames_local", "frames_remote", "switches_to_local", "switches_to_remote", "fallbacks",
        "deferred_establishments", "channels_opened", "pending_bytes", "recovered_bytes",
        "lost_messages", "lost_bytes", "udp_dropped", "trust_refusals", "pool_refusals",
        "pool_renewals", "pool_utilisation", "migrations", "migration_s_mean"})
    names.emplace_back(n);
  return names;
}

std::vector<Metric> schema_metrics(const Scenario& scenario,
                                   const std::map<std::string, double>& values) {
  const auto names = metric_names(scenario);
  for (const auto& [name, value] : values)
    if (std::find(names.begin(), names.end(), name) == names.end())
      throw std::logic_error("metric " + name + " is not in the results schema (metric_names)");
  std::vector<Metric> out;
  out.reserve(names.size());
  for (const auto& name : names) {
    const auto it = values.find(name);
    out.push_back(
        {name, it == values.end() ? std::numeric_limits<double>::quiet_NaN() : it->second});
  }
  return out;
}

const std::vector<std::string>& change_columns() {
  static const std::vector<std::string> names = {"time_s",
                                                 "kind",
                                                 "vm",
                                                 "from_host",
                                                 "to_host",
                                                 "observers",
                                                 "notified",
                                                 "detection_max_s",
                                                 "detection_mean_s",
                                                 "stale_sends",
                                                 "race_operations",
                                                 "race_errors"};
  return names;
}

std::vector<std::string> change_fields(const ChangeRecord& c) {
  const auto host = [](std::int64_t h) { return h < 0 ? std::string() : std::to_string(h); };
  return {fmt::format("{}", c.time_s),
          c.kind,
          c.vm,
          host(c.from_host),
          host(c.to_host),
          std::to_string(c.observers),
          std::to_string(c.notified),
          fmt::format("{}", c.detection_max_s),
          fmt::format("{}", c.detection_mean_s),
          std::to_string(c.stale_sends),
          std::to_string(c.race_operations),
          std::to_string(c.race_errors)};
}

ChangeRecord parse_change(const std::vector<std::string>& f) {
  if (f.size() != change_columns().size())
    throw std::runtime_error(
        fmt::format("a change record has {} fields, not {}", f.size(), change_columns().size()));
  const auto real = [](const std::string& s) {
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size())
      throw std::runtime_error("a change record's number is malformed: " + s);
    return v;
  };
  const auto count = [](const std::string& s) { return parse_u64(s, "a change record"); };
  const auto host = [&](const std::string& s) {
    return s.empty() ? std::int64_t{-1} : static_cast<std::int64_t>(count(s));
  };
  ChangeRecord c;
  c.time_s = real(f[0]);
  c.kind = f[1];
  c.vm = f[2];
  c.from_host = host(f[3]);
  c.to_host = host(f[4]);
  c.observers = count(f[5]);
  c.notified = count(f[6]);
  c.detection_max_s = real(f[7]);
  c.detection_mean_s = real(f[8]);
  c.stale_sends = count(f[9]);
  c.race_operations = count(f[10]);
  c.race_errors = count(f[11]);
  return c;
}

std::vector<std::map<std::string, std::string>> read_results(const std::string& csv_path) {
  const CsvText csv = parse_csv(read_whole_file(csv_path));
  std::vector<std::map<std::string, std::string>> rows;
  if (csv.records.empty()) return rows;
  const auto& h = csv.records[0];
  if (h.size() < 4 || h[0] != kPointColumn || h[1] != kSeedColumn)
    throw std::runtime_error(csv_path + " is not a results.csv of ivmc sweep");
  std::vector<std::pair<std::pair<std::uint64_t, std::uint64_t>, std::size_t>> order;
  for (std::size_t r = 1; r < csv.records.size(); ++r) {
    const auto& rec = csv.records[r];
    const std::string where = fmt::format("{}: row {}", csv_path, r);
    if (rec.size() != h.size())
      throw std::runtime_error(
          fmt::format("{} has {} fields, the header {}", where, rec.size(), h.size()));
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < h.size(); ++i) row[h[i]] = rec[i];
    order.push_back({{parse_u64(rec[0], where), parse_u64(rec[1], where)}, rows.size()});
    rows.push_back(std::move(row));
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::map<std::string, std::string>> sorted;
  sorted.reserve(rows.size());
  for (const auto& [key, i] : order) sorted.push_back(std::move(rows[i]));
  return sorted;
}

} // namespace ivmc::experiment
