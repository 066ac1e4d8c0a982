// Runs a sweep the way `ivmc sweep` does (the sim backend, a child process per run) into a fresh
// directory under the test's IVMC_TEST_TMP, and reads its rows back.
#pragma once

#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"
#include "ivmc/experiment/sweep.hpp"
#include "ivmc/sim/sim_backend.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ivmc::test {

using Rows = std::vector<std::map<std::string, std::string>>;

inline Rows sweep(const std::string& name, const experiment::Scenario& base,
                  std::vector<std::pair<std::string, std::vector<std::string>>> params,
                  std::uint32_t seeds = 1, unsigned jobs = 2) {
  const std::string dir = std::string(IVMC_TEST_TMP) + "/" + name;
  std::filesystem::remove_all(dir);
  experiment::SweepOptions o;
  o.params = std::move(params);
  o.seeds = seeds;
  o.first_seed = 1;
  o.jobs = jobs;
  o.out_dir = dir;
  sim::SimBackend backend;
  experiment::run_sweep(base, o, backend);
  return experiment::read_results(dir + "/results.csv");
}

// A numeric column of a row; fails the test if the column is missing.
inline double num(const std::map<std::string, std::string>& row, const std::string& key) {
  const auto it = row.find(key);
  REQUIRE(it != row.end());
  return std::stod(it->second);
}

} // namespace ivmc::test
