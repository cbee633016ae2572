// Arbitrary bytes as an HTTP request head for the metrics endpoint's
// server: parsed or refused, never a crash; what parses is a path that
// starts with '/' (or is "*") and holds no space or control byte.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sink/http_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string head(reinterpret_cast<const char*>(data), size);
  qw::sink::ServerRequest req;
  int status = 0;
  if (qw::sink::ParseRequestHead(head, &req, &status)) {
    if (req.path.empty() || (req.path[0] != '/' && req.path != "*")) std::abort();
    for (unsigned char c : req.path) {
      if (c <= 0x20 || c == 0x7f) std::abort();
    }
    if (req.method.empty()) std::abort();
  } else if (status != 400 && status != 505) {
    std::abort();
  }
  qw::sink::ServerResponse r;
  r.body = head;
  std::string out = qw::sink::FormatResponse(r, size % 2 == 0);
  if (out.rfind("HTTP/1.1 200 OK\r\n", 0) != 0) std::abort();
  return 0;
}
