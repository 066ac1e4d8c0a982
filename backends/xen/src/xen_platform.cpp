// The Xen platform: see include/ivmc/xen/xen_platform.hpp.
#include "ivmc/xen/xen_platform.hpp"

#include "ivmc/xen/error.hpp"
#include "ivmc/xen/event_channel_doorbell.hpp"
#include "ivmc/xen/offer_record.hpp"

extern "C" {
#include <xengnttab.h>
}

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "format.hpp"

namespace ivmc::xen {

namespace {

constexpr Nanos kTick = 10'000'000;                      // heartbeats, ATW windows, liveness bytes
constexpr Nanos kDomainCheckPeriod = 250'000'000;        // XenStore lookups of the peer domain
constexpr Nanos kRecordPoll = 50'000'000;                // re-reading a record not offered yet
constexpr std::size_t kOfferedByte = 0, kMapperByte = 1; // in the liveness page

// The liveness bytes are written by one domain and cleared by the other's kernel.
std::atomic_ref<std::uint8_t> live_byte(void* page, std::size_t which) {
  return std::atomic_ref<std::uint8_t>(static_cast<std::uint8_t*>(page)[which]);
}

} // namespace

struct XenPlatform::Handles {
  xengnttab_handle* gnttab = nullptr; // opened on first map
  xengntshr_handle* gntshr = nullptr; // opened on first offer
  ~Handles() {
    if (gnttab != nullptr) ::xengnttab_close(gnttab);
    if (gntshr != nullptr) ::xengntshr_close(gntshr);
  }
  xengnttab_handle* table() {
    if (gnttab == nullptr && (gnttab = ::xengnttab_open(nullptr, 0)) == nullptr) {
      const int error = errno;
      throw XenError(detail::format("xengnttab_open: {} (is this a Xen domain with the xen-gntdev "
                                    "module loaded?)",
                                    std::strerror(error)));
    }
    return gnttab;
  }
  xengntshr_handle* sharer() {
    if (gntshr == nullptr && (gntshr = ::xengntshr_open(nullptr, 0)) == nullptr) {
      const int error = errno;
      throw XenError(
          detail::format("xengntshr_open: {} (is this a Xen domain with the xen-gntalloc "
                         "module loaded?)",
                         std::strerror(error)));
    }
    return gntshr;
  }
};

// Pages shared (gntshr) or mapped (gnttab); released by the same interface. Releasing a page
// set up with unmap notification clears the peer-watched byte and signals its port.
struct GrantMapping {
  void* base = nullptr;
  std::uint32_t pages = 0;
  xengntshr_handle* sharer = nullptr;
  xengnttab_handle* table = nullptr;
  GrantMapping(void* b, std::uint32_t n, xengntshr_handle* s, xengnttab_handle* t)
      : base(b), pages(n), sharer(s), table(t) {}
  ~GrantMapping() {
    if (sharer != nullptr) ::xengntshr_unshare(sharer, base, pages);
    if (table != nullptr) ::xengnttab_unmap(table, base, pages);
  }
  GrantMapping(const GrantMapping&) = delete;
  GrantMapping& operator=(const GrantMapping&) = delete;
};

// --- XenEndpoint ------------------------------------------------------------------------------

XenEndpoint::XenEndpoint(XenPlatform& platform) : platform_(platform) {}

XenEndpoint::~XenEndpoint() {
  platform_.unregister(this);
  if (offering_ && !record_path_.empty()) { // empty: the offer failed before publishing
    try {
      platform_.store().remove(record_path_);
    } catch (const std::exception&) {
      // the record is only a rendezvous; a stale one is overwritten by the next offer
    }
  }
  channel_.reset(); // detaches: the peer sees an orderly departure, not a death
  live_.reset();    // our kernel clears our liveness byte and signals the peer
  pages_.reset();
  doorbell_.reset();
}

std::string XenEndpoint::peer_gone_reason() const {
  std::lock_guard lock(reason_mutex_);
  return gone_reason_;
}

void XenEndpoint::declare_dead(const std::string& why) {
  {
    std::lock_guard lock(reason_mutex_);
    if (!gone_reason_.empty()) return;
    gone_reason_ = why;
  }
  channel_->mark_peer_dead(why); // first: the channel's waits then deliver what is left
  doorbell_->declare_lost();
}

void XenEndpoint::tick(Nanos now) {
  channel_->heartbeat();
  channel_->flush();
  if (!peer_gone_reason().empty()) return;
  // The peer's liveness byte: set by the peer, cleared by its kernel when its mapping goes.
  // Relaxed: a yes/no hint; the channel's own state carries the data ordering.
  const std::uint8_t peer_byte = live_byte(live_->base, offering_ ? kMapperByte : kOfferedByte)
                                     .load(std::memory_order_relaxed);
  if (peer_byte != 0) {
    peer_seen_live_ = true;
  } else if (peer_seen_live_ && !channel_->peer_detached()) {
    declare_dead(
        detail::format("domain {} unmapped the channel's pages (unmap notification)", peer_));
    return;
  }
  if (now >= next_domain_check_) {
    next_domain_check_ = now + kDomainCheckPeriod;
    if (!platform_.domain_exists(peer_))
      declare_dead(
          detail::format("domain {} is gone (/local/domain/{} left XenStore)", peer_, peer_));
  }
}

// --- XenPlatform ------------------------------------------------------------------------------

XenPlatform::XenPlatform() : handles_(std::make_unique<Handles>()) {}

std::unique_ptr<XenPlatform> XenPlatform::open() {
  std::unique_ptr<XenPlatform> p(new XenPlatform);
  p->store_ = std::make_unique<XenStore>();
  p->probe_store_ = std::make_unique<XenStore>();
  p->domid_.store(p->store_->own_domid(), std::memory_order_relaxed); // before the ticker: a value
  p->ticker_ = std::thread([raw = p.get()] { raw->tick_loop(); });
  return p;
}

XenPlatform::~XenPlatform() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

std::size_t XenPlatform::pages_for(std::uint32_t ring_bytes) {
  return (Channel::area_bytes(ring_bytes, ring_bytes) + kPageBytes - 1) / kPageBytes;
}

bool XenPlatform::refresh_domid() {
  const std::uint32_t now = store_->own_domid();
  // Relaxed: the id is a value; the caller's thread is the only writer.
  return domid_.exchange(now, std::memory_order_relaxed) != now;
}

void XenPlatform::abandon(std::unique_ptr<XenEndpoint> endpoint) {
  if (!endpoint) return;
  unregister(endpoint.get());
  // Leaked on purpose (see the header): its destructor would unmap and unbind what a restore
  // already took away, or what now belongs to a new binding.
  static_cast<void>(endpoint.release());
}

bool XenPlatform::domain_exists(std::uint32_t domid) {
  try {
    // The toolstack removes /local/domain/<id> when it destroys the domain. A path this domain
    // may not read (a domU asking about dom0) is not evidence of anything.
    return !probe_store_->absent(detail::format("/local/domain/{}", domid));
  } catch (const std::exception&) {
    return true; // XenStore trouble is not evidence of death; the heartbeat still runs
  }
}

void XenPlatform::unregister(XenEndpoint* endpoint) {
  std::lock_guard lock(mutex_);
  endpoints_.erase(std::remove(endpoints_.begin(), endpoints_.end(), endpoint), endpoints_.end());
}

void XenPlatform::tick_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const Nanos now = clock_.now();
    for (XenEndpoint* ep : endpoints_) ep->tick(now);
    stop_cv_.wait_for(lock, std::chrono::nanoseconds(kTick));
  }
}

