// `ivmc exec`: see exec_command.hpp.
#include "exec_command.hpp"

#include "ivmc/kvm/channel_broker.hpp"
#include "ivmc/kvm/channel_broker_protocol.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace ivmc::cli {
namespace {

namespace broker = ivmc::kvm::broker;

std::runtime_error failure(const std::string& what) {
  return std::runtime_error("exec: " + what);
}

// Makes `dir` (mode 0700) if missing; refuses one that is not a directory of this uid.
void private_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw failure(fmt::format("mkdir {}: {}", dir, std::strerror(errno)));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid())
    throw failure(fmt::format("{} is not a directory of uid {}", dir, ::getuid()));
}

int connect_channel_socket(const std::string& host) {
  const std::string path = host + ".ivmc";
  sockaddr_un address{};
  if (path.size() >= sizeof address.sun_path)
    throw failure(fmt::format("the host socket path {} is too long", host));
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) throw failure(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The shm name of the service's (unused) main region: one per host socket.
std::string shm_name_for(const std::string& host) {
  std::uint64_t h = 1469598103934665603ull; // FNV-1a
  for (unsigned char c : host) h = (h ^ c) * 1099511628211ull;
  return fmt::format("ivmc-exec-{}-{:016x}", ::getuid(), h);
}

// Starts the host's service, detached (its own session; log next to the socket).
void start_service(const std::string& host) {
  const std::string self = "/proc/self/exe";
  const pid_t pid = ::fork();
  if (pid < 0) throw failure(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setsid();
    if (::fork() != 0) ::_exit(0); // the service is nobody's child
    const int null = ::open("/dev/null", O_RDONLY);
    const int log = ::open((host + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (null >= 0) ::dup2(null, 0);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    const std::string shm = shm_name_for(host);
    ::execl(self.c_str(), "ivmc", "ivshmem-server", "--socket", host.c_str(), "--shm", shm.c_str(),
            "--size", "64K", "--vectors", "1", "--channel-socket", "--exec-enrolment",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
}

int ensure_service(const std::string& host) {
  int fd = connect_channel_socket(host);
  if (fd >= 0) return fd;
  start_service(host);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((fd = connect_channel_socket(host)) < 0) {
    if (std::chrono::steady_clock::now() > give_up)
      throw failure(fmt::format("the host service did not start on {} (see {}.log)", host, host));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return fd;
}

// Enrols a new VM with `token` in `group`; returns its number.
std::uint32_t join(int fd, const kvm::EnrolmentToken& token, const std::string& group) {
  broker::Request request;
  request.op = broker::Op::join;
  std::uint64_t h = 1469598103934665603ull; // FNV-1a of the group's name
  for (unsigned char c : group) h = (h ^ c) * 1099511628211ull;
  request.key = h;
  std::memcpy(request.token, token.data(), token.size());
  if (::send(fd, &request, sizeof request, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof request))
    throw failure(std::string("the host service: send: ") + std::strerror(errno));
  broker::Reply reply;
  const ssize_t n = ::recv(fd, &reply, sizeof reply, 0);
  if (n != static_cast<ssize_t>(sizeof reply) || reply.magic != broker::kMagic)
    throw failure("the host service gave no answer to join");
  reply.reason[sizeof reply.reason - 1] = '\0';
  if (reply.op != broker::Op::welcome)
    throw failure(fmt::format("the host service refused: {}", reply.reason));
  return reply.vm;
}

std::string preload_library() {
  if (const char* env = std::getenv("IVMC_PRELOAD_LIBRARY"); env != nullptr && *env != '\0')
    return env;
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<std::size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    for (const std::string& candidate :
         {dir + "/../lib/libivmc-preload.so", dir + "/../preload/libivmc-preload.so"})
      if (::access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return IVMC_PRELOAD_LIBRARY; // the build tree's
}

pid_t child_pid = 0;
void forward(int signal) {
  if (child_pid > 0) ::kill(child_pid, signal);
}

} // namespace

std::string default_host_socket() {
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run != nullptr && *run == '/') {
    struct stat st {};
    if (::stat(run, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::getuid()) {
      private_directory(std::string(run) + "/ivmc");
      return std::string(run) + "/ivmc/host.sock";
    }
  }
  const std::string dir = fmt::format("/tmp/ivmc-{}", ::getuid());
  private_directory(dir);
  return dir + "/host.sock";
}

CLI::App* add_exec(CLI::App& app, ExecArgs& args) {
  auto* exec = app.add_subcommand(
      "exec", "run an unmodified program whose TCP connections to other `ivmc exec` processes "
              "of this host go through shared-memory rings (docs/preload.md)");
  exec->add_option("--host", args.host,
                   "the host service's socket (default: $XDG_RUNTIME_DIR/ivmc/host.sock or "
                   "/tmp/ivmc-UID/host.sock); started on first use");
  exec->add_option("--group", args.group,
                   "trust group: rings only between processes of the same group")
      ->capture_default_str();
  exec->add_option("command", args.command, "COMMAND ARGS... (after --)")->required();
  return exec;
}

int exec_main(const ExecArgs& args) {
  const std::string host = args.host.empty() ? default_host_socket() : args.host;
  const int service = ensure_service(host); // kept open: the enrolment lives while we do
  const kvm::EnrolmentToken token = kvm::random_token();
  join(service, token, args.group);

  // The token reaches the program (and its children, forked or exec'd) through an inherited
  // memfd, never argv or the environment (docs/security.md).
  const int token_fd = ::memfd_create("ivmc-token", 0);
  if (token_fd < 0 ||
      ::write(token_fd, token.data(), token.size()) != static_cast<ssize_t>(token.size()))
    throw failure(std::string("memfd for the token: ") + std::strerror(errno));
  std::string preload = preload_library();
  if (const char* old = std::getenv("LD_PRELOAD"); old != nullptr && *old != '\0')
    preload += std::string(":") + old;
  ::setenv("LD_PRELOAD", preload.c_str(), 1);
  ::setenv("IVMC_HOST_SOCKET", host.c_str(), 1);
  ::setenv("IVMC_TOKEN_FD", std::to_string(token_fd).c_str(), 1);

  std::vector<char*> argv;
  for (const std::string& a : args.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  child_pid = ::fork();
  if (child_pid < 0) throw failure(std::string("fork: ") + std::strerror(errno));
  if (child_pid == 0) {
    ::execvp(argv[0], argv.data());
    fmt::print(stderr, "ivmc exec: {}: {}\n", args.command[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(token_fd);
  // The terminal's SIGINT reaches the whole process group; others are passed on.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGQUIT, SIG_IGN);
  ::signal(SIGTERM, forward);
  ::signal(SIGHUP, forward);
  int status = 0;
  while (::waitpid(child_pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::close(service);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

} // namespace ivmc::cli
