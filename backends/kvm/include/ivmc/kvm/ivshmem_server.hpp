// An ivshmem server compatible with QEMU's `-device ivshmem-doorbell,chardev=...,vectors=N`,
// following docs/specs/ivshmem-spec.rst (Debian ships no ivshmem-server).
//
// The server owns a POSIX shared memory object and a UNIX stream socket. Each client that
// connects gets a 16-bit peer ID, the shared memory fd and one eventfd per vector for every peer
// (its own ones to wait on, the others' to ring). The server never reads anything from clients:
// any input or hang-up ends the client, and the others are told.
//
// With QEMU: `ivmc-ivshmem-server --socket /tmp/ivshmem.sock --shm ivmc --size 16M --vectors 2`
// and `-chardev socket,path=/tmp/ivshmem.sock,id=ivs -device
// ivshmem-doorbell,chardev=ivs,vectors=2`.
//
// Ownership: the server holds an exclusive flock on "<socket>.lock" (and writes its pid there)
// and one on its shm object for its whole life. A second server on the same socket, or on the
// same shm name, is refused; a socket or shm object left by a server that died is cleaned on
// start and replaced by a fresh zero-filled region.
#pragma once

#include "ivmc/core/platform.hpp"
#include "ivmc/kvm/channel_broker.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::kvm {

struct IvshmemServerOptions {
  std::string socket_path = "/tmp/ivshmem_socket";
  // POSIX shm name ("ivshmem" or "/ivshmem"); the object lives at /dev/shm/<name>.
  std::string shm_name = "ivshmem";
  // A power of two: QEMU exposes the region as PCI BAR2, and BAR sizes must be powers of two.
  std::size_t size = std::size_t{4} << 20;
  unsigned vectors = 16; // eventfds per peer; QEMU's `vectors=` must be the same
  unsigned max_peers = 64;
  // Give ID 0 to a new client whenever it is free (otherwise IDs go round-robin). QEMU admits an
  // ivshmem-doorbell device with master=on only as ID 0, so a migratable guest that left this
  // host and comes back needs it again while other peers stay connected.
  bool reuse_id_zero = false;
  // Tell the other peers when a peer leaves (the spec's disconnect notice). QEMU 7.2 (Debian
  // 12) frees a departed peer's eventfd array on that notice without forgetting it, so a peer
  // that joins again under the same ID (reuse_id_zero: a migrated guest coming back) makes
  // every other QEMU on this server write into freed memory (heap corruption, seen as
  // "malloc_consolidate(): unaligned fastbin chunk detected"). Without the notice those QEMUs
  // keep the old eventfds and refuse the new ones ("Too many eventfd received"), which is
  // harmless; but host processes then learn of a departure only by the channel's liveness.
  bool announce_departures = true;
  bool verbose = false;
  // Where log lines go (one line per call, no trailing newline); stderr when empty.
  std::function<void(std::string_view)> log;
  // Told of every peer that joined (true) or left (false), from the server's thread, after the
  // other peers' notices were queued: a membership source's input (KvmMembership).
  std::function<void(std::uint16_t peer_id, bool connected)> on_peer;

  // The ivmc channel socket ("<socket_path>.ivmc", channel_broker.hpp) for host clients: a
  // sealed region per channel, handed only to its two enrolled members, after the trust list
  // (when set) admitted them. QEMU clients never see it. Off unless set.
  bool channel_socket = false;
  std::vector<Enrolment> enrolments;
  std::optional<TrustList> trust;
  // Exec mode on the channel socket (ChannelBrokerOptions::exec_enrolment): `ivmc exec`'s
  // host service, where processes of this uid enrol themselves.
  bool exec_enrolment = false;
};

// Parses "4096", "64K", "4M", "1G" (binary multiples, case-insensitive, optional "iB"/"B").
// Throws std::invalid_argument naming the text on anything else.
std::size_t parse_byte_size(std::string_view text);

