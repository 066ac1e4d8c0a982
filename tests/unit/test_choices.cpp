// The scenario's choices (experiment/choices.hpp): every value's text parses back to it, other
// texts do not, and the loader and the overrides refuse them with the list of choices.
#include "ivmc/experiment/choices.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/experiment/to_toml.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

using namespace ivmc;
using namespace ivmc::experiment;

namespace {

// Every value of E: its text parses back to it; the texts are distinct, and listed in order.
template <class E>
void round_trips(std::size_t count, const std::string& list) {
  std::set<std::string_view> texts;
  std::string joined;
  for (const auto& c : choices<E>()) {
    INFO(c.text);
    CHECK(parse<E>(c.text) == c.value);
    CHECK(to_string(c.value) == c.text);
    CHECK(texts.insert(c.text).second);
    joined += (joined.empty() ? "" : ", ") + std::string(c.text);
  }
  CHECK(texts.size() == count);
  CHECK(choice_list<E>() == list);
  CHECK(joined == list);
  CHECK(!parse<E>(""));
  CHECK(!parse<E>("nonsense"));
}

} // namespace

TEST_CASE("every choice's text parses back to it", "[choices]") {
  round_trips<WorkloadKind>(4, "tcp_stream, udp_stream, tcp_rr, udp_rr");
  round_trips<Detection>(6, "static, group, periodic, adaptive, watch, sync");
  round_trips<Hypervisor>(2, "xen, kvm");
  round_trips<GuestNic>(2, "virtio, emulated");
  round_trips<Trust>(2, "open, list");
  round_trips<Arrivals>(2, "uniform, poisson");
  round_trips<EventKind>(3, "migrate, create, shutdown");
  round_trips<NotifyPolicy>(5, "polling, on_demand, per_packet, atw, spin_then_block");
  round_trips<RacePolicy>(3, "prevention, resolution, none");
  round_trips<PoolPolicy>(2, "static_equal, proportional");
}

TEST_CASE("texts are exact: no case folding, no aliases", "[choices]") {
  CHECK(!parse<WorkloadKind>("TCP_STREAM"));
  CHECK(!parse<WorkloadKind>(" tcp_stream"));
  CHECK(!parse<NotifyPolicy>("pni")); // the core's parser takes it; scenarios do not
  CHECK(!parse<Detection>("static_list"));
  CHECK(parse<Detection>("static") == Detection::static_list);
}

TEST_CASE("request/response and datagram kinds", "[choices]") {
  CHECK(!is_request_response(WorkloadKind::tcp_stream));
  CHECK(!is_request_response(WorkloadKind::udp_stream));
  CHECK(is_request_response(WorkloadKind::tcp_rr));
  CHECK(is_request_response(WorkloadKind::udp_rr));
  CHECK(!is_udp(WorkloadKind::tcp_stream));
  CHECK(is_udp(WorkloadKind::udp_stream));
  CHECK(!is_udp(WorkloadKind::tcp_rr));
  CHECK(is_udp(WorkloadKind::udp_rr));
}

TEST_CASE("an override with a text outside the choices is refused and changes nothing",
          "[choices]") {
  Scenario s = load_scenario_argument("default");
  const Scenario before = s;
  try {
    apply_override(s, "channel.notify=loud");
    FAIL("accepted");
  } catch (const ScenarioError& e) {
    REQUIRE(e.issues().size() == 1);
    CHECK(e.issues()[0].where == "channel.notify");
    CHECK(e.issues()[0].what == "expected one of polling, on_demand, per_packet, atw, "
                                "spin_then_block; got \"loud\"");
  }
  CHECK_THROWS_WITH(apply_override(s, "workload[1].kind=tcp_steam"),
                    Catch::Contains("expected one of tcp_stream, udp_stream, tcp_rr, udp_rr; got "
                                    "\"tcp_steam\""));
  CHECK(s == before);
  apply_override(s, "workload.kind=udp_rr");
  for (const auto& w : s.workloads) CHECK(w.kind == WorkloadKind::udp_rr);
  apply_override(s, "membership.detection=\"watch\"");
  CHECK(s.membership.detection == Detection::watch);
}

TEST_CASE("choices are written as their texts", "[choices]") {
  Scenario s;
  s.channel.notify = NotifyPolicy::spin_then_block;
  s.membership.detection = Detection::static_list;
  s.pool.allocation = PoolPolicy::proportional;
  const auto text = to_toml(s);
  CHECK(text.find("notify = \"spin_then_block\"") != std::string::npos);
  CHECK(text.find("detection = \"static\"") != std::string::npos);
  CHECK(text.find("allocation = \"proportional\"") != std::string::npos);
  const Scenario back = parse_scenario(text, "rt");
  CHECK(back.channel.notify == NotifyPolicy::spin_then_block);
  CHECK(back.membership.detection == Detection::static_list);
  CHECK(back.pool.allocation == PoolPolicy::proportional);
}
