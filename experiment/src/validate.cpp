// validate(): the semantic checks of a scenario (validate.hpp). Enums are valid by type; a
// value outside its set (a cast) is still reported.
#include "ivmc/experiment/validate.hpp"

#include "checker.hpp"
#include "values.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <string_view>

namespace ivmc::experiment::detail {

namespace {

// Upper bounds (scenarios/FORMAT.md "Ranges"). Times are held in int64 nanoseconds (up to
// 9.2e9 s) and in SimGrid's double clock; at 1e6 s the clock still resolves 0.2 ns, and every
// time, period and delay of a run stays well inside both.
constexpr double kMaxSeconds = 1e6;        // about 11.6 days
constexpr double kMaxRatePerS = 1e9;       // one operation per nanosecond
constexpr std::size_t kMaxHosts = 100'000; // about 2.6 KB of simulator state each
constexpr double kBytesPerHost = 2.6e3;
constexpr std::size_t kMaxVms = 1'000'000;
constexpr std::size_t kMaxRamMib = 16u << 20; // 16 TiB, more than any cloud VM
constexpr double kMinGbps = 1e-3, kMaxGbps = 1e6;

// A bound or estimate for a message: integers in full ("1000000"), others as format_number.
std::string plain(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e16) return fmt::format("{:.0f}", v);
  return format_number(v);
}

// "2.5 GB", "260 TB": a byte count for an error message.
std::string bytes_estimate(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  std::size_t u = 0;
  while (bytes >= 1000 && u + 1 < std::size(units)) {
    bytes /= 1000;
    ++u;
  }
  return fmt::format("{:.3g} {}", bytes, units[u]);
}

bool is_power_of_two(std::uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

class Checker {
public:
  explicit Checker(const Scenario& s) : s_(s) {}

  std::vector<Issue> run() {
    top();
    platform();
    vms();
    channel();
    membership();
    pool();
    costs();
    workloads();
    events();
    generators();
    return std::move(out_);
  }

private:
  void bad(std::string key, std::string what) {
    out_.push_back({std::move(key), "", std::move(what)});
  }
  // `max`: the largest value allowed (none: any finite one); `unit` names it in the message.
  void greater_than_zero(const std::string& key, double v,
                         double max = std::numeric_limits<double>::max(),
                         std::string_view why = {}) {
    if (!(v > 0) || !std::isfinite(v))
      bad(key, "expected a number > 0; got " + format_number(v));
    else
      at_most(key, v, max, why);
  }
  void at_least_zero(const std::string& key, double v,
                     double max = std::numeric_limits<double>::max(), std::string_view why = {}) {
    if (!(v >= 0) || !std::isfinite(v))
      bad(key, "expected a number >= 0; got " + format_number(v));
    else
      at_most(key, v, max, why);
  }
  void at_most(const std::string& key, double v, double max, std::string_view why) {
    if (v > max)
      bad(key, "expected at most " + plain(max) + (why.empty() ? "" : " (") + std::string(why) +
                   (why.empty() ? "" : ")") + "; got " + format_number(v));
  }
  // A time span in `per_s` units per second (1e3: ms, 1e6: us).
  void span(const std::string& key, double v, double per_s, bool zero_ok) {
    const double max = kMaxSeconds * per_s;
    const std::string why = "the longest span a run can hold: " + plain(kMaxSeconds) + " s";
    if (zero_ok)
      at_least_zero(key, v, max, why);
    else
      greater_than_zero(key, v, max, why);
  }
  void rate(const std::string& key, double v) {
    at_least_zero(key, v, kMaxRatePerS, "one per nanosecond, the clock's resolution");
  }
  void gbps(const std::string& key, double v) {
    if (!(v > 0) || !std::isfinite(v))
      bad(key, "expected a number > 0; got " + format_number(v));
    else if (v < kMinGbps || v > kMaxGbps)
      bad(key, "expected " + format_number(kMinGbps) + " to " + plain(kMaxGbps) + " Gbit/s; got " +
                   format_number(v));
  }
  // A VM's RAM: at most kMaxRamMib, and migrated within kMaxSeconds at migration_gbps.
  void ram(const std::string& key, std::size_t mib) {
    if (mib == 0) {
      bad(key, "expected at least 1 MiB; got 0");
      return;
    }
    if (mib > kMaxRamMib) {
      bad(key, "expected at most " + std::to_string(kMaxRamMib) + " MiB (16 TiB); got " +
                   std::to_string(mib));
      return;
    }
    const double gbps = s_.platform.migration_gbps;
    if (!(gbps >= kMinGbps && gbps <= kMaxGbps)) return; // reported at platform.migration_gbps
    const double copy_s = static_cast<double>(mib) * 1048576.0 * 8 / (gbps * 1e9);
    if (copy_s > kMaxSeconds)
      bad(key, std::to_string(mib) + " MiB take " + plain(std::round(copy_s)) +
                   " s to copy once at platform.migration_gbps = " + format_number(gbps) +
                   ", more than the longest run (" + plain(kMaxSeconds) +
                   " s): a migration of it could not finish");
  }
  // A value of one of the scenario's sets: only a cast can make it another.
  template <class E>
  void one_of(const std::string& key, E v) {
    for (const auto& c : choices<E>())
      if (c.value == v) return;
    bad(key, "expected one of " + choice_list<E>() + "; got " +
                 std::to_string(static_cast<unsigned long long>(v)));
  }
  void host(const std::string& key, std::size_t h) {
    if (h >= s_.platform.hosts)
      bad(key, "host " + std::to_string(h) + " does not exist (platform.hosts = " +
                   std::to_string(s_.platform.hosts) + ": hosts 0.." +
                   std::to_string(s_.platform.hosts == 0 ? 0 : s_.platform.hosts - 1) + ")");
  }
  // A time of the run: within [0, duration_s].
  void time(const std::string& key, double t) {
    if (!(t >= 0 && t <= s_.duration_s))
      bad(key, "expected a time in [0, duration_s = " + format_number(s_.duration_s) + "]; got " +
                   format_number(t));
  }
  // An interval's end: < 0 (until the end), or in (start, duration_s].
  void stop(const std::string& key, double start, double stop_s) {
    if (stop_s < 0) return;
    if (!(stop_s > start && stop_s <= s_.duration_s))
      bad(key, "expected a negative value (until duration_s) or a time in (start_s = " +
                   format_number(start) + ", duration_s = " + format_number(s_.duration_s) +
                   "]; got " + format_number(stop_s));
  }
  // A VM that exists at some point of the run (declared or created by an event).
  void known_vm(const std::string& key, const std::string& name) {
    if (name.empty())
      bad(key, "expected a VM name; got \"\"");
    else if (!known_.count(name))
      bad(key, "no VM named " + quote(name) + vm_list());
  }
  std::string vm_list() const {
    std::vector<std::string> names(known_.begin(), known_.end());
    return names.empty() ? " (the scenario has no VMs)" : " (the VMs: " + join(names) + ")";
  }

  void top() {
    if (s_.name.empty()) bad("name", "expected a non-empty name");
    span("duration_s", s_.duration_s, 1, false);
    if (!(s_.warmup_s >= 0 && s_.warmup_s < s_.duration_s))
      bad("warmup_s", "expected a time in [0, duration_s = " + format_number(s_.duration_s) +
                          "); got " + format_number(s_.warmup_s));
    if (s_.seed > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      bad("seed", "expected an integer at most 2^63-1; got " + std::to_string(s_.seed));
    for (const double p : s_.latency_percentiles)
      if (!(p > 0 && p < 100))
        bad("latency_percentiles", "expected percentiles in (0, 100); got " + format_number(p));
  }

  void platform() {
    const auto& p = s_.platform;
    if (p.hosts == 0) bad("platform.hosts", "expected at least 1 host; got 0");
    if (p.hosts > kMaxHosts)
      bad("platform.hosts",
          "expected at most " + std::to_string(kMaxHosts) + " hosts (each takes about " +
              bytes_estimate(kBytesPerHost) + " of simulator state: " + std::to_string(p.hosts) +
              " would need about " + bytes_estimate(static_cast<double>(p.hosts) * kBytesPerHost) +
              "); got " + std::to_string(p.hosts));
    one_of("platform.hypervisor", p.hypervisor);
    one_of("platform.guest_nic", p.guest_nic);
    gbps("platform.link_gbps", p.link_gbps);
    span("platform.link_latency_us", p.link_latency_us, 1e6, true);
    gbps("platform.migration_gbps", p.migration_gbps);
    if (p.hvm && p.hypervisor != Hypervisor::xen)
      bad("platform.hvm", "HVM guests are a xen setting; with kvm use platform.guest_nic");
  }

  void vms() {
    std::map<std::string, std::size_t> first;
    for (std::size_t i = 0; i < s_.vms.size(); ++i) {
      const auto& vm = s_.vms[i];
      const auto key = "vm[" + std::to_string(i) + "]";
      if (vm.name.empty())
        bad(key + ".name", "expected a non-empty VM name");
      else if (auto [it, fresh] = first.emplace(vm.name, i); !fresh)
        bad(key + ".name", "VM name " + quote(vm.name) + " is already used by vm[" +
                               std::to_string(it->second) + "]");
      host(key + ".host", vm.host);
      ram(key + ".ram_mib", vm.ram_mib);
      if (!vm.name.empty()) known_.insert(vm.name);
    }
    for (const auto& e : s_.events)
      if (e.kind == EventKind::create && !e.vm.empty()) known_.insert(e.vm);
    if (known_.size() > kMaxVms)
      bad("vm", "expected at most " + std::to_string(kMaxVms) + " VMs; got " +
                    std::to_string(known_.size()));
  }

  void channel() {
    const auto& c = s_.channel;
    if (c.layer < 1 || c.layer > 3)
      bad("channel.layer", "expected 1, 2 or 3; got " + std::to_string(c.layer));
    if (!is_power_of_two(c.ring_kib) || c.ring_kib < 4 || c.ring_kib > 65536)
      bad("channel.ring_kib",
          "expected a power of two from 4 to 65536; got " + std::to_string(c.ring_kib));
    one_of("channel.notify", c.notify);
    if (c.copies < 1 || c.copies > 2)
      bad("channel.copies", "expected 1 or 2 copies; got " + std::to_string(c.copies));
    if (c.atw_batch == 0) bad("channel.atw_batch", "expected at least 1 message; got 0");
    span("channel.atw_window_us", c.atw_window_us, 1e6, false);
    span("channel.spin_budget_us", c.spin_budget_us, 1e6, true);
    one_of("channel.trust", c.trust);
    if (c.trust == Trust::list && c.trusted.empty())
      bad("channel.trust", "trust = \"list\" needs at least one pair in channel.trusted");
    for (const auto& [a, b] : c.trusted) {
      known_vm("channel.trusted", a);
      known_vm("channel.trusted", b);
      if (a == b && !a.empty())
        bad("channel.trusted", "a pair names " + quote(a) + " twice; expected two VMs");
    }
  }

  void membership() {
    const auto& m = s_.membership;
    one_of("membership.detection", m.detection);
    span("membership.period_ms", m.period_ms, 1e3, false);
    span("membership.phase_ms", m.phase_ms, 1e3, true);
    span("membership.propagation_delay_us", m.propagation_delay_us, 1e6, true);
    span("membership.period_min_ms", m.period_min_ms, 1e3, false);
    if (!(m.period_max_ms >= m.period_min_ms) || !std::isfinite(m.period_max_ms) ||
        m.period_max_ms > kMaxSeconds * 1e3)
      bad("membership.period_max_ms",
          "expected at least period_min_ms = " + format_number(m.period_min_ms) + " and at most " +
              plain(kMaxSeconds * 1e3) + "; got " + format_number(m.period_max_ms));
    if (m.detection == Detection::adaptive &&
        !(m.period_ms >= m.period_min_ms && m.period_ms <= m.period_max_ms))
      bad("membership.period_ms",
          "adaptive: expected the initial period within [" + format_number(m.period_min_ms) + ", " +
              format_number(m.period_max_ms) + "]; got " + format_number(m.period_ms));
    span("membership.probe_worth_ms", m.probe_worth_ms, 1e3, false);
    span("membership.rate_horizon_s", m.rate_horizon_s, 1, false);
    span("membership.watch_delay_us", m.watch_delay_us, 1e6, true);
    one_of("membership.race", m.race);
    span("membership.stale_timeout_us", m.stale_timeout_us, 1e6, false);
    span("membership.probe_cost_us", m.probe_cost_us, 1e6, true);
  }

  void pool() {
    const auto& p = s_.pool;
    one_of("pool.allocation", p.allocation);
    if (p.pool_mib == 0) bad("pool.pool_mib", "expected at least 1 MiB; got 0");
    if (p.pool_mib > kMaxRamMib)
      bad("pool.pool_mib", "expected at most " + std::to_string(kMaxRamMib) +
                               " MiB (16 TiB); got " + std::to_string(p.pool_mib));
    if (!is_power_of_two(p.chunk_kib) || p.chunk_kib < 4 || p.chunk_kib > 65536)
      bad("pool.chunk_kib",
          "expected a power of two from 4 to 65536; got " + std::to_string(p.chunk_kib));
    else if (p.pool_mib != 0 && p.chunk_kib > p.pool_mib * 1024)
      bad("pool.chunk_kib", "a chunk of " + std::to_string(p.chunk_kib) +
                                " KiB is larger than the pool (" + std::to_string(p.pool_mib) +
                                " MiB)");
    if (p.max_pairs == 0)
      bad("pool.max_pairs", "expected at least 1 pair; got 0");
    else if (p.allocation == PoolPolicy::static_equal && is_power_of_two(p.chunk_kib) &&
             std::uint64_t{p.max_pairs} * p.chunk_kib > std::uint64_t{p.pool_mib} * 1024)
      bad("pool.max_pairs", std::to_string(p.max_pairs) + " pairs of at least one " +
                                std::to_string(p.chunk_kib) + " KiB chunk do not fit in " +
                                std::to_string(p.pool_mib) + " MiB");
    span("pool.rebalance_ms", p.rebalance_ms, 1e3, false);
  }

  void costs() {
    for (const auto& [name, v] : s_.costs) {
      if (name.empty()) bad("costs", "a cost without a name");
      at_least_zero("costs." + name, v);
    }
  }

  void workloads() {
    for (std::size_t i = 0; i < s_.workloads.size(); ++i) {
      const auto& w = s_.workloads[i];
      const auto key = "workload[" + std::to_string(i) + "]";
      one_of(key + ".kind", w.kind);
      known_vm(key + ".from", w.from);
      known_vm(key + ".to", w.to);
      if (w.from == w.to && !w.from.empty())
        bad(key + ".to", "a workload from " + quote(w.from) + " to itself");
      if (w.message_bytes < 16 || w.message_bytes > (64u << 20))
        bad(key + ".message_bytes",
            "expected 16 to 67108864 (64 MiB); got " + std::to_string(w.message_bytes));
      time(key + ".start_s", w.start_s);
      stop(key + ".stop_s", w.start_s, w.stop_s);
      rate(key + ".rate_per_s", w.rate_per_s);
      one_of(key + ".arrivals", w.arrivals);
    }
  }

  // Events in time order (ties in file order): a VM must exist when an event names it.
  void events() {
    std::vector<std::size_t> order(s_.events.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return s_.events[a].at_s < s_.events[b].at_s;
    });
    std::set<std::string> alive;
    for (const auto& vm : s_.vms) alive.insert(vm.name);
    std::map<std::string, double> gone; // shut down, when
    for (const std::size_t i : order) {
      const auto& e = s_.events[i];
      const auto key = "event[" + std::to_string(i) + "]";
      one_of(key + ".kind", e.kind);
      time(key + ".at_s", e.at_s);
      if (e.kind == EventKind::migrate || e.kind == EventKind::create) host(key + ".host", e.host);
      if (e.kind == EventKind::create) ram(key + ".ram_mib", e.ram_mib);
      if (e.vm.empty()) {
        bad(key + ".vm", "expected a VM name; got \"\"");
        continue;
      }
      if (e.kind == EventKind::create) {
        if (alive.count(e.vm)) bad(key + ".vm", "VM " + quote(e.vm) + " already exists");
        alive.insert(e.vm);
        gone.erase(e.vm);
      } else if (e.kind == EventKind::migrate || e.kind == EventKind::shutdown) {
        if (alive.count(e.vm)) {
          if (e.kind == EventKind::shutdown) {
            alive.erase(e.vm);
            gone[e.vm] = e.at_s;
          }
        } else if (auto g = gone.find(e.vm); g != gone.end()) {
          bad(key + ".vm",
              "VM " + quote(e.vm) + " was shut down at " + format_number(g->second) + " s");
        } else if (known_.count(e.vm)) {
          bad(key + ".vm", "VM " + quote(e.vm) + " is created only later");
        } else {
          bad(key + ".vm", "no VM named " + quote(e.vm) + vm_list());
        }
      }
    }
  }

  void generators() {
    for (std::size_t i = 0; i < s_.generators.size(); ++i) {
      const auto& g = s_.generators[i];
      const auto key = "generator[" + std::to_string(i) + "]";
      one_of(key + ".kind", g.kind);
      rate(key + ".rate_per_s", g.rate_per_s);
      time(key + ".start_s", g.start_s);
      stop(key + ".stop_s", g.start_s, g.stop_s);
      if (g.kind != EventKind::create)
        for (const auto& vm : g.vms) known_vm(key + ".vms", vm);
      if (g.kind == EventKind::migrate && s_.platform.hosts < 2)
        bad(key + ".kind", "migrate needs at least 2 hosts; platform.hosts = " +
                               std::to_string(s_.platform.hosts));
    }
  }

  const Scenario& s_;
  std::set<std::string> known_; // every VM that exists at some point
  std::vector<Issue> out_;
};

} // namespace

std::vector<Issue> check_scenario(const Scenario& s) {
  return Checker(s).run();
}

} // namespace ivmc::experiment::detail

namespace ivmc::experiment {

std::vector<ScenarioIssue> validate(const Scenario& s) {
  std::vector<ScenarioIssue> out;
  for (const auto& i : detail::check_scenario(s)) out.push_back(detail::resolve(i, s, {}));
  return out;
}

} // namespace ivmc::experiment