std::unique_ptr<XenEndpoint> XenPlatform::offer(std::uint32_t peer,
                                                const XenEndpointOptions& options) {
  if (!valid_channel_name(options.name))
    throw XenError(
        detail::format("offer: '{}' is not a channel name ([a-z0-9_-], 1-32)", options.name));
  if (peer == domid() || peer > kMaxDomainId)
    throw XenError(
        detail::format("offer: domain {} cannot be the peer of domain {}", peer, domid()));
  std::unique_ptr<XenEndpoint> ep(new XenEndpoint(*this));
  ep->peer_ = peer;
  ep->offering_ = true;
  ep->name_ = options.name;
  ep->doorbell_ = EventChannelDoorbell::offer(peer);
  const auto pages = static_cast<std::uint32_t>(pages_for(options.channel.ring_bytes));
  OfferRecord record;
  record.peer = peer;
  record.ring_refs.resize(pages);
  record.data_port = ep->doorbell_->local_port(Wake::data);
  record.space_port = ep->doorbell_->local_port(Wake::space);
  record.job = options.job;
  {
    std::lock_guard lock(mutex_);
    xengntshr_handle* sharer = handles_->sharer();
    void* area =
        ::xengntshr_share_pages(sharer, peer, static_cast<int>(pages), record.ring_refs.data(), 1);
    if (area == nullptr) {
      const int error = errno;
      throw XenError(
          detail::format("xengntshr_share_pages ({} pages for domain {}): {} (gntalloc's "
                         "limit is a module parameter)",
                         pages, peer, std::strerror(error)));
    }
    ep->pages_ = std::make_unique<GrantMapping>(area, pages, sharer, nullptr);
    void* live = ::xengntshr_share_page_notify(sharer, peer, &record.live_ref, 1, kOfferedByte,
                                               record.data_port);
    if (live == nullptr) {
      const int error = errno;
      throw XenError(detail::format("xengntshr_share_page_notify (liveness page for domain {}): {}",
                                    peer, std::strerror(error)));
    }
    ep->live_ = std::make_unique<GrantMapping>(live, 1, sharer, nullptr);
  }
  // Relaxed: a yes/no flag, and the mapper can only read it after the XenStore writes below
  // (system calls: full barriers) published the record.
  live_byte(ep->live_->base, kOfferedByte).store(1, std::memory_order_relaxed);

  ChannelConfig config = options.channel;
  config.platform_address = (std::uint64_t{1} << 32) | domid();
  Opened opened =
      Channel::create({static_cast<std::byte*>(ep->pages_->base), std::size_t{pages} * kPageBytes},
                      config, *ep->doorbell_, clock_);
  if (opened.error != Errc::ok)
    throw XenError(detail::format("offer to domain {}: Channel::create: {}", peer, opened.detail));
  ep->channel_ = std::move(opened.channel);

  // Publish: the directory first, readable by the peer only; its children inherit that.
  ep->record_path_ = offer_path(domid(), peer, options.name);
  store_->remove(ep->record_path_);
  store_->write(ep->record_path_, "");
  store_->set_owner_and_reader(ep->record_path_, domid(), peer);
  for (const auto& [key, value] : offer_entries(record))
    store_->write(ep->record_path_ + "/" + key, value);

  std::lock_guard lock(mutex_);
  endpoints_.push_back(ep.get());
  return ep;
}

