// A tiny HTTP/1.1 responder for Prometheus scrapes: GET /metrics answers the text exposition
// format (Content-Type: text/plain; version=0.0.4) produced by a caller-supplied render function,
// typically PrometheusText(BuildStatusReport(state, now)) (status/status_report.h). The
// coordinator's server mounts it on a second port next to its RPC port (docs/design.md §4).
//
//   MetricsServer::Start(io, "0.0.0.0:9464", render)   // or "127.0.0.1:0" for an ephemeral port
//
// Behaviour:
// - GET or HEAD /metrics (a query string is ignored) -> 200 with the rendered text; any other
//   path -> 404; any other method -> 405; a request line that does not parse -> 400; headers
//   larger than 8 KiB -> 431. Every response closes the connection (scrapers reconnect; nothing
//   here needs keep-alive).
// - A connection that has not sent its whole request within `read_timeout_ms` is closed, and at
//   most `max_connections` are served at once (the extra ones are closed at accept), so a slow or
//   hostile client cannot pin the coordinator's sockets.
// - Only the request head is read; a body is never read (POST gets 405).
// Threading: everything runs on the io_context's thread(s), `render` included: keep it quick
// (a snapshot under the state mutex and a string). Start must be called before io.run() or from a
// thread that may touch the io_context; Stop() is thread-safe and idempotent. The io_context must
// outlive the server. Boost.Asio stays inside metrics_http.cpp: this header only forward-declares
// io_context, so including it costs nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace boost {
namespace asio {
class io_context;
}  // namespace asio
}  // namespace boost

namespace radlads {

struct MetricsServerOptions {
  int read_timeout_ms = 5000;
  int max_connections = 64;
  std::size_t max_header_bytes = 8192;
};

class MetricsServer {
 public:
  using RenderFn = std::function<std::string()>;

  // Binds `listen_addr` ("HOST:PORT", "[V6]:PORT", ":PORT" = all interfaces, "localhost:PORT";
  // port 0 picks a free one) and starts accepting on `io`. InvalidArgument for a malformed
  // address, Unavailable when the address cannot be bound (in use, not local).
  static Result<std::unique_ptr<MetricsServer>> Start(boost::asio::io_context& io,
                                                      const std::string& listen_addr,
                                                      RenderFn render,
                                                      const MetricsServerOptions& options = {});
  ~MetricsServer();  // Stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  std::uint16_t port() const;    // the bound port (useful with port 0)
  std::string address() const;   // "127.0.0.1:40123"
  // Stops accepting; connections in progress finish. Thread-safe, idempotent.
  void Stop();
  // Requests answered so far (any status code).
  std::uint64_t requests_served() const;

  struct Impl;  // opaque (metrics_http.cpp)

 private:
  explicit MetricsServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

// A MetricsServer on its own io_context and thread, for a process without an event loop of its
// own (and for tests, which then need no Asio headers). Stops and joins on destruction.
class StandaloneMetricsServer {
 public:
  static Result<std::unique_ptr<StandaloneMetricsServer>> Start(
      const std::string& listen_addr, MetricsServer::RenderFn render,
      const MetricsServerOptions& options = {});
  ~StandaloneMetricsServer();
  StandaloneMetricsServer(const StandaloneMetricsServer&) = delete;
  StandaloneMetricsServer& operator=(const StandaloneMetricsServer&) = delete;

  std::uint16_t port() const { return server_->port(); }
  std::string address() const { return server_->address(); }
  std::uint64_t requests_served() const { return server_->requests_served(); }

 private:
  StandaloneMetricsServer() = default;
  struct Loop;
  std::unique_ptr<Loop> loop_;
  std::unique_ptr<MetricsServer> server_;
};

// The brief's name for the same thing.
inline Result<std::unique_ptr<MetricsServer>> ServeMetrics(boost::asio::io_context& io,
                                                           const std::string& listen_addr,
                                                           MetricsServer::RenderFn render) {
  return MetricsServer::Start(io, listen_addr, std::move(render));
}

// "HOST:PORT" -> (host, port) as Start reads it; exposed for tests and flag validation.
Status ParseListenAddress(std::string_view addr, std::string* host, std::uint16_t* port);

}  // namespace radlads
