// The server side of the ivmc channel socket (channel_broker_protocol.hpp): enrolled host
// processes ask for a channel's region by the other member's VM, and get a sealed memfd of
// its own, which nobody else is ever handed. Part of IvshmemServer's poll loop (one thread);
// QEMU's plain protocol on the main socket is untouched.
//
// Who is who comes from the kernel and from the enrolment, never from the client: SO_PEERCRED
// gives the uid and pid; the token must be enrolled for that uid; the claimed ivshmem peer id
// must be a main-socket connection of the same pid (so doorbells and departure notices name
// the same process). The trust list, when set, is checked before any region is handed out.
#pragma once

#include "ivmc/core/membership.hpp"
#include "ivmc/core/trust.hpp"
#include "ivmc/kvm/channel_broker_protocol.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace ivmc::kvm {

using EnrolmentToken = std::array<unsigned char, broker::kTokenBytes>;

// "This token, presented by a process of this uid, is VM `vm`."
struct Enrolment {
  EnrolmentToken token{};
  uid_t uid = 0;
  VmId vm = 0;
  // Exec mode (join): no main-socket connection to check; a trust group instead of the list.
  bool exec = false;
  std::uint64_t group = 0;
};

// A fresh random token (getrandom). Throws on failure.
EnrolmentToken random_token();
// 64 hex digits, and back (false if `text` is not exactly that).
std::string token_hex(const EnrolmentToken& token);
bool parse_token_hex(std::string_view text, EnrolmentToken& out);

struct ChannelBrokerOptions {
  std::string socket_path; // where to listen (SOCK_SEQPACKET)
  std::vector<Enrolment> enrolments;
  // Unset: any two enrolled VMs may share a channel (still nobody else). Set: both must allow
  // each other (TrustList::may_connect).
  std::optional<TrustList> trust;
  // Regions kept for a member that has not fetched its copy yet; the oldest is forgotten
  // beyond (its first member keeps it; the second is told it does not exist).
  std::size_t max_channels = 1024;
  std::size_t max_bytes = std::size_t{1} << 33; // largest region one open may create (8 GiB)
  std::size_t max_clients = 256;
  // Exec mode (`ivmc exec`, protocol: join/listen/connect/confirm/accept/cancel): processes of the
  // server's own uid may enrol themselves, each as a new VM in a trust group; two VMs share
  // channels only within one group.
  bool exec_enrolment = false;
  std::size_t max_pending = 4096; // connections recorded by connect and not yet accepted
};

class ChannelBroker {
public:
  // `pid_of_peer`: the pid (SO_PEERCRED) of main-socket peer `id`, if it is connected.
  // `log`: one line per call.
  ChannelBroker(ChannelBrokerOptions options,
                std::function<std::optional<pid_t>(std::uint16_t)> pid_of_peer,
                std::function<void(std::string_view)> log);
  ~ChannelBroker(); // closes every connection and removes the socket

  // Removes a stale socket at the path (the caller holds the server's lock), then listens.
  void start();

  // The fds to poll for POLLIN: the listener first, then every client.
  std::vector<int> poll_fds() const;
  // Handles a readable (or hung-up) fd among poll_fds().
  void on_ready(int fd, short revents);
  // Main-socket peer `id` left: the enrolment tied to it ends (its channel connection is
  // closed), so nobody is ever told that a later holder of the id is that VM.
  void peer_left(std::uint16_t id);

  std::size_t channel_count() const { return channels_.size(); }
  std::size_t refusals() const { return refusals_; }

private:
  struct Client {
    posix::UniqueFd socket;
    pid_t pid = 0;
    uid_t uid = 0;
    std::optional<VmId> vm; // set by a successful hello
    std::uint32_t ivshmem_peer_id = broker::kNoPeer;
    bool owns_enrolment = false; // joined: the enrolment ends with this connection
  };
  using ChannelKey = std::tuple<VmId, VmId, std::uint64_t>; // (lower vm, higher vm, key)
  struct Region {
    posix::UniqueFd memfd;
    std::uint64_t bytes = 0;
    bool handed[2] = {false, false}; // to the lower and the higher VM of the key
  };

  void accept_client();
  void serve(Client& client); // false: drop it
  bool handle(Client& client, const broker::Request& request, broker::Reply& reply,
              int& fd_to_send);
  bool refuse(broker::Reply& reply, const std::string& why);
  posix::UniqueFd make_region(const ChannelKey& key, std::uint64_t bytes, std::string& why);
  // Once both members were handed a region, the server lets go of it: nobody else can ever
  // get it, and its memory goes when both members unmap it.
  void forget_if_complete(const ChannelKey& key);
  void drop(int fd, std::string_view why);
  // Exec mode's requests (join, listen, connect, confirm, accept, cancel).
  bool handle_exec(Client& client, const broker::Request& request, broker::Reply& reply,
                   int& fd_to_send);
  const Enrolment* enrolment_of(VmId vm) const;
  void end_enrolment(VmId vm);

  ChannelBrokerOptions options_;
  std::function<std::optional<pid_t>(std::uint16_t)> pid_of_peer_;
  std::function<void(std::string_view)> log_;
  posix::UniqueFd listen_fd_;
  bool owns_socket_ = false;
  std::map<int, Client> clients_; // by socket fd
  std::map<ChannelKey, Region> channels_;
  std::deque<ChannelKey> order_; // creation order, for forgetting the oldest
  // Exec mode: listeners by TCP port, and connections recorded by connect, by their ports.
  struct Pending {
    // pending: the listener is known. tentative: nobody listened at connect (the region is
    // keyed by the client alone until a listener is known). taken / refused: the listener
    // accepted a tentative one as a ring / as kernel TCP before the client's confirm.
    enum class Stage { pending, tentative, taken, refused };
    VmId client = 0, listener = 0;
    std::uint64_t region_key = 0;
    Stage stage = Stage::pending;
  };
  // Whether `listener` may take a connection of `client` (both enrolled, one trust group).
  bool same_group(VmId client, VmId listener) const;
  // A tentative connection's region gets its listener: keyed by the pair from now on.
  void bind_listener(Pending& p, VmId listener);
  void forget_pending(std::uint32_t ports, bool with_region);
  std::map<std::uint16_t, VmId> listeners_;
  std::map<std::uint32_t, Pending> pending_;
  std::deque<std::uint32_t> pending_order_;
  VmId next_exec_vm_ = 1u << 20; // above the VM numbers scenarios use
  std::uint64_t next_region_key_ = 1;
  std::size_t refusals_ = 0;
};

} // namespace ivmc::kvm
