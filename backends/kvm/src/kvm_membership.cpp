// The hosts' membership source on a real KVM machine: see include/ivmc/kvm/kvm_membership.hpp.
#include "ivmc/kvm/kvm_membership.hpp"

#include "ivmc/core/membership_sources.hpp"
#include "ivmc/kvm/error.hpp"
#include "ivmc/posix/clock.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace ivmc::kvm {
namespace {

// QEMU stamps events with the host's wall clock; the source runs on the monotonic clock.
Nanos monotonic_of(double wall_seconds) {
  const auto wall_now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  const Nanos age = wall_now - static_cast<Nanos>(wall_seconds * 1e9);
  return posix::MonotonicClock::read() - std::max<Nanos>(age, 0);
}

} // namespace

void write_host_word(const std::string& shm_name, std::size_t offset, std::uint64_t value) {
  const std::string path = "/dev/shm/" + shm_name;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw IvshmemError(fmt::format("host word: open {}: {}", path, std::strerror(errno)));
  const std::size_t page = offset & ~std::size_t{4095};
  void* map =
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(page));
  ::close(fd);
  if (map == MAP_FAILED || offset % 8 != 0)
    throw IvshmemError(fmt::format("host word: cannot map offset {} of {}", offset, path));
  auto* word = reinterpret_cast<std::uint64_t*>(static_cast<char*>(map) + (offset - page));
  std::atomic_ref(*word).store(value, std::memory_order_relaxed); // a hint; orders nothing
  ::munmap(map, 4096);
}

KvmMembership::KvmMembership(KvmMembershipOptions options) : options_(std::move(options)) {
  for (const auto& [host, shm] : options_.initial_hosts) {
    topology_.add_host(host);
    hosts_[host] = shm;
  }
  for (const auto& [vm, host] : options_.initial_vms) {
    (void)topology_.create_vm(vm, {}, host, 0);
    guests_.insert(vm);
    believed_[vm] = host;
  }
  if (!options_.source_kind.empty())
    source_ = make_membership_source(options_.source_kind, topology_, options_.params);
  else if (options_.policy == KvmMembershipOptions::Policy::periodic)
    source_ = std::make_unique<PeriodicScanSource>(topology_, options_.period);
  else
    source_ = std::make_unique<EventWatchSource>(topology_, options_.delay);
  windows_ = std::make_unique<RaceWindows>(*source_);
  if (options_.region_bytes != 0) {
    for (const auto& [host, shm] : hosts_)
      pages_[host] = std::make_unique<ViewPageWriter>(shm, options_.region_bytes);
    write_pages_locked(posix::MonotonicClock::read());
  }
  ticker_ = std::thread([this] { tick_loop(); });
}

KvmMembership::~KvmMembership() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  ticker_.join();
}

void KvmMembership::add_host(HostId host, const std::string& shm_name) {
  std::lock_guard lock(mutex_);
  topology_.add_host(host);
  hosts_[host] = shm_name;
  if (options_.region_bytes != 0)
    pages_[host] = std::make_unique<ViewPageWriter>(shm_name, options_.region_bytes);
}

void KvmMembership::migrated(VmId vm, HostId host) {
  std::unique_lock lock(mutex_);
  if (!hosts_.count(host) || !topology_.has_vm(vm))
    throw IvshmemError(fmt::format("membership: VM {} cannot move to host {}", vm, host));
  if (topology_.host_of(vm) == host) return;
  source_->on_event(
      topology_.migrate_vm(vm, host, std::max(posix::MonotonicClock::read(), last_run_)));
  run_due_locked();
  lock.unlock();
  wake_.notify_all();
}

void KvmMembership::start_workloads() {
  std::lock_guard lock(mutex_);
  for (auto& [host, page] : pages_) page->set_start();
}

void KvmMembership::stop_workloads() {
  std::lock_guard lock(mutex_);
  for (auto& [host, page] : pages_) page->set_stop();
}

void KvmMembership::write_pages_locked(Nanos now) {
  if (pages_.empty()) return;
  for (const VmId g : guests_) {
    if (g == 0 || g > view_page::kMaxVms) continue;
    view_page::View v;
    v.version = source_->view_version(g);
    const bool exists = topology_.has_vm(g);
    v.truth = exists ? topology_.host_of(g) + 1 : 0;
    if (const auto it = believed_.find(g); it != believed_.end()) v.host = it->second + 1;
    for (const VmId p : guests_) {
      if (p == g || p > view_page::kMaxVms) continue;
      if (source_->believes_co_resident(g, p)) v.peers |= std::uint64_t{1} << p;
      if (exists && topology_.has_vm(p) && topology_.host_of(p) == topology_.host_of(g))
        v.truth_peers |= std::uint64_t{1} << p;
      if (const auto kind = windows_->in_race_window(g, p, now))
        v.race[p] = static_cast<std::uint8_t>(static_cast<int>(*kind) + 1);
    }
    // Every host's page: the guest reads the one of the region it is in, which a migration
    // may have just overwritten with another host's copy.
    for (auto& [host, page] : pages_) page->write(g, v);
  }
}

