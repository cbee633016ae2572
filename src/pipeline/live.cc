#include "pipeline/live.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "common/file_util.h"
#include "common/time.h"
#include "detect/state_codec.h"
#include "match/hs_prefilter.h"
#include "pipeline/kafka_forward.h"
#include "pipeline/ordering.h"
#include "pipeline/stages.h"
#include "record/record_stage.h"
#include "source/file_tailer.h"

namespace qw::pipeline {
namespace {

constexpr size_t kBatchBytes = 64 << 10;
constexpr size_t kBatchRecords = 2048;
constexpr size_t kStreamBacklog = 1 << 20;  // a stream's records waiting in the ordering
constexpr Nanos kHeartbeat = kSecond;       // the detector side hears from the reader at least this often
constexpr Nanos kHealthEvery = kSecond;     // lag and input health, sent with the heartbeat
constexpr Nanos kRequestsEvery = 200 * kMillisecond;
constexpr Nanos kStatusAfterEvents = 250 * kMillisecond;
// Appends are read in rounds at most this often: a burst of notifications
// (a line per file every few milliseconds over hundreds of files) costs one
// round of reads and one batch, not one per append. The first append after
// a quiet spell is read at once. Well inside the alert budget, and the
// latency goal (p99 < 50 ms from a line written to its event written).
constexpr Nanos kCoalesce = 30 * kMillisecond;
constexpr size_t kInlineRecords = 512;
// Kafka records handed to the record stage per round and source (then the
// round goes on: ordering, batches, health).
constexpr size_t kKafkaRecordsPerRound = 16384;

// Test hooks (docs/PIPELINE.md, "Test hooks"): environment variables that
// make a run stop or crash at a checkpoint, or read in small pieces.
uint64_t EnvCount(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? 0 : std::strtoull(v, nullptr, 10);
}

// The detector side, on the pipeline's consumer thread.
sink::OutputOptions CheckpointLogOptions(const LiveOptions& opt, const LiveContext& ctx) {
  sink::OutputOptions o;
  o.name = opt.state_dir + "/" + kCheckpointFile;
  o.log = ctx.log;
  o.while_failing =
      "reading and detection go on; the checkpoint is tried again every checkpoint_interval, and "
      "a restart meanwhile resumes from the last one written (it reads those lines again)";
  return o;
}

sink::OutputOptions StateLogOptions(const LiveOptions& opt, const LiveContext& ctx) {
  sink::OutputOptions o;
  std::string topics;
  for (const auto& k : opt.kafka) topics += (topics.empty() ? "" : ", ") + k.state_topic;
  o.name = "the Kafka state topic " + topics;
  o.log = ctx.log;
  o.while_failing =
      "reading and detection go on; the Kafka offsets are not stored meanwhile (a member that "
      "takes a partition over resumes from the last state written and reads those records again)";
  return o;
}

class Consumer {
 public:
  Consumer(const LiveOptions& opt, Driver* driver, const LiveSinks& sinks, const LiveContext& ctx,
           ComponentCounters match, ComponentCounters detect)
      : opt_(opt), driver_(driver), sinks_(sinks), ctx_(ctx), match_(match), detect_(detect),
        checkpoint_log_(CheckpointLogOptions(opt, ctx)),
        state_log_(StateLogOptions(opt, ctx)),
        crash_after_(EnvCount("QW_TEST_CRASH_AFTER_CHECKPOINTS")),
        stop_after_(EnvCount("QW_TEST_STOP_AFTER_CHECKPOINTS")) {}

