// This process's connection to the host service (`ivmc exec`'s ivshmem server, its channel
// socket "<socket>.ivmc" in exec mode; channel_broker_protocol.hpp): enrolled with the token
// `ivmc exec` left at the fd IVMC_TOKEN_FD names, it registers listeners and gets the sealed
// region of each ring connection. A forked child opens its own connection on first use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ivmc::preload {

// A channel region, checked (a memfd carrying the seals against shrinking, growing and
// unsealing, of the size asked for) and mapped shared; unmapped when destroyed.
class Region {
public:
  Region(void* base, std::size_t bytes) : base_(base), bytes_(bytes) {}
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  std::byte* base() const { return static_cast<std::byte*>(base_); }
  std::size_t bytes() const { return bytes_; }

private:
  void* base_;
  std::size_t bytes_;
};

enum class Answer { yes, no, failed }; // no: the service said no (not co-resident, untrusted)

// Whether this process runs under `ivmc exec` (IVMC_HOST_SOCKET and IVMC_TOKEN_FD set).
bool enrolled();
// Registers a listener on `port` for this process's VM.
Answer service_listen(std::uint16_t port, std::string& why);
// connect / accept by (client port, server port); a region on `yes`. `tentative`: nobody
// listened on the server port yet (a listener may register before the kernel connect reaches
// it): after the kernel connect, service_confirm says whether it is a ring connection.
Answer service_connect(std::uint16_t client_port, std::uint16_t server_port, std::size_t bytes,
                       std::unique_ptr<Region>& region, bool& tentative, std::string& why);
// A tentative connection's kernel connect succeeded (or is in progress): yes for a ring
// connection (pending, or accepted already), no for kernel TCP (its region is of no use).
Answer service_confirm(std::uint16_t client_port, std::uint16_t server_port, std::string& why);
Answer service_accept(std::uint16_t client_port, std::uint16_t server_port,
                      std::unique_ptr<Region>& region, std::string& why);
// The client gives up a connection the listener has not accepted: yes if it was still pending
// (or tentative).
Answer service_cancel(std::uint16_t client_port, std::uint16_t server_port, std::string& why);

} // namespace ivmc::preload
