// What made an output directory (internal; docs/results.md "Resuming"): the base scenario as
// canonical TOML (its seed aside: rows carry their seeds), the backend and the ivmc version.
// meta.json records them; a sweep or `ivmc run --out` reuses rows of results.csv only when the
// directory's record matches, and otherwise refuses naming what differs.
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace ivmc::experiment::detail {

struct Fingerprint {
  std::string scenario_toml; // to_toml of the base scenario, its top-level `seed = ` line removed
  std::string backend;
  std::string version; // ivmc's version (IVMC_VERSION)
  // 16 hex digits: FNV-1a 64 of scenario_toml. Names the scenario in meta.json; not a security
  // measure (check_same_output compares the TOML itself).
  std::string digest() const;
};

// The fingerprint of `base` run on `backend` by this ivmc.
Fingerprint fingerprint_of(const Scenario& base, std::string_view backend);

// The fingerprint recorded in the meta.json at `path`; nullopt when the file is missing, is not
// a meta.json ivmc wrote, or records none (an older ivmc). The file is hostile input: anything
// malformed is "none recorded", never a crash.
std::optional<Fingerprint> read_fingerprint(const std::string& meta_path);

// "" when `recorded` and `now` name the same output; else one line per difference, at most a
// few: "backend: sim (in DIR) / fake (now)", "duration_s = 2 (in DIR) / duration_s = 7 (now)".
std::string differences(const Fingerprint& recorded, const Fingerprint& now);

// Before a sweep writes into `dir`: with `force`, removes its results.csv and meta.json (start
// over); else throws OutputConflict when results.csv holds anything and meta.json does not
// record `now` (naming the differences, or saying that no fingerprint is recorded).
void claim_output(const std::string& dir, const Fingerprint& now, bool force);

// A JSON string field ("key": "...") of the top-level object meta.json writes, unescaped;
// nullopt when absent or malformed. Exposed for the tests.
std::optional<std::string> meta_string_field(std::string_view json, std::string_view key);

} // namespace ivmc::experiment::detail
