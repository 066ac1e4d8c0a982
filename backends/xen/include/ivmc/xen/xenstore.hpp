// A XenStore connection (libxenstore's xs_open), with errors that name the path and the call.
// Values read here were written by whoever may write that path: the callers validate them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct xs_handle;

namespace ivmc::xen {

class XenStore {
public:
  // Connects to xenstored (or /dev/xen/xenbus in a domU). Throws XenError on failure.
  XenStore();
  ~XenStore();
  XenStore(const XenStore&) = delete;
  XenStore& operator=(const XenStore&) = delete;

  // nullopt if the path does not exist (ENOENT) or may not be read by this domain (EACCES);
  // throws on any other error. Values longer than `max_bytes` throw too (hostile input).
  std::optional<std::string> read(const std::string& path, std::size_t max_bytes = 4096);
  // True only if the path certainly does not exist (ENOENT); unreadable paths are not absent.
  bool absent(const std::string& path);
  void write(const std::string& path, const std::string& value);
  void remove(const std::string& path); // a missing path is not an error
  // Children of `path`; empty if it does not exist.
  std::vector<std::string> directory(const std::string& path);
  // `owner` owns `path` (others get nothing), and `reader` may read it.
  void set_owner_and_reader(const std::string& path, std::uint32_t owner, std::uint32_t reader);

  // Watches: fire once at registration, then whenever `path` or anything under it changes.
  void watch(const std::string& path, const std::string& token);
  void unwatch(const std::string& path, const std::string& token);
  int fd() const; // readable when a watch event may be pending
  // The next pending event (path, token) without blocking; nullopt if none.
  std::optional<std::pair<std::string, std::string>> next_event();

  // This domain's id ("domid", relative to its own XenStore home).
  std::uint32_t own_domid();

private:
  xs_handle* handle_ = nullptr;
};

} // namespace ivmc::xen
