/* preload_check: byte-checked TCP scenarios for libivmc-preload.so (issue 17), in plain C so
 * that it is an unmodified program: it only uses the socket API. Run under `ivmc exec`
 * (run_preload_check.sh). Every byte is checked against a pattern; each scenario also checks
 * whether its connection was carried by a ring, asking the library through
 * ivmc_preload_connection_kind (looked up with dlsym, so the program runs without it too).
 *
 *   preload_check all PORT            the in-process scenarios (client here, servers forked)
 *   preload_check serve PORT          an echo server for one connection (another process)
 *   preload_check client PORT KIND    a client of `serve`: expects KIND (ring|kernel)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                              \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)
#define REQUIRE(cond, ...)                                                                         \
  do {                                                                                             \
    const int failures_before = failures;                                                          \
    CHECK(cond, __VA_ARGS__); /* evaluated once */                                                 \
    if (failures != failures_before) exit(1);                                                      \
  } while (0)

/* 0: the kernel's, 1: pending, 2: a ring; -1 without the library. */
static int kind(int fd) {
  int (*f)(int) = NULL;
  void* symbol = dlsym(RTLD_DEFAULT, "ivmc_preload_connection_kind");
  memcpy(&f, &symbol, sizeof f); /* POSIX: a function's address through a data pointer */
  return f ? f(fd) : -1;
}

static unsigned char pattern(uint64_t i, unsigned seed) {
  return (unsigned char)((i * 131u + (i >> 11) + seed) & 0xff);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int listener(int port, int family) {
  int fd = socket(family, SOCK_STREAM, 0);
  REQUIRE(fd >= 0, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (family == AF_INET) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = bind(fd, (struct sockaddr*)&a, sizeof a);
  } else {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    a.sin6_addr = in6addr_loopback;
    rc = bind(fd, (struct sockaddr*)&a, sizeof a);
  }
  REQUIRE(rc == 0, "bind port %d: %s", port, strerror(errno));
  REQUIRE(listen(fd, 16) == 0, "listen: %s", strerror(errno));
  return fd;
}

static int connect_to(int port, int family, int* error) {
  int fd = socket(family, SOCK_STREAM, 0);
  REQUIRE(fd >= 0, "socket: %s", strerror(errno));
  int rc;
  if (family == AF_INET) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, (struct sockaddr*)&a, sizeof a);
  } else {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    a.sin6_addr = in6addr_loopback;
    rc = connect(fd, (struct sockaddr*)&a, sizeof a);
  }
  *error = rc == 0 ? 0 : errno;
  if (rc != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static size_t write_all(int fd, const unsigned char* p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
  }
  return done;
}

/* Reads until `n` bytes or EOF; returns what it read. */
static size_t read_all(int fd, unsigned char* p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = read(fd, p + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += (size_t)r;
  }
  return done;
}

/* A blocking echo server for one connection: echoes until EOF (half-close), then writes the
 * trailer "DONE <bytes>\n" and closes. */
static void echo_connection(int c) {
  static unsigned char buffer[200000];
  uint64_t total = 0;
  for (;;) {
    ssize_t r = read(c, buffer, sizeof buffer);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (write_all(c, buffer, (size_t)r) != (size_t)r) break;
    total += (uint64_t)r;
  }
  char trailer[64];
  int len = snprintf(trailer, sizeof trailer, "DONE %llu\n", (unsigned long long)total);
  write_all(c, (unsigned char*)trailer, (size_t)len);
  close(c);
}

/* The client of an echo: writes pieces of random sizes (up to 600 KB: more than a ring
 * record) and reads each one back, every byte checked; then shuts its sending side and
 * expects the trailer, then EOF. `wait` 1: poll before every read. */
