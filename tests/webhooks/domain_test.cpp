#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "domain/webhook.hpp"

using namespace si::domain;
using nlohmann::json;

namespace {

// -- independent helpers: OpenSSL's own base64 and HMAC, not the code under test -----------------

std::string openssl_base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

/// Decodes padded standard base64 (EVP_DecodeBlock pads its output with zero bytes for each
/// '=', which are removed here).
std::string openssl_unbase64(const std::string& text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  REQUIRE(n >= 0);
  std::size_t size = static_cast<std::size_t>(n);
  if (!text.empty() && text.back() == '=') {
    --size;
  }
  if (text.size() > 1 && text[text.size() - 2] == '=') {
    --size;
  }
  out.resize(size);
  return out;
}

std::string openssl_hmac(const std::string& key, const std::string& message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
               reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest,
               &size)
          != nullptr);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

/// AES-256-GCM decryption of `nonce|ciphertext|tag` written here with EVP, to check the
/// sealed format independently of secret_cipher::open.
std::optional<std::string> openssl_gcm_open(const std::string& key, const std::string& blob,
                                            const std::string& aad) {
  if (blob.size() < 28) {
    return std::nullopt;
  }
  const auto* in = reinterpret_cast<const unsigned char*>(blob.data());
  const std::size_t text_size = blob.size() - 28;
  std::string out(text_size + 16, '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(key.data()), in)
            == 1;
  ok = ok
       && EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                            static_cast<int>(aad.size()))
              == 1;
  ok = ok
       && EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, in + 12,
                            static_cast<int>(text_size))
              == 1;
  std::string tag = blob.substr(12 + text_size);
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1;
  ok = ok && EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()), &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    return std::nullopt;
  }
  out.resize(text_size);
  return out;
}

secret_cipher cipher_from(const std::string& text) {
  auto parsed = secret_cipher::from_key_text(text);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    FAIL("key refused: " << *error);
  }
  return std::get<secret_cipher>(std::move(parsed));
}

const std::string key_hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string key_base64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

std::string key_bytes() {
  std::string key;
  for (int i = 0; i < 32; ++i) {
    key += static_cast<char>(i);
  }
  return key;
}

/// A unit_random that returns `values` in turn, then the last one forever.
unit_random sequence(std::vector<double> values) {
  auto index = std::make_shared<std::size_t>(0);
  return [values = std::move(values), index] {
    const double v = values[std::min(*index, values.size() - 1)];
    ++*index;
    return v;
  };
}

}  // namespace

// -- signatures --------------------------------------------------------------------------------

TEST_CASE("the Standard Webhooks example signs to its published signature", "[webhooks][sign]") {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const std::string id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
  const std::string body = R"({"test": 2432232314})";
  const std::string expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
  CHECK(sign_webhook(secret, id, 1614265330, body) == expected);
  CHECK(verify_webhook_signature(secret, id, 1614265330, body, expected));
  CHECK(verify_webhook_signature(secret, id, 1614265330, body, "v1,bm9wZQ== " + expected));
  CHECK_FALSE(verify_webhook_signature(secret, id, 1614265331, body, expected));
  CHECK_FALSE(verify_webhook_signature(secret, "msg_other", 1614265330, body, expected));
  CHECK_FALSE(verify_webhook_signature(secret, id, 1614265330, body + " ", expected));
  CHECK_FALSE(verify_webhook_signature("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", id,
                                       1614265330, body, expected));
  CHECK_FALSE(verify_webhook_signature(secret, id, 1614265330, body, ""));
  CHECK_FALSE(verify_webhook_signature(secret, id, 1614265330, body, expected.substr(3)));
}

TEST_CASE("signatures match a vector computed with the openssl command line", "[webhooks][sign]") {
  // printf '%s' "$msg" | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f -binary
  //   | base64, with the key bytes 0x00..0x1f (base64 below).
  const std::string secret = "whsec_" + key_base64;
  const std::string body = R"({"type":"test","timestamp":"2023-11-14T22:13:20Z","data":{"n":1}})";
  CHECK(sign_webhook(secret, "msg_01ARYZ6S41TSV4RRFFQ69G5FAV", 1700000000, body)
        == "v1,sz0S/Qphe+NR83vbzkRynDsDGNioBDntMP3KWxC3F1I=");
}

