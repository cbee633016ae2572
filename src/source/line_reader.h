// LineReader: splits a ByteSource into lines with one large reusable
// buffer. Lines longer than max_line_bytes are cut (and counted).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/byte_source.h"

namespace qw::source {

class LineReader {
 public:
  LineReader(std::unique_ptr<ByteSource> src, size_t buffer_bytes, size_t max_line_bytes);

  // Next line without its '\n' (a final line without '\n' is returned too).
  // The view stays valid until the next call. false at the end of input or
  // on a read error (then error() is set).
  bool Next(std::string_view* line, bool* cut);

  const std::string& error() const { return error_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  bool Fill();

  std::unique_ptr<ByteSource> src_;
  std::vector<char> buf_;
  size_t start_ = 0, scan_ = 0, end_ = 0;
  size_t max_line_;
  bool eof_ = false;
  // A line that outgrew the buffer is gathered here (at most max_line_ bytes).
  std::string long_;
  bool in_long_ = false;
  bool long_cut_ = false;
  std::string error_;
  uint64_t bytes_read_ = 0;
};

}  // namespace qw::source
