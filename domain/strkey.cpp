#include "domain/strkey.hpp"

namespace si::domain {

namespace {

constexpr std::string_view base32_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// One StrKey kind: its first character, version byte, payload size and a name for errors.
struct strkey_kind {
  char prefix;
  uint8_t version;
  std::size_t payload_size;
  const char* name;
};

/// The kinds with a fixed payload size (the variable-length signed payload `P` is not one).
constexpr std::array<strkey_kind, 8> kinds{{
    {'G', 6 << 3, 32, "account id"},
    {'M', 12 << 3, 40, "muxed account"},
    {'S', 18 << 3, 32, "secret seed"},
    {'T', 19 << 3, 32, "pre-authorized transaction hash"},
    {'X', 23 << 3, 32, "sha256 hash signer"},
    {'C', 2 << 3, 32, "contract id"},
    {'L', 11 << 3, 32, "liquidity pool id"},
    {'B', 1 << 3, 33, "claimable balance id"},
}};

const strkey_kind* find_kind(char prefix) {
  for (const auto& kind : kinds) {
    if (kind.prefix == prefix) {
      return &kind;
    }
  }
  return nullptr;
}

/// Base32 characters needed for `bytes` bytes without padding.
std::size_t encoded_length(std::size_t bytes) {
  return (bytes * 8 + 4) / 5;
}

int base32_value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= '2' && c <= '7') {
    return c - '2' + 26;
  }
  return -1;
}

/// Decodes `key` against `kind` into the raw bytes, or returns the error text.
std::optional<std::string> decode(std::string_view key, const strkey_kind& kind,
                                  std::vector<uint8_t>& raw) {
  const std::size_t raw_size = 1 + kind.payload_size + 2;
  const std::size_t expected_chars = encoded_length(raw_size);
  if (key.size() != expected_chars) {
    return std::string(kind.name) + " must be " + std::to_string(expected_chars)
           + " characters, got " + std::to_string(key.size());
  }
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (base32_value(key[i]) < 0) {
      const unsigned char c = static_cast<unsigned char>(key[i]);
      const std::string shown =
          c >= 0x21 && c < 0x7f ? "'" + std::string(1, key[i]) + "'" : "a non-printable byte";
      return "character " + std::to_string(i + 1) + " (" + shown
             + ") is not in the base32 alphabet A-Z, 2-7";
    }
  }
  if (key.front() != kind.prefix) {
    return std::string(kind.name) + " must start with '" + std::string(1, kind.prefix) + "', got '"
           + std::string(1, key.front()) + "'";
  }
  raw.clear();
  raw.reserve(raw_size);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : key) {
    buffer = (buffer << 5) | static_cast<uint32_t>(base32_value(c));
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      raw.push_back(static_cast<uint8_t>((buffer >> bits) & 0xff));
    }
  }
  if (raw[0] != kind.version) {
    return "version byte " + std::to_string(raw[0]) + " is wrong for " + std::string(kind.name)
           + " (expected " + std::to_string(kind.version) + ")";
  }
  // The bits past the last whole byte must be zero, or two strings would decode alike.
  if (bits > 0 && (buffer & ((1u << bits) - 1)) != 0) {
    return "non-canonical encoding: the unused trailing bits are not zero";
  }
  const uint16_t expected = crc16_xmodem(raw.data(), raw.size() - 2);
  const uint16_t stored = static_cast<uint16_t>(raw[raw.size() - 2] | (raw[raw.size() - 1] << 8));
  if (expected != stored) {
    return "checksum mismatch (a character is wrong or missing)";
  }
  if (kind.prefix == 'B' && raw[1] != 0) {
    return "unknown claimable balance type " + std::to_string(raw[1]);
  }
  return std::nullopt;
}

}  // namespace

uint16_t crc16_xmodem(const uint8_t* data, std::size_t size) {
  uint16_t crc = 0;
  for (std::size_t i = 0; i < size; ++i) {
    crc = static_cast<uint16_t>(crc ^ (static_cast<uint16_t>(data[i]) << 8));
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::optional<std::string> strkey_error(std::string_view key, char expected_prefix) {
  const strkey_kind* kind = find_kind(expected_prefix);
  if (kind == nullptr) {
    return "unsupported StrKey kind '" + std::string(1, expected_prefix) + "'";
  }
  std::vector<uint8_t> raw;
  return decode(key, *kind, raw);
}

bool is_valid_account_id(std::string_view key) {
  return !strkey_error(key, 'G').has_value();
}

std::optional<std::vector<uint8_t>> decode_strkey(std::string_view key, char expected_prefix) {
  const strkey_kind* kind = find_kind(expected_prefix);
  if (kind == nullptr) {
    return std::nullopt;
  }
  std::vector<uint8_t> raw;
  if (decode(key, *kind, raw)) {
    return std::nullopt;
  }
  return std::vector<uint8_t>(raw.begin() + 1, raw.end() - 2);
}

std::string encode_strkey(uint8_t version_byte, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> raw;
  raw.reserve(payload.size() + 3);
  raw.push_back(version_byte);
  raw.insert(raw.end(), payload.begin(), payload.end());
  const uint16_t crc = crc16_xmodem(raw.data(), raw.size());
  raw.push_back(static_cast<uint8_t>(crc & 0xff));
  raw.push_back(static_cast<uint8_t>(crc >> 8));

  std::string out;
  out.reserve(encoded_length(raw.size()));
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t byte : raw) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(base32_alphabet[(buffer >> bits) & 0x1f]);
    }
  }
  if (bits > 0) {
    out.push_back(base32_alphabet[(buffer << (5 - bits)) & 0x1f]);
  }
  return out;
}

std::string encode_account_id(const std::array<uint8_t, 32>& public_key) {
  return encode_strkey(6 << 3, std::vector<uint8_t>(public_key.begin(), public_key.end()));
}

}  // namespace si::domain
