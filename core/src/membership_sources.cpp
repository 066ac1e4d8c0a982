#include "ivmc/core/membership_sources.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace ivmc {

std::string_view to_string(ChangeKind k) {
  switch (k) {
  case ChangeKind::migration_in:
    return "migration_in";
  case ChangeKind::creation:
    return "creation";
  case ChangeKind::migration_out:
    return "migration_out";
  case ChangeKind::shutdown:
    return "shutdown";
  }
  return "?";
}

namespace {

std::vector<VmId> without(const std::vector<VmId>& sorted, VmId vm) {
  std::vector<VmId> out;
  out.reserve(sorted.size());
  for (VmId v : sorted)
    if (v != vm) out.push_back(v);
  return out;
}

std::string event_text(const TopologyEvent& e) {
  switch (e.kind) {
  case TopologyEvent::Kind::create:
    return "create VM " + std::to_string(e.vm) + " on host " + std::to_string(e.to);
  case TopologyEvent::Kind::shutdown:
    return "shutdown VM " + std::to_string(e.vm) + " on host " + std::to_string(e.from);
  case TopologyEvent::Kind::migrate:
    return "migrate VM " + std::to_string(e.vm) + " from host " + std::to_string(e.from) +
           " to host " + std::to_string(e.to);
  }
  return "?";
}

} // namespace

// ---------------------------------------------------------------------------------------------
// ViewKeepingSource

bool ViewKeepingSource::believes_co_resident(VmId observer, VmId peer) const {
  auto it = views_.find(observer);
  if (it == views_.end()) return false;
  return std::binary_search(it->second.peers.begin(), it->second.peers.end(), peer);
}

std::uint64_t ViewKeepingSource::view_version(VmId observer) const {
  auto it = views_.find(observer);
  return it == views_.end() ? 0 : it->second.version;
}

void ViewKeepingSource::subscribe(ViewChanged callback) {
  subscribers_.push_back(std::move(callback));
}

std::vector<VmId> ViewKeepingSource::view_of(VmId observer) const {
  auto it = views_.find(observer);
  return it == views_.end() ? std::vector<VmId>{} : it->second.peers;
}

ViewKeepingSource::Change ViewKeepingSource::record_change(const TopologyEvent& e) {
  if (e.time < last_event_)
    throw std::invalid_argument(std::string(name()) + ": event '" + event_text(e) +
                                "' at t=" + std::to_string(e.time) +
                                " is before the previous one at t=" + std::to_string(last_event_));
  // Observers are read from the topology, so it must show this event and nothing later.
  bool matches = false;
  switch (e.kind) {
  case TopologyEvent::Kind::create:
    matches = topology_.has_vm(e.vm) && topology_.host_of(e.vm) == e.to;
    break;
  case TopologyEvent::Kind::migrate:
    matches = e.from != e.to && topology_.has_vm(e.vm) && topology_.host_of(e.vm) == e.to &&
              topology_.has_host(e.from);
    break;
  case TopologyEvent::Kind::shutdown:
    matches = !topology_.has_vm(e.vm) && topology_.has_host(e.from);
    break;
  }
  if (!matches)
    throw std::logic_error(std::string(name()) + ": event '" + event_text(e) +
                           "' does not match the topology; report each event right after "
                           "applying it");

  Change c;
  c.event = e;
  c.index = changes_++;
  c.first = records_end();
  auto add = [&](ChangeKind kind, VmId observer) {
    pending_[observer].push_back(records_end());
    records_.push_back(NotificationRecord{c.index, kind, e.vm, observer, e.time, kNever});
    pending_state_.push_back(1);
  };
  if (e.kind != TopologyEvent::Kind::create) {
    auto kind =
        e.kind == TopologyEvent::Kind::shutdown ? ChangeKind::shutdown : ChangeKind::migration_out;
    for (VmId o : topology_.vms_on(e.from)) add(kind, o);
  }
  if (e.kind != TopologyEvent::Kind::shutdown) {
    bool created = e.kind == TopologyEvent::Kind::create;
    c.arrival_peers = without(topology_.vms_on(e.to), e.vm);
    for (VmId o : c.arrival_peers)
      add(created ? ChangeKind::creation : ChangeKind::migration_in, o);
    if (created) {
      add(ChangeKind::creation, e.vm);
    } else {
      add(ChangeKind::migration_out, e.vm);
      add(ChangeKind::migration_in, e.vm);
    }
  } else if (auto it = pending_.find(e.vm); it != pending_.end()) {
    // A VM that is gone learns nothing more: its windows stay open (t_notified = kNever).
    for (std::size_t i : it->second) pending_state_[i - base_] = 0;
    pending_.erase(it);
  }
  c.last = records_end();
  last_event_ = e.time;
  return c;
}

