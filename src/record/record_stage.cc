// About 600 lines on purpose: the record stage is one per-stream state
// machine (framing, runtime pieces, family hold-back, continuation joins,
// times, live waits) whose steps hand records to each other.
#include "record/record_stage.h"

#include <algorithm>
#include <cstring>

namespace qw::record {
namespace {

// Detection is tried when this many records of a stream are known; a
// decision before the last try needs at least one rule hit (a shared stamp
// layout alone does not decide so early).
constexpr size_t kDetectAt[] = {1, 5, 20, 50};

// A contested stream (decided without clear evidence) is settled, and no
// longer checked against every family, once its family leads every other
// by this much evidence; an unknown one is placed once a family has this
// much evidence and leads.
constexpr int kSettleLead = 20;
constexpr int kUnknownPlace = 3;

// A collector prefix (record/collector.h) is looked for on a stream's first
// records; two of the same kind fix it for the stream, none leaves the
// stream's lines as they are.
constexpr int kCollectorTries = 8;

}  // namespace

size_t Output::pending_bytes() const {
  if (head >= entries.size()) return 0;
  for (size_t i = head; i < entries.size(); ++i) {
    if (entries[i].kind == EntryKind::kRecord) return arena.size() - entries[i].index;
  }
  return 0;
}

void Output::Compact() {
  if (head == 0) return;
  if (head == entries.size()) {
    arena.clear();
    entries.clear();
    infos.clear();
    head = ready = 0;
    return;
  }
  // Keep the untaken tail; texts move to the arena's front.
  size_t first_text = arena.size();
  for (size_t i = head; i < entries.size(); ++i) {
    if (entries[i].kind == EntryKind::kRecord) {
      first_text = entries[i].index;
      break;
    }
  }
  if (first_text < arena.size() / 2 && head < entries.size() / 2) return;  // not worth it yet
  arena.erase(0, first_text);
  entries.erase(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(head));
  for (auto& e : entries) {
    if (e.kind == EntryKind::kRecord) e.index -= static_cast<uint32_t>(first_text);
  }
  ready -= head;
  head = 0;
}

struct RecordStage::Stream {
  uint32_t id = 0;
  Origin origin;
  Placement base;   // what the stream's name and rules say (family maybe open)
  Placement place;
  Output out;
  LineCounts counts;      // every line so far
  LineCounts uncounted;   // lines no entry counts yet (lines_cut unused)
  LogFormat format = LogFormat::kAuto;

  // Framing: bytes after the last newline (at most max_line_bytes of them).
  uint64_t offset = 0;  // position of the next byte fed
  std::string carry;
  uint64_t carry_begin = 0;
  bool carry_cut = false;  // the line outgrew max_line_bytes: the rest is skipped

  // Runtime pieces of one record (CRI P ... F, docker lines without \n).
  std::string partial;
  bool in_partial = false;
  Nanos partial_time = kNoTime;
  uint64_t partial_begin = 0;

  // Family undecided: complete records held back as they were read.
  struct Held {
    uint32_t offset, length;
    Nanos runtime_time, outer_time;
    uint64_t begin, end;
    LineCounts counted;
  };
  CollectorKind collector = CollectorKind::kNone;  // fixed once seen twice
  CollectorKind collector_seen = CollectorKind::kNone;
  int collector_hits = 0, collector_tries = 0;
  Nanos outer_time = kNoTime;  // the last output record's collector stamp

  bool decided = false;
  bool released_undecided = false;  // held records went on unmatched (live)
  std::string held_arena;
  std::vector<Held> held;
  std::vector<std::string> samples;  // the first records, for detection
  size_t sample_bytes = 0;
  size_t next_try = 0;  // index into kDetectAt
  match::FamilyMatcher* matcher = nullptr;
  // Decided without clear evidence (a tie, timestamps only, or nothing):
  // every record is checked against every family, and the family is
  // decided again when the records disagree (docs/PIPELINE.md).
  bool contested = false;
  match::Registry::Tally tally;
  size_t observed = 0;

  // Output entries [ready, end): the last may take continuation lines
  // (pending); the others wait for the stream's first stamp.
  bool pending = false;
  std::vector<uint64_t> provisional_begin;  // per provisional entry, its first line's position
  size_t untimed_bytes = 0;

