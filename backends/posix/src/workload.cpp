// Checked workloads over one channel: see include/ivmc/posix/workload.hpp.
// No fmt here: the statically linked guest agent uses this file.
#include "ivmc/posix/workload.hpp"

#include "ivmc/posix/clock.hpp"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

namespace ivmc::posix {
namespace {

std::uint64_t stream_word(std::uint64_t index) {
  std::uint64_t z = (index + 1) * 0x9E3779B97F4A7C15ull;
  return z ^ (z >> 29);
}

std::string errc_text(Errc e) {
  return std::string(to_string(e));
}

Report failed(Report r, std::string why) {
  r.ok = false;
  r.error = std::move(why);
  return r;
}

// What the path says of itself at the end of a workload: its channel counters and its
// measured path counters.
void take_path(Report& r, const WorkloadPath& path) {
  r.stats = path.stats();
  r.paths = path.counters();
}

std::string detail_of(const WorkloadPath& path, Errc e, const char* during) {
  std::string text = std::string(during) + ": " + errc_text(e);
  if (const std::string d = path.detail(); !d.empty()) text += " (" + d + ")";
  return text;
}

} // namespace

// --- the stream and its checksum -------------------------------------------------------------

void StreamChecksum::update(std::span<const std::byte> bytes) {
  std::size_t i = 0;
  // Complete a partial word first, then whole words, then keep the rest.
  while (i < bytes.size() && bytes_ % 8 != 0) {
    carry_ |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * (bytes_ % 8));
    ++i, ++bytes_;
    if (bytes_ % 8 == 0) word(std::exchange(carry_, 0));
  }
  for (; i + 8 <= bytes.size(); i += 8, bytes_ += 8) {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8); // little-endian host: the wire's byte order
    word(w);
  }
  for (; i < bytes.size(); ++i, ++bytes_) {
    carry_ |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * (bytes_ % 8));
  }
}

std::uint64_t StreamChecksum::value() const {
  std::uint64_t h = hash_;
  if (bytes_ % 8 != 0) h = (h ^ carry_) * 0x100000001b3ull;
  return (h ^ bytes_) * 0x100000001b3ull;
}

void fill_stream(std::uint64_t position, std::span<std::byte> out) {
  std::size_t i = 0;
  while (i < out.size() && (position + i) % 8 != 0) {
    const std::uint64_t p = position + i;
    out[i++] = static_cast<std::byte>(stream_word(p / 8) >> (8 * (p % 8)));
  }
  for (; i + 8 <= out.size(); i += 8) {
    const std::uint64_t w = stream_word((position + i) / 8);
    std::memcpy(out.data() + i, &w, 8);
  }
  for (; i < out.size(); ++i) {
    const std::uint64_t p = position + i;
    out[i] = static_cast<std::byte>(stream_word(p / 8) >> (8 * (p % 8)));
  }
}

std::uint64_t expected_checksum(std::uint64_t bytes) {
  StreamChecksum sum;
  std::vector<std::byte> chunk(1 << 16);
  for (std::uint64_t at = 0; at < bytes;) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), bytes - at));
    fill_stream(at, std::span(chunk.data(), n));
    sum.update(std::span(chunk.data(), n));
    at += n;
  }
  return sum.value();
}

Errc FrameWorkloadPath::finish(Nanos timeout) {
  if (!finish_waits_) return Errc::ok;
  std::vector<std::byte> sink(max_message());
  for (;;) {
    std::size_t n = 0;
    const Errc e = path_.recv({}, sink, n, timeout);
    if (e == Errc::peer_closed) return Errc::ok;
    if (e != Errc::ok) return e; // the peer sent something while we waited for its close
  }
}

// --- workloads -------------------------------------------------------------------------------

