// The scenario loader: every kind of problem is reported at its line, all of them at once;
// unknown keys are errors with a suggestion; overrides reach every kind of key; to_toml reads
// back to the same scenario; the embedded default and every preset validate.
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/experiment/presets.hpp"
#include "ivmc/experiment/to_toml.hpp"
#include "ivmc/experiment/validate.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

using namespace ivmc;
using namespace ivmc::experiment;

namespace {

// The issues parse_scenario reports for `text` (none if it parses).
std::vector<ScenarioIssue> issues_of(const std::string& text,
                                     const std::string& origin = "t.toml") {
  try {
    parse_scenario(text, origin);
  } catch (const ScenarioError& e) {
    return e.issues();
  }
  return {};
}

// Is there an issue at `where` whose text contains `part`?
bool has(const std::vector<ScenarioIssue>& issues, const std::string& where,
         const std::string& part) {
  return std::any_of(issues.begin(), issues.end(), [&](const ScenarioIssue& i) {
    return i.where == where && i.what.find(part) != std::string::npos;
  });
}

std::string dump(const std::vector<ScenarioIssue>& issues) {
  std::string out;
  for (const auto& i : issues) out += i.where + ": " + i.what + "\n";
  return out;
}

// The text of the error an override throws ("" if none).
std::string override_error(Scenario& s, const std::string& assignment) {
  try {
    apply_override(s, assignment);
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}

// Lines and origins depend on the text a scenario was read from, not on its content.
Scenario without_sources(Scenario s) {
  s.origin.clear();
  for (auto& v : s.vms) v.line = 0;
  for (auto& w : s.workloads) w.line = 0;
  for (auto& e : s.events) e.line = 0;
  for (auto& g : s.generators) g.line = 0;
  s.set_at.clear();
  return s;
}

const char* const kTwoVms = R"(
[[vm]]
name = "a"
host = 0

[[vm]]
name = "b"
host = 1
)";

} // namespace

TEST_CASE("the default scenario is the documented example and validates", "[scenario]") {
  const auto s = load_scenario_argument("default");
  CHECK(validate(s).empty());
  CHECK(s.name == "default");
  CHECK(s.platform.hosts == 2);
  CHECK(s.platform.hypervisor == Hypervisor::xen);
  REQUIRE(s.vms.size() == 4);
  CHECK(s.vms[0].name == "web0");
  CHECK(s.vms[0].host == 0);
  CHECK(s.vms[1].name == "db0");
  CHECK(s.vms[1].host == 0);
  CHECK(s.vms[2].name == "web1");
  CHECK(s.vms[2].host == 1);
  CHECK(s.vms[3].name == "cache0");
  CHECK(s.vms[3].host == 1);
  REQUIRE(s.workloads.size() == 4);
  CHECK(s.workloads[0].kind == WorkloadKind::tcp_stream);
  CHECK(s.workloads[0].message_bytes == 16384);
  CHECK(s.workloads[2].kind == WorkloadKind::udp_stream);
  REQUIRE(s.events.size() == 2);
  CHECK(s.events[0].at_s == 0.3);
  CHECK(s.events[1].host == 1);
  REQUIRE(s.generators.size() == 1);
  CHECK(s.generators[0].vms == std::vector<std::string>{"cache0"});
  CHECK(s.duration_s == 1.5);
  CHECK(s.warmup_s == 0.05);
  CHECK(s.channel.notify == NotifyPolicy::on_demand);
  CHECK(s.channel.ring_kib == 256);
  CHECK(s.membership.detection == Detection::periodic);
  CHECK(s.membership.period_ms == 100);
  CHECK(s.membership.race == RacePolicy::resolution);
  CHECK(s.vms[0].line > 0); // from <default>, its own origin
  CHECK(load_scenario_argument("").vms.size() == 4);
}

