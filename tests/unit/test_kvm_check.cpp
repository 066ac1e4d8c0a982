// The kvm backend's refusals (KvmBackend::check): what it cannot play is named at its file:line
// before any guest boots. No QEMU here.
#include "ivmc/kvm/kvm_backend.hpp"

#include "ivmc/backends/table.hpp"
#include "ivmc/experiment/load.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace ivmc;

namespace {

const char* const kWithEvents = R"(name = "k"
duration_s = 2
[channel]
ring_kib = 4
[[vm]]
name = "a"
host = 0
[[vm]]
name = "b"
host = 0
[[workload]]
from = "a"
to = "b"
message_bytes = 8192
[[event]]
kind = "migrate"
at_s = 1
vm = "a"
host = 1
[[generator]]
kind = "shutdown"
)";

std::string dump(const std::vector<experiment::ScenarioIssue>& issues) {
  std::string out;
  for (const auto& i : issues) out += i.where + ": " + i.what + "\n";
  return out;
}

} // namespace

TEST_CASE("kvm refuses events and oversized messages at their lines", "[backends][kvm]") {
  const auto s = experiment::parse_scenario(kWithEvents, "k.toml");
  experiment::BackendSettings settings;
  const auto kvm = backends::make_backend("kvm", settings);
  const auto issues = kvm->check(s);
  INFO(dump(issues));
  REQUIRE(issues.size() == 3);
  CHECK(issues[0].where == "k.toml:14");
  CHECK(issues[0].what.rfind("workload[0].message_bytes: 8192 B messages do not fit a 4 KiB ring",
                             0) == 0);
  CHECK(issues[1].where == "k.toml:15");
  CHECK(issues[1].what.rfind("event[0]: the kvm backend plays no [[event]]", 0) == 0);
  CHECK(issues[1].what.find("--ignore-events") != std::string::npos);
  CHECK(issues[2].where == "k.toml:20");
  CHECK(issues[2].what.rfind("generator[0]: ", 0) == 0);

  settings.ignore_events = true;
  const auto lenient = backends::make_backend("kvm", settings)->check(s);
  INFO(dump(lenient));
  REQUIRE(lenient.size() == 1);
  CHECK(lenient[0].where == "k.toml:14");
}

TEST_CASE("kvm plays the example it documents", "[backends][kvm]") {
  const auto s = experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/kvm_pair.toml");
  CHECK(backends::make_backend("kvm", {})->check(s).empty());
}
