// Sleeping on an eventfd with a timeout: shared by the host's EventfdDoorbell and the guest's
// VFIO doorbell. No fmt: the statically linked guest agent uses it.
#pragma once

#include "ivmc/core/platform.hpp"

namespace ivmc::kvm::detail {

// Waits until `fd` (a non-blocking eventfd) is readable or `timeout` ns pass, then, if `reset`,
// reads it to reset its counter. <= 0 only checks; EINTR is retried with the time left. `rung`
// also covers a counter another reader reset first (a spurious wake-up, which the Doorbell
// contract allows). On `failed`, `err` holds the errno.
WaitResult wait_eventfd(int fd, Nanos timeout, int& err, bool reset = true);

// Resets `fd`'s counter (one non-blocking read): the rings so far are forgotten. ok, or false
// with `err` set when the read failed for another reason than an empty counter.
bool reset_eventfd(int fd, int& err);

} // namespace ivmc::kvm::detail
