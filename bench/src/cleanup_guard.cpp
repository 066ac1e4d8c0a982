#include "cleanup_guard.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace ivmc::bench {
namespace {

constexpr int kSlots = 16;
constexpr int kHandled[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

struct Slot {
  std::atomic<bool> used{false}; // read by the signal handler (lock-free, no allocation)
  pid_t pid = 0;                 // 0: a file alone
  int signal = 0;
  char file[256] = {}; // empty: no file
};
Slot g_slots[kSlots];
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler reads slots");

std::mutex g_mutex; // guards registration and the installed handlers (never the handler itself)
int g_registered = 0;
struct sigaction g_previous[sizeof kHandled / sizeof kHandled[0]];

void on_signal(int sig) {
  for (Slot& s : g_slots) {
    // Acquire: the slot's pid, signal and file were written before it was marked used.
    if (!s.used.load(std::memory_order_acquire)) continue;
    if (s.pid > 0) kill(s.pid, s.signal);
    if (s.file[0] != '\0') unlink(s.file);
  }
  // End as the signal would have without us: default action, re-raised (unblocked on return).
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_locked() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (std::size_t i = 0; i < sizeof kHandled / sizeof kHandled[0]; ++i) {
    sigaction(kHandled[i], &sa, &g_previous[i]);
  }
}

void restore_locked() {
  for (std::size_t i = 0; i < sizeof kHandled / sizeof kHandled[0]; ++i) {
    sigaction(kHandled[i], &g_previous[i], nullptr);
  }
}

} // namespace

CleanupGuard::CleanupGuard(pid_t pid, int signal, const std::string& file) : slot_(-1) {
  std::lock_guard lock(g_mutex);
  for (int i = 0; i < kSlots; ++i) {
    Slot& s = g_slots[i];
    if (s.used.load(std::memory_order_relaxed)) continue; // relaxed: writers hold g_mutex
    s.pid = pid;
    s.signal = signal;
    std::strncpy(s.file, file.c_str(), sizeof s.file - 1);
    s.file[sizeof s.file - 1] = '\0';
    // Release: the handler that sees the slot used sees its pid, signal and file.
    s.used.store(true, std::memory_order_release);
    slot_ = i;
    break;
  }
  if (slot_ < 0) throw std::runtime_error("bench: too many child processes to guard");
  if (g_registered++ == 0) install_locked();
}

CleanupGuard::~CleanupGuard() {
  std::lock_guard lock(g_mutex);
  Slot& s = g_slots[slot_];
  // Release: withdrawn before the fields are reused (the handler skips an unused slot).
  s.used.store(false, std::memory_order_release);
  if (--g_registered == 0) restore_locked();
}

bool die_with_parent(int signal) {
  const pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, signal) != 0) return false;
  return getppid() == parent; // the parent may have died before the prctl took effect
}

} // namespace ivmc::bench