TEST_CASE("every preset parses and validates over the default", "[scenario]") {
  const auto list = presets();
  for (const auto& p : list) {
    INFO("preset " << p.name);
    CHECK(!p.system.empty());
    CHECK(!p.summary.empty());
    REQUIRE(preset_text(p.name));
    Scenario s;
    try {
      s = load_scenario_argument("preset:" + p.name);
    } catch (const ScenarioError& e) {
      FAIL(e.what());
    }
    CHECK(validate(s).empty());
    CHECK(s.preset == p.name);
    CHECK(s.preset_system == p.system);
    CHECK(s.origin == "preset:" + p.name);
    CHECK(s.vms.size() == 4);  // the default's VMs...
    CHECK(s.vms[0].line == 0); // ...whose lines are not in the preset
    CHECK(without_sources(parse_scenario(to_toml(s), "rt")) == without_sources(s));
  }
  CHECK(!preset_text("no-such-preset"));
}

TEST_CASE("preset:NAME applies the preset's tables over the default", "[scenario]") {
  // A preset fragment written like the real ones, applied through the same path.
  if (presets().empty()) return; // nothing to apply yet
  const auto name = presets().front().name;
  const auto s = load_scenario_argument("preset:" + name);
  const auto d = load_scenario_argument("default");
  CHECK(without_sources(s).vms == without_sources(d).vms);
  CHECK(s.workloads.size() == d.workloads.size());
  CHECK(s.name == name);

  // A file naming a preset starts from it; its own keys win.
  const auto f = parse_scenario("preset = \"" + name + "\"\n[channel]\nnotify = \"atw\"\n", "f");
  CHECK(f.preset == name);
  CHECK(f.channel.notify == NotifyPolicy::atw);
  CHECK(f.membership == s.membership);
  CHECK(f.vms.empty()); // presets bring no VMs; the default is not involved

  try {
    load_scenario_argument("preset:nope");
    FAIL("no error");
  } catch (const ScenarioError& e) {
    REQUIRE(e.issues().size() == 1);
    CHECK(e.issues()[0].where == "preset:nope");
    CHECK(e.issues()[0].what.find(name) != std::string::npos); // lists the known ones
  }
  const auto bad = issues_of("name = \"x\"\npreset = \"nope\"\n");
  CHECK(has(bad, "t.toml:2", "no preset named \"nope\""));
}

TEST_CASE("a missing file is an error naming the path", "[scenario]") {
  try {
    load_scenario_argument("/nonexistent/dir/s.toml");
    FAIL("no error");
  } catch (const ScenarioError& e) {
    REQUIRE(e.issues().size() == 1);
    CHECK(e.issues()[0].where == "/nonexistent/dir/s.toml");
  }
}

TEST_CASE("TOML syntax errors carry their line", "[scenario]") {
  const auto issues = issues_of("name = \"x\"\n\nduration_s = \n");
  REQUIRE(issues.size() == 1);
  CHECK(issues[0].where == "t.toml:3");
  CHECK(issues[0].what.find("invalid TOML") != std::string::npos);
}