static void echo_client(int fd, uint64_t bytes, unsigned seed, int wait_mode, const char* what) {
  unsigned char* out = malloc(600000);
  unsigned char* in = malloc(600000);
  uint64_t sent = 0;
  unsigned r = seed;
  while (sent < bytes) {
    r = r * 1103515245u + 12345u;
    size_t n = 1 + (r >> 8) % 600000;
    if (n > bytes - sent) n = (size_t)(bytes - sent);
    for (size_t i = 0; i < n; ++i) out[i] = pattern(sent + i, seed);
    REQUIRE(write_all(fd, out, n) == n, "%s: write of %zu at %llu: %s", what, n,
            (unsigned long long)sent, strerror(errno));
    size_t got = 0;
    while (got < n) {
      if (wait_mode == 1) {
        struct pollfd p = {fd, POLLIN, 0};
        REQUIRE(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN), "%s: poll for the echo", what);
      } else if (wait_mode == 2) {
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        struct timeval tv = {10, 0};
        REQUIRE(select(fd + 1, &rs, NULL, NULL, &tv) == 1 && FD_ISSET(fd, &rs),
                "%s: select for the echo", what);
      }
      ssize_t k = read(fd, in + got, n - got);
      REQUIRE(k > 0, "%s: read of the echo at %llu: %zd (%s)", what,
              (unsigned long long)(sent + got), k, strerror(errno));
      got += (size_t)k;
    }
    for (size_t i = 0; i < n; ++i)
      REQUIRE(in[i] == out[i], "%s: byte %llu is %u, sent %u", what,
              (unsigned long long)(sent + i), in[i], out[i]);
    sent += n;
  }
  REQUIRE(shutdown(fd, SHUT_WR) == 0, "%s: shutdown: %s", what, strerror(errno));
  char trailer[64] = {0};
  size_t t = read_all(fd, (unsigned char*)trailer, sizeof trailer - 1);
  char expected[64];
  snprintf(expected, sizeof expected, "DONE %llu\n", (unsigned long long)bytes);
  CHECK(t == strlen(expected) && strcmp(trailer, expected) == 0,
        "%s: after half-close the server said '%s' (%zu bytes), expected '%s'", what, trailer, t,
        expected);
  char extra;
  CHECK(read(fd, &extra, 1) == 0, "%s: no EOF after the trailer", what);
  free(out);
  free(in);
}

static pid_t fork_server(int lfd, int fork_after_accept) {
  pid_t pid = fork();
  REQUIRE(pid >= 0, "fork");
  if (pid != 0) return pid;
  alarm(60);
  int c = accept(lfd, NULL, NULL);
  if (c < 0) _exit(2);
  close(lfd);
  if (fork_after_accept == 2) { /* a helper forked after accept exits at once */
    pid_t helper = fork();
    if (helper < 0) _exit(3);
    if (helper == 0) _exit(0);
    int status = 0;
    waitpid(helper, &status, 0);
  } else if (fork_after_accept == 3) { /* a helper program runs (fork and exec) */
    if (system("exec true") != 0) _exit(5);
  } else if (fork_after_accept) {
    pid_t worker = fork();
    if (worker < 0) _exit(3);
    if (worker != 0) { /* the parent lets go of the connection at once, as servers do */
      close(c);
      int status = 0;
      waitpid(worker, &status, 0);
      _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 4);
    }
  }
  echo_connection(c);
  _exit(0);
}

/* A connection to an echo server forked on `port` (IPv4, one connection): its fd, and the
 * server's pid in *server for expect_child. */
static int connect_to_echo(int port, pid_t* server, const char* what) {
  int lfd = listener(port, AF_INET);
  *server = fork_server(lfd, 0);
  close(lfd);
  int error = 0;
  int fd = connect_to(port, AF_INET, &error);
  REQUIRE(fd >= 0, "%s: connect: %s", what, strerror(error));
  return fd;
}

static void expect_child(pid_t pid, const char* what) {
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the server exited with %d", what,
        status);
}

static void scenario_echo(int port, int family, int wait_mode, int fork_after_accept,
                          const char* what) {
  const double start = now_s();
  int lfd = listener(port, family);
  pid_t server = fork_server(lfd, fork_after_accept);
  close(lfd);
  int error = 0;
  int fd = connect_to(port, family, &error);
  REQUIRE(fd >= 0, "%s: connect: %s", what, strerror(error));
  echo_client(fd, 24u << 20, (unsigned)port, wait_mode, what);
  CHECK(kind(fd) == 2 || kind(fd) == -1, "%s: the connection is not on a ring (kind %d)", what,
        kind(fd));
  close(fd);
  expect_child(server, what);
  printf("ok %s (%.2f s)\n", what, now_s() - start);
}

