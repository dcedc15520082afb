#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <vector>

#include "domain/strkey.hpp"

using namespace si::domain;

namespace {

/// Every distinct account id in /work/shared/horizon-fixtures/*.json (real Horizon answers),
/// copied here so the test does not depend on a path outside the repository.
const std::vector<std::string> fixture_accounts = {
    "GA26UJZUXR5Q2VMTJHAFS2DV6DKFRWBIN7JKDALGYFEXTRNGX5K6DEAZ",
    "GA4QH4AJGERVYX4PBY55JYTQJ4RTLJIBYV7OCYIV56LWZE5MVDH3R3UQ",
    "GA5Q3UHRKBBZFUQBFF3CEEPY322UIEALGUA7KS7LKGMAK7WJ4NF3W742",
    "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",
    "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7",
    "GAC6MRNVZNVFKAQRFGVJBNZ734T3HPJH3OVTKY433STDPZVRDI75UDLD",
    "GAFK7XFZHMLSNV7OJTBO7BAIZA66X6QIBV5RMZZYXK4Q7ZSO52J5C3WQ",
    "GALPCCZN4YXA3YMJHKL6CVIECKPLJJCTVMSNYWBTKJW4K5HQLYLDMZTB",
    "GAP2KHWUMOHY7IO37UJY7SEBIITJIDZS5DRIIQRPEUT4VUKHZQGIRWS4",
    "GAQXAWHCM4A7SQCT3BOSVEGRI2OOB7LO2CMFOYFF6YRXU4VQSB5V2V2K",
    "GAUTUYY2THLF7SGITDFMXJVYH3LHDSMGEAKSBU267M2K7A3W543CKUEF",
    "GBBJZOYEGLOCW32Q4ZGWRWQ7UKIGMMIQXIRBBBOVJVFJTZW7CR2VQKAT",
    "GBDEVU63Y6NTHJQQZIKVTC23NWLQVP3WJ2RI2OTSJTNYOIGICST6DUXR",
    "GBLKRATZODTSJNU7XTB5HY5VAAN63CPRT77UYZT2VLCNXE7F3YHSW22M",
    "GBMZ7GUHNHT6TG4ITOBG46TKA5YMNH7ZKHHJSQRU6PNYBSAELLXNOFDE",
    "GBYODLTHLR7PPEVS2LSXHXHWSL4OGMEFFIINE23RPWJAWVN6WZXZD25O",
    "GC5LF63GRVIT5ZXXCXLPI3RX2YXKJQFZVBSAO6AUELN3YIMSWPD6Z6FH",
    "GCKA6K5PCQ6PNF5RQBF7PQDJWRHO6UOGFMRLK3DYHDOI244V47XKQ4GP",
    "GCKHHE33Q64N7NVM2AEWLWK4T55VPZBFQ5WNU7E3TNO6LTGM6JR3GJGG",
    "GCLSA43RTV6VG44QZKXQTJVI27BM2AIKEFO5JSUHPLFRNEYMVRPPRIE6",
    "GCQTGZQQ5G4PTM2GL7CDIFKUBIPEC52BROAQIAPW53XBRJVN6ZJVTG6V",
    "GCUGVB6HXX56LMAYLTD2OJRJYGRGQRHQ4H5WFZRCWG4WOPCJSLFCWUZA",
    "GCYXLFYRSJWRPQ7JYSPHDNFRNXQ377BNUHF3TDZCPCQMVJS2QKMXCT2E",
    "GCZGSFPITKVJPJERJIVLCQK5YIHYTDXCY45ZHU3IRCUC53SXSCAL44JV",
    "GD3OJBRBHR77ZCRCK5I7LNKHMWN4RYLEAUJ3EROF4PYO6FZZOQBCDION",
    "GD4UTLD46SWG5KCUVBRWFSFCUDISYNEJ2AF5FNB67ORAE6K7ZSAXH5O7",
    "GD4WZJMMTBYHEGIDW7RIRSCPXOWRZ5ACD6CWLFWJZCGFMTKKEU3KYBGW",
    "GDBKRQWEUJGRWWCAGK75L4PZXM2S3DQQIG6S43Y2GMN3IUFZWCLSRA46",
    "GDEGOXPCHXWFYY234D2YZSPEJ24BX42ESJNVHY5H7TWWQSYRN5ZKZE3N",
    "GDEUQ2MX3YXMITFOTC3CO3GW5V3XE3IVG7JKLZZAOZ7WFYIN256INDUS",
    "GDQLBBDNG5L3TZLR5RPVQFT4CUORSTHWX3GJBHCCADXBJV55ZHW6CL5B",
    "GDYG6NVTFCY6HPBRQ3SQNKTDZUR7SS6WAWNEAKAFJW5EMKDGQLPG523C",
    "GDYW6MND6EB32PNRZAMQNOTFLJOZEAFDG3DUWID7I7NRILFWJS66NOWB",
};

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::array<uint8_t, 32> from_hex(const std::string& hex) {
  REQUIRE(hex.size() == 64);
  std::array<uint8_t, 32> out{};
  for (std::size_t i = 0; i < 32; ++i) {
    out[i] = static_cast<uint8_t>(std::stoi(hex.substr(i * 2, 2), nullptr, 16));
  }
  return out;
}

}  // namespace