TEST_CASE("every problem is reported at its line, all at once", "[scenario]") {
  const std::string text = "name = \"t\"\n"            // 1
                           "duration_s = \"long\"\n"   // 2
                           "[platform]\n"              // 3
                           "hosts = 2.5\n"             // 4
                           "[channel]\n"               // 5
                           "notify = \"atx\"\n"        // 6
                           "ring_kib = 100\n"          // 7
                           "notfy = \"atw\"\n"         // 8
                           "layer = 4\n"               // 9
                           "[[vm]]\n"                  // 10
                           "name = \"a\"\n"            // 11
                           "host = 0\n"                // 12
                           "[[vm]]\n"                  // 13
                           "name = \"a\"\n"            // 14
                           "host = 7\n"                // 15
                           "[[workload]]\n"            // 16
                           "from = \"a\"\n"            // 17
                           "to = \"zz\"\n"             // 18
                           "message_bytes = 8\n"       // 19
                           "kind = \"tcp_steam\"\n"    // 20
                           "start_s = -1\n"            // 21
                           "[membership]\n"            // 22
                           "race = \"maybe\"\n"        // 23
                           "detection = \"psychic\"\n" // 24
                           "period_ms = 0\n"           // 25
                           "[pool]\n"                  // 26
                           "max_pairs = -3\n"          // 27
                           "allocation = \"greedy\"\n" // 28
                           "[[event]]\n"               // 29
                           "kind = \"migrate\"\n"      // 30
                           "at_s = 5\n"                // 31
                           "vm = \"ghost\"\n"          // 32
                           "host = 9\n";               // 33
  const auto issues = issues_of(text);
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:2", "duration_s: expected a number; got \"long\""));
  CHECK(has(issues, "t.toml:4", "platform.hosts: expected an integer; got 2.5"));
  CHECK(has(issues, "t.toml:6",
            "channel.notify: expected one of polling, on_demand, per_packet, atw, "
            "spin_then_block; got \"atx\""));
  CHECK(has(issues, "t.toml:7", "channel.ring_kib: expected a power of two"));
  CHECK(has(issues, "t.toml:8", "unknown key `channel.notfy`; did you mean `channel.notify`?"));
  CHECK(has(issues, "t.toml:9", "channel.layer: expected 1, 2 or 3"));
  CHECK(has(issues, "t.toml:14", "vm[1].name: VM name \"a\" is already used by vm[0]"));
  CHECK(has(issues, "t.toml:15", "vm[1].host: host 7 does not exist"));
  CHECK(has(issues, "t.toml:18", "workload[0].to: no VM named \"zz\""));
  CHECK(has(issues, "t.toml:19", "workload[0].message_bytes: expected 16 to 67108864"));
  CHECK(has(issues, "t.toml:20", "workload[0].kind: expected one of tcp_stream"));
  CHECK(has(issues, "t.toml:21", "workload[0].start_s: expected a time in [0, duration_s"));
  CHECK(has(issues, "t.toml:23", "membership.race: expected one of prevention, resolution, none"));
  CHECK(has(issues, "t.toml:24", "membership.detection: expected one of"));
  CHECK(has(issues, "t.toml:25", "membership.period_ms: expected a number > 0"));
  CHECK(has(issues, "t.toml:27", "pool.max_pairs: expected a non-negative integer; got -3"));
  CHECK(has(issues, "t.toml:28", "pool.allocation: expected one of static_equal, proportional"));
  CHECK(has(issues, "t.toml:31", "event[0].at_s: expected a time in [0, duration_s = 1.0]"));
  CHECK(has(issues, "t.toml:32", "event[0].vm: no VM named \"ghost\""));
  CHECK(has(issues, "t.toml:33", "event[0].host: host 9 does not exist"));
  CHECK(issues.size() == 20);
  // In file order.
  CHECK(std::is_sorted(issues.begin(), issues.end(), [](const auto& a, const auto& b) {
    return std::stoi(a.where.substr(7)) < std::stoi(b.where.substr(7));
  }));

  // The exception's text lists them all, "where: what", one per line.
  try {
    parse_scenario(text, "t.toml");
  } catch (const ScenarioError& e) {
    CHECK(std::string(e.what()) == dump(issues).substr(0, dump(issues).size() - 1));
  }
}

TEST_CASE("a type error hides the semantic check of the same key", "[scenario]") {
  // `to` of the wrong type stays empty; "no VM named """ would only be noise.
  const auto issues = issues_of(std::string(kTwoVms) + "[[workload]]\nfrom = \"a\"\nto = 3\n");
  INFO(dump(issues));
  REQUIRE(issues.size() == 1);
  CHECK(issues[0].where == "t.toml:11");
  CHECK(issues[0].what == "workload[0].to: expected a string; got 3");
}

