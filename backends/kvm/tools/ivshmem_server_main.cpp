// ivmc-ivshmem-server: an ivshmem server for QEMU's ivshmem-doorbell device (Debian ships none).
#include "ivmc/kvm/ivshmem_server.hpp"
#include "ivmc/kvm/ivshmem_server_cli.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  ivmc::kvm::IvshmemServerOptions options;
  CLI::App app{"ivshmem server (QEMU docs/specs/ivshmem-spec): shares one memory region and "
               "per-peer eventfds with every client of a UNIX socket. Stop with SIGINT/SIGTERM."};
  ivmc::kvm::add_ivshmem_server_options(app, options);
  CLI11_PARSE(app, argc, argv);
  return ivmc::kvm::ivshmem_server_main(options);
}
