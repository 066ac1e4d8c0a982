// See view_service.hpp.
#include "view_service.hpp"

#include "ivmc/posix/clock.hpp"
#include "ivmc/xen/offer_record.hpp"
#include "link_follow.hpp"

#include <cstdio>

namespace ivmc::xen {

ViewService::ViewService(std::map<std::string, Vm> vms, Learning learning, Nanos period)
    : learning_(learning), period_(period), vms_(std::move(vms)) {
  if (learning_ != Learning::sync)
    membership_ = std::make_unique<XenStoreMembership>(learning_ == Learning::scan
                                                           ? XenStoreMembership::Mode::scan
                                                           : XenStoreMembership::Mode::watch,
                                                       period_);
  {
    std::lock_guard lock(mutex_);
    write_views();
  }
  if (membership_) thread_ = std::thread([this] { run(); });
}

ViewService::~ViewService() {
  stop_.store(true, std::memory_order_relaxed); // relaxed: polled every 100 ms at most
  if (thread_.joinable()) thread_.join();
}

void ViewService::moving(const std::string& name, std::size_t host) {
  std::lock_guard lock(mutex_);
  next_host_[name] = host;
}

void ViewService::learn_now(const std::string& name, std::uint32_t domid) {
  std::lock_guard lock(mutex_);
  auto it = vms_.find(name);
  if (it == vms_.end()) return;
  it->second.domid = domid;
  if (auto h = next_host_.find(name); h != next_host_.end()) it->second.host = h->second;
  write_views();
}

Nanos ViewService::view_written_at(std::uint32_t domid) const {
  std::lock_guard lock(mutex_);
  const auto it = first_written_.find(domid);
  return it == first_written_.end() ? kNever : it->second;
}

std::uint64_t ViewService::writes() const {
  std::lock_guard lock(mutex_);
  return version_;
}

void ViewService::run() {
  while (!stop_.load(std::memory_order_relaxed)) { // relaxed: see the destructor
    std::vector<XenStoreMembership::Change> changes;
    try {
      changes = membership_->wait(100'000'000);
    } catch (const std::exception& e) {
      std::printf("IVMC-WARN view service: %s\n", e.what());
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    reads_.store(membership_->directory_reads(), std::memory_order_relaxed); // relaxed: a count
    if (changes.empty()) continue;
    std::lock_guard lock(mutex_);
    for (const auto& c : changes) {
      if (c.kind == ChangeKind::creation)
        on_created(c.domid);
      else
        on_gone(c.domid);
    }
    write_views();
  }
}

void ViewService::on_created(std::uint32_t domid) {
  // The toolstack's name for the domain (the domain may not write it); bounded and checked
  // against the trust list before it means anything.
  std::optional<std::string> name;
  try {
    name = store_.read("/local/domain/" + std::to_string(domid) + "/name", 64);
  } catch (const std::exception&) {
    return;
  }
  if (!name) return;
  auto it = vms_.find(*name);
  if (it == vms_.end()) return; // not trusted: never in a view
  it->second.domid = domid;
  if (auto h = next_host_.find(*name); h != next_host_.end()) it->second.host = h->second;
}

void ViewService::on_gone(std::uint32_t domid) {
  for (auto& [name, vm] : vms_)
    if (vm.domid == domid) vm.domid = 0;
}

void ViewService::write_views() {
  ++version_;
  const Nanos now = posix::MonotonicClock::read();
  for (const auto& [name, vm] : vms_) {
    if (vm.domid == 0) continue;
    std::string text = std::to_string(version_);
    for (const auto& [other, o] : vms_)
      if (other != name && o.domid != 0 && o.host == vm.host)
        text += " " + other + ":" + std::to_string(o.domid);
    // Only the co-resident set matters to the domain; the version alone changing is no news.
    const std::string set =
        text.substr(text.find(' ') == std::string::npos ? text.size() : text.find(' '));
    const auto old = written_.find(vm.domid);
    if (old != written_.end() && old->second == set) continue;
    try {
      const std::string path = view_key(vm.domid);
      store_.write(path, text);
      store_.set_owner_and_reader(path, 0, vm.domid);
    } catch (const std::exception& e) {
      std::printf("IVMC-WARN view of domain %u: %s\n", vm.domid, e.what());
      std::fflush(stdout);
      continue;
    }
    written_[vm.domid] = set;
    first_written_.emplace(vm.domid, now);
    std::printf("IVMC-VIEW domid=%u vm=%s t_ns=%lld view=\"%s\"\n", vm.domid, name.c_str(),
                static_cast<long long>(now), text.c_str());
    std::fflush(stdout);
  }
}

} // namespace ivmc::xen