TEST_CASE("signatures of generated secrets match OpenSSL's HMAC directly", "[webhooks][sign]") {
  for (int i = 0; i < 20; ++i) {
    const std::string secret = generate_webhook_secret();
    const std::string key = openssl_unbase64(secret.substr(6));
    const std::string id = new_event_id(1'700'000'000'000 + i);
    const std::string body = delivery_body("test", 1'700'000'000'000, json{{"i", i}});
    const std::string expected =
        "v1,"
        + openssl_base64(openssl_hmac(key, id + "." + std::to_string(1700000000 + i) + "." + body));
    CHECK(sign_webhook(secret, id, 1700000000 + i, body) == expected);
  }
}

TEST_CASE("generated secrets are whsec_ plus 32 random bytes", "[webhooks][sign]") {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string secret = generate_webhook_secret();
    REQUIRE(secret.rfind("whsec_", 0) == 0);
    CHECK(secret.size() == 6 + 44);
    CHECK(openssl_unbase64(secret.substr(6)).size() == 32);
    CHECK(webhook_secret_key(secret) == openssl_unbase64(secret.substr(6)));
    seen.insert(secret);
  }
  CHECK(seen.size() == 200);
}

TEST_CASE("unusable secrets are refused without echoing them", "[webhooks][sign]") {
  const std::vector<std::string> bad = {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_",
                                        "whsec_not*base64!", "whsec_abcde",
                                        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
  for (const auto& secret : bad) {
    INFO(secret);
    try {
      sign_webhook(secret, "msg_x", 1, "{}");
      FAIL("accepted");
    } catch (const webhook_crypto_error& e) {
      const std::string what = e.what();
      CHECK(what.find("whsec_") != std::string::npos);  // says what is expected
      if (secret.size() > 6) {
        CHECK(what.find(secret.substr(6)) == std::string::npos);
      }
    }
  }
  // URL-safe alphabet and missing padding are accepted (same key bytes).
  CHECK(webhook_secret_key("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8") == key_bytes());
}

// -- ids and bodies ----------------------------------------------------------------------------

TEST_CASE("event ids are msg_ plus a time-ordered random ULID", "[webhooks][ids]") {
  const std::string alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  // The ULID spec's example: 1469918176385 ms encodes as 01ARYZ6S41.
  CHECK(new_event_id(1469918176385).substr(4, 10) == "01ARYZ6S41");
  std::set<std::string> seen;
  std::string previous;
  for (int i = 0; i < 2000; ++i) {
    const std::string id = new_event_id(1'700'000'000'000 + i);
    REQUIRE(id.size() == 4 + 26);
    REQUIRE(id.rfind("msg_", 0) == 0);
    CHECK(id.find_first_not_of(alphabet, 4) == std::string::npos);
    CHECK(id > previous);  // a later millisecond sorts later
    previous = id;
    seen.insert(id);
  }
  std::set<std::string> same_ms;
  for (int i = 0; i < 2000; ++i) {
    same_ms.insert(new_event_id(1'700'000'000'000));
  }
  CHECK(seen.size() == 2000);
  CHECK(same_ms.size() == 2000);  // 80 random bits per id
  const std::string hook = new_webhook_id(1'700'000'000'000);
  CHECK(hook.rfind("wh_", 0) == 0);
  CHECK(hook.size() == 3 + 26);
}

TEST_CASE("the delivery body is type, RFC 3339 timestamp and data", "[webhooks][body]") {
  const json data = {{"corridor_id", "USDC:GA->XLM:native"}, {"success_rate", 42.5}};
  const std::string body = delivery_body("corridor.health_degraded", 1614265330123, data);
  CHECK(body.rfind(R"({"type":"corridor.health_degraded","timestamp":)", 0) == 0);
  const json parsed = json::parse(body);
  CHECK(parsed.size() == 3);
  CHECK(parsed.at("type") == "corridor.health_degraded");
  CHECK(parsed.at("timestamp") == "2021-02-25T15:02:10.123Z");
  CHECK(parsed.at("data") == data);
  CHECK(json::parse(delivery_body("test", 1614265330000, json::object())).at("timestamp")
        == "2021-02-25T15:02:10Z");
}

// -- event types and filters -------------------------------------------------------------------

TEST_CASE("event types are validated", "[webhooks][types]") {
  for (auto type : {"corridor.health_degraded", "anchor.status_changed", "payment.created",
                    "pool.liquidity_dropped", "test"}) {
    CHECK(is_webhook_event_type(type));
  }
  for (auto type : {"", "Test", "payment", "payment.created ", "pool.*", "anchor_status_changed"}) {
    CHECK_FALSE(is_webhook_event_type(type));
  }
  auto ok = parse_event_types(json{"payment.created", "test", "payment.created"});
  REQUIRE(std::holds_alternative<std::vector<std::string>>(ok));
  CHECK(std::get<std::vector<std::string>>(ok)
        == std::vector<std::string>{"payment.created", "test"});

  const auto error_of = [](const json& value) {
    auto result = parse_event_types(value);
    REQUIRE(std::holds_alternative<std::string>(result));
    return std::get<std::string>(result);
  };
  CHECK(error_of(json::array()).find("at least one") != std::string::npos);
  CHECK(error_of(json("test")).find("array") != std::string::npos);
  CHECK(error_of(json(nullptr)).find("array") != std::string::npos);
  CHECK(error_of(json{"test", 5}).find("event_types[1]") != std::string::npos);
  const auto unknown = error_of(json{"test", "payment.deleted"});
  CHECK(unknown.find("event_types[1]") != std::string::npos);
  CHECK(unknown.find("payment.deleted") != std::string::npos);
  CHECK(unknown.find("pool.liquidity_dropped") != std::string::npos);  // lists the known ones
}

TEST_CASE("filters are objects and match top-level data fields exactly", "[webhooks][filters]") {
  CHECK(std::get<json>(parse_filters(json(nullptr))) == json::object());
  CHECK(std::get<json>(parse_filters(json{{"a", 1}})) == json{{"a", 1}});
  CHECK(std::holds_alternative<std::string>(parse_filters(json::array())));
  CHECK(std::holds_alternative<std::string>(parse_filters(json("a=1"))));
  CHECK(std::holds_alternative<std::string>(parse_filters(json{{"", 1}})));
  json many = json::object();
  for (std::size_t i = 0; i <= max_filter_keys; ++i) {
    many["k" + std::to_string(i)] = i;
  }
  CHECK(std::holds_alternative<std::string>(parse_filters(many)));
  many.erase("k0");
  CHECK(std::holds_alternative<json>(parse_filters(many)));

  const json data = {{"asset_code", "USDC"}, {"amount", 5},  {"status", "red"},
                     {"nested", {{"x", 1}}}, {"flag", true}, {"none", nullptr}};
  CHECK(filters_match(json::object(), data));
  CHECK(filters_match(json::object(), json::array()));
  CHECK(filters_match(json{{"asset_code", "USDC"}}, data));
  CHECK(filters_match(json{{"asset_code", "USDC"}, {"status", "red"}}, data));
  CHECK(filters_match(json{{"nested", {{"x", 1}}}}, data));
  CHECK(filters_match(json{{"flag", true}, {"none", nullptr}}, data));
  CHECK(filters_match(json{{"amount", 5}}, data));
  CHECK_FALSE(filters_match(json{{"asset_code", "usdc"}}, data));  // case matters
  CHECK_FALSE(filters_match(json{{"asset_code", "USDC"}, {"status", "green"}}, data));
  CHECK_FALSE(filters_match(json{{"amount", "5"}}, data));  // a string is not a number
  CHECK_FALSE(filters_match(json{{"flag", 1}}, data));
  CHECK_FALSE(filters_match(json{{"missing", nullptr}}, data));  // absent is not null
  CHECK_FALSE(filters_match(json{{"x", 1}}, data));              // only top-level fields
  CHECK_FALSE(filters_match(json{{"asset_code", "USDC"}}, json::array()));
}

// -- secrets at rest ---------------------------------------------------------------------------

TEST_CASE("WEBHOOK_SECRET_KEY is 32 bytes in hex or base64", "[webhooks][secrets]") {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const auto sealed = cipher_from(key_hex).seal(secret, "wh_1");
  // Every accepted spelling of the same 32 bytes opens what the others sealed.
  for (const std::string& text :
       {key_hex, std::string("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"),
        key_base64, key_base64.substr(0, 43), "  " + key_base64 + "\n"}) {
    INFO(text);
    CHECK(cipher_from(text).open(sealed, "wh_1") == secret);
  }
  const std::string url_safe_key = "_-8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  CHECK_NOTHROW(cipher_from(url_safe_key));

  for (const std::string& bad :
       {std::string(""), std::string("short"), key_hex.substr(2), key_hex + "00",
        std::string(64, 'g'), openssl_base64(std::string(31, 'k')),
        openssl_base64(std::string(33, 'k')), std::string("c2VjcmV0IGtleSB2YWx1ZQ==")}) {
    INFO(bad);
    auto parsed = secret_cipher::from_key_text(bad);
    REQUIRE(std::holds_alternative<std::string>(parsed));
    const auto& error = std::get<std::string>(parsed);
    CHECK(error.find("WEBHOOK_SECRET_KEY") != std::string::npos);
    if (bad.size() >= 5) {
      CHECK(error.find(bad) == std::string::npos);  // never echoed
    }
  }
}

TEST_CASE("secrets round-trip through AES-256-GCM in the enc:v1 format", "[webhooks][secrets]") {
  const auto cipher = cipher_from(key_base64);
  const std::string secret = generate_webhook_secret();
  const std::string sealed = cipher.seal(secret, "wh_01HABC");
  REQUIRE(sealed.rfind("enc:v1:", 0) == 0);
  CHECK(is_sealed_secret(sealed));
  CHECK_FALSE(is_sealed_secret(secret));
  CHECK(sealed.find(secret) == std::string::npos);
  CHECK(sealed.find(secret.substr(6)) == std::string::npos);
  CHECK(cipher.open(sealed, "wh_01HABC") == secret);

  // The layout, checked with EVP directly: 12-byte nonce | ciphertext | 16-byte tag, AAD = id.
  const std::string blob = openssl_unbase64(sealed.substr(7));
  CHECK(blob.size() == 12 + secret.size() + 16);
  CHECK(openssl_gcm_open(key_bytes(), blob, "wh_01HABC") == secret);
  CHECK(openssl_gcm_open(key_bytes(), blob, "wh_other") == std::nullopt);

  // A fresh nonce each time.
  const std::string again = cipher.seal(secret, "wh_01HABC");
  CHECK(again != sealed);
  CHECK(openssl_unbase64(again.substr(7)).substr(0, 12) != blob.substr(0, 12));
  CHECK(cipher.open(again, "wh_01HABC") == secret);

  // An empty plaintext and no context work too.
  CHECK(cipher.open(cipher.seal("", ""), "").empty());
  // Copies hold the same key.
  const secret_cipher copy = cipher;
  CHECK(copy.open(sealed, "wh_01HABC") == secret);
}

TEST_CASE("tampered values, another key or another webhook do not open", "[webhooks][secrets]") {
  const auto cipher = cipher_from(key_base64);
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const std::string sealed = cipher.seal(secret, "wh_1");
  const std::string blob = openssl_unbase64(sealed.substr(7));

  const auto refuses = [&](const secret_cipher& c, const std::string& value,
                           const std::string& context, const std::string& expect) {
    try {
      const auto opened = c.open(value, context);
      FAIL("opened: " << opened.size() << " bytes");
    } catch (const webhook_crypto_error& e) {
      const std::string what = e.what();
      CHECK(what.find(expect) != std::string::npos);
      CHECK(what.find(secret) == std::string::npos);
      CHECK(what.find(secret.substr(6)) == std::string::npos);
    }
  };
  // Every single flipped bit, in nonce, ciphertext and tag.
  for (std::size_t i = 0; i < blob.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string t = blob;
      t[i] = static_cast<char>(t[i] ^ (1 << bit));
      refuses(cipher, "enc:v1:" + openssl_base64(t), "wh_1", "WEBHOOK_SECRET_KEY");
    }
  }
  refuses(cipher, "enc:v1:" + openssl_base64(blob.substr(0, blob.size() - 1)), "wh_1",
          "WEBHOOK_SECRET_KEY");
  refuses(cipher_from(std::string(64, 'f')), sealed, "wh_1", "WEBHOOK_SECRET_KEY");
  refuses(cipher, sealed, "wh_2", "another webhook");
  refuses(cipher, secret, "wh_1", "enc:v1:");
  refuses(cipher, "enc:v1:***", "wh_1", "malformed");
  refuses(cipher, "enc:v1:" + openssl_base64(std::string(27, 'x')), "wh_1", "malformed");
}