TEST_CASE("unknown keys and tables are errors, with a suggestion", "[scenario]") {
  const std::string text = "notify = \"atw\"\n" // 1: right key, wrong table
                           "[chanel]\n"         // 2
                           "ring_kib = 64\n"    // 3
                           "[[workload]]\n"     // 4
                           "form = \"a\"\n"     // 5
                           "to = \"b\"\n"       // 6
                           "[platform]\n"       // 7
                           "quantum_flux = 1\n" // 8: nothing close
                           "[[vms]]\n"          // 9
                           "name = \"a\"\n";    // 10
  const auto issues = issues_of(std::string(text) + kTwoVms);
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:1", "unknown key `notify`; did you mean `channel.notify`?"));
  CHECK(has(issues, "t.toml:2", "unknown key `chanel`; did you mean `channel`?"));
  CHECK(
      has(issues, "t.toml:5", "unknown key `workload[0].form`; did you mean `workload[0].from`?"));
  CHECK(has(issues, "t.toml:4", "workload[0]: missing the required key `from`"));
  CHECK(has(issues, "t.toml:8", "unknown key `platform.quantum_flux`"));
  CHECK(!has(issues, "t.toml:8", "did you mean"));
  CHECK(has(issues, "t.toml:9", "unknown key `vms`; did you mean `vm`?"));
  CHECK(issues.size() == 6);

  const auto missing = issues_of("[[vm]]\nname = \"a\"\n[[event]]\nvm = \"a\"\n");
  INFO(dump(missing));
  CHECK(has(missing, "t.toml:1", "vm[0]: missing the required key `host`"));
  CHECK(has(missing, "t.toml:3", "event[0]: missing the required key `kind`"));
  CHECK(has(missing, "t.toml:3", "event[0]: missing the required key `at_s`"));
}

TEST_CASE("types: ints are numbers, not the other way round", "[scenario]") {
  const auto s = parse_scenario("duration_s = 2\nwarmup_s = 0.5\nlatency_percentiles = [50, 99.5]\n"
                                "[costs]\nsyscall_ns = 300\nfactor = 1.5\n",
                                "t.toml");
  CHECK(s.duration_s == 2.0);
  CHECK(s.latency_percentiles == std::vector<double>{50, 99.5});
  CHECK(s.costs.at("syscall_ns") == 300);
  CHECK(s.costs.at("factor") == 1.5);

  const auto issues = issues_of("seed = 1.0\n[channel]\nenabled = \"yes\"\ntrusted = [\"a\"]\n"
                                "[costs]\nx = \"cheap\"\n[platform]\nhosts = -1\n");
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:1", "seed: expected an integer; got 1.0"));
  CHECK(has(issues, "t.toml:3", "channel.enabled: expected true or false; got \"yes\""));
  CHECK(has(issues, "t.toml:4", "channel.trusted: expected an array of [\"vm\", \"vm\"] pairs"));
  CHECK(has(issues, "t.toml:6", "costs.x: expected a number; got \"cheap\""));
  CHECK(has(issues, "t.toml:8", "platform.hosts: expected a non-negative integer; got -1"));
  CHECK(has(issues_of("channel = 3\n"), "t.toml:1", "channel: expected a table ([channel])"));
  CHECK(has(issues_of("vm = 3\n"), "t.toml:1", "vm: expected tables ([[vm]])"));
}

TEST_CASE("events: a VM exists from its creation to its shutdown", "[scenario]") {
  const std::string head = std::string("duration_s = 10\n") + kTwoVms;
  // Created, then migrated and shut down; a workload may name it.
  const auto ok = head + R"(
[[event]]
kind = "create"
at_s = 1
vm = "c"
host = 1
[[event]]
kind = "migrate"
at_s = 2
vm = "c"
host = 0
[[event]]
kind = "shutdown"
at_s = 3
vm = "c"
[[event]]
kind = "migrate"
at_s = 4
vm = "a"
host = 0
[[workload]]
from = "a"
to = "c"
)";
  INFO(dump(issues_of(ok)));
  CHECK(issues_of(ok).empty()); // includes a no-op migration (a to its own host)

  const auto bad = head + R"(
