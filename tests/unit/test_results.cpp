// The results schema (experiment/results.hpp) and the child report's one encoding
// (experiment/child_run.hpp) without any process: metric names by workload kind, a backend's
// partial measures as NaN, the report's round trip (any bytes in names and texts), and a cut
// report refused. Where a check is reported (issue_at).
#include "ivmc/experiment/child_run.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/results.hpp"

#include "../../experiment/src/sweep_progress.hpp"
#include "ivmc/experiment/run_progress.hpp"
#include "ivmc/experiment/summary.hpp"
#include "ivmc/experiment/workload_summary.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>

using namespace ivmc;
using namespace ivmc::experiment;

TEST_CASE("metric names follow the workloads' kinds and the percentiles", "[results]") {
  Scenario s;
  s.vms = {{"a", 0, 1024, 0}, {"b", 1, 1024, 0}};
  s.workloads.push_back({WorkloadKind::udp_stream, "a", "b", 1024, 0, -1, 0, 0});
  s.workloads.push_back({WorkloadKind::tcp_rr, "b", "a", 64, 0, -1, 0, 0});
  s.latency_percentiles = {50, 99.9};
  const auto names = metric_names(s);
  REQUIRE(names.size() >= 9);
  CHECK(names[0] == "w0_mbps");
  CHECK(names[1] == "w0_messages_per_s");
  CHECK(names[2] == "w0_latency_p50_us");
  CHECK(names[3] == "w0_latency_p99.9_us");
  CHECK(names[4] == "w0_local_share");
  CHECK(names[5] == "w1_transactions_per_s");
  CHECK(names[6] == "w1_rtt_p50_us");
  CHECK(names[7] == "w1_rtt_p99.9_us");
  CHECK(names[8] == "w1_local_share");
  CHECK(names.back() == "migration_s_mean");
  CHECK(std::count(names.begin(), names.end(), "race_pending_data_migration_out") == 1);
}

TEST_CASE("schema_metrics puts NaN where a backend has no measure, and refuses unknown names",
          "[results]") {
  Scenario s;
  const auto names = metric_names(s);
  const auto m = schema_metrics(s, {{"sends", 12}, {"lost_bytes", 0}});
  REQUIRE(m.size() == names.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    INFO(names[i]);
    CHECK(m[i].name == names[i]);
    if (names[i] == "sends")
      CHECK(m[i].value == 12);
    else if (names[i] == "lost_bytes")
      CHECK(m[i].value == 0);
    else
      CHECK(std::isnan(m[i].value));
  }
  CHECK_THROWS_AS(schema_metrics(s, {{"send", 1}}), std::logic_error);
}

TEST_CASE("a child's report round-trips exactly, whatever bytes it holds", "[child_run]") {
  RunResult r;
  r.metrics = {{"plain", 1.0 / 3.0},
               {"with, comma \"and\" 12:colon,", -0.0},
               {std::string("nul\0byte", 8), 1e300},
               {"inf", std::numeric_limits<double>::infinity()},
               {"", 5e-324}};
  r.events = 18'446'744'073'709'551'615ull;
  r.wall_s = 0.125;
  r.summary = "line one\nline two: 3:x,\n";
  const auto bytes = encode_result(r);
  const auto back = decode_report(bytes);
  CHECK(back.complete);
  CHECK(back.ok);
  CHECK(back.result == r);
  CHECK(std::signbit(back.result.metrics[1].value)); // -0.0 stays negative

  RunResult with_nan;
  with_nan.metrics = {{"unmeasured", std::numeric_limits<double>::quiet_NaN()}};
  const auto nan_back = decode_report(encode_result(with_nan));
  REQUIRE(nan_back.ok);
  CHECK(std::isnan(nan_back.result.metrics[0].value));

  const auto err = decode_report(encode_error("boom: 3:x,\nsecond line"));
  CHECK(err.complete);
  CHECK(!err.ok);
  CHECK(err.error == "boom: 3:x,\nsecond line");
}

TEST_CASE("a report cut short or malformed is not taken for a result", "[child_run]") {
  RunResult r;
  r.metrics = {{"a", 1}, {"b", 2}};
  r.summary = "s";
  const auto bytes = encode_result(r);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK(!decode_report(bytes.substr(0, cut)).ok);
  }
  CHECK(!decode_report("2:ok,1:9,end").ok);                         // count beyond the items
  CHECK(!decode_report("2:ok,1:1,1:a,3:one,1:0,1:0,0:,3:end,").ok); // a value that is no number
  CHECK(!decode_report("99999999999999999999:ok,").ok);
  const auto cut_error = decode_report(encode_error("half").substr(0, 12));
  CHECK(!cut_error.complete);
}