/* Non-blocking, both directions at once through epoll (or poll), every byte checked: the
 * client streams `bytes` and reads the echo as it comes. */
static void scenario_nonblocking(int port, int use_epoll, const char* what) {
  pid_t server = 0;
  int fd = connect_to_echo(port, &server, what);
  REQUIRE(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "O_NONBLOCK");
  const uint64_t bytes = 64u << 20;
  unsigned char* buffer = malloc(1 << 17);
  uint64_t sent = 0, received = 0;
  unsigned seed = 7;
  int ep = -1;
  if (use_epoll) {
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = 0xfeedbeef};
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl: %s", strerror(errno));
  }
  int shut = 0, eagain_reads = 0;
  double give_up = now_s() + 60;
  while (received < bytes) {
    REQUIRE(now_s() < give_up, "%s: stuck at %llu sent, %llu received", what,
            (unsigned long long)sent, (unsigned long long)received);
    int readable = 0, writable = 0;
    if (use_epoll) {
      struct epoll_event ev;
      int n = epoll_wait(ep, &ev, 1, 5000);
      REQUIRE(n == 1, "%s: epoll_wait returned %d", what, n);
      REQUIRE(ev.data.u64 == 0xfeedbeef, "%s: epoll data %llx", what,
              (unsigned long long)ev.data.u64);
      readable = (ev.events & EPOLLIN) != 0;
      writable = (ev.events & EPOLLOUT) != 0;
    } else {
      struct pollfd p = {fd, POLLIN | (sent < bytes ? POLLOUT : 0), 0};
      int n = poll(&p, 1, 5000);
      REQUIRE(n == 1, "%s: poll returned %d", what, n);
      readable = (p.revents & POLLIN) != 0;
      writable = (p.revents & POLLOUT) != 0;
    }
    if (writable && sent < bytes) {
      size_t n = 1 + (size_t)((sent * 2654435761u) % 100000);
      if (n > bytes - sent) n = (size_t)(bytes - sent);
      for (size_t i = 0; i < n; ++i) buffer[i] = pattern(sent + i, seed);
      ssize_t w = write(fd, buffer, n);
      REQUIRE(w > 0 || errno == EAGAIN, "%s: write: %s", what, strerror(errno));
      if (w > 0) sent += (uint64_t)w;
      if (sent == bytes && use_epoll) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xfeedbeef};
        REQUIRE(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0, "epoll_ctl MOD");
      }
    }
    if (readable) {
      uint64_t room = bytes - received; /* the trailer follows the echo */
      ssize_t r = read(fd, buffer, room < (1 << 17) ? (size_t)room : (size_t)(1 << 17));
      if (r < 0 && errno == EAGAIN) {
        ++eagain_reads;
        continue;
      }
      REQUIRE(r > 0, "%s: read at %llu: %zd (%s)", what, (unsigned long long)received, r,
              strerror(errno));
      for (ssize_t i = 0; i < r; ++i)
        REQUIRE(buffer[i] == pattern(received + (uint64_t)i, seed), "%s: byte %llu differs", what,
                (unsigned long long)(received + (uint64_t)i));
      received += (uint64_t)r;
    }
    if (sent == bytes && !shut) {
      shutdown(fd, SHUT_WR);
      shut = 1;
    }
  }
  CHECK(kind(fd) == 2 || kind(fd) == -1, "%s: not on a ring (kind %d)", what, kind(fd));
  /* The trailer, then EOF, non-blocking: EAGAIN until they come. */
  char trailer[64] = {0};
  size_t t = 0;
  int eof = 0;
  while (!eof && now_s() < give_up) {
    ssize_t r = read(fd, trailer + t, sizeof trailer - 1 - t);
    if (r > 0) t += (size_t)r;
    else if (r == 0) eof = 1;
    else if (errno == EAGAIN) {
      struct pollfd p = {fd, POLLIN, 0};
      poll(&p, 1, 1000);
    } else break;
  }
  char expected[64];
  snprintf(expected, sizeof expected, "DONE %llu\n", (unsigned long long)bytes);
  CHECK(eof && strcmp(trailer, expected) == 0, "%s: trailer '%s', eof %d", what, trailer, eof);
  if (ep >= 0) close(ep);
  close(fd);
  free(buffer);
  expect_child(server, what);
  printf("ok %s (%d reads found nothing)\n", what, eagain_reads);
}