  Nanos last_time = kNoTime;
  bool fallback = false;  // last_time is the fallback, not a stamp's
  Nanos mtime = kNoTime;
  int32_t year = 1970;  // of mtime: completes year-less stamps
  match::FamilyMatcher::TimeHint hint;

  bool at_end = false;   // live: every byte there is was fed
  Nanos waiting_since = kNoTime;     // at_end with a record held back
  Nanos incomplete_since = kNoTime;  // at_end with an incomplete line
  bool closed = false;
};

RecordStage::RecordStage(match::Registry& registry, const Routing& routing, StageOptions opt,
                         std::function<void(const std::string&)> log)
    : registry_(registry), routing_(routing), opt_(opt), log_(std::move(log)),
      matchers_(registry.size()) {}

RecordStage::~RecordStage() = default;

RecordStage::Stream& RecordStage::S(uint32_t id) { return *streams_.at(id); }

match::FamilyMatcher* RecordStage::MatcherFor(int family) {
  if (family < 0 || static_cast<size_t>(family) >= matchers_.size()) return nullptr;
  auto& m = matchers_[static_cast<size_t>(family)];
  if (!m) {
    auto made = match::FamilyMatcher::Create(registry_.file(static_cast<size_t>(family)));
    if (!made) {
      log_(made.error().message);
      return nullptr;
    }
    m = std::move(*made);
  }
  return m.get();
}

void RecordStage::Open(uint32_t id, Origin origin) {
  auto owned = std::make_unique<Stream>();
  Stream& s = *owned;
  s.id = id;
  s.format = origin.format;
  s.offset = origin.start_offset;
  s.carry_begin = s.offset;
  s.last_time = origin.saved_last_time;
  s.origin = std::move(origin);
  s.base = Place(routing_, registry_, s.origin.name);
  s.place = s.base;
  streams_[id] = std::move(owned);

  PushOpen(s);
  s.out.ready = s.out.entries.size();

  if (s.place.family < 0 && s.place.chain.empty()) {
    // When the rules leave the family open: a checkpoint's decision
    // stands, so a restart does not detect again from the middle of the
    // stream; and a new file of a stream that is open (rotation, a
    // container restart) is the same software as the one before it, and
    // is placed at once, so its node never looks gone between the two.
    if (!s.origin.saved_family.empty()) s.place.family = registry_.Find(s.origin.saved_family);
    uint32_t from = UINT32_MAX;  // the oldest such stream decides
    for (const auto& [other_id, other] : streams_) {
      if (s.place.family >= 0 && from == UINT32_MAX) break;
      if (other_id == id || other_id > from || !other->decided || other->place.family < 0) continue;
      const StreamName& a = other->place.name;
      const StreamName& b = s.place.name;
      if (a.pod == b.pod && a.namespace_ == b.namespace_ && a.container == b.container) {
        s.place.family = other->place.family;
        from = other_id;
      }
    }
  }
  if (s.place.family >= 0) Decide(s, s.place.family);
}

void RecordStage::Decide(Stream& s, int family) {
  CompletePlacement(routing_, registry_, family, &s.place);
  s.decided = true;
  s.matcher = MatcherFor(family);
  s.samples.clear();
  s.samples.shrink_to_fit();
  s.sample_bytes = 0;

  // The start goes before any provisional record (they are this stream's).
  if (!s.origin.gate) {
    Entry start{EntryKind::kStart, -1, static_cast<uint32_t>(s.out.infos.size()), 0, 0, 0, kNoTime, 0};
    s.out.infos.push_back(Placed(s));
    s.out.entries.insert(s.out.entries.begin() + static_cast<std::ptrdiff_t>(s.out.ready), start);
    s.out.ready++;
  }

  // Records held while undecided now go the usual way.
  auto held = std::move(s.held);
  std::string arena = std::move(s.held_arena);
  s.held.clear();
  s.held_arena.clear();
  for (const auto& h : held) {
    Complete(s, std::string_view(arena).substr(h.offset, h.length), h.runtime_time, h.outer_time, h.begin,
             h.end, h.counted);
  }
}

// A kOpen entry: the stream as it is read now (path, name, identity, where
// its bytes begin).
void RecordStage::PushOpen(Stream& s) {
  StreamInfo info;
  info.id = s.id;
  info.path = s.origin.path;
  info.name = s.place.name;
  info.identity = s.origin.identity;
  info.start_offset = s.origin.start_offset;
  s.out.entries.push_back(Entry{EntryKind::kOpen, -1, static_cast<uint32_t>(s.out.infos.size()),
                                0, 0, 0, kNoTime, 0});
  s.out.infos.push_back(std::move(info));
}

// The stream as placed (its kStart entry's info).
StreamInfo RecordStage::Placed(const Stream& s) const {
  StreamInfo info;
  info.id = s.id;
  info.path = s.origin.path;
  info.name = s.place.name;
  info.identity = s.origin.identity;
  info.start_offset = s.origin.start_offset;
  info.chain = s.place.chain;
  info.family = s.place.family;
  info.signer = s.place.signer;
  return info;
}

std::string RecordStage::chain(uint32_t id) const {
  const Stream& s = *streams_.at(id);
  return s.decided ? s.place.chain : std::string();
}

std::string RecordStage::ChainKey(const StreamName& name) const {
  Placement p = Place(routing_, registry_, name);
  return !p.chain.empty() ? p.chain : p.name.namespace_;
}

std::string RecordStage::Who(const Stream& s) const {
  return s.origin.path.empty() ? s.place.name.pod : s.origin.path;
}

void RecordStage::TryDecide(Stream& s, bool final) {
  if (s.decided) return;
  match::Registry::Tally tally;
  for (const auto& sample : s.samples) registry_.Observe(sample, &tally);
  auto d = registry_.Rank(tally, s.samples.size());
  if (d.clear) {
    Decide(s, d.family);
    return;
  }
  if (!final) return;
  // No clear winner: the stream is placed as the best there is (or as
  // unknown), and its records are checked against every family from now
  // on, so no rule's line goes unmatched for want of a decision.
  const std::string settle = " Name its chain (--chain, or a stream rule) to settle it.";
  if (d.family < 0) {
    log_(Who(s) + ": family unknown (" + d.reason +
         "); each of its lines is checked against every family's rules until one matches." + settle);
  } else if (d.candidates.size() > 1) {
    log_(Who(s) + ": family " + d.reason + "; matched as " +
         registry_.file(static_cast<size_t>(d.family)).family +
         ", and each line checked against the others until its lines tell them apart." + settle);
  } else {
    log_(Who(s) + ": family " + registry_.file(static_cast<size_t>(d.family)).family +
         " taken on timestamps only (" + d.reason +
         "); each line is checked against every family until one is clear." + settle);
  }
  // The held records (the samples) are counted again as they go out.
  s.contested = true;
  s.tally.assign(registry_.size(), {});
  s.observed = 0;
  Decide(s, d.family);
}

// A contested stream's next record: its evidence is added up; a record
// that the current family's rules do not match but another family's do
// moves the stream to that family when its evidence is at least as strong
// (an unknown stream moves at once), so the line is matched.
void RecordStage::Reconsider(Stream& s, std::string_view msg) {
  match::Registry::Tally one;
  registry_.Observe(msg, &one, /*stamps=*/false);
  s.observed++;
  for (size_t i = 0; i < one.size(); ++i) {
    s.tally[i].rules += one[i].rules;
    s.tally[i].fingerprints += one[i].fingerprints;
  }
  const int cur = s.place.family;
  auto key = [&](int f) {
    const auto& e = s.tally[static_cast<size_t>(f)];
    return std::make_tuple(e.weight(), e.fingerprints, e.stamps);
  };
  int target = -1;
  if (cur < 0 || one[static_cast<size_t>(cur)].rules == 0) {
    for (size_t i = 0; i < one.size(); ++i) {
      const int f = static_cast<int>(i);
      if (one[i].rules == 0 || f == cur) continue;
      if (cur >= 0 && key(f) < key(cur)) continue;
      if (target < 0 || key(f) > key(target)) target = f;
    }
  }
  if (target < 0) {
    auto d = registry_.Rank(s.tally, s.observed);
    if (d.clear && d.family != cur) {
      const int lead = s.tally[static_cast<size_t>(d.family)].weight() -
                       (cur >= 0 ? s.tally[static_cast<size_t>(cur)].weight() : 0);
      if (lead >= (cur < 0 ? kUnknownPlace : kSettleLead / 2)) target = d.family;
    }
  }
  if (target >= 0) {
    const auto& e = s.tally[static_cast<size_t>(target)];
    Redecide(s, target, std::to_string(e.rules) + " rule hits, " + std::to_string(e.fingerprints) +
                            " fingerprints in " + std::to_string(s.observed) + " records");
  }
  if (s.place.family >= 0) {
    const int mine = s.tally[static_cast<size_t>(s.place.family)].weight();
    bool settled = true;
    for (size_t i = 0; i < s.tally.size(); ++i) {
      if (static_cast<int>(i) != s.place.family && s.tally[i].weight() + kSettleLead > mine) {
        settled = false;
      }
    }
    if (settled) {
      s.contested = false;
      s.tally.clear();
      s.tally.shrink_to_fit();
    }
  }
}

void RecordStage::Redecide(Stream& s, int family, const std::string& why) {
  const int old = s.place.family;
  // The record before goes on as it is (its continuation lines, if any,
  // would have been the old family's).
  if (s.pending) {
    s.pending = false;
    Commit(s);
  }
  log_(Who(s) + ": family decided again: " +
       (old >= 0 ? registry_.file(static_cast<size_t>(old)).family : std::string("unknown")) +
       " -> " + registry_.file(static_cast<size_t>(family)).family + " (" + why + ")");
  s.place = s.base;
  CompletePlacement(routing_, registry_, family, &s.place);
  s.matcher = MatcherFor(family);
  s.hint = {};
  s.out.entries.push_back(
      Entry{EntryKind::kStart, -1, static_cast<uint32_t>(s.out.infos.size()), 0, 0, 0, kNoTime, 0});
  s.out.infos.push_back(Placed(s));
  if (s.out.ready + 1 == s.out.entries.size()) s.out.ready++;
}

void RecordStage::Feed(uint32_t id, std::string_view bytes, Nanos mtime) {
  Stream& s = S(id);
  if (s.closed || bytes.empty()) return;
  s.at_end = false;
  s.waiting_since = s.incomplete_since = kNoTime;
  if (mtime != s.mtime) {
    s.mtime = mtime;
    s.year = YearOf(mtime);
  }
  const size_t max_line = s.origin.max_line_bytes;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const size_t take = static_cast<size_t>((nl != nullptr ? nl : end) - p);
    if (nl != nullptr && s.carry.empty() && !s.carry_cut) {
      // The whole line is here: no copy.
      const uint64_t begin = s.offset;
      s.offset += take + 1;
      const bool cut = take > max_line;
      Line(s, std::string_view(p, cut ? max_line : take), cut, begin, s.offset);
      p = nl + 1;
      continue;
    }
    if (s.carry.empty() && !s.carry_cut) s.carry_begin = s.offset;
    if (!s.carry_cut) {
      const size_t room = max_line > s.carry.size() ? max_line - s.carry.size() : 0;
      if (take > room) {
        s.carry.append(p, room);
        s.carry_cut = true;
      } else {
        s.carry.append(p, take);
      }
    }
    s.offset += take;
    p += take;
    if (nl != nullptr) {
      ++p;
      ++s.offset;
      std::string line = std::move(s.carry);
      s.carry.clear();
      const bool cut = s.carry_cut;
      s.carry_cut = false;
      Line(s, line, cut, s.carry_begin, s.offset);
    }
  }
}

