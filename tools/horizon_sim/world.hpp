#pragma once
/// The simulator's fixed universe, derived from the seed and flags at start-up: accounts
/// (StrKeys from an index), anchors and their issued assets, liquidity pools, the operation
/// mix, and the keyed hashes of ledgers and transactions (transaction hashes are invertible,
/// so `/transactions/{hash}` needs no index).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tools/horizon_sim/options.hpp"
#include "tools/horizon_sim/util.hpp"

namespace si::sim {

/// An asset: 0 is XLM, k >= 1 the k-th issued asset (world::issued(k)).
using asset_ref = uint16_t;

/// The operation types the simulator generates.
enum class op_type : uint8_t {
  create_account,
  payment,
  path_payment_strict_receive,
  manage_sell_offer,
  set_options,
  change_trust,
  account_merge,
  manage_buy_offer,
  path_payment_strict_send,
  liquidity_pool_deposit,
  liquidity_pool_withdraw,
};
inline constexpr std::size_t op_type_count = 11;

/// Horizon's name and number of an operation type and its share of the mix.
struct op_type_info {
  std::string_view name;
  int32_t type_i = 0;
  uint32_t weight = 0;        ///< relative frequency in generated transactions
  bool payment_like = false;  ///< served by /payments
};

/// Every generated type, indexed by op_type.
const std::array<op_type_info, op_type_count>& op_types();

/// An issued (credit) asset.
struct issued_asset {
  std::string code;
  std::string issuer;  ///< G... of its anchor
  uint32_t anchor = 0;
  bool alphanum12 = false;
  double value_xlm = 1;  ///< what one unit is worth in XLM (drives path payment rates)
  std::string toml_href;
};

/// A constant-product liquidity pool.
struct pool_def {
  uint32_t index = 0;  ///< creation order (part of its trades' TOIDs)
  std::string id;      ///< 64 lower-case hex digits
  asset_ref a = 0;     ///< reserve assets in Stellar's canonical order (a < b)
  asset_ref b = 0;
  int64_t reserve_a = 0;  ///< stroops
  int64_t reserve_b = 0;
  int64_t total_shares = 0;
  int64_t trustlines = 0;
  uint32_t trade_spacing = 0;  ///< one trade per this many ledgers
};

/// Account numbering: regular accounts are 0..regular_accounts-1, anchors anchor_base + k,
/// accounts made by create_account new_account_bit | TOID.
inline constexpr uint64_t regular_accounts = 4096;
inline constexpr uint64_t anchor_base = 1ULL << 32;
inline constexpr uint64_t new_account_bit = 1ULL << 63;

/// Ledgers close this far apart (simulated time).
inline constexpr int64_t ledger_seconds = 5;

/// The universe shared (read-only) by every thread.
class world {
 public:
  /// Builds every table; `base_url` prefixes every href ("http://127.0.0.1:8000").
  world(const options& config, std::string base_url);

  const options& config() const {
    return config_;
  }
  const std::string& base_url() const {
    return base_url_;
  }
  /// An operation's `_links` as six fragments holding the base URL; between them go the
  /// id, the transaction hash, the id, the id, the id and the id.
  const std::array<std::string, 6>& operation_links() const {
    return operation_links_;
  }
  uint64_t seed() const {
    return config_.seed;
  }
  /// Unix seconds at which ledger `seq` closed.
  int64_t close_time(int64_t seq) const {
    return base_time_ + (seq - static_cast<int64_t>(config_.start_ledger)) * ledger_seconds;
  }
  int64_t base_time() const {
    return base_time_;
  }

  /// Appends the G... of `account` (see the numbering above).
  void append_account(std::string& out, uint64_t account) const;
  /// The ed25519 key of `account`.
  std::array<uint8_t, 32> account_key(uint64_t account) const;

  /// The number of issued assets (refs 1..count).
  std::size_t issued_count() const {
    return assets_.size();
  }
  const issued_asset& issued(asset_ref ref) const {
    return assets_[ref - 1];
  }
  /// `native` or `CODE:ISSUER` (pool reserves).
  void append_asset_text(std::string& out, asset_ref ref) const;
  /// `XLM:native` or `CODE:ISSUER` (ground truth corridor keys).
  std::string asset_id(asset_ref ref) const;
  /// XLM per unit of `ref`.
  double value_xlm(asset_ref ref) const {
    return ref == 0 ? 1.0 : assets_[ref - 1].value_xlm;
  }
  /// Issued asset refs ordered as /assets pages them (code, then issuer).
  const std::vector<asset_ref>& assets_by_code() const {
    return assets_by_code_;
  }

  const std::vector<std::string>& anchors() const {
    return anchor_ids_;
  }

  /// Pools in id order (as /liquidity_pools pages them).
  const std::vector<pool_def>& pools() const {
    return pools_;
  }
  /// The pool with `id`, or nullptr.
  const pool_def* find_pool(std::string_view id) const;
  /// The pools holding `ref` (for asset statistics).
  uint32_t pools_holding(asset_ref ref) const;
  /// Stroops of `ref` held by all pools.
  int64_t pool_amount(asset_ref ref) const;

  /// Ledger `seq`'s hash.
  words4 ledger_hash(int64_t seq) const {
    return hash_words(config_.seed, tag::ledger_hash, static_cast<uint64_t>(seq));
  }
  /// The (outer) hash of the transaction with TOID `toid`; the first word is an invertible
  /// function of the TOID, the rest a keyed hash of it.
  words4 tx_hash(uint64_t toid) const {
    return keyed_hash(toid, tag::tx_hash);
  }
  /// The inner transaction hash of a fee bump.
  words4 inner_hash(uint64_t toid) const {
    return keyed_hash(toid, tag::inner_hash);
  }
  /// The TOID whose tx_hash (or, setting `inner`, inner_hash) is `hex`; nullopt when none.
  std::optional<uint64_t> toid_of_hash(std::string_view hex, bool& inner) const;

 private:
  words4 keyed_hash(uint64_t toid, tag kind) const;
  void build_assets();
  void build_pools();

  options config_;
  std::string base_url_;
  std::array<std::string, 6> operation_links_;
  int64_t base_time_ = 0;
  std::vector<std::string> regular_ids_;
  std::vector<std::string> anchor_ids_;
  std::vector<issued_asset> assets_;
  std::vector<asset_ref> assets_by_code_;
  std::vector<pool_def> pools_;
  std::unordered_map<std::string, std::size_t> pool_by_id_;
};

}  // namespace si::sim
