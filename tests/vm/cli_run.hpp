// The `ivmc` command line from a vm test: run it, read a results file's header. The test's
// target defines IVMC_CLI_BIN.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>

#ifndef IVMC_CLI_BIN
#error "IVMC_CLI_BIN must name the ivmc binary"
#endif

namespace ivmc::vmtest {

inline std::string header_of(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  return line;
}

inline int run(const std::string& args) {
  const std::string cmd = std::string(IVMC_CLI_BIN) + " " + args;
  INFO(cmd);
  return std::system(cmd.c_str());
}

} // namespace ivmc::vmtest
