/* A foreign client of the ivmc ivshmem server: plain C, libc and syscalls only, no ivmc code.
 * It speaks the server's two protocols from their specifications (QEMU's ivshmem-spec on the
 * main socket; the channel socket's packets as documented in docs/security.md) and attacks a
 * channel between two ivmc peers, VM A and VM B, while they stream. It is itself enrolled, as
 * VM X, with its own token: a legitimate neighbour turned hostile.
 *
 *   ivmc-foreign-client SOCKET TOKEN_HEX VM_A VM_B KEY VM_C
 *
 * The last two attacks go through channels X legitimately belongs to: VM C creates channels
 * KEY + 2000 and KEY + 3000 with X, X attaches to each as side 1 from the wire layout's documented
 * offsets (core/include/ivmc/core/wire.hpp, version 2) and then lies in it. A must end each with a
 * protocol violation (C's endpoint state turns `failed`, which X watches), having received only
 * what X really wrote.
 *
 * For each attack it prints one line:
 *   ATTACK <name> <refused|detected|VULNERABLE|pending> <ms> <what happened>
 * and exits 0 (it never decides the verdict on the pair's data: the harness checks that). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The channel socket's packets (docs/security.md), written out here independently. */
struct request {
  uint64_t magic;
  uint32_t version, op, ivshmem_peer_id, peer_vm;
  uint64_t key, bytes;
  unsigned char token[32];
};
struct reply {
  uint64_t magic;
  uint32_t version, op, vm, peer_ivshmem_id;
  uint64_t key, bytes;
  char reason[200];
};
enum { OP_HELLO = 1, OP_WELCOME = 2, OP_OPEN = 3, OP_REGION = 4, OP_REFUSED = 5 };
static const uint64_t MAGIC = 0x314e4843434d5649ull;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void report(const char* name, const char* verdict, double started, const char* what) {
  printf("ATTACK %s %s %.3f %s\n", name, verdict, now_ms() - started, what);
  fflush(stdout);
}

static int connect_unix(const char* path, int type) {
  int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    perror(path);
    exit(3);
  }
  return fd;
}

/* One ivshmem-spec message: a little-endian int64 and maybe an fd. Returns 0 at EOF. */
static int read_message(int fd, int64_t* value, int* passed_fd) {
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {value, sizeof *value};
  struct msghdr h;
  memset(&h, 0, sizeof h);
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  h.msg_control = control;
  h.msg_controllen = sizeof control;
  *passed_fd = -1;
  ssize_t n = recvmsg(fd, &h, MSG_CMSG_CLOEXEC);
  if (n <= 0) return 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c))
    if (c->cmsg_type == SCM_RIGHTS) memcpy(passed_fd, CMSG_DATA(c), sizeof(int));
  return n == sizeof *value;
}

/* Exchanges one packet on the channel socket; returns the reply, and its fd (or -1). */
static struct reply exchange(int fd, const struct request* rq, int* passed_fd) {
  struct reply r;
  memset(&r, 0, sizeof r);
  *passed_fd = -1;
  if (send(fd, rq, sizeof *rq, MSG_NOSIGNAL) != sizeof *rq) {
    snprintf(r.reason, sizeof r.reason, "send failed: %s", strerror(errno));
    return r;
  }
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 1000) != 1) {
    snprintf(r.reason, sizeof r.reason, "no reply within 1 s");
    return r;
  }
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {&r, sizeof r};
  struct msghdr h;
  memset(&h, 0, sizeof h);
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  h.msg_control = control;
  h.msg_controllen = sizeof control;
  ssize_t n = recvmsg(fd, &h, MSG_CMSG_CLOEXEC);
  if (n == 0) snprintf(r.reason, sizeof r.reason, "the server closed the connection");
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c))
    if (c->cmsg_type == SCM_RIGHTS) memcpy(passed_fd, CMSG_DATA(c), sizeof(int));
  r.reason[sizeof r.reason - 1] = 0;
  return r;
}

static int parse_token(const char* hex, unsigned char* out) {
  if (strlen(hex) != 64) return 0;
  for (int i = 0; i < 32; ++i) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return 0;
    out[i] = (unsigned char)v;
  }
  return 1;
}

static struct request hello(const unsigned char* token, uint32_t peer_id) {
  struct request rq;
  memset(&rq, 0, sizeof rq);
  rq.magic = MAGIC;
  rq.version = 1;
  rq.op = OP_HELLO;
  rq.ivshmem_peer_id = peer_id;
  memcpy(rq.token, token, 32);
  return rq;
}

