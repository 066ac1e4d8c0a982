// The sweep runner on a fake, deterministic backend (metrics computed from scenario fields, no
// model): rows of the cross product times seeds, resume, crashing and throwing children, a torn
// last line, a foreign results.csv, jobs-independence, SIGINT, and a backend's refusals (of a
// point, or of a run for its seed alone).
// The children are processes (label integration): the fake runner counts its calls by
// appending to a file.
#include "ivmc/experiment/sweep.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

using namespace ivmc;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the build tree for one test case.
std::string fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(IVMC_TEST_TMP) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t count_lines(const std::string& path) {
  if (!fs::exists(path)) return 0;
  const std::string text = slurp(path);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// The fake model: metrics from duration_s, warmup_s and seed. Each call appends a line to
// `log` (O_APPEND: the calls happen in separate child processes).
experiment::RunResult fake_run(const experiment::Scenario& s, const std::string& log) {
  const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  const std::string line = std::to_string(s.duration_s) + " " + std::to_string(s.warmup_s) + " " +
                           std::to_string(s.seed) + "\n";
  if (fd >= 0) {
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
  }
  experiment::RunResult r;
  const double seed = static_cast<double>(s.seed);
  r.metrics = {{"fake_product_s", s.duration_s * seed},
               {"fake_third", (s.duration_s + s.warmup_s) / 3.0 + seed},
               {"quoted, \"name\"", 1.0 / (seed + 2.0)}};
  r.events = s.seed * 1000 + static_cast<std::uint64_t>(s.duration_s * 10);
  return r;
}

// A backend that runs `runner`, and refuses scenarios longer than 100 s.
class FakeBackend final : public experiment::Backend {
public:
  using Runner = std::function<experiment::RunResult(const experiment::Scenario&)>;
  explicit FakeBackend(Runner runner) : runner_(std::move(runner)) {}
  std::string_view name() const override { return "fake"; }
  std::vector<experiment::ScenarioIssue> check(const experiment::Scenario& s) const override {
    if (s.duration_s > 100) return {{"duration_s", "the fake backend runs at most 100 s"}};
    return {};
  }
  experiment::RunResult run(const experiment::Scenario& s, std::uint64_t seed) override {
    experiment::Scenario point = s;
    point.seed = seed;
    return runner_(point);
  }
  unsigned default_jobs() const override { return 2; }

private:
  Runner runner_;
};

std::size_t sweep(const experiment::Scenario& base, const experiment::SweepOptions& o,
                  FakeBackend::Runner runner) {
  FakeBackend backend(std::move(runner));
  return experiment::run_sweep(base, o, backend);
}

experiment::SweepOptions two_by_two(const std::string& dir, std::uint32_t seeds, unsigned jobs) {
  experiment::SweepOptions o;
  o.params = {{"duration_s", {"1", "2.5"}}, {"warmup_s", {"0", "0.25"}}};
  o.seeds = seeds;
  o.first_seed = 7;
  o.jobs = jobs;
  o.out_dir = dir;
  return o;
}

using Rows = std::vector<std::map<std::string, std::string>>;

Rows without_wall(Rows rows) {
  for (auto& r : rows) r.erase("wall_s");
  return rows;
}

} // namespace