TEST_CASE("stored secrets are sealed only when a key is configured", "[webhooks][secrets]") {
  const auto cipher = cipher_from(key_hex);
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  CHECK(store_webhook_secret(nullptr, secret, "wh_1") == secret);
  const std::string stored = store_webhook_secret(&cipher, secret, "wh_1");
  CHECK(is_sealed_secret(stored));
  CHECK(load_webhook_secret(&cipher, stored, "wh_1") == secret);
  CHECK(load_webhook_secret(&cipher, secret, "wh_1") == secret);  // written before the key
  CHECK(load_webhook_secret(nullptr, secret, "wh_1") == secret);
  try {
    load_webhook_secret(nullptr, stored, "wh_1");
    FAIL("opened without a key");
  } catch (const webhook_crypto_error& e) {
    CHECK(std::string(e.what()).find("WEBHOOK_SECRET_KEY is not configured") != std::string::npos);
  }
  CHECK_THROWS_AS(load_webhook_secret(&cipher, stored, "wh_2"), webhook_crypto_error);
}

// -- outcomes and retries ----------------------------------------------------------------------

TEST_CASE("2xx delivers and 410 disables", "[webhooks][retry]") {
  for (int code : {200, 201, 204, 299}) {
    CHECK(is_delivery_success(code));
  }
  for (int code : {0, 100, 199, 300, 301, 400, 404, 410, 429, 500, 503}) {
    CHECK_FALSE(is_delivery_success(code));
  }
  CHECK(disables_webhook(410));
  for (int code : {200, 400, 404, 409, 500}) {
    CHECK_FALSE(disables_webhook(code));
  }
}

