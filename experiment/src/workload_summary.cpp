// See workload_summary.hpp.
#include "ivmc/experiment/workload_summary.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace ivmc::experiment {

namespace {

// The q-quantile of sorted, non-empty xs (nearest rank).
double quantile(const std::vector<double>& xs, double q) {
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(xs.size())));
  return xs[std::min(xs.size() - 1, rank == 0 ? 0 : rank - 1)];
}

} // namespace

void WorkloadSummary::add(std::string line, bool request_response, double headline,
                          double tail_us) {
  workloads_.push_back({std::move(line), request_response, headline, tail_us});
}

std::string WorkloadSummary::text(const std::string& tail_name) const {
  std::string out;
  if (workloads_.size() <= kWorkloadLines) {
    for (const auto& w : workloads_) out += w.line;
    return out;
  }
  out += fmt::format("  {} workloads (over {}: aggregated; each one's figures are in "
                     "results.csv, w<i>_*)\n",
                     workloads_.size(), kWorkloadLines);
  for (const bool rr : {false, true}) {
    std::vector<double> xs;
    double total = 0;
    for (const auto& w : workloads_)
      if (w.rr == rr && std::isfinite(w.headline)) {
        xs.push_back(w.headline);
        total += w.headline;
      }
    std::size_t n = 0;
    for (const auto& w : workloads_) n += w.rr == rr;
    if (n == 0) continue;
    const char* unit = rr ? "trans/s" : "Mb/s";
    if (xs.empty()) {
      out += fmt::format("    {} {}: no figures\n", n, rr ? "request-response" : "streams");
      continue;
    }
    std::sort(xs.begin(), xs.end());
    out += fmt::format("    {} {}: total {:.1f} {}; per workload median {:.3g}, p99 {:.3g}, min "
                       "{:.3g}\n",
                       n, rr ? "request-response" : "streams", total, unit, quantile(xs, 0.5),
                       quantile(xs, 0.99), xs.front());
  }
  std::vector<double> tails;
  for (const auto& w : workloads_)
    if (std::isfinite(w.tail_us)) tails.push_back(w.tail_us);
  if (!tails.empty()) {
    std::sort(tails.begin(), tails.end());
    out += fmt::format("    latency {} across workloads (us): median {:.1f}, p99 {:.1f}, max "
                       "{:.1f}\n",
                       tail_name, quantile(tails, 0.5), quantile(tails, 0.99), tails.back());
  }
  // The slowest: the lowest headline within each kind's median (streams and request-response
  // measure different things), so by headline over the kind's median.
  std::vector<const Workload*> order;
  for (const auto& w : workloads_)
    if (std::isfinite(w.headline)) order.push_back(&w);
  std::vector<double> median(2, 1);
  for (const bool rr : {false, true}) {
    std::vector<double> xs;
    for (const auto* w : order)
      if (w->rr == rr) xs.push_back(w->headline);
    if (xs.empty()) continue;
    std::sort(xs.begin(), xs.end());
    median[rr] = quantile(xs, 0.5) > 0 ? quantile(xs, 0.5) : 1;
  }
  std::stable_sort(order.begin(), order.end(), [&](const Workload* a, const Workload* b) {
    return a->headline / median[a->rr] < b->headline / median[b->rr];
  });
  if (!order.empty()) {
    out += fmt::format("    slowest {} (against their kind's median):\n",
                       std::min(kSlowestShown, order.size()));
    for (std::size_t i = 0; i < std::min(kSlowestShown, order.size()); ++i)
      out += fmt::format("    w{}:{}", order[i] - workloads_.data(), order[i]->line);
  }
  return out;
}

} // namespace ivmc::experiment
