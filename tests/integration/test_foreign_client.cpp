// Issue 16: a channel's memory that no third process can touch. Two ivmc peers (VM A, VM B)
// stream through a real ivshmem server's channel socket while a foreign client
// (tests/foreign/foreign_client.c: plain C, no ivmc code), itself enrolled as VM X, attacks
// their channel. Every attack must be refused or detected within 1 s, the pair must receive
// exactly what was sent, and no process may die. Also: the server's refusals reach an ivmc
// peer at attach, naming the reason, and a client refuses an unsealed region.
#include "ivmc/kvm/channel_broker_client.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"
#include "ivmc/posix/clock.hpp"

#include "../support/host_fixture.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#ifndef IVMC_FOREIGN_CLIENT_BIN
#error "IVMC_FOREIGN_CLIENT_BIN must name the foreign client binary"
#endif

using namespace ivmc;
using namespace ivmc::test;

namespace {

constexpr VmId kA = 1, kB = 2, kX = 3, kC = 4;
constexpr std::uint64_t kKey = 7;
constexpr std::uint32_t kRing = 64 * 1024;

struct Enrolled {
  kvm::EnrolmentToken a = kvm::random_token(), b = kvm::random_token(), x = kvm::random_token(),
                      c = kvm::random_token();
};

// A server whose channel socket enrols A, B, X and C (this uid), and trusts A<->B, X<->A and
// X<->C.
kvm::IvshmemServerOptions server_options(const std::string& tag, const Enrolled& e,
                                         std::vector<std::string>* log = nullptr) {
  kvm::IvshmemServerOptions o;
  const std::string name = "ivmc-test-" + tag + "-" + std::to_string(::getpid());
  o.socket_path = "/tmp/" + name + ".sock";
  o.shm_name = name;
  o.size = 1 << 20;
  o.log = [log](std::string_view line) {
    if (log) log->emplace_back(line);
  };
  o.channel_socket = true;
  o.enrolments = {
      {e.a, ::getuid(), kA}, {e.b, ::getuid(), kB}, {e.x, ::getuid(), kX}, {e.c, ::getuid(), kC}};
  TrustList trust;
  for (auto [p, q] : {std::pair{kA, kB}, {kB, kA}, {kX, kA}, {kA, kX}, {kX, kC}, {kC, kX}})
    trust.allow(p, q);
  o.trust = trust;
  return o;
}

std::size_t area_bytes() {
  return kvm::HostPlatform::region_bytes_for(kRing);
}

kvm::EndpointOptions private_endpoint(std::shared_ptr<const kvm::PrivateRegion> region) {
  kvm::EndpointOptions o = test_endpoint(NotifyPolicy::on_demand);
  o.region = std::move(region);
  return o;
}

// Runs a program, returns its stdout; its exit status goes to `status`.
std::string run_program(const std::vector<std::string>& args, int& status) {
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  status = reap(pid, 30);
  return text;
}

} // namespace

