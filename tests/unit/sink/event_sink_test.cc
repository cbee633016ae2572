// File sinks (JsonlSink, TextSink): failed writes are counted and reported,
// rate-limited, and recovery is reported; Sync reaches the disk; the
// --summary array's exact bytes.
//
// /dev/full accepts open and fails every write with ENOSPC. A writer the
// test switches (OutputOptions::write) fails or succeeds as a test says,
// for retries and recovery. Time is a ManualClock: the rate limit needs no
// sleeping.
#include "sink/event_sink.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/event.h"
#include "common/metrics.h"
#include "common/time.h"

namespace qw::sink {
namespace {

constexpr Nanos kT0 = 1735787094000000000;  // 2025-01-02T03:04:54Z

Event Stall(int64_t height) {
  Event e;
  e.time = kT0 + height * kSecond;
  e.kind = EventKind::kNodeStalled;
  e.severity = Severity::kWarning;
  e.chain = "cosmoshub";
  e.node = "val-a";
  e.height = height;
  e.id = MakeEventId(e.chain, e.node, e.kind, height);
  e.AddDetailString("stall_after", "1m00s");
  return e;
}

std::string Line(const Event& e) {
  std::string s;
  AppendEventJson(s, e);
  return s + "\n";
}

// What a sink under test reports (log lines, counters), on a ManualClock.
struct Reports {
  ManualClock clock{kT0};
  std::vector<std::string> lines;
  ComponentCounters counters = ComponentCounters::Detached();

  OutputOptions Options(const std::string& name) {
    OutputOptions o;
    o.name = name;
    o.log = [this](const std::string& l) { lines.push_back(l); };
    o.clock = &clock;
    return o;
  }
};

// /dev/full opened for appending (declared before the sink that writes to
// it, so it is closed after).
struct DevFull {
  std::FILE* f = std::fopen("/dev/full", "a");
  DevFull() { REQUIRE(f != nullptr); }
  ~DevFull() {
    if (f != nullptr) std::fclose(f);
  }
};

uint64_t Get(std::atomic<uint64_t>* c) { return c->load(); }

// A writer that fails (EIO) while `fail` is set, else writes at most
// `chunk` bytes at a time.
struct Switchable {
  bool fail = false;
  size_t chunk = SIZE_MAX;
  std::string data;
  int calls = 0;