  void Consume(Batch& b) {
    if (b.health) health_ = *b.health;
    for (const Checkpoint& cp : b.restores) {
      // A damaged value was refused whole (DecodeStateJson checks first).
      if (auto r = driver_->Merge(cp); !r) {
        ctx_.log("kafka: the state handed over for " +
                 (cp.chains.empty() ? std::string("?") : cp.chains.front().first) +
                 " was not applied: " + r.error().message);
      }
    }
    uint64_t lines = 0, signals = 0;
    for (size_t i = 0; i < b.records.size(); ++i) {
      if (b.records[i].kind != RecordKind::kLine) continue;
      ++lines;
      if (b.signals[i].kind != SignalKind::kNone) ++signals;
    }
    const uint64_t before = driver_->events();
    driver_->Consume(b);
    match_.processed->fetch_add(lines, std::memory_order_relaxed);
    detect_.received->fetch_add(signals, std::memory_order_relaxed);
    detect_.processed->fetch_add(signals, std::memory_order_relaxed);
    const bool operator_changes = Apply(b.requests);
    const Nanos now = WallNow();
    // Level-triggered sinks hear about changes within kStatusAfterEvents
    // (a status is built over every node: not for each batch of a busy
    // spell), about operator changes at once, else once a second.
    status_due_ = status_due_ || driver_->events() != before;
    if (operator_changes || now - last_status_ >= kSecond ||
        (status_due_ && now - last_status_ >= kStatusAfterEvents)) {
      SendStatus(now);
    }
    if (operator_changes || b.checkpoint || now - last_checkpoint_ >= opt_.checkpoint_interval) {
      WriteCheckpoint(now, /*handoff=*/b.checkpoint);
    }
    if (b.checkpoint) {
      std::lock_guard<std::mutex> lock(flush_mu_);
      ++flushed_;
      flush_cv_.notify_all();
    }
  }

  // Reading thread: waits until `n` batches marked `checkpoint` were
  // handled (false after `timeout`).
  bool WaitFlushed(uint64_t n, Nanos timeout) {
    std::unique_lock<std::mutex> lock(flush_mu_);
    return flush_cv_.wait_for(lock, std::chrono::nanoseconds(timeout), [&] { return flushed_ >= n; });
  }

  // The Kafka sources whose offsets follow the checkpoints (set before the
  // first batch).
  void SetKafka(std::vector<KafkaInput*> inputs) { kafka_ = std::move(inputs); }

  // After the last batch (the consumer thread has stopped). What is
  // decided and not yet written stays in the checkpoint: written after the
  // next start, in order.
  void Close() {
    const Nanos now = WallNow();
    SendStatus(now);
    WriteCheckpoint(now, /*handoff=*/true);
  }

 private:
  // Operator requests (`quorumwatch bans`), at the detector's time. True
  // when one changed anything.
  bool Apply(const std::vector<OperatorRequest>& requests) {
    bool changed = false;
    detect::Detector& d = driver_->detector();
    for (const auto& r : requests) {
      const Nanos now = driver_->time() != kNoTime ? driver_->time() : WallNow();
      int known = 0;
      for (size_t i = 0; i < d.node_count(); ++i) known += d.NodeMatches(static_cast<int>(i), r.node) ? 1 : 0;
      std::string outcome;
      if (r.op == "hold") {
        d.SetHold(r.node, true, now);
        outcome = "held: no ban for " + r.node + " until released" +
                  (known == 0 ? " (no such node seen yet)" : "");
      } else if (r.op == "release") {
        const bool was = d.holds().count(r.node) > 0;
        d.SetHold(r.node, false, now);
        outcome = was ? "released: " + r.node + " can be banned again"
                      : "error: " + r.node + " was not held";
      } else {
        const int n = d.OperatorUnban(r.node, now);
        outcome = n > 0 ? "unbanned: " + r.node + " (an unban decision goes to the ban sinks)"
                        : (known == 0 ? "error: no node " + r.node
                                      : "error: " + r.node + " is not banned");
      }
      ctx_.log("operator request " + r.op + " " + r.node + ": " + outcome);
      ctx_.answer(r, outcome);
      changed = true;
    }
    if (changed) driver_->orderer().Release(driver_->time() == kNoTime ? 0 : driver_->time());
    return changed;
  }

