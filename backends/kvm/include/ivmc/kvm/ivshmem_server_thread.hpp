// An ivshmem server served by a thread of this process: for benchmarks and tests that need a
// real server next to their own peers. Stops (orderly: socket, region and lock removed) when
// destroyed.
#pragma once

#include "ivmc/kvm/ivshmem_server.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace ivmc::kvm {

class IvshmemServerThread {
public:
  explicit IvshmemServerThread(IvshmemServerOptions options)
      : server_(std::make_unique<IvshmemServer>(std::move(options))) {
    server_->start();
    thread_ = std::thread([this] { server_->run_until(stop_); });
  }
  ~IvshmemServerThread() {
    stop_ = true; // seq_cst store: the server loop sees it within its poll timeout
    thread_.join();
  }
  IvshmemServerThread(const IvshmemServerThread&) = delete;
  IvshmemServerThread& operator=(const IvshmemServerThread&) = delete;
  const std::string& socket_path() const { return server_->options().socket_path; }

private:
  std::unique_ptr<IvshmemServer> server_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace ivmc::kvm
