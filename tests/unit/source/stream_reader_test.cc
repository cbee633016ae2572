#include "source/stream_reader.h"

#include <doctest/doctest.h>
#include <zstd.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "match/pattern_file.h"

using namespace qw;
using namespace qw::source;

namespace {

struct Out {
  std::vector<std::string> texts;
  std::vector<Nanos> times;
};

Out ReadAll(StreamReader& r) {
  Out o;
  while (r.NextChunk()) {
    for (const auto& rec : r.records()) {
      o.texts.emplace_back(r.text(rec));
      o.times.push_back(rec.time);
    }
  }
  return o;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("qw_stream_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

const char* kCri1 = "2021-05-05T12:03:00.000000000Z stdout ";

}  // namespace

TEST_CASE("CRI partial records are joined, across small reads") {
  std::string data = std::string(kCri1) + "P first half, \n" + kCri1 + "P middle, \n" + kCri1 +
                     "F last\n" + kCri1 + "F next record\n";
  for (size_t max_read : {size_t(1), size_t(7), size_t(4096)}) {
    StreamOptions opt;
    opt.buffer_bytes = 4096;
    StreamReader r(MemorySource(data, max_read), opt);
    auto o = ReadAll(r);
    REQUIRE(o.texts.size() == 2);
    CHECK(o.texts[0] == "first half, middle, last");
    CHECK(o.texts[1] == "next record");
    CHECK(r.stats().lines_read == 4);
    CHECK(r.format() == LogFormat::kCri);
  }
}

TEST_CASE("a final line without newline is read") {
  StreamReader r(MemorySource("one\ntwo"), StreamOptions{});
  auto o = ReadAll(r);
  REQUIRE(o.texts.size() == 2);
  CHECK(o.texts[1] == "two");
}

TEST_CASE("long lines are cut and counted; reading goes on") {
  StreamOptions opt;
  opt.buffer_bytes = 4096;
  opt.max_line_bytes = 1000;
  std::string big(1 << 20, 'x');
  StreamReader r(MemorySource("before\n" + big + "\nafter\n", 3000), opt);
  auto o = ReadAll(r);
  REQUIRE(o.texts.size() == 3);
  CHECK(o.texts[0] == "before");
  CHECK(o.texts[1].size() == 1000);
  CHECK(o.texts[2] == "after");
  CHECK(r.stats().lines_cut == 1);
}

TEST_CASE("binary and invalid UTF-8 lines are skipped and counted") {
  std::string data = "good one\n";
  data += std::string("bin\0ary\n", 8);
  data += "bad \xff\xfe utf8\n";
  data += "caf\xc3\xa9 ok\n";
  StreamReader r(MemorySource(data), StreamOptions{});
  auto o = ReadAll(r);
  REQUIRE(o.texts.size() == 2);
  CHECK(o.texts[1] == "caf\xc3\xa9 ok");
  CHECK(r.stats().lines_rejected == 2);
  CHECK(r.stats().lines_read == 4);
}

TEST_CASE("CRI stream: undecodable lines are rejected, not fatal") {
  std::string data = std::string(kCri1) + "F ok\ngarbage line\n" + kCri1 + "F ok2\n";
  StreamReader r(MemorySource(data), StreamOptions{});
  auto o = ReadAll(r);
  CHECK(o.texts == std::vector<std::string>{"ok", "ok2"});
  CHECK(r.stats().lines_rejected == 1);
}

TEST_CASE("times: runtime stamp, else message stamp, else the last good one") {
  auto pf = match::LoadPatternText("t.yaml", R"(
family: t
timestamps:
  - regex: '^\[(?P<ts>[^\]]+)\]'
    layout: '%Y-%m-%d|%H:%M:%S.%f'
rules:
  - name: r
    signal: block_committed
    regex: 'commit'
    tests: [{line: 'commit', source: 'test'}]
)");
  REQUIRE(pf);
  auto m = match::FamilyMatcher::Create(*pf);
  REQUIRE(m);
  std::string data =
      "no stamp yet\n"
      "[2021-05-05|12:03:00.500] first stamp\n"
      "continued without stamp\n"
      "[2021-05-05|12:03:02.000] second\n";
  StreamReader r(MemorySource(data), StreamOptions{});
  REQUIRE(r.NextChunk());
  r.SetMatcher(m->get());
  std::vector<Nanos> times;
  for (const auto& rec : r.records()) times.push_back(rec.time);
  const Nanos t0 = 1620216180LL * kSecond;
  CHECK(times == std::vector<Nanos>{t0 + 500 * kMillisecond, t0 + 500 * kMillisecond,
                                    t0 + 500 * kMillisecond, t0 + 2 * kSecond});
}

TEST_CASE("a stream without any stamp takes the fallback (file) time") {
  StreamOptions opt;
  opt.fallback_time = 1234 * kSecond;
  StreamReader r(MemorySource("a\nb\n"), opt);
  auto o = ReadAll(r);
  CHECK(o.times == std::vector<Nanos>{1234 * kSecond, 1234 * kSecond});
}

TEST_CASE("continuation lines join the record before them, across chunks") {
  auto pf = match::LoadPatternText("t.yaml", R"(
family: t
continuation: ['^\s']
rules:
  - name: r
    signal: consensus_failure
    regex: 'panic'
    tests: [{line: 'panic', source: 'test'}]
)");
  REQUIRE(pf);
  auto m = match::FamilyMatcher::Create(*pf);
  REQUIRE(m);
  std::string data;
  for (int i = 0; i < 50; ++i) data += "record " + std::to_string(i) + "\n\tcontinued\n";
  StreamOptions opt;
  opt.chunk_bytes = 64;  // many chunk boundaries
  StreamReader r(MemorySource(data, 13), opt);
  r.SetMatcher(m->get());
  auto o = ReadAll(r);
  REQUIRE(o.texts.size() == 50);
  for (int i = 0; i < 50; ++i) {
    CHECK(o.texts[static_cast<size_t>(i)] == "record " + std::to_string(i) + "\n\tcontinued");
  }
}

TEST_CASE("zstd files are decompressed as a stream") {
  std::string plain;
  for (int i = 0; i < 20000; ++i) plain += std::string(kCri1) + "F line " + std::to_string(i) + "\n";
  std::string comp(ZSTD_compressBound(plain.size()), '\0');
  size_t n = ZSTD_compress(comp.data(), comp.size(), plain.data(), plain.size(), 3);
  REQUIRE_FALSE(ZSTD_isError(n));
  comp.resize(n);
  std::string path = TempPath("a.log.zst");
  {
    std::ofstream f(path, std::ios::binary);
    f.write(comp.data(), static_cast<std::streamsize>(comp.size()));
  }
  auto src = OpenFile(path);
  REQUIRE(src);
  StreamOptions opt;
  opt.buffer_bytes = 8192;
  StreamReader r(std::move(*src), opt);
  auto o = ReadAll(r);
  std::remove(path.c_str());
  REQUIRE(o.texts.size() == 20000);
  CHECK(o.texts.back() == "line 19999");
  CHECK(r.error().empty());
}

TEST_CASE("a truncated zstd file is a read error, not a silent end") {
  std::string plain(100000, 'a');
  std::string comp(ZSTD_compressBound(plain.size()), '\0');
  size_t n = ZSTD_compress(comp.data(), comp.size(), plain.data(), plain.size(), 3);
  comp.resize(n / 2);
  std::string path = TempPath("b.zst");
  {
    std::ofstream f(path, std::ios::binary);
    f.write(comp.data(), static_cast<std::streamsize>(comp.size()));
  }
  auto src = OpenFile(path);
  REQUIRE(src);
  StreamReader r(std::move(*src), StreamOptions{});
  ReadAll(r);
  std::remove(path.c_str());
  CHECK_FALSE(r.error().empty());
}

TEST_CASE("a missing file is refused with its path") {
  auto src = OpenFile("/nonexistent/dir/x.log");
  REQUIRE_FALSE(src);
  CHECK(src.error().message.find("/nonexistent/dir/x.log") != std::string::npos);
}
