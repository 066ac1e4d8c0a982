// See summary.hpp.
#include "ivmc/experiment/summary.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace ivmc::experiment {

namespace {

double number(const std::map<std::string, std::string>& row, const std::string& column) {
  const auto it = row.find(column);
  if (it == row.end()) return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  return end == it->second.c_str() ? std::numeric_limits<double>::quiet_NaN() : v;
}

std::string mean_ci(const std::vector<double>& xs) {
  std::vector<double> v;
  for (const double x : xs)
    if (std::isfinite(x)) v.push_back(x);
  if (v.empty()) return "nan";
  double mean = 0;
  for (const double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  if (v.size() < 2) return fmt::format("{:.4g}", mean);
  double ss = 0;
  for (const double x : v) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
  const double half = t975(v.size() - 1) * sd / std::sqrt(static_cast<double>(v.size()));
  return fmt::format("{:.4g} ± {:.2g}", mean, half);
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

std::string summary_table(const std::vector<std::map<std::string, std::string>>& rows,
                          const std::vector<std::string>& param_keys) {
  if (rows.empty()) return "";
  std::vector<std::string> metrics;
  for (const auto& m : headline_metrics())
    if (std::any_of(rows.begin(), rows.end(), [&](const auto& r) {
          const double v = number(r, m);
          return std::isfinite(v) && v != 0;
        }))
      metrics.push_back(m);

  // Points by their parameter values, in the order of their first row (rows come sorted).
  std::vector<std::vector<std::string>> order;
  std::map<std::vector<std::string>, std::vector<const std::map<std::string, std::string>*>> by;
  for (const auto& r : rows) {
    std::vector<std::string> key;
    for (const auto& k : param_keys) key.push_back(r.count(k) ? r.at(k) : "");
    auto& list = by[key];
    if (list.empty()) order.push_back(key);
    list.push_back(&r);
  }

  std::vector<std::vector<std::string>> table;
  std::vector<std::string> head = {"point"};
  head.insert(head.end(), param_keys.begin(), param_keys.end());
  head.push_back("seeds");
  head.insert(head.end(), metrics.begin(), metrics.end());
  table.push_back(head);
  for (const auto& key : order) {
    const auto& list = by[key];
    std::vector<std::string> line = {list.front()->count("point") ? list.front()->at("point") : ""};
    line.insert(line.end(), key.begin(), key.end());
    line.push_back(std::to_string(list.size()));
    for (const auto& m : metrics) {
      std::vector<double> xs;
      for (const auto* r : list) xs.push_back(number(*r, m));
      line.push_back(mean_ci(xs));
    }
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

} // namespace ivmc::experiment
