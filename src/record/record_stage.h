// RecordStage: the one record stage of every source (docs/PIPELINE.md).
// Bytes with their origin in, records out: lines framed (overlong ones cut
// and counted), the runtime format detected and decoded (CRI, docker
// json-file, raw), CRI P/F and docker 16 KiB pieces joined, bad lines
// counted and skipped, the family detected from the first records (held
// back, bounded), continuation lines joined, the stream placed (node,
// chain, signer, time zone) and each record given a time.
//
// Replay, live tailing and Kafka feed it the same way, so the same
// bytes give the same records whatever the read sizes: nothing here depends
// on where one Feed ends and the next begins.
//
// Each stream's records go to its Output, a queue the ordering stage
// (pipeline/ordering.h) takes from the front, in stream order.
//
// Threading: owned by the reading thread; every method is called from it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/file_identity.h"
#include "common/time.h"
#include "match/matcher.h"
#include "match/registry.h"
#include "record/collector.h"
#include "record/decode.h"
#include "record/naming.h"

namespace qw::record {

// Where a stream comes from.
struct Origin {
  std::string path;        // as found or given; "" for messages
  StreamName name;         // usually NameFromPath(path)
  FileIdentity identity;   // live files: for checkpoints; zero otherwise
  LogFormat format = LogFormat::kAuto;
  size_t max_line_bytes = 1 << 20;
  uint64_t start_offset = 0;      // where the bytes fed begin
  std::string saved_family;       // a checkpoint's decision: used when the rules leave it open
  Nanos saved_last_time = kNoTime;  // a checkpoint's last good time of the stream
  // Fed nothing ever, only there to hold the merge back (a Kafka
  // partition's gate): never placed, so no rule makes a node of it.
  bool gate = false;
};

// A stream as the detector side sees it: at open (identity, path, where
// reading began) and again once placed (chain, family, signer).
struct StreamInfo {
  uint32_t id = 0;
  std::string path;
  StreamName name;
  FileIdentity identity;
  uint64_t start_offset = 0;
  std::string chain;  // kStart only
  int family = -1;    // kStart only: registry index; -1 unknown (read, never matched)
  bool signer = false;
};

// A stream's line counters.
struct LineCounts {
  uint64_t lines_read = 0;      // physical lines
  uint64_t lines_rejected = 0;  // binary, invalid UTF-8, undecodable for the format
  uint64_t lines_cut = 0;       // longer than max_line_bytes
};

enum class EntryKind : uint8_t {
  kOpen,    // infos[index]: the stream exists (timeless); again after a
            // truncation: its identity now, positions restart at 0
  kStart,   // infos[index]: the stream is placed; its records follow (timeless)
  kRecord,  // arena[index, index + length), time, family
  kEnd,     // no more entries
};

struct Entry {
  EntryKind kind;
  int16_t family;   // kRecord: registry index, -1 not matched
  uint32_t index;
  uint32_t length;
  // kRecord, kEnd: physical lines read since the entry before (the
  // record's own, joined ones and rejected ones), and of them rejected.
  uint32_t lines;
  uint32_t rejected;
  Nanos time;       // kRecord: the record's time (kNoTime while provisional)
  uint64_t after;   // kRecord: resume position once this record is handled
  uint8_t flags = 0;  // kEntryFallbackTime, kEntryGone
};
// The record's time is no stamp's but the stream's fallback (its file's
// modification time): it orders the record, and moves no clock.
inline constexpr uint8_t kEntryFallbackTime = 1;
// kEnd: the file is gone (rotated away or removed), not just read to its end.
inline constexpr uint8_t kEntryGone = 2;

// One stream's entries in stream order. Entries [head, ready) may be taken;
// [ready, end) are provisional: a record continuation lines may still join
// (the last one), or records waiting for the stream's first stamp.
struct Output {
  std::string arena;  // record texts, each followed by '\n'
  std::vector<Entry> entries;
  std::vector<StreamInfo> infos;
  size_t head = 0;
  size_t ready = 0;

  bool has_ready() const { return head < ready; }
  std::string_view text(const Entry& e) const {
    return std::string_view(arena.data() + e.index, e.length);
  }
  // Arena bytes not yet taken (for back-pressure).
  size_t pending_bytes() const;
  // Drops what was taken.
  void Compact();
};

struct StageOptions {
  // Records held back while a stream's family is undecided (and stamp-less
  // records before a stream's first stamp): at most this many and bytes;
  // at either bound the family is decided with what there is.
  size_t hold_records = 200;
  size_t hold_bytes = 256 << 10;
  // Live sources: how long a complete record at the end of the bytes read
  // so far may wait for continuation lines (or a family) before it goes on
  // as it is — it holds the other streams back meanwhile, so it adds to
  // every event's latency; 0 (the default): it goes on at once, and
  // continuation lines that come in a later read start a record of their
  // own. And how long an incomplete line waits for its end.
  Nanos hold_wait = 0;
  Nanos incomplete_wait = 5 * kSecond;
};

struct StageStats {
  uint64_t lines_read = 0, lines_rejected = 0, lines_cut = 0, records = 0;
};

class RecordStage {
 public:
  // `log`: operator messages (family unknown, ...).
  RecordStage(match::Registry& registry, const Routing& routing, StageOptions opt,
              std::function<void(const std::string&)> log);
  ~RecordStage();
  RecordStage(const RecordStage&) = delete;
  RecordStage& operator=(const RecordStage&) = delete;

