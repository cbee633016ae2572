// StreamReader: one log stream (file) decoded into records: runtime format
// decoded, CRI/docker partial records joined, continuation lines joined per
// family, bad lines counted and skipped, and each record given a time.
// Records are produced a chunk at a time into the reader's own arena.
//
// Threading: used by one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "match/matcher.h"
#include "source/decoder.h"
#include "source/line_reader.h"

namespace qw::source {

struct StreamStats {
  uint64_t lines_read = 0;      // physical lines
  uint64_t lines_rejected = 0;  // binary, invalid UTF-8, undecodable for the format
  uint64_t lines_cut = 0;       // longer than max_line_bytes
  uint64_t records = 0;         // records produced (after joins)
};

struct StreamOptions {
  LogFormat format = LogFormat::kAuto;
  size_t buffer_bytes = 1 << 20;
  size_t max_line_bytes = 1 << 20;
  size_t chunk_bytes = 256 << 10;
  int32_t default_year = 1970;  // for stamps without a year
  int32_t tz_offset_seconds = 0;
  Nanos fallback_time = kNoTime;  // for a stream with no stamps (file mtime)
};

struct StreamRecord {
  uint32_t offset;  // into the chunk arena
  uint32_t length;
  Nanos time;       // resolved (never kNoTime once times are resolved)
};

class StreamReader {
 public:
  StreamReader(std::unique_ptr<ByteSource> src, StreamOptions opt);

  // Reads the next chunk of records. false when the stream has no more.
  bool NextChunk();
  const std::vector<StreamRecord>& records() const { return records_; }
  // The chunk's arena: each record followed by '\n', so a run of records
  // can be copied at once.
  std::string_view arena() const { return arena_; }
  std::string_view text(const StreamRecord& r) const {
    return std::string_view(arena_.data() + r.offset, r.length);
  }

  // Sets the family (message timestamps, continuation rules). Records of
  // the current chunk get their times resolved again.
  void SetMatcher(match::FamilyMatcher* m);

  LogFormat format() const { return format_; }
  const StreamStats& stats() const { return stats_; }
  const std::string& error() const { return reader_.error(); }

 private:
  bool AcceptLine(std::string_view line, bool cut);
  void AddRecord(std::string_view msg, Nanos t);
  void ResolveTimes();

  LineReader reader_;
  StreamOptions opt_;
  LogFormat format_;
  DockerDecoder docker_;
  match::FamilyMatcher* matcher_ = nullptr;

  std::string arena_;
  std::vector<StreamRecord> records_;
  std::vector<Nanos> runtime_times_;  // parallel to records_: runtime stamp or kNoTime
  std::string partial_;               // CRI P / docker partial pieces
  Nanos partial_time_ = kNoTime;
  bool in_partial_ = false;
  std::string held_;                  // first record of the next chunk
  Nanos held_time_ = kNoTime;
  bool have_held_ = false;
  bool done_ = false;
  Nanos last_time_ = kNoTime;
  match::FamilyMatcher::TimeHint time_hint_;  // where this stream's stamps were last
  StreamStats stats_;
};

}  // namespace qw::source
