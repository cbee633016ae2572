#include "source/line_reader.h"

#include <cstring>

namespace qw::source {

LineReader::LineReader(std::unique_ptr<ByteSource> src, size_t buffer_bytes, size_t max_line_bytes)
    : src_(std::move(src)), buf_(std::max<size_t>(buffer_bytes, 4096)), max_line_(max_line_bytes) {}

bool LineReader::Fill() {
  if (start_ > 0) {
    std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
    end_ -= start_;
    scan_ -= start_;
    start_ = 0;
  }
  if (end_ == buf_.size()) return true;  // caller handles a full buffer
  ssize_t r = src_->Read(buf_.data() + end_, buf_.size() - end_);
  if (r < 0) {
    error_ = src_->error();
    eof_ = true;
    return false;
  }
  if (r == 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(r);
  bytes_read_ += static_cast<uint64_t>(r);
  return true;
}

bool LineReader::Next(std::string_view* line, bool* cut) {
  while (true) {
    const char* nl = scan_ < end_ ? static_cast<const char*>(std::memchr(
                                        buf_.data() + scan_, '\n', end_ - scan_))
                                  : nullptr;
    if (nl != nullptr) {
      size_t pos = static_cast<size_t>(nl - buf_.data());
      std::string_view piece(buf_.data() + start_, pos - start_);
      start_ = scan_ = pos + 1;
      if (in_long_) {
        size_t room = max_line_ > long_.size() ? max_line_ - long_.size() : 0;
        if (piece.size() > room) long_cut_ = true;
        long_.append(piece.substr(0, room));
        in_long_ = false;
        *cut = long_cut_;
        *line = long_;
        return true;
      }
      if (piece.size() > max_line_) {
        *cut = true;
        *line = piece.substr(0, max_line_);
      } else {
        *cut = false;
        *line = piece;
      }
      if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
      return true;
    }
    scan_ = end_;
    if (!eof_ && start_ == 0 && end_ == buf_.size()) {
      // The line outgrows the buffer: gather it aside.
      std::string_view piece(buf_.data(), end_);
      if (!in_long_) {
        long_.clear();
        long_cut_ = false;
        in_long_ = true;
      }
      size_t room = max_line_ > long_.size() ? max_line_ - long_.size() : 0;
      if (piece.size() > room) long_cut_ = true;
      long_.append(piece.substr(0, room));
      start_ = scan_ = end_ = 0;
    }
    if (eof_ || !Fill()) {
      if (!eof_) continue;
      if (start_ < end_ || in_long_) {
        std::string_view piece(buf_.data() + start_, end_ - start_);
        start_ = scan_ = end_;
        if (in_long_) {
          size_t room = max_line_ > long_.size() ? max_line_ - long_.size() : 0;
          if (piece.size() > room) long_cut_ = true;
          long_.append(piece.substr(0, room));
          in_long_ = false;
          *cut = long_cut_;
          *line = long_;
          return true;
        }
        *cut = piece.size() > max_line_;
        *line = piece.substr(0, max_line_);
        return true;
      }
      return false;
    }
  }
}

}  // namespace qw::source