static void scenario_refused(int port) {
  int error = 0;
  int fd = connect_to(port, AF_INET, &error);
  CHECK(fd < 0 && error == ECONNREFUSED, "connect to a closed port: fd %d, %s", fd,
        strerror(error));
  printf("ok connection refused\n");
}

/* kill -9 of the server while the client is blocked reading, and while it is blocked writing
 * into a full ring: both wake with EOF or ECONNRESET (EPIPE for the writer), never hang. */
static void scenario_kill(int port, int blocked_in_write) {
  const char* what = blocked_in_write ? "kill -9, writer blocked" : "kill -9, reader blocked";
  int lfd = listener(port, AF_INET);
  pid_t server = fork();
  REQUIRE(server >= 0, "fork");
  if (server == 0) {
    int c = accept(lfd, NULL, NULL);
    char byte = 'x';
    write(c, &byte, 1); /* says "accepted"; then reads nothing */
    pause();
    _exit(0);
  }
  close(lfd);
  int error = 0;
  int fd = connect_to(port, AF_INET, &error);
  REQUIRE(fd >= 0, "%s: connect: %s", what, strerror(error));
  char byte;
  REQUIRE(read(fd, &byte, 1) == 1 && byte == 'x', "%s: the server's first byte", what);
  CHECK(kind(fd) == 2 || kind(fd) == -1, "%s: not on a ring (kind %d)", what, kind(fd));
  pid_t killer = fork();
  if (killer == 0) {
    usleep(300000);
    kill(server, SIGKILL);
    _exit(0);
  }
  signal(SIGPIPE, SIG_IGN);
  alarm(20); /* a hang fails the test by SIGALRM */
  double start = now_s();
  if (blocked_in_write) {
    static unsigned char block[1 << 16];
    ssize_t w;
    while ((w = write(fd, block, sizeof block)) > 0) {
    }
    CHECK(w < 0 && (errno == EPIPE || errno == ECONNRESET), "%s: write ended with %zd (%s)",
          what, w, strerror(errno));
  } else {
    ssize_t r = read(fd, &byte, 1);
    CHECK(r == 0 || (r < 0 && errno == ECONNRESET), "%s: read returned %zd (%s)", what, r,
          strerror(errno));
  }
  alarm(0);
  double took = now_s() - start;
  CHECK(took < 5, "%s: woke after %.2f s", what, took);
  waitpid(killer, NULL, 0);
  waitpid(server, NULL, 0);
  close(fd);
  printf("ok %s (woke %.0f ms after the start, the kill at 300 ms)\n", what, took * 1000);
}

