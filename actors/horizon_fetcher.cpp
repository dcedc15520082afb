#include "actors/horizon_fetcher.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "domain/ledger_batch.hpp"

namespace si::actors {

namespace {

fetch_failure from_client_error(const net::horizon_error& e, const std::string& target) {
  fetch_failure f;
  f.kind = std::string(net::to_string(e.kind));
  f.message = "GET " + target + ": " + e.message;
  if (!e.title.empty()) {
    f.message += " (" + e.title + (e.detail.empty() ? "" : ": " + e.detail) + ")";
  }
  f.retry_after_ms = e.retry_after_ms;
  return f;
}

/// One page of T, or the failure.
template <class T>
std::variant<domain::page<T>, fetch_failure> get_page(const horizon_get& get,
                                                      const std::string& target) {
  auto r = get(target);
  if (auto* e = std::get_if<net::horizon_error>(&r)) {
    return from_client_error(*e, target);
  }
  auto& response = std::get<net::horizon_response>(r);
  auto parsed = domain::parse_page<T>(response.body);
  if (auto* pe = std::get_if<domain::parse_error>(&parsed)) {
    return fetch_failure{"malformed", "GET " + target + ": " + pe->message(), 0};
  }
  return std::get<domain::page<T>>(std::move(parsed));
}

/// Reads `/path?cursor=…&include_failed=true` pages from `cursor` until `expected` records
/// of the ledger range [first, last] arrived (when known) or a record past `last` or a
/// short page shows the range is complete.
template <class T, class LedgerOf>
std::optional<fetch_failure> collect_range(const horizon_get& get, const std::string& path,
                                           std::string cursor, int64_t first, int64_t last,
                                           std::optional<int64_t> expected,
                                           const fetch_options& opts, LedgerOf ledger_of,
                                           std::vector<T>& out, unsigned& pages) {
  if (expected && *expected == 0) {
    return std::nullopt;  // nothing to read: the ledgers say they are empty
  }
  const std::string limit = std::to_string(opts.page_limit);
  for (;;) {
    if (pages >= opts.max_pages) {
      return fetch_failure{"inconsistent",
                           path + ": more than " + std::to_string(opts.max_pages)
                               + " pages for ledgers " + std::to_string(first) + ".."
                               + std::to_string(last),
                           0};
    }
    auto target = path + "?cursor=" + cursor + "&order=asc&limit=" + limit + "&include_failed=true";
    ++pages;
    auto page = get_page<T>(get, target);
    if (auto* f = std::get_if<fetch_failure>(&page)) {
      return *f;
    }
    auto& p = std::get<domain::page<T>>(page);
    for (auto& record : p.records) {
      auto ledger = ledger_of(record);
      if (ledger > last) {
        return std::nullopt;
      }
      if (ledger < first) {
        return fetch_failure{"inconsistent",
                             "GET " + target + " returned a record of ledger "
                                 + std::to_string(ledger) + ", before the cursor",
                             0};
      }
      out.push_back(std::move(record));
    }
    if (p.records.size() < opts.page_limit
        || (expected && static_cast<int64_t>(out.size()) >= *expected)) {
      return std::nullopt;
    }
    cursor = p.last_paging_token;
  }
}

}  // namespace

std::variant<fetched_batch, fetch_failure> fetch_ledger_batch(const horizon_get& get,
                                                              const std::string& cursor,
                                                              std::optional<int64_t> expected_first,
                                                              const fetch_options& opts) {
  fetched_batch out;
  out.batch = std::make_shared<storage::ingest_batch>();
  auto& b = *out.batch;
  auto target =
      "/ledgers?cursor=" + cursor + "&order=asc&limit=" + std::to_string(opts.batch_ledgers);
  ++out.pages;
  auto ledgers = get_page<domain::ledger>(get, target);
  if (auto* f = std::get_if<fetch_failure>(&ledgers)) {
    return *f;
  }
  b.ledgers = std::move(std::get<domain::page<domain::ledger>>(ledgers).records);
  out.caught_up = b.ledgers.size() < opts.batch_ledgers;
  if (b.ledgers.empty()) {
    return out;
  }
  out.first_ledger = b.ledgers.front().sequence;
  out.last_ledger = b.ledgers.back().sequence;
  out.new_cursor = b.ledgers.back().paging_token;

  // Ledger counters tell how many transactions to expect (when Horizon counted failed ones).
  std::optional<int64_t> expected_tx = 0;
  for (const auto& l : b.ledgers) {
    if (!l.failed_transaction_count) {
      expected_tx.reset();
      break;
    }
    *expected_tx += l.successful_transaction_count + *l.failed_transaction_count;
  }
  // From the first ledger's own token: everything inside it sorts after it.
  auto start = std::to_string(domain::toid(out.first_ledger));
  if (auto f = collect_range<domain::transaction>(
          get, "/transactions", start, out.first_ledger, out.last_ledger, expected_tx, opts,
          [](const domain::transaction& t) { return t.ledger; }, b.transactions, out.pages)) {
    return *f;
  }
  int64_t expected_ops = 0;
  for (const auto& t : b.transactions) {
    expected_ops += t.operation_count;
  }
  if (auto f = collect_range<domain::operation>(
          get, "/operations", start, out.first_ledger, out.last_ledger, expected_ops, opts,
          [](const domain::operation& o) { return domain::toid_ledger(o.id); }, b.operations,
          out.pages)) {
    return *f;
  }
  if (auto problem = domain::check_batch(b.ledgers, b.transactions, b.operations, expected_first)) {
    return fetch_failure{"inconsistent",
                         "ledgers " + std::to_string(out.first_ledger) + ".."
                             + std::to_string(out.last_ledger) + ": " + *problem,
                         0};
  }
  return out;
}

std::variant<int64_t, fetch_failure> fetch_latest_ledger(const horizon_get& get) {
  auto page = get_page<domain::ledger>(get, "/ledgers?order=desc&limit=1");
  if (auto* f = std::get_if<fetch_failure>(&page)) {
    return *f;
  }
  auto& p = std::get<domain::page<domain::ledger>>(page);
  if (p.records.empty()) {
    return fetch_failure{"malformed", "GET /ledgers?order=desc&limit=1: no ledger at all", 0};
  }
  return p.records.front().sequence;
}

std::variant<sync_data, fetch_failure> fetch_pools(const horizon_get& get, unsigned max_pools,
                                                   unsigned page_limit, int64_t since_ms,
                                                   unsigned max_pages) {
  sync_data out;
  std::string cursor;
  while (out.pools.size() < max_pools) {
    if (out.pages >= max_pages) {
      return fetch_failure{
          "inconsistent", "/liquidity_pools: more than " + std::to_string(max_pages) + " pages", 0};
    }
    auto limit = std::min<size_t>(page_limit, max_pools - out.pools.size());
    auto target = "/liquidity_pools?order=asc&limit=" + std::to_string(limit)
                  + (cursor.empty() ? "" : "&cursor=" + cursor);
    ++out.pages;
    auto page = get_page<domain::liquidity_pool>(get, target);
    if (auto* f = std::get_if<fetch_failure>(&page)) {
      return *f;
    }
    auto& p = std::get<domain::page<domain::liquidity_pool>>(page);
    for (auto& pool : p.records) {
      out.pools.push_back(std::move(pool));
    }
    if (p.records.size() < limit || p.last_paging_token.empty()) {
      break;
    }
    cursor = p.last_paging_token;
  }
  for (const auto& pool : out.pools) {
    auto& trades = out.trades_by_pool[pool.id];
    std::string tcursor;
    for (;;) {
      if (out.pages >= max_pages) {
        return fetch_failure{"inconsistent",
                             "pool trades: more than " + std::to_string(max_pages) + " pages", 0};
      }
      auto target = "/liquidity_pools/" + pool.id + "/trades?order=desc&limit="
                    + std::to_string(page_limit) + (tcursor.empty() ? "" : "&cursor=" + tcursor);
      ++out.pages;
      auto page = get_page<domain::trade>(get, target);
      if (auto* f = std::get_if<fetch_failure>(&page)) {
        return *f;
      }
      auto& p = std::get<domain::page<domain::trade>>(page);
      bool older = false;
      for (auto& t : p.records) {
        if (t.ledger_close_time_ms < since_ms) {
          older = true;  // newest first: the rest is older still
          break;
        }
        trades.push_back(std::move(t));
      }
      if (older || p.records.size() < page_limit || p.last_paging_token.empty()) {
        break;
      }
      tcursor = p.last_paging_token;
    }
  }
  return out;
}

std::variant<sync_data, fetch_failure> fetch_assets(const horizon_get& get, unsigned max_assets,
                                                    unsigned page_limit, unsigned max_pages) {
  sync_data out;
  std::string cursor;
  while (out.assets.size() < max_assets) {
    if (out.pages >= max_pages) {
      return fetch_failure{"inconsistent",
                           "/assets: more than " + std::to_string(max_pages) + " pages", 0};
    }
    auto limit = std::min<size_t>(page_limit, max_assets - out.assets.size());
    auto target = "/assets?order=asc&limit=" + std::to_string(limit)
                  + (cursor.empty() ? "" : "&cursor=" + cursor);
    ++out.pages;
    auto page = get_page<domain::asset_stats>(get, target);
    if (auto* f = std::get_if<fetch_failure>(&page)) {
      return *f;
    }
    auto& p = std::get<domain::page<domain::asset_stats>>(page);
    for (auto& a : p.records) {
      out.assets.push_back(std::move(a));
    }
    if (p.records.size() < limit || p.last_paging_token.empty()) {
      break;
    }
    cursor = p.last_paging_token;
  }
  return out;
}

namespace {

struct fetcher_state {
  static inline const char* name = "horizon_fetcher";
};

horizon_fetcher_actor::behavior_type fetcher_impl(
    horizon_fetcher_actor::stateful_pointer<fetcher_state> self,
    std::shared_ptr<net::horizon_client> client, fetch_options opts) {
  horizon_get get = [client](const std::string& target) { return client->get(target); };
  return {
      [=](fetch_atom, const std::string& cursor, int64_t expected_first,
          bool want_latest) -> fetch_outcome {
        auto r = fetch_ledger_batch(
            get, cursor, expected_first > 0 ? std::optional<int64_t>{expected_first} : std::nullopt,
            opts);
        if (auto* batch = std::get_if<fetched_batch>(&r); batch && want_latest) {
          if (batch->caught_up && batch->last_ledger > 0) {
            batch->network_latest = batch->last_ledger;  // the tip was just read
          } else {
            auto latest = fetch_latest_ledger(get);
            if (auto* n = std::get_if<int64_t>(&latest)) {
              batch->network_latest = *n;
            }
          }
        }
        return fetch_outcome{std::move(r)};
      },
      [=](sync_atom, const std::string& what, uint32_t max, int64_t since_ms) -> sync_outcome {
        if (what == "pools") {
          return sync_outcome{fetch_pools(get, max, opts.page_limit, since_ms, opts.max_pages)};
        }
        return sync_outcome{fetch_assets(get, max, opts.page_limit, opts.max_pages)};
      },
      [=](latest_atom) -> fetch_outcome {
        auto latest = fetch_latest_ledger(get);
        if (auto* f = std::get_if<fetch_failure>(&latest)) {
          return fetch_outcome{*f};
        }
        fetched_batch b;
        b.network_latest = std::get<int64_t>(latest);
        return fetch_outcome{std::move(b)};
      },
  };
}

}  // namespace

horizon_fetcher_actor spawn_horizon_fetcher(caf::actor_system& sys,
                                            std::shared_ptr<net::horizon_client> client,
                                            fetch_options opts) {
  return sys.spawn<caf::detached>(fetcher_impl, std::move(client), opts);
}

}  // namespace si::actors