TEST_CASE("exit statuses are described for people, signals by name", "[child_run]") {
  CHECK(describe_exit(W_EXITCODE(3, 0)) == "exited with status 3");
  CHECK(describe_exit(SIGSEGV) ==
        "killed by signal " + std::to_string(SIGSEGV) + " (SIGSEGV: Segmentation fault)");
  CHECK(describe_exit(SIGKILL).find("(SIGKILL: ") != std::string::npos);
}

TEST_CASE("issue_at names the line that set a key, else the item's line, else the key path",
          "[results]") {
  const Scenario s = parse_scenario(R"(duration_s = 2
[channel]
ring_kib = 64
[[vm]]
name = "a"
host = 0
[[vm]]
name = "b"
host = 0
[[workload]]
from = "a"
to = "b"
)",
                                    "i.toml");
  const auto ring = issue_at(s, "channel.ring_kib", "too small");
  CHECK(ring.where == "i.toml:3");
  CHECK(ring.what == "channel.ring_kib: too small");
  const auto item = issue_at(s, "workload[0]", "not played");
  CHECK(item.where == "i.toml:10");
  CHECK(item.what == "workload[0]: not played");
  const auto unset = issue_at(s, "membership.period_ms", "no line");
  CHECK(unset.where == "membership.period_ms");
  CHECK(unset.what == "no line");
}

TEST_CASE("the sweep summary: per point, the seeds and mean ± the 95% t interval", "[results]") {
  using Row = std::map<std::string, std::string>;
  const std::vector<Row> rows = {
      {{"point", "0"}, {"seed", "1"}, {"p", "a"}, {"stream_mbps", "10"}, {"race_exposure", "0"}},
      {{"point", "0"}, {"seed", "2"}, {"p", "a"}, {"stream_mbps", "12"}, {"race_exposure", "0"}},
      {{"point", "0"}, {"seed", "3"}, {"p", "a"}, {"stream_mbps", "14"}, {"race_exposure", "0"}},
      {{"point", "1"}, {"seed", "1"}, {"p", "b"}, {"stream_mbps", "5"}, {"race_exposure", "0"}},
  };
  const std::string table = experiment::summary_table(rows, {"p"});
  INFO(table);
  // mean 12, sd 2, n 3: 4.303 * 2 / sqrt(3) = 4.97.
  CHECK(table.find("0      a  3      12 ± 5") != std::string::npos);
  CHECK(table.find("1      b  1      5\n") != std::string::npos); // one seed: the mean alone
  CHECK(table.rfind("point  p  seeds  stream_mbps", 0) == 0);
  CHECK(table.find("race_exposure") == std::string::npos); // all zero: left out
  CHECK(experiment::summary_table({}, {}).empty());
  CHECK(experiment::t975(1) == Approx(12.706));
  CHECK(experiment::t975(30) == Approx(2.042));
  CHECK(experiment::t975(1000) == Approx(1.96));
}

TEST_CASE("a report carries the run's change records, NaN detection delays included",
          "[child_run]") {
  RunResult r;
  r.metrics = {{"m", 1}};
  r.changes_recorded = true;
  ChangeRecord a;
  a.time_s = 0.25;
  a.kind = "migration";
  a.vm = "v,1\"";
  a.from_host = 0;
  a.to_host = 3;
  a.observers = 4;
  a.notified = 3;
  a.detection_max_s = 0.1;
  a.detection_mean_s = 0.05;
  a.stale_sends = 17;
  a.race_operations = 2;
  a.race_errors = 1;
  ChangeRecord b;
  b.kind = "creation";
  b.vm = "c";
  b.to_host = 1;
  b.detection_max_s = b.detection_mean_s = std::numeric_limits<double>::quiet_NaN();
  r.changes = {a, b};
  const auto back = decode_report(encode_result(r));
  REQUIRE(back.ok);
  CHECK(back.result.changes_recorded);
  REQUIRE(back.result.changes.size() == 2);
  CHECK(back.result.changes[0] == a);
  CHECK(change_fields(back.result.changes[1]) == change_fields(b));
  CHECK(change_fields(b)[3].empty()); // a creation left no host
  CHECK(change_fields(b)[7] == "nan");

  // Not recorded: nothing, and said so.
  const auto none = decode_report(encode_result(RunResult{}));
  REQUIRE(none.ok);
  CHECK(!none.result.changes_recorded);
  // A record cut short is no result.
  auto bytes = encode_result(r);
  bytes.erase(bytes.rfind("1:1,"), 4); // a record loses a field
  CHECK(!decode_report(bytes).ok);
  CHECK_THROWS_AS(parse_change({"1", "migration"}), std::runtime_error);
}

