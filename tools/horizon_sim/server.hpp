#pragma once
/// The simulator's HTTP/1.1 server (Boost.Beast on a multithreaded io_context): keep-alive
/// connections, responses written straight from cached ledger slices (scatter/gather), SSE
/// streams woken when a ledger closes, fault injection at the transport, the ledger clock,
/// and a bounded shutdown on SIGTERM/SIGINT. Asio stays out of this header.

#include <cstdint>
#include <memory>
#include <string>

#include "tools/horizon_sim/api.hpp"
#include "tools/horizon_sim/control.hpp"

namespace si::sim {

class http_server {
 public:
  /// Binds and listens on host:port (port 0 picks one). Throws std::system_error when the
  /// address cannot be bound.
  http_server(const std::string& host, uint16_t port, uint32_t threads);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// The bound port.
  uint16_t port() const;

  /// Serves until SIGTERM or SIGINT (then stops within about two seconds). With
  /// close_ms > 0 a ledger closes every close_ms while the chain may grow.
  void run(api& a, chain& c, sim_stats& stats, fault_queue& faults, uint32_t close_ms);

  class impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace si::sim
