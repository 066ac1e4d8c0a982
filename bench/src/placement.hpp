// Where the bench's processes ran and on what: the CPU each process was on, how much of a run
// it had that CPU (or waited for it behind other processes), what the host took (steal), the
// CPUs' topology as the guest sees it, and the clock the cores actually ran at. Internal to
// bench/; the public figures are in bench.hpp (ProcessPlacement, CpuDescription).
#pragma once

#include "ivmc/bench/bench.hpp"

#include <cstdint>
#include <string>

namespace ivmc::bench {

// The calling thread's scheduling counters at one moment.
struct ProcessSample {
  int cpu = -1;              // sched_getcpu()
  std::uint64_t run_ns = 0;  // time on a CPU (/proc/thread-self/schedstat, first field)
  std::uint64_t wait_ns = 0; // time runnable but waiting for a CPU (second field)
  long involuntary = 0;      // involuntary context switches (getrusage, RUSAGE_THREAD)
  double t = 0;              // steady clock, seconds
};
ProcessSample sample_process();
// From two samples of one thread: its CPUs, and shares of the wall time between them.
ProcessPlacement placement_between(const ProcessSample& from, const ProcessSample& to);

// Steal time of `cpu` so far (the host ran something else on it), in ns; -1 if unreadable.
double steal_ns(int cpu);

// What the guest knows about `cpu`: its core, package, cache sharing and reported clock; and
// the clock its core runs at now, measured (a chain of dependent multiplications timed against
// the TSC: three cycles each; the best of a few short tries, so a descheduled try is ignored).
CpuDescription describe_cpu(int cpu);
double measure_ghz(); // on the calling thread's CPU
std::string cpu_model_name();
std::string hypervisor_vendor(); // "" on bare metal

// A run's speed mode: "full" when both processes had their CPUs (each waited less than 10 % of
// its part behind other processes, and the host stole less than 5 % of the two CPUs), "shared"
// otherwise. Blocking transports sleep by design, so CPU time is not the test: waiting is.
std::string speed_of(const RunRecord& run);
double worst_wait(const RunRecord& run); // the larger of the two processes' wait shares
// The pair that sets a throughput run's speed: speed_of and its placement, "full/near" etc.
std::string speed_mode(const RunRecord& run);

// /proc/loadavg's three averages.
void load_average(double (&load)[3]);

// The machine at the start of a run: model, hypervisor, the two CPUs (each one's clock
// measured on it; the calling thread ends pinned to cpus.parent again), their sharing, load.
struct PairCpus;
MachineReport describe_machine(const PairCpus& cpus);
// ... and at its end: the clocks again, the load, the steal share since `steal_start_ns`.
void finish_machine(MachineReport& machine, const PairCpus& cpus, double steal_start_ns,
                    double wall_seconds);

} // namespace ivmc::bench