void ViewKeepingSource::init_views_from_topology() {
  for (HostId h : topology_.hosts()) {
    auto residents = topology_.vms_on(h);
    for (VmId v : residents) set_initial_view(v, without(residents, v));
  }
}

void ViewKeepingSource::set_initial_view(VmId observer, std::vector<VmId> peers) {
  views_[observer].peers = std::move(peers);
}

void ViewKeepingSource::reset_view(VmId vm) {
  // The version is kept, so it keeps growing across an id's lives.
  if (auto it = views_.find(vm); it != views_.end()) it->second.peers.clear();
}

void ViewKeepingSource::mark_notified(std::size_t n, Nanos now) {
  if (!pending(n)) return; // retired records are never pending
  pending_state_[n - base_] = 0;
  NotificationRecord& r = record(n);
  r.t_notified = now;
  auto it = pending_.find(r.observer);
  if (it == pending_.end()) return;
  auto& list = it->second;
  if (auto pos = std::find(list.begin(), list.end(), n); pos != list.end()) list.erase(pos);
}

void ViewKeepingSource::notify_pending(VmId observer, std::uint64_t before_change, Nanos now) {
  auto it = pending_.find(observer);
  if (it == pending_.end()) return;
  auto& list = it->second;
  std::size_t n = 0;
  while (n < list.size() && record(list[n]).change < before_change) {
    pending_state_[list[n] - base_] = 0; // pending records are never retired
    record(list[n]).t_notified = now;
    ++n;
  }
  list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(n));
}

std::size_t ViewKeepingSource::retire_records_before(std::size_t end, const RecordSink& retire) {
  const std::size_t stop = std::min(end, records_end());
  std::size_t n = base_;
  while (n < stop && !pending(n)) {
    if (retire) retire(record(n));
    ++n;
  }
  // What is kept is what is still open: moving it to the front is cheap next to the records
  // that leave (a run with nothing to retire moves nothing).
  const auto gone = static_cast<std::ptrdiff_t>(n - base_);
  if (gone == 0) return 0;
  records_.erase(records_.begin(), records_.begin() + gone);
  pending_state_.erase(pending_state_.begin(), pending_state_.begin() + gone);
  base_ = n;
  return static_cast<std::size_t>(gone);
}

std::size_t ViewKeepingSource::deliver(const Change& c, Nanos now) {
  std::size_t delivered = 0;
  for (std::size_t i = std::max(c.first, base_); i < c.last; ++i) { // retired: not pending
    if (!pending(i)) continue;
    const NotificationRecord& r = record(i);
    if (r.observer == r.subject) {
      set_view(r.observer, c.arrival_peers, now);
    } else if (r.kind == ChangeKind::migration_out || r.kind == ChangeKind::shutdown) {
      remove_peer(r.observer, r.subject, now);
    } else {
      add_peer(r.observer, r.subject, now);
    }
    mark_notified(i, now);
    ++delivered;
  }
  return delivered;
}

void ViewKeepingSource::set_view(VmId observer, std::vector<VmId> peers, Nanos now) {
  auto& v = views_[observer];
  if (v.peers == peers) return;
  v.peers = std::move(peers);
  view_changed(observer, now);
}