  void SendStatus(Nanos now) {
    last_status_ = now;
    status_due_ = false;
    sink::Status st = driver_->BuildStatus(now);
    st.health = health_;
    st.health.checkpoint_errors = checkpoint_log_.errors();
    st.health.checkpoint_failing = checkpoint_log_.failing();
    st.health.checkpoint_error = checkpoint_log_.failing() ? checkpoint_error_ : "";
    st.health.last_checkpoint = last_checkpoint_written_;
    st.health.prefilter = match::HsDatabase::Engine();
    st.health.prefilter_fallbacks = driver_->registry().prefilter_fallbacks();
    for (const sink::EventSink* s : sinks_.all) {
      if (const auto* j = dynamic_cast<const sink::JsonlSink*>(s)) {
        st.health.event_write_errors += j->write_errors();
      }
    }
    for (const sink::BanSink* b : sinks_.bans) {
      st.health.ban_outbox_pending += b->pending();
      const Nanos oldest = b->oldest_pending();
      if (oldest != kNoTime &&
          (st.health.ban_outbox_oldest == kNoTime || oldest < st.health.ban_outbox_oldest)) {
        st.health.ban_outbox_oldest = oldest;
      }
    }
    for (sink::EventSink* s : sinks_.all) s->OnStatus(st);
  }

  // The events written so far are made durable first, then the state that
  // implies them, with the events decided and not yet written. `handoff`:
  // partitions are being revoked, or this is the last checkpoint: the
  // changelog write may wait longer (KafkaInput::WriteState).
  void WriteCheckpoint(Nanos now, bool handoff = false) {
    last_checkpoint_ = now;
    bool synced = true;
    for (sink::EventSink* s : sinks_.all) synced = s->Sync() && synced;
    if (!synced) {
      // The events already decided are not all on disk: a checkpoint now
      // would imply them. The last one stays; a restart reads those lines
      // again and decides them again (the sink reported why).
      return;
    }
    Checkpoint cp;
    cp.written = now;
    driver_->Save(&cp);
    cp.detector = detect::EncodeStateJson(driver_->detector());
    // Kafka: the offsets this state reflects; stored for the group's
    // commit only once the checkpoint holding them is durable.
    std::vector<std::map<source::TopicPartition, int64_t>> offsets;
    std::vector<bool> store;
    std::vector<std::pair<std::string, std::string>> stream_chains;
    if (!kafka_.empty()) stream_chains = driver_->StreamChains();
    for (KafkaInput* k : kafka_) {
      offsets.push_back(k->Committable(cp.streams));
      for (const auto& [tp, off] : offsets.back()) {
        cp.kafka_offsets.push_back(KafkaOffset{tp.first, tp.second, off, k->OriginsBefore(tp, off)});
      }
      // The changelog first (the state another member would take over),
      // then this checkpoint; the offsets are stored for the group only
      // when both hold them.
      auto w = k->WriteState(cp, offsets.back(), stream_chains, handoff);
      if (!w) {
        state_log_.FailedBecause("write", w.error().message);
      } else {
        state_log_.Succeeded();
      }
      store.push_back(w.has_value());
    }
    if (auto w = WriteFileAtomic(opt_.state_dir + "/" + kCheckpointFile, EncodeCheckpoint(cp),
                                 opt_.state_dir + "/" + kPreviousCheckpointFile);
        !w) {
      // A full or read-only state_dir: reported once, then at most once a
      // minute, and on /metrics and /healthz; tried again every interval.
      checkpoint_error_ = w.error().message;
      checkpoint_log_.FailedBecause("write", checkpoint_error_);
      return;
    }
    checkpoint_log_.Succeeded();
    for (size_t i = 0; i < kafka_.size(); ++i) {
      if (store[i]) kafka_[i]->Store(offsets[i]);
    }
    last_checkpoint_written_ = now;
    ++checkpoints_;
    if (crash_after_ > 0 && checkpoints_ == crash_after_) ::_exit(137);  // as after kill -9
    if (stop_after_ > 0 && checkpoints_ == stop_after_) ::kill(::getpid(), SIGTERM);
  }

  const LiveOptions& opt_;
  Driver* driver_;
  const LiveSinks& sinks_;
  const LiveContext& ctx_;
  ComponentCounters match_, detect_;
  sink::HealthStatus health_;
  Nanos last_status_ = 0, last_checkpoint_ = 0;
  bool status_due_ = false;  // events decided since the last status
  uint64_t checkpoints_ = 0;
  sink::WriteErrorLog checkpoint_log_;
  sink::WriteErrorLog state_log_;  // the Kafka changelog
  std::string checkpoint_error_;         // the last failure's reason
  Nanos last_checkpoint_written_ = kNoTime;
  const uint64_t crash_after_, stop_after_;
  std::vector<KafkaInput*> kafka_;
  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  uint64_t flushed_ = 0;
};

// The reading side: tailer bytes into the record stage.
class Reader : public source::TailSink {
 public:
  Reader(record::RecordStage* stage, Ordering* ordering, const FileSourceOptions* const* source,
         uint32_t* next_id)
      : stage_(stage), ordering_(ordering), source_(source), next_id_(next_id) {}

