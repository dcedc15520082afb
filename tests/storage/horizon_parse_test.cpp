#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "domain/horizon.hpp"

using namespace si::domain;
using nlohmann::json;

namespace {

const std::filesystem::path fixture_dir =
    std::filesystem::path(SI_SOURCE_DIR) / ".." / "shared" / "horizon-fixtures";

std::string fixture(const std::string& name) {
  const auto path = fixture_dir / name;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    FAIL("cannot open fixture " << path.string());
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

template <class T>
T ok(parsed<T> result) {
  if (auto* error = std::get_if<parse_error>(&result)) {
    FAIL("unexpected parse error: " << error->message());
  }
  return std::get<T>(std::move(result));
}

template <class T>
parse_error err(parsed<T> result) {
  if (std::holds_alternative<T>(result)) {
    FAIL("parse unexpectedly succeeded");
  }
  return std::get<parse_error>(std::move(result));
}

int64_t stroops_ok(std::string_view text) {
  auto result = parse_stroops(text);
  if (auto* error = std::get_if<std::string>(&result)) {
    FAIL("parse_stroops(" << text << ") failed: " << *error);
  }
  return std::get<int64_t>(result);
}

std::string stroops_err(std::string_view text) {
  auto result = parse_stroops(text);
  if (std::holds_alternative<int64_t>(result)) {
    FAIL("parse_stroops(" << text << ") unexpectedly gave " << std::get<int64_t>(result));
  }
  return std::get<std::string>(result);
}

int64_t time_ok(std::string_view text) {
  auto result = parse_timestamp_ms(text);
  if (auto* error = std::get_if<std::string>(&result)) {
    FAIL("parse_timestamp_ms(" << text << ") failed: " << *error);
  }
  return std::get<int64_t>(result);
}

std::string time_err(std::string_view text) {
  auto result = parse_timestamp_ms(text);
  if (std::holds_alternative<int64_t>(result)) {
    FAIL("parse_timestamp_ms(" << text << ") unexpectedly gave " << std::get<int64_t>(result));
  }
  return std::get<std::string>(result);
}

asset credit(const std::string& code, const std::string& issuer) {
  return asset{code, issuer};
}

const std::string usdc_issuer = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";

// --- fixture checks, one per file; the directory walk below makes sure none is missed ---

void check_ledger_single() {
  auto l = ok(parse_record<ledger>(fixture("ledger_single.json")));
  CHECK(l.sequence == 52425760);
  CHECK(l.hash == "c0e25db186d08e5614018def632a730a6ea30ed6b8d438148c884bd503d08736");
  CHECK(l.prev_hash == "fa3c8170d9ab34e0a7d7ad95a903c412330cd92c0a1fa2e814b0271f37ac7a31");
  CHECK(l.closed_at_ms == 1720139604000);
  CHECK(l.successful_transaction_count == 140);
  CHECK(l.failed_transaction_count == 276);
  CHECK(l.operation_count == 553);
  CHECK(l.tx_set_operation_count == 864);
  CHECK(l.base_fee == 100);
  CHECK(l.protocol_version == 21);
  CHECK(l.paging_token == "225166924667944960");
}

void check_ledgers_page() {
  auto p = ok(parse_page<ledger>(fixture("ledgers_page.json")));
  REQUIRE(p.records.size() == 3);
  CHECK(p.records[0].sequence == 2);
  CHECK(p.records[0].closed_at_ms == 1443631614000);
  CHECK(p.records[1].sequence == 3);
  CHECK(p.records[1].prev_hash == p.records[0].hash);
  CHECK(p.records[1].hash == "ec168d452542589dbc2d0eb6d58c74b9bb2ccb93bba879a3b3fa73fdfa730182");
  CHECK(p.records[1].successful_transaction_count == 1);
  CHECK(p.records[1].operation_count == 3);
  CHECK(p.records[1].closed_at_ms == 1443633354000);
  CHECK(p.records[2].sequence == 4);
  CHECK(p.next_href == "https://horizon.stellar.org/ledgers?cursor=17179869184&limit=3&order=asc");
  CHECK(p.next_cursor == "17179869184");
  CHECK(p.last_paging_token == "17179869184");
  CHECK(p.self_href == "https://horizon.stellar.org/ledgers?cursor=&limit=3&order=asc");
}

void check_transactions_page() {
  auto p = ok(parse_page<transaction>(fixture("transactions_page.json")));
  REQUIRE(p.records.size() == 3);
  const auto& first = p.records[0];
  CHECK(first.hash == "65bdbaa1d80a8717c0b2f83befac70986b1387164f76853ac1a2f76a94d6eb63");
  CHECK(first.ledger == 52476803);
  CHECK(first.created_at_ms == 1720432083000);
  CHECK(first.operation_count == 97);
  CHECK(first.fee_charged == 9700);
  CHECK(first.max_fee == 970000);
  CHECK(first.memo_type == "text");
  CHECK(first.memo == "stress test");
  CHECK(first.successful);
  CHECK_FALSE(first.is_fee_bump());
  CHECK(p.records[1].memo_type == "none");
  CHECK_FALSE(p.records[1].memo.has_value());
  CHECK(p.records[2].max_fee == 103111);
  CHECK(p.records[2].source_account == "GCLSA43RTV6VG44QZKXQTJVI27BM2AIKEFO5JSUHPLFRNEYMVRPPRIE6");
  CHECK(p.next_cursor == "225386152684322816");
  CHECK(p.last_paging_token == "225386152684322816");
}

void check_transaction_failed() {
  auto t = ok(parse_record<transaction>(fixture("transaction_failed.json")));
  CHECK_FALSE(t.successful);
  CHECK(t.hash == "ced549af061dc39758ce222f78f027e82b5077176a4e2efbeb4dc04086150b7d");
  CHECK(t.ledger == 52429114);
  CHECK(t.created_at_ms == 1720159280000);
  CHECK(t.fee_charged == 100);
  CHECK(t.max_fee == 101);
  CHECK(t.fee_account == t.source_account);
  CHECK_FALSE(t.is_fee_bump());
  CHECK(t.paging_token == "225181329989492736");
  CHECK(t.toid == 225181329989492736);
}

void check_transaction_fee_bump() {
  auto t = ok(parse_record<transaction>(fixture("transaction_fee_bump.json")));
  CHECK(t.is_fee_bump());
  CHECK(t.hash == "01f25077d5924dc2381055b22befacfdb7d6466325e2511d9cc0739d23bf14f0");
  CHECK(t.inner_transaction_hash
        == "e96bb6dfa0085e03c19c8dfb6dff81bb3d00e25e80a3d2f2c1c795f88b2f6b7c");
  CHECK(t.inner_max_fee == 500);
  CHECK(t.max_fee == 2000);
  CHECK(t.fee_charged == 200);
  CHECK(t.source_account == "GBYODLTHLR7PPEVS2LSXHXHWSL4OGMEFFIINE23RPWJAWVN6WZXZD25O");
  CHECK(t.fee_account == "GA4QH4AJGERVYX4PBY55JYTQJ4RTLJIBYV7OCYIV56LWZE5MVDH3R3UQ");
  CHECK(t.successful);
  CHECK(t.created_at_ms == 1720157001000);
}

void check_operations_page(const std::string& name, int64_t third_id) {
  auto p = ok(parse_page<operation>(fixture(name)));
  REQUIRE(p.records.size() == 3);
  const auto& create = p.records[0];
  CHECK(create.id == 12884905985);
  CHECK(create.type == "create_account");
  REQUIRE(create.payment);
  CHECK(create.payment->from == "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7");
  CHECK(create.payment->to == "GALPCCZN4YXA3YMJHKL6CVIECKPLJJCTVMSNYWBTKJW4K5HQLYLDMZTB");
  CHECK(create.payment->amount == 200000000);
  CHECK(create.payment->destination_asset == native_asset());
  const auto& pay = p.records[1];
  CHECK(pay.type == "payment");
  CHECK(pay.type_i == 1);
  REQUIRE(pay.payment);
  CHECK(pay.payment->amount == 999999999599999700);
  CHECK(pay.payment->source_amount == 999999999599999700);
  CHECK(pay.payment->source_asset == native_asset());
  CHECK(pay.created_at_ms == 1443633354000);
  CHECK(p.records[2].id == third_id);
  CHECK(p.last_paging_token == std::to_string(third_id));
  CHECK(p.next_cursor == std::to_string(third_id));
}

void check_operations_page_types() {
  check_operations_page("operations_page.json", 12884905987);
  auto p = ok(parse_page<operation>(fixture("operations_page.json")));
  CHECK(p.records[2].type == "set_options");
  CHECK_FALSE(p.records[2].payment.has_value());
  CHECK(nlohmann::json::parse(p.records[2].details).at("master_key_weight") == 0);
  CHECK_FALSE(nlohmann::json::parse(p.records[2].details).contains("_links"));
}

void check_payments_page() {
  check_operations_page("payments_page.json", 33676838572033);
  auto p = ok(parse_page<operation>(fixture("payments_page.json")));
  REQUIRE(p.records[2].payment);
  CHECK(p.records[2].payment->to == "GAP2KHWUMOHY7IO37UJY7SEBIITJIDZS5DRIIQRPEUT4VUKHZQGIRWS4");
  CHECK(p.records[2].created_at_ms == time_ok("2015-10-01T04:15:01Z"));
}

void check_operation_payment() {
  auto op = ok(parse_record<operation>(fixture("operation_payment.json")));
  CHECK(op.id == 225257527003537409);
  CHECK(op.transaction_hash == "d5b3b11e39b9450a79645de31a2503c45b9cfe1567b81f52b4a212afd834492e");
  CHECK(op.transaction_successful);
  CHECK(op.created_at_ms == 1720260822000);
  REQUIRE(op.payment);
  CHECK(op.payment->source_asset == credit("USDC", usdc_issuer));
  CHECK(op.payment->destination_asset == credit("USDC", usdc_issuer));
  CHECK(op.payment->amount == 390000000);
  CHECK(op.payment->from == "GC5LF63GRVIT5ZXXCXLPI3RX2YXKJQFZVBSAO6AUELN3YIMSWPD6Z6FH");
  CHECK(op.payment->to == "GAFK7XFZHMLSNV7OJTBO7BAIZA66X6QIBV5RMZZYXK4Q7ZSO52J5C3WQ");
}

void check_operation_strict_send() {
  auto op = ok(parse_record<operation>(fixture("operation_path_payment_strict_send.json")));
  CHECK(op.type == "path_payment_strict_send");
  CHECK(op.type_i == 13);
  REQUIRE(op.payment);
  CHECK(op.payment->source_asset == native_asset());
  CHECK(op.payment->destination_asset
        == credit("BTC", "GAUTUYY2THLF7SGITDFMXJVYH3LHDSMGEAKSBU267M2K7A3W543CKUEF"));
  CHECK(op.payment->source_amount == 574988800);
  CHECK(op.payment->amount == 5045);
  CHECK(op.created_at_ms == 1619243487000);
  CHECK(nlohmann::json::parse(op.details).at("path").size() == 2);
  CHECK(nlohmann::json::parse(op.details).at("destination_min") == "0.0004995");
}

void check_operation_strict_receive_failed() {
  auto op =
      ok(parse_record<operation>(fixture("operation_path_payment_strict_receive_failed_tx.json")));
  CHECK(op.type == "path_payment_strict_receive");
  CHECK(op.type_i == 2);
  CHECK_FALSE(op.transaction_successful);
  REQUIRE(op.payment);
  CHECK(op.payment->source_asset == native_asset());
  CHECK(op.payment->destination_asset == native_asset());
  CHECK(op.payment->source_amount == 0);
  CHECK(op.payment->amount == 23868885355);
  CHECK(nlohmann::json::parse(op.details).at("source_max") == "2386.8885355");
}

void check_operation_create_account() {
  auto op = ok(parse_record<operation>(fixture("operation_create_account.json")));
  REQUIRE(op.payment);
  CHECK(op.payment->amount == 40000000);
  CHECK(op.payment->source_amount == 40000000);
  CHECK(op.payment->source_asset == native_asset());
  CHECK(op.payment->from == "GDYG6NVTFCY6HPBRQ3SQNKTDZUR7SS6WAWNEAKAFJW5EMKDGQLPG523C");
  CHECK(op.payment->to == "GCYXLFYRSJWRPQ7JYSPHDNFRNXQ377BNUHF3TDZCPCQMVJS2QKMXCT2E");
  CHECK(op.created_at_ms == 1619245075000);
}

void check_operation_account_merge() {
  auto op = ok(parse_record<operation>(fixture("operation_account_merge.json")));
  CHECK(op.type_i == 8);
  REQUIRE(op.payment);
  CHECK_FALSE(op.payment->amount.has_value());
  CHECK_FALSE(op.payment->source_amount.has_value());
  CHECK(op.payment->from == "GBMZ7GUHNHT6TG4ITOBG46TKA5YMNH7ZKHHJSQRU6PNYBSAELLXNOFDE");
  CHECK(op.payment->to == "GDYG6NVTFCY6HPBRQ3SQNKTDZUR7SS6WAWNEAKAFJW5EMKDGQLPG523C");
  CHECK(op.payment->source_asset == native_asset());
  CHECK(op.created_at_ms == 1619245106000);
}

void check_operation_change_trust() {
  auto op = ok(parse_record<operation>(fixture("operation_change_trust.json")));
  CHECK(op.type == "change_trust");
  CHECK(op.type_i == 6);
  CHECK_FALSE(op.payment.has_value());
  CHECK(nlohmann::json::parse(op.details).at("limit") == "922337203685.4775807");
  CHECK(stroops_ok(nlohmann::json::parse(op.details).at("limit").get<std::string>())
        == std::numeric_limits<int64_t>::max());
  CHECK(nlohmann::json::parse(op.details).at("trustor") == op.source_account);
}

void check_operation_manage_sell_offer() {
  auto op = ok(parse_record<operation>(fixture("operation_manage_sell_offer.json")));
  CHECK(op.type == "manage_sell_offer");
  CHECK(op.id == 150661572935458818);
  CHECK_FALSE(op.payment.has_value());
  CHECK(nlohmann::json::parse(op.details).at("price_r").at("n") == 326639943);
  CHECK(nlohmann::json::parse(op.details).at("offer_id") == "0");
}

void check_operation_pool_deposit() {
  auto op = ok(parse_record<operation>(fixture("operation_liquidity_pool_deposit.json")));
  CHECK(op.type_i == 22);
  CHECK(op.source_account == "GAQXAWHCM4A7SQCT3BOSVEGRI2OOB7LO2CMFOYFF6YRXU4VQSB5V2V2K");
  CHECK(nlohmann::json::parse(op.details).at("source_account_muxed_id") == "1278881");
  CHECK(nlohmann::json::parse(op.details).at("shares_received") == "250.0000000");
  CHECK_FALSE(op.payment.has_value());
  CHECK(op.created_at_ms == 1633629992000);
}

void check_operation_pool_withdraw() {
  auto op = ok(parse_record<operation>(fixture("operation_liquidity_pool_withdraw.json")));
  CHECK(op.type == "liquidity_pool_withdraw");
  CHECK(op.type_i == 23);
  CHECK(op.id == 1579096265998337);
  CHECK(nlohmann::json::parse(op.details).at("reserves_received").size() == 2);
  CHECK_FALSE(op.payment.has_value());
}

void check_pool_single() {
  auto pool = ok(parse_record<liquidity_pool>(fixture("liquidity_pool_single.json")));
  CHECK(pool.id == "a468d41d8e9b8f3c7209651608b74b7db7ac9952dcae0cdf24871d1d9c7b0088");
  CHECK(pool.fee_bp == 30);
  CHECK(pool.type == "constant_product");
  CHECK(pool.total_trustlines == 885);
  CHECK(pool.total_shares == 57879222796105);
  REQUIRE(pool.reserves.size() == 2);
  CHECK(pool.reserves[0].reserve_asset == native_asset());
  CHECK(pool.reserves[0].amount == 225481984301913);
  CHECK(pool.reserves[1].reserve_asset == credit("USDC", usdc_issuer));
  CHECK(pool.reserves[1].amount == 18977834547179);
  CHECK(pool.last_modified_ledger == 52426005);
  CHECK(pool.last_modified_time_ms == 1720141049000);
}

void check_pools_page() {
  auto p = ok(parse_page<liquidity_pool>(fixture("liquidity_pools_page.json")));
  REQUIRE(p.records.size() == 3);
  CHECK(p.records[0].id == "0000a8198b5e25994c1ca5b0556faeb27325ac746296944144e0a7406d501e8a");
  CHECK(p.records[0].total_trustlines == 1);
  CHECK(p.records[0].reserves[0].amount == 26494450);
  CHECK(p.records[0].reserves[1].reserve_asset
        == credit("GOLDBANK001", "GDEUQ2MX3YXMITFOTC3CO3GW5V3XE3IVG7JKLZZAOZ7WFYIN256INDUS"));
  CHECK(p.records[0].last_modified_time_ms == 1720402610000);
  CHECK(p.records[2].reserves[1].amount == 7607637);
  CHECK(p.records[2].reserves[0].reserve_asset.code == "NRI");
  CHECK(p.next_cursor == "00038572bdc9b568ba564babaf39685ca18316e0d170080a1181e952b393162f");
  CHECK(p.last_paging_token == p.next_cursor);
}

void check_pool_trades_page() {
  auto p = ok(parse_page<trade>(fixture("liquidity_pool_trades_page.json")));
  REQUIRE(p.records.size() == 1);
  const auto& t = p.records[0];
  CHECK(t.id == "214312571649462273-0");
  CHECK(t.ledger_close_time_ms == 1705144792000);
  CHECK(t.trade_type == "liquidity_pool");
  CHECK(t.base_asset == native_asset());
  CHECK(t.base_amount == 242091);
  CHECK(t.counter_asset
        == credit("GOLDBANK001", "GDEUQ2MX3YXMITFOTC3CO3GW5V3XE3IVG7JKLZZAOZ7WFYIN256INDUS"));
  CHECK(t.counter_amount == 232507124160);
  CHECK(t.liquidity_pool_id()
        == "0000a8198b5e25994c1ca5b0556faeb27325ac746296944144e0a7406d501e8a");
  CHECK_FALSE(t.base_liquidity_pool_id.has_value());
  CHECK(t.base_account == "GA5Q3UHRKBBZFUQBFF3CEEPY322UIEALGUA7KS7LKGMAK7WJ4NF3W742");
  CHECK(t.liquidity_pool_fee_bp == 30);
  CHECK(t.price_n == 232507124160);
  CHECK(t.price_d == 242091);
  CHECK_FALSE(t.base_is_seller);
  // The docs author cut the list: next's cursor is not the last record's token.
  CHECK(p.next_cursor == "214318047732097026-0");
  CHECK(p.last_paging_token == "214312571649462273-0");
}

void check_trade_single() {
  auto t = ok(parse_record<trade>(fixture("trade_liquidity_pool_single.json")));
  CHECK(t.id == "1567602933510145-0");
  CHECK(t.ledger_close_time_ms == 1633616000000);
  CHECK(t.base_amount == 100000000);
  CHECK(t.counter_amount == 64757567056);
  CHECK(t.counter_asset.code == "BTCLN");
  CHECK(t.counter_asset.type() == "credit_alphanum12");
  CHECK(t.counter_liquidity_pool_id
        == "2389378a6156eedfac66daa000d24c926431c3e667b9f754771964f27a6da6ab");
  CHECK(t.price_n == 140271366);
  CHECK(t.price_d == 21661);
}

void check_assets_page() {
  auto p = ok(parse_page<asset_stats>(fixture("assets_page.json")));
  REQUIRE(p.records.size() == 3);
  const auto& a = p.records[0];
  CHECK(a.stats_asset == credit("0", "GBBJZOYEGLOCW32Q4ZGWRWQ7UKIGMMIQXIRBBBOVJVFJTZW7CR2VQKAT"));
  CHECK(a.num_accounts == 25);
  CHECK(a.amount == 9889481303);
  CHECK_FALSE(a.legacy_num_accounts.has_value());
  CHECK_FALSE(a.legacy_amount.has_value());
  REQUIRE(a.accounts);
  CHECK(a.accounts->unauthorized == 0);
  CHECK(a.num_contracts == 0);
  CHECK(a.claimable_balances_amount == 0);
  CHECK(p.records[1].amount == 1);
  CHECK(p.records[2].num_accounts == 1);
  CHECK(p.last_paging_token
        == "0_GD3OJBRBHR77ZCRCK5I7LNKHMWN4RYLEAUJ3EROF4PYO6FZZOQBCDION_credit_alphanum4");
  CHECK(p.next_cursor == p.last_paging_token);
}

void check_assets_page_legacy() {
  auto p = ok(parse_page<asset_stats>(fixture("assets_page_with_legacy_num_accounts.json")));
  REQUIRE(p.records.size() == 1);
  const auto& a = p.records[0];
  CHECK(a.legacy_num_accounts == 24);
  CHECK(a.legacy_amount == 9989481303);
  CHECK(a.num_accounts == 24);
  CHECK(a.amount == 9989481303);
  CHECK(a.num_claimable_balances == 0);
  CHECK_FALSE(a.flags.auth_required);
}

void check_asset_single() {
  auto a = ok(parse_record<asset_stats>(fixture("asset_single.json")));
  CHECK(a.stats_asset == credit("USDC", usdc_issuer));
  CHECK(a.num_accounts == 918786);
  CHECK(a.amount == 1961411926091517);
  REQUIRE(a.balances);
  CHECK(a.balances->authorized_to_maintain_liabilities == 0);
  CHECK(a.num_claimable_balances == 415);
  CHECK(a.num_liquidity_pools == 384);
  CHECK(a.num_contracts == 24);
  CHECK(a.claimable_balances_amount == 80730306754);
  CHECK(a.liquidity_pools_amount == 30014259918924);
  CHECK(a.contracts_amount == 4532413236804);
  CHECK(a.flags.auth_revocable);
  CHECK_FALSE(a.flags.auth_required);
  CHECK_FALSE(a.flags.auth_clawback_enabled);
}

void check_error_404() {
  auto e = ok(parse_record<problem>(fixture("error_404_not_found.json")));
  CHECK(e.status == 404);
  CHECK(e.title == "Resource Missing");
  CHECK(e.type_name() == "not_found");
  CHECK(e.instance == "horizon-live-001/61KdRW8tKi-18408110");
  CHECK(e.detail.starts_with("The resource at the url requested was not found."));
  CHECK_FALSE(e.transaction_result_code.has_value());
  CHECK(e.extras.is_null());
}

void check_error_tx_failed() {
  auto e = ok(parse_record<problem>(fixture("error_400_transaction_failed.json")));
  CHECK(e.status == 400);
  CHECK(e.type_name() == "transaction_failed");
  CHECK(e.transaction_result_code == "tx_no_source_account");
  CHECK(e.operation_result_codes.empty());
  CHECK(e.extras.contains("envelope_xdr"));
}

void check_error_tx_failed_ops() {
  auto e = ok(parse_record<problem>(fixture("error_400_transaction_failed_op_codes.json")));
  CHECK(e.transaction_result_code == "tx_failed");
  CHECK(e.operation_result_codes == std::vector<std::string>{"op_no_source_account"});
  CHECK_FALSE(e.instance.has_value());
}

void check_error_bad_request() {
  auto e = ok(parse_record<problem>(fixture("error_400_bad_request.json")));
  CHECK(e.type_name() == "bad_request");
  CHECK(e.title == "Bad Request");
  CHECK(e.detail == "The request you sent was invalid in some way");
  CHECK(e.extras.at("invalid_field") == "limit");
  CHECK_FALSE(e.transaction_result_code.has_value());
}

void check_error_429() {
  auto e = ok(parse_record<problem>(fixture("error_429_rate_limit_exceeded.json")));
  CHECK(e.status == 429);
  CHECK(e.type_name() == "rate_limit_exceeded");
  CHECK(e.detail.starts_with("The rate limit for the requesting IP address"));
}

void check_stream_ledgers() {
  auto stream = parse_sse(fixture("stream_ledgers.sse"));
  // One data line and no closing blank line: nothing is dispatched, the event is left open.
  CHECK(stream.events.empty());
  REQUIRE(stream.unterminated);
  CHECK_FALSE(stream.unterminated->has_own_id);
  auto item = ok(parse_stream_event<ledger>(*stream.unterminated));
  CHECK(item.kind == stream_event_kind::record);
  REQUIRE(item.record);
  CHECK(item.record->sequence == 560339);
  CHECK(item.record->hash == "66f4d95dab22dbc422585cc4b011716014e81df3599cee8db9c776cfc3a31e93");
  CHECK(item.record->closed_at_ms == 1554137225000);
  CHECK(item.record->failed_transaction_count == 1);
  CHECK_FALSE(item.record->tx_set_operation_count.has_value());  // protocol 10
}

void check_stream_operations() {
  auto stream = parse_sse(fixture("stream_operations.sse"));
  CHECK(stream.events.empty());
  REQUIRE(stream.unterminated);
  auto item = ok(parse_stream_event<operation>(*stream.unterminated));
  REQUIRE(item.record);
  CHECK(item.record->id == 4934917427201);
  CHECK(item.record->type == "create_account");
  REQUIRE(item.record->payment);
  CHECK(item.record->payment->amount == 100000000000);
  CHECK(item.record->payment->to == "GDBLBBDIUULY3HGIKXNK6WVBISY7DCNCDA45EL7NTXWX5R4UZ26HGMGS");
  CHECK(item.record->created_at_ms == 1551267159000);
}

void check_stream_docs_example() {
  auto stream = parse_sse(fixture("stream_payments_docs_example.sse"));
  REQUIRE(stream.events.size() == 1);
  CHECK(stream.retry_ms == 1000);
  CHECK(stream.events[0].retry_ms == 1000);
  auto hello = ok(parse_stream_event<operation>(stream.events[0]));
  CHECK(hello.kind == stream_event_kind::open);
  CHECK(hello.text == "hello");
  CHECK_FALSE(hello.record.has_value());
  // The docs wrapped the JSON over lines without `data:`; SSE ignores those lines, so the
  // event's data is a truncated object: a clear error, never a half-read record.
  REQUIRE(stream.unterminated);
  CHECK(stream.unterminated->id == "713226564145153");
  CHECK(stream.unterminated->has_own_id);
  CHECK(stream.unterminated->data.starts_with("{\"_links\":{\"effects\""));
  auto bad = err(parse_stream_event<operation>(*stream.unterminated));
  CHECK(bad.context == "stream event 713226564145153");
  CHECK(bad.problem.starts_with("data is not valid JSON"));
  CHECK(bad.message().starts_with("stream event 713226564145153: operation: data is not valid"));
  CHECK(stream.last_event_id == "713226564145153");
}

}  // namespace

TEST_CASE("horizon fixtures: every file parses into the right values", "[horizon][storage]") {
  const std::map<std::string, std::function<void()>> checks = {
      {"asset_single.json", check_asset_single},
      {"assets_page.json", check_assets_page},
      {"assets_page_with_legacy_num_accounts.json", check_assets_page_legacy},
      {"error_400_bad_request.json", check_error_bad_request},
      {"error_400_transaction_failed.json", check_error_tx_failed},
      {"error_400_transaction_failed_op_codes.json", check_error_tx_failed_ops},
      {"error_404_not_found.json", check_error_404},
      {"error_429_rate_limit_exceeded.json", check_error_429},
      {"ledger_single.json", check_ledger_single},
      {"ledgers_page.json", check_ledgers_page},
      {"liquidity_pool_single.json", check_pool_single},
      {"liquidity_pool_trades_page.json", check_pool_trades_page},
      {"liquidity_pools_page.json", check_pools_page},
      {"operation_account_merge.json", check_operation_account_merge},
      {"operation_change_trust.json", check_operation_change_trust},
      {"operation_create_account.json", check_operation_create_account},
      {"operation_liquidity_pool_deposit.json", check_operation_pool_deposit},
      {"operation_liquidity_pool_withdraw.json", check_operation_pool_withdraw},
      {"operation_manage_sell_offer.json", check_operation_manage_sell_offer},
      {"operation_path_payment_strict_receive_failed_tx.json",
       check_operation_strict_receive_failed},
      {"operation_path_payment_strict_send.json", check_operation_strict_send},
      {"operation_payment.json", check_operation_payment},
      {"operations_page.json", check_operations_page_types},
      {"payments_page.json", check_payments_page},
      {"stream_ledgers.sse", check_stream_ledgers},
      {"stream_operations.sse", check_stream_operations},
      {"stream_payments_docs_example.sse", check_stream_docs_example},
      {"trade_liquidity_pool_single.json", check_trade_single},
      {"transaction_failed.json", check_transaction_failed},
      {"transaction_fee_bump.json", check_transaction_fee_bump},
      {"transactions_page.json", check_transactions_page},
  };
  INFO("fixture directory: " << fixture_dir.string());
  REQUIRE(std::filesystem::is_directory(fixture_dir));
  std::set<std::string> on_disk;
  for (const auto& entry : std::filesystem::directory_iterator(fixture_dir)) {
    const std::string name = entry.path().filename().string();
    if (name != "SOURCES.md") {
      on_disk.insert(name);
    }
  }
  // A fixture added later must get a check here, and a check must not outlive its file.
  for (const auto& name : on_disk) {
    INFO("fixture without a check: " << name);
    CHECK(checks.count(name) == 1);
  }
  for (const auto& [name, check] : checks) {
    INFO("check without a fixture: " << name);
    CHECK(on_disk.count(name) == 1);
  }
  for (const auto& [name, check] : checks) {
    SECTION(name) {
      check();
    }
  }
}

TEST_CASE("horizon amounts: exact stroops", "[horizon][storage]") {
  CHECK(stroops_ok("0") == 0);
  CHECK(stroops_ok("0.0000000") == 0);
  CHECK(stroops_ok("0.0000001") == 1);
  CHECK(stroops_ok("100.0000000") == 1000000000);
  CHECK(stroops_ok("20") == 200000000);
  CHECK(stroops_ok("1.5") == 15000000);
  CHECK(stroops_ok("007.25") == 72500000);
  CHECK(stroops_ok("922337203685.4775807") == std::numeric_limits<int64_t>::max());
  CHECK(stroops_ok("922337203685") == 9223372036850000000);

  CHECK(stroops_err("922337203685.4775808").find("too large") != std::string::npos);
  CHECK(stroops_err("922337203686").find("too large") != std::string::npos);
  CHECK(stroops_err("99999999999999999999999").find("too large") != std::string::npos);
  CHECK(stroops_err("1.00000001").find("8 fractional digits") != std::string::npos);
  CHECK(stroops_err("-1.0000000") == "is negative");
  CHECK(stroops_err("-0") == "is negative");
  CHECK(stroops_err("+1") == "has a '+' sign");
  CHECK(stroops_err("") == "is empty");
  CHECK(stroops_err(".5") == "has no digit before '.'");
  CHECK(stroops_err("5.") == "has no digit after '.'");
  CHECK(stroops_err("1.2.3").find("not a digit") != std::string::npos);
  CHECK(stroops_err("1e7").find("not a digit") != std::string::npos);
  CHECK(stroops_err(" 1").find("not a digit") != std::string::npos);
  CHECK(stroops_err("1,5").find("not a digit") != std::string::npos);
  CHECK(stroops_err("abc").find("not a digit") != std::string::npos);
  CHECK(stroops_err("NaN").find("not a digit") != std::string::npos);

  CHECK(format_stroops(0) == "0.0000000");
  CHECK(format_stroops(390000000) == "39.0000000");
  CHECK(format_stroops(1) == "0.0000001");
  CHECK(format_stroops(-15) == "-0.0000015");
  CHECK(format_stroops(std::numeric_limits<int64_t>::max()) == "922337203685.4775807");
  CHECK(format_stroops(std::numeric_limits<int64_t>::min()) == "-922337203685.4775808");
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{9999999}, int64_t{10000000},
                    int64_t{123456789012345}, std::numeric_limits<int64_t>::max()}) {
    CHECK(stroops_ok(format_stroops(v)) == v);
  }

  CHECK(stroops_to_units(0) == 0.0);
  CHECK(stroops_to_units(1000000000) == 100.0);
  CHECK(stroops_to_units(15000000) == 1.5);
  CHECK(stroops_to_units(1) == Approx(1e-7));
  CHECK(stroops_to_units(std::numeric_limits<int64_t>::max()) == Approx(922337203685.4775807));

  auto integer = parse_decimal_int("9223372036854775807");
  CHECK(std::get<int64_t>(integer) == std::numeric_limits<int64_t>::max());
  CHECK(std::holds_alternative<std::string>(parse_decimal_int("9223372036854775808")));
  CHECK(std::holds_alternative<std::string>(parse_decimal_int("-1")));
  CHECK(std::holds_alternative<std::string>(parse_decimal_int("")));
  CHECK(std::holds_alternative<std::string>(parse_decimal_int("12a")));
}

