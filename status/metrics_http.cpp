// The /metrics responder (metrics_http.h): plain Boost.Asio, one short-lived connection per
// request. The only translation unit of the coordinator that includes Asio for this purpose.
#include "status/metrics_http.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace radlads {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct MetricsServer::Impl : std::enable_shared_from_this<MetricsServer::Impl> {
  Impl(asio::io_context& io, RenderFn r, const MetricsServerOptions& o)
      : io(io), acceptor(io), render(std::move(r)), options(o) {}

  asio::io_context& io;
  tcp::acceptor acceptor;
  RenderFn render;
  MetricsServerOptions options;
  std::atomic<bool> stopped{false};
  std::atomic<int> active{0};
  std::atomic<std::uint64_t> served{0};
  std::uint16_t port = 0;
  std::string address;

  void Accept();
};

namespace {

struct Connection : std::enable_shared_from_this<Connection> {
  Connection(tcp::socket s, std::shared_ptr<MetricsServer::Impl> srv)
      : socket(std::move(s)), timer(socket.get_executor()), server(std::move(srv)) {}
  ~Connection() { --server->active; }

  tcp::socket socket;
  asio::steady_timer timer;
  std::shared_ptr<MetricsServer::Impl> server;
  std::string in;
  std::string out;

  void Start() {
    auto self = shared_from_this();
    timer.expires_after(std::chrono::milliseconds(server->options.read_timeout_ms));
    timer.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) {
        boost::system::error_code ignored;
        self->socket.close(ignored);  // the read completes with an error and the connection ends
      }
    });
    asio::async_read_until(
        socket, asio::dynamic_buffer(in, server->options.max_header_bytes), "\r\n\r\n",
        [self](const boost::system::error_code& ec, std::size_t n) { self->OnHead(ec, n); });
  }

  void OnHead(const boost::system::error_code& ec, std::size_t n) {
    timer.cancel();
    if (ec == asio::error::not_found) {  // the head outgrew max_header_bytes
      Respond(431, "Request Header Fields Too Large", "request head too large\n", true);
      return;
    }
    if (ec) return;  // closed, timed out or reset: nothing to answer
    const std::string_view head(in.data(), n);
    const std::size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
        line.substr(sp2 + 1).substr(0, 5) != "HTTP/") {
      Respond(400, "Bad Request", "malformed request line\n", true);
      return;
    }
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    if (method != "GET" && method != "HEAD") {
      Respond(405, "Method Not Allowed", "only GET and HEAD are served\n", true, "Allow: GET, HEAD\r\n");
      return;
    }
    const bool body = method == "GET";
    if (target != "/metrics") {
      Respond(404, "Not Found", "not found: try /metrics\n", body);
      return;
    }
    std::string text = server->render ? server->render() : std::string();
    Respond(200, "OK", std::move(text), body, "", "text/plain; version=0.0.4; charset=utf-8");
  }

  void Respond(int code, const char* reason, std::string body, bool send_body,
               const std::string& extra = "", const char* type = "text/plain; charset=utf-8") {
    ++server->served;
    out = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" +
          extra + "\r\n";
    if (send_body) out += body;
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(out), [self](const boost::system::error_code&, std::size_t) {
      boost::system::error_code ignored;
      self->socket.shutdown(tcp::socket::shutdown_both, ignored);
      self->socket.close(ignored);
    });
  }
};

}  // namespace

void MetricsServer::Impl::Accept() {
  auto self = shared_from_this();
  acceptor.async_accept([self](const boost::system::error_code& ec, tcp::socket socket) {
    if (self->stopped.load()) return;
    if (!ec) {
      if (self->active.load() >= self->options.max_connections) {
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        ++self->active;
        std::make_shared<Connection>(std::move(socket), self)->Start();
      }
    }
    if (ec == asio::error::operation_aborted) return;
    self->Accept();
  });
}

Status ParseListenAddress(std::string_view addr, std::string* host, std::uint16_t* port) {
  const std::string what = "metrics listen address '" + std::string(addr) + "'";
  const std::size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::InvalidArgument(what + ": expected HOST:PORT (e.g. 0.0.0.0:9464)");
  }
  std::string_view h = addr.substr(0, colon);
  const std::string_view p = addr.substr(colon + 1);
  unsigned value = 0;
  auto res = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || res.ec != std::errc() || res.ptr != p.data() + p.size() || value > 65535) {
    return Status::InvalidArgument(what + ": the port must be a number from 0 to 65535");
  }
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) h = "0.0.0.0";
  if (h == "localhost") h = "127.0.0.1";
  boost::system::error_code ec;
  asio::ip::make_address(std::string(h), ec);
  if (ec) return Status::InvalidArgument(what + ": '" + std::string(h) + "' is not an IP address");
  *host = std::string(h);
  *port = static_cast<std::uint16_t>(value);
  return Status::Ok();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(asio::io_context& io,
                                                            const std::string& listen_addr,
                                                            RenderFn render,
                                                            const MetricsServerOptions& options) {
  std::string host;
  std::uint16_t port = 0;
  RADLADS_RETURN_IF_ERROR(ParseListenAddress(listen_addr, &host, &port));
  auto impl = std::make_shared<Impl>(io, std::move(render), options);
  boost::system::error_code ec;
  const tcp::endpoint ep(asio::ip::make_address(host), port);
  const std::string what = "metrics endpoint " + listen_addr;
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable(what + ": cannot listen: " + ec.message());
  const tcp::endpoint bound = impl->acceptor.local_endpoint(ec);
  if (ec) return Status::Unavailable(what + ": " + ec.message());
  impl->port = bound.port();
  const std::string a = bound.address().to_string();
  impl->address = (bound.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(impl->port);
  impl->Accept();
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (impl_->stopped.exchange(true)) return;
  asio::post(impl_->io, [impl = impl_] {
    boost::system::error_code ignored;
    impl->acceptor.close(ignored);
  });
}

struct StandaloneMetricsServer::Loop {
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
};

Result<std::unique_ptr<StandaloneMetricsServer>> StandaloneMetricsServer::Start(
    const std::string& listen_addr, MetricsServer::RenderFn render,
    const MetricsServerOptions& options) {
  std::unique_ptr<StandaloneMetricsServer> s(new StandaloneMetricsServer());
  s->loop_ = std::make_unique<Loop>();
  RADLADS_ASSIGN_OR_RETURN(s->server_,
                           MetricsServer::Start(s->loop_->io, listen_addr, std::move(render), options));
  s->loop_->work.emplace(asio::make_work_guard(s->loop_->io));
  Loop* loop = s->loop_.get();
  s->loop_->thread = std::thread([loop] { loop->io.run(); });
  return s;
}

StandaloneMetricsServer::~StandaloneMetricsServer() {
  if (server_) server_->Stop();
  if (loop_) {
    loop_->work.reset();
    loop_->io.stop();
    if (loop_->thread.joinable()) loop_->thread.join();
  }
  server_.reset();  // its handlers are gone with the stopped loop
}

std::uint16_t MetricsServer::port() const { return impl_->port; }
std::string MetricsServer::address() const { return impl_->address; }
std::uint64_t MetricsServer::requests_served() const { return impl_->served.load(); }

}  // namespace radlads