TEST_CASE("a sweep writes one row per point and seed, in cross-product numbering", "[sweep]") {
  const auto dir = fresh_dir("cross");
  const auto log = dir + "/calls.log";
  const auto o = two_by_two(dir + "/out", 2, 2);
  const auto made = sweep(experiment::Scenario{}, o,
                          [&](const experiment::Scenario& s) { return fake_run(s, log); });
  CHECK(made == 8);
  CHECK(count_lines(log) == 8);

  const std::string csv = slurp(o.out_dir + "/results.csv");
  CHECK(csv.substr(0, csv.find('\n')) ==
        "point,seed,duration_s,warmup_s,fake_product_s,fake_third,\"quoted, \"\"name\"\"\","
        "events,wall_s");

  const auto rows = experiment::read_results(o.out_dir + "/results.csv");
  REQUIRE(rows.size() == 8);
  const char* durations[] = {"1", "1", "2.5", "2.5"};
  const char* warmups[] = {"0", "0.25", "0", "0.25"};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const std::size_t point = i / 2;
    const std::uint64_t seed = 7 + i % 2;
    const double duration = std::stod(durations[point]), warmup = std::stod(warmups[point]);
    CHECK(r.at("point") == std::to_string(point));
    CHECK(r.at("seed") == std::to_string(seed));
    CHECK(r.at("duration_s") == durations[point]);
    CHECK(r.at("warmup_s") == warmups[point]);
    // Metrics round-trip exactly.
    CHECK(std::strtod(r.at("fake_product_s").c_str(), nullptr) == duration * double(seed));
    CHECK(std::strtod(r.at("fake_third").c_str(), nullptr) ==
          (duration + warmup) / 3.0 + double(seed));
    CHECK(std::strtod(r.at("quoted, \"name\"").c_str(), nullptr) == 1.0 / (double(seed) + 2.0));
    CHECK(r.at("events") == std::to_string(seed * 1000 + std::uint64_t(duration * 10)));
    CHECK(r.count("wall_s") == 1);
  }

  const std::string meta = slurp(o.out_dir + "/meta.json");
  CHECK(meta.find("\"state\": \"complete\"") != std::string::npos);
  CHECK(meta.find("\"runs_done\": 8") != std::string::npos);
  CHECK(meta.find("\"scenario_toml\": ") != std::string::npos);
}

TEST_CASE("a sweep run again skips the runs already in results.csv", "[sweep]") {
  const auto dir = fresh_dir("resume");
  const auto log = dir + "/calls.log";
  const auto runner = [&](const experiment::Scenario& s) { return fake_run(s, log); };
  CHECK(sweep(experiment::Scenario{}, two_by_two(dir + "/out", 1, 2), runner) == 4);
  CHECK(count_lines(log) == 4);
  CHECK(sweep(experiment::Scenario{}, two_by_two(dir + "/out", 3, 2), runner) == 8);
  CHECK(count_lines(log) == 12);
  CHECK(sweep(experiment::Scenario{}, two_by_two(dir + "/out", 3, 2), runner) == 0);
  CHECK(count_lines(log) == 12);
  CHECK(experiment::read_results(dir + "/out/results.csv").size() == 12);
}

TEST_CASE("a crashing or throwing child is reported and the other rows land", "[sweep]") {
  const auto dir = fresh_dir("crash");
  const auto log = dir + "/calls.log";
  const auto o = two_by_two(dir + "/out", 2, 2);
  const auto faulty = [&](const experiment::Scenario& s) {
    if (s.duration_s == 2.5 && s.warmup_s == 0.25 && s.seed == 7) std::abort();
    if (s.duration_s == 1 && s.warmup_s == 0.25 && s.seed == 8)
      throw std::runtime_error("fake failure in the runner");
    return fake_run(s, log);
  };
  std::string message;
  try {
    sweep(experiment::Scenario{}, o, faulty);
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.find("2 of 8 runs failed") != std::string::npos);
  CHECK(message.find("point 3 (duration_s=2.5, warmup_s=0.25), seed 7: killed by signal " +
                     std::to_string(SIGABRT)) != std::string::npos);
  CHECK(message.find("point 1 (duration_s=1, warmup_s=0.25), seed 8: exited with status 1: "
                     "fake failure in the runner") != std::string::npos);
  CHECK(experiment::read_results(o.out_dir + "/results.csv").size() == 6);
  CHECK(slurp(o.out_dir + "/meta.json").find("\"state\": \"failed\"") != std::string::npos);

  // Re-running retries only the failed runs.
  CHECK(sweep(experiment::Scenario{}, o,
              [&](const experiment::Scenario& s) { return fake_run(s, log); }) == 2);
  CHECK(experiment::read_results(o.out_dir + "/results.csv").size() == 8);
}