/* Names, dup, FIONREAD, MSG_PEEK, readv/writev and sendmsg/recvmsg on a ring connection. */
static void scenario_calls(int port) {
  const char* what = "names, dup, FIONREAD, peek, vectors";
  pid_t server = 0;
  int fd = connect_to_echo(port, &server, what);
  struct sockaddr_in self, peer;
  socklen_t a = sizeof self, b = sizeof peer;
  CHECK(getsockname(fd, (struct sockaddr*)&self, &a) == 0 && ntohs(self.sin_port) != 0,
        "getsockname");
  CHECK(getpeername(fd, (struct sockaddr*)&peer, &b) == 0 && ntohs(peer.sin_port) == port,
        "getpeername: port %d", ntohs(peer.sin_port));
  int nodelay = 1;
  CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay) == 0, "setsockopt");
  int d = dup(fd);
  close(fd); /* the connection lives on through the duplicate */
  fd = d;
  unsigned char part1[100], part2[200];
  for (int i = 0; i < 100; ++i) part1[i] = pattern((uint64_t)i, 3);
  for (int i = 0; i < 200; ++i) part2[i] = pattern((uint64_t)(100 + i), 3);
  struct iovec out[2] = {{part1, 100}, {part2, 200}};
  CHECK(writev(fd, out, 2) == 300, "writev");
  struct pollfd p = {fd, POLLIN, 0};
  CHECK(poll(&p, 1, 5000) == 1, "poll for the echo");
  int avail = 0;
  CHECK(ioctl(fd, FIONREAD, &avail) == 0 && avail > 0 && avail <= 300, "FIONREAD %d", avail);
  unsigned char peeked[10];
  CHECK(recv(fd, peeked, 10, MSG_PEEK) == 10 && memcmp(peeked, part1, 10) == 0, "MSG_PEEK");
  struct sockaddr_storage source;
  socklen_t source_length = sizeof source;
  CHECK(recvfrom(fd, peeked, 10, MSG_PEEK, (struct sockaddr*)&source, &source_length) == 10 &&
            source_length == 0,
        "recvfrom: a stream's source address has length %u, as TCP's 0", (unsigned)source_length);
  unsigned char in1[50], in2[250];
  struct iovec vin[2] = {{in1, 50}, {in2, 250}};
  struct sockaddr_storage from;
  struct msghdr m = {.msg_iov = vin, .msg_iovlen = 2};
  size_t got = 0;
  while (got < 300) { /* the echo may come in pieces */
    struct iovec rest[2];
    int n = 0;
    if (got < 50) rest[n++] = (struct iovec){in1 + got, 50 - got};
    rest[n++] = got < 50 ? (struct iovec){in2, 250} : (struct iovec){in2 + (got - 50), 300 - got};
    m.msg_iov = rest;
    m.msg_iovlen = (size_t)n;
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    ssize_t r = recvmsg(fd, &m, MSG_WAITALL);
    REQUIRE(r > 0, "recvmsg: %zd", r);
    CHECK(m.msg_namelen == 0, "recvmsg: a stream's source address has length %u, as TCP's 0",
          (unsigned)m.msg_namelen);
    got += (size_t)r;
  }
  for (int i = 0; i < 50; ++i) CHECK(in1[i] == pattern((uint64_t)i, 3), "recvmsg byte %d", i);
  for (int i = 0; i < 250; ++i)
    CHECK(in2[i] == pattern((uint64_t)(50 + i), 3), "recvmsg byte %d", 50 + i);
  CHECK(kind(fd) == 2 || kind(fd) == -1, "%s: the dup is not on a ring (kind %d)", what, kind(fd));
  shutdown(fd, SHUT_WR);
  char trailer[64] = {0};
  read_all(fd, (unsigned char*)trailer, sizeof trailer - 1);
  CHECK(strcmp(trailer, "DONE 300\n") == 0, "trailer '%s'", trailer);
  close(fd);
  expect_child(server, what);
  printf("ok %s\n", what);
}

/* An event loop that changes its interest for every request, as redis-benchmark (ae) does:
 * ADD for writing, write the request, DEL, ADD for reading, wait, read the reply. Every reply
 * byte is checked, and so is what epoll says between: a deleted fd reports nothing even when
 * its reply has arrived, a second ADD is EEXIST, and MOD or DEL of a deleted fd is ENOENT. */