TEST_CASE("horizon timestamps: exact unix milliseconds", "[horizon][storage]") {
  CHECK(time_ok("1970-01-01T00:00:00Z") == 0);
  CHECK(time_ok("2024-01-01T00:00:00Z") == 1704067200000);
  CHECK(time_ok("2024-07-05T00:33:24Z") == 1720139604000);
  CHECK(time_ok("2000-02-29T23:59:59Z") == 951868799000);
  CHECK(time_ok("2024-02-29T12:00:00Z") == 1709208000000);
  CHECK(time_ok("1969-12-31T23:59:59Z") == -1000);
  CHECK(time_ok("9999-12-31T23:59:59Z") == 253402300799000);
  CHECK(time_ok("0000-01-01T00:00:00Z") == -62167219200000);
  CHECK(time_ok("2024-01-01T00:00:00.5Z") == 1704067200500);
  CHECK(time_ok("2024-01-01T00:00:00.123Z") == 1704067200123);

  CHECK(time_err("2023-02-29T00:00:00Z").find("day 29") != std::string::npos);
  CHECK(time_err("1900-02-29T00:00:00Z").find("day 29") != std::string::npos);
  CHECK(time_err("2024-04-31T00:00:00Z").find("day 31") != std::string::npos);
  CHECK(time_err("2024-00-10T00:00:00Z").find("month 0") != std::string::npos);
  CHECK(time_err("2024-13-10T00:00:00Z").find("month 13") != std::string::npos);
  CHECK(time_err("2024-01-00T00:00:00Z").find("day 0") != std::string::npos);
  CHECK(time_err("2024-01-01T24:00:00Z").find("hour 24") != std::string::npos);
  CHECK(time_err("2024-01-01T00:60:00Z").find("minute 60") != std::string::npos);
  CHECK(time_err("2024-01-01T00:00:60Z").find("second 60") != std::string::npos);
  CHECK(time_err("2024-01-01T00:00:00+01:00").find("'Z'") != std::string::npos);
  CHECK(time_err("2024-01-01T00:00:00").find("expected") != std::string::npos);
  CHECK(time_err("2024-01-01 00:00:00Z").find("expected") != std::string::npos);
  CHECK(time_err("2024-1-01T00:00:00Z").find("expected") != std::string::npos);
  CHECK(time_err("2024-01-01T00:00:00ZZ").find("after the 'Z'") != std::string::npos);
  CHECK(time_err("2024-01-01T00:00:00.1234Z").find("more than 3") != std::string::npos);
  CHECK(time_err("2024-01-01T00:00:00.Z").find("no digit") != std::string::npos);
  CHECK(time_err("").find("expected") != std::string::npos);
  CHECK(time_err("garbage garbage garbage").find("expected") != std::string::npos);

  CHECK(format_timestamp_ms(0) == "1970-01-01T00:00:00Z");
  CHECK(format_timestamp_ms(-1000) == "1969-12-31T23:59:59Z");
  CHECK(format_timestamp_ms(1704067200123) == "2024-01-01T00:00:00.123Z");
  for (int64_t ms : {int64_t{1720139604000}, int64_t{951868799000}, int64_t{-62167219200000},
                     int64_t{253402300799999}, int64_t{-1}}) {
    CHECK(time_ok(format_timestamp_ms(ms)) == ms);
  }
}

