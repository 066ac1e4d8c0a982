// CRC32C (Castagnoli, the iSCSI polynomial 0x1EDC6F41, reflected): the optional per-record check
// of a channel (wire.hpp, kFeatureRecordCrc32c). It protects against corruption (random bytes,
// a stray write), not against a writer who computes it: it is not a signature.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ivmc {

// Continues a CRC32C over `n` more bytes. Start with 0; the result of one call can be passed to
// the next (crc32c(crc32c(0, a), b) == crc32c(0, a + b)). crc32c(0, "123456789") == 0xE3069283.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n);

} // namespace ivmc