TEST_CASE("real account ids from Horizon validate", "[strkey]") {
  REQUIRE(fixture_accounts.size() == 33);
  for (const auto& id : fixture_accounts) {
    INFO(id);
    CHECK(is_valid_account_id(id));
    CHECK_FALSE(strkey_error(id, 'G').has_value());
    // Decoding and re-encoding gives back the same string (the encoding is canonical).
    const auto payload = decode_strkey(id, 'G');
    REQUIRE(payload.has_value());
    REQUIRE(payload->size() == 32);
    std::array<uint8_t, 32> key{};
    std::copy(payload->begin(), payload->end(), key.begin());
    CHECK(encode_account_id(key) == id);
  }
}

TEST_CASE("every single-character corruption of an account id is refused", "[strkey]") {
  std::size_t tried = 0;
  std::vector<std::string> accepted;
  for (const auto& id : fixture_accounts) {
    for (std::size_t pos = 0; pos < id.size(); ++pos) {
      for (char c : alphabet) {
        if (c == id[pos]) {
          continue;
        }
        std::string bad = id;
        bad[pos] = c;
        ++tried;
        if (is_valid_account_id(bad)) {
          accepted.push_back(bad);
        }
      }
    }
  }
  CHECK(tried == 33u * 56u * 31u);
  INFO("first accepted corruption: " << (accepted.empty() ? "" : accepted.front()));
  CHECK(accepted.empty());
}

TEST_CASE("strkey_error says what is wrong", "[strkey]") {
  const std::string good = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";

  CHECK_THAT(strkey_error("", 'G').value_or(""), Catch::Contains("must be 56 characters, got 0"));
  CHECK_THAT(strkey_error(good.substr(0, 55), 'G').value_or(""),
             Catch::Contains("must be 56 characters, got 55"));
  CHECK_THAT(strkey_error(good + "A", 'G').value_or(""), Catch::Contains("got 57"));

  std::string lower = good;
  lower[10] = 'a';
  CHECK_THAT(strkey_error(lower, 'G').value_or(""),
             Catch::Contains("character 11 ('a') is not in the base32 alphabet"));
  std::string digit = good;
  digit[3] = '1';  // 0, 1, 8, 9 are not base32
  CHECK_THAT(strkey_error(digit, 'G').value_or(""), Catch::Contains("character 4 ('1')"));
  std::string padded = good;
  padded[55] = '=';
  CHECK_THAT(strkey_error(padded, 'G').value_or(""), Catch::Contains("('=')"));
  std::string binary = good;
  binary[0] = '\x01';
  CHECK_THAT(strkey_error(binary, 'G').value_or(""),
             Catch::Contains("character 1 (a non-printable byte)"));

  // A secret seed is not an account id, even with a valid checksum.
  const std::string seed = encode_strkey(18 << 3, std::vector<uint8_t>(32, 7));
  CHECK(seed.front() == 'S');
  CHECK_FALSE(strkey_error(seed, 'S').has_value());
  CHECK_THAT(strkey_error(seed, 'G').value_or(""),
             Catch::Contains("account id must start with 'G', got 'S'"));
  CHECK_FALSE(is_valid_account_id(seed));

  std::string checksum = good;
  checksum[30] = checksum[30] == 'A' ? 'B' : 'A';
  CHECK_THAT(strkey_error(checksum, 'G').value_or(""), Catch::Contains("checksum mismatch"));

  CHECK_THAT(strkey_error(good, 'Q').value_or(""), Catch::Contains("unsupported StrKey kind 'Q'"));
  CHECK_THAT(strkey_error(good, 'P').value_or(""), Catch::Contains("unsupported"));
}

