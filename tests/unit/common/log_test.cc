#include <doctest/doctest.h>

#include <string>

#include "common/log.h"

using qw::OneLine;

TEST_CASE("OneLine keeps printable ASCII and well-formed UTF-8 as they are") {
  CHECK(OneLine("") == "");
  CHECK(OneLine("/var/log/pods/ns_pod_uid/c/0.log: read error") ==
        "/var/log/pods/ns_pod_uid/c/0.log: read error");
  CHECK(OneLine("validateur-é/😀.log") == "validateur-é/😀.log");
}

TEST_CASE("OneLine escapes what would split or garble a message") {
  // A file name with a newline stays on the message's one line.
  CHECK(OneLine("a\nb.log: gone") == "a\\nb.log: gone");
  CHECK(OneLine("x\r\ty") == "x\\r\\ty");
  // Other control characters (an escape sequence would drive the terminal).
  CHECK(OneLine(std::string("\x1b[31mred\x7f", 9)) == "\\x1b[31mred\\x7f");
  CHECK(OneLine(std::string("nul\0x", 5)) == "nul\\x00x");
  // Latin-1 bytes, a lone continuation byte, a truncated sequence, an
  // overlong form: each bad byte shown by its value.
  CHECK(OneLine("caf\xe9.log") == "caf\\xe9.log");
  CHECK(OneLine("\x80") == "\\x80");
  CHECK(OneLine("\xe2\x82") == "\\xe2\\x82");
  CHECK(OneLine("\xc0\xaf") == "\\xc0\\xaf");
  // Nothing the output contains is a line break or a non-UTF-8 byte.
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  std::string shown = OneLine(all);
  CHECK(shown.find('\n') == std::string::npos);
  CHECK(shown.find('\r') == std::string::npos);
  for (unsigned char c : shown) CHECK(c < 0x80);
}
