// The iceoryx baseline in a build without iceoryx (CMake did not find iceoryx_posh).
#include "iceoryx_baseline.hpp"

namespace ivmc::bench {

bool iceoryx_built() {
  return false;
}

std::unique_ptr<IceoryxBaseline> start_iceoryx(const PairCpus&, const std::vector<std::size_t>&,
                                               std::uint32_t, std::string& why_not) {
  why_not = "this build has no iceoryx (CMake did not find iceoryx_posh; install "
            "libiceoryx-posh-dev and iceoryx with scripts/deps.sh and re-configure)";
  return nullptr;
}

} // namespace ivmc::bench