class IvshmemServer {
public:
  explicit IvshmemServer(IvshmemServerOptions options);
  ~IvshmemServer(); // an orderly shutdown: closes clients, removes socket, shm and lock file

  IvshmemServer(const IvshmemServer&) = delete;
  IvshmemServer& operator=(const IvshmemServer&) = delete;

  // Takes the lock, cleans what a dead server left, creates the shm object and listens.
  // Throws IvshmemError (e.g. "... is owned by a running ivshmem server (pid 123)").
  void start();

  // Serves until `stop_fd` becomes readable (e.g. a signalfd for SIGINT/SIGTERM).
  void run(int stop_fd);
  // Serves until `stop` is set; notices it within 50 ms.
  void run_until(const std::atomic<bool>& stop);
  // One poll() round: waits up to timeout_ms (-1: forever) for any socket, handles what is ready.
  void poll_once(int timeout_ms);

  std::size_t peer_count() const { return clients_.size(); }
  // "<socket_path>.ivmc" when the channel socket is on, else empty.
  std::string channel_socket_path() const;
  const ChannelBroker* broker() const { return broker_.get(); }
  const IvshmemServerOptions& options() const { return options_; }
  const std::string& shm_name() const { return shm_name_; } // normalised, with leading '/'

private:
  // A shared fd: queued messages keep a departed peer's eventfds open until they are sent.
  using SharedFd = std::shared_ptr<const posix::UniqueFd>;

  struct OutgoingMessage {
    std::int64_t value;
    SharedFd fd; // may be null: a message without fd
  };

  struct Client {
    std::uint16_t id = 0;
    pid_t pid = 0; // SO_PEERCRED at accept (0 if unknown)
    posix::UniqueFd socket;
    std::vector<SharedFd> vectors; // this peer's eventfds, one per vector
    std::deque<OutgoingMessage> outbox;
    std::string broken; // why the client must be dropped; empty while it is healthy
  };

  void log(std::string_view line) const;
  void validate_options() const;
  void ensure_fd_budget() const;
  void acquire_lock();
  void clean_stale_state();
  void create_shared_memory();
  void create_listening_socket();
  void shutdown();

  void serve(int stop_fd, const std::atomic<bool>* stop);
  bool poll_round(int timeout_ms, int stop_fd);    // true when stop_fd became readable
  void check_input(Client& client, short revents); // marks it broken on EOF, error or data
  void drop_departed_clients();                    // a poll() that does not wait
  void accept_clients();
  bool allocate_id(std::uint16_t& id);
  void admit(posix::UniqueFd socket);
  void enqueue(Client& client, std::int64_t value, SharedFd fd);
  // Sends what the socket takes now; false if the client is broken and must be dropped.
  bool flush(Client& client);
  void flush_all(); // flushes every outbox and drops the clients that broke
  void drop(std::uint16_t id, std::string_view why);

  IvshmemServerOptions options_;
  std::string shm_name_;
  std::string lock_path_;
  std::string clean_stale_state_pid_; // the pid a dead server left in the lock file, if any
  std::size_t max_outbox_ = 0;
  pid_t owner_pid_ = 0; // cleanup runs only in the process that started the server

  posix::UniqueFd lock_fd_;
  SharedFd shm_fd_;             // the description clients receive
  posix::UniqueFd shm_lock_fd_; // another description of the object, flock()ed while we live
  posix::UniqueFd listen_fd_;
  bool owns_socket_ = false;
  std::unique_ptr<ChannelBroker> broker_; // the channel socket, when on
  bool owns_shm_ = false;

  std::map<std::uint16_t, Client> clients_; // by peer ID; ordered so notices go out in ID order
  std::uint16_t next_id_ = 0;
  std::int64_t accept_paused_until_ns_ = 0; // back-off after accept() ran out of fds
};

// The whole `ivmc-ivshmem-server` program once options are parsed: start, print the ready line
// on stdout, serve until SIGINT/SIGTERM, clean up. Returns the process exit code.
int ivshmem_server_main(const IvshmemServerOptions& options);

} // namespace ivmc::kvm