TEST_CASE("summarize: parameter columns from a results.csv header, and the table as JSON",
          "[results]") {
  CHECK(param_columns({"point", "seed", "membership.period_ms", "workload[0].message_bytes",
                       "w0_mbps", "w0_messages_per_s", "stream_mbps", "events", "wall_s"}) ==
        std::vector<std::string>{"membership.period_ms", "workload[0].message_bytes"});
  CHECK(param_columns({"point", "seed", "stream_mbps", "events", "wall_s"}).empty());
  CHECK(param_columns({"point", "seed", "duration_s", "notifications", "events", "wall_s"}) ==
        std::vector<std::string>{"duration_s"});

  using Row = std::map<std::string, std::string>;
  const std::vector<Row> rows = {
      {{"point", "0"}, {"seed", "1"}, {"p", "a"}, {"stream_mbps", "10"}},
      {{"point", "0"}, {"seed", "2"}, {"p", "a"}, {"stream_mbps", "14"}},
      {{"point", "1"}, {"seed", "1"}, {"p", "b\""}, {"stream_mbps", "nan"}},
  };
  const auto points = summarize_rows(rows, {"p"});
  REQUIRE(points.size() == 2);
  CHECK(points[0].seeds == 2);
  REQUIRE(points[0].metrics.size() == 1);
  CHECK(points[0].metrics[0].mean == 12);
  CHECK(points[0].metrics[0].half_width == Approx(12.706 * 2 * std::sqrt(2.0) / std::sqrt(2.0)));
  CHECK(points[1].metrics[0].n == 0);
  const std::string json = summary_json(rows, {"p"});
  INFO(json);
  CHECK(json.find(R"({"params": ["p"], "points": [)") == 0);
  CHECK(json.find(R"({"point": 0, "params": {"p": "a"}, "seeds": 2, "metrics": {"stream_mbps": )"
                  R"({"n": 2, "mean": 12, "ci95": )") != std::string::npos);
  CHECK(json.find(R"("p": "b\"")") != std::string::npos);
  CHECK(json.find(R"({"n": 0, "mean": null, "ci95": null})") != std::string::npos);
}

TEST_CASE("a run's summary aggregates its workloads beyond twenty", "[results]") {
  const auto make = [](std::size_t n) {
    WorkloadSummary w;
    for (std::size_t i = 0; i < n; ++i)
      w.add(fmt::format("  stream {}\n", i), i % 2 == 1, static_cast<double>(i + 1),
            static_cast<double>(10 * (i + 1)));
    return w.text("p99");
  };
  const std::string few = make(kWorkloadLines);
  CHECK(std::count(few.begin(), few.end(), '\n') == static_cast<long>(kWorkloadLines));
  CHECK(few.find("stream 19\n") != std::string::npos);

  const std::string many = make(1000);
  INFO(many);
  CHECK(std::count(many.begin(), many.end(), '\n') == 5 + static_cast<long>(kSlowestShown));
  CHECK(many.find("1000 workloads (over 20: aggregated") != std::string::npos);
  // Streams are the even indices: headlines 1, 3, ..., 999; total 250000.
  CHECK(many.find("500 streams: total 250000.0 Mb/s; per workload median 499, p99 989, min 1") !=
        std::string::npos);
  CHECK(many.find("500 request-response: total 250500.0 trans/s") != std::string::npos);
  CHECK(many.find("latency p99 across workloads (us): median 5000.0, p99 9900.0, max 10000.0") !=
        std::string::npos);
  CHECK(many.find("    w0:  stream 0\n") != std::string::npos); // the slowest: 1 Mb/s
}

TEST_CASE("a long run's progress line: simulated time done, rate, time left", "[results]") {
  const RunProgress p("race", 60, false, 5);
  CHECK(p.line(15, 5) == "race: 15/60 s simulated (25%), 3 s simulated/s, 15 s left");
  CHECK(p.line(0, 0) == "race: 0/60 s simulated (0%)");
  CHECK(p.line(30, 600) == "race: 30/60 s simulated (50%), 0.05 s simulated/s, 10 min left");
}

TEST_CASE("sweep progress shows runs per second, or the time per run when runs are slow",
          "[sweep]") {
  using ivmc::experiment::detail::Progress;
  CHECK(Progress::pace(10, 5.0, 10) == ", 2.0 runs/s, 5 s left");
  CHECK(Progress::pace(1, 10.0, 0) == ", 0.1 runs/s, 0 s left");
  // A Xen run of 5 minutes: not "0.0 runs/s".
  CHECK(Progress::pace(2, 600.0, 4) == ", 5 min per run, 20 min left");
  CHECK(Progress::pace(1, 45.0, 1) == ", 45 s per run, 45 s left");
}