TEST_CASE("retry delays grow exponentially within min and max", "[webhooks][retry]") {
  backoff_policy none{1'000, 60'000, backoff_jitter::none};
  const auto never = [] {
    FAIL("no jitter needs no random number");
    return 0.0;
  };
  std::vector<long long> seen;
  for (int n = 1; n <= 9; ++n) {
    seen.push_back(retry_delay_ms(none, n, never));
  }
  CHECK(seen
        == std::vector<long long>{1'000, 2'000, 4'000, 8'000, 16'000, 32'000, 60'000, 60'000,
                                  60'000});
  CHECK(retry_delay_ms(none, 0, never) == 1'000);
  CHECK(retry_delay_ms(none, -5, never) == 1'000);
  CHECK(retry_delay_ms(none, 1'000'000, never) == 60'000);  // no overflow

  // Full jitter spans [min, min(max, min * 2^n)].
  backoff_policy full{1'000, 60'000, backoff_jitter::full};
  CHECK(retry_delay_ms(full, 1, sequence({0.0})) == 1'000);
  CHECK(retry_delay_ms(full, 1, sequence({0.999999})) == 2'000);
  CHECK(retry_delay_ms(full, 1, sequence({0.5})) == 1'500);
  CHECK(retry_delay_ms(full, 3, sequence({0.0})) == 1'000);
  CHECK(retry_delay_ms(full, 3, sequence({0.999999})) == 8'000);
  CHECK(retry_delay_ms(full, 30, sequence({0.999999})) == 60'000);
  CHECK(retry_delay_ms(full, 30, sequence({0.0})) == 1'000);

  // Equal jitter spans [max(min, ceiling / 2), ceiling].
  backoff_policy equal{1'000, 60'000, backoff_jitter::equal};
  CHECK(retry_delay_ms(equal, 1, sequence({0.0})) == 1'000);
  CHECK(retry_delay_ms(equal, 1, sequence({0.999999})) == 2'000);
  CHECK(retry_delay_ms(equal, 4, sequence({0.0})) == 8'000);
  CHECK(retry_delay_ms(equal, 4, sequence({0.999999})) == 16'000);
  CHECK(retry_delay_ms(equal, 30, sequence({0.0})) == 30'000);
  CHECK(retry_delay_ms(equal, 30, sequence({0.999999})) == 60'000);

  // Out-of-range random values are clamped, never escaping the bounds.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double r : {-1.0, 1.0, 2.0, nan, std::numeric_limits<double>::infinity()}) {
    for (auto mode : {backoff_jitter::full, backoff_jitter::equal}) {
      backoff_policy p{1'000, 60'000, mode};
      for (int n = 1; n <= 12; ++n) {
        const long long d = retry_delay_ms(p, n, sequence({r}));
        CHECK(d >= 1'000);
        CHECK(d <= std::min(60'000LL, 1'000LL << n));
      }
    }
  }

  // With the system source every delay stays inside its window, and they do spread.
  const auto random = system_unit_random();
  std::set<long long> distinct;
  for (int i = 0; i < 500; ++i) {
    const int n = 1 + i % 10;
    const long long ceiling = std::min(60'000LL, 1'000LL << n);
    const long long f = retry_delay_ms(full, n, random);
    const long long e = retry_delay_ms(equal, n, random);
    CHECK(f >= 1'000);
    CHECK(f <= ceiling);
    CHECK(e >= std::max(1'000LL, ceiling / 2));
    CHECK(e <= ceiling);
    distinct.insert(f);
  }
  CHECK(distinct.size() > 100);
  for (int i = 0; i < 1000; ++i) {
    const double r = random();
    REQUIRE(r >= 0.0);
    REQUIRE(r < 1.0);
  }

  // Degenerate policies: min == max is constant; max below min is raised to min.
  CHECK(retry_delay_ms({5'000, 5'000, backoff_jitter::full}, 7, sequence({0.7})) == 5'000);
  CHECK(retry_delay_ms({5'000, 10, backoff_jitter::equal}, 2, sequence({0.7})) == 5'000);
}