  uint32_t OnOpen(const source::TailedFile& f) override {
    const uint32_t id = (*next_id_)++;
    record::Origin o;
    o.path = f.path;
    o.name = record::NameFromPath(f.path);
    o.identity = f.identity;
    o.format = (*source_)->format;
    o.max_line_bytes = (*source_)->max_line_bytes;
    o.start_offset = f.offset;
    o.saved_family = f.saved_family;
    o.saved_last_time = f.saved_last_time;
    stage_->Open(id, std::move(o));
    ordering_->Add(id);
    ++changes_;
    return id;
  }
  void OnData(uint32_t id, std::string_view bytes, Nanos mtime) override {
    stage_->Feed(id, bytes, mtime);
    ++changes_;
  }
  void OnTruncated(uint32_t id, const FileIdentity& identity) override {
    stage_->Truncate(id, identity);
    ++changes_;
  }
  void OnCaughtUp(uint32_t id) override {
    stage_->AtEnd(id, SteadyNow());
    ++changes_;
  }
  void OnClose(uint32_t id) override {
    stage_->Close(id, /*gone=*/true);
    ++changes_;
  }
  // Anything handed to the record stage so far (the ordering has news).
  uint64_t changes() const { return changes_; }
  bool WantsData(uint32_t id) override {
    return stage_->output(id)->pending_bytes() < kStreamBacklog;
  }