TEST_CASE("horizon records: malformed input gives a named error", "[horizon][storage]") {
  const json payment = json::parse(fixture("operation_payment.json"));

  SECTION("amount with 8 decimals") {
    json bad = payment;
    bad["amount"] = "39.00000001";
    auto e = err(parse_operation(bad));
    CHECK(e.record == "operation");
    CHECK(e.id == "225257527003537409");
    CHECK(e.field == "amount");
    CHECK(e.message()
          == "operation 225257527003537409: field 'amount' must be a decimal string: has 8 "
             "fractional digits (at most 7: amounts are whole stroops)");
  }
  SECTION("amount as a number") {
    json bad = payment;
    bad["amount"] = 39.0;
    CHECK(err(parse_operation(bad)).message()
          == "operation 225257527003537409: field 'amount' must be a decimal string, not a "
             "fractional number");
  }
  SECTION("missing amount") {
    json bad = payment;
    bad.erase("amount");
    CHECK(err(parse_operation(bad)).message()
          == "operation 225257527003537409: field 'amount' is missing");
  }
  SECTION("null common field") {
    json bad = payment;
    bad["transaction_hash"] = nullptr;
    CHECK(err(parse_operation(bad)).message()
          == "operation 225257527003537409: field 'transaction_hash' is null");
  }
  SECTION("wrong types") {
    json bad = payment;
    bad["transaction_successful"] = "true";
    CHECK(err(parse_operation(bad)).field == "transaction_successful");
    bad = payment;
    bad["type_i"] = "1";
    CHECK(err(parse_operation(bad)).problem == "must be an integer, not a string");
    bad = payment;
    bad["id"] = 225257527003537409;
    auto e = err(parse_operation(bad));
    CHECK(e.id == "225257527003537409");  // still named, from the number
    CHECK(e.problem == "must be a string, not an integer");
  }
  SECTION("bad values") {
    json bad = payment;
    bad["created_at"] = "2024-13-06T10:13:42Z";
    CHECK(err(parse_operation(bad)).problem.starts_with("must be an ISO-8601 timestamp"));
    bad = payment;
    bad["to"] = "GAFK7XFZHMLSNV7OJTBO7BAIZA66X6QIBV5RMZZYXK4Q7ZSO52J5C3WA";  // bad checksum
    CHECK(err(parse_operation(bad)).field == "to");
    bad = payment;
    bad["asset_issuer"] = "native";
    CHECK(err(parse_operation(bad)).field == "asset_issuer");
    bad = payment;
    bad["asset_type"] = "credit_alphanum12";  // USDC has 4 characters
    CHECK(err(parse_operation(bad)).field == "asset_code");
    bad = payment;
    bad["asset_type"] = "liquidity_pool_shares";
    CHECK(err(parse_operation(bad)).field == "asset_type");
    bad = payment;
    bad["transaction_hash"] = "D5B3B11E39B9450A79645DE31A2503C45B9CFE1567B81F52B4A212AFD834492E";
    CHECK(err(parse_operation(bad)).problem == "must be 64 lower-case hex digits");
    bad = payment;
    bad["id"] = "-5";
    CHECK(err(parse_operation(bad)).field == "id");
  }
  SECTION("not an object, truncated or invalid JSON") {
    auto e = err(parse_operation(json::array()));
    CHECK(e.message() == "operation: must be a JSON object, not array");
    const std::string text = fixture("operation_payment.json");
    e = err(parse_record<operation>(text.substr(0, text.size() / 2)));
    CHECK(e.record == "operation");
    CHECK(e.problem.starts_with("is not valid JSON: "));
    CHECK(e.problem.size() > std::string_view("is not valid JSON: ").size());
    CHECK(err(parse_record<ledger>("")).problem.starts_with("is not valid JSON"));
    CHECK(err(parse_record<ledger>("{\"sequence\": 1,}")).problem.starts_with("is not valid"));
    CHECK(err(parse_record<problem>("not json")).record == "problem");
  }
  SECTION("ledger") {
    json ledger_json = json::parse(fixture("ledger_single.json"));
    ledger_json["sequence"] = 4294967296;
    auto e = err(parse_ledger(ledger_json));
    CHECK(e.message()
          == "ledger 4294967296: field 'sequence' must be between 1 and 4294967295, not "
             "4294967296");
    ledger_json = json::parse(fixture("ledger_single.json"));
    ledger_json["operation_count"] = -1;
    CHECK(err(parse_ledger(ledger_json)).field == "operation_count");
    ledger_json = json::parse(fixture("ledger_single.json"));
    ledger_json["base_fee_in_stroops"] = 18446744073709551615ULL;
    CHECK(err(parse_ledger(ledger_json)).problem.starts_with("must be at most"));
    ledger_json = json::parse(fixture("ledger_single.json"));
    ledger_json["failed_transaction_count"] = nullptr;  // legacy ledgers: unknown, not 0
    CHECK_FALSE(ok(parse_ledger(ledger_json)).failed_transaction_count.has_value());
  }
  SECTION("transaction") {
    json tx = json::parse(fixture("transaction_fee_bump.json"));
    tx["inner_transaction"].erase("hash");
    CHECK(err(parse_transaction(tx)).message()
          == "transaction 01f25077d5924dc2381055b22befacfdb7d6466325e2511d9cc0739d23bf14f0: "
             "field 'inner_transaction.hash' is missing");
    tx = json::parse(fixture("transaction_failed.json"));
    tx["fee_charged"] = "1.5";
    CHECK(err(parse_transaction(tx)).problem.starts_with("must be a decimal integer string"));
    tx = json::parse(fixture("transaction_failed.json"));
    tx["fee_charged"] = 100;  // older Horizon spelled fees as numbers
    CHECK(ok(parse_transaction(tx)).fee_charged == 100);
    tx["successful"] = nullptr;
    CHECK(err(parse_transaction(tx)).field == "successful");
  }
  SECTION("pool, trade, asset, problem") {
    json pool = json::parse(fixture("liquidity_pool_single.json"));
    pool["reserves"][1]["asset"] = "USDC";
    auto e = err(parse_liquidity_pool(pool));
    CHECK(e.field == "reserves[1].asset");
    CHECK(e.id == "a468d41d8e9b8f3c7209651608b74b7db7ac9952dcae0cdf24871d1d9c7b0088");
    pool = json::parse(fixture("liquidity_pool_single.json"));
    pool["reserves"][0] = "native";
    CHECK(err(parse_liquidity_pool(pool)).problem == "must be an object, not a string");

    json t = json::parse(fixture("trade_liquidity_pool_single.json"));
    t["price"]["d"] = "0";
    CHECK(err(parse_trade(t)).field == "price.d");
    t = json::parse(fixture("trade_liquidity_pool_single.json"));
    t.erase("counter_liquidity_pool_id");
    CHECK(err(parse_trade(t)).field == "counter_account");

    json a = json::parse(fixture("asset_single.json"));
    a.erase("accounts");
    CHECK(err(parse_asset_stats(a)).message()
          == "asset USDC:" + usdc_issuer
                 + ": field 'accounts' is missing (nor is the legacy 'num_accounts' there)");
    a = json::parse(fixture("asset_single.json"));
    a["balances"]["authorized"] = "-1.0";
    CHECK(err(parse_asset_stats(a)).field == "balances.authorized");

    json p = json::parse(fixture("error_400_transaction_failed_op_codes.json"));
    p["extras"]["result_codes"]["operations"][0] = 7;
    CHECK(err(parse_problem(p)).field == "extras.result_codes.operations[0]");
    p = json::parse(fixture("error_404_not_found.json"));
    p["status"] = "404";
    CHECK(err(parse_problem(p)).message()
          == "problem: field 'status' must be an integer, not a string");
  }
}

