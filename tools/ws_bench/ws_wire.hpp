#pragma once
/// The client side of RFC 6455 as ws-bench needs it, with no I/O: the opening handshake
/// (Sec-WebSocket-Key, the 101 response and its Sec-WebSocket-Accept), masked client frames
/// and the decoding of the server's unmasked frames. No extensions (permessage-deflate is
/// never offered), so every RSV bit must be zero.

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace si::wsbench {

namespace opcode {
inline constexpr std::uint8_t continuation = 0x0;
inline constexpr std::uint8_t text = 0x1;
inline constexpr std::uint8_t binary = 0x2;
inline constexpr std::uint8_t close = 0x8;
inline constexpr std::uint8_t ping = 0x9;
inline constexpr std::uint8_t pong = 0xA;
}  // namespace opcode

/// Base64 of `data` (OpenSSL's encoder, no line breaks).
inline std::string base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

/// A fresh Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 §4.1).
inline std::string make_key() {
  std::array<unsigned char, 16> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return base64(raw.data(), raw.size());
}

/// The Sec-WebSocket-Accept a server must answer `key` with: base64(SHA-1(key + GUID)).
inline std::string accept_for(std::string_view key) {
  static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in(key);
  in += guid;
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest.data());
  return base64(digest.data(), digest.size());
}

/// The upgrade request for `path` on host:port with `key`.
inline std::string upgrade_request(std::string_view host, unsigned port, std::string_view path,
                                   std::string_view key) {
  std::string r;
  r.reserve(256);
  r += "GET ";
  r += path;
  r += " HTTP/1.1\r\nHost: ";
  r += host;
  r += ':';
  r += std::to_string(port);
  r += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  r += key;
  r += "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  return r;
}

/// What check_upgrade_response found in the bytes received so far.
struct handshake_result {
  enum class status { incomplete, ok, bad } state = status::incomplete;
  std::size_t consumed = 0;  ///< bytes of the response head (ok): frames follow them
  std::string error;         ///< why (bad), with the status line
};

namespace detail {

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

/// True when the comma-separated header value `list` holds `token` (case-insensitive).
inline bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace detail

/// Checks the server's answer to the upgrade: status 101, `Upgrade: websocket`,
/// `Connection: upgrade` and `Sec-WebSocket-Accept` equal to `expected_accept`. A response
/// head over 16 KiB is bad.
inline handshake_result check_upgrade_response(std::string_view data,
                                               std::string_view expected_accept) {
  handshake_result r;
  const auto end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() > 16 * 1024) {
      r.state = handshake_result::status::bad;
      r.error = "upgrade response head over 16 KiB";
    }
    return r;
  }
  const std::string_view head = data.substr(0, end);
  const auto line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  r.state = handshake_result::status::bad;
  if (status_line.size() < 12 || status_line.substr(0, 9) != "HTTP/1.1 "
      || status_line.substr(9, 3) != "101") {
    // Keep the body's start: the server's JSON error names the reason (503, 401, ...).
    r.error = "upgrade refused: " + std::string(status_line) + " "
              + std::string(data.substr(end + 4, 200));
    return r;
  }
  bool upgrade = false;
  bool connection = false;
  std::string_view accept;
  std::string_view rest =
      line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
  while (!rest.empty()) {
    const auto eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view{} : rest.substr(eol + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      r.error = "malformed header line in the upgrade response: " + std::string(line);
      return r;
    }
    const auto name = line.substr(0, colon);
    const auto value = detail::trim(line.substr(colon + 1));
    if (detail::iequals(name, "upgrade")) {
      upgrade = detail::iequals(value, "websocket");
    } else if (detail::iequals(name, "connection")) {
      connection = detail::has_token(value, "upgrade");
    } else if (detail::iequals(name, "sec-websocket-accept")) {
      accept = value;
    } else if (detail::iequals(name, "sec-websocket-extensions")) {
      r.error = "the server chose an extension that was not offered: " + std::string(value);
      return r;
    }
  }
  if (!upgrade || !connection) {
    r.error = "101 without Upgrade: websocket / Connection: upgrade";
    return r;
  }
  if (accept != expected_accept) {
    r.error = "Sec-WebSocket-Accept is '" + std::string(accept) + "', expected '"
              + std::string(expected_accept) + "'";
    return r;
  }
  r.state = handshake_result::status::ok;
  r.consumed = end + 4;
  return r;
}

