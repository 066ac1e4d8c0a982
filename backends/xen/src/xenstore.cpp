// XenStore connection: see include/ivmc/xen/xenstore.hpp.
#include "ivmc/xen/xenstore.hpp"

#include "ivmc/xen/error.hpp"
#include "ivmc/xen/offer_record.hpp"

extern "C" {
#include <xenstore.h>
}

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "format.hpp"

namespace ivmc::xen {

namespace {

[[noreturn]] void fail(std::string_view call, const std::string& path, int error) {
  throw XenError(detail::format("xenstore {} {}: {}", call, path, std::strerror(error)));
}

} // namespace

XenStore::XenStore() {
  handle_ = ::xs_open(0);
  if (handle_ == nullptr) {
    const int error = errno;
    throw XenError(detail::format("xs_open: {} (is this a Xen domain with xenstored running, and "
                                  "is /dev/xen/xenbus or /var/run/xenstored/socket there?)",
                                  std::strerror(error)));
  }
}

XenStore::~XenStore() {
  ::xs_close(handle_);
}

std::optional<std::string> XenStore::read(const std::string& path, std::size_t max_bytes) {
  unsigned int length = 0;
  void* data = ::xs_read(handle_, XBT_NULL, path.c_str(), &length);
  if (data == nullptr) {
    if (errno == ENOENT || errno == EACCES) return std::nullopt;
    fail("read", path, errno);
  }
  std::string value(static_cast<const char*>(data), length); // copied once, then checked
  std::free(data);
  if (value.size() > max_bytes)
    throw XenError(detail::format("xenstore read {}: {} bytes (at most {} expected)", path,
                                  value.size(), max_bytes));
  return value;
}

bool XenStore::absent(const std::string& path) {
  unsigned int length = 0;
  void* data = ::xs_read(handle_, XBT_NULL, path.c_str(), &length);
  if (data != nullptr) {
    std::free(data);
    return false;
  }
  if (errno == ENOENT) return true;
  if (errno == EACCES) return false;
  fail("read", path, errno);
}

void XenStore::write(const std::string& path, const std::string& value) {
  if (!::xs_write(handle_, XBT_NULL, path.c_str(), value.data(),
                  static_cast<unsigned int>(value.size())))
    fail("write", path, errno);
}

void XenStore::remove(const std::string& path) {
  if (!::xs_rm(handle_, XBT_NULL, path.c_str()) && errno != ENOENT) fail("rm", path, errno);
}

std::vector<std::string> XenStore::directory(const std::string& path) {
  unsigned int count = 0;
  char** entries = ::xs_directory(handle_, XBT_NULL, path.c_str(), &count);
  if (entries == nullptr) {
    if (errno == ENOENT || errno == EACCES) return {};
    fail("directory", path, errno);
  }
  std::vector<std::string> out(entries, entries + count);
  std::free(entries);
  return out;
}

void XenStore::set_owner_and_reader(const std::string& path, std::uint32_t owner,
                                    std::uint32_t reader) {
  xs_permissions perms[2] = {};
  perms[0].id = owner; // the first entry: the owner, and what everyone else may do (nothing)
  perms[0].perms = XS_PERM_NONE;
  perms[1].id = reader;
  perms[1].perms = XS_PERM_READ;
  if (!::xs_set_permissions(handle_, XBT_NULL, path.c_str(), perms, owner == reader ? 1 : 2))
    fail("set_permissions", path, errno);
}

void XenStore::watch(const std::string& path, const std::string& token) {
  if (!::xs_watch(handle_, path.c_str(), token.c_str())) fail("watch", path, errno);
}

void XenStore::unwatch(const std::string& path, const std::string& token) {
  ::xs_unwatch(handle_, path.c_str(), token.c_str()); // best effort: the path may be gone
}

int XenStore::fd() const {
  return ::xs_fileno(handle_);
}

std::optional<std::pair<std::string, std::string>> XenStore::next_event() {
  char** event = ::xs_check_watch(handle_);
  if (event == nullptr) {
    if (errno == EAGAIN) return std::nullopt;
    fail("check_watch", "(watch events)", errno);
  }
  std::pair<std::string, std::string> out{event[XS_WATCH_PATH], event[XS_WATCH_TOKEN]};
  std::free(event);
  return out;
}

std::uint32_t XenStore::own_domid() {
  const std::optional<std::string> text = read("domid", 16);
  std::uint32_t id = 0;
  if (!text) throw XenError("xenstore read domid: not there (xen-init-dom0 not run yet?)");
  if (!parse_decimal(*text, kMaxDomainId, id))
    throw XenError(detail::format("xenstore read domid: '{}' is not a domain id", *text));
  return id;
}

} // namespace ivmc::xen
