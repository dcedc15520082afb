#pragma once
/// Stellar StrKey encoding (SEP-23) for the simulator's generated accounts: base32 (RFC 4648,
/// no padding) of `version byte || payload || CRC16-XModem` with the checksum little-endian.
/// Self-contained on purpose: the simulator must not share code with the parsers it tests.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace si::sim {

/// CRC16-XModem (polynomial 0x1021, initial 0, no reflection).
uint16_t crc16_xmodem(const uint8_t* data, std::size_t size);

/// The `G...` account id of a 32-byte ed25519 public key (56 characters).
std::string encode_account(const std::array<uint8_t, 32>& key);

/// The `M...` muxed account of a key and a 64-bit id (69 characters).
std::string encode_muxed(const std::array<uint8_t, 32>& key, uint64_t id);

}  // namespace si::sim
