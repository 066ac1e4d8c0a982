// ivmc-host-vm: one VM of a host-backend run (ivmc/host/vm_process.hpp). Started by the
// orchestrator only; not for people.
#include "ivmc/host/vm_process.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  int control = -1, board = -1, token = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--control-fd") == 0) control = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--board-fd") == 0) board = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--token-fd") == 0) token = std::atoi(argv[i + 1]);
  }
  if (control < 3 || board < 3 || token < 3) {
    std::fprintf(stderr, "ivmc-host-vm: started by ivmc's host backend only "
                         "(--control-fd N --board-fd M --token-fd T)\n");
    return 2;
  }
  // Never outlive the orchestrator, even if it is killed outright.
  const pid_t parent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) return 1;
  ::signal(SIGPIPE, SIG_IGN); // a peer's closed TCP path is an error code, not a signal
  return ivmc::host::run_vm_process(control, board, token);
}