std::unique_ptr<XenEndpoint> XenPlatform::map(std::uint32_t offerer,
                                              const XenEndpointOptions& options, Nanos timeout) {
  if (!valid_channel_name(options.name))
    throw XenError(
        detail::format("map: '{}' is not a channel name ([a-z0-9_-], 1-32)", options.name));
  const Nanos deadline = timeout == kForever ? kForever : clock_.now() + timeout;
  const std::string path = offer_path(offerer, domid(), options.name);
  ParsedOffer parsed;
  for (;;) {
    parsed = parse_offer(
        [&](std::string_view key) { return store_->read(path + "/" + std::string(key), 4096); },
        domid());
    if (parsed.record) break;
    if (!parsed.not_ready) throw XenError(detail::format("map {}: {}", path, parsed.error));
    if (clock_.now() >= deadline)
      throw XenError(detail::format("map {}: nothing offered in time ({}; a record this domain "
                                    "may not read looks the same: the offerer must name domain "
                                    "{} and offer after it existed)",
                                    path, parsed.error, domid()));
    std::this_thread::sleep_for(std::chrono::nanoseconds(kRecordPoll));
  }
  OfferRecord& record = *parsed.record;
  std::unique_ptr<XenEndpoint> ep(new XenEndpoint(*this));
  ep->peer_ = offerer;
  ep->name_ = options.name;
  ep->job_ = record.job;
  ep->doorbell_ = EventChannelDoorbell::connect(offerer, record.data_port, record.space_port);
  const auto pages = static_cast<std::uint32_t>(record.ring_refs.size());
  {
    std::lock_guard lock(mutex_);
    xengnttab_handle* table = handles_->table();
    void* area = ::xengnttab_map_domain_grant_refs(table, pages, offerer, record.ring_refs.data(),
                                                   PROT_READ | PROT_WRITE);
    if (area == nullptr) {
      const int error = errno;
      throw XenError(detail::format("xengnttab_map_domain_grant_refs ({} pages of domain {}): {}",
                                    pages, offerer, std::strerror(error)));
    }
    ep->pages_ = std::make_unique<GrantMapping>(area, pages, nullptr, table);
    void* live =
        ::xengnttab_map_grant_ref_notify(table, offerer, record.live_ref, PROT_READ | PROT_WRITE,
                                         kMapperByte, ep->doorbell_->local_port(Wake::data));
    if (live == nullptr) {
      const int error = errno;
      throw XenError(
          detail::format("xengnttab_map_grant_ref_notify (liveness page {} of domain {}): "
                         "{}",
                         record.live_ref, offerer, std::strerror(error)));
    }
    ep->live_ = std::make_unique<GrantMapping>(live, 1, nullptr, table);
  }
  // Relaxed: yes/no flags; the peer's kernel clears them, nothing else is ordered by them.
  if (live_byte(ep->live_->base, kOfferedByte).load(std::memory_order_relaxed) == 0)
    throw XenError(detail::format("map {}: the offerer already unmapped its pages", path));
  live_byte(ep->live_->base, kMapperByte).store(1, std::memory_order_relaxed);

  ChannelConfig config = options.channel;
  config.platform_address = (std::uint64_t{1} << 32) | domid();
  const SharedRegion region{static_cast<std::byte*>(ep->pages_->base),
                            std::size_t{pages} * kPageBytes};
  for (;;) {
    Opened opened = Channel::attach(region, config, *ep->doorbell_, clock_);
    if (opened.error == Errc::ok) {
      ep->channel_ = std::move(opened.channel);
      break;
    }
    if (opened.error != Errc::would_block || clock_.now() >= deadline)
      throw XenError(detail::format("map {}: Channel::attach: {} {}", path, to_string(opened.error),
                                    opened.detail));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::lock_guard lock(mutex_);
  endpoints_.push_back(ep.get());
  return ep;
}

} // namespace ivmc::xen
