// The ivshmem server's command-line options, shared by `ivmc-ivshmem-server` and any other
// front end (e.g. an `ivmc ivshmem-server` subcommand). Header-only: link CLI11::CLI11 to use it.
#pragma once

#include "ivmc/kvm/ivshmem_server.hpp"

#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

namespace ivmc::kvm {

inline void add_ivshmem_server_options(CLI::App& app, IvshmemServerOptions& options) {
  app.add_option("--socket,-S", options.socket_path, "UNIX socket QEMU's chardev connects to")
      ->capture_default_str();
  app.add_option("--shm,-M", options.shm_name, "POSIX shm name of the region (/dev/shm/NAME)")
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--size,-l",
         [&options](const std::string& text) {
           try {
             options.size = parse_byte_size(text);
           } catch (const std::invalid_argument& e) {
             throw CLI::ValidationError("--size", e.what());
           }
         },
         "region size in bytes, a power of two; suffixes K, M, G (default 4M)")
      ->type_name("SIZE");
  app.add_option("--vectors,-n", options.vectors,
                 "interrupt vectors per peer (QEMU's vectors= must match)")
      ->capture_default_str();
  app.add_option("--max-peers", options.max_peers, "peers connected at once (IDs are 16-bit)")
      ->capture_default_str();
  app.add_flag("--reuse-id-zero", options.reuse_id_zero,
               "give ID 0 again whenever it is free (master=on guests migrating back)");
  app.add_flag("--verbose,-v", options.verbose, "log every peer joining and leaving");
}

} // namespace ivmc::kvm