TEST_CASE("a torn last line is cut away on resume and its run made again", "[sweep]") {
  const auto dir = fresh_dir("torn");
  const auto log = dir + "/calls.log";
  const auto runner = [&](const experiment::Scenario& s) { return fake_run(s, log); };
  const auto o = two_by_two(dir + "/out", 1, 1);
  const auto csv = o.out_dir + "/results.csv";
  CHECK(sweep(experiment::Scenario{}, o, runner) == 4);
  const auto before = experiment::read_results(csv);

  // Cut the last row in half, as a crash in the middle of its write would.
  std::string text = slurp(csv);
  const auto last = text.rfind('\n', text.size() - 2) + 1;
  text.resize(last + (text.size() - last) / 2);
  std::ofstream(csv, std::ios::binary | std::ios::trunc) << text;
  CHECK(experiment::read_results(csv).size() == 3); // the reader ignores the torn line

  CHECK(sweep(experiment::Scenario{}, o, runner) == 1);
  CHECK(count_lines(log) == 5);
  const std::string repaired = slurp(csv);
  CHECK(repaired.back() == '\n');
  CHECK(count_lines(csv) == 5); // the header and four rows
  CHECK(without_wall(experiment::read_results(csv)) == without_wall(before));
}

TEST_CASE("a results.csv of a sweep over other parameters is refused", "[sweep]") {
  const auto dir = fresh_dir("mismatch");
  const auto log = dir + "/calls.log";
  const auto runner = [&](const experiment::Scenario& s) { return fake_run(s, log); };
  auto o = two_by_two(dir + "/out", 1, 2);
  CHECK(sweep(experiment::Scenario{}, o, runner) == 4);

  auto other = o;
  other.params = {{"duration_s", {"1", "2.5"}}, {"membership.period_ms", {"10", "20"}}};
  REQUIRE_THROWS_WITH(sweep(experiment::Scenario{}, other, runner),
                      Catch::Contains("belongs to a different sweep") &&
                          Catch::Contains("only in results.csv: warmup_s") &&
                          Catch::Contains("only in this sweep: membership.period_ms"));
  auto fewer = o;
  fewer.params = {{"duration_s", {"1", "2.5"}}};
  REQUIRE_THROWS_WITH(sweep(experiment::Scenario{}, fewer, runner),
                      Catch::Contains("only in results.csv: warmup_s"));
  auto reordered = o;
  std::swap(reordered.params[0], reordered.params[1]);
  REQUIRE_THROWS_WITH(sweep(experiment::Scenario{}, reordered, runner),
                      Catch::Contains("in another order"));
  CHECK(count_lines(log) == 4);
  CHECK(experiment::read_results(o.out_dir + "/results.csv").size() == 4);
}

TEST_CASE("an invalid point stops the sweep before anything runs", "[sweep]") {
  const auto dir = fresh_dir("invalid");
  const auto log = dir + "/calls.log";
  experiment::SweepOptions o;
  o.params = {{"channel.notify", {"polling", "no_such_mode"}}};
  o.out_dir = dir + "/out";
  REQUIRE_THROWS_AS(sweep(experiment::Scenario{}, o,
                          [&](const experiment::Scenario& s) { return fake_run(s, log); }),
                    experiment::ScenarioError);
  REQUIRE_THROWS_WITH(sweep(experiment::Scenario{}, o,
                            [&](const experiment::Scenario& s) { return fake_run(s, log); }),
                      Catch::Contains("sweep point 1 (channel.notify=no_such_mode)"));
  CHECK(count_lines(log) == 0);
  CHECK(!fs::exists(o.out_dir + "/results.csv"));
}

TEST_CASE("results do not depend on the number of jobs", "[sweep]") {
  const auto dir = fresh_dir("jobs");
  const auto log = dir + "/calls.log";
  const auto runner = [&](const experiment::Scenario& s) { return fake_run(s, log); };
  CHECK(sweep(experiment::Scenario{}, two_by_two(dir + "/one", 3, 1), runner) == 12);
  CHECK(sweep(experiment::Scenario{}, two_by_two(dir + "/two", 3, 2), runner) == 12);
  const auto one = experiment::read_results(dir + "/one/results.csv");
  const auto two = experiment::read_results(dir + "/two/results.csv");
  CHECK(one.size() == 12);
  CHECK(without_wall(one) == without_wall(two));
}