void ViewKeepingSource::add_peer(VmId observer, VmId peer, Nanos now) {
  auto& peers = views_[observer].peers;
  auto pos = std::lower_bound(peers.begin(), peers.end(), peer);
  if (pos != peers.end() && *pos == peer) return;
  peers.insert(pos, peer);
  view_changed(observer, now);
}

void ViewKeepingSource::remove_peer(VmId observer, VmId peer, Nanos now) {
  auto& peers = views_[observer].peers;
  auto pos = std::lower_bound(peers.begin(), peers.end(), peer);
  if (pos == peers.end() || *pos != peer) return;
  peers.erase(pos);
  view_changed(observer, now);
}

void ViewKeepingSource::view_changed(VmId observer, Nanos now) {
  ++views_[observer].version;
  for (const auto& cb : subscribers_) cb(observer, now);
}

// ---------------------------------------------------------------------------------------------
// StaticListSource

StaticListError::StaticListError(std::string file, std::size_t line, const std::string& what)
    : std::runtime_error(file + ":" + std::to_string(line) + ": " + what), file_(std::move(file)),
      line_(line) {}

namespace {

bool parse_id(std::string_view token, std::uint32_t& out) {
  if (token.empty() || token.size() > 10) return false;
  std::uint64_t v = 0;
  for (char ch : token) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  if (v > 0xFFFFFFFFull) return false;
  out = static_cast<std::uint32_t>(v);
  return true;
}

bool is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\r';
}

std::string_view next_token(std::string_view& rest) {
  std::size_t b = 0;
  while (b < rest.size() && is_space(rest[b])) ++b;
  std::size_t e = b;
  while (e < rest.size() && !is_space(rest[e]) && rest[e] != ':') ++e;
  if (e == b && e < rest.size()) ++e; // a lone ':'
  auto token = rest.substr(b, e - b);
  rest.remove_prefix(e);
  return token;
}

std::string quoted(std::string_view token) {
  return token.empty() ? std::string("end of line") : "'" + std::string(token) + "'";
}

} // namespace

std::unique_ptr<StaticListSource>
StaticListSource::from_string(std::string_view text, const Topology& topology, std::string origin) {
  std::unique_ptr<StaticListSource> src(new StaticListSource(topology));
  std::unordered_map<HostId, std::vector<VmId>> lists;
  std::unordered_map<HostId, std::size_t> host_line;
  std::unordered_map<VmId, std::size_t> vm_line;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);

    auto fail = [&](const std::string& what) -> StaticListError {
      return StaticListError(origin, line_no, what);
    };
    std::string_view rest = line;
    auto word = next_token(rest);
    if (word.empty()) continue; // blank or comment-only
    if (word != "host") throw fail("expected 'host <id>: <vm> ...', got " + quoted(word));
    HostId host = 0;
    auto id = next_token(rest);
    if (!parse_id(id, host)) throw fail("expected a host id after 'host', got " + quoted(id));
    auto colon = next_token(rest);
    if (colon != ":")
      throw fail("expected ':' after host " + std::to_string(host) + ", got " + quoted(colon));
    if (auto [it, fresh] = host_line.emplace(host, line_no); !fresh)
      throw fail("host " + std::to_string(host) + " is already listed at line " +
                 std::to_string(it->second));
    auto& list = lists[host];
    for (auto token = next_token(rest); !token.empty(); token = next_token(rest)) {
      VmId vm = 0;
      if (!parse_id(token, vm)) throw fail("expected a VM id, got " + quoted(token));
      if (auto [it, fresh] = vm_line.emplace(vm, line_no); !fresh)
        throw fail("VM " + std::to_string(vm) + " is already listed at line " +
                   std::to_string(it->second));
      list.push_back(vm);
      src->listed_.emplace(vm, host);
    }
  }
  for (auto& [host, list] : lists) {
    std::sort(list.begin(), list.end());
    for (VmId v : list) src->set_initial_view(v, without(list, v));
  }
  return src;
}

