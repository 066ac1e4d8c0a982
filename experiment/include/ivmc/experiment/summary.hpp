// A sweep's results for people: per point (its parameter values), the number of seeds and the
// mean and 95% confidence interval of the headline metrics (docs/results.md "Summary").
#pragma once

#include <map>
#include <string>
#include <vector>

namespace ivmc::experiment {

// The metrics the summary shows when a row has them and one of them is not 0 or NaN.
const std::vector<std::string>& headline_metrics();

// The table for `rows` (read_results), grouped by the values of `param_keys`, in point order:
// one line per point, "mean ± half-width" of Student's t 95% interval over its seeds (the mean
// alone for one seed). "" when there are no rows.
std::string summary_table(const std::vector<std::map<std::string, std::string>>& rows,
                          const std::vector<std::string>& param_keys);

// Student's t quantile 0.975 for `dof` degrees of freedom (1.96 beyond 30). Exposed for tests.
double t975(std::size_t dof);

} // namespace ivmc::experiment
