// The survey's Table IV as counters: for every link operation that ran inside a race window,
// its row (connection establishment, pending data handling, connection tearing down) and
// column (migration in, creation, migration out, shutdown), and what came of it.
#pragma once

#include "ivmc/core/errc.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/membership.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace ivmc {

struct RaceCell {
  std::uint64_t operations = 0; // operations that ran in a race window of this kind
  std::uint64_t errors = 0;     // of which failed (a stale channel, a lost message)
  std::uint64_t deferred = 0;   // establishments put off (the link stayed remote)
  std::uint64_t timeouts = 0;   // stale sends declared dead by their timeout
  std::uint64_t bytes = 0;      // bytes those operations concerned
};

class RaceLedger {
public:
  // Records one operation; `kind` is empty when it ran outside every race window (counted in
  // outside(), so the share of racy operations is known).
  void record(LinkOperation op, std::optional<ChangeKind> kind, Errc outcome, std::uint64_t bytes);
  const RaceCell& cell(LinkOperation op, ChangeKind kind) const {
    return cells_[static_cast<int>(op)][static_cast<int>(kind)];
  }
  std::uint64_t outside() const { return outside_; }
  RaceCell total() const;
  // Table IV with the counts filled in, for people.
  std::string table() const;

private:
  std::array<std::array<RaceCell, 4>, 3> cells_{};
  std::uint64_t outside_ = 0;
};

} // namespace ivmc
