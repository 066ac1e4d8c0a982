// `ivmc exec [--host SOCKET] [--group NAME] -- COMMAND ARGS...`: runs an unmodified program
// with libivmc-preload.so (issue 17, docs/preload.md). Processes run under `ivmc exec` with the
// same host socket are co-resident: their TCP connections to each other are carried by a ring.
// The host's service (an ivshmem server with its channel socket in exec mode) is started on
// first use when none listens.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace ivmc::cli {

struct ExecArgs {
  std::string host;              // empty: the per-user default (default_host_socket)
  std::string group = "default"; // the trust group: rings only between processes of one group
  std::vector<std::string> command;
};

CLI::App* add_exec(CLI::App& app, ExecArgs& args);
// The command's exit status (128 + signal if it was killed); 1 if it could not be started.
int exec_main(const ExecArgs& args);

// $XDG_RUNTIME_DIR/ivmc/host.sock, or /tmp/ivmc-UID/host.sock without it.
std::string default_host_socket();

} // namespace ivmc::cli
