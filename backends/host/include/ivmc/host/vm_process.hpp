// The program every VM of a host-backend run is: `ivmc-host-vm --control-fd N --board-fd M
// --token-fd T`, started by the orchestrator (orchestrator.hpp) with the three fds inherited
// (T: a pipe holding its enrolment token for the servers' channel sockets, read once). It follows
// the orchestrator's commands (control.hpp) through these phases:
//
//   vm, host..., work..., configured  ->  ready port=P        (its TCP listener)
//   port vm=V port=P ..., connect     ->  connected           (one TCP path per pipe)
//   start t0= from= to= give_up=      ->  (workloads run on their threads)
//   attach host=H                     ->  attached host=H     (created, or placed at start)
//   move host=H                       ->  moved host=H pending_bytes=B (after the migration)
//   detach                            ->  detached pending_bytes=B     (shut down)
//   stop                              ->  work ... / totals ... / done (then it exits)
//
// Anything unexpected from the orchestrator ends the process with an `error what=...` line;
// the orchestrator going away ends it at once.
#pragma once

namespace ivmc::host {

// Runs the VM process; returns its exit status.
int run_vm_process(int control_fd, int board_fd, int token_fd);

} // namespace ivmc::host
