// The one exception type of backends/xen: setup-time failures (opening a Xen interface,
// sharing or mapping pages, binding event channels, XenStore). Hot paths (the doorbell's
// ring/wait) never throw; they return codes.
#pragma once

#include <stdexcept>
#include <string>

namespace ivmc::xen {

class XenError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace ivmc::xen
