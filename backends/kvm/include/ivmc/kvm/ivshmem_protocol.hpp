// Constants of the ivshmem client-server protocol (QEMU docs/specs/ivshmem-spec.rst).
//
// The connection is one-way, server to client. Every message is one signed 64-bit
// little-endian integer, optionally with one file descriptor passed via SCM_RIGHTS.
#pragma once

#include <cstdint>

namespace ivmc::kvm::ivshmem {

// The only version the spec defines (since QEMU 2.5; before, there was no version message).
inline constexpr std::int64_t kProtocolVersion = 0;

// The value of the message that carries the shared memory fd.
inline constexpr std::int64_t kSharedMemoryMessage = -1;

// Peer IDs are 16-bit: the guest's Doorbell register holds the target ID in bits 16..31.
inline constexpr std::int64_t kMaxPeerId = 65535;

// QEMU's Doorbell register decodes only the low 8 bits of the vector number, and the QEMU
// contrib server caps vectors at 64; staying within 64 keeps every vector ringable from a guest.
inline constexpr unsigned kMaxVectors = 64;

} // namespace ivmc::kvm::ivshmem
