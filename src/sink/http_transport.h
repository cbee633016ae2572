// HttpTransport: an HTTP client behind a seam (libcurl in production), so
// delivery logic can be tested with injected failures.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/time.h"

namespace qw::sink {

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Nanos timeout = 10 * kSecond;  // whole request, connect included
  // When set, the request is abandoned within about a second of it turning
  // true (a shutdown must not wait for a receiver that never answers).
  const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponse {
  int status = 0;       // 0 when no response came
  std::string body;     // at most 64 KiB kept
  std::string error;    // transport error ("" when a response came)
  bool cancelled = false;  // abandoned through HttpRequest::cancel
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
  // "HTTP 503: <first line of body>" or the transport error.
  std::string Describe() const;
};

// Not thread-safe: one transport per thread.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual HttpResponse Send(const HttpRequest& req) = 0;
};

// libcurl, one easy handle reused (keep-alive).
std::unique_ptr<HttpTransport> MakeCurlTransport();

}  // namespace qw::sink