Report stream_send(WorkloadPath& path, const WorkloadOptions& o) {
  Report r;
  r.mode = "send";
  if (o.message == 0 || o.message > path.max_message())
    return failed(r, "message size " + std::to_string(o.message) + " is not in 1.." +
                         std::to_string(path.max_message()));
  std::vector<std::byte> buffer(o.message);
  StreamChecksum sum;
  const Nanos start = MonotonicClock::read();
  while (r.bytes < o.bytes) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(o.message, o.bytes - r.bytes));
    const std::span<std::byte> message(buffer.data(), n);
    fill_stream(r.bytes, message);
    if (const Errc e = path.send(message, o.timeout); e != Errc::ok) {
      r.checksum = sum.value();
      take_path(r, path);
      return failed(r, detail_of(path, e, "send"));
    }
    sum.update(message);
    r.bytes += n;
    ++r.messages;
  }
  r.checksum = sum.value();
  // The stream has arrived only when the receiver consumed it: close() waits for that.
  if (o.close) {
    if (const Errc e = path.finish(o.timeout); e != Errc::ok) {
      take_path(r, path);
      return failed(r, detail_of(path, e, "close"));
    }
  }
  r.elapsed = MonotonicClock::read() - start;
  take_path(r, path);
  r.ok = true;
  return r;
}

Report stream_recv(WorkloadPath& path, const WorkloadOptions& o) {
  Report r;
  r.mode = "recv";
  std::vector<std::byte> buffer(path.max_message());
  StreamChecksum sum;
  Nanos start = -1;
  while (r.bytes < o.bytes) {
    std::size_t n = 0;
    const Errc e = path.recv(buffer, n, o.timeout);
    if (e == Errc::peer_closed) break;
    if (e != Errc::ok) {
      r.checksum = sum.value();
      take_path(r, path);
      return failed(r, detail_of(path, e, "recv"));
    }
    if (start < 0) start = MonotonicClock::read();
    sum.update(std::span(buffer.data(), n));
    r.bytes += n;
    ++r.messages;
  }
  r.elapsed = start < 0 ? 0 : MonotonicClock::read() - start;
  r.checksum = sum.value();
  if (o.close) path.finish(o.timeout); // we sent nothing: returns once our side is closed
  take_path(r, path);
  if (r.bytes != o.bytes)
    return failed(r, "received " + std::to_string(r.bytes) + " of " + std::to_string(o.bytes) +
                         " bytes before the sender closed");
  if (r.checksum != expected_checksum(o.bytes))
    return failed(r, "checksum mismatch: the stream was corrupted, reordered or duplicated");
  r.ok = true;
  return r;
}

Report echo(WorkloadPath& path, const WorkloadOptions& o) {
  Report r;
  r.mode = "echo";
  std::vector<std::byte> buffer(path.max_message());
  const Nanos start = MonotonicClock::read();
  while (o.count == 0 || r.messages < o.count) {
    std::size_t n = 0;
    Errc e = path.recv(buffer, n, o.timeout);
    if (e == Errc::peer_closed) break;
    if (e == Errc::ok) e = path.send(std::span(buffer.data(), n), o.timeout);
    if (e != Errc::ok) {
      take_path(r, path);
      return failed(r, detail_of(path, e, "echo"));
    }
    r.bytes += n;
    ++r.messages;
  }
  if (o.close) path.finish(o.timeout);
  r.elapsed = MonotonicClock::read() - start;
  take_path(r, path);
  r.ok = true;
  return r;
}

