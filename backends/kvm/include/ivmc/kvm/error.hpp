// The one exception type of backends/kvm: setup-time failures (bind, handshake, mmap...).
// Hot paths (EventfdDoorbell::ring/wait) never throw; they return codes.
#pragma once

#include <stdexcept>
#include <string>

namespace ivmc::kvm {

class IvshmemError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace ivmc::kvm