[[event]]
kind = "migrate"
at_s = 1
vm = "c"
host = 0
[[event]]
kind = "create"
at_s = 2
vm = "c"
host = 2
[[event]]
kind = "shutdown"
at_s = 3
vm = "b"
[[event]]
kind = "migrate"
at_s = 4
vm = "b"
host = 0
[[event]]
kind = "create"
at_s = 5
vm = "a"
[[event]]
kind = "reboot"
at_s = 6
vm = "a"
)";
  const auto issues = issues_of(bad);
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:14", "event[0].vm: VM \"c\" is created only later"));
  CHECK(has(issues, "t.toml:20", "event[1].host: host 2 does not exist"));
  CHECK(has(issues, "t.toml:28", "event[3].vm: VM \"b\" was shut down at 3.0 s"));
  CHECK(has(issues, "t.toml:33", "event[4].vm: VM \"a\" already exists"));
  CHECK(has(issues, "t.toml:35", "event[5].kind: expected one of migrate, create, shutdown"));
  CHECK(issues.size() == 5);
}

TEST_CASE("more semantic checks", "[scenario]") {
  // Keys written after a table belong to it (TOML's rule): here, to the last [[vm]].
  auto issues = issues_of(std::string(kTwoVms) + "\nduration_s = 1\n");
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:10", "unknown key `vm[1].duration_s`"));

  issues = issues_of(R"(
duration_s = 1
warmup_s = 1
latency_percentiles = [0, 50, 100]
[channel]
trust = "list"
[pool]
pool_mib = 1
chunk_kib = 64
max_pairs = 32
[membership]
detection = "adaptive"
period_ms = 5000
period_min_ms = 10
period_max_ms = 1
)" + std::string(kTwoVms) +
                     R"(
[[workload]]
from = "a"
to = "a"
stop_s = 0.0
rate_per_s = -1
[[generator]]
kind = "migrate"
rate_per_s = -2
vms = ["a", "x"]
stop_s = 2
)");
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:3", "warmup_s: expected a time in [0, duration_s = 1.0); got 1.0"));
  CHECK(has(issues, "t.toml:4", "latency_percentiles: expected percentiles in (0, 100); got 0.0"));
  CHECK(has(issues, "t.toml:4", "got 100.0"));
  CHECK(has(issues, "t.toml:6", "channel.trust: trust = \"list\" needs at least one"));
  CHECK(has(issues, "t.toml:10", "pool.max_pairs: 32 pairs of at least one 64 KiB chunk"));
  CHECK(has(issues, "t.toml:13", "membership.period_ms: adaptive: expected the initial period"));
  CHECK(has(issues, "t.toml:15", "membership.period_max_ms: expected at least period_min_ms"));
  CHECK(has(issues, "t.toml:27", "workload[0].to: a workload from \"a\" to itself"));
  CHECK(has(issues, "t.toml:28", "workload[0].stop_s: expected a negative value"));
  CHECK(has(issues, "t.toml:29", "workload[0].rate_per_s: expected a number >= 0"));
  CHECK(has(issues, "t.toml:32", "generator[0].rate_per_s: expected a number >= 0"));
  CHECK(has(issues, "t.toml:33", "generator[0].vms: no VM named \"x\""));
  CHECK(has(issues, "t.toml:34", "generator[0].stop_s"));

  // Trusted pairs must name VMs, two different ones.
  issues = issues_of(std::string(kTwoVms) +
                     "[channel]\ntrust = \"list\"\ntrusted = [[\"a\", \"q\"], [\"b\", \"b\"]]\n");
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:11", "channel.trusted: no VM named \"q\""));
  CHECK(has(issues, "t.toml:11", "channel.trusted: a pair names \"b\" twice"));
  CHECK(
      issues_of(std::string(kTwoVms) + "[channel]\ntrust = \"list\"\ntrusted = [[\"a\", \"b\"]]\n")
          .empty());

  // channel.copies is 1 or 2; platform.hvm is a Xen setting.
  issues = issues_of(std::string(kTwoVms) +
                     "[platform]\nhypervisor = \"kvm\"\nhvm = true\n[channel]\ncopies = 0\n");
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:11", "platform.hvm: HVM guests are a xen setting"));
  CHECK(has(issues, "t.toml:13", "channel.copies: expected 1 or 2 copies; got 0"));
  CHECK(has(issues_of("[channel]\ncopies = 3\n"), "t.toml:2", "got 3"));
  CHECK(issues_of(std::string(kTwoVms) +
                  "[platform]\nhvm = true\n[channel]\ncopies = 1\ntcp_only = true\n")
            .empty());

  // One host: nowhere to migrate to.
  CHECK(has(issues_of("[platform]\nhosts = 1\n[[generator]]\nkind = \"migrate\"\n"), "t.toml:4",
            "generator[0].kind: migrate needs at least 2 hosts"));
}

