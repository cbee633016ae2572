#include "source/stream_reader.h"

#include <cstring>

#include "common/json.h"

namespace qw::source {
namespace {

// Binary data and invalid UTF-8 are skipped (and counted), never matched.
bool Acceptable(std::string_view s) {
  if (std::memchr(s.data(), '\0', s.size()) != nullptr) return false;
  // ASCII fast path, eight bytes at a time.
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (w & 0x8080808080808080ULL) break;
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) return IsValidUtf8(s.substr(i));
  }
  return true;
}

}  // namespace

StreamReader::StreamReader(std::unique_ptr<ByteSource> src, StreamOptions opt)
    : reader_(std::move(src), opt.buffer_bytes, opt.max_line_bytes),
      opt_(opt),
      format_(opt.format) {
  arena_.reserve(opt_.chunk_bytes + 4096);
}

void StreamReader::SetMatcher(match::FamilyMatcher* m) {
  matcher_ = m;
  if (matcher_ != nullptr && matcher_->HasContinuation() && !records_.empty()) {
    // The chunk was read before the family was known: join its continuation
    // lines now.
    std::string old_arena = std::move(arena_);
    std::vector<StreamRecord> old_records = std::move(records_);
    std::vector<Nanos> old_times = std::move(runtime_times_);
    arena_.clear();
    records_.clear();
    runtime_times_.clear();
    arena_.reserve(old_arena.size() + 64);
    const uint64_t counted = stats_.records;
    for (size_t i = 0; i < old_records.size(); ++i) {
      AddRecord(std::string_view(old_arena).substr(old_records[i].offset, old_records[i].length),
                old_times[i]);
    }
    stats_.records = counted - old_records.size() + records_.size();
  }
  ResolveTimes();
}

void StreamReader::AddRecord(std::string_view msg, Nanos t) {
  bool continuation = matcher_ != nullptr && matcher_->HasContinuation() &&
                      matcher_->IsContinuation(msg);
  if (continuation && !records_.empty()) {
    // The previous record's separator becomes the joining newline.
    StreamRecord& prev = records_.back();
    size_t room = opt_.max_line_bytes > prev.length ? opt_.max_line_bytes - prev.length : 0;
    if (room > 0) {
      size_t add = std::min(room - 1, msg.size());
      arena_.append(msg.substr(0, add));
      arena_.push_back('\n');
      prev.length += static_cast<uint32_t>(add + 1);
    }
    return;
  }
  records_.push_back(StreamRecord{static_cast<uint32_t>(arena_.size()),
                                  static_cast<uint32_t>(msg.size()), kNoTime});
  runtime_times_.push_back(t);
  arena_.append(msg);
  arena_.push_back('\n');
  stats_.records++;
}

// Decodes one physical line; returns true when a complete record was added.
bool StreamReader::AcceptLine(std::string_view line, bool cut) {
  stats_.lines_read++;
  if (cut) stats_.lines_cut++;
  if (format_ == LogFormat::kAuto) {
    if (line.empty()) return false;
    format_ = SniffFormat(line);
  }
  Decoded d;
  switch (format_) {
    case LogFormat::kCri:
      if (!DecodeCri(line, &d)) {
        stats_.lines_rejected++;
        return false;
      }
      break;
    case LogFormat::kDocker:
      if (!docker_.Decode(line, &d)) {
        stats_.lines_rejected++;
        return false;
      }
      break;
    default:
      d.message = line;
      d.partial = false;
      break;
  }
  if (!Acceptable(d.message)) {
    stats_.lines_rejected++;
    return false;
  }
  if (d.partial || in_partial_) {
    if (!in_partial_) {
      partial_.clear();
      partial_time_ = d.runtime_time;
      in_partial_ = true;
    }
    size_t room =
        opt_.max_line_bytes > partial_.size() ? opt_.max_line_bytes - partial_.size() : 0;
    if (d.message.size() > room) stats_.lines_cut++;
    partial_.append(d.message.substr(0, room));
    if (d.partial) return false;
    in_partial_ = false;
    AddRecord(partial_, partial_time_);
    return true;
  }
  if (d.message.empty()) return false;
  AddRecord(d.message, d.runtime_time);
  return true;
}

bool StreamReader::NextChunk() {
  arena_.clear();
  records_.clear();
  runtime_times_.clear();
  if (have_held_) {
    AddRecord(held_, held_time_);
    have_held_ = false;
  }
  while (!done_) {
    std::string_view line;
    bool cut = false;
    if (!reader_.Next(&line, &cut)) {
      done_ = true;
      break;
    }
    if (arena_.size() < opt_.chunk_bytes) {
      AcceptLine(line, cut);
      continue;
    }
    // The chunk is full: finish it at the next record that is not a
    // continuation of the previous one, which starts the next chunk.
    size_t before = records_.size();
    AcceptLine(line, cut);
    if (records_.size() > before) {
      held_.assign(text(records_.back()));
      held_time_ = runtime_times_.back();
      have_held_ = true;
      arena_.resize(records_.back().offset);
      records_.pop_back();
      runtime_times_.pop_back();
      stats_.records--;
      break;
    }
  }
  if (done_ && in_partial_) {
    // The stream ended inside a partial record: keep what there is.
    in_partial_ = false;
    AddRecord(partial_, partial_time_);
  }
  ResolveTimes();
  return !records_.empty();
}

void StreamReader::ResolveTimes() {
  // A record's time: the runtime's stamp, else its own, else the last good
  // time of the stream; records before the first stamp take that stamp.
  size_t first_untimed = SIZE_MAX;
  for (size_t i = 0; i < records_.size(); ++i) {
    Nanos t = runtime_times_[i];
    if (t == kNoTime && matcher_ != nullptr) {
      t = matcher_->MessageTime(text(records_[i]), opt_.default_year, opt_.tz_offset_seconds,
                                &time_hint_);
    }
    if (t == kNoTime) {
      t = last_time_;
    } else {
      last_time_ = t;
    }
    records_[i].time = t;
    if (t == kNoTime && first_untimed == SIZE_MAX) first_untimed = i;
    if (t != kNoTime && first_untimed != SIZE_MAX) {
      for (size_t k = first_untimed; k < i; ++k) records_[k].time = t;
      first_untimed = SIZE_MAX;
    }
  }
  if (first_untimed != SIZE_MAX) {
    for (size_t k = first_untimed; k < records_.size(); ++k) {
      records_[k].time = opt_.fallback_time != kNoTime ? opt_.fallback_time : 0;
    }
  }
}

}  // namespace qw::source