static void scenario_epoll_interest(int port) {
  const char* what = "epoll interest changed per request";
  pid_t server = 0;
  int fd = connect_to_echo(port, &server, what);
  REQUIRE(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "O_NONBLOCK");
  int ep = epoll_create1(0);
  REQUIRE(ep >= 0, "epoll_create1");
  const int requests = 3000, size = 100;
  unsigned char request[100], reply[100];
  uint64_t at = 0;
  int quiet_checked = 0, eagain_writes = 0;
  const double give_up = now_s() + 60;
  for (int i = 0; i < requests; ++i) {
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = 0xabc0 + (uint64_t)i};
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "%s: ADD for writing: %s", what,
            strerror(errno));
    if (i == 0) {
      CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1 && errno == EEXIST,
            "%s: a second ADD: %s", what, strerror(errno));
    }
    struct epoll_event got;
    for (int j = 0; j < size; ++j) request[j] = pattern(at + (uint64_t)j, 5);
    for (;;) { /* a connection still being set up may say EAGAIN: wait and try again */
      REQUIRE(epoll_wait(ep, &got, 1, 5000) == 1 && (got.events & EPOLLOUT) &&
                  got.data.u64 == 0xabc0 + (uint64_t)i,
              "%s: request %d: not writable", what, i);
      ssize_t w = write(fd, request, size);
      if (w < 0 && errno == EAGAIN) {
        ++eagain_writes;
        REQUIRE(now_s() < give_up, "%s: request %d: EAGAIN for too long", what, i);
        continue;
      }
      REQUIRE(w == size, "%s: request %d: write: %zd (%s)", what, i, w, strerror(errno));
      break;
    }
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) == 0, "%s: DEL: %s", what, strerror(errno));
    if (i % 500 == 0) {
      /* Deleted: the echo arrives, but the set says nothing of it. */
      CHECK(epoll_wait(ep, &got, 1, 50) == 0, "%s: request %d: an event for a deleted fd", what,
            i);
      struct epoll_event mod = {.events = EPOLLIN};
      CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &mod) == -1 && errno == ENOENT,
            "%s: MOD of a deleted fd: %s", what, strerror(errno));
      CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) == -1 && errno == ENOENT,
            "%s: DEL of a deleted fd: %s", what, strerror(errno));
      ++quiet_checked;
    }
    ev.events = EPOLLIN;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "%s: ADD for reading: %s", what,
            strerror(errno));
    size_t have = 0;
    while (have < (size_t)size) {
      REQUIRE(epoll_wait(ep, &got, 1, 5000) == 1 && (got.events & EPOLLIN) &&
                  got.data.u64 == 0xabc0 + (uint64_t)i,
              "%s: request %d: no reply after %zu bytes", what, i, have);
      ssize_t r = read(fd, reply + have, (size_t)size - have);
      if (r < 0 && errno == EAGAIN) continue;
      REQUIRE(r > 0, "%s: read: %zd (%s)", what, r, strerror(errno));
      have += (size_t)r;
    }
    REQUIRE(memcmp(reply, request, (size_t)size) == 0, "%s: reply %d differs", what, i);
    at += (uint64_t)size;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) == 0, "%s: DEL after reading", what);
  }
  CHECK(kind(fd) == 2 || kind(fd) == -1, "%s: not on a ring (kind %d)", what, kind(fd));
  REQUIRE(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0, "blocking again");
  shutdown(fd, SHUT_WR);
  char trailer[64] = {0}, expected[64];
  read_all(fd, (unsigned char*)trailer, sizeof trailer - 1);
  snprintf(expected, sizeof expected, "DONE %llu\n", (unsigned long long)at);
  CHECK(strcmp(trailer, expected) == 0, "%s: trailer '%s'", what, trailer);
  close(ep);
  close(fd);
  expect_child(server, what);
  printf("ok %s (%d requests, %d quiet checks, %d writes found no room)\n", what, requests,
         quiet_checked, eagain_writes);
}

/* exec: a ring connection's fd does not reach a program run by exec (it would read the
 * doorbell's bytes as data); a kernel connection's does. fcntl(F_GETFD) reports the
 * application's own flag either way, and the connection goes on working in this process. */