TEST_CASE("numbers beyond what a run can hold are refused at their line", "[scenario]") {
  // The issue's values: a run that simulates nothing, a host count that exhausts memory, a
  // VM whose migration never ends.
  auto issues = issues_of(R"(duration_s = 1e10
[platform]
hosts = 100000000000
migration_gbps = 1
[[vm]]
name = "a"
host = 0
ram_mib = 9223372036854775807
[[vm]]
name = "b"
host = 0
ram_mib = 10000000
[[workload]]
from = "a"
to = "b"
rate_per_s = 1e300
[membership]
period_ms = 1e300
)");
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:1", "duration_s: expected at most 1000000 (the longest span"));
  CHECK(has(issues, "t.toml:3",
            "platform.hosts: expected at most 100000 hosts (each takes about 2.6 KB of "
            "simulator state: 100000000000 would need about 260 TB)"));
  CHECK(has(issues, "t.toml:8", "vm[0].ram_mib: expected at most 16777216 MiB (16 TiB)"));
  CHECK(has(issues, "t.toml:16", "workload[0].rate_per_s: expected at most 1000000000"));
  CHECK(has(issues, "t.toml:18", "membership.period_ms: expected at most 1000000000"));
  // 10,000,000 MiB copies in 83,886 s at 1 Gbit/s: within the bound.
  CHECK(!has(issues, "t.toml:12", "vm[1].ram_mib"));
  CHECK(issues.size() == 5);

  issues = issues_of(std::string("duration_s = 1e300\n[platform]\nmigration_gbps = 0.001\n") +
                     kTwoVms + "ram_mib = 16777216\n");
  INFO(dump(issues));
  CHECK(has(issues, "t.toml:1", "got 1e+300"));
  CHECK(has(issues, "t.toml:12",
            "vm[1].ram_mib: 16777216 MiB take 140737488 s to copy once at "
            "platform.migration_gbps = 0.001, more than the longest run (1000000 s)"));

  // The bounds themselves are accepted.
  CHECK(issues_of(std::string("duration_s = 1000000\n[platform]\nhosts = 100000\n") + kTwoVms +
                  "ram_mib = 16777216\n")
            .empty());
}

TEST_CASE("validate on a built scenario reports key paths", "[scenario]") {
  Scenario s;
  CHECK(validate(s).empty()); // the defaults are valid
  s.vms = {{"a", 0, 1024, 0}, {"b", 5, 1024, 0}};
  s.workloads.push_back({WorkloadKind::tcp_stream, "a", "c", 1024, 0, -1, 0, 0});
  s.channel.notify = static_cast<NotifyPolicy>(7); // only a cast makes a value outside its set
  const auto issues = validate(s);
  INFO(dump(issues));
  CHECK(has(issues, "vm[1].host", "host 5 does not exist (platform.hosts = 2: hosts 0..1)"));
  CHECK(has(issues, "workload[0].to", "no VM named \"c\""));
  CHECK(has(issues, "channel.notify", "expected one of polling"));
  CHECK(issues.size() == 3);

  s.workloads[0].line = 12; // from a file: its line
  s.origin = "s.toml";
  CHECK(has(validate(s), "s.toml:12", "workload[0].to: no VM named \"c\""));
}

TEST_CASE("overrides reach every kind of key", "[scenario]") {
  auto s = load_scenario_argument("default");
  apply_override(s, "duration_s=2");
  apply_override(s, " seed = 42 ");
  apply_override(s, "name=sweep point");
  apply_override(s, "channel.notify=atw");
  apply_override(s, "channel.enabled=false");
  apply_override(s, "channel.ring_kib=1024");
  apply_override(s, "membership.period_ms=50");
  apply_override(s, "membership.race=\"prevention\"");
  apply_override(s, "platform.hypervisor=kvm");
  apply_override(s, "pool.enabled=true");
  apply_override(s, "workload.message_bytes=4096");
  apply_override(s, "workload[1].message_bytes=64");
  apply_override(s, "workload[2].rate_per_s=1e4");
  apply_override(s, "vm[0].host=1");
  apply_override(s, "event[0].at_s=0.25");
  apply_override(s, "generator[0].vms=web0,cache0");
  apply_override(s, "generator.rate_per_s=3");
  apply_override(s, "costs.syscall_ns=300");
  apply_override(s, "costs.new.thing=0.5");
  apply_override(s, "latency_percentiles=[50, 99.99]");
  apply_override(s, "channel.trust=list");
  apply_override(s, "channel.trusted=web0:db0,web1:cache0");
  CHECK(s.duration_s == 2);
  CHECK(s.seed == 42);
  CHECK(s.name == "sweep point");
  CHECK(s.channel.notify == NotifyPolicy::atw);
  CHECK(!s.channel.enabled);
  CHECK(s.channel.ring_kib == 1024);
  CHECK(s.membership.period_ms == 50);
  CHECK(s.membership.race == RacePolicy::prevention);
  CHECK(s.platform.hypervisor == Hypervisor::kvm);
  CHECK(s.pool.enabled);
  CHECK(s.workloads[0].message_bytes == 4096);
  CHECK(s.workloads[1].message_bytes == 64);
  CHECK(s.workloads[2].message_bytes == 4096);
  CHECK(s.workloads[3].message_bytes == 4096);
  CHECK(s.workloads[2].rate_per_s == 1e4);
  CHECK(s.vms[0].host == 1);
  CHECK(s.events[0].at_s == 0.25);
  CHECK(s.generators[0].vms == std::vector<std::string>{"web0", "cache0"});
  CHECK(s.generators[0].rate_per_s == 3);
  CHECK(s.costs.at("syscall_ns") == 300);
  CHECK(s.costs.at("new.thing") == 0.5);
  CHECK(s.latency_percentiles == std::vector<double>{50, 99.99});
  CHECK(s.channel.trusted ==
        std::vector<std::pair<std::string, std::string>>{{"web0", "db0"}, {"web1", "cache0"}});
  CHECK(validate(s).empty());
  apply_override(s, "generator[0].vms=[\"web1\"]");
  CHECK(s.generators[0].vms == std::vector<std::string>{"web1"});
  apply_override(s, "channel.trusted=[[\"web0\", \"web1\"]]");
  CHECK(s.channel.trusted.size() == 1);

  // A preset over the scenario as it is: its keys change, the VMs stay.
  if (!presets().empty()) {
    const auto name = presets().front().name;
    auto p = load_scenario_argument("default");
    apply_override(p, "preset=" + name);
    CHECK(p.preset == name);
    CHECK(p.vms == load_scenario_argument("default").vms);
    CHECK(without_sources(p).channel == load_scenario_argument("preset:" + name).channel);
    CHECK(override_error(p, "preset=nope").find("no preset named \"nope\"") != std::string::npos);
  }
}

TEST_CASE("override errors name the key", "[scenario]") {
  auto s = load_scenario_argument("default");
  const auto before = s;
  CHECK(override_error(s, "channel.notfy=atw") ==
        "channel.notfy: unknown key `channel.notfy`; did you mean `channel.notify`?");
  CHECK(override_error(s, "notify=atw") ==
        "notify: unknown key `notify`; did you mean `channel.notify`?");
  CHECK(override_error(s, "workload[0].mesage_bytes=1") ==
        "workload[0].mesage_bytes: unknown key `workload[0].mesage_bytes`; did you mean "
        "`workload[0].message_bytes`?");
  CHECK(override_error(s, "channel.enabled=yes") ==
        "channel.enabled: expected true or false; got \"yes\"");
  CHECK(override_error(s, "duration_s=long") == "duration_s: expected a number; got \"long\"");
  CHECK(override_error(s, "vm[0].host=-1") ==
        "vm[0].host: expected a non-negative integer; got -1");
  CHECK(override_error(s, "channel.ring_kib=99999999999") ==
        "channel.ring_kib: expected an integer at most 4294967295; got 99999999999");
  CHECK(override_error(s, "workload[9].to=a") ==
        "workload[9].to: the scenario has 4 workloads (indices 0..3)");
  CHECK(override_error(s, "workload[x].to=a") == "workload[x].to: expected workload[INDEX].to");
  CHECK(override_error(s, "costs.x=cheap") == "costs.x: expected a number; got \"cheap\"");
  CHECK(override_error(s, "channel.notify") == "channel.notify: expected KEY=VALUE");
  CHECK(override_error(s, "latency_percentiles=[1, \"a\"]") ==
        "latency_percentiles: expected an array of numbers; got \"[1, \\\"a\\\"]\"");
  CHECK(s == before); // nothing changed by a failed override

  Scenario empty;
  CHECK(override_error(empty, "workload.message_bytes=64") ==
        "workload.message_bytes: the scenario has no workloads");
}

TEST_CASE("to_toml reads back to the same scenario", "[scenario]") {
  auto s = load_scenario_argument("default");
  s.name = "round \"trip\"\twith\\escapes\nand a newline";
  s.description = "ünïcødé";
  s.duration_s = 2.5;
  s.warmup_s = 0.1;
  s.seed = 9'007'199'254'740'993; // not a double
  s.latency_percentiles = {12.5, 99.999};
  s.platform = {3, Hypervisor::kvm, GuestNic::emulated, 40, 12.25, 2.5};
  s.vms.push_back({"new", 2, 4096, 0});
  s.channel = {false, 3,     64,          NotifyPolicy::spin_then_block,     7, 33.3,
               0.1,   false, Trust::list, {{"web0", "db0"}, {"new", "web1"}}};
  s.membership = {Detection::adaptive,    20,      1.5, 2.5, 2, 2000, 0.75, 12.5, 77,
                  RacePolicy::prevention, 123.456, 0.3};
  s.pool = {true, PoolPolicy::proportional, 64, 128, 3, 12.5};
  s.costs = {{"syscall_ns", 400}, {"odd key.name", 1e-9}, {"huge", 1e300}};
  s.workloads.push_back({WorkloadKind::udp_rr, "new", "web0", 65536, 0.5, 2.0, 1234.5, 0});
  s.events.push_back({EventKind::create, 1.25, "late", 1, 256, 0});
  s.events.push_back({EventKind::shutdown, 2.0, "late", 0, 1024, 0});
  s.generators.push_back({EventKind::shutdown, 0.5, {}, 1, -1, 0});
  s.preset = "somepreset";
  s.preset_system = "Some System";
  REQUIRE(validate(s).empty());

  const auto text = to_toml(s);
  INFO(text);
  Scenario back;
  try {
    back = parse_scenario(text, "rt.toml");
  } catch (const ScenarioError& e) {
    FAIL(e.what());
  }
  CHECK(without_sources(back) == without_sources(s));
  CHECK(back.vms[0].line > 0); // lines into the written text
  CHECK(to_toml(back) == text);

  // The default scenario, and the empty one.
  const auto d = load_scenario_argument("default");
  CHECK(without_sources(parse_scenario(to_toml(d), "rt")) == without_sources(d));
  CHECK(without_sources(parse_scenario(to_toml(Scenario{}), "rt")) == without_sources(Scenario{}));
}