LineCounts RecordStage::TakeLines(Stream& s) {
  LineCounts c = s.uncounted;
  s.uncounted = LineCounts{};
  return c;
}

void RecordStage::Line(Stream& s, std::string_view line, bool cut, uint64_t begin, uint64_t end) {
  s.counts.lines_read++;
  s.uncounted.lines_read++;
  stats_.lines_read++;
  if (cut) {
    s.counts.lines_cut++;
    stats_.lines_cut++;
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (s.format == LogFormat::kAuto) {
    if (line.empty()) return;
    s.format = SniffFormat(line);
  }
  Decoded d;
  bool ok = true;
  switch (s.format) {
    case LogFormat::kCri:
      ok = DecodeCri(line, &d);
      break;
    case LogFormat::kDocker:
      ok = docker_.Decode(line, &d);
      break;
    default:
      d.message = line;
      d.partial = false;
      break;
  }
  if (!ok || !AcceptableText(d.message)) {
    s.counts.lines_rejected++;
    s.uncounted.lines_rejected++;
    stats_.lines_rejected++;
    return;
  }
  if (d.partial || s.in_partial) {
    if (!s.in_partial) {
      s.partial.clear();
      s.partial_time = d.runtime_time;
      s.partial_begin = begin;
      s.in_partial = true;
    }
    const size_t max_line = s.origin.max_line_bytes;
    const size_t room = max_line > s.partial.size() ? max_line - s.partial.size() : 0;
    if (d.message.size() > room) {
      s.counts.lines_cut++;
      stats_.lines_cut++;
    }
    s.partial.append(d.message.substr(0, room));
    if (d.partial) return;
    s.in_partial = false;
    Nanos outer = kNoTime;
    const std::string_view msg = Unwrap(s, s.partial, &outer);
    Complete(s, msg, s.partial_time, outer, s.partial_begin, end, TakeLines(s));
    return;
  }
  if (d.message.empty()) return;
  Nanos outer = kNoTime;
  const std::string_view msg = Unwrap(s, d.message, &outer);
  Complete(s, msg, d.runtime_time, outer, begin, end, TakeLines(s));
}

std::string_view RecordStage::Unwrap(Stream& s, std::string_view msg, Nanos* outer) {
  const bool looking = s.collector == CollectorKind::kNone && s.collector_tries < kCollectorTries;
  if (s.collector == CollectorKind::kNone && !looking) {
    *outer = kNoTime;
    return msg;
  }
  const Unwrapped u = record::Unwrap(msg, s.collector, looking, s.year,
                                     s.base.tz_offset_seconds.value_or(0));
  if (looking) {
    ++s.collector_tries;
    if (u.kind != CollectorKind::kNone) {
      if (u.kind == s.collector_seen) {
        if (++s.collector_hits >= 2) s.collector = u.kind;
      } else {
        s.collector_seen = u.kind;
        s.collector_hits = 1;
      }
    }
  }
  *outer = u.time;
  return u.message;
}

void RecordStage::Complete(Stream& s, std::string_view msg, Nanos runtime_time, Nanos outer_time, uint64_t begin,
                           uint64_t end, LineCounts counted) {
  if (!s.decided) {
    if (s.samples.size() < opt_.hold_records && s.sample_bytes < opt_.hold_bytes) {
      s.samples.emplace_back(msg);
      s.sample_bytes += msg.size();
    }
    Stream::Held h{static_cast<uint32_t>(s.held_arena.size()), static_cast<uint32_t>(msg.size()),
                   runtime_time, outer_time, begin, end, counted};
    s.held_arena.append(msg);
    s.held.push_back(h);
    const size_t n = s.samples.size();
    if (n >= opt_.hold_records || s.sample_bytes >= opt_.hold_bytes ||
        s.held_arena.size() >= opt_.hold_bytes) {
      TryDecide(s, true);
    } else if (s.next_try < std::size(kDetectAt) && n >= kDetectAt[s.next_try]) {
      while (s.next_try < std::size(kDetectAt) && n >= kDetectAt[s.next_try]) ++s.next_try;
      TryDecide(s, false);
    }
    return;
  }
  Output& out = s.out;
  const size_t max_line = s.origin.max_line_bytes;
  // An indented line with its own stamp starts a record (nodeos and
  // terminal copies indent whole records); a family whose continuation
  // lines repeat the stamp (Octez) does not indent them before it.
  if (s.pending && s.matcher != nullptr && s.matcher->IsContinuation(msg) &&
      !(!msg.empty() && (msg[0] == ' ' || msg[0] == '\t') && s.matcher->MessageTime(msg, s.year, 0) != kNoTime)) {
    // Joins the record before it: the separator becomes the joining newline.
    Entry& prev = out.entries.back();
    const size_t room = max_line > prev.length ? max_line - prev.length : 0;
    if (room > 0) {
      const size_t add = std::min(room - 1, msg.size());
      out.arena.append(msg.substr(0, add));
      out.arena.push_back('\n');
      prev.length += static_cast<uint32_t>(add + 1);
    }
    prev.after = end;
    prev.lines += static_cast<uint32_t>(counted.lines_read);
    prev.rejected += static_cast<uint32_t>(counted.lines_rejected);
    return;
  }
  if (s.contested) Reconsider(s, msg);
  if (s.pending) {
    s.pending = false;
    Commit(s);
  }
  out.entries.push_back(Entry{EntryKind::kRecord, static_cast<int16_t>(s.place.family),
                              static_cast<uint32_t>(out.arena.size()),
                              static_cast<uint32_t>(msg.size()),
                              static_cast<uint32_t>(counted.lines_read),
                              static_cast<uint32_t>(counted.lines_rejected), runtime_time, end});
  out.arena.append(msg);
  out.arena.push_back('\n');
  s.provisional_begin.push_back(begin);
  s.outer_time = outer_time;
  stats_.records++;
  if (s.matcher != nullptr && s.matcher->HasContinuation()) {
    s.pending = true;  // continuation lines may follow
  } else {
    Commit(s);
  }
}

// The last output entry is complete: give it a time. Records before the
// stream's first stamp wait for it (bounded), then all go on.
void RecordStage::Commit(Stream& s) {
  Output& out = s.out;
  Entry& e = out.entries.back();
  Nanos t = e.time;  // the runtime's stamp, if any
  if (t == kNoTime && s.matcher != nullptr) {
    t = s.matcher->MessageTime(out.text(e), s.year, s.place.tz_offset_seconds.value_or(0), &s.hint);
  }
  if (t == kNoTime) t = s.outer_time;  // the collector's stamp stands in
  bool fallback = false;
  if (t == kNoTime) {
    t = s.last_time;
    fallback = s.fallback;
  } else {
    s.fallback = false;
  }
  if (t != kNoTime) {
    s.last_time = t;
    for (size_t i = out.ready; i < out.entries.size(); ++i) {
      if (out.entries[i].kind != EntryKind::kRecord) continue;
      out.entries[i].time = t;
      if (fallback) out.entries[i].flags |= kEntryFallbackTime;
    }
    MakeReady(s, out.entries.size());
    return;
  }
  e.time = kNoTime;
  s.untimed_bytes += e.length;
  if (out.entries.size() - out.ready >= opt_.hold_records || s.untimed_bytes >= opt_.hold_bytes) {
    Fallback(s);
  }
}

// Stamp-less records that cannot wait any longer take the stream's
// fallback time (its file's modification time), which then stands as the
// stream's last good time.
void RecordStage::Fallback(Stream& s) {
  Output& out = s.out;
  const size_t upto = out.entries.size() - (s.pending ? 1 : 0);
  if (upto <= out.ready) return;
  const Nanos t = s.mtime != kNoTime ? s.mtime : 0;
  for (size_t i = out.ready; i < upto; ++i) {
    if (out.entries[i].kind == EntryKind::kRecord) {
      out.entries[i].time = t;
      out.entries[i].flags |= kEntryFallbackTime;
    }
  }
  s.last_time = t;
  s.fallback = true;
  MakeReady(s, upto);
}

void RecordStage::MakeReady(Stream& s, size_t upto) {
  Output& out = s.out;
  size_t records = 0;
  for (size_t i = out.ready; i < upto; ++i) {
    if (out.entries[i].kind == EntryKind::kRecord) ++records;
  }
  s.provisional_begin.erase(s.provisional_begin.begin(),
                            s.provisional_begin.begin() + static_cast<std::ptrdiff_t>(records));
  out.ready = upto;
  if (s.provisional_begin.empty()) s.untimed_bytes = 0;
}

// Everything held goes on as it is: the pending record, records held while
// the family was undecided (`final`: decided with what there is, else they
// go on unmatched and detection goes on), stamp-less records.
void RecordStage::Release(Stream& s, bool final) {
  if (!s.decided && !s.held.empty()) {
    TryDecide(s, final);
    if (!s.decided) {
      // A record some family's rules match never goes on unmatched: the
      // stream is decided now with what there is (contested).
      for (const auto& sample : s.samples) {
        if (!registry_.RuleHits(sample).empty()) {
          TryDecide(s, true);
          break;
        }
      }
    }
    if (!s.decided) {
      // Live: the stream stays undecided; its records so far go on unmatched.
      s.released_undecided = true;
      auto held = std::move(s.held);
      std::string arena = std::move(s.held_arena);
      s.held.clear();
      s.held_arena.clear();
      Output& out = s.out;
      for (const auto& h : held) {
        out.entries.push_back(Entry{EntryKind::kRecord, -1, static_cast<uint32_t>(out.arena.size()),
                                    h.length, static_cast<uint32_t>(h.counted.lines_read),
                                    static_cast<uint32_t>(h.counted.lines_rejected),
                                    h.runtime_time, h.end});
        out.arena.append(std::string_view(arena).substr(h.offset, h.length));
        out.arena.push_back('\n');
        s.provisional_begin.push_back(h.begin);
        s.outer_time = h.outer_time;
        stats_.records++;
        Commit(s);
      }
    }
  } else if (!s.decided && final) {
    TryDecide(s, true);
  }
  if (s.pending) {
    s.pending = false;
    Commit(s);
  }
  Fallback(s);
}

void RecordStage::FlushIncomplete(Stream& s) {
  if (!s.carry.empty() || s.carry_cut) {
    std::string line = std::move(s.carry);
    s.carry.clear();
    const bool cut = s.carry_cut;
    s.carry_cut = false;
    Line(s, line, cut, s.carry_begin, s.offset);
  }
  if (s.in_partial) {
    // The stream ended inside a partial record: keep what there is.
    s.in_partial = false;
    Nanos outer = kNoTime;
    const std::string_view msg = Unwrap(s, s.partial, &outer);
    Complete(s, msg, s.partial_time, outer, s.partial_begin, s.offset, TakeLines(s));
  }
}

void RecordStage::Truncate(uint32_t id, const FileIdentity& identity) {
  Stream& s = S(id);
  if (s.closed) return;
  // What was read of the old content goes on now: positions restart at 0.
  s.carry.clear();
  s.carry_cut = false;
  s.in_partial = false;
  Release(s, false);
  s.offset = 0;
  s.carry_begin = 0;
  s.origin.identity = identity;
  s.origin.start_offset = 0;
  PushOpen(s);
  if (s.out.ready + 1 == s.out.entries.size()) s.out.ready++;
}

void RecordStage::AtEnd(uint32_t id, Nanos now) {
  Stream& s = S(id);
  if (s.closed) return;
  s.at_end = true;
  if (Waiting(s) && opt_.hold_wait <= 0) {
    Release(s, false);
  } else if (Waiting(s) && s.waiting_since == kNoTime) {
    s.waiting_since = now;
  }
  if ((!s.carry.empty() || s.carry_cut || s.in_partial) && s.incomplete_since == kNoTime) {
    s.incomplete_since = now;
  }
  if (s.waiting_since != kNoTime || s.incomplete_since != kNoTime) timed_.insert(id);
}

void RecordStage::Behind(uint32_t id) {
  Stream& s = S(id);
  if (s.closed) return;
  s.at_end = false;
  s.waiting_since = s.incomplete_since = kNoTime;
}

bool RecordStage::Waiting(const Stream& s) const {
  return !s.held.empty() || s.out.ready < s.out.entries.size();
}

Nanos RecordStage::Expire(Nanos now) {
  Nanos next = kNoTime;
  auto sooner = [&next](Nanos t) {
    if (t != kNoTime && (next == kNoTime || t < next)) next = t;
  };
  // Only the streams with a wait running (AtEnd started it; a Feed since
  // may have ended it).
  for (auto it = timed_.begin(); it != timed_.end();) {
    auto found = streams_.find(*it);
    if (found == streams_.end() || found->second->closed || !found->second->at_end ||
        (found->second->waiting_since == kNoTime && found->second->incomplete_since == kNoTime)) {
      it = timed_.erase(it);
      continue;
    }
    ++it;
    Stream& s = *found->second;
    if (s.incomplete_since != kNoTime) {
      if (now - s.incomplete_since >= opt_.incomplete_wait) {
        s.incomplete_since = kNoTime;
        FlushIncomplete(s);
        if (Waiting(s) && s.waiting_since == kNoTime) s.waiting_since = now;
      } else {
        sooner(s.incomplete_since + opt_.incomplete_wait);
      }
    }
    if (s.waiting_since != kNoTime) {
      if (now - s.waiting_since >= opt_.hold_wait) {
        s.waiting_since = kNoTime;
        Release(s, false);
      } else {
        sooner(s.waiting_since + opt_.hold_wait);
      }
    }
  }
  return next;
}

void RecordStage::Close(uint32_t id, bool gone) {
  Stream& s = S(id);
  if (s.closed) return;
  FlushIncomplete(s);
  Release(s, true);
  s.closed = true;
  const LineCounts rest = TakeLines(s);
  s.out.entries.push_back(Entry{EntryKind::kEnd, -1, 0, 0, static_cast<uint32_t>(rest.lines_read),
                                static_cast<uint32_t>(rest.lines_rejected), kNoTime, s.offset,
                                static_cast<uint8_t>(gone ? kEntryGone : 0)});
  s.out.ready = s.out.entries.size();
}

void RecordStage::Abandon(uint32_t id) {
  Stream& s = S(id);
  if (s.closed) return;
  s.out.entries.resize(s.out.head);
  s.out.ready = s.out.head;
  s.provisional_begin.clear();
  s.untimed_bytes = 0;
  s.held.clear();
  s.held_arena.clear();
  s.carry.clear();
  s.carry_cut = false;
  s.in_partial = false;
  s.partial.clear();
  // The lines dropped are counted by whoever reads them again.
  s.uncounted = LineCounts{};
  s.closed = true;
  s.out.entries.push_back(
      Entry{EntryKind::kEnd, -1, 0, 0, 0, 0, kNoTime, s.offset, static_cast<uint8_t>(kEntryGone)});
  s.out.ready = s.out.entries.size();
}

Output* RecordStage::output(uint32_t id) { return &S(id).out; }

Output* RecordStage::output(Stream& s) { return &s.out; }

bool RecordStage::Ready(uint32_t id) const { return Ready(*streams_.at(id)); }

bool RecordStage::Ready(const Stream& s) const {
  if (s.out.has_ready() || s.closed) return true;
  // Live: read to its end, and nothing that could still go out before
  // later records of other streams (an incomplete line does not hold the
  // others back: its time is unknown until it ends).
  return s.at_end && !Waiting(s);
}

void RecordStage::Forget(uint32_t id) {
  streams_.erase(id);
  timed_.erase(id);
}

std::vector<uint32_t> RecordStage::ids() const {
  std::vector<uint32_t> out;
  out.reserve(streams_.size());
  for (const auto& [id, s] : streams_) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

bool RecordStage::ended(uint32_t id) const { return streams_.at(id)->closed; }

uint64_t RecordStage::ResumePosition(uint32_t id) const { return ResumePosition(*streams_.at(id)); }

uint64_t RecordStage::ResumePosition(const Stream& s) const {
  if (!s.provisional_begin.empty()) return s.provisional_begin.front();
  if (!s.held.empty()) return s.held.front().begin;
  if (s.in_partial) return s.partial_begin;
  if (!s.carry.empty() || s.carry_cut) return s.carry_begin;
  return s.offset;
}

LineCounts RecordStage::TakeUncounted(uint32_t id) { return TakeUncounted(S(id)); }

LineCounts RecordStage::TakeUncounted(Stream& s) {
  // Lines after something still held belong after the resume position.
  if (!s.provisional_begin.empty() || !s.held.empty() || s.in_partial) return {};
  return TakeLines(s);
}

const LineCounts& RecordStage::counts(uint32_t id) const { return streams_.at(id)->counts; }

LogFormat RecordStage::format(uint32_t id) const { return streams_.at(id)->format; }

}  // namespace qw::record