TEST_CASE(
    "a foreign client cannot map or write or truncate or impersonate its way into a pair channel: "
    "the pair receives exactly what was sent",
    "[host][integration][security]") {
  Enrolled tokens;
  std::vector<std::string> log;
  kvm::IvshmemServerThread server(server_options("foreign", tokens, &log));
  const std::string socket = server.socket_path();
  constexpr std::uint64_t kCount = 4000;
  constexpr std::size_t kMax = 1024;

  const pid_t a = spawn([&]() -> int {
    auto platform = kvm::HostPlatform::connect(socket, 5 * kSecond, 16, tokens.a);
    auto ep = platform->create_channel(
        private_endpoint(platform->open_region(kB, kKey, area_bytes(), 5 * kSecond)));
    if (ep->wait_for_peer(5 * kSecond) != Errc::ok) return 10;
    std::vector<std::byte> msg(kMax);
    for (std::uint64_t seq = 0; seq < kCount; ++seq) {
      const std::size_t n = message_size(seq, kMax);
      fill_message(msg.data(), n, seq);
      if (ep->channel().send(std::span(msg.data(), n), 10 * kSecond) != Errc::ok) return 11;
      if (seq % 100 == 0) ::usleep(20'000); // stream for as long as the attacks take
    }
    return ep->channel().close(10 * kSecond) == Errc::ok ? 0 : 12;
  });
  const pid_t b = spawn([&]() -> int {
    auto platform = kvm::HostPlatform::connect(socket, 5 * kSecond, 16, tokens.b);
    std::shared_ptr<const kvm::PrivateRegion> region;
    for (int i = 0; i < 500 && !region; ++i) {
      try {
        region = platform->open_region(kA, kKey, 0, 5 * kSecond);
      } catch (const kvm::ChannelRefused&) {
        ::usleep(10'000); // A has not created it yet
      }
    }
    if (!region) return 20;
    auto ep = platform->attach_channel(private_endpoint(region), 5 * kSecond);
    std::vector<std::byte> got(kMax), want(kMax);
    for (std::uint64_t seq = 0; seq < kCount; ++seq) {
      std::size_t n = 0;
      if (ep->channel().recv(got, n, 10 * kSecond) != Errc::ok) return 21;
      const std::size_t expect = message_size(seq, kMax);
      fill_message(want.data(), expect, seq);
      if (n != expect || std::memcmp(got.data(), want.data(), n) != 0) return 22;
    }
    std::size_t n = 0;
    return ep->channel().recv(got, n, 10 * kSecond) == Errc::peer_closed ? 0 : 23;
  });

  // VM C creates the two channels with X that the foreign client attacks from inside
  // (forge_close, zero_headers). It must receive exactly the one record X really wrote into
  // each, then a protocol_violation (not peer_closed, not a hang), within 1 s.
  const pid_t c = spawn([&]() -> int {
    auto platform = kvm::HostPlatform::connect(socket, 5 * kSecond, 16, tokens.c);
    posix::MonotonicClock clock;
    int rc = 0;
    for (const auto& [key, name] : {std::pair{kKey + 2000, std::string("forge_close")},
                                    std::pair{kKey + 3000, std::string("zero_headers")}}) {
      auto ep = platform->create_channel(
          private_endpoint(platform->open_region(kX, key, area_bytes(), 5 * kSecond)));
      if (ep->wait_for_peer(10 * kSecond) != Errc::ok) return 30;
      std::vector<std::byte> got(kMax);
      std::size_t n = 0;
      if (ep->channel().recv(got, n, 10 * kSecond) != Errc::ok) return 31;
      char want[16] = {};
      std::snprintf(want, sizeof want, "%s 0", name.c_str());
      if (n != sizeof want || std::memcmp(got.data(), want, n) != 0) return 32;
      const Nanos after_first = clock.now();
      const Errc e = ep->channel().recv(got, n, 10 * kSecond);
      const double ms = static_cast<double>(clock.now() - after_first) / 1e6;
      std::fprintf(stderr, "vm C on %s: %s after %.1f ms: %s\n", name.c_str(),
                   std::string(to_string(e)).c_str(), ms, ep->channel().error_detail().c_str());
      if (e != Errc::protocol_violation)
        rc = rc ? rc : 33;
      else if (ms >= 1000)
        rc = rc ? rc : 34;
    }
    return rc;
  });

  ::usleep(300'000); // the pair is streaming
  int status = -1;
  const std::string out =
      run_program({IVMC_FOREIGN_CLIENT_BIN, socket, kvm::token_hex(tokens.x), std::to_string(kA),
                   std::to_string(kB), std::to_string(kKey), std::to_string(kC)},
                  status);
  INFO("foreign client output:\n" << out);
  CHECK(status == 0);
  std::istringstream lines(out);
  std::string line;
  std::vector<std::string> seen;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string tag, name, verdict;
    double ms = -1;
    words >> tag >> name >> verdict >> ms;
    if (tag != "ATTACK") continue;
    INFO(line);
    seen.push_back(name);
    CHECK((verdict == "refused" || verdict == "detected"));
    CHECK(ms >= 0);
    CHECK(ms < 1000);
  }
  CHECK(seen == std::vector<std::string>{"forge_identity", "map_other_pair", "write_into_pair",
                                         "truncate_pair", "forge_close", "zero_headers"});
  CHECK(reap(c, 60) == 0); // only what X wrote, then a protocol_violation within 1 s, twice
  CHECK(reap(a, 60) == 0); // sent everything, and B consumed it all
  CHECK(reap(b, 60) == 0); // received every message, each one checked
}

TEST_CASE("the server refuses a channel the trust list does not admit, at attach, naming why",
          "[host][integration][security]") {
  Enrolled tokens;
  kvm::IvshmemServerThread server(server_options("refuse", tokens));
  const std::string socket = server.socket_path();
  auto x = kvm::HostPlatform::connect(socket, 5 * kSecond, 16, tokens.x);
  CHECK(x->enrolled_vm() == kX);
  try {
    x->open_region(kB, kKey, area_bytes(), 5 * kSecond);
    FAIL("vm 3 got a region with vm 2, which the trust list does not admit");
  } catch (const kvm::ChannelRefused& e) {
    CHECK(std::string(e.what()).find("trust list does not admit vm 3 and vm 2") !=
          std::string::npos);
  }
  // X and A trust each other: X gets a region, sealed: it cannot shrink or grow it.
  CHECK(x->open_region(kA, kKey, area_bytes(), 5 * kSecond)->region().size == area_bytes());

  auto nobody = kvm::HostPlatform::connect(socket, 5 * kSecond);
  CHECK_THROWS_AS(nobody->open_region(kA, kKey, area_bytes(), 5 * kSecond), kvm::ChannelRefused);
  // One live process per VM: a second holder of X's token is refused while X is connected.
  try {
    kvm::HostPlatform::connect(socket, 5 * kSecond, 16, tokens.x);
    FAIL("a second process was enrolled as vm 3 while the first is connected");
  } catch (const kvm::ChannelRefused& e) {
    CHECK(std::string(e.what()).find("vm 3 is already enrolled by pid") != std::string::npos);
  }
  kvm::EnrolmentToken forged = kvm::random_token();
  try {
    kvm::HostPlatform::connect(socket, 5 * kSecond, 16, forged);
    FAIL("a forged token was enrolled");
  } catch (const kvm::ChannelRefused& e) {
    CHECK(std::string(e.what()).find("not enrolled") != std::string::npos);
  }
  // A process that left this host (its main-socket peer detached, as the host backend does on a
  // migration) may come back with its token while its old connection object still exists.
  x->detach("moved to another host");
  std::unique_ptr<kvm::HostPlatform> back;
  for (int i = 0; i < 200 && !back; ++i) {
    try {
      back = kvm::HostPlatform::connect(socket, 5 * kSecond, 16, tokens.x);
    } catch (const kvm::ChannelRefused& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find("already enrolled") != std::string::npos);
      ::usleep(10'000); // the server has not seen the old peer leave yet
    }
  }
  REQUIRE(back);
  CHECK(back->enrolled_vm() == kX);
  CHECK(back->open_region(kA, kKey, area_bytes(), 5 * kSecond)->region().size == area_bytes());
}

TEST_CASE("a client refuses an unsealed region: a member could truncate it under the mapping",
          "[host][integration][security]") {
  // A fake channel server that welcomes anyone and hands a plain, unsealed memfd.
  const std::string path = "/tmp/ivmc-test-unsealed-" + std::to_string(::getpid()) + ".ivmc";
  ::unlink(path.c_str());
  posix::UniqueFd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener.get(), 1) == 0);
  std::thread fake([&] {
    posix::UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    kvm::broker::Request rq;
    for (int i = 0; i < 2 && ::recv(c.get(), &rq, sizeof rq, 0) == sizeof rq; ++i) {
      kvm::broker::Reply r;
      r.op = rq.op == kvm::broker::Op::hello ? kvm::broker::Op::welcome : kvm::broker::Op::region;
      r.vm = rq.op == kvm::broker::Op::hello ? kA : rq.peer_vm;
      r.key = rq.key;
      r.bytes = 65536;
      posix::UniqueFd memfd(::memfd_create("unsealed", MFD_CLOEXEC));
      REQUIRE(::ftruncate(memfd.get(), 65536) == 0);
      iovec iov{&r, sizeof r};
      msghdr h{};
      h.msg_iov = &iov;
      h.msg_iovlen = 1;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      if (r.op == kvm::broker::Op::region) {
        h.msg_control = control;
        h.msg_controllen = sizeof control;
        cmsghdr* cm = CMSG_FIRSTHDR(&h);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        const int f = memfd.get();
        std::memcpy(CMSG_DATA(cm), &f, sizeof f);
      }
      ::sendmsg(c.get(), &h, MSG_NOSIGNAL);
    }
  });
  {
    kvm::ChannelBrokerClient client(path, kvm::random_token(), 0, 5 * kSecond);
    try {
      client.open(kB, kKey, 65536, 5 * kSecond);
      FAIL("an unsealed region was accepted");
    } catch (const kvm::IvshmemError& e) {
      CHECK(std::string(e.what()).find("seals") != std::string::npos);
    }
  }
  fake.join();
  ::unlink(path.c_str());
}