static struct request open_request(uint32_t peer_vm, uint64_t key, uint64_t bytes) {
  struct request rq;
  memset(&rq, 0, sizeof rq);
  rq.magic = MAGIC;
  rq.version = 1;
  rq.op = OP_OPEN;
  rq.peer_vm = peer_vm;
  rq.key = key;
  rq.bytes = bytes;
  return rq;
}

/* The channel area's layout, wire version 2 (core/include/ivmc/core/wire.hpp), as offsets. */
enum {
  W_MAGIC = 0,        /* u32 Identity::magic, stored last by the creator (release) */
  W_VERSION = 4,      /* u16 */
  W_RING_BYTES = 8,   /* u32[2] */
  W_MAX_MESSAGE = 16, /* u32 */
  W_RING_OFFSET = 24, /* u64[2] */
  W_FEATURES = 56,    /* u32: no bits = records without check words */
  W_ENDPOINT = 64, /* EndpointLine[2], 64 bytes each: u32 state, u32, u64 heartbeat, u64 address */
  W_DIRECTION =
      192, /* Direction[2], 256 bytes each: produced, consumed, data_wanted, space_wanted */
  W_CONTROL_BYTES = 704
};
static const uint32_t W_MAGIC_VALUE = 0x434d5649u;
enum { STATE_ABSENT = 0, STATE_LIVE = 1, STATE_CLOSED = 2, STATE_FAILED = 4 };

static uint64_t header_for(uint64_t position, uint32_t length) {
  uint32_t tag = (uint32_t)(position >> 3) | 0x80000000u;
  return ((uint64_t)tag << 32) | length;
}

/* An ivshmem address as ivmc's host platform encodes it: valid bit 32, peer id in bits 0-15,
 * the data vector in 16-23 and the space vector in 24-31. X's vectors are 0 and 1. */
static uint64_t own_address(uint32_t own_id) {
  return (1ull << 32) | (own_id & 0xffffu) | (0ull << 16) | (1ull << 24);
}

/* Joins channel `key` with `vm` (A creates it: retry for up to 5 s), attaches as side 1, then
 * does the named attack and watches A's endpoint state for `failed` for up to 1 s. */
