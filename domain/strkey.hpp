#pragma once
/// Stellar StrKeys (SEP-23): validation with a reason, decoding and encoding.
///
/// A StrKey is RFC 4648 base32 (upper case, no padding) of
/// `version byte || payload || CRC16-XModem(version byte || payload)` with the checksum
/// little-endian. The version byte's top 5 bits pick the first character (G account,
/// M muxed account, S seed, T pre-auth tx, X sha256 hash, C contract, L liquidity pool,
/// B claimable balance); its low 3 bits must be zero.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace si::domain {

/// CRC16-XModem (polynomial 0x1021, initial value 0, no reflection): the StrKey checksum.
uint16_t crc16_xmodem(const uint8_t* data, std::size_t size);

/// What is wrong with `key` as a StrKey of the kind `expected_prefix` names, or nullopt when
/// it is valid. Checks in order: known kind, length, alphabet, version byte, canonical
/// trailing bits, checksum (and for `B`, the claimable balance type byte). The text names
/// the problem, never echoes the key.
std::optional<std::string> strkey_error(std::string_view key, char expected_prefix);

/// True when `key` is a valid `G...` account id (56 characters, version byte 6 << 3,
/// 32-byte ed25519 key, correct checksum).
bool is_valid_account_id(std::string_view key);

/// The payload of a valid StrKey (version byte and checksum stripped); nullopt when
/// `strkey_error` would report a problem.
std::optional<std::vector<uint8_t>> decode_strkey(std::string_view key, char expected_prefix);

/// The StrKey of `payload` under `version_byte` (for tests and data generation; no check that
/// the payload size suits the kind).
std::string encode_strkey(uint8_t version_byte, const std::vector<uint8_t>& payload);

/// The `G...` account id of a 32-byte ed25519 public key.
std::string encode_account_id(const std::array<uint8_t, 32>& public_key);

}  // namespace si::domain