TEST_CASE("horizon pages: one bad record fails the whole page", "[horizon][storage]") {
  json body = json::parse(fixture("operations_page.json"));
  body["_embedded"]["records"][1]["amount"] = "abc";
  auto e = err(parse_page_json<operation>(body));
  CHECK(e.context == "record 1");
  CHECK(e.message()
        == "record 1: operation 12884905986: field 'amount' must be a decimal string: "
           "contains a character that is not a digit or one '.'");

  body = json::parse(fixture("operations_page.json"));
  body["_embedded"]["records"][2] = 42;
  CHECK(err(parse_page_json<operation>(body)).message()
        == "record 2: operation: must be a JSON object, not number");

  body = json::parse(fixture("ledgers_page.json"));
  body.erase("_embedded");
  CHECK(err(parse_page_json<ledger>(body)).message()
        == "ledgers page: field '_embedded' is missing");
  body = json::parse(fixture("ledgers_page.json"));
  body["_embedded"]["records"] = json::object();
  CHECK(err(parse_page_json<ledger>(body)).field == "_embedded.records");

  const std::string text = fixture("transactions_page.json");
  auto truncated = err(parse_page<transaction>(text.substr(0, text.size() - 10)));
  CHECK(truncated.record == "transactions page");
  CHECK(truncated.problem.starts_with("is not valid JSON"));

  auto empty = ok(parse_page<trade>(R"({"_links":{"next":{"href":"/trades?cursor=7-1&x=1"}},
                                         "_embedded":{"records":[]}})"));
  CHECK(empty.records.empty());
  CHECK(empty.last_paging_token.empty());
  CHECK(empty.next_cursor == "7-1");

  CHECK(cursor_of("https://h/x?limit=3&cursor=a%2Fb&order=asc") == "a/b");
  CHECK(cursor_of("https://h/x?limit=3&order=asc").empty());
  CHECK(cursor_of("https://h/x").empty());
  CHECK(cursor_of("/x?cursor=&limit=3").empty());
}