  // A new stream with id `id` (ids are chosen by the caller and ascend: they
  // break ties between equal times in the ordering). REQUIRES: id unused.
  void Open(uint32_t id, Origin origin);
  // The stream's next bytes. `mtime`: the file's modification time when
  // read (stamp-less streams take it; its year completes year-less stamps).
  void Feed(uint32_t id, std::string_view bytes, Nanos mtime);
  // The file was truncated in place (copytruncate): reading starts again at
  // 0. An incomplete line before it is dropped. `identity`: the file's now;
  // a second kOpen entry carries it (and start offset 0) after everything
  // read before the cut, so a checkpoint pairs it with positions in the new
  // content.
  void Truncate(uint32_t id, const FileIdentity& identity);
  // Live: every byte there is now has been fed (`now`: a steady clock).
  // A complete record held at the end waits hold_wait for what may follow.
  void AtEnd(uint32_t id, Nanos now);
  // Live: there is more to read than was fed (a Kafka partition not yet
  // read to its high watermark): the stream holds the others back, as a
  // file with unread bytes does, until AtEnd.
  void Behind(uint32_t id);
  // No more bytes ever: everything held goes out, then the stream's end.
  // `gone`: the file was rotated away or removed (its node may retire);
  // else it is the end of what there is to read (replay), which says
  // nothing about the node.
  void Close(uint32_t id, bool gone);
  // No more bytes ever, and what was read and not handed on yet is
  // dropped: records held back or waiting in the output, an incomplete
  // line. Then the stream's end, gone. For a Kafka partition revoked: the
  // state written at the revoke reflects what was handed on; the member
  // that takes the partition over reads the rest again, from there.
  void Abandon(uint32_t id);
  // Live: releases what has waited long enough. Returns the next time
  // (steady clock) at which something would be released, or kNoTime.
  Nanos Expire(Nanos now);

  // For the ordering stage, which visits every stream in each round: it
  // keeps a handle per stream (valid until Forget) and asks through it,
  // without a lookup by id.
  struct Stream;
  Stream* handle(uint32_t id) { return &S(id); }
  Output* output(uint32_t id);
  static Output* output(Stream& s);
  bool Ready(const Stream& s) const;
  uint64_t ResumePosition(const Stream& s) const;
  LineCounts TakeUncounted(Stream& s);
  // True when the ordering may go on without this stream's next entry: its
  // output has one, or it holds nothing that could come before later
  // records of other streams (live: read to its end and nothing held back
  // that is waiting), or it has ended.
  bool Ready(uint32_t id) const;
  // The stream's end was handed on; its state can go (after its output is
  // consumed).
  void Forget(uint32_t id);
  // Ids of the streams that are open (not forgotten), ascending.
  std::vector<uint32_t> ids() const;
  bool ended(uint32_t id) const;

  // Where reading this stream again would resume without losing or
  // repeating a record, given that every ready entry was handled.
  uint64_t ResumePosition(uint32_t id) const;
  // Lines read up to ResumePosition that no entry counts (rejected lines
  // after the last record, say): handed on with the position, then zero.
  LineCounts TakeUncounted(uint32_t id);
  const LineCounts& counts(uint32_t id) const;
  // The stream's runtime format (kAuto until its first line).
  LogFormat format(uint32_t id) const;
  // The stream's chain once its family is decided (else "").
  std::string chain(uint32_t id) const;
  // Before any of its records is read: a name shared by every stream that
  // can end up in one chain (Kafka repartition keys records by it). The
  // chain a `streams:` rule (or replay's --chain) names; else the
  // namespace, as an automatic chain is one per family and namespace; ""
  // without Kubernetes names (all such streams together). A chain of the
  // configuration whose nodes are in several namespaces needs a rule naming
  // it (docs/KAFKA.md, "Repartition").
  std::string ChainKey(const StreamName& name) const;
  const StageStats& stats() const { return stats_; }

 private:
  Stream& S(uint32_t id);
  void Line(Stream& s, std::string_view line, bool cut, uint64_t begin, uint64_t end);
  // A collector's prefix off (record/collector.h); *outer: its stamp.
  std::string_view Unwrap(Stream& s, std::string_view msg, Nanos* outer);
  void Complete(Stream& s, std::string_view msg, Nanos runtime_time, Nanos outer_time, uint64_t begin,
                uint64_t end, LineCounts counted);
  LineCounts TakeLines(Stream& s);
  void Commit(Stream& s);
  void Fallback(Stream& s);
  void MakeReady(Stream& s, size_t upto);
  void Release(Stream& s, bool final);
  void FlushIncomplete(Stream& s);
  bool Waiting(const Stream& s) const;
  void TryDecide(Stream& s, bool final);
  void Decide(Stream& s, int family);
  void Reconsider(Stream& s, std::string_view msg);
  void Redecide(Stream& s, int family, const std::string& why);
  std::string Who(const Stream& s) const;
  StreamInfo Placed(const Stream& s) const;
  void PushOpen(Stream& s);
  match::FamilyMatcher* MatcherFor(int family);

  match::Registry& registry_;
  const Routing routing_;  // a copy: small, and callers need not keep theirs
  StageOptions opt_;
  std::function<void(const std::string&)> log_;
  // By id; looked up for every read, end and release of a stream, and the
  // ordering asks about every stream at each round: a hash, not a tree.
  std::unordered_map<uint32_t, std::unique_ptr<Stream>> streams_;
  std::set<uint32_t> timed_;  // streams whose hold or incomplete wait runs (Expire)
  std::vector<std::unique_ptr<match::FamilyMatcher>> matchers_;  // per family (times, continuations)
  DockerDecoder docker_;
  StageStats stats_;
};

}  // namespace qw::record
