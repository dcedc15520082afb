#include "domain/webhook.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "domain/horizon_values.hpp"

namespace si::domain {

namespace {

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto n = (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16)
                   | (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8)
                   | static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    out += base64_alphabet[(n >> 18) & 63];
    out += base64_alphabet[(n >> 12) & 63];
    out += base64_alphabet[(n >> 6) & 63];
    out += base64_alphabet[n & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) {
      n |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    }
    out += base64_alphabet[(n >> 18) & 63];
    out += base64_alphabet[(n >> 12) & 63];
    out += rest == 2 ? base64_alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+' || c == '-') {
    return 62;
  }
  if (c == '/' || c == '_') {
    return 63;
  }
  return -1;
}

/// Decodes base64 in the standard or the URL-safe alphabet, padding optional (but, when
/// present, correct). nullopt for anything else, including a dangling single character.
std::optional<std::string> base64_decode(std::string_view text) {
  std::size_t end = text.size();
  std::size_t padding = 0;
  while (end > 0 && text[end - 1] == '=' && padding < 2) {
    --end;
    ++padding;
  }
  if (padding > 0 && text.size() % 4 != 0) {
    return std::nullopt;
  }
  if (end % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(end / 4 * 3 + 2);
  uint32_t buffer = 0;
  int bits = 0;
  for (std::size_t i = 0; i < end; ++i) {
    const int v = base64_value(text[i]);
    if (v < 0) {
      return std::nullopt;
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

void random_bytes(unsigned char* out, std::size_t size) {
  if (RAND_bytes(out, static_cast<int>(size)) != 1) {
    throw webhook_crypto_error("the system random number generator failed (RAND_bytes)");
  }
}

constexpr std::string_view crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 26 characters: 10 for the 48-bit millisecond time, 16 for 80 random bits.
std::string ulid(long long now_ms) {
  std::string out(26, '0');
  auto time = static_cast<uint64_t>(std::max(0LL, now_ms)) & ((uint64_t{1} << 48) - 1);
  for (int i = 9; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = crockford[time & 31];
    time >>= 5;
  }
  std::array<unsigned char, 10> random{};
  random_bytes(random.data(), random.size());
  uint32_t buffer = 0;
  int bits = 0;
  std::size_t pos = 10;
  for (unsigned char byte : random) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[pos++] = crockford[(buffer >> bits) & 31];
    }
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  const auto* ok = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                        reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                        digest.data(), &size);
  if (ok == nullptr) {
    throw webhook_crypto_error("HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(digest.data()), size);
}

std::string signature_payload(std::string_view msg_id, long long timestamp_s,
                              std::string_view body) {
  std::string payload;
  payload.reserve(msg_id.size() + body.size() + 24);
  payload.append(msg_id);
  payload += '.';
  payload += std::to_string(timestamp_s);
  payload += '.';
  payload.append(body);
  return payload;
}

std::string_view trim(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && space(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

constexpr std::size_t gcm_nonce_size = 12;
constexpr std::size_t gcm_tag_size = 16;

struct cipher_ctx_deleter {
  void operator()(EVP_CIPHER_CTX* ctx) const {
    EVP_CIPHER_CTX_free(ctx);
  }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

cipher_ctx new_cipher_ctx() {
  cipher_ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) {
    throw webhook_crypto_error("cannot allocate an AES-GCM context");
  }
  return ctx;
}

const unsigned char* bytes_of(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

}  // namespace

// -- event types and filters -------------------------------------------------------------------

bool is_webhook_event_type(std::string_view type) {
  return std::find(webhook_event_types.begin(), webhook_event_types.end(), type)
         != webhook_event_types.end();
}

std::variant<std::vector<std::string>, std::string> parse_event_types(const nlohmann::json& value) {
  if (!value.is_array()) {
    return std::string("event_types must be an array of event type strings");
  }
  if (value.empty()) {
    return std::string("event_types must name at least one event type");
  }
  std::vector<std::string> types;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto& entry = value[i];
    if (!entry.is_string()) {
      return "event_types[" + std::to_string(i) + "] is not a string";
    }
    const auto& type = entry.get_ref<const std::string&>();
    if (!is_webhook_event_type(type)) {
      std::string known;
      for (auto t : webhook_event_types) {
        known += (known.empty() ? "" : ", ") + std::string(t);
      }
      // The offending value is client input, not a secret: echo it, bounded.
      return "event_types[" + std::to_string(i) + "] '" + type.substr(0, 64)
             + "' is not a known event type (known: " + known + ")";
    }
    if (std::find(types.begin(), types.end(), type) == types.end()) {
      types.push_back(type);
    }
  }
  return types;
}

std::variant<nlohmann::json, std::string> parse_filters(const nlohmann::json& value) {
  if (value.is_null()) {
    return nlohmann::json::object();
  }
  if (!value.is_object()) {
    return std::string("filters must be a JSON object of top-level data fields to match");
  }
  if (value.size() > max_filter_keys) {
    return "filters may have at most " + std::to_string(max_filter_keys) + " keys";
  }
  for (const auto& item : value.items()) {
    if (item.key().empty()) {
      return std::string("filters may not have an empty key");
    }
  }
  return value;
}

bool filters_match(const nlohmann::json& filters, const nlohmann::json& data) {
  if (!filters.is_object() || filters.empty()) {
    return true;
  }
  if (!data.is_object()) {
    return false;
  }
  for (const auto& item : filters.items()) {
    const auto found = data.find(item.key());
    if (found == data.end() || *found != item.value()) {
      return false;
    }
  }
  return true;
}

// -- ids and bodies ----------------------------------------------------------------------------

std::string new_event_id(long long now_ms) {
  return "msg_" + ulid(now_ms);
}

std::string new_webhook_id(long long now_ms) {
  return "wh_" + ulid(now_ms);
}

std::string delivery_body(std::string_view type, long long created_at_ms,
                          const nlohmann::json& data) {
  // Written by hand so the fields keep the documented order (type, timestamp, data).
  return R"({"type":)" + nlohmann::json(std::string(type)).dump() + R"(,"timestamp":)"
         + nlohmann::json(format_timestamp_ms(created_at_ms)).dump() + R"(,"data":)" + data.dump()
         + "}";
}

// -- signatures --------------------------------------------------------------------------------

std::string generate_webhook_secret() {
  std::array<unsigned char, 32> key{};
  random_bytes(key.data(), key.size());
  std::string secret(webhook_secret_prefix);
  secret += base64_encode(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
  OPENSSL_cleanse(key.data(), key.size());
  return secret;
}

std::string webhook_secret_key(std::string_view secret) {
  if (secret.substr(0, webhook_secret_prefix.size()) != webhook_secret_prefix) {
    throw webhook_crypto_error("webhook secret does not start with 'whsec_'");
  }
  auto key = base64_decode(secret.substr(webhook_secret_prefix.size()));
  if (!key) {
    throw webhook_crypto_error("webhook secret is not valid base64 after 'whsec_'");
  }
  if (key->empty()) {
    throw webhook_crypto_error("webhook secret has an empty key after 'whsec_'");
  }
  return std::move(*key);
}

std::string sign_webhook(std::string_view secret, std::string_view msg_id, long long timestamp_s,
                         std::string_view body) {
  std::string key = webhook_secret_key(secret);
  const std::string mac = hmac_sha256(key, signature_payload(msg_id, timestamp_s, body));
  OPENSSL_cleanse(key.data(), key.size());
  return "v1," + base64_encode(mac);
}

bool verify_webhook_signature(std::string_view secret, std::string_view msg_id,
                              long long timestamp_s, std::string_view body,
                              std::string_view signature_header) {
  const std::string expected = sign_webhook(secret, msg_id, timestamp_s, body);
  std::size_t pos = 0;
  while (pos <= signature_header.size()) {
    std::size_t end = signature_header.find(' ', pos);
    if (end == std::string_view::npos) {
      end = signature_header.size();
    }
    const auto entry = signature_header.substr(pos, end - pos);
    if (entry.size() == expected.size()
        && CRYPTO_memcmp(entry.data(), expected.data(), expected.size()) == 0) {
      return true;
    }
    pos = end + 1;
  }
  return false;
}

// -- secrets at rest ---------------------------------------------------------------------------

std::variant<secret_cipher, std::string> secret_cipher::from_key_text(std::string_view text) {
  const std::string_view accepted =
      "WEBHOOK_SECRET_KEY must be 32 bytes written as 64 hex digits or as base64 (44 "
      "characters with padding), e.g. the output of `openssl rand -base64 32`";
  text = trim(text);
  std::array<unsigned char, key_size> key{};
  if (text.size() == 2 * key_size
      && std::all_of(text.begin(), text.end(), [](char c) { return hex_value(c) >= 0; })) {
    for (std::size_t i = 0; i < key_size; ++i) {
      key[i] = static_cast<unsigned char>(hex_value(text[2 * i]) * 16 + hex_value(text[2 * i + 1]));
    }
    secret_cipher cipher(key);
    OPENSSL_cleanse(key.data(), key.size());
    return cipher;
  }
  auto decoded = base64_decode(text);
  if (!decoded) {
    return std::string(accepted) + " (the value is neither)";
  }
  if (decoded->size() != key_size) {
    const std::string error = std::string(accepted) + " (the value decodes to "
                              + std::to_string(decoded->size()) + " bytes)";
    OPENSSL_cleanse(decoded->data(), decoded->size());
    return error;
  }
  std::copy(decoded->begin(), decoded->end(), key.begin());
  OPENSSL_cleanse(decoded->data(), decoded->size());
  secret_cipher cipher(key);
  OPENSSL_cleanse(key.data(), key.size());
  return cipher;
}

secret_cipher::secret_cipher(const std::array<unsigned char, key_size>& key) : key_(key) {}

secret_cipher::secret_cipher(const secret_cipher& other) = default;

secret_cipher& secret_cipher::operator=(const secret_cipher& other) = default;

secret_cipher::~secret_cipher() {
  OPENSSL_cleanse(key_.data(), key_.size());
}

std::string secret_cipher::seal(std::string_view plaintext, std::string_view context) const {
  std::string blob(gcm_nonce_size + plaintext.size() + gcm_tag_size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(blob.data());
  random_bytes(out, gcm_nonce_size);
  auto ctx = new_cipher_ctx();
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1
            && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN,
                                   static_cast<int>(gcm_nonce_size), nullptr)
                   == 1
            && EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key_.data(), out) == 1;
  ok = ok
       && (context.empty()
           || EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes_of(context),
                                static_cast<int>(context.size()))
                  == 1);
  ok = ok
       && (plaintext.empty()
           || EVP_EncryptUpdate(ctx.get(), out + gcm_nonce_size, &len, bytes_of(plaintext),
                                static_cast<int>(plaintext.size()))
                  == 1);
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), out + gcm_nonce_size + plaintext.size(), &len) == 1
       && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(gcm_tag_size),
                              out + gcm_nonce_size + plaintext.size())
              == 1;
  if (!ok) {
    OPENSSL_cleanse(blob.data(), blob.size());
    throw webhook_crypto_error("AES-256-GCM encryption of a webhook secret failed");
  }
  return std::string(sealed_secret_prefix) + base64_encode(blob);
}

std::string secret_cipher::open(std::string_view sealed, std::string_view context) const {
  if (!is_sealed_secret(sealed)) {
    throw webhook_crypto_error("stored webhook secret is not in the 'enc:v1:' sealed form");
  }
  const auto blob = base64_decode(sealed.substr(sealed_secret_prefix.size()));
  if (!blob || blob->size() < gcm_nonce_size + gcm_tag_size) {
    throw webhook_crypto_error(
        "stored webhook secret is a malformed 'enc:v1:' value (bad base64 or too short)");
  }
  const auto* in = reinterpret_cast<const unsigned char*>(blob->data());
  const std::size_t text_size = blob->size() - gcm_nonce_size - gcm_tag_size;
  std::string plain(text_size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  auto ctx = new_cipher_ctx();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1
            && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN,
                                   static_cast<int>(gcm_nonce_size), nullptr)
                   == 1
            && EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key_.data(), in) == 1;
  ok = ok
       && (context.empty()
           || EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes_of(context),
                                static_cast<int>(context.size()))
                  == 1);
  ok = ok
       && (text_size == 0
           || EVP_DecryptUpdate(ctx.get(), out, &len, in + gcm_nonce_size,
                                static_cast<int>(text_size))
                  == 1);
  // The tag is set before Final, which is where GCM verifies it.
  std::array<unsigned char, gcm_tag_size> tag{};
  std::copy(in + gcm_nonce_size + text_size, in + blob->size(), tag.begin());
  ok = ok
       && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(gcm_tag_size),
                              tag.data())
              == 1;
  ok = ok && EVP_DecryptFinal_ex(ctx.get(), out + text_size, &len) == 1;
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    throw webhook_crypto_error(
        "stored webhook secret does not decrypt: WEBHOOK_SECRET_KEY is not the key it was "
        "sealed with, or the stored value was altered or belongs to another webhook");
  }
  return plain;
}

