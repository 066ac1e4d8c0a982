// A host-side ivshmem client: what QEMU's ivshmem-doorbell device does, for a host process.
//
// connect() performs the whole handshake of docs/specs/ivshmem-spec.rst and maps the shared
// memory. Everything the server sends is treated as untrusted input and validated; a violation
// is reported naming the message, the value and what was expected. After the handshake the
// server only announces peers joining (ID + one eventfd per vector) and leaving (ID, no fd);
// poll server_fd() and call process_server_messages() to follow them.
//
// Not thread-safe: one thread owns an IvshmemPeer. EventfdDoorbell dup()s the fds it needs, so
// doorbells can be used from other threads while this object keeps following the server.
#pragma once

#include "ivmc/core/platform.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::kvm {

struct PeerEvent {
  enum class Kind : std::uint8_t { joined, left };
  Kind kind;
  std::uint16_t peer_id;
  bool operator==(const PeerEvent&) const = default;
};

// The state of the connection to the server. Once it is closed or failed, the peer keeps its
// memory and the eventfds it already has (the spec lets clients carry on without a server) but
// learns of no more joins or leaves.
enum class ServerLink : std::uint8_t {
  connected,
  closed, // the server closed the connection (it stopped or died)
  failed  // the server sent something invalid, or reading failed; see server_error()
};

class IvshmemPeer {
public:
  static constexpr unsigned kDefaultVectors = 16;

  // Connects to the server at `socket_path` (retrying while the socket does not exist yet or
  // refuses) and completes the handshake, all within `timeout` ns. `vectors` must equal the
  // server's vector count. Throws IvshmemError naming what went wrong and where.
  static IvshmemPeer connect(const std::string& socket_path, Nanos timeout,
                             unsigned vectors = kDefaultVectors);

  IvshmemPeer(IvshmemPeer&&) noexcept = default;
  IvshmemPeer& operator=(IvshmemPeer&&) noexcept = default;
  ~IvshmemPeer() = default;

  std::uint16_t id() const { return id_; }
  unsigned vectors() const { return vectors_; }
  const std::string& socket_path() const { return socket_path_; }

  // The whole shared memory object, mapped read-write and MAP_SHARED.
  ivmc::SharedRegion region() const {
    return {static_cast<std::byte*>(mapping_.base), mapping_.size};
  }

  // The eventfd other peers ring to interrupt this peer on `vector` (-1 if out of range).
  int own_vector_fd(unsigned vector) const;
  // True once every vector of peer `id` has been announced (and it has not left).
  bool has_peer(std::uint16_t id) const;
  std::vector<std::uint16_t> peer_ids() const; // the complete peers, ascending
  // The eventfd that interrupts peer `id` on `vector`, or -1. Valid until the peer leaves or
  // this object dies: dup() it to keep it longer.
  int peer_vector_fd(std::uint16_t id, unsigned vector) const;

  // The socket to poll for POLLIN; -1 once the link is closed or failed.
  int server_fd() const { return socket_.get(); }
  // Reads and applies every message available now; never blocks.
  ServerLink process_server_messages();
  ServerLink server_link() const { return link_; }
  // Leaves the server on purpose: closes the connection (the server tells the other peers)
  // and forgets their eventfds. The region stays mapped until this object dies.
  void disconnect();
  const std::string& server_error() const { return server_error_; }

  // Joins and leaves seen since the last call, in the order the server sent them. The peers
  // already connected when this one joined come first, as `joined` events of the handshake.
  std::vector<PeerEvent> take_events();

  // Follow the server (poll + process) until the condition holds or `timeout` ns pass; true if
  // it holds. They do not consume events.
  bool wait_for_events(Nanos timeout); // at least one event is queued
  bool wait_for_peer(std::uint16_t id, Nanos timeout);
  bool wait_for_peer_gone(std::uint16_t id, Nanos timeout);

private:
  // An mmap()ed range that unmaps itself.
  struct Mapping {
    void* base = nullptr;
    std::size_t size = 0;
    Mapping() = default;
    Mapping(void* b, std::size_t s) : base(b), size(s) {}
    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    ~Mapping();
  };

  struct Message {
    std::int64_t value = 0;
    posix::UniqueFd fd;
  };

  enum class Stage : std::uint8_t { version, own_id, shared_memory, vectors, done };

  IvshmemPeer(std::string socket_path, unsigned vectors);

  void open_socket(Nanos deadline);
  void handshake(Nanos deadline);
  std::optional<Message> read_message(); // nullopt: nothing complete yet, or EOF (see eof_)
  void handle_handshake_message(Message message);
  void handle_notice(Message message);
  void check_eventfd(int fd, std::int64_t peer, std::size_t vector) const;
  std::string expectation() const; // what the handshake waits for, for error messages
  [[noreturn]] void fail(const std::string& what) const;
  bool wait_until(const std::function<bool()>& condition, Nanos timeout);

  std::string socket_path_;
  unsigned vectors_ = 0;
  posix::UniqueFd socket_;
  Mapping mapping_;
  std::uint16_t id_ = 0;
  std::vector<posix::UniqueFd> own_vectors_;
  std::map<std::uint16_t, std::vector<posix::UniqueFd>> peers_; // complete or being announced
  std::vector<PeerEvent> events_;
  ServerLink link_ = ServerLink::connected;
  std::string server_error_;

  Stage stage_ = Stage::version;
  std::uint64_t messages_received_ = 0;    // for error messages: "message 5"
  std::array<unsigned char, 8> partial_{}; // a message split across reads (stream socket)
  std::size_t partial_size_ = 0;
  posix::UniqueFd partial_fd_;
  bool eof_ = false;
};

} // namespace ivmc::kvm
