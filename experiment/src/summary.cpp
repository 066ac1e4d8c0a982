// See summary.hpp.
#include "ivmc/experiment/summary.hpp"

#include "csv.hpp"
#include "files.hpp"
#include "quoted.hpp"

#include "ivmc/experiment/results.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>

namespace ivmc::experiment {

namespace {

using Row = std::map<std::string, std::string>;

double number(const Row& row, const std::string& column) {
  const auto it = row.find(column);
  if (it == row.end()) return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  return end == it->second.c_str() ? std::numeric_limits<double>::quiet_NaN() : v;
}

MetricSummary summarize_metric(const std::string& name, const std::vector<double>& xs) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  MetricSummary m{name, 0, nan, nan};
  std::vector<double> v;
  for (const double x : xs)
    if (std::isfinite(x)) v.push_back(x);
  m.n = v.size();
  if (v.empty()) return m;
  double mean = 0;
  for (const double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  m.mean = mean;
  if (v.size() < 2) return m;
  double ss = 0;
  for (const double x : v) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
  m.half_width = t975(v.size() - 1) * sd / std::sqrt(static_cast<double>(v.size()));
  return m;
}

std::string mean_ci(const MetricSummary& m) {
  if (m.n == 0) return "nan";
  if (m.n < 2) return fmt::format("{:.4g}", m.mean);
  return fmt::format("{:.4g} ± {:.2g}", m.mean, m.half_width);
}

std::string json_number(double v) {
  return std::isfinite(v) ? fmt::format("{}", v) : "null";
}

} // namespace

double t975(std::size_t dof) {
  static constexpr double kT[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365,
                                  2.306, 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                                  2.120, 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
                                  2.064, 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (dof == 0) return std::numeric_limits<double>::quiet_NaN();
  return dof < std::size(kT) ? kT[dof] : 1.96;
}

const std::vector<std::string>& headline_metrics() {
  static const std::vector<std::string> names = {"stream_mbps",   "rr_transactions_per_s",
                                                 "race_exposure", "race_errors",
                                                 "lost_messages", "migrations"};
  return names;
}

std::vector<PointSummary> summarize_rows(const std::vector<Row>& rows,
                                         const std::vector<std::string>& param_keys) {
  std::vector<std::string> metrics;
  for (const auto& m : headline_metrics())
    if (std::any_of(rows.begin(), rows.end(), [&](const auto& r) {
          const double v = number(r, m);
          return std::isfinite(v) && v != 0;
        }))
      metrics.push_back(m);

  // Points by their parameter values, in the order of their first row (rows come sorted).
  std::vector<std::vector<std::string>> order;
  std::map<std::vector<std::string>, std::vector<const Row*>> by;
  for (const auto& r : rows) {
    std::vector<std::string> key;
    for (const auto& k : param_keys) key.push_back(r.count(k) ? r.at(k) : "");
    auto& list = by[key];
    if (list.empty()) order.push_back(key);
    list.push_back(&r);
  }
  std::vector<PointSummary> out;
  for (const auto& key : order) {
    const auto& list = by[key];
    PointSummary p;
    p.point = list.front()->count("point") ? list.front()->at("point") : "";
    p.values = key;
    p.seeds = list.size();
    for (const auto& m : metrics) {
      std::vector<double> xs;
      for (const auto* r : list) xs.push_back(number(*r, m));
      p.metrics.push_back(summarize_metric(m, xs));
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::string summary_table(const std::vector<Row>& rows,
                          const std::vector<std::string>& param_keys) {
  if (rows.empty()) return "";
  const auto points = summarize_rows(rows, param_keys);
  std::vector<std::vector<std::string>> table;
  std::vector<std::string> head = {"point"};
  head.insert(head.end(), param_keys.begin(), param_keys.end());
  head.push_back("seeds");
  for (const auto& m : points.front().metrics) head.push_back(m.name);
  table.push_back(head);
  for (const auto& p : points) {
    std::vector<std::string> line = {p.point};
    line.insert(line.end(), p.values.begin(), p.values.end());
    line.push_back(std::to_string(p.seeds));
    for (const auto& m : p.metrics) line.push_back(mean_ci(m));
    table.push_back(line);
  }
  // Column widths in characters (± is two bytes in UTF-8, one on screen).
  const auto width = [](const std::string& s) {
    std::size_t w = 0;
    for (const unsigned char c : s) w += (c & 0xC0) != 0x80;
    return w;
  };
  std::vector<std::size_t> widths(head.size(), 0);
  for (const auto& line : table)
    for (std::size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], width(line[i]));
  std::string out;
  for (const auto& line : table) {
    std::string text;
    for (std::size_t i = 0; i < line.size(); ++i) {
      text += line[i];
      if (i + 1 < line.size()) text += std::string(widths[i] - width(line[i]) + 2, ' ');
    }
    out += text + "\n";
  }
  return out;
}

std::string summary_json(const std::vector<Row>& rows, const std::vector<std::string>& param_keys) {

  std::vector<std::string> keys;
  for (const auto& k : param_keys) keys.push_back(detail::quoted(k));
  std::string j = fmt::format("{{\"params\": [{}], \"points\": [", detail::join(keys, ", "));
  const auto points = summarize_rows(rows, param_keys);
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    std::vector<std::string> values, metrics;
    for (std::size_t k = 0; k < param_keys.size(); ++k)
      values.push_back(detail::quoted(param_keys[k]) + ": " + detail::quoted(p.values[k]));
    for (const auto& m : p.metrics)
      metrics.push_back(fmt::format("{}: {{\"n\": {}, \"mean\": {}, \"ci95\": {}}}",
                                    detail::quoted(m.name), m.n, json_number(m.mean),
                                    json_number(m.half_width)));
    j += fmt::format("{}\n  {{\"point\": {}, \"params\": {{{}}}, \"seeds\": {}, \"metrics\": "
                     "{{{}}}}}",
                     i ? "," : "", p.point.empty() ? "null" : p.point, detail::join(values, ", "),
                     p.seeds, detail::join(metrics, ", "));
  }
  j += points.empty() ? "]}\n" : "\n]}\n";
  return j;
}

std::vector<std::string> param_columns(const std::vector<std::string>& header) {
  // The run's totals: the metric names of a scenario without workloads.
  Scenario none;
  none.workloads.clear();
  const auto totals = metric_names(none);
  const std::set<std::string> total_set(totals.begin(), totals.end());
  const auto is_metric = [&](const std::string& c) {
    if (total_set.count(c) || c == detail::kEventsColumn || c == detail::kWallColumn) return true;
    std::size_t i = 1; // w<digits>_...
    while (i < c.size() && c[i] >= '0' && c[i] <= '9') ++i;
    return c.size() > 2 && c[0] == 'w' && i > 1 && i < c.size() && c[i] == '_';
  };
  std::vector<std::string> keys;
  for (std::size_t i = 2; i < header.size() && !is_metric(header[i]); ++i)
    keys.push_back(header[i]);
  return keys;
}

OutputResults read_output(const std::string& dir) {
  const std::string csv_path = dir + "/results.csv";
  if (!std::filesystem::is_directory(dir))
    throw NoResults(fmt::format("{}: no such directory", dir));
  if (!std::filesystem::exists(csv_path))
    throw NoResults(fmt::format("{} holds no results.csv (not an output directory of ivmc run "
                                "--out or ivmc sweep, or nothing finished there yet)",
                                dir));
  const detail::CsvText csv = detail::parse_csv(detail::read_whole_file(csv_path));
  OutputResults out;
  if (csv.records.size() < 2)
    throw NoResults(fmt::format("{} has no complete row: no run finished there", csv_path));
  out.param_keys = param_columns(csv.records[0]);
  out.rows = read_results(csv_path);
  return out;
}

} // namespace ivmc::experiment
