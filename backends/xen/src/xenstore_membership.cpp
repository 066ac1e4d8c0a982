// Domains from XenStore as membership changes: see include/ivmc/xen/xenstore_membership.hpp.
#include "ivmc/xen/xenstore_membership.hpp"

#include "ivmc/posix/clock.hpp"
#include "ivmc/xen/offer_record.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <thread>

namespace ivmc::xen {

namespace {

constexpr HostId kThisHost = 0;
constexpr std::string_view kDomains = "/local/domain";

} // namespace

bool names_domain_directory(std::string_view path) {
  const std::string prefix = std::string(kDomains) + "/";
  if (path.substr(0, prefix.size()) != prefix) return false;
  std::uint32_t id = 0;
  return parse_decimal(path.substr(prefix.size()), kMaxDomainId, id);
}

XenStoreMembership::XenStoreMembership(Mode mode, Nanos period, std::string_view source_kind,
                                       const MembershipParams& params)
    : mode_(mode), period_(period) {
  topology_.add_host(kThisHost);
  source_ = make_membership_source(source_kind, topology_, params);
  if (mode_ == Mode::watch) {
    // A connection of its own: in the statically linked agent, requests on a connection that
    // holds a watch failed with EINVAL (seen with xenstored 4.17), so the reads go elsewhere.
    watch_store_ = std::make_unique<XenStore>();
    watch_store_->watch(std::string(kDomains), "domains");
  }
  const Nanos now = posix::MonotonicClock::read();
  reread(now); // the domains already there: the starting state
  next_scan_ = now + period_;
}

XenStoreMembership::~XenStoreMembership() {
  if (watch_store_) watch_store_->unwatch(std::string(kDomains), "domains");
}

std::vector<XenStoreMembership::Change> XenStoreMembership::reread(Nanos now) {
  ++reads_;
  std::set<std::uint32_t> present;
  for (const std::string& name : store_.directory(std::string(kDomains))) {
    std::uint32_t id = 0;
    if (parse_decimal(name, kMaxDomainId, id)) present.insert(id); // anything else: not a domain
  }
  std::vector<Change> changes;
  for (const std::uint32_t id : present) {
    if (domains_.count(id) != 0) continue;
    source_->on_event(topology_.create_vm(id, {id, {}, {}}, kThisHost, now));
    changes.push_back({ChangeKind::creation, id, now});
  }
  for (const std::uint32_t id : domains_) {
    if (present.count(id) != 0) continue;
    source_->on_event(topology_.shutdown_vm(id, now));
    changes.push_back({ChangeKind::shutdown, id, now});
  }
  domains_ = std::move(present);
  source_->run_due(now);
  return changes;
}

std::vector<XenStoreMembership::Change> XenStoreMembership::wait(Nanos timeout) {
  const Nanos start = posix::MonotonicClock::read();
  const Nanos deadline = start + timeout;
  for (;;) {
    const Nanos now = posix::MonotonicClock::read();
    if (mode_ == Mode::scan) {
      if (now >= next_scan_) {
        next_scan_ = std::max(next_scan_ + period_, now + 1); // a late scan does not pile up
        return reread(now);
      }
      const Nanos until = std::min(deadline, next_scan_);
      if (until <= now) return {};
      std::this_thread::sleep_for(std::chrono::nanoseconds(until - now));
      if (until == deadline && deadline < next_scan_) return {};
      continue;
    }
    if (now >= deadline) return {};
    pollfd p{watch_store_->fd(), POLLIN, 0};
    const Nanos left = deadline - now;
    const timespec ts{static_cast<time_t>(left / 1'000'000'000),
                      static_cast<long>(left % 1'000'000'000)};
    const int n = ::ppoll(&p, 1, &ts, nullptr);
    if (n < 0 && errno != EINTR) return {};
    bool relevant = false;
    while (auto event = watch_store_->next_event()) {
      relevant |= names_domain_directory(event->first);
    }
    if (relevant) {
      std::vector<Change> changes = reread(posix::MonotonicClock::read());
      if (!changes.empty()) return changes;
    }
  }
}

} // namespace ivmc::xen
