// The replay's progress line: its text from figures worked out by hand, and
// when it is shown (never before the delay, at most once per interval,
// cleared at the end).
#include "app/progress.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace qw;
using namespace qw::app;

TEST_CASE("progress text: bytes of total, lines per second, time left at the rate so far") {
  pipeline::ReplayProgress p;
  p.records = 900'000;
  p.lines = 1'000'000;
  p.bytes_read = 51'200'000;
  p.bytes_total = 102'400'000;
  // Half read in 2 s: the other half takes 2 s more; 1,000,000 lines in 2 s.
  CHECK(FormatProgress(p, 2 * kSecond) == "replay: 51.2 MB of 102.4 MB (50 %), 500,000 lines/s, 0:02 left");
  // A total nobody knows (a pipe among the inputs): what was read.
  p.bytes_total = 0;
  CHECK(FormatProgress(p, 2 * kSecond) == "replay: 51.2 MB read, 500,000 lines/s");
  // 1 kB of 3.601 MB after 1 s: 3,600,000 bytes left at 1,000 bytes/s.
  p.lines = 0;
  p.bytes_read = 1'000;
  p.bytes_total = 3'601'000;
  CHECK(FormatProgress(p, kSecond) == "replay: 1.0 kB of 3.6 MB (0 %), 0 lines/s, 1:00:00 left");
  // Gigabytes; nothing read yet: no time left to tell.
  p.bytes_read = 0;
  p.bytes_total = 2'500'000'000;
  CHECK(FormatProgress(p, kSecond) == "replay: 0.0 kB of 2.50 GB (0 %), 0 lines/s");
}

TEST_CASE("progress line: after the delay, at most once per interval, cleared at the end") {
  char* text = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&text, &size);
  REQUIRE(out != nullptr);
  const Nanos t0 = 100 * kSecond;
  ProgressLine line(out, t0, kSecond, 250 * kMillisecond);
  pipeline::ReplayProgress p;
  p.bytes_total = 1'000'000;
  p.bytes_read = 250'000;
  line.Update(p, t0 + 500 * kMillisecond);  // before the delay: nothing
  std::fflush(out);
  CHECK(std::string(text, size).empty());
  CHECK_FALSE(line.shown());
  line.Update(p, t0 + 1500 * kMillisecond);  // 250 kB in 1.5 s: 4.5 s left
  std::fflush(out);
  CHECK(std::string(text, size) == "\rreplay: 250.0 kB of 1.0 MB (25 %), 0 lines/s, 0:05 left\033[K");
  const size_t first = size;
  p.bytes_read = 500'000;
  line.Update(p, t0 + 1600 * kMillisecond);  // within the interval: nothing
  std::fflush(out);
  CHECK(size == first);
  line.Update(p, t0 + 2 * kSecond);  // half in 2 s: 2 s left
  std::fflush(out);
  CHECK(std::string(text + first, size - first) == "\rreplay: 500.0 kB of 1.0 MB (50 %), 0 lines/s, 0:02 left\033[K");
  const size_t second = size;
  line.Finish();
  std::fflush(out);
  CHECK(std::string(text + second, size - second) == "\r\033[K");
  line.Finish();  // once only
  std::fflush(out);
  CHECK(size == second + 4);
  std::fclose(out);
  std::free(text);
}
