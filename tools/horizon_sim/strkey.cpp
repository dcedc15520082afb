#include "tools/horizon_sim/strkey.hpp"

#include <array>

namespace si::sim {

namespace {

constexpr char base32_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr uint8_t account_version = 6 << 3;  // 'G'
constexpr uint8_t muxed_version = 12 << 3;   // 'M'

constexpr std::array<uint16_t, 256> crc_table = [] {
  std::array<uint16_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    auto crc = static_cast<uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
    table[byte] = crc;
  }
  return table;
}();

/// base32 of version || payload || crc (payload at most 40 bytes).
std::string encode(uint8_t version, const uint8_t* payload, std::size_t size) {
  uint8_t raw[43];
  raw[0] = version;
  for (std::size_t i = 0; i < size; ++i) {
    raw[1 + i] = payload[i];
  }
  const uint16_t crc = crc16_xmodem(raw, size + 1);
  raw[size + 1] = static_cast<uint8_t>(crc & 0xff);
  raw[size + 2] = static_cast<uint8_t>(crc >> 8);
  const std::size_t length = size + 3;

  char text[72];
  std::size_t n = 0;
  uint32_t buffer = 0;
  int bits = 0;
  for (std::size_t i = 0; i < length; ++i) {
    buffer = (buffer << 8) | raw[i];
    bits += 8;
    while (bits >= 5) {
      text[n++] = base32_digits[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) {
    text[n++] = base32_digits[(buffer << (5 - bits)) & 31];
  }
  return std::string(text, n);
}

}  // namespace

uint16_t crc16_xmodem(const uint8_t* data, std::size_t size) {
  uint16_t crc = 0;
  for (std::size_t i = 0; i < size; ++i) {
    crc = static_cast<uint16_t>((crc << 8) ^ crc_table[((crc >> 8) ^ data[i]) & 0xff]);
  }
  return crc;
}

std::string encode_account(const std::array<uint8_t, 32>& key) {
  return encode(account_version, key.data(), key.size());
}

std::string encode_muxed(const std::array<uint8_t, 32>& key, uint64_t id) {
  // SEP-23: the ed25519 key, then the id big-endian.
  uint8_t payload[40];
  for (std::size_t i = 0; i < 32; ++i) {
    payload[i] = key[i];
  }
  for (std::size_t i = 0; i < 8; ++i) {
    payload[32 + i] = static_cast<uint8_t>(id >> (56 - 8 * i));
  }
  return encode(muxed_version, payload, sizeof payload);
}

}  // namespace si::sim
