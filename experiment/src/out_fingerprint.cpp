// See out_fingerprint.hpp.
#include "out_fingerprint.hpp"

#include "files.hpp"

#include "ivmc/experiment/sweep.hpp"
#include "ivmc/experiment/to_toml.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

#ifndef IVMC_VERSION
#define IVMC_VERSION "unknown"
#endif

namespace ivmc::experiment::detail {

namespace {

// The TOML without its top-level `seed = ` line (before the first section header).
std::string without_seed(std::string_view toml) {
  std::string out;
  bool top = true;
  std::size_t start = 0;
  while (start < toml.size()) {
    const auto nl = toml.find('\n', start);
    const auto end = nl == std::string_view::npos ? toml.size() : nl + 1;
    const std::string_view line = toml.substr(start, end - start);
    if (line.starts_with("[")) top = false;
    if (!(top && line.starts_with("seed = "))) out += line;
    start = end;
  }
  return out;
}

// Each non-empty, non-comment line with the section it is in ("[platform] hosts = 2",
// "[[vms]] #3: host = 1"), counted: a multiset to compare two scenarios by.
std::map<std::string, int> labelled_lines(std::string_view toml) {
  std::map<std::string, int> lines;
  std::map<std::string, int> list_index;
  std::string section;
  std::size_t start = 0;
  while (start < toml.size()) {
    const auto nl = toml.find('\n', start);
    const auto end = nl == std::string_view::npos ? toml.size() : nl;
    const std::string line(toml.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line.starts_with("[[")) {
      section = fmt::format("{} #{}", line, list_index[line]++);
    } else if (line.starts_with("[")) {
      section = line;
    } else {
      ++lines[section.empty() ? line : section + " " + line];
    }
  }
  return lines;
}

} // namespace

std::string Fingerprint::digest() const {
  std::uint64_t h = 14695981039346656037ull; // FNV-1a 64 offset basis
  for (const char c : scenario_toml) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull; // FNV-1a 64 prime
  }
  return fmt::format("{:016x}", h);
}

Fingerprint fingerprint_of(const Scenario& base, std::string_view backend) {
  return {without_seed(to_toml(base)), std::string(backend), IVMC_VERSION};
}

std::optional<std::string> meta_string_field(std::string_view json, std::string_view key) {
  // meta.json (sweep_meta.cpp) writes each top-level field on its own line, indented by two
  // spaces; inside a JSON string every quote is escaped, so this cannot match inside a value.
  const std::string needle = fmt::format("\n  \"{}\": \"", key);
  const auto at = json.find(needle);
  if (at == std::string_view::npos) return std::nullopt;
  std::string out;
  for (std::size_t i = at + needle.size(); i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') return out;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i == json.size()) return std::nullopt;
    switch (json[i]) {
    case '"':
      out += '"';
      break;
    case '\\':
      out += '\\';
      break;
    case '/':
      out += '/';
      break;
    case 'n':
      out += '\n';
      break;
    case 'r':
      out += '\r';
      break;
    case 't':
      out += '\t';
      break;
    case 'u': {
      // ivmc writes \u only for control characters and DEL (quoted.hpp).
      if (i + 4 >= json.size()) return std::nullopt;
      unsigned v = 0;
      for (std::size_t k = 1; k <= 4; ++k) {
        const char d = json[i + k];
        v *= 16;
        if (d >= '0' && d <= '9')
          v += static_cast<unsigned>(d - '0');
        else if (d >= 'a' && d <= 'f')
          v += static_cast<unsigned>(d - 'a' + 10);
        else if (d >= 'A' && d <= 'F')
          v += static_cast<unsigned>(d - 'A' + 10);
        else
          return std::nullopt;
      }
      if (v >= 0x80) return std::nullopt;
      out += static_cast<char>(v);
      i += 4;
      break;
    }
    default:
      return std::nullopt;
    }
  }
  return std::nullopt; // no closing quote
}