std::unique_ptr<StaticListSource> StaticListSource::from_file(const std::string& path,
                                                              const Topology& topology) {
  std::ifstream in(path);
  if (!in) throw StaticListError(path, 0, "cannot open the static co-residency list");
  std::ostringstream text;
  text << in.rdbuf();
  return from_string(text.str(), topology, path);
}

std::optional<HostId> StaticListSource::listed_host(VmId vm) const {
  auto it = listed_.find(vm);
  if (it == listed_.end()) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// GroupRegistrationSource

void GroupRegistrationSource::on_event(const TopologyEvent& e) {
  Change c = record_change(e);
  auto& pending = pending_by_subject_[e.vm];
  for (std::size_t i = c.first; i < c.last; ++i) pending.push_back(i);
  if (e.kind == TopologyEvent::Kind::shutdown) {
    leave(e.vm, e.time);
    settle(e.vm, e.time);
  }
  // A creation or migration changes nothing in the group table: views stay as they were until
  // the subject registers from its (new) host.
}

void GroupRegistrationSource::leave(VmId vm, Nanos now) {
  auto it = registered_.find(vm);
  if (it == registered_.end()) return;
  auto key = Key{it->second.group, it->second.host};
  registered_.erase(it);
  auto& members = members_[key];
  members.erase(std::remove(members.begin(), members.end(), vm), members.end());
  for (VmId m : members) view_changed(m, now);
  if (members.empty()) members_.erase(key);
}

void GroupRegistrationSource::settle(VmId vm, Nanos now) {
  auto it = pending_by_subject_.find(vm);
  if (it == pending_by_subject_.end()) return;
  for (std::size_t i : it->second) mark_notified(i, now);
  pending_by_subject_.erase(it);
}

void GroupRegistrationSource::register_vm(VmId vm, GroupId group, Nanos now) {
  HostId host = topology().host_of(vm); // throws for an unknown VM
  count_probes(1);
  auto old = registered_.find(vm);
  bool same = old != registered_.end() && old->second.group == group && old->second.host == host;
  if (!same) {
    leave(vm, now);
    auto& members = members_[Key{group, host}];
    for (VmId m : members) view_changed(m, now);
    members.insert(std::lower_bound(members.begin(), members.end(), vm), vm);
    registered_[vm] = Registration{group, host};
    view_changed(vm, now);
  }
  settle(vm, now);
}

void GroupRegistrationSource::deregister_vm(VmId vm, Nanos now) {
  if (!registered_.count(vm)) return;
  leave(vm, now);
  view_changed(vm, now);
}

std::optional<GroupRegistrationSource::Registration>
GroupRegistrationSource::registration(VmId vm) const {
  auto it = registered_.find(vm);
  if (it == registered_.end()) return std::nullopt;
  return it->second;
}

bool GroupRegistrationSource::believes_co_resident(VmId observer, VmId peer) const {
  if (observer == peer) return false;
  auto a = registered_.find(observer), b = registered_.find(peer);
  if (a == registered_.end() || b == registered_.end()) return false;
  return a->second.group == b->second.group && a->second.host == b->second.host;
}

std::vector<VmId> GroupRegistrationSource::view_of(VmId observer) const {
  auto it = registered_.find(observer);
  if (it == registered_.end()) return {};
  auto m = members_.find(Key{it->second.group, it->second.host});
  return m == members_.end() ? std::vector<VmId>{} : without(m->second, observer);
}

// ---------------------------------------------------------------------------------------------
// ScanningSource

namespace {

Nanos floor_div(Nanos a, Nanos b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

Nanos mod(Nanos a, Nanos b) {
  return a - floor_div(a, b) * b;
}

} // namespace

ScanningSource::ScanningSource(const Topology& topology, Nanos initial_period, Nanos phase,
                               Nanos phase_step, Nanos propagation_delay)
    : ViewKeepingSource(topology), initial_period_(initial_period), phase_(phase),
      phase_step_(phase_step), delay_(propagation_delay) {
  if (initial_period <= 0) throw std::invalid_argument("scan period must be > 0");
  if (propagation_delay < 0) throw std::invalid_argument("propagation delay must be >= 0");
  init_views_from_topology();
  for (HostId h : topology.hosts()) scanner(h, topology.last_event_time());
}

Nanos ScanningSource::grid_at_or_after(HostId host, Nanos period, Nanos t) const {
  // host * phase_step mod period, by doubling: no overflow for any period.
  Nanos step = mod(phase_step_, period), offset = mod(phase_, period);
  for (std::uint64_t h = host; h != 0; h >>= 1) {
    if (h & 1) offset = mod(offset + step - period, period);
    step = mod(step + step - period, period);
  }
  return offset + (floor_div(t - offset - 1, period) + 1) * period;
}

ScanningSource::Scanner& ScanningSource::scanner(HostId host, Nanos t) {
  auto [it, fresh] = scanners_.try_emplace(host);
  if (fresh) {
    it->second.due = grid_at_or_after(host, initial_period_, t);
    it->second.last_scan = it->second.due - initial_period_;
    queue_.emplace(it->second.due, host);
  }
  return it->second;
}

Nanos ScanningSource::next_scan(HostId host) const {
  auto it = scanners_.find(host);
  return it == scanners_.end() ? kNever : it->second.due;
}

void ScanningSource::on_event(const TopologyEvent& e) {
  record_change(e);
  if (e.kind != TopologyEvent::Kind::migrate) reset_view(e.vm);
  auto touch = [&](HostId h) {
    auto& s = scanner(h, e.time);
    ++s.changes;
    s.dirty = true;
  };
  if (e.kind != TopologyEvent::Kind::create) touch(e.from);
  if (e.kind != TopologyEvent::Kind::shutdown) touch(e.to);
}

Nanos ScanningSource::next_due() const {
  Nanos due = queue_.empty() ? kNever : queue_.top().first;
  if (!deliveries_.empty()) due = std::min(due, deliveries_.front().due);
  return due;
}

void ScanningSource::run_due(Nanos now) {
  for (;;) {
    Nanos scan_due = queue_.empty() ? kNever : queue_.top().first;
    Nanos delivery_due = deliveries_.empty() ? kNever : deliveries_.front().due;
    if (std::min(scan_due, delivery_due) > now) return;
    if (delivery_due <= scan_due) {
      Delivery d = std::move(deliveries_.front());
      deliveries_.pop_front();
      refresh(d.host, d.residents, d.before_change, now);
    } else {
      HostId host = queue_.top().second;
      queue_.pop();
      scan(host, now);
    }
  }
}

void ScanningSource::scan(HostId host, Nanos now) {
  Scanner& s = scanners_.at(host);
  ++scans_;
  count_probes(topology().vm_count(host));
  if (s.dirty) {
    // Nothing changed on a clean host, so its views already are the truth.
    s.dirty = false;
    auto residents = topology().vms_on(host);
    if (delay_ == 0)
      refresh(host, residents, changes(), now);
    else
      deliveries_.push_back(Delivery{now + delay_, host, std::move(residents), changes()});
  }
  Nanos next = after_scan(host, s.changes, std::max<Nanos>(now - s.last_scan, 1), now);
  s.changes = 0;
  s.last_scan = now;
  s.due = std::max(next, now + 1);
  queue_.emplace(s.due, host);
}

void ScanningSource::refresh(HostId host, const std::vector<VmId>& residents,
                             std::uint64_t before_change, Nanos now) {
  for (VmId v : residents) {
    // The advertisement goes to the host's VMs: one that left (or died) meanwhile misses it.
    if (!topology().has_vm(v) || topology().host_of(v) != host) continue;
    set_view(v, without(residents, v), now);
    notify_pending(v, before_change, now);
  }
}

PeriodicScanSource::PeriodicScanSource(const Topology& topology, Nanos period, Nanos phase,
                                       Nanos propagation_delay, Nanos phase_step)
    : ScanningSource(topology, period, phase, phase_step, propagation_delay), period_(period) {}

Nanos PeriodicScanSource::after_scan(HostId host, std::uint64_t, Nanos, Nanos now) {
  return grid_at_or_after(host, period_, now + 1);
}

// ---------------------------------------------------------------------------------------------
// AdaptiveScanSource

namespace {

AdaptiveScanSource::Params checked(AdaptiveScanSource::Params p) {
  if (p.period_min <= 0 || p.period_max < p.period_min)
    throw std::invalid_argument("adaptive scan: need 0 < period_min <= period_max");
  if (p.probe_worth <= 0) throw std::invalid_argument("adaptive scan: probe_worth must be > 0");
  if (p.horizon <= 0) throw std::invalid_argument("adaptive scan: horizon must be > 0");
  p.initial_period = std::clamp(p.initial_period, p.period_min, p.period_max);
  return p;
}

} // namespace

AdaptiveScanSource::AdaptiveScanSource(const Topology& topology, Params params)
    : ScanningSource(topology, checked(params).initial_period, params.phase, params.phase_step,
                     params.propagation_delay),
      params_(checked(params)) {}

Nanos AdaptiveScanSource::after_scan(HostId host, std::uint64_t changes, Nanos interval,
                                     Nanos now) {
  const double c = static_cast<double>(params_.probe_worth);
  const double horizon = static_cast<double>(params_.horizon);
  auto [it, fresh] = estimates_.try_emplace(host);
  Estimate& e = it->second;
  if (fresh) { // as if the last horizon had shown the rate the initial period is optimal for
    const double t0 = static_cast<double>(params_.initial_period);
    e.elapsed = horizon;
    e.changes = 2 * c / (t0 * t0) * horizon;
  }
  const double f = std::exp(-static_cast<double>(interval) / horizon);
  e.changes = f * e.changes + static_cast<double>(changes);
  e.elapsed = f * e.elapsed + static_cast<double>(interval);
  const double rate = e.changes / e.elapsed;
  const double lo = static_cast<double>(params_.period_min);
  const double hi = static_cast<double>(params_.period_max);
  const double t = rate > 0 ? std::clamp(std::sqrt(2 * c / rate), lo, hi) : hi;
  e.period = static_cast<Nanos>(std::llround(t));
  return now + e.period;
}

Nanos AdaptiveScanSource::period(HostId host) const {
  auto it = estimates_.find(host);
  return it == estimates_.end() ? params_.initial_period : it->second.period;
}

double AdaptiveScanSource::rate_per_second(HostId host) const {
  auto it = estimates_.find(host);
  if (it == estimates_.end()) {
    const double t0 = static_cast<double>(params_.initial_period);
    return 2 * static_cast<double>(params_.probe_worth) / (t0 * t0) * 1e9;
  }
  return it->second.changes / it->second.elapsed * 1e9;
}

// ---------------------------------------------------------------------------------------------
// EventWatchSource, SynchronousSource

EventWatchSource::EventWatchSource(const Topology& topology, Nanos delay)
    : ViewKeepingSource(topology), delay_(delay) {
  if (delay < 0) throw std::invalid_argument("watch: delay must be >= 0");
  init_views_from_topology();
}

void EventWatchSource::on_event(const TopologyEvent& e) {
  Change c = record_change(e);
  if (e.kind != TopologyEvent::Kind::migrate) reset_view(e.vm);
  queue_.push_back(std::move(c));
}

Nanos EventWatchSource::next_due() const {
  return queue_.empty() ? kNever : queue_.front().event.time + delay_;
}

void EventWatchSource::run_due(Nanos now) {
  while (!queue_.empty() && queue_.front().event.time + delay_ <= now) {
    count_probes(deliver(queue_.front(), now));
    queue_.pop_front();
  }
}

SynchronousSource::SynchronousSource(const Topology& topology) : ViewKeepingSource(topology) {
  init_views_from_topology();
}

void SynchronousSource::on_event(const TopologyEvent& e) {
  Change c = record_change(e);
  if (e.kind != TopologyEvent::Kind::migrate) reset_view(e.vm);
  count_probes(deliver(c, e.time));
}

// ---------------------------------------------------------------------------------------------
// Factory

namespace {
constexpr std::string_view kKinds[] = {"static", "group", "periodic", "adaptive", "watch", "sync"};
}

std::span<const std::string_view> membership_source_kinds() {
  return kKinds;
}

std::unique_ptr<MembershipSource>
make_membership_source(std::string_view kind, const Topology& topology, const MembershipParams& p) {
  if (kind == "static")
    return p.static_list_path.empty() ? StaticListSource::from_string(p.static_list_text, topology)
                                      : StaticListSource::from_file(p.static_list_path, topology);
  if (kind == "group") return std::make_unique<GroupRegistrationSource>(topology);
  if (kind == "periodic")
    return std::make_unique<PeriodicScanSource>(topology, p.period, p.phase, p.propagation_delay,
                                                p.phase_step);
  if (kind == "adaptive") {
    AdaptiveScanSource::Params a;
    a.period_min = p.period_min;
    a.period_max = p.period_max;
    a.initial_period = p.period;
    a.probe_worth = p.probe_worth;
    a.horizon = p.horizon;
    a.phase = p.phase;
    a.phase_step = p.phase_step;
    a.propagation_delay = p.propagation_delay;
    return std::make_unique<AdaptiveScanSource>(topology, a);
  }
  if (kind == "watch") return std::make_unique<EventWatchSource>(topology, p.watch_delay);
  if (kind == "sync") return std::make_unique<SynchronousSource>(topology);
  std::string names;
  for (auto k : kKinds) names += (names.empty() ? "" : ", ") + std::string(k);
  throw std::invalid_argument("unknown membership source '" + std::string(kind) +
                              "' (expected one of: " + names + ")");
}

// ---------------------------------------------------------------------------------------------
// RaceWindows

namespace {
// The source's records addressed by record number (records()[0] is number record_base()).
// Only numbers the index holds are read, and the source never retires those
// (oldest_remembered()).
struct Numbered {
  const NotificationRecord* kept;
  std::size_t base;
  const NotificationRecord& operator[](std::size_t n) const { return kept[n - base]; }
};
Numbered numbered(const MembershipSource& source) {
  return {source.records().data(), source.record_base()};
}
} // namespace

std::size_t RaceWindows::oldest_remembered() const {
  index();
  if (!forget_) return 0;                          // any-time queries may read every record
  return live_.empty() ? indexed_ : live_.front(); // live_ is in record order
}

void RaceWindows::index() const {
  const auto& records = source_.records();
  const std::size_t base = source_.record_base(); // at most indexed_: see oldest_remembered()
  for (; indexed_ < base + records.size(); ++indexed_) {
    const auto& r = records[indexed_ - base];
    by_pair_[Key{r.observer, r.subject}].push_back(indexed_);
    if (r.observer != r.subject) by_change_observer_[Key{r.change, r.observer}] = indexed_;
    if (forget_) live_.push_back(indexed_);
  }
}

void RaceWindows::forget_closed(Nanos now) const {
  if (live_.size() < std::max<std::size_t>(64, 2 * live_after_pass_)) return;
  const Numbered records = numbered(source_);
  // A change's records are contiguous in records() (record_change appends them together), so
  // they are neighbours in live_. A change goes only when every one of them is closed: an open
  // record of observer X about its own change still needs the other observers' records of it.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < live_.size();) {
    std::size_t j = i;
    bool closed = true;
    for (; j < live_.size() && records[live_[j]].change == records[live_[i]].change; ++j) {
      closed = closed && records[live_[j]].t_notified <= now;
    }
    for (std::size_t k = i; k < j; ++k) {
      if (!closed) {
        live_[kept++] = live_[k];
        continue;
      }
      const auto& r = records[live_[k]];
      // Closed windows of one pair are a prefix of its list (records of one pair are notified
      // in change order), so removing them keeps the list's walk in open() unchanged.
      auto pair = by_pair_.find(Key{r.observer, r.subject});
      auto& list = pair->second;
      list.erase(std::find(list.begin(), list.end(), live_[k]));
      if (list.empty()) by_pair_.erase(pair);
      if (r.observer != r.subject) by_change_observer_.erase(Key{r.change, r.observer});
    }
    i = j;
  }
  live_.resize(kept);
  live_after_pass_ = kept;
}

std::optional<ChangeKind> RaceWindows::in_race_window(VmId observer, VmId subject,
                                                      Nanos now) const {
  if (const auto w = open_window(observer, subject, now)) return w->kind;
  return std::nullopt;
}

std::optional<RaceWindows::OpenWindow> RaceWindows::open_window(VmId observer, VmId subject,
                                                                Nanos now) const {
  if (observer == subject) return std::nullopt;
  index();
  if (forget_) forget_closed(now);
  const Numbered records = numbered(source_);
  // One pair's records are notified in change order, so walking back from the latest change
  // at or before `now`, the first closed window means every earlier one is closed too.
  auto open = [&](const std::vector<std::size_t>& list,
                  auto&& accept) -> std::optional<std::pair<std::uint64_t, ChangeKind>> {
    auto end = std::upper_bound(list.begin(), list.end(), now,
                                [&](Nanos t, std::size_t i) { return t < records[i].t_event; });
    for (auto it = end; it != list.begin();) {
      const auto& r = records[*--it];
      if (r.t_notified <= now) break;
      if (auto kind = accept(r)) return std::pair{r.change, *kind};
    }
    return std::nullopt;
  };
  std::optional<std::pair<std::uint64_t, ChangeKind>> best;
  if (auto it = by_pair_.find(Key{observer, subject}); it != by_pair_.end())
    best = open(it->second, [](const NotificationRecord& r) { return std::optional(r.kind); });
  if (auto it = by_pair_.find(Key{observer, observer}); it != by_pair_.end()) {
    // observer's own creation/migration: stale about subject only if subject saw it too, from
    // the matching side (on the old host: migration_out; on the new one: migration_in).
    auto own = open(it->second, [&](const NotificationRecord& r) -> std::optional<ChangeKind> {
      auto s = by_change_observer_.find(Key{r.change, subject});
      if (s == by_change_observer_.end() || records[s->second].kind != r.kind) return std::nullopt;
      return r.kind;
    });
    if (own && (!best || own->first > best->first)) best = own;
  }
  if (!best) return std::nullopt;
  return OpenWindow{best->first, best->second};
}

// ---------------------------------------------------------------------------------------------
// Statistics

NotificationSummary summarise(std::span<const NotificationRecord> records) {
  NotificationSummary s;
  std::array<double, 4> sum{};
  double all_sum = 0;
  for (const auto& r : records) {
    auto& k = s.by_kind[static_cast<std::size_t>(r.kind)];
    ++k.records;
    ++s.all.records;
    if (r.t_notified == kNever) continue;
    Nanos latency = r.t_notified - r.t_event;
    ++k.notified;
    ++s.all.notified;
    sum[static_cast<std::size_t>(r.kind)] += static_cast<double>(latency);
    all_sum += static_cast<double>(latency);
    k.max = std::max(k.max, latency);
    s.all.max = std::max(s.all.max, latency);
  }
  for (std::size_t i = 0; i < 4; ++i)
    if (s.by_kind[i].notified)
      s.by_kind[i].mean = sum[i] / static_cast<double>(s.by_kind[i].notified);
  if (s.all.notified) s.all.mean = all_sum / static_cast<double>(s.all.notified);
  return s;
}

} // namespace ivmc
