#include "common/log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common/json.h"

namespace qw {

std::string OneLine(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t n = Utf8SeqLen(s, i);
      if (n > 0) {
        out.append(s.substr(i, n));
        i += n;
        continue;
      }
    }
    if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else {
      out.append("\\x");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
    ++i;
  }
  return out;
}

void LogLine(std::string_view msg) {
  std::string line = "quorumwatch: ";
  line.append(OneLine(msg));
  line.push_back('\n');
  // One write, so lines of concurrent threads never interleave mid-line.
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to tell it
    done += static_cast<size_t>(n);
  }
}

}  // namespace qw
