// The ivmc channel socket: an extension of the ivshmem server that only ivmc host clients
// speak, on its own UNIX socket ("<socket>.ivmc"), so that QEMU, which speaks the plain
// protocol on the main socket, never sees it. It hands each channel a region of its own,
// only to the channel's two members (docs/security.md).
//
// SOCK_SEQPACKET: one request or one reply per packet, fixed sizes, native byte order (both
// ends are on one host). Client to server: `Request` (hello once, then open any number of
// times). Server to client: one `Reply` per request; a region comes with its memfd
// (SCM_RIGHTS). Any malformed or out-of-order packet ends the connection.
//
//   hello(token, ivshmem peer id)  -> welcome(vm) | refused(reason)
//       The server takes the caller's identity from the kernel (SO_PEERCRED: uid, pid), and
//       admits it only if `token` is enrolled for that uid, and `ivshmem_peer_id` is a
//       connection of the same pid on the main socket. The VM the token is enrolled for is
//       the caller's identity from now on; nothing else the caller says changes it.
//   open(peer vm, key, bytes)      -> region(bytes, peer's ivshmem id) + fd | refused(reason)
//       The region of the channel `key` between the caller's VM and `peer_vm`: created
//       (`bytes` > 0) as a memfd sealed against shrinking, growing and further sealing, or the
//       existing one (`bytes` 0: join only). Refused unless both VMs admit each other.
//
// Exec mode (`ivmc exec`, ChannelBrokerOptions::exec_enrolment; docs/preload.md): processes
// enrol themselves and meet by TCP port instead of by VM.
//   join(token, key = trust group)  -> welcome(vm) | refused(reason)
//       A process of the server's own uid enrols `token` as a new VM in the trust group `key`
//       (a hash of the group's name). The enrolment (and every listener of that VM) ends when
//       this connection closes. Processes that present the token with hello (any peer id) are
//       that VM: the wrapper's children, forked or exec'd.
//   listen(key = port)              -> ok
//       The caller's VM listens on TCP port `key` on this host.
//   connect(key = ports, bytes)     -> region(listener vm, region key) + fd | refused(reason)
//       `ports` = client port << 16 | server port. The caller is about to connect from the
//       client port to the server port: if an enrolled VM of the caller's trust group listens
//       there, a region is made for the pair and the connection is recorded as pending. (The
//       listener may be the caller's own VM: two processes of one `ivmc exec`.) If no enrolled
//       VM listens there yet, the region comes with vm = kNoListener and the connection is
//       recorded as *tentative*: a listener registers before its kernel listen, so one that
//       registers after this answer may still be the one the kernel connect reaches.
//   confirm(key = ports)            -> ok | refused(reason)
//       The kernel connect of a tentative connection succeeded (or is in progress). ok: a ring
//       connection (an enrolled VM of the caller's group listens there now, and the connection
//       becomes pending; or that listener accepted it already). refused: kernel TCP for both
//       ends (nobody enrolled listens, another group does, or the listener accepted it as
//       kernel TCP); the record and region are forgotten.
//   accept(key = ports)             -> region(client vm, region key) + fd | refused(reason)
//       The listener's side of a pending connection, for the listener's VM only; the pending
//       record ends. A tentative one is taken too if the caller is the port's registered
//       listener and of the client's group (else it is kernel TCP); confirm then tells the
//       client which.
//   cancel(key = ports)             -> ok | refused
//       The client gives up a pending or tentative connection the listener has not accepted
//       yet.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ivmc::kvm::broker {

inline constexpr std::uint64_t kMagic = 0x314e4843434d5649ull; // "IVMCCHN1", little-endian
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::size_t kTokenBytes = 32;
inline constexpr std::uint32_t kNoPeer = 0xffffffffu;     // region: the peer has no channel socket
inline constexpr std::uint32_t kNoListener = 0xffffffffu; // connect's region: tentative

enum class Op : std::uint32_t {
  hello = 1,
  welcome = 2,
  open = 3,
  region = 4,
  refused = 5,
  join = 6,    // exec mode
  listen = 7,  // exec mode
  connect = 8, // exec mode
  accept = 9,  // exec mode
  cancel = 10, // exec mode
  ok = 11,
  confirm = 12, // exec mode
};

struct Request {
  std::uint64_t magic = kMagic;
  std::uint32_t version = kVersion;
  Op op = Op::hello;
  std::uint32_t ivshmem_peer_id = 0;     // hello: this process's peer id on the main socket
  std::uint32_t peer_vm = 0;             // open: the other member
  std::uint64_t key = 0;                 // open: which channel of the pair
  std::uint64_t bytes = 0;               // open: its size to create, or 0 to join only
  unsigned char token[kTokenBytes] = {}; // hello: the enrolment token
};
static_assert(sizeof(Request) == 72);

struct Reply {
  std::uint64_t magic = kMagic;
  std::uint32_t version = kVersion;
  Op op = Op::refused;
  std::uint32_t vm = 0;                    // welcome: the caller's VM; region: the peer VM
  std::uint32_t peer_ivshmem_id = kNoPeer; // region: the peer's id on the main socket
  std::uint64_t key = 0;
  std::uint64_t bytes = 0;
  char reason[200] = {}; // refused: why, NUL-terminated
};
static_assert(sizeof(Reply) == 240);

// The seals every channel region carries; a client refuses a region without all of them.
inline constexpr int kRequiredSeals =
    0x0001 /*F_SEAL_SEAL*/ | 0x0002 /*F_SEAL_SHRINK*/ | 0x0004 /*F_SEAL_GROW*/;

} // namespace ivmc::kvm::broker
