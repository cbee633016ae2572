#include "app/progress.h"

#include <algorithm>
#include <cinttypes>

namespace qw::app {
namespace {

std::string Bytes(uint64_t b) {
  char buf[32];
  if (b < 1000 * 1000) {
    std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(b) / 1e3);
  } else if (b < UINT64_C(1000) * 1000 * 1000) {
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(b) / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(b) / 1e9);
  }
  return buf;
}

// 1234567 -> "1,234,567".
std::string Grouped(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string Duration(uint64_t seconds) {
  char buf[32];
  if (seconds >= 3600) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, seconds / 3600,
                  seconds / 60 % 60, seconds % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%" PRIu64 ":%02" PRIu64, seconds / 60, seconds % 60);
  }
  return buf;
}

}  // namespace

std::string FormatProgress(const pipeline::ReplayProgress& p, Nanos elapsed) {
  const double secs = elapsed > 0 ? static_cast<double>(elapsed) / kSecond : 1e-9;
  const uint64_t lines_per_s = static_cast<uint64_t>(static_cast<double>(p.lines) / secs + 0.5);
  std::string s = "replay: " + Bytes(p.bytes_read);
  if (p.bytes_total == 0) return s + " read, " + Grouped(lines_per_s) + " lines/s";
  const uint64_t read = std::min(p.bytes_read, p.bytes_total);
  s += " of " + Bytes(p.bytes_total) + " (" +
       std::to_string(read * 100 / p.bytes_total) + " %), " + Grouped(lines_per_s) + " lines/s";
  if (read > 0) {
    // At the rate so far.
    const double left = static_cast<double>(p.bytes_total - read) * secs / static_cast<double>(read);
    s += ", " + Duration(static_cast<uint64_t>(left + 0.5)) + " left";
  }
  return s;
}

void ProgressLine::Update(const pipeline::ReplayProgress& p, Nanos now) {
  if (now - started_ < delay_) return;
  if (shown_ && now - last_ < every_) return;
  last_ = now;
  shown_ = true;
  // \r to the line's start, \033[K clears what a longer line left.
  std::fprintf(out_, "\r%s\033[K", FormatProgress(p, now - started_).c_str());
  std::fflush(out_);
}

void ProgressLine::Finish() {
  if (!shown_) return;
  std::fprintf(out_, "\r\033[K");
  std::fflush(out_);
  shown_ = false;
}

}  // namespace qw::app