void KvmMembership::add_guest(VmId vm, HostId host) {
  std::unique_lock lock(mutex_);
  if (!hosts_.count(host))
    throw IvshmemError(fmt::format("membership: VM {} started on unknown host {}", vm, host));
  guests_.insert(vm);
  if (topology_.has_vm(vm)) return;
  source_->on_event(
      topology_.create_vm(vm, {}, host, std::max(posix::MonotonicClock::read(), last_run_)));
  run_due_locked();
  lock.unlock();
  wake_.notify_all();
}

void KvmMembership::publish_notified() {
  // A guest learns of its own creation or move when the source notifies that record (a view
  // that stays empty, a lone guest's, fires no view-change callback, so records are the cue).
  const std::vector<NotificationRecord>& records = source_->records();
  published_.resize(records.size(), false);
  for (std::size_t i = first_unpublished_; i < records.size(); ++i) {
    const NotificationRecord& r = records[i];
    if (published_[i] || r.t_notified == kNever) continue;
    published_[i] = true;
    if (r.subject != r.observer || !guests_.count(r.observer) || !topology_.has_vm(r.observer))
      continue;
    if (r.kind != ChangeKind::creation && r.kind != ChangeKind::migration_in) continue;
    const HostId host = topology_.host_of(r.observer);
    // The guest learns where it is, through the word of the region it is in now.
    write_host_word(hosts_.at(host), options_.host_word, host);
    believed_[r.observer] = host;
    if (auto it = resumed_at_.find(r.observer);
        it != resumed_at_.end() && r.kind == ChangeKind::migration_in) {
      arrivals_.push_back({r.observer, host, it->second, posix::MonotonicClock::read()});
      resumed_at_.erase(it);
    }
  }
  while (first_unpublished_ < published_.size() && published_[first_unpublished_])
    ++first_unpublished_;
}

void KvmMembership::on_qmp_event(VmId vm, HostId host, const QmpEvent& event) {
  if (event.name != "RESUME") return;
  std::unique_lock lock(mutex_);
  if (!hosts_.count(host))
    throw IvshmemError(fmt::format("membership: RESUME of VM {} on unknown host {}", vm, host));
  guests_.insert(vm);
  // Events are reported in time order, never before a run_due() that already happened (a
  // scan that ran before we saw the event did not see it: its time moves up to that scan).
  const Nanos resumed = monotonic_of(event.timestamp);
  const Nanos when = std::max(resumed, last_run_);
  if (!topology_.has_vm(vm)) {
    source_->on_event(topology_.create_vm(vm, {}, host, when));
  } else if (topology_.host_of(vm) != host) {
    resumed_at_[vm] = resumed;
    source_->on_event(topology_.migrate_vm(vm, host, when));
  } else {
    return; // resumed where it was (after a pause): no change
  }
  // What is due by now is delivered now (an immediate watch publishes before we return).
  run_due_locked();
  lock.unlock();
  wake_.notify_all();
}

void KvmMembership::guest_ended(VmId vm, HostId host) {
  std::unique_lock lock(mutex_);
  if (!topology_.has_vm(vm) || topology_.host_of(vm) != host) return; // it had moved on
  source_->on_event(topology_.shutdown_vm(vm, std::max(posix::MonotonicClock::read(), last_run_)));
  lock.unlock();
  wake_.notify_all();
}

void KvmMembership::bind_peer(HostId host, std::uint16_t peer, VmId vm) {
  std::lock_guard lock(mutex_);
  peers_[{host, peer}] = vm;
}

void KvmMembership::on_server_notice(HostId host, std::uint16_t peer, bool connected) {
  VmId vm = 0;
  {
    std::lock_guard lock(mutex_);
    const auto it = peers_.find({host, peer});
    if (it == peers_.end() || connected) return; // a joining device is not a running guest yet
    vm = it->second;
    peers_.erase(it); // the ID may be given to another device next
  }
  guest_ended(vm, host);
}

std::vector<NotificationRecord> KvmMembership::records() const {
  std::lock_guard lock(mutex_);
  return source_->records();
}

std::vector<KvmMembership::Arrival> KvmMembership::arrivals() const {
  std::lock_guard lock(mutex_);
  return arrivals_;
}

std::uint64_t KvmMembership::probes() const {
  std::lock_guard lock(mutex_);
  return source_->probes();
}

std::string_view KvmMembership::policy_name() const {
  return source_->name();
}

HostId KvmMembership::host_of(VmId vm) const {
  std::lock_guard lock(mutex_);
  return topology_.has_vm(vm) ? topology_.host_of(vm) : 0;
}

Nanos KvmMembership::run_due_locked() {
  const Nanos now = posix::MonotonicClock::read();
  // Stamped with the real (late) time: that is when the guest's word is written.
  // last_run_ moves only with a real run_due(): events are clamped to it, and a clamp that
  // is not needed would shorten the race windows recorded.
  while (source_->next_due() <= now) {
    source_->run_due(now);
    last_run_ = now;
  }
  publish_notified();
  write_pages_locked(now);
  return now;
}

void KvmMembership::tick_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const Nanos now = run_due_locked();
    const Nanos due = source_->next_due();
    const Nanos wait = due == kNever ? 1'000'000'000 : std::min<Nanos>(due - now, 1'000'000'000);
    wake_.wait_for(lock, std::chrono::nanoseconds(std::max<Nanos>(wait, 100'000)));
  }
}

} // namespace ivmc::kvm
