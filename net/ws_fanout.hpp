#pragma once
/// Batched calls on many WebSocket connections (docs/websocket-transport.md, "Fan-out"): one
/// message to many connections, one close to many connections. Per connection they do
/// exactly what ws_connection::send / close do, but they take no shared lock, weak
/// reference and post per connection: the connections whose writer must be woken are woken
/// by one task per chunk of connections posted to the server's io threads. No Boost here.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/ws_connection.hpp"

namespace si::net {

/// Tunables of the batched calls.
struct ws_batch_options {
  /// ws_fanout: connections woken by one task posted to the io threads. A chunk is posted as
  /// soon as it is full, so the io threads start writing while the caller is still queueing
  /// the rest; smaller chunks spread the writes over more io threads sooner, larger ones post
  /// less. ws_close_all: connections handed at a time to the io thread writing the close
  /// pass, which starts on the first chunk while the caller marks the rest.
  std::size_t chunk = 256;
};

/// What ws_fanout did with the message.
struct ws_fanout_result {
  std::size_t queued = 0;  ///< connections it was queued for (send() would return `queued`)
  std::size_t closed = 0;  ///< connections closing or gone: not queued (`closed`)
  /// Connections whose send queue overflowed with this message (`overflow`): each is being
  /// closed with the overflow close code, exactly as by send(). In the order given.
  std::vector<ws_connection*> overflowed;
};

/// Queues `message` (one shared buffer, never copied) on every connection in `connections`,
/// in order: for each, what connection->send(message) does — the same queue limits, the same
/// overflow handling, and the same order relative to earlier and later sends on that
/// connection. A connection listed twice gets the message twice. Never blocks (each
/// connection's queue mutex only); the writes happen on the io threads. Connections that are
/// not the transport's own (e.g. test fakes) get send(). Throws std::invalid_argument,
/// before queueing anything, for a null message, a null connection or a chunk of 0.
ws_fanout_result ws_fanout(std::span<ws_connection* const> connections,
                           const std::shared_ptr<const std::string>& message,
                           const ws_batch_options& options = {});

/// Starts the close handshake on every connection in `connections`: for each, what
/// connection->close(code, reason) does (messages queued before are written first; only
/// the first close of a connection counts; closed connections are skipped). Never blocks the
/// caller. The close frames are written in one pass: by one io thread, while the server's
/// other io threads wait for it (docs/websocket-transport.md, "Close pass"); it starts as soon
/// as the first chunk of connections is marked, and the server's io threads are held from
/// then until its last close frame is out.
/// Throws std::invalid_argument, before closing anything, when `code` may not be sent
/// (ws_close_code_sendable), for a null connection or a chunk of 0.
void ws_close_all(std::span<ws_connection* const> connections, std::uint16_t code,
                  std::string_view reason, const ws_batch_options& options = {});

}  // namespace si::net