TEST_CASE("horizon pages: text (simdjson) and decoded JSON (nlohmann) read alike",
          "[horizon][storage]") {
  // Every fixture page gives the same models either way.
  const auto ops_text = fixture("operations_page.json");
  const auto a = ok(parse_page<operation>(ops_text));
  const auto b = ok(parse_page_json<operation>(json::parse(ops_text)));
  REQUIRE(a.records.size() == b.records.size());
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    CHECK(a.records[i].id == b.records[i].id);
    CHECK(json::parse(a.records[i].details) == json::parse(b.records[i].details));
    CHECK(a.records[i].payment.has_value() == b.records[i].payment.has_value());
  }
  // A repeated key reads as its last occurrence (nlohmann's rule), in fields and in details.
  json record = json::parse(fixture("operation_payment.json"));
  std::string text = record.dump();
  text.insert(1, R"("amount":"0.5","note":"first",)");
  text.insert(text.size() - 1, R"(,"note":"last")");
  const auto page_text = R"({"_embedded":{"records":[)" + text + "]}}";
  const auto from_text = ok(parse_page<operation>(page_text));
  const auto from_json = ok(parse_page_json<operation>(json::parse(page_text)));
  REQUIRE(from_text.records.size() == 1);
  CHECK(from_text.records[0].payment->amount == from_json.records[0].payment->amount);
  CHECK(from_text.records[0].payment->amount != std::optional<int64_t>(5'000'000));  // not "0.5"
  const auto details = json::parse(from_text.records[0].details);
  CHECK(details == json::parse(from_json.records[0].details));
  CHECK(details.at("note") == "last");
  CHECK(details.at("amount") == record["amount"]);
  // Escapes survive into details; integers above int64 are refused with the same message.
  record["memo_text"] = "tab\t \"quoted\" \u00e9";
  const auto escaped = ok(parse_record<operation>(record.dump()));
  CHECK(json::parse(escaped.details).at("memo_text") == record["memo_text"]);
  json ledger_json = json::parse(fixture("ledger_single.json"));
  ledger_json["sequence"] = 18446744073709551615ULL;
  const auto big_text = err(parse_record<ledger>(ledger_json.dump()));
  CHECK(big_text.message() == err(parse_ledger(ledger_json)).message());
  CHECK(big_text.problem == "must be at most 4294967295");
}