Report ping(WorkloadPath& path, const WorkloadOptions& o) {
  Report r;
  r.mode = "ping";
  if (o.message == 0 || o.message > path.max_message())
    return failed(r, "message size " + std::to_string(o.message) + " is not in 1.." +
                         std::to_string(path.max_message()));
  std::vector<std::byte> out(o.message), in(path.max_message());
  std::vector<Nanos> rtt;
  rtt.reserve(o.count);
  StreamChecksum sum;
  const Nanos start = MonotonicClock::read();
  for (std::uint64_t i = 0; i < o.count; ++i) {
    fill_stream(i * o.message, out);
    if (o.think > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(o.think));
    const Nanos t0 = MonotonicClock::read();
    Errc e = path.send(out, o.timeout);
    std::size_t n = 0;
    if (e == Errc::ok) e = path.recv(in, n, o.timeout);
    const Nanos t1 = MonotonicClock::read();
    if (e != Errc::ok) {
      take_path(r, path);
      return failed(r, detail_of(path, e, "ping"));
    }
    if (n != out.size() || std::memcmp(in.data(), out.data(), n) != 0) {
      take_path(r, path);
      return failed(r, "round trip " + std::to_string(i) + " came back different");
    }
    sum.update(std::span(in.data(), n));
    rtt.push_back(t1 - t0);
    r.bytes += n;
    ++r.messages;
  }
  r.elapsed = MonotonicClock::read() - start;
  r.checksum = sum.value();
  if (o.close) path.finish(o.timeout);
  take_path(r, path);
  if (!rtt.empty()) {
    std::sort(rtt.begin(), rtt.end());
    Nanos total = 0;
    for (Nanos t : rtt) total += t;
    r.rtt_min = rtt.front();
    r.rtt_p50 = rtt[rtt.size() / 2];
    r.rtt_p99 = rtt[std::min(rtt.size() - 1, rtt.size() * 99 / 100)];
    r.rtt_mean = total / static_cast<Nanos>(rtt.size());
  }
  r.ok = true;
  return r;
}

// --- the report line -------------------------------------------------------------------------

std::string Report::line() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "IVMC-RESULT mode=%s ok=%d bytes=%" PRIu64 " messages=%" PRIu64
                " checksum=%016" PRIx64 " ns=%" PRId64 " rtt_min_ns=%" PRId64 " rtt_p50_ns=%" PRId64
                " rtt_p99_ns=%" PRId64 " rtt_mean_ns=%" PRId64 " sleeps=%" PRIu64
                " wakeups=%" PRIu64 " data_rings=%" PRIu64,
                mode.c_str(), ok ? 1 : 0, bytes, messages, checksum, elapsed, rtt_min, rtt_p50,
                rtt_p99, rtt_mean, stats.sleeps, stats.wakeups, stats.data_notifications);
  std::string text = buf;
  std::snprintf(buf, sizeof buf,
                " frames_local=%" PRIu64 " frames_remote=%" PRIu64 " channels_opened=%" PRIu64,
                paths.frames_local, paths.frames_remote, paths.channels_opened);
  text += buf;
  text += extra;
  if (!error.empty()) {
    std::string quoted;
    for (char c : error) quoted += (c == '"' || c == '\n' || c == '\r') ? '\'' : c;
    text += " error=\"" + quoted + "\"";
  }
  return text;
}

std::optional<ReportFields> parse_report(std::string_view line) {
  constexpr std::string_view kTag = "IVMC-RESULT ";
  const std::size_t at = line.find(kTag);
  if (at == std::string_view::npos) return std::nullopt;
  line.remove_prefix(at + kTag.size());
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  ReportFields fields;
  while (!line.empty()) {
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) break;
    const std::string key(line.substr(0, eq));
    line.remove_prefix(eq + 1);
    std::string value;
    if (!line.empty() && line.front() == '"') {
      const std::size_t end = line.find('"', 1);
      if (end == std::string_view::npos) return std::nullopt; // cut off: not a whole line
      value = std::string(line.substr(1, end - 1));
      line.remove_prefix(end + 1);
    } else {
      const std::size_t end = std::min(line.find(' '), line.size());
      value = std::string(line.substr(0, end));
      line.remove_prefix(end);
    }
    fields[key] = value;
  }
  if (!fields.count("mode") || !fields.count("ok")) return std::nullopt;
  return fields;
}

std::optional<PathCounters> parse_path_counters(const ReportFields& fields) {
  auto count = [&](const char* key) -> std::optional<std::uint64_t> {
    const auto it = fields.find(key);
    if (it == fields.end()) return std::nullopt;
    const std::string& text = it->second;
    if (text.empty() || text.size() > 15) return std::nullopt; // < 10^15 < 2^53
    std::uint64_t value = 0;
    for (const char c : text) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value;
  };
  const auto local = count("frames_local"), remote = count("frames_remote"),
             opened = count("channels_opened");
  if (!local || !remote || !opened) return std::nullopt;
  return PathCounters{*local, *remote, *opened};
}

} // namespace ivmc::posix