bool is_sealed_secret(std::string_view stored) {
  return stored.substr(0, sealed_secret_prefix.size()) == sealed_secret_prefix;
}

std::string store_webhook_secret(const secret_cipher* cipher, std::string_view secret,
                                 std::string_view webhook_id) {
  if (cipher == nullptr) {
    return std::string(secret);
  }
  return cipher->seal(secret, webhook_id);
}

std::string load_webhook_secret(const secret_cipher* cipher, std::string_view stored,
                                std::string_view webhook_id) {
  if (!is_sealed_secret(stored)) {
    return std::string(stored);
  }
  if (cipher == nullptr) {
    throw webhook_crypto_error(
        "stored webhook secret is encrypted but WEBHOOK_SECRET_KEY is not configured");
  }
  return cipher->open(stored, webhook_id);
}

// -- delivery outcomes and retries -------------------------------------------------------------

bool is_delivery_success(int status_code) {
  return status_code >= 200 && status_code <= 299;
}

bool disables_webhook(int status_code) {
  return status_code == 410;
}

unit_random system_unit_random() {
  return [] {
    std::array<unsigned char, 8> bytes{};
    random_bytes(bytes.data(), bytes.size());
    uint64_t v = 0;
    for (unsigned char b : bytes) {
      v = (v << 8) | b;
    }
    return static_cast<double>(v >> 11) * 0x1.0p-53;  // 53 random bits in [0, 1)
  };
}

long long retry_delay_ms(const backoff_policy& policy, int failed_attempts,
                         const unit_random& random) {
  const long long min_ms = std::max(0LL, policy.min_ms);
  const long long max_ms = std::max(min_ms, policy.max_ms);
  const int n = std::max(1, failed_attempts);
  // min_ms * 2^k capped at max_ms, without overflowing.
  const auto scaled = [&](int k) {
    long long v = min_ms;
    for (int i = 0; i < k && v < max_ms; ++i) {
      v = v > max_ms / 2 ? max_ms : v * 2;
    }
    return std::min(v, max_ms);
  };
  if (policy.jitter == backoff_jitter::none) {
    return scaled(n - 1);
  }
  const long long ceiling = scaled(n);
  const long long floor =
      policy.jitter == backoff_jitter::equal ? std::max(min_ms, ceiling / 2) : min_ms;
  double r = random ? random() : 0.0;
  if (!(r >= 0.0)) {
    r = 0.0;  // also NaN
  }
  r = std::min(r, std::nextafter(1.0, 0.0));
  const auto span = static_cast<double>(ceiling - floor + 1);
  const auto offset = static_cast<long long>(std::floor(r * span));
  return std::min(ceiling, floor + offset);
}

}  // namespace si::domain