static void scenario_exec(int port) {
  const char* what = "exec does not pass a ring connection on";
  pid_t server = 0;
  int fd = connect_to_echo(port, &server, what);
  unsigned char hello[10], back[10];
  for (int i = 0; i < 10; ++i) hello[i] = pattern((uint64_t)i, 9);
  REQUIRE(write_all(fd, hello, 10) == 10 && read_all(fd, back, 10) == 10 &&
              memcmp(hello, back, 10) == 0,
          "%s: a first echo", what);
  const int k = kind(fd);
  CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0, "%s: F_GETFD says close-on-exec (kind %d)", what,
        k);
  pid_t child = fork();
  REQUIRE(child >= 0, "fork");
  if (child == 0) {
    char command[64];
    snprintf(command, sizeof command, "[ -e /proc/self/fd/%d ]", fd);
    execl("/bin/sh", "sh", "-c", command, (char*)NULL);
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) != 127, "%s: exec failed", what);
  if (k == 2) {
    CHECK(WEXITSTATUS(status) == 1, "%s: the ring connection's fd reached the new program", what);
  } else {
    CHECK(WEXITSTATUS(status) == 0, "%s: the kernel connection's fd did not reach it", what);
  }
  CHECK(fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0,
        "%s: F_SETFD FD_CLOEXEC then F_GETFD", what);
  CHECK(fcntl(fd, F_SETFD, 0) == 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0,
        "%s: F_SETFD 0 then F_GETFD", what);
  /* Still a working connection here: another echo, then the server's count of both. */
  REQUIRE(write_all(fd, hello, 10) == 10 && read_all(fd, back, 10) == 10 &&
              memcmp(hello, back, 10) == 0,
          "%s: an echo after the exec", what);
  REQUIRE(shutdown(fd, SHUT_WR) == 0, "%s: shutdown", what);
  char trailer[64] = {0};
  read_all(fd, (unsigned char*)trailer, sizeof trailer - 1);
  CHECK(strcmp(trailer, "DONE 20\n") == 0, "%s: trailer '%s'", what, trailer);
  close(fd);
  expect_child(server, what);
  printf("ok %s (kind %d)\n", what, k);
}

static int run_all(int port) {
  scenario_echo(port, AF_INET, 0, 0, "blocking, IPv4");
  scenario_echo(port + 1, AF_INET6, 0, 0, "blocking, IPv6");
  scenario_echo(port + 2, AF_INET, 1, 0, "blocking with poll");
  scenario_echo(port + 3, AF_INET, 2, 0, "blocking with select");
  scenario_nonblocking(port + 4, 1, "non-blocking with epoll");
  scenario_nonblocking(port + 5, 0, "non-blocking with poll");
  scenario_echo(port + 6, AF_INET, 0, 1, "fork after accept");
  scenario_echo(port + 12, AF_INET, 0, 2, "a forked helper exits, the server goes on");
  scenario_echo(port + 13, AF_INET, 0, 3, "a helper program runs, the server goes on");
  scenario_refused(port + 7);
  scenario_kill(port + 8, 0);
  scenario_kill(port + 9, 1);
  scenario_calls(port + 10);
  scenario_epoll_interest(port + 11);
  scenario_exec(port + 14);
  return failures == 0 ? 0 : 1;
}

static int run_serve(int port) {
  int lfd = listener(port, AF_INET);
  printf("listening\n");
  fflush(stdout);
  int c = accept(lfd, NULL, NULL);
  REQUIRE(c >= 0, "accept");
  int k = kind(c);
  echo_connection(c);
  close(lfd);
  printf("served (kind %d)\n", k);
  return 0;
}

static int run_client(int port, const char* expect) {
  int error = 0, fd = -1;
  for (int i = 0; i < 100 && fd < 0; ++i) { /* the server may still be starting */
    fd = connect_to(port, AF_INET, &error);
    if (fd < 0) usleep(50000);
  }
  REQUIRE(fd >= 0, "connect: %s", strerror(error));
  echo_client(fd, 4u << 20, 11, 0, "fallback client");
  int k = kind(fd);
  int want = strcmp(expect, "ring") == 0 ? 2 : 0;
  CHECK(k == want, "the connection's kind is %d, expected %d (%s)", k, want, expect);
  close(fd);
  printf("ok client, %s\n", expect);
  return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && strcmp(argv[1], "all") == 0) return run_all(atoi(argv[2]));
  if (argc >= 3 && strcmp(argv[1], "serve") == 0) return run_serve(atoi(argv[2]));
  if (argc >= 4 && strcmp(argv[1], "client") == 0) return run_client(atoi(argv[2]), argv[3]);
  fprintf(stderr, "usage: preload_check all PORT | serve PORT | client PORT ring|kernel\n");
  return 2;
}