TEST_CASE("horizon SSE: framing and Horizon's prelude", "[horizon][storage]") {
  const std::string wire =
      "retry: 1000\nevent: open\ndata: \"hello\"\n\n"
      ": keep-alive comment\n"
      "id: 12884905986\ndata: " + json::parse(fixture("operation_payment.json")).dump()
      + "\n\n"
        "event: error\ndata: \"something broke\"\n\n"
        "retry: 10\nevent: close\ndata: \"byebye\"\n\n";

  SECTION("whole text") {
    auto stream = parse_sse(wire);
    REQUIRE(stream.events.size() == 4);
    CHECK_FALSE(stream.unterminated.has_value());
    CHECK(stream.retry_ms == 10);
    CHECK(stream.last_event_id == "12884905986");
    CHECK(ok(parse_stream_event<operation>(stream.events[0])).kind == stream_event_kind::open);
    auto record = ok(parse_stream_event<operation>(stream.events[1]));
    CHECK(record.kind == stream_event_kind::record);
    CHECK(record.id == "12884905986");
    REQUIRE(record.record);
    CHECK(record.record->payment->amount == 390000000);
    auto error = ok(parse_stream_event<operation>(stream.events[2]));
    CHECK(error.kind == stream_event_kind::error);
    CHECK(error.text == "something broke");
    CHECK(error.id == "12884905986");  // the last id carries over, as the spec says
    CHECK_FALSE(stream.events[2].has_own_id);
    auto bye = ok(parse_stream_event<operation>(stream.events[3]));
    CHECK(bye.kind == stream_event_kind::close);
    CHECK(bye.text == "byebye");
  }
  SECTION("byte by byte, with CRLF and CR line ends, gives the same events") {
    std::string crlf;
    for (char c : wire) {
      crlf += c == '\n' ? "\r\n" : std::string(1, c);
    }
    std::string cr;
    for (char c : wire) {
      cr += c == '\n' ? '\r' : c;
    }
    const auto expected = parse_sse(wire).events;
    for (const std::string& text : {wire, crlf, cr, "\xEF\xBB\xBF" + wire}) {
      sse_parser parser;
      std::vector<sse_event> events;
      for (char c : text) {
        for (auto& e : parser.feed(std::string_view(&c, 1))) {
          events.push_back(std::move(e));
        }
      }
      CHECK_FALSE(parser.finish().has_value());
      REQUIRE(events.size() == expected.size());
      for (std::size_t i = 0; i < events.size(); ++i) {
        CHECK(events[i].data == expected[i].data);
        CHECK(events[i].event == expected[i].event);
        CHECK(events[i].id == expected[i].id);
      }
    }
  }
  SECTION("multi-line data, fields without a value, ignored retry") {
    auto stream = parse_sse("data: a\ndata\ndata:b\nretry: 5s\nfoo: bar\n\nid\n\n");
    REQUIRE(stream.events.size() == 1);
    CHECK(stream.events[0].data == "a\n\nb");
    CHECK_FALSE(stream.retry_ms.has_value());
    CHECK(stream.last_event_id.empty());
  }
  SECTION("bad stream data is an error, not a crash") {
    sse_event event;
    event.id = "99";
    event.data = "{\"id\":";
    auto e = err(parse_stream_event<operation>(event));
    CHECK(e.message().starts_with("stream event 99: operation: data is not valid JSON"));
    event.data = "[1,2]";
    CHECK(err(parse_stream_event<operation>(event)).problem == "must be a JSON object, not array");
    event.data = "\"hi\"";
    CHECK(err(parse_stream_event<operation>(event)).problem == "must be a JSON object, not string");
    event.event = "surprise";
    event.data = "{}";
    CHECK(err(parse_stream_event<operation>(event)).problem
          == "has the unknown event type 'surprise'");
    event.event = "message";
    event.data = json::parse(fixture("ledger_single.json")).dump();
    CHECK(err(parse_stream_event<operation>(event)).field == "id");
  }
}