static void ring_attack(int ch, uint32_t vm, uint64_t key, uint32_t own_id, const char* name) {
  double t = now_ms();
  int fd = -1;
  struct reply r;
  memset(&r, 0, sizeof r);
  while (now_ms() - t < 5000) {
    struct request rq = open_request(vm, key, 0);
    r = exchange(ch, &rq, &fd);
    if (r.op == OP_REGION && fd >= 0) break;
    usleep(10000); /* A has not created it yet */
  }
  if (fd < 0) {
    char what[300];
    snprintf(what, sizeof what, "could not join channel %llu with vm %u: %s",
             (unsigned long long)key, vm, r.reason);
    report(name, "VULNERABLE", t, what); /* the harness fails on this: set-up broke */
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < W_CONTROL_BYTES) {
    report(name, "VULNERABLE", t, "region too small for a channel");
    close(fd);
    return;
  }
  unsigned char* m = mmap(0, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) {
    report(name, "VULNERABLE", t, "mmap of the channel failed");
    return;
  }
  /* Wait for the creator's magic (acquire: the identity's other fields are then visible). */
  /* Acquire: pairs with the creator's release of the magic; the identity is complete. */
  while (__atomic_load_n((uint32_t*)(m + W_MAGIC), __ATOMIC_ACQUIRE) != W_MAGIC_VALUE &&
         now_ms() - t < 5000)
    usleep(1000);
  uint16_t version = *(uint16_t*)(m + W_VERSION);
  uint32_t ring1_bytes = ((uint32_t*)(m + W_RING_BYTES))[1];
  uint64_t ring1_offset = ((uint64_t*)(m + W_RING_OFFSET))[1];
  uint32_t features = *(uint32_t*)(m + W_FEATURES);
  if (version != 2 || features != 0 || ring1_bytes < 256 ||
      ring1_offset + ring1_bytes > (uint64_t)st.st_size) {
    report(name, "VULNERABLE", t, "unexpected channel identity (version, features or geometry)");
    munmap(m, (size_t)st.st_size);
    return;
  }
  unsigned char* ring = m + ring1_offset;
  unsigned char* own = m + W_ENDPOINT + 64; /* side 1's line */
  uint32_t* peer_state = (uint32_t*)(m + W_ENDPOINT);
  uint64_t* produced = (uint64_t*)(m + W_DIRECTION + 256); /* direction 1: side 1 produces */

  /* Attach as an honest side 1 would: address first, then the state (release). */
  /* Relaxed: published by the acq_rel CAS of the state below. */
  __atomic_store_n((uint64_t*)(own + 16), own_address(own_id), __ATOMIC_RELAXED);
  uint32_t absent = STATE_ABSENT;
  /* Acq_rel: whoever sees us live sees our address. */
  if (!__atomic_compare_exchange_n((uint32_t*)own, &absent, STATE_LIVE, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    report(name, "VULNERABLE", t, "side 1 was already taken");
    munmap(m, (size_t)st.st_size);
    return;
  }
  usleep(100000); /* A sees us live and looks at our address */

  /* Record 1 at position 0: 16 bytes "<name> 0", a small record (one line). */
  char text[16];
  memset(text, 0, sizeof text);
  snprintf(text, sizeof text, "%s 0", name);
  memcpy(ring + 8, text, sizeof text);
  /* Release: the payload is visible before the header that announces it. */
  __atomic_store_n((uint64_t*)ring, header_for(0, sizeof text), __ATOMIC_RELEASE);
  double started = now_ms();
  char what[300];
  if (strcmp(name, "forge_close") == 0) {
    /* Close without ever publishing the produced index: it stays 0 where the record ends at
     * 64 (a close that does not match the records; zeroed headers have their own attack). */
    __atomic_store_n((uint32_t*)own, STATE_CLOSED,
                     __ATOMIC_RELEASE); /* release: after the record */
    snprintf(what, sizeof what,
             "one record, then closed with produced 0 where the records end at 64: ");
  } else {
    /* Record 3 at position 128; position 64 (record 2's header) stays zero; all published. */
    snprintf(text, sizeof text, "%s 2", name);
    memcpy(ring + 128 + 8, text, sizeof text);
    /* Release: payload before header, then the header before the index that covers it. */
    __atomic_store_n((uint64_t*)(ring + 128), header_for(128, sizeof text), __ATOMIC_RELEASE);
    __atomic_store_n(produced, 192, __ATOMIC_RELEASE);
    snprintf(what, sizeof what, "records at 0 and 128 published to 192, header at 64 zero: ");
  }
  /* Watch A for up to 1 s, heartbeating like a live peer meanwhile. */
  int detected = 0;
  while (now_ms() - started < 1000) {
    /* Acquire: A's state as A published it (release). */
    if (__atomic_load_n(peer_state, __ATOMIC_ACQUIRE) == STATE_FAILED) {
      detected = 1;
      break;
    }
    __atomic_fetch_add((uint64_t*)(own + 8), 1, __ATOMIC_RELAXED); /* relaxed: a counter only */
    usleep(1000);
  }
  snprintf(what + strlen(what), sizeof what - strlen(what),
           detected ? "vm %u's endpoint turned failed (a protocol violation) after %.1f ms"
                    : "vm %u did not report a violation within 1 s (%.1f ms)",
           vm, now_ms() - started);
  report(name, detected ? "detected" : "VULNERABLE", started, what);
  munmap(m, (size_t)st.st_size);
}

int main(int argc, char** argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s SOCKET TOKEN_HEX VM_A VM_B KEY VM_C\n", argv[0]);
    return 2;
  }
  const char* main_socket = argv[1];
  unsigned char token[32];
  if (!parse_token(argv[2], token)) return 2;
  const uint32_t vm_a = (uint32_t)strtoul(argv[3], 0, 10), vm_b = (uint32_t)strtoul(argv[4], 0, 10);
  const uint64_t key = strtoull(argv[5], 0, 10);
  const uint32_t vm_c = (uint32_t)strtoul(argv[6], 0, 10);
  char channel_socket[128];
  snprintf(channel_socket, sizeof channel_socket, "%s.ivmc", main_socket);

  /* The main socket, as QEMU would: version, own id, the shared region, then eventfds. */
  int main_fd = connect_unix(main_socket, SOCK_STREAM);
  int64_t value = 0, own_id = -1, other_id = -1;
  int fd = -1, shm_fd = -1;
  if (!read_message(main_fd, &value, &fd) || value != 0) return 3;
  if (!read_message(main_fd, &own_id, &fd)) return 3;
  if (!read_message(main_fd, &value, &shm_fd) || value != -1 || shm_fd < 0) return 3;
  struct pollfd p = {main_fd, POLLIN, 0};
  while (poll(&p, 1, 200) == 1) { /* the other peers' eventfds: note one that is not us */
    if (!read_message(main_fd, &value, &fd)) break;
    if (fd >= 0) close(fd);
    if (value != own_id) other_id = value;
  }
  struct stat st;
  fstat(shm_fd, &st);

  int ch = connect_unix(channel_socket, SOCK_SEQPACKET);
  int got_fd = -1;
  double t = now_ms();

  /* 1. Forge an identity: a token nobody enrolled, then our own token with a peer id that is
   * another process's connection. */
  {
    unsigned char forged[32];
    if (getrandom(forged, sizeof forged, 0) != sizeof forged) return 3;
    struct request rq = hello(forged, (uint32_t)own_id);
    struct reply r = exchange(ch, &rq, &got_fd);
    int first = r.op == OP_REFUSED;
    char what[512];
    snprintf(what, sizeof what, "random token: %s", r.reason);
    rq = hello(token, (uint32_t)(other_id >= 0 ? other_id : own_id + 1));
    r = exchange(ch, &rq, &got_fd);
    int second = r.op == OP_REFUSED;
    snprintf(what + strlen(what), sizeof what - strlen(what), "; own token, peer id %lld: %s",
             (long long)(other_id >= 0 ? other_id : own_id + 1), r.reason);
    report("forge_identity", first && second ? "refused" : "VULNERABLE", t, what);
  }

  /* Now enrol honestly, as VM X. */
  {
    struct request rq = hello(token, (uint32_t)own_id);
    struct reply r = exchange(ch, &rq, &got_fd);
    if (r.op != OP_WELCOME) {
      fprintf(stderr, "foreign client: honest hello refused: %s\n", r.reason);
      return 4;
    }
  }

  /* 2. Map another pair's channel: ask for A-B's key, as a partner of A and of B. */
  t = now_ms();
  {
    char what[700] = "";
    int refused = 1;
    const uint32_t victims[2] = {vm_a, vm_b};
    for (int i = 0; i < 2; ++i) {
      struct request rq = open_request(victims[i], key, 0);
      struct reply r = exchange(ch, &rq, &got_fd);
      snprintf(what + strlen(what), sizeof what - strlen(what), "%svm %u key %llu: %s",
               i ? "; " : "", victims[i], (unsigned long long)key,
               r.op == OP_REFUSED ? r.reason : "GOT A REGION");
      if (r.op != OP_REFUSED) refused = 0;
      if (got_fd >= 0) close(got_fd);
    }
    report("map_other_pair", refused ? "refused" : "VULNERABLE", t, what);
  }

  /* 3. Write into it: the only memory X holds that A and B also map is the main region. Spray
   * all of it; A-B's channel is elsewhere (the harness checks every message they exchange). */
  t = now_ms();
  {
    void* m = mmap(0, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    if (m != MAP_FAILED) {
      unsigned char* b = m;
      for (off_t i = 0; i < st.st_size; ++i) b[i] = (unsigned char)(i * 131 + 7);
      munmap(m, (size_t)st.st_size);
    }
    report("write_into_pair", "refused", t,
           "no fd of the pair's region was ever handed to this process; sprayed every byte of "
           "the main region instead");
  }

  /* 4. Truncate it: X's own channel with A (if the trust list lets X have one) is a sealed
   * memfd; then the main region. */
  t = now_ms();
  {
    char what[600];
    struct request rq = open_request(vm_a, key + 1000, 1 << 16);
    struct reply r = exchange(ch, &rq, &got_fd);
    int own_refused = 1;
    if (r.op == OP_REGION && got_fd >= 0) {
      int rc = ftruncate(got_fd, 0);
      int err = errno;
      int grow = ftruncate(got_fd, 1 << 20);
      int err2 = errno;
      own_refused = rc != 0 && grow != 0;
      snprintf(what, sizeof what, "own channel with vm %u: ftruncate(0) %s, ftruncate(1M) %s", vm_a,
               rc ? strerror(err) : "SUCCEEDED", grow ? strerror(err2) : "SUCCEEDED");
      close(got_fd);
    } else {
      snprintf(what, sizeof what, "no channel with vm %u (%s)", vm_a, r.reason);
    }
    int main_rc = ftruncate(shm_fd, 0);
    snprintf(what + strlen(what), sizeof what - strlen(what),
             "; the pair's region: never handed out; main region ftruncate(0): %s",
             main_rc ? strerror(errno) : "succeeded (the pair does not live there)");
    report("truncate_pair", own_refused ? "refused" : "VULNERABLE", t, what);
  }

  /* 5. Forge a close: a record, then `closed` with a produced index that claims a second
   * record never written. 6. Zeroed headers: records 1 and 3 written, record 2's header left
   * zero, all three published. */
  ring_attack(ch, vm_c, key + 2000, (uint32_t)own_id, "forge_close");
  ring_attack(ch, vm_c, key + 3000, (uint32_t)own_id, "zero_headers");
  close(ch);
  close(main_fd);
  return 0;
}
