#include "pipeline/ordering.h"

#include <algorithm>
#include <queue>

namespace qw::pipeline {
namespace {

struct Head {
  Nanos time;
  uint32_t id;
  size_t slot;
  bool operator>(const Head& o) const { return time != o.time ? time > o.time : id > o.id; }
};

}  // namespace

Ordering::Ordering(record::RecordStage* stage, Options opt, std::function<Batch*(Batch*)> full)
    : stage_(stage), opt_(opt), full_(std::move(full)) {}

void Ordering::Add(uint32_t id) {
  record::RecordStage::Stream* st = stage_->handle(id);
  slots_.push_back(Slot{id, st, record::RecordStage::output(*st)});
}

void Ordering::Room(Batch** batch, size_t bytes) {
  Batch* b = *batch;
  if (b->records.empty()) return;
  if (b->records.size() < opt_.batch_records && b->arena.size() + bytes <= opt_.batch_bytes) return;
  FlushPositions(b);
  *batch = full_(b);
}

void Ordering::FlushPositions(Batch* b) {
  for (size_t i : dirty_) {
    Slot& s = slots_[i];
    if (!s.position_dirty) continue;
    s.position_dirty = false;
    b->records.push_back(Record{s.id, static_cast<uint32_t>(b->progress.size()), 0,
                                RecordKind::kPosition, -1, kNoTime});
    b->progress.push_back(StreamProgress{s.position, s.lines, s.rejected});
    s.lines = s.rejected = 0;
  }
  dirty_.clear();
}

void Ordering::SetPosition(size_t slot, uint64_t position, uint64_t lines, uint64_t rejected) {
  Slot& s = slots_[slot];
  s.lines += lines;
  s.rejected += rejected;
  if (!opt_.positions) return;  // replay: lines go with the stream's end
  if (s.position_known && s.position == position && lines == 0 && rejected == 0) return;
  s.position = position;
  s.position_known = true;
  if (!s.position_dirty) {
    s.position_dirty = true;
    dirty_.push_back(slot);
  }
}

// Stream events at the head of a stream's entries go at once: they carry no
// time, and what follows them in the stream stays after them.
void Ordering::TakeTimeless(size_t slot, Batch** batch, bool opens_only) {
  Slot& s = slots_[slot];
  record::Output& out = *s.out;
  while (out.head < out.ready && out.entries[out.head].kind != record::EntryKind::kRecord &&
         !(opens_only && out.entries[out.head].kind == record::EntryKind::kEnd)) {
    const record::Entry& e = out.entries[out.head];
    Room(batch, 0);
    Batch* b = *batch;
    switch (e.kind) {
      case record::EntryKind::kOpen:
      case record::EntryKind::kStart:
        b->records.push_back(Record{s.id, static_cast<uint32_t>(b->infos.size()), 0,
                                    e.kind == record::EntryKind::kOpen ? RecordKind::kOpen
                                                                      : RecordKind::kStart,
                                    -1, kNoTime});
        b->infos.push_back(out.infos[e.index]);
        if (e.kind == record::EntryKind::kOpen) SetPosition(slot, out.infos[e.index].start_offset, 0, 0);
        break;
      case record::EntryKind::kEnd:
        b->records.push_back(Record{s.id, static_cast<uint32_t>(b->progress.size()), 0,
                                    RecordKind::kEnd, -1, kNoTime, e.flags});
        b->progress.push_back(StreamProgress{e.after, s.lines + e.lines, s.rejected + e.rejected});
        s.lines = s.rejected = 0;
        s.position_dirty = false;
        s.ended = true;
        break;
      default:
        break;
    }
    ++out.head;
  }
}

std::vector<uint32_t> Ordering::Release(Batch** batch) {
  idle_ = false;
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heads;
  size_t blocking = 0;
  // Openings of every stream before any end: a file that replaces a rotated
  // one is open (driver.h, HeldDetach) when the old one's end arrives.
  for (size_t i = 0; i < slots_.size(); ++i) TakeTimeless(i, batch, /*opens_only=*/true);
  for (size_t i = 0; i < slots_.size(); ++i) {
    TakeTimeless(i, batch);
    Slot& s = slots_[i];
    if (s.ended) continue;
    if (s.out->has_ready()) {
      heads.push(Head{s.out->entries[s.out->head].time, s.id, i});
    } else if (!stage_->Ready(*s.st)) {
      ++blocking;
    }
  }
  while (blocking == 0 && !heads.empty()) {
    const Head h = heads.top();
    heads.pop();
    Slot& s = slots_[h.slot];
    record::Output& out = *s.out;
    const std::vector<record::Entry>& entries = out.entries;
    const bool has_next = !heads.empty();
    const Head next = has_next ? heads.top() : Head{0, 0, 0};
    // The run of this stream's records that come before every other
    // stream's head, copied at once.
    Room(batch, entries[out.head].length + 1);
    Batch* b = *batch;
    const size_t p0 = out.head;
    size_t p1 = p0 + 1;
    size_t bytes = entries[p0].length + 1;
    const size_t room = opt_.batch_records > b->records.size()
                            ? opt_.batch_records - b->records.size()
                            : 1;
    while (p1 < out.ready && p1 - p0 < room) {
      const record::Entry& e = entries[p1];
      if (e.kind != record::EntryKind::kRecord) break;
      if (b->arena.size() + bytes + e.length + 1 > opt_.batch_bytes) break;
      if (has_next && !(e.time < next.time || (e.time == next.time && s.id < next.id))) break;
      bytes += e.length + 1;
      ++p1;
    }
    const uint32_t first = entries[p0].index;
    const record::Entry& last = entries[p1 - 1];
    const uint32_t base = static_cast<uint32_t>(b->arena.size());
    b->arena.append(out.arena, first, last.index + last.length + 1 - first);
    uint64_t lines = 0, rejected = 0;
    for (size_t i = p0; i < p1; ++i) {
      const record::Entry& e = entries[i];
      b->records.push_back(Record{s.id, base + (e.index - first), e.length, RecordKind::kLine,
                                  e.family, e.time, e.flags});
      lines += e.lines;
      rejected += e.rejected;
    }
    out.head = p1;
    SetPosition(h.slot, last.after, lines, rejected);
    TakeTimeless(h.slot, batch);
    if (s.ended) continue;
    if (out.has_ready()) {
      heads.push(Head{entries[out.head].time, s.id, h.slot});
      continue;
    }
    // Drained: whatever was read past its records (rejected lines, say)
    // is behind it too.
    const record::LineCounts rest = stage_->TakeUncounted(*s.st);
    SetPosition(h.slot, stage_->ResumePosition(*s.st), rest.lines_read, rest.lines_rejected);
    if (!stage_->Ready(*s.st)) ++blocking;
  }

  std::vector<uint32_t> need;
  if (blocking > 0) {
    for (const Slot& s : slots_) {
      if (!s.ended && !s.out->has_ready() && !stage_->Ready(*s.st)) need.push_back(s.id);
    }
  } else {
    idle_ = heads.empty();
  }
  // Idle streams move on too (lines rejected or skipped since).
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (!s.ended && !s.out->has_ready() && stage_->Ready(*s.st) && opt_.positions) {
      const record::LineCounts rest = stage_->TakeUncounted(*s.st);
      SetPosition(i, stage_->ResumePosition(*s.st), rest.lines_read, rest.lines_rejected);
    }
  }
  FlushPositions(*batch);
  // Ended streams whose end went out are done.
  size_t kept = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].ended) {
      stage_->Forget(slots_[i].id);
      continue;
    }
    slots_[i].out->Compact();
    slots_[kept++] = slots_[i];
  }
  slots_.resize(kept);
  return need;
}

}  // namespace qw::pipeline
