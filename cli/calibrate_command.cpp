// `ivmc calibrate` (calibrate_command.hpp): replaces this process with /usr/bin/python3 running
// analysis/calibrate.py, which drives this same binary (`ivmc run --backend host|sim`).
#include "calibrate_command.hpp"

#include "analysis_dir.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace ivmc::cli {
namespace {

std::filesystem::path calibrator() {
  return analysis_dir() / "calibrate.py";
}

} // namespace

CLI::App* add_calibrate(CLI::App& parent, CalibrateArgs& a) {
  auto* cmd = parent.add_subcommand(
      "calibrate", "fit the simulator's cost model to a real backend and write a cost profile "
                   "(--out), or check a profile on held-out cases (--check)");
  cmd->add_option("--backend", a.backend, "the backend to measure (host)")
      ->check(CLI::IsMember({"host"}))
      ->capture_default_str();
  cmd->add_option("--out", a.out, "the profile file to write (default: ./host-profile.toml)");
  cmd->add_flag("--check", a.check,
                "measure held-out cases and compare them with the simulator under --profile");
  cmd->add_option("--profile", a.profile,
                  "with --check: a built-in profile's name or a profile file (default: host)");
  cmd->add_flag("--json", a.json, "with --check: print one JSON object");
  cmd->add_option("--reps", a.reps, "runs per measured case (the median is used)")
      ->check(CLI::Range(1u, 20u))
      ->capture_default_str();
  cmd->add_option("--duration", a.duration, "seconds per measured run")
      ->check(CLI::Range(0.1, 10.0))
      ->capture_default_str();
  cmd->add_option("--max-evals", a.max_evals, "the fit's model evaluations (least-squares steps)")
      ->check(CLI::Range(1u, 1000u))
      ->capture_default_str();
  cmd->footer("Runs " + calibrator().string() +
              " with /usr/bin/python3 (Debian's python3-scipy); IVMC_ANALYSIS_DIR overrides "
              "the folder. docs/costs.md, \"Cost profiles\".");
  return cmd;
}

int calibrate_main(const CalibrateArgs& a) {
  if (!a.check && (!a.profile.empty() || a.json)) {
    fmt::print(stderr, "ivmc calibrate: --profile and --json go with --check\n");
    return 2;
  }
  if (a.check && !a.out.empty()) {
    fmt::print(stderr, "ivmc calibrate: --out writes a fitted profile; --check writes none\n");
    return 2;
  }
  const auto script = calibrator();
  if (!std::filesystem::is_regular_file(script)) {
    fmt::print(stderr,
               "ivmc calibrate: the calibrator {} is missing; set IVMC_ANALYSIS_DIR to the "
               "analysis/ folder of the ivmc sources\n",
               script.string());
    return 2;
  }
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    fmt::print(stderr, "ivmc calibrate: cannot find this program's path: {}\n", ec.message());
    return 2;
  }
  std::vector<std::string> args = {kPython,       script.string(),
                                   "--ivmc",      self.string(),
                                   "--backend",   a.backend,
                                   "--reps",      std::to_string(a.reps),
                                   "--duration",  fmt::format("{}", a.duration),
                                   "--max-evals", std::to_string(a.max_evals)};
  if (!a.out.empty()) args.insert(args.end(), {"--out", a.out});
  if (a.check) args.push_back("--check");
  if (!a.profile.empty()) args.insert(args.end(), {"--profile", a.profile});
  if (a.json) args.push_back("--json");
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  ::execv(kPython, argv.data());
  fmt::print(stderr, "ivmc calibrate: cannot run {}: {}\n", kPython, std::strerror(errno));
  return 127;
}

} // namespace ivmc::cli
