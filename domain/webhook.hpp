#pragma once
/// Webhooks, the pure part: event types, Standard Webhooks signatures, secrets (generation
/// and AES-256-GCM encryption at rest), event ids, delivery bodies, subscription filters and
/// the retry schedule. No I/O; randomness comes from OpenSSL's CSPRNG or is injected.

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace si::domain {

// -- event types and filters -------------------------------------------------------------------

/// Every event type a webhook can subscribe to (api.md, Webhooks).
inline constexpr std::array<std::string_view, 5> webhook_event_types = {
    "corridor.health_degraded", "anchor.status_changed", "payment.created",
    "pool.liquidity_dropped", "test"};

/// True when `type` is one of `webhook_event_types` (exact, case-sensitive).
bool is_webhook_event_type(std::string_view type);

/// A subscription's `event_types`: a non-empty JSON array of known type strings. Returns the
/// types with duplicates dropped (first occurrence kept, order preserved), or an error text
/// naming the offending entry.
std::variant<std::vector<std::string>, std::string> parse_event_types(const nlohmann::json& value);

/// The most keys a filter object may have.
inline constexpr std::size_t max_filter_keys = 32;

/// A subscription's `filters`: a JSON object (null means "no filter", i.e. `{}`) of at most
/// `max_filter_keys` non-empty keys. Returns the object, or an error text.
std::variant<nlohmann::json, std::string> parse_filters(const nlohmann::json& value);

/// True when every key of `filters` is a top-level field of `data` with an equal value
/// (JSON equality: same type family and value; `"5"` never equals `5`). Empty filters match
/// every event; non-empty filters never match `data` that is not an object.
bool filters_match(const nlohmann::json& filters, const nlohmann::json& data);

// -- ids and bodies ----------------------------------------------------------------------------

/// A new event id: `msg_` + a 26-character ULID (48-bit `now_ms` + 80 random bits, Crockford
/// base32), so ids are unique, unguessable and sort by creation time. Stable across retries:
/// it is the Standard Webhooks `webhook-id`.
std::string new_event_id(long long now_ms);

/// A new webhook id: `wh_` + a 26-character ULID (as `new_event_id`).
std::string new_webhook_id(long long now_ms);

/// The delivery body, compact JSON `{"type":..., "timestamp":"<RFC 3339 UTC>", "data":...}`,
/// `timestamp` being the event's creation time (`format_timestamp_ms`). Stored once per event
/// so that every retry sends the same bytes.
std::string delivery_body(std::string_view type, long long created_at_ms,
                          const nlohmann::json& data);

// -- signatures (Standard Webhooks) ------------------------------------------------------------

/// Thrown when a secret, key or sealed value is unusable. The message never contains secret
/// or key material.
class webhook_crypto_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The prefix of every webhook signing secret.
inline constexpr std::string_view webhook_secret_prefix = "whsec_";

/// A new signing secret: `whsec_` + base64 of 32 random bytes (OpenSSL RAND_bytes).
std::string generate_webhook_secret();

/// The HMAC key of `secret`: the base64-decoded part after `whsec_`. Throws
/// webhook_crypto_error when the prefix is missing, the base64 is invalid or the key is empty.
std::string webhook_secret_key(std::string_view secret);

/// The `webhook-signature` header value for one delivery attempt:
/// `v1,<base64(HMAC-SHA256(key, "<msg_id>.<timestamp_s>.<body>"))>`. Throws
/// webhook_crypto_error for an unusable secret.
std::string sign_webhook(std::string_view secret, std::string_view msg_id, long long timestamp_s,
                         std::string_view body);

/// True when one of the space-separated `v1,<sig>` entries of `signature_header` is the
/// signature of this message (constant-time compare). What receivers do; used by tests.
/// Throws webhook_crypto_error for an unusable secret, like `sign_webhook`.
bool verify_webhook_signature(std::string_view secret, std::string_view msg_id,
                              long long timestamp_s, std::string_view body,
                              std::string_view signature_header);

// -- secrets at rest ---------------------------------------------------------------------------

/// The prefix of a secret sealed by `secret_cipher`.
inline constexpr std::string_view sealed_secret_prefix = "enc:v1:";

/// AES-256-GCM encryption of webhook secrets at rest with the key WEBHOOK_SECRET_KEY.
/// Sealed form: `enc:v1:<base64(12-byte random nonce | ciphertext | 16-byte tag)>`. The
/// `context` (the webhook id) is authenticated too, so a sealed secret copied to another
/// webhook's row does not open. The key is wiped from memory on destruction.
class secret_cipher {
 public:
  /// Key length in bytes.
  static constexpr std::size_t key_size = 32;

  /// Parses WEBHOOK_SECRET_KEY: 32 bytes written as 64 hex digits or as base64 (standard or
  /// URL-safe alphabet, padding optional); surrounding whitespace is ignored. The error text
  /// says which forms are accepted and never echoes the value.
  static std::variant<secret_cipher, std::string> from_key_text(std::string_view text);

  explicit secret_cipher(const std::array<unsigned char, key_size>& key);
  secret_cipher(const secret_cipher& other);
  secret_cipher& operator=(const secret_cipher& other);
  ~secret_cipher();

  /// `plaintext` sealed with a fresh random nonce (two seals of one secret differ).
  std::string seal(std::string_view plaintext, std::string_view context) const;

  /// The plaintext of a sealed value. Throws webhook_crypto_error when `sealed` is not a
  /// well-formed `enc:v1:` value, or when the tag does not verify (wrong key, another
  /// `context`, or altered bytes).
  std::string open(std::string_view sealed, std::string_view context) const;

 private:
  std::array<unsigned char, key_size> key_{};
};

/// True when `stored` is in the sealed form (`enc:v1:` prefix).
bool is_sealed_secret(std::string_view stored);

/// What to store for `secret` of webhook `webhook_id`: sealed with `cipher`, or the secret
/// itself when no cipher is configured (`cipher == nullptr`).
std::string store_webhook_secret(const secret_cipher* cipher, std::string_view secret,
                                 std::string_view webhook_id);

/// The signing secret from its stored form: opened with `cipher` when sealed, returned as is
/// when stored in clear (written before a key was configured). Throws webhook_crypto_error
/// when it is sealed and no cipher is given or it does not open.
std::string load_webhook_secret(const secret_cipher* cipher, std::string_view stored,
                                std::string_view webhook_id);

// -- delivery outcomes and retries -------------------------------------------------------------

/// True for a status code that counts as delivered (2xx).
bool is_delivery_success(int status_code);

/// True for a status code that permanently disables the webhook (410 Gone).
bool disables_webhook(int status_code);

/// How retry delays are spread.
enum class backoff_jitter {
  none,   ///< exactly min_ms * 2^(n-1), capped at max_ms
  full,   ///< uniform in [min_ms, ceiling(n)]
  equal,  ///< uniform in [max(min_ms, ceiling(n) / 2), ceiling(n)]
};

/// The retry schedule: exponential from `min_ms`, never more than `max_ms`. With jitter the
/// window of retry n is bounded by `ceiling(n) = min(max_ms, min_ms * 2^n)`.
struct backoff_policy {
  long long min_ms = 5'000;
  long long max_ms = 3'600'000;
  backoff_jitter jitter = backoff_jitter::full;
};

/// A source of uniform random numbers in [0, 1). Injected so tests are deterministic.
using unit_random = std::function<double()>;

/// A unit_random backed by OpenSSL's CSPRNG (thread-safe).
unit_random system_unit_random();

/// The delay before the next attempt after `failed_attempts` (>= 1; smaller counts as 1)
/// failed ones. Always within [min_ms, max_ms] (after `min_ms` is raised to at least 0 and
/// `max_ms` to at least `min_ms`); a `random` value outside [0, 1) is clamped into it.
long long retry_delay_ms(const backoff_policy& policy, int failed_attempts,
                         const unit_random& random);

}  // namespace si::domain