std::optional<Fingerprint> read_fingerprint(const std::string& meta_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(meta_path, ec)) return std::nullopt;
  std::string json;
  try {
    json = read_whole_file(meta_path);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  auto digest = meta_string_field(json, "scenario_fingerprint");
  auto toml = meta_string_field(json, "scenario_toml");
  auto backend = meta_string_field(json, "backend");
  auto version = meta_string_field(json, "ivmc_version");
  if (!digest || !toml || !backend || !version) return std::nullopt;
  Fingerprint f{without_seed(*toml), *backend, *version};
  // A hand-edited scenario_toml: its digest no longer matches, and the TOML decides.
  return f;
}

std::string differences(const Fingerprint& recorded, const Fingerprint& now) {
  std::vector<std::string> out;
  if (recorded.backend != now.backend)
    out.push_back(fmt::format("backend: {} there, {} now", recorded.backend, now.backend));
  if (recorded.version != now.version)
    out.push_back(fmt::format("ivmc version: {} there, {} now", recorded.version, now.version));
  if (recorded.scenario_toml != now.scenario_toml) {
    const auto a = labelled_lines(recorded.scenario_toml);
    const auto b = labelled_lines(now.scenario_toml);
    std::vector<std::string> gone, added;
    for (const auto& [line, n] : a) {
      const auto it = b.find(line);
      if (it == b.end() || it->second < n) gone.push_back(line);
    }
    for (const auto& [line, n] : b) {
      const auto it = a.find(line);
      if (it == a.end() || it->second < n) added.push_back(line);
    }
    constexpr std::size_t kShown = 6;
    const auto list = [&](std::vector<std::string> lines, std::string_view where) {
      // Top-level keys (the name, the duration) first, then the sections and lists.
      std::stable_partition(lines.begin(), lines.end(),
                            [](const std::string& l) { return !l.starts_with("["); });
      for (std::size_t i = 0; i < lines.size() && i < kShown; ++i)
        out.push_back(fmt::format("{}: {}", where, lines[i]));
      if (lines.size() > kShown)
        out.push_back(fmt::format("{}: ... and {} more lines", where, lines.size() - kShown));
    };
    list(gone, "there");
    list(added, "now");
    if (gone.empty() && added.empty()) out.push_back("the scenario: its lines in another order");
  }
  return join(out, "\n");
}

void claim_output(const std::string& dir, const Fingerprint& now, bool force) {
  const std::string csv = dir + "/results.csv", meta = dir + "/meta.json";
  std::error_code ec;
  if (force) {
    std::filesystem::remove(csv, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot remove {}: {}", csv, ec.message()));
    std::filesystem::remove(meta, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot remove {}: {}", meta, ec.message()));
    const std::string changes = dir + "/changes.csv";
    std::filesystem::remove(changes, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot remove {}: {}", changes, ec.message()));
    return;
  }
  const bool has_rows = std::filesystem::exists(csv, ec) && std::filesystem::file_size(csv, ec) > 0;
  if (!has_rows || ec) return; // nothing to reuse: meta.json is rewritten for this run
  const auto recorded = read_fingerprint(meta);
  if (!recorded)
    throw OutputConflict(fmt::format(
        "{} holds results whose meta.json records no scenario fingerprint (written by an older "
        "ivmc, or missing), so they cannot be matched to this scenario. Use another output "
        "directory, or --force to delete them and start over.",
        dir));
  const std::string diff = differences(*recorded, now);
  if (diff.empty()) return;
  std::string lines;
  for (std::size_t start = 0; start < diff.size();) {
    const auto nl = diff.find('\n', start);
    lines += "\n  " + diff.substr(start, nl == std::string::npos ? nl : nl - start);
    start = nl == std::string::npos ? diff.size() : nl + 1;
  }
  throw OutputConflict(fmt::format(
      "{} holds results of another scenario, backend or ivmc version (scenario fingerprint {} "
      "there, {} now; \"there\" is its meta.json, \"now\" this command):{}\nUse another "
      "output directory, or --force to delete its results and start over.",
      dir, recorded->digest(), now.digest(), lines));
}

} // namespace ivmc::experiment::detail