 private:
  record::RecordStage* stage_;
  Ordering* ordering_;
  const FileSourceOptions* const* source_;  // the source being polled
  uint32_t* next_id_;  // shared by every source
  uint64_t changes_ = 0;
};

}  // namespace

Result<LiveOutcome> RunLive(const LiveOptions& opt, match::Registry& registry,
                            const record::Routing& routing, const Topology& topology,
                            const LiveSinks& sinks, const LiveContext& ctx) {
  Metrics* metrics = ctx.metrics;
  ComponentCounters source_c = ComponentCounters::For(metrics, "source", "file");
  ComponentCounters match_c = ComponentCounters::For(metrics, "stage", "match");
  ComponentCounters detect_c = ComponentCounters::For(metrics, "stage", "detect");
  std::atomic<int64_t>* queue_depth = metrics->Gauge(
      "quorumwatch_queue_depth", {{"queue", "batches"}}, "Line batches between the reader and the detector.");

  Driver driver(topology, registry, sinks.all);
  // The checkpoint: chains and pending events, then the detector state
  // (nodes wait until their streams are placed), then file positions.
  std::vector<source::SavedPosition> saved;
  Nanos saved_written = kNoTime;
  bool had_checkpoint = false;
  std::map<source::TopicPartition, int64_t> kafka_start;  // the checkpoint's Kafka offsets
  std::vector<KafkaOffset> kafka_saved;                   // the same, with their origins
  // The newest checkpoint, else the one before it. Both damaged: refused,
  // not a silent fresh start (read_from: end would skip what was written
  // while quorumwatch was down, and beginning decide history again).
  std::vector<std::string> problems;
  for (const char* name : {kCheckpointFile, kPreviousCheckpointFile}) {
    const std::string path = opt.state_dir + "/" + name;
    auto text = ReadWholeFile(path);
    if (!text) {
      if (text.error().message == std::strerror(ENOENT)) continue;  // none yet
      problems.push_back(path + ": cannot read: " + text.error().message);
      continue;
    }
    auto cp = DecodeCheckpoint(*text);
    if (cp) {
      // Kafka streams are not reopened: their partitions resume at the
      // checkpoint's offsets instead.
      auto& st = cp->streams;
      st.erase(std::remove_if(st.begin(), st.end(),
                              [](const SavedStream& s) { return s.path.rfind("kafka:", 0) == 0; }),
               st.end());
    }
    Result<void> state = cp ? Result<void>{} : tl::unexpected(cp.error());
    if (cp && !cp->detector.is_null()) {
      // Tried on a scratch driver first, so a damaged detector state leaves
      // nothing half restored for the older generation.
      Driver trial(topology, registry, {});
      trial.Restore(*cp);
      state = detect::DecodeStateJson(cp->detector, &trial.detector());
    }
    if (!state) {
      problems.push_back(path + ": " + state.error().message);
      continue;
    }
    driver.Restore(*cp);
    if (!cp->detector.is_null()) (void)detect::DecodeStateJson(cp->detector, &driver.detector());
    had_checkpoint = true;
    saved_written = cp->written;
    for (const auto& o : cp->kafka_offsets) kafka_start[{o.topic, o.partition}] = o.offset;
    kafka_saved = cp->kafka_offsets;
    for (const auto& s : cp->streams) {
      saved.push_back(source::SavedPosition{s.path, s.identity, s.offset, s.family, s.last_time});
    }
    if (!problems.empty()) {
      ctx.log(problems.front() + "; resuming from the previous checkpoint " + path + " (written " +
              FormatRfc3339Millis(cp->written) + "): lines after it are read and judged again");
    }
    break;
  }
  if (!had_checkpoint && !problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += p + "; ";
    return Fail(msg + "refusing to start without a checkpoint (read_from: end would skip what "
                "was written while quorumwatch was down, read_from: beginning decide history "
                "again): move " + opt.state_dir + "/" + kCheckpointFile + "* aside to start afresh");
  }

  Consumer consumer(opt, &driver, sinks, ctx, match_c, detect_c);
  Stages stages(registry, opt.threads, kBatchBytes, kBatchRecords,
                [&consumer](Batch& b) { consumer.Consume(b); });
  // A round's batch at a modest rate is matched and judged on this thread
  // (the order is the same): waking two threads for a few dozen lines
  // costs more than the work. Busy rounds still go to the matchers.
  stages.InlineUpTo(kInlineRecords);
  record::StageOptions so;
  record::RecordStage stage(registry, routing, so, ctx.log);
  auto dispatch = [&](Batch* b) {
    uint64_t lines = 0;
    for (const Record& r : b->records) lines += r.kind == RecordKind::kLine ? 1 : 0;
    source_c.processed->fetch_add(lines, std::memory_order_relaxed);
    match_c.received->fetch_add(lines, std::memory_order_relaxed);
    b->wall = WallNow();
    stages.Dispatch(b);
  };
  Ordering::Options oo;
  oo.batch_bytes = kBatchBytes;
  oo.batch_records = kBatchRecords;
  Ordering ordering(&stage, oo, [&](Batch* full) {
    dispatch(full);
    return stages.Acquire();
  });

  const FileSourceOptions* polled = nullptr;
  uint32_t next_id = 0;
  Reader reader(&stage, &ordering, &polled, &next_id);
  std::vector<std::unique_ptr<KafkaInput>> kafka;
  for (const auto& k : opt.kafka) {
    source::KafkaOptions co = k.consumer;
    if (!k.by_chain_topic.empty()) {
      // repartition: this member reads the by-chain topic; the input is
      // read (in a group of its own) and handed on to it by the forwarder.
      co.topics = {k.by_chain_topic};
      co.topic_pattern.clear();
      co.read_headers = true;
    }
    auto c = source::KafkaConsumer::Create(co);
    if (!c) return tl::unexpected(c.error());
    (*c)->SetStartOffsets(kafka_start);
    kafka.push_back(std::make_unique<KafkaInput>(k, std::move(*c), &stage, &ordering, &next_id,
                                                 metrics, ctx.log));
    kafka.back()->SetStartOffsets(kafka_saved);
    if (!k.by_chain_topic.empty()) {
      source::KafkaOptions fo = k.consumer;
      fo.group += ".forward";
      auto f = source::KafkaConsumer::Create(fo);
      if (!f) return tl::unexpected(f.error());
      kafka.back()->SetForwarder(std::make_unique<KafkaForwarder>(
          k.by_chain_topic, k.format, k.fields, std::move(*f), &stage, metrics, ctx.log));
    }
  }
  {
    std::vector<KafkaInput*> inputs;
    for (auto& k : kafka) inputs.push_back(k.get());
    consumer.SetKafka(std::move(inputs));
  }
  std::vector<std::unique_ptr<source::FileTailer>> tailers;
  const size_t read_chunk = EnvCount("QW_TEST_READ_CHUNK");
  for (const auto& src : opt.sources) {
    source::FileTailer::Options o;
    o.include = src.include;
    o.exclude = src.exclude;
    o.read_from_end = src.read_from_end;
    o.rescan_interval = src.poll_interval;
    o.log = ctx.log;
    if (read_chunk > 0) {
      o.read_bytes = read_chunk;
      o.max_bytes_per_poll = read_chunk;
    }
    auto t = std::make_unique<source::FileTailer>(o, ctx.fs);
    if (had_checkpoint) t->Restore(saved, saved_written);
    tailers.push_back(std::move(t));
  }
  ctx.log("running: " + std::to_string(opt.sources.size() + opt.kafka.size()) +
          " source(s), state in " +
          opt.state_dir + (had_checkpoint ? " (resumed from checkpoint)" : "") + ", files read with " +
          ReadManyMethod());
  if (ctx.running) ctx.running();

  LiveOutcome outcome = LiveOutcome::kStopped;
  Batch* batch = stages.Acquire();
  // Before Kafka partitions are revoked: what can go in order goes, then a
  // checkpoint (the changelog, the offsets stored for the commit).
  uint64_t flushes = 0;
  for (auto& k : kafka) {
    k->SetFlush([&] {
      ordering.Release(&batch);
      batch->checkpoint = true;
      dispatch(batch);
      batch = stages.Acquire();
      if (!consumer.WaitFlushed(++flushes, 60 * kSecond)) {
        ctx.log("kafka: partitions revoked before their state could be written (the detector "
                "did not catch up within 60 s): the member taking them over reads again from "
                "the last state written");
      }
    });
  }
  const Nanos started = WallNow();
  Nanos last_input = started, last_dispatch = 0, last_health = 0, last_requests = 0,
        last_lag_report = started;
  Nanos last_round = 0;  // steady time the last round began
  Nanos next_release = kNoTime;  // the record stage's next wait to run out
  uint64_t released_changes = UINT64_MAX;
  uint64_t lines_seen = 0, published_rejected = 0, published_cut = 0;
  bool outage = false, caught_up = false, idle_sent = false;
  bool kafka_caught_up = kafka.empty();
  Nanos last_stats = 0;
  uint64_t stats_lines = 0;
  std::vector<OperatorRequest> requests;
  sink::HealthStatus health;
  while (!ctx.stop()) {
    if (ctx.reload()) {
      outcome = LiveOutcome::kReload;
      break;
    }
    const Nanos steady = SteadyNow();
    last_round = steady;
    Nanos wall = WallNow();
    if (wall - last_requests >= kRequestsEvery) {
      last_requests = wall;
      for (auto& r : ctx.requests()) requests.push_back(std::move(r));
    }
    bool more = false;
    size_t got = 0;  // bytes read in this round
    for (size_t i = 0; i < tailers.size(); ++i) {
      polled = &opt.sources[i];
      got += tailers[i]->Poll(&reader, steady);
      more = more || tailers[i]->more();
    }
    uint64_t kafka_changes = 0;
    for (auto& k : kafka) {
      got += k->Poll(kKafkaRecordsPerRound);
      more = more || k->more();
      kafka_changes += k->changes();
      // Ahead of any record of the partitions they came with (those are
      // released into this batch at the earliest).
      for (auto& cp : k->TakeRestores()) batch->restores.push_back(std::move(cp));
    }
    // The ordering looks at every stream: only when a stream has news, or
    // a wait of the record stage ran out (an idle round costs next to
    // nothing).
    const bool expired = next_release != kNoTime && steady >= next_release;
    next_release = stage.Expire(steady);
    if (reader.changes() + kafka_changes != released_changes || expired) {
      released_changes = reader.changes() + kafka_changes;
      ordering.Release(&batch);
    }

    // Health: input, outage, lag. Silence counts only while lines still
    // arrive somewhere; when every stream is quiet, that is an input
    // outage, and stalls are not judged (the detector's time stands).
    wall = WallNow();
    const auto& st = stage.stats();
    if (st.lines_read != lines_seen) {
      source_c.received->fetch_add(st.lines_read - lines_seen, std::memory_order_relaxed);
      lines_seen = st.lines_read;
      last_input = wall;
    }
    const bool now_outage = wall - last_input > opt.input_outage_after;
    if (now_outage != outage) {
      outage = now_outage;
      ctx.log(outage ? "input outage: no line from any stream for " +
                           FormatDuration(wall - last_input) +
                           "; node stalls are not judged until lines arrive again"
                     : "input resumed");
    }
    if (!caught_up) {
      caught_up = true;
      for (const auto& t : tailers) caught_up = caught_up && t->caught_up();
    }
    const bool health_due = wall - last_health >= kHealthEvery;
    if (health_due) {
      last_health = wall;
      uint64_t behind = 0, files_behind = 0;
      for (const auto& t : tailers) {
        auto [bytes, files] = t->Lag();
        behind += bytes;
        files_behind += files;
      }
      // Kafka: caught up once every source's lag was known to be 0 (its
      // partitions assigned and read to their high watermarks).
      int64_t records_behind = 0;
      bool lag_known = true;
      for (auto& k : kafka) {
        const int64_t lag = k->UpdateLag();
        lag_known = lag_known && lag >= 0;
        records_behind += std::max<int64_t>(lag, 0);
      }
      if (!kafka_caught_up && lag_known && records_behind == 0) kafka_caught_up = true;
      if (opt.stats_every > 0 && wall - last_stats >= opt.stats_every) {
        // `run --stats`: what was read, what is behind, per Kafka partition.
        const double secs = last_stats == 0 ? 0 : static_cast<double>(wall - last_stats) / kSecond;
        std::string line = "stats: lines=" + std::to_string(st.lines_read) + " lines/s=" +
                           std::to_string(secs > 0 ? static_cast<int64_t>(
                                                         (st.lines_read - stats_lines) / secs)
                                                   : 0) +
                           " rejected=" + std::to_string(st.lines_rejected) +
                           " cut=" + std::to_string(st.lines_cut) +
                           " bytes_behind=" + std::to_string(behind) +
                           " files_behind=" + std::to_string(files_behind);
        if (!kafka.empty()) {
          line += " kafka_lag=" + (lag_known ? std::to_string(records_behind) : std::string("?"));
          std::string parts;
          for (auto& k : kafka) {
            for (const auto& [tp, lag] : k->lags()) {
              parts += (parts.empty() ? "" : ",") + tp.first + "/" + std::to_string(tp.second) +
                       ":" + (lag >= 0 ? std::to_string(lag) : "?");
            }
          }
          line += " partitions=" + (parts.empty() ? std::string("none") : parts);
        }
        ctx.log(line);
        last_stats = wall;
        stats_lines = st.lines_read;
      }
      if (wall - last_lag_report >= 30 * kSecond && records_behind > 100000) {
        last_lag_report = wall;
        ctx.log("lag: " + std::to_string(records_behind) + " Kafka record(s) behind");
      }
      // Rejected lines never reach the detector: dropped; cut ones: errors.
      source_c.dropped->fetch_add(st.lines_rejected - published_rejected, std::memory_order_relaxed);
      source_c.errors->fetch_add(st.lines_cut - published_cut, std::memory_order_relaxed);
      published_rejected = st.lines_rejected;
      published_cut = st.lines_cut;
      health.caught_up = caught_up && kafka_caught_up;
      health.input_outage = outage;
      health.last_input = last_input;
      health.bytes_behind = behind;
      health.files_behind = files_behind;
      health.lines_cut = st.lines_cut;
      health.lines_rejected = st.lines_rejected;
      queue_depth->store(static_cast<int64_t>(stages.in_flight()), std::memory_order_relaxed);
      if (wall - last_lag_report >= 30 * kSecond && behind > (1u << 20)) {
        last_lag_report = wall;
        ctx.log("lag: " + std::to_string(behind) + " bytes behind in " +
                std::to_string(files_behind) + " file(s)");
      }
    }
    const bool idle = ordering.idle() && !more;
    if (!batch->records.empty() || !batch->restores.empty() || !requests.empty() || health_due ||
        idle != idle_sent ||
        wall - last_dispatch >= kHeartbeat) {
      batch->all_idle = idle;
      idle_sent = idle;
      batch->requests = std::move(requests);
      requests.clear();
      batch->health = health;
      dispatch(batch);
      batch = stages.Acquire();
      last_dispatch = wall;
    }

    // Wait for a change, a signal, a timer: operator requests, the next
    // scan (rare while inotify is trusted), a record due for release.
    Nanos timeout = more ? 0 : kRequestsEvery;
    for (const auto& t : tailers) timeout = std::min(timeout, std::max<Nanos>(0, t->next_scan() - steady));
    if (next_release != kNoTime) timeout = std::min(timeout, std::max<Nanos>(0, next_release - steady));
    std::vector<struct pollfd> fds;
    if (ctx.wake_fd >= 0) fds.push_back({ctx.wake_fd, POLLIN, 0});
    bool woken = false;
    auto woke = [&] { return ctx.wake_fd >= 0 && (fds[0].revents & POLLIN) != 0; };
    for (const auto& t : tailers) {
      if (t->wait_fd() >= 0) fds.push_back({t->wait_fd(), POLLIN, 0});
    }
    for (const auto& k : kafka) {
      for (int fd : k->wait_fds()) fds.push_back({fd, POLLIN, 0});
    }
    if (got > 0 && !more) {
      // Lines are coming: the next round is at kCoalesce after this one
      // whatever happens meanwhile (a signal still wakes at once), so the
      // thread sleeps once per round instead of waking at the first
      // notification and sleeping again.
      // Then the round reads whatever the notifications say, without
      // asking poll() first.
      const Nanos left = last_round + kCoalesce - SteadyNow();
      if (left > 0) {
        ::poll(fds.data(), ctx.wake_fd >= 0 ? 1 : 0,
               static_cast<int>((left + kMillisecond - 1) / kMillisecond));
        woken = woken || woke();
      }
      timeout = 0;
    }
    if (timeout > 0) {
      const int ready =
          ::poll(fds.data(), fds.size(), static_cast<int>((timeout + kMillisecond - 1) / kMillisecond));
      // A notification soon after the last round: gather more before the
      // next (a signal still wakes at once).
      const Nanos since = SteadyNow() - last_round;
      const bool signalled = woke();
      woken = woken || signalled;
      if (ready > 0 && !signalled && since < kCoalesce) {
        ::poll(fds.data(), ctx.wake_fd >= 0 ? 1 : 0,
               static_cast<int>((kCoalesce - since + kMillisecond - 1) / kMillisecond));
        woken = woken || woke();
      }
    }
    // Emptied only when a poll said so (no read just to hear EAGAIN each
    // round); a wake that came meanwhile ends the next poll at once.
    if (woken) {
      uint64_t v;
      while (::read(ctx.wake_fd, &v, sizeof v) > 0) {
      }
    }
  }
  if (!batch->records.empty()) {
    dispatch(batch);
  } else {
    stages.Release(batch);
  }
  stages.Finish();
  consumer.Close();  // the consumer thread has ended: safe here
  // Commits the offsets the last checkpoint stored and leaves the group:
  // its partitions go to the other members at once.
  for (auto& k : kafka) k->Close();
  uint64_t unwritten = 0;
  for (const sink::EventSink* s : sinks.all) {
    if (const auto* j = dynamic_cast<const sink::JsonlSink*>(s)) unwritten += j->write_errors();
  }
  uint64_t decided = driver.events();
  if (ctx.decided_total != nullptr) decided = (*ctx.decided_total += driver.events());
  if (outcome == LiveOutcome::kStopped || unwritten > 0) {
    ctx.log(std::string(outcome == LiveOutcome::kStopped ? "stopped" : "reloading") + ": " +
            std::to_string(decided) + " event(s) decided" +
            (unwritten > 0 ? "; " + std::to_string(unwritten) +
                                 " write(s) of the events failed (see above): the last checkpoint "
                                 "is from before them, so the next start decides them again"
                           : ""));
  }
  return outcome;
}

}  // namespace qw::pipeline