  OutputOptions Into(OutputOptions o) {
    o.write = [this](const char* buf, size_t n) -> ssize_t {
      ++calls;
      if (fail) {
        errno = EIO;
        return -1;
      }
      n = std::min(n, chunk);
      data.append(buf, n);
      return static_cast<ssize_t>(n);
    };
    return o;
  }
};

const char kFailed[] =
    "events wait and are written when writing succeeds again (no checkpoint meanwhile)";

TEST_CASE("JsonlSink on a full disk: every failed write counted, the first reported at once, nothing dropped") {
  DevFull full;
  Reports out;
  JsonlSink sink(full.f, out.counters, out.Options("/dev/full"));

  sink.Write(Stall(1));
  sink.Flush();  // the waiting line meets the device here
  CHECK(sink.write_errors() == 1);
  CHECK(Get(out.counters.errors) == 1);
  CHECK(Get(out.counters.received) == 1);
  CHECK(Get(out.counters.dropped) == 0);
  CHECK(Get(out.counters.processed) == 0);
  REQUIRE(out.lines.size() == 1);
  CHECK(out.lines[0] == std::string("/dev/full: write failed: No space left on device; ") + kFailed);

  // More failures within the minute: counted, not logged.
  sink.Write(Stall(2));
  sink.Flush();
  out.clock.Advance(59 * kSecond);
  sink.Write(Stall(3));
  sink.Flush();
  CHECK(sink.write_errors() == 3);
  CHECK(out.lines.size() == 1);

  // A minute after the last line: one line with the count since then.
  out.clock.Advance(1 * kSecond);
  sink.Write(Stall(4));
  sink.Flush();
  CHECK(sink.write_errors() == 4);
  REQUIRE(out.lines.size() == 2);
  CHECK(out.lines[1] ==
        "/dev/full: still failing: 3 more failed write(s) in the last 1m00s (No space left on "
        "device)");

  // Sync fails while lines wait, before any fdatasync; also counted.
  sink.Write(Stall(5));
  CHECK_FALSE(sink.Sync());
  CHECK(sink.write_errors() == 5);
  CHECK(Get(out.counters.received) == 5);
  CHECK(Get(out.counters.dropped) == 0);
  CHECK(Get(out.counters.processed) == 0);
}

TEST_CASE("failed writes are retried: after recovery every line is there, in order, whole") {
  Reports out;
  Switchable target;
  JsonlSink sink(stdout, out.counters, target.Into(out.Options("events.jsonl")));

  sink.Write(Stall(1));
  sink.Flush();
  CHECK(out.lines.empty());  // no failure, nothing to say
  CHECK(Get(out.counters.processed) == 1);

  target.fail = true;
  sink.Write(Stall(2));
  sink.Flush();
  sink.Write(Stall(3));
  CHECK_FALSE(sink.Sync());
  REQUIRE(out.lines.size() == 1);
  CHECK(out.lines[0] == std::string("events.jsonl: write failed: Input/output error; ") + kFailed);

  // Writing works again, a few bytes at a time: the waiting lines go first,
  // continued where the device stopped, then the new one.
  target.fail = false;
  target.chunk = 7;
  sink.Write(Stall(4));
  CHECK(sink.Sync());
  REQUIRE(out.lines.size() == 2);
  CHECK(out.lines[1] == "events.jsonl: recovered: writing succeeds again after 2 failed write(s)");
  CHECK(sink.write_errors() == 2);
  CHECK(Get(out.counters.processed) == 4);
  CHECK(Get(out.counters.dropped) == 0);
  CHECK(target.data == Line(Stall(1)) + Line(Stall(2)) + Line(Stall(3)) + Line(Stall(4)));

  // A new episode starts with a line at once again.
  target.fail = true;
  sink.Write(Stall(5));
  sink.Flush();
  REQUIRE(out.lines.size() == 3);
  CHECK(out.lines[2].rfind("events.jsonl: write failed:", 0) == 0);
}

TEST_CASE("failing for long: the oldest lines are dropped, counted, and Sync fails from then on") {
  Reports out;
  Switchable target;
  target.fail = true;
  JsonlSink sink(stdout, out.counters, target.Into(out.Options("events.jsonl")));
  Event big = Stall(7);
  big.AddDetailString("line", std::string(1 << 20, 'x'));
  const size_t events = FileSink::kMaxPendingBytes / (1 << 20) + 2;
  for (size_t i = 0; i < events; ++i) sink.Write(big);
  CHECK(Get(out.counters.dropped) > 0);
  CHECK(Get(out.counters.dropped) < events);
  target.fail = false;
  CHECK_FALSE(sink.Sync());  // written now, but some were lost: no checkpoint may imply them
  CHECK(Get(out.counters.processed) + Get(out.counters.dropped) == events);
}

TEST_CASE("TextSink counts and reports failed writes too") {
  DevFull full;
  Reports out;
  TextSink sink(full.f, out.counters, out.Options("stdout"));
  sink.Write(Stall(1));
  sink.Flush();
  CHECK(sink.write_errors() == 1);
  CHECK(Get(out.counters.errors) == 1);
  CHECK(Get(out.counters.received) == 1);
  REQUIRE(out.lines.size() == 1);
  CHECK(out.lines[0].rfind("stdout: write failed: No space left on device", 0) == 0);
}

TEST_CASE("without a log callback, failures go to stderr as quorumwatch: ...") {
  char path[] = "/tmp/qw-sink-stderr-XXXXXX";
  int tmp = ::mkstemp(path);
  REQUIRE(tmp >= 0);
  std::fflush(stderr);
  int saved = ::dup(STDERR_FILENO);
  REQUIRE(::dup2(tmp, STDERR_FILENO) >= 0);
  {
    std::FILE* f = std::fopen("/dev/full", "a");
    REQUIRE(f != nullptr);
    OutputOptions o;
    o.name = "/dev/full";
    JsonlSink sink(f, ComponentCounters::Detached(), o);
    sink.Write(Stall(1));
    sink.Flush();
    std::fclose(f);
  }
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string got(512, '\0');
  ssize_t n = ::pread(tmp, got.data(), got.size(), 0);
  ::close(tmp);
  ::unlink(path);
  REQUIRE(n > 0);
  got.resize(static_cast<size_t>(n));
  CHECK(got == std::string("quorumwatch: /dev/full: write failed: No space left on device; ") +
                   kFailed + "\n");
}

TEST_CASE("Sync: a regular file and a pipe both succeed, and the line is there") {
  char path[] = "/tmp/qw-sink-sync-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::FILE* f = ::fdopen(fd, "a");
  REQUIRE(f != nullptr);
  Reports out;
  {
    JsonlSink sink(f, ComponentCounters::Detached(), out.Options(path));
    sink.Write(Stall(1));
    CHECK(sink.Sync());
    CHECK(sink.write_errors() == 0);
    std::string got(4096, '\0');
    ssize_t n = ::pread(fd, got.data(), got.size(), 0);
    REQUIRE(n > 0);
    got.resize(static_cast<size_t>(n));
    CHECK(got == Line(Stall(1)));
  }
  std::fclose(f);
  ::unlink(path);

  // fdatasync on a pipe fails with EINVAL: nothing to sync, not an error.
  int p[2];
  REQUIRE(::pipe(p) == 0);
  std::FILE* w = ::fdopen(p[1], "w");
  REQUIRE(w != nullptr);
  {
    JsonlSink sink(w, ComponentCounters::Detached(), out.Options("pipe"));
    sink.Write(Stall(2));
    CHECK(sink.Sync());
    CHECK(sink.write_errors() == 0);
    std::string got(4096, '\0');
    ssize_t n = ::read(p[0], got.data(), got.size());
    REQUIRE(n > 0);
    got.resize(static_cast<size_t>(n));
    CHECK(got == Line(Stall(2)));
  }
  std::fclose(w);
  ::close(p[0]);
  CHECK(out.lines.empty());
}

TEST_CASE("sinks without a file of their own: Sync is a no-op success") {
  struct Nothing : EventSink {
    void Write(const Event&) override {}
  } s;
  CHECK(s.Sync());
}

TEST_CASE("summary: one node object a line, nulls for unknowns, seconds to the millisecond") {
  NodeSummary a;
  a.node = "val-\"a\"";
  a.namespace_ = "cosmos";
  a.chain = "cosmoshub";
  a.family = "cometbft";
  a.signer = true;
  a.first_height = 10;
  a.last_height = 20;
  a.commits = 11;
  a.missed_precommits = 0;
  a.longest_stall_seconds = 6.372;
  a.seconds_out_of_consensus = 2049.0;
  a.bans = 1;
  a.lines_read = 5;
  a.lines_matched = 4;
  a.lines_rejected = 1;
  a.status = "banned";
  NodeSummary b;
  b.node = "n\xC3\xB6" "de";
  b.chain = "cosmoshub";
  b.family = "cometbft";
  b.longest_stall_seconds = 0.1;
  b.seconds_out_of_consensus = 2070.8241;  // shown to the millisecond
  b.status = "in_consensus";
  CHECK(SummaryJson({a, b}) ==
        "[\n"
        "  {\"node\":\"val-\\\"a\\\"\",\"namespace\":\"cosmos\",\"chain\":\"cosmoshub\","
        "\"family\":\"cometbft\",\"signer\":true,\"first_height\":10,\"last_height\":20,"
        "\"commits\":11,\"missed_precommits\":0,\"longest_stall_seconds\":6.372,"
        "\"seconds_out_of_consensus\":2049,\"bans\":1,\"lines_read\":5,\"lines_matched\":4,"
        "\"lines_rejected\":1,\"status\":\"banned\"},\n"
        "  {\"node\":\"n\xC3\xB6" "de\",\"chain\":\"cosmoshub\",\"family\":\"cometbft\","
        "\"signer\":false,\"first_height\":null,\"last_height\":null,\"commits\":0,"
        "\"missed_precommits\":null,\"longest_stall_seconds\":0.1,"
        "\"seconds_out_of_consensus\":2070.824,\"bans\":0,\"lines_read\":0,\"lines_matched\":0,"
        "\"lines_rejected\":0,\"status\":\"in_consensus\"}\n"
        "]\n");
  CHECK(SummaryJson({}) == "[]\n");
}

}  // namespace
}  // namespace qw::sink
