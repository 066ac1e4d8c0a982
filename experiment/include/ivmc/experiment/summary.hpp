// A sweep's results for people: per point (its parameter values), the number of seeds and the
// mean and 95% confidence interval of the headline metrics (docs/results.md "Summary"). The
// end of `ivmc sweep`, `ivmc summarize DIR` and Python's ivmc.summarize all use this.
#pragma once

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace ivmc::experiment {

// The metrics the summary shows when a row has them and one of them is not 0 or NaN.
const std::vector<std::string>& headline_metrics();

// One metric over one point's seeds: its finite values' count, mean and the half-width of
// Student's t 95% interval (NaN for fewer than two values; mean NaN for none).
struct MetricSummary {
  std::string name;
  std::size_t n = 0;
  double mean = 0;
  double half_width = 0;
};

// One point: its `point` column, its parameter values (in param_keys' order), its rows.
struct PointSummary {
  std::string point;
  std::vector<std::string> values;
  std::size_t seeds = 0;
  std::vector<MetricSummary> metrics; // the shown headline metrics, in headline order
};

// `rows` (read_results) grouped by the values of `param_keys`, in the order of their first row.
std::vector<PointSummary>
summarize_rows(const std::vector<std::map<std::string, std::string>>& rows,
               const std::vector<std::string>& param_keys);

// The table for `rows`: one line per point, "mean ± half-width" (the mean alone for one seed).
// "" when there are no rows.
std::string summary_table(const std::vector<std::map<std::string, std::string>>& rows,
                          const std::vector<std::string>& param_keys);

// The same as one JSON object: {"params": [...], "points": [{"point", "params": {key: value},
// "seeds", "metrics": {name: {"n", "mean", "ci95"}}}]}; NaN is null.
std::string summary_json(const std::vector<std::map<std::string, std::string>>& rows,
                         const std::vector<std::string>& param_keys);

// The parameter columns of a results.csv header: those between `seed` and the first metric
// (a w<i>_ workload metric or one of the run's totals, metric_names).
std::vector<std::string> param_columns(const std::vector<std::string>& header);

// What an output directory of `ivmc run --out` or `ivmc sweep` holds: its rows (read_results)
// and parameter columns. Throws NoResults when it has no results.csv or no complete row.
struct OutputResults {
  std::vector<std::string> param_keys;
  std::vector<std::map<std::string, std::string>> rows;
};
OutputResults read_output(const std::string& dir);

class NoResults : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Student's t quantile 0.975 for `dof` degrees of freedom (1.96 beyond 30). Exposed for tests.
double t975(std::size_t dof);

} // namespace ivmc::experiment