TEST_CASE("SIGINT stops the sweep, keeps its rows, and a re-run finishes it", "[sweep]") {
  const auto dir = fresh_dir("sigint");
  const auto log = dir + "/calls.log";
  const auto o = two_by_two(dir + "/out", 1, 1);
  const auto interrupting = [&](const experiment::Scenario& s) {
    if (s.duration_s == 1 && s.warmup_s == 0.25) { // point 1: as if Ctrl-C hit the parent
      ::kill(::getppid(), SIGINT);
      std::this_thread::sleep_for(std::chrono::seconds(30)); // killed by the parent
    }
    return fake_run(s, log);
  };
  std::size_t done = 0, total = 0;
  try {
    sweep(experiment::Scenario{}, o, interrupting);
  } catch (const experiment::SweepInterrupted& e) {
    done = e.done();
    total = e.total();
    CHECK(e.signal() == SIGINT);
  }
  CHECK(done == 1);
  CHECK(total == 4);
  CHECK(experiment::read_results(o.out_dir + "/results.csv").size() == 1);
  CHECK(slurp(o.out_dir + "/meta.json").find("\"state\": \"interrupted\"") != std::string::npos);

  CHECK(sweep(experiment::Scenario{}, o,
              [&](const experiment::Scenario& s) { return fake_run(s, log); }) == 3);
  CHECK(experiment::read_results(o.out_dir + "/results.csv").size() == 4);
}

TEST_CASE("a point the backend refuses stops the sweep before anything runs", "[sweep]") {
  const auto dir = fresh_dir("refused");
  const auto log = dir + "/calls.log";
  experiment::SweepOptions o;
  o.params = {{"duration_s", {"1", "200"}}};
  o.out_dir = dir + "/out";
  REQUIRE_THROWS_WITH(sweep(experiment::Scenario{}, o,
                            [&](const experiment::Scenario& s) { return fake_run(s, log); }),
                      Catch::Contains("sweep point 1 (duration_s=200): duration_s: the fake "
                                      "backend runs at most 100 s"));
  CHECK(count_lines(log) == 0);
  CHECK(!fs::exists(o.out_dir + "/results.csv"));
}

// A backend that refuses odd seeds for their draws alone (ScenarioIssue::per_seed), as a real
// backend refuses a seed whose generator draws migrations too close together, and seed 6 for
// a reason that is not the seed's.
class SeedBackend final : public experiment::Backend {
public:
  explicit SeedBackend(std::string log) : log_(std::move(log)) {}
  std::string_view name() const override { return "seedy"; }
  std::vector<experiment::ScenarioIssue> check(const experiment::Scenario& s) const override {
    if (s.seed == 6) return {{"duration_s", "not a seed's issue"}};
    if (s.seed % 2 == 0) return {};
    experiment::ScenarioIssue i{"generator[0]", "the draw at 1.500 s (seed " +
                                                    std::to_string(s.seed) +
                                                    "): too soon after the start"};
    i.per_seed = true;
    return {i};
  }
  experiment::RunResult run(const experiment::Scenario& s, std::uint64_t seed) override {
    experiment::Scenario point = s;
    point.seed = seed;
    return fake_run(point, log_);
  }
  unsigned default_jobs() const override { return 2; }

private:
  std::string log_;
};

// A scenario with a generator: only draws make a run's issues depend on its seed.
experiment::Scenario with_generator() {
  experiment::Scenario s;
  s.generators.push_back({experiment::EventKind::shutdown, 0.5, {}, 1, -1, 0});
  return s;
}