TEST_CASE("a member whose channel address names another peer id than the server's is refused",
          "[host][integration][security]") {
  Enrolled tokens;
  kvm::IvshmemServerThread server(server_options("lie", tokens));
  const std::string socket = server.socket_path();
  auto a = kvm::HostPlatform::connect(socket, 5 * kSecond, 16, tokens.a);
  auto bystander = kvm::HostPlatform::connect(socket, 5 * kSecond);
  // X enrols first, so the server names its peer id when A gets the region.
  const pid_t x = spawn([&]() -> int {
    auto mine = kvm::HostPlatform::connect(socket, 5 * kSecond, 16, tokens.x);
    ::usleep(300'000); // A has its region by now
    auto region = mine->open_region(kA, kKey, 0, 5 * kSecond);
    // Attach as side 1 with the bystander's peer id as its address: the channel layer lets
    // it, the platform of A must not believe it.
    posix::MonotonicClock clock;
    kvm::LateBoundDoorbell bell;
    ChannelConfig cfg = test_endpoint(NotifyPolicy::on_demand).channel;
    cfg.platform_address = kvm::IvshmemAddress{bystander->id(), {0, 1}}.encode();
    Opened opened = Channel::attach(region->region(), cfg, bell, clock);
    if (opened.error != Errc::ok) return 30;
    ::pause();
    return 0;
  });
  ::usleep(100'000); // X has enrolled
  auto ep =
      a->create_channel(private_endpoint(a->open_region(kX, kKey, area_bytes(), 5 * kSecond)));
  std::string refusal;
  try {
    ep->wait_for_peer(5 * kSecond);
  } catch (const std::exception& e) {
    refusal = e.what();
  }
  ::kill(x, SIGKILL);
  reap(x, 10);
  INFO(refusal);
  CHECK(refusal.find("the server handed this channel to peer") != std::string::npos);
}
