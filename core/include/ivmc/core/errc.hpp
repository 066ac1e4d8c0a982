// Error codes returned by the core's hot-path calls.
//
// Hot paths return a plain code (no allocation, no exception); the object that failed keeps a
// human-readable explanation naming what and where (see Channel::error_detail()).
#pragma once

#include <cstdint>
#include <string_view>

namespace ivmc {

enum class Errc : std::uint8_t {
  ok = 0,
  would_block,        // non-blocking call found no data / no space
  timed_out,          // the deadline passed first
  message_too_large,  // larger than the channel's max message: use the remote path
  buffer_too_small,   // recv buffer shorter than the next message; the message stays queued
  peer_closed,        // the peer shut its sending side and every message was delivered
  peer_dead,          // the peer stopped (heartbeat lost or platform notice); data drained
  closed,             // this endpoint was closed by its owner
  protocol_violation, // the peer wrote something invalid into the shared area
  bad_layout,         // the shared area's geometry is invalid or does not fit the region
  already_attached,   // another endpoint holds this side of the channel
  refused,            // a trust or admission policy refused the operation
  doorbell_failed,    // the platform lost the doorbell
  misuse,             // a call out of order: commit() without reserve(), release() without
                      // peek(), send() or recv() while a reservation or a view is outstanding
};

constexpr std::string_view to_string(Errc e) {
  switch (e) {
  case Errc::ok:
    return "ok";
  case Errc::would_block:
    return "would_block";
  case Errc::timed_out:
    return "timed_out";
  case Errc::message_too_large:
    return "message_too_large";
  case Errc::buffer_too_small:
    return "buffer_too_small";
  case Errc::peer_closed:
    return "peer_closed";
  case Errc::peer_dead:
    return "peer_dead";
  case Errc::closed:
    return "closed";
  case Errc::protocol_violation:
    return "protocol_violation";
  case Errc::bad_layout:
    return "bad_layout";
  case Errc::already_attached:
    return "already_attached";
  case Errc::refused:
    return "refused";
  case Errc::doorbell_failed:
    return "doorbell_failed";
  case Errc::misuse:
    return "misuse";
  }
  return "unknown";
}

} // namespace ivmc
