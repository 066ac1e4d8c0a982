// CSV as results.csv uses it (internal): RFC 4180 quoting (a field with a comma, quote or line
// break is quoted, quotes doubled), records read whole, a torn last record set apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::experiment::detail {

// One record, line break included.
std::string csv_line(const std::vector<std::string>& fields);

struct CsvText {
  std::vector<std::vector<std::string>> records; // complete records only
  std::size_t complete_bytes = 0; // where the last complete record ends; the rest is torn
};

// Parses whole records (ended by a line break outside quotes); a trailing partial record, the

// Parses whole records (ended by a line break outside quotes); a trailing partial record, the
// trace of a write cut short, is left out and reported through complete_bytes.
CsvText parse_csv(std::string_view text);

// The first columns and the last ones of every results.csv; parameters and metrics go between.
constexpr const char* kPointColumn = "point";
constexpr const char* kSeedColumn = "seed";
constexpr const char* kEventsColumn = "events";
constexpr const char* kWallColumn = "wall_s";

// A non-negative integer field; throws std::runtime_error naming `where` otherwise.
std::uint64_t parse_u64(const std::string& s, const std::string& where);

} // namespace ivmc::experiment::detail
