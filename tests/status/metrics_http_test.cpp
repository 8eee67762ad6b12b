// The /metrics responder (status/metrics_http.h), with real HTTP requests over TCP on
// 127.0.0.1 (an ephemeral port). Plain POSIX sockets on the client side, so this test needs no
// Asio headers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

#include "status/metrics_http.h"

namespace radlads {
namespace {

int Connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until the server closes (or `timeout_ms` passes); returns what arrived.
std::string ReadAll(int fd, int timeout_ms = 5000) {
  std::string out;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string Request(std::uint16_t port, const std::string& raw) {
  const int fd = Connect(port);
  EXPECT_GE(fd, 0);
  if (fd < 0) return "";
  EXPECT_EQ(::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL), static_cast<ssize_t>(raw.size()));
  std::string r = ReadAll(fd);
  ::close(fd);
  return r;
}

std::string Body(const std::string& response) {
  const std::size_t p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

constexpr std::string_view kBody = "# HELP radlads_up Up.\n# TYPE radlads_up gauge\nradlads_up 1\n";

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MetricsServerOptions o;
    o.read_timeout_ms = 300;
    auto s = StandaloneMetricsServer::Start(
        "127.0.0.1:0",
        [this] {
          ++renders_;
          return std::string(kBody);
        },
        o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    ASSERT_NE(server_->port(), 0);
  }
  std::atomic<int> renders_{0};
  std::unique_ptr<StandaloneMetricsServer> server_;
};

TEST_F(MetricsHttpTest, GetMetricsServesTheRenderedText) {
  const std::string r =
      Request(server_->port(), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("Content-Length: " + std::to_string(kBody.size()) + "\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos) << r;
  EXPECT_EQ(Body(r), kBody);
  EXPECT_EQ(renders_.load(), 1);
  // A query string is ignored; HEAD gets the headers only; scrapes can repeat.
  EXPECT_EQ(Body(Request(server_->port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n")).size(), kBody.size());
  const std::string head = Request(server_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_EQ(Body(head), "");
  EXPECT_EQ(server_->requests_served(), 3u);
  EXPECT_EQ(server_->address(), "127.0.0.1:" + std::to_string(server_->port()));
}

TEST_F(MetricsHttpTest, OtherRequestsGetTheRightErrors) {
  EXPECT_EQ(Request(server_->port(), "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 Not Found", 0), 0u);
  const std::string post = Request(server_->port(), "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 Method Not Allowed", 0), 0u) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(Request(server_->port(), "HELLO\r\n\r\n").rfind("HTTP/1.1 400 Bad Request", 0), 0u);
  const std::string big = "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(10000, 'a') + "\r\n\r\n";
  EXPECT_EQ(Request(server_->port(), big).rfind("HTTP/1.1 431", 0), 0u);
  EXPECT_EQ(renders_.load(), 0) << "nothing rendered for a bad request";
  // Still serving.
  EXPECT_EQ(Request(server_->port(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(MetricsHttpTest, ASilentClientIsDisconnected) {
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadAll(fd, 5000), "");  // closed by the server after read_timeout_ms
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
  ::close(fd);
  EXPECT_EQ(Request(server_->port(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
}

TEST(MetricsHttp, AddressesAreCheckedAndABusyPortIsUnavailable) {
  std::string host;
  std::uint16_t port = 0;
  ASSERT_TRUE(ParseListenAddress(":9464", &host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 9464);
  ASSERT_TRUE(ParseListenAddress("[::1]:80", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  ASSERT_TRUE(ParseListenAddress("localhost:0", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  for (const char* bad : {"9464", "host:", "127.0.0.1:70000", "127.0.0.1:9x", "node07:9464"}) {
    Status s = ParseListenAddress(bad, &host, &port);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s.message();
  }
  auto a = StandaloneMetricsServer::Start("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(a.ok());
  auto b = StandaloneMetricsServer::Start("127.0.0.1:" + std::to_string((*a)->port()),
                                          [] { return std::string(); });
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(b.status().message().find("cannot listen"), std::string::npos) << b.status().message();
}

}  // namespace
}  // namespace radlads