/// Appends one client frame (FIN set, masked with `mask` as RFC 6455 §5.3 requires).
inline void append_frame(std::string& out, std::uint8_t op, std::string_view payload,
                         std::uint32_t mask) {
  out += static_cast<char>(0x80 | op);
  const auto n = payload.size();
  if (n < 126) {
    out += static_cast<char>(0x80 | n);
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>((n >> 8) & 0xFF);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      out += static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFF);
    }
  }
  const std::array<char, 4> key{static_cast<char>(mask >> 24), static_cast<char>(mask >> 16),
                                static_cast<char>(mask >> 8), static_cast<char>(mask)};
  out.append(key.data(), key.size());
  const auto at = out.size();
  out.append(payload);
  for (std::size_t i = 0; i < n; ++i) {
    out[at + i] = static_cast<char>(out[at + i] ^ key[i & 3]);
  }
}

/// A close frame's payload: the code (big endian), no reason.
inline std::string close_payload(std::uint16_t code) {
  return {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
}

/// One frame of the server, pointing into the decoded buffer.
struct frame {
  bool fin = false;
  std::uint8_t op = 0;
  std::string_view payload;
};

enum class decode_status { ok, incomplete, error };

/// Decodes the frame at the start of `data`. ok: `f` and `consumed` are set; incomplete: more
/// bytes are needed; error: `error` says why (a masked server frame, RSV bits, a fragmented
/// or oversized control frame, a length over `max_payload`, an unknown opcode).
inline decode_status decode_frame(std::string_view data, std::size_t max_payload, frame& f,
                                  std::size_t& consumed, std::string& error) {
  if (data.size() < 2) {
    return decode_status::incomplete;
  }
  const auto b0 = static_cast<std::uint8_t>(data[0]);
  const auto b1 = static_cast<std::uint8_t>(data[1]);
  if ((b0 & 0x70) != 0) {
    error = "frame with RSV bits set (no extension was negotiated)";
    return decode_status::error;
  }
  if ((b1 & 0x80) != 0) {
    error = "masked frame from the server (RFC 6455 §5.1)";
    return decode_status::error;
  }
  f.fin = (b0 & 0x80) != 0;
  f.op = b0 & 0x0F;
  const bool control = (f.op & 0x08) != 0;
  if (f.op != opcode::continuation && f.op != opcode::text && f.op != opcode::binary
      && f.op != opcode::close && f.op != opcode::ping && f.op != opcode::pong) {
    error = "unknown opcode " + std::to_string(f.op);
    return decode_status::error;
  }
  std::size_t header = 2;
  std::uint64_t n = b1 & 0x7F;
  if (n == 126) {
    if (data.size() < 4) {
      return decode_status::incomplete;
    }
    n = (static_cast<std::uint64_t>(static_cast<std::uint8_t>(data[2])) << 8)
        | static_cast<std::uint8_t>(data[3]);
    header = 4;
  } else if (n == 127) {
    if (data.size() < 10) {
      return decode_status::incomplete;
    }
    n = 0;
    for (int i = 2; i < 10; ++i) {
      n = (n << 8) | static_cast<std::uint8_t>(data[static_cast<std::size_t>(i)]);
    }
    header = 10;
  }
  if (control && (n > 125 || !f.fin)) {
    error = "control frame fragmented or over 125 bytes";
    return decode_status::error;
  }
  if (n > max_payload) {
    error = "frame of " + std::to_string(n) + " bytes (limit " + std::to_string(max_payload) + ")";
    return decode_status::error;
  }
  if (data.size() - header < n) {
    return decode_status::incomplete;
  }
  f.payload = data.substr(header, static_cast<std::size_t>(n));
  consumed = header + static_cast<std::size_t>(n);
  return decode_status::ok;
}

}  // namespace si::wsbench