TEST_CASE("runs a backend refuses for their seed are reported and the others made", "[sweep]") {
  const auto dir = fresh_dir("refused_seeds");
  const auto log = dir + "/calls.log";
  SeedBackend backend(log);
  experiment::SweepOptions o;
  o.params = {{"duration_s", {"1", "2.5"}}};
  o.seeds = 4; // 1 and 3 refused, 2 and 4 made, at both points
  o.first_seed = 1;
  o.out_dir = dir + "/out";
  CHECK(experiment::run_sweep(with_generator(), o, backend) == 4);
  const auto rows = experiment::read_results(o.out_dir + "/results.csv");
  REQUIRE(rows.size() == 4);
  for (const auto& r : rows) CHECK((r.at("seed") == "2" || r.at("seed") == "4"));
  CHECK(count_lines(log) == 4);
  CHECK(slurp(log).find(" 1\n") == std::string::npos);
  CHECK(slurp(log).find(" 3\n") == std::string::npos);
  const std::string meta = slurp(o.out_dir + "/meta.json");
  CHECK(meta.find("\"state\": \"complete\"") != std::string::npos);
  CHECK(meta.find("\"runs_refused\": 4") != std::string::npos);
  CHECK(meta.find("\"runs_done\": 4") != std::string::npos);
  CHECK(meta.find("\"failed\": []") != std::string::npos);
  CHECK(meta.find("\"point\": 1, \"seed\": 3, \"params\": \"duration_s=2.5\", \"issues\": "
                  "\"generator[0]: the draw at 1.500 s (seed 3): too soon after the start\"") !=
        std::string::npos);
  // Run again: nothing left to make, the refusals reported again, no failure.
  CHECK(experiment::run_sweep(with_generator(), o, backend) == 0);
  CHECK(count_lines(log) == 4);

  // Without generators nothing depends on the seed: the first seed's check stands for all.
  auto plain = o;
  plain.out_dir = dir + "/plain";
  plain.first_seed = 2;
  plain.seeds = 1;
  CHECK(experiment::run_sweep(experiment::Scenario{}, plain, backend) == 2);

  // Every run refused: nothing can be made, refused like a single run (nothing written).
  auto none = o;
  none.out_dir = dir + "/none";
  none.first_seed = 3;
  none.seeds = 1;
  REQUIRE_THROWS_WITH(experiment::run_sweep(with_generator(), none, backend),
                      Catch::Contains("sweep point 0 (duration_s=1), seed 3: generator[0]: the "
                                      "draw at 1.500 s (seed 3)"));
  CHECK(!fs::exists(none.out_dir + "/results.csv"));

  // An issue that is not the seed's, found at a later seed: the sweep stops before anything.
  auto other = o;
  other.out_dir = dir + "/other";
  other.first_seed = 4;
  other.seeds = 3;
  REQUIRE_THROWS_WITH(experiment::run_sweep(with_generator(), other, backend),
                      Catch::Contains("seed 6: duration_s: not a seed's issue"));
  CHECK(!fs::exists(other.out_dir + "/results.csv"));
  CHECK(count_lines(log) == 6);
}

TEST_CASE("a sweep hands each landed run to on_result, summary included", "[sweep]") {
  const auto dir = fresh_dir("on_result");
  const auto log = dir + "/calls.log";
  auto o = two_by_two(dir + "/out", 1, 2);
  std::vector<std::pair<std::size_t, std::string>> seen;
  o.on_result = [&](std::size_t point, std::uint64_t, const experiment::RunResult& r) {
    seen.emplace_back(point, r.summary);
  };
  CHECK(sweep(experiment::Scenario{}, o, [&](const experiment::Scenario& s) {
          auto r = fake_run(s, log);
          r.summary = "summary of duration " + std::to_string(s.duration_s);
          return r;
        }) == 4);
  std::sort(seen.begin(), seen.end());
  REQUIRE(seen.size() == 4);
  CHECK(seen[0].second == "summary of duration " + std::to_string(1.0));
  CHECK(seen[3].second == "summary of duration " + std::to_string(2.5));
}

TEST_CASE("an output directory of another base scenario is refused, naming what differs",
          "[sweep]") {
  const auto dir = fresh_dir("other_scenario");
  const auto log = dir + "/calls.log";
  const auto runner = [&](const experiment::Scenario& s) { return fake_run(s, log); };
  experiment::SweepOptions o;
  o.params = {{"warmup_s", {"0", "0.25"}}};
  o.out_dir = dir + "/out";
  experiment::Scenario two;
  two.duration_s = 2;
  CHECK(sweep(two, o, runner) == 2);
  const std::string meta_before = slurp(o.out_dir + "/meta.json");
  const std::string csv_before = slurp(o.out_dir + "/results.csv");
  CHECK(meta_before.find("\"scenario_fingerprint\": \"") != std::string::npos);

  experiment::Scenario fifty = two;
  fifty.duration_s = 50;
  REQUIRE_THROWS_MATCHES(sweep(fifty, o, runner), experiment::OutputConflict,
                         Catch::Matchers::Predicate<experiment::OutputConflict>([](const auto& e) {
                           const std::string what = e.what();
                           return what.find("there: duration_s = 2.0") != std::string::npos &&
                                  what.find("now: duration_s = 50.0") != std::string::npos &&
                                  what.find("--force") != std::string::npos;
                         }));
  CHECK(count_lines(log) == 2);                          // nothing ran ...
  CHECK(slurp(o.out_dir + "/meta.json") == meta_before); // ... and nothing was rewritten
  CHECK(slurp(o.out_dir + "/results.csv") == csv_before);

  // Another seed is not another scenario: its rows join the same file.
  experiment::Scenario reseeded = two;
  reseeded.seed = 99;
  o.first_seed = 99;
  CHECK(sweep(reseeded, o, runner) == 2);
  CHECK(experiment::read_results(o.out_dir + "/results.csv").size() == 4);

  // --force starts over: only the new scenario's rows remain.
  o.force = true;
  CHECK(sweep(fifty, o, runner) == 2);
  const auto rows = experiment::read_results(o.out_dir + "/results.csv");
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) CHECK(row.at("fake_product_s") == std::to_string(50 * 99));
  o.force = false;
  CHECK(sweep(fifty, o, runner) == 0); // and it resumes as its own
}

