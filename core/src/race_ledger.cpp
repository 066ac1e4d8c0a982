#include "ivmc/core/race_ledger.hpp"

#include <cstdio>

namespace ivmc {

void RaceLedger::record(LinkOperation op, std::optional<ChangeKind> kind, Errc outcome,
                        std::uint64_t bytes) {
  if (!kind) {
    ++outside_;
    return;
  }
  RaceCell& c = cells_[static_cast<int>(op)][static_cast<int>(*kind)];
  ++c.operations;
  c.bytes += bytes;
  if (outcome == Errc::would_block) {
    ++c.deferred;
  } else if (outcome == Errc::timed_out) {
    ++c.timeouts;
    ++c.errors;
  } else if (outcome != Errc::ok) {
    ++c.errors;
  }
}

RaceCell RaceLedger::total() const {
  RaceCell t;
  for (const auto& row : cells_) {
    for (const RaceCell& c : row) {
      t.operations += c.operations;
      t.errors += c.errors;
      t.deferred += c.deferred;
      t.timeouts += c.timeouts;
      t.bytes += c.bytes;
    }
  }
  return t;
}

std::string RaceLedger::table() const {
  std::string out = "operations in race windows (ops/errors/deferred), Table IV layout\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-26s %-16s %-16s %-16s %-16s\n", "", "migration in",
                "creation", "migration out", "shutdown");
  out += line;
  for (auto op :
       {LinkOperation::establishment, LinkOperation::pending_data, LinkOperation::teardown}) {
    std::snprintf(line, sizeof line, "%-26s", std::string(to_string(op)).c_str());
    out += line;
    for (int k = 0; k < 4; ++k) {
      const RaceCell& c = cells_[static_cast<int>(op)][k];
      std::snprintf(line, sizeof line, " %-16s",
                    (std::to_string(c.operations) + "/" + std::to_string(c.errors) + "/" +
                     std::to_string(c.deferred))
                        .c_str());
      out += line;
    }
    out += "\n";
  }
  out += "outside any race window: " + std::to_string(outside_) + "\n";
  return out;
}

} // namespace ivmc
