// The host backend's run: a scenario played on this machine's real CPUs, with no emulation.
//
//   - Each scenario host is an ivshmem server (a thread of this process, its own shm object).
//   - Each VM is a process of its own (`ivmc-host-vm`, vm_process.hpp) running the core's
//     links: real channels in the server's region, eventfd doorbells, TCP loopback as the
//     remote path.
//   - Co-residency reaches the links only through a real membership source (the core's own
//     classes, on the real clock), whose views this process writes to the board (board.hpp).
//   - Migrations happen at their scenario times: the VM keeps running for the pre-copy, is
//     stopped (SIGSTOP) for the switch-over, the topology changes, the membership source is
//     told, the VM is continued and leaves its old host's server for the new one's.
//     Creations and shutdowns attach and detach VM processes the same way.
//   - Every counter comes from the processes; messages are checked end to end.
//
// Any VM process that crashes fails the run with its name and how it died. Processes, servers
// and shared memory are cleaned up on every exit path, SIGINT and SIGTERM included.
#pragma once

#include "ivmc/host/plan.hpp"

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

namespace ivmc::host {

struct Outcome {
  std::map<std::string, double> metrics; // the simulator's metric names (docs/metrics.md)
  std::string summary;                   // for people
  std::uint64_t events = 0;              // messages delivered
  double wall_s = 0;
};

// The VM program: $IVMC_HOST_VM, else the one this build made.
std::string vm_program();

// Plays `plan`. Throws std::runtime_error naming what failed (a VM process's crash, a check
// that found a corrupted or reordered message, an interrupt).
Outcome play(const Plan& plan);

} // namespace ivmc::host
