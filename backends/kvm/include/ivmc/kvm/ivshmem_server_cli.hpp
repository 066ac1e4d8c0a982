// The ivshmem server's command-line options, shared by `ivmc-ivshmem-server` and any other
// front end (e.g. an `ivmc ivshmem-server` subcommand). Header-only: link CLI11::CLI11 to use it.
#pragma once

#include "ivmc/kvm/ivshmem_server.hpp"

#include <stdexcept>
#include <string>
#include <vector>

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
  // The channel socket (docs/security.md): a sealed region per channel for enrolled host
  // clients only. Tokens on the command line are visible to this uid's processes (ps);
  // a program embedding the server passes IvshmemServerOptions::enrolments instead.
  app.add_flag("--channel-socket", options.channel_socket,
               "also listen on SOCKET.ivmc: a sealed region per channel, for enrolled host "
               "clients only (docs/security.md)");
  app.add_flag("--exec-enrolment", options.exec_enrolment,
               "with --channel-socket: processes of this uid enrol themselves (ivmc exec's "
               "host service, docs/preload.md)");
  app.add_option_function<std::vector<std::string>>(
         "--enrol",
         [&options](const std::vector<std::string>& items) {
           for (const std::string& item : items) {
             // VM:UID:TOKEN (64 hex digits)
             const auto a = item.find(':'), b = item.find(':', a + 1);
             Enrolment e;
             try {
               if (a == std::string::npos || b == std::string::npos ||
                   !parse_token_hex(item.substr(b + 1), e.token))
                 throw std::invalid_argument(item);
               e.vm = static_cast<VmId>(std::stoul(item.substr(0, a)));
               e.uid = static_cast<uid_t>(std::stoul(item.substr(a + 1, b - a - 1)));
             } catch (const std::exception&) {
               throw CLI::ValidationError(
                   "--enrol", "expected VM:UID:TOKEN (64 hex digits), got '" + item + "'");
             }
             options.enrolments.push_back(e);
           }
         },
         "enrol a host client for the channel socket: VM:UID:TOKEN (repeatable)")
      ->type_name("VM:UID:TOKEN");
  app.add_option_function<std::vector<std::string>>(
         "--trust",
         [&options](const std::vector<std::string>& items) {
           if (!options.trust) options.trust.emplace();
           for (const std::string& item : items) {
             const auto colon = item.find(':');
             try {
               if (colon == std::string::npos) throw std::invalid_argument(item);
               const auto a = static_cast<VmId>(std::stoul(item.substr(0, colon)));
               const auto b = static_cast<VmId>(std::stoul(item.substr(colon + 1)));
               options.trust->allow(a, b);
               options.trust->allow(b, a);
             } catch (const std::exception&) {
               throw CLI::ValidationError("--trust",
                                          "expected A:B (two VM numbers), got '" + item + "'");
             }
           }
         },
         "VMs A and B may share channels (repeatable); without it any two enrolled VMs may")
      ->type_name("A:B");
}

} // namespace ivmc::kvm
