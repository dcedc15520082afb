# shellcheck shell=bash
# Comparisons shared by the process tests (tests/process/ingest.sh, webhooks.sh) and the chaos
# scripts (scripts/chaos/): the database against the Horizon simulator's ground truth, and the
# webhook outbox against what the receiver got. Source scripts/lib/common.sh and
# scripts/lib/sim.sh first (SIM_URL); the webhook figures need scripts/lib/webhook_receiver.sh.
#   si_sql DB QUERY                          → rows, one per line (DB: sqlite path or URL)
#   si_truth_figures DB FROM TO              → "NAME WANT GOT" lines (equal when all is well)
#   si_payment_event_figures DB DIR          → JSON {payments, events, without_event, ...}
#   si_webhook_delivery_figures DB HOOK NAME DIR → JSON {events, received, lost, ...}

# Operation types that are payments (domain::is_payment_like), as an SQL list.
SI_PAYMENT_TYPES_SQL="'payment', 'path_payment_strict_receive', 'path_payment_strict_send',
  'create_account', 'account_merge'"

# si_sql DB QUERY: SQLite (a file path or sqlite://path) or PostgreSQL (a URL), one row per line.
si_sql() {
  case "$1" in
    postgresql://* | postgres://*) psql "$1" -qAt -v ON_ERROR_STOP=1 -c "$2" ;;
    sqlite://*) sqlite3 "${1#sqlite://}" "$2" ;;
    *) sqlite3 "$1" "$2" ;;
  esac
}

# si_truth_figures DB FROM TO: the database against /_sim/truth for ledgers FROM..TO, one
# "NAME WANT GOT" line per figure (no spaces inside a value):
#   ledgers, ledgers_outside_range, ledger_gaps (holes between the lowest and highest stored
#   ledger), transactions, failed_transactions, fee_bump_transactions, operations,
#   operations_by_type (type=n,...), operations_outside_their_ledger (TOID vs transaction),
#   successful_payment_operations.
# When the truth cannot be fetched it prints "truth_available yes no" and returns 1.
si_truth_figures() {
  local db="$1" from="$2" to="$3" truth
  if ! truth=$(curl -sf --max-time 60 "$SIM_URL/_sim/truth?from=$from&to=$to"); then
    echo "truth_available yes no"
    return 1
  fi
  local range="sequence BETWEEN $from AND $to" by_type want got
  # NAME, the truth's jq filter (or a constant), the database's query.
  local -a figures=(
    ledgers .ledgers "SELECT COUNT(*) FROM ledgers WHERE $range"
    ledgers_outside_range 0 "SELECT COUNT(*) FROM ledgers WHERE NOT ($range)"
    ledger_gaps 0 "SELECT COALESCE(MAX(sequence) - MIN(sequence) + 1 - COUNT(*), 0) FROM ledgers"
    transactions .transactions "SELECT COUNT(*) FROM transactions"
    failed_transactions .failed_transactions
    "SELECT COUNT(*) FROM transactions WHERE successful = 0"
    fee_bump_transactions .fee_bump_transactions
    "SELECT COUNT(*) FROM transactions WHERE fee_bump = 1"
    operations .operations "SELECT COUNT(*) FROM operations"
    operations_outside_their_ledger 0 "SELECT COUNT(*) FROM operations o LEFT JOIN transactions
      t ON t.hash = o.transaction_hash WHERE t.hash IS NULL OR t.ledger <> o.ledger"
    successful_payment_operations .successful_payment_operations
    "SELECT COUNT(*) FROM operations WHERE successful = 1 AND type IN ($SI_PAYMENT_TYPES_SQL)"
  )
  local i
  for ((i = 0; i < ${#figures[@]}; i += 3)); do
    want=$(jq -r "${figures[i + 1]}" <<<"$truth")
    got=$(si_sql "$db" "${figures[i + 2]}")
    echo "${figures[i]} $want ${got:-none}"
  done
  by_type=$(si_sql "$db" "SELECT type || '=' || COUNT(*) FROM operations GROUP BY type
    ORDER BY type" | paste -sd, -)
  want=$(jq -r '.operations_by_type | to_entries | sort_by(.key) | map("\(.key)=\(.value)")
    | join(",")' <<<"$truth")
  echo "operations_by_type ${want:-none} ${by_type:-none}"
}

# si_payment_event_figures DB DIR: every successful payment-like operation against the
# payment.created events of the outbox. Writes DIR/payments (operation ids) and
# DIR/payment_events (each event's data.id, duplicates kept), both sorted; prints JSON
# {payments, events, without_event (payments with no event), duplicates (events beyond the
# first for one operation), unknown (events naming no stored payment)}.
si_payment_event_figures() {
  local db="$1" dir="$2"
  mkdir -p "$dir"
  si_sql "$db" "SELECT id FROM operations WHERE successful = 1
      AND type IN ($SI_PAYMENT_TYPES_SQL)" | sort >"$dir/payments"
  si_sql "$db" "SELECT payload FROM webhook_outbox WHERE type = 'payment.created'" \
    | jq -r .data.id | sort >"$dir/payment_events"
  jq -n --argjson payments "$(wc -l <"$dir/payments")" \
    --argjson events "$(wc -l <"$dir/payment_events")" \
    --argjson without "$(sort -u "$dir/payment_events" | comm -23 "$dir/payments" - | wc -l)" \
    --argjson dups "$(uniq -d -c "$dir/payment_events" | awk '{s += $1 - 1} END {print s + 0}')" \
    --argjson unknown "$(sort -u "$dir/payment_events" | comm -13 "$dir/payments" - | wc -l)" \
    '{payments: $payments, events: $events, without_event: $without, duplicates: $dups,
      unknown: $unknown}' -c
}

# si_webhook_delivery_figures DB HOOK_ID RECEIVER_NAME DIR: the deliveries the outbox holds for
# one webhook against the distinct webhook-ids its receiver endpoint got. Writes
# DIR/outbox-NAME and DIR/received-NAME (sorted ids); prints JSON {events, received, lost
# (events never received), unknown (received ids the outbox does not have), requests,
# redelivered (requests beyond the first per id), invalid (signatures that did not verify),
# undelivered (deliveries not in status delivered)}.
si_webhook_delivery_figures() {
  local db="$1" hook="$2" name="$3" dir="$4" stats
  mkdir -p "$dir"
  si_sql "$db" "SELECT event_id FROM webhook_deliveries WHERE webhook_id = '$hook'" \
    | sort >"$dir/outbox-$name"
  si_receiver_get "_ids?name=$name" | jq -r 'keys[]' | sort >"$dir/received-$name"
  stats=$(si_receiver_get "_stats?name=$name")
  jq -n --argjson events "$(wc -l <"$dir/outbox-$name")" \
    --argjson received "$(wc -l <"$dir/received-$name")" \
    --argjson lost "$(comm -23 "$dir/outbox-$name" "$dir/received-$name" | wc -l)" \
    --argjson unknown "$(comm -13 "$dir/outbox-$name" "$dir/received-$name" | wc -l)" \
    --argjson stats "$stats" \
    --argjson undelivered "$(si_sql "$db" "SELECT COUNT(*) FROM webhook_deliveries
        WHERE webhook_id = '$hook' AND status <> 'delivered'")" \
    '{events: $events, received: $received, lost: $lost, unknown: $unknown,
      requests: $stats.requests, redelivered: ($stats.requests - $stats.distinct),
      invalid: $stats.invalid, undelivered: $undelivered}' -c
}
