// main() of the vm suites: Catch2, except that without qemu-system-x86_64 the run is skipped
// (exit 77, ctest's SKIP_RETURN_CODE) with a message saying what to install. Listing the tests
// (ctest's discovery) works without QEMU.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "ivmc/kvm/qemu.hpp"

#include <cstdio>
#include <string_view>

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing |= std::string_view(argv[i]).rfind("--list", 0) == 0;
  if (!listing && ivmc::posix::find_qemu().empty()) {
    std::printf("SKIP: qemu-system-x86_64 not found (install it: scripts/deps.sh test, or set "
                "IVMC_QEMU)\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