TEST_CASE("an output directory of another backend, or without a fingerprint, is refused",
          "[sweep]") {
  const auto dir = fresh_dir("other_backend");
  const auto log = dir + "/calls.log";
  const auto runner = [&](const experiment::Scenario& s) { return fake_run(s, log); };
  experiment::SweepOptions o;
  o.out_dir = dir + "/out";
  CHECK(sweep(experiment::Scenario{}, o, runner) == 1);

  class OtherBackend final : public experiment::Backend {
  public:
    std::string_view name() const override { return "other"; }
    std::vector<experiment::ScenarioIssue> check(const experiment::Scenario&) const override {
      return {};
    }
    experiment::RunResult run(const experiment::Scenario&, std::uint64_t) override { return {}; }
    unsigned default_jobs() const override { return 1; }
  } other;
  REQUIRE_THROWS_AS(experiment::run_sweep(experiment::Scenario{}, o, other),
                    experiment::OutputConflict);
  try {
    experiment::run_sweep(experiment::Scenario{}, o, other);
  } catch (const experiment::OutputConflict& e) {
    CHECK(std::string(e.what()).find("backend: fake there, other now") != std::string::npos);
  }

  // A meta.json without a fingerprint (an older ivmc, or a hand-edited one): refused.
  std::string meta = slurp(o.out_dir + "/meta.json");
  const auto at = meta.find("\"scenario_fingerprint\"");
  REQUIRE(at != std::string::npos);
  meta.replace(at, std::string("\"scenario_fingerprint\"").size(), "\"no_fingerprint\"");
  std::ofstream(o.out_dir + "/meta.json") << meta;
  REQUIRE_THROWS_WITH(sweep(experiment::Scenario{}, o, runner),
                      Catch::Contains("records no scenario fingerprint"));
  fs::remove(o.out_dir + "/meta.json");
  REQUIRE_THROWS_AS(sweep(experiment::Scenario{}, o, runner), experiment::OutputConflict);
  CHECK(count_lines(log) == 1);
}

TEST_CASE("progress into a log is a new line every few seconds, without carriage returns",
          "[sweep]") {
  const auto dir = fresh_dir("progress_lines");
  const auto log = dir + "/calls.log";
  experiment::SweepOptions o;
  o.params = {{"duration_s", {"1", "2", "3", "4"}}};
  o.jobs = 1;
  o.out_dir = dir + "/out";
  o.progress = true;
  o.progress_every_s = 0.2;
  const std::string err_path = dir + "/stderr.txt";
  // stderr into a file for the sweep, as `ivmc sweep ... 2>log` does.
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  const int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  ::dup2(fd, STDERR_FILENO);
  ::close(fd);
  const auto made = sweep(experiment::Scenario{}, o, [&](const experiment::Scenario& s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return fake_run(s, log);
  });
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  CHECK(made == 4);
  const std::string err = slurp(err_path);
  INFO(err);
  CHECK(err.find('\r') == std::string::npos);
  std::size_t lines = 0;
  std::istringstream in(err);
  std::string last;
  for (std::string line; std::getline(in, line);) {
    CHECK(line.rfind("sweep: ", 0) == 0);
    ++lines;
    last = line;
  }
  CHECK(lines >= 3); // the start, some in between (1.2 s of runs, a line per 0.2 s), the end
  CHECK(lines <= 12);
  CHECK(last.rfind("sweep: 4/4 runs", 0) == 0);
  CHECK(err.find("runs/s") != std::string::npos);
}