TEST_CASE("SEP-23 test vectors", "[strkey]") {
  // Valid keys from the SEP's "Valid test cases".
  CHECK_FALSE(strkey_error("GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ", 'G'));
  CHECK_FALSE(
      strkey_error("MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUQ", 'M'));
  CHECK_FALSE(
      strkey_error("MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAJLK", 'M'));
  CHECK_FALSE(strkey_error("CA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUWDA", 'C'));
  CHECK_FALSE(strkey_error("LA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUPJN", 'L'));
  CHECK_FALSE(strkey_error("BAAD6DBUX6J22DMZOHIEZTEQ64CVCHEDRKWZONFEUL5Q26QD7R76RGR4TU", 'B'));

  // The SEP's key decodes to its documented ed25519 bytes.
  const auto payload =
      decode_strkey("GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ", 'G');
  REQUIRE(payload.has_value());
  const std::vector<uint8_t> expected = {0x3f, 0x0c, 0x34, 0xbf, 0x93, 0xad, 0x0d, 0x99,
                                         0x71, 0xd0, 0x4c, 0xcc, 0x90, 0xf7, 0x05, 0x51,
                                         0x1c, 0x83, 0x8a, 0xad, 0x97, 0x34, 0xa4, 0xa2,
                                         0xfb, 0x0d, 0x7a, 0x03, 0xfc, 0x7f, 0xe8, 0x9a};
  CHECK(*payload == expected);

  // Invalid keys from the SEP's "Invalid test cases", each with the kind its prefix names.
  const std::vector<std::pair<std::string, char>> invalid = {
      {"GAAAAAAAACGC6", 'G'},
      {"MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUR", 'M'},
      {"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZA", 'G'},
      {"GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUACUSI", 'G'},
      {"G47QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVP2I", 'G'},
      {"MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAJLKA", 'M'},
      {"MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAAV75I", 'M'},
      {"M47QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUQ", 'M'},
      {"MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUK===", 'M'},
      {"MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUO", 'M'},
      {"BAAD6DBUX6J22DMZOHIEZTEQ64CVCHEDRKWZONFEUL5Q26QD7R76RGR4TV", 'B'},
      {"BAAT6DBUX6J22DMZOHIEZTEQ64CVCHEDRKWZONFEUL5Q26QD7R76RGXACA", 'B'},
  };
  for (const auto& [key, kind] : invalid) {
    INFO(key);
    CHECK(strkey_error(key, kind).has_value());
  }
  CHECK_THAT(
      strkey_error("G47QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVP2I", 'G').value_or(""),
      Catch::Contains("version byte 55"));
  CHECK_THAT(
      strkey_error("MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUR", 'M')
          .value_or(""),
      Catch::Contains("non-canonical"));
  CHECK_THAT(
      strkey_error("BAAT6DBUX6J22DMZOHIEZTEQ64CVCHEDRKWZONFEUL5Q26QD7R76RGXACA", 'B').value_or(""),
      Catch::Contains("claimable balance type"));
}

TEST_CASE("encode_account_id matches independent public key / address pairs", "[strkey]") {
  // Pairs from an independent implementation's test vectors (mrtnetwork/blockchain_utils).
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"7b07983499c93f4eb256d7f6a42acf13ef098b20022e904f6c82f13805166c9f",
       "GB5QPGBUTHET6TVSK3L7NJBKZ4J66CMLEABC5ECPNSBPCOAFCZWJ6KSN"},
      {"40de01bb8215216a18f08ea068a1c2adaf41d11b7c5558de355c8c3a7f6841ed",
       "GBAN4AN3QIKSC2QY6CHKA2FBYKW26QORDN6FKWG6GVOIYOT7NBA633GO"},
      {"027996479ec25f1705393b17badb24afbd45601aad6d926348d42a7ff29093c3",
       "GABHTFSHT3BF6FYFHE5RPOW3ESX32RLADKWW3ETDJDKCU77SSCJ4HQ74"},
  };
  for (const auto& [hex, address] : pairs) {
    INFO(address);
    CHECK(encode_account_id(from_hex(hex)) == address);
    CHECK(is_valid_account_id(address));
  }
  // The all-zero key is the well-known "GAAA...WHF" address.
  CHECK(encode_account_id({}) == "GAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAWHF");
}

TEST_CASE("crc16_xmodem matches the standard check value", "[strkey]") {
  const std::string check = "123456789";
  CHECK(crc16_xmodem(reinterpret_cast<const uint8_t*>(check.data()), check.size()) == 0x31C3);
  CHECK(crc16_xmodem(nullptr, 0) == 0);
}
