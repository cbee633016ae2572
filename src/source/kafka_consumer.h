// KafkaConsumer: a member of a Kafka consumer group (librdkafka's C API),
// handing on each record with where it comes from. Like the file tailer it
// neither decodes nor frames: the Kafka input (pipeline/kafka_input.h) turns
// records into streams of the one record stage.
//
// Offsets: librdkafka stores none by itself (enable.auto.offset.store=false).
// Store() is called with the offsets the durable state reflects (after the
// events were written and the checkpoint that implies them); those are
// committed every auto.commit.interval.ms and at Close(). At assignment a
// partition starts at the offset the state says (SetStartOffsets), else at
// the group's committed offset, else at its beginning
// (auto.offset.reset=earliest: nothing written before the first start is
// skipped silently).
//
// Threading: Poll and everything it calls back run on one thread; Store()
// may be called from another (librdkafka's handle is thread-safe for it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/time.h"

namespace qw::source {

struct KafkaOptions {
  std::vector<std::string> brokers;
  std::vector<std::string> topics;  // by name
  std::string topic_pattern;        // or a regex (librdkafka's "^..." subscription)
  std::string group;
  // Any librdkafka property (SASL, TLS, session.timeout.ms, ...), applied
  // after quorumwatch's own, so an operator can override them.
  std::vector<std::pair<std::string, std::string>> properties;
  std::function<void(const std::string&)> log;
  // Hand on the "qw-" headers of each record (KafkaRecord::from, ...): for
  // the by-chain topic only, the others have none to look for.
  bool read_headers = false;
};

struct KafkaRecord {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string_view key, value;
  Nanos timestamp = kNoTime;  // the record's (producer's or broker's) time
  // Headers of a record quorumwatch handed on itself (repartition,
  // docs/KAFKA.md): "qw-from" (<topic>/<partition>/<offset> it was read
  // at), "qw-key" (its key there), "qw-mark" (a forwarder's progress
  // mark). Empty when absent.
  std::string_view from, from_key, mark;
};

// (topic, partition)
using TopicPartition = std::pair<std::string, int32_t>;

class KafkaHandler {
 public:
  virtual ~KafkaHandler() = default;
  // Before the partition is read: the offset it starts at (the state's),
  // or -1 for the one given by SetStartOffsets, else the group's.
  virtual int64_t OnAssigned(const TopicPartition& tp) = 0;
  // Before OnAssigned of each of `parts` (assigned together): the moment
  // to fetch what they need all at once.
  virtual void BeforeAssign(const std::vector<TopicPartition>& parts) { (void)parts; }
  // After OnAssigned of every one of them (what BeforeAssign fetched for
  // them can go).
  virtual void AfterAssign() {}
  // Partitions about to be revoked while still this member's (not when
  // lost: another member may own them already): the moment to write their
  // state and store their offsets (committed right after).
  virtual void BeforeRevoke(const std::vector<TopicPartition>& parts) { (void)parts; }
  // Before the partition goes: nothing of it is read after this.
  virtual void OnRevoked(const TopicPartition& tp) = 0;
  virtual void OnRecord(const KafkaRecord& r) = 0;
};

struct PartitionLag {
  TopicPartition tp;
  int64_t position = -1;        // next offset to read (-1: not known yet)
  int64_t high_watermark = -1;  // -1: not known yet
  int64_t low_watermark = -1;
  // Its leader broker is not reachable (as of librdkafka's last statistics,
  // at most a second old): its high watermark is the last one heard.
  bool leader_down = false;

  // Records not read yet (-1: not known). Before a record is consumed the
  // position is not known; an empty partition has nothing to read.
  int64_t lag() const {
    if (high_watermark >= 0 && position >= 0) return std::max<int64_t>(0, high_watermark - position);
    return high_watermark >= 0 && high_watermark == low_watermark ? 0 : -1;
  }
  // Known to be read to its end: the leader reachable (else the last high
  // watermark heard says nothing) and nothing left to read.
  bool at_end() const { return !leader_down && lag() == 0; }
};

class KafkaConsumer {
 public:
  // Fails with librdkafka's reason on a bad property or subscription.
  [[nodiscard]] static Result<std::unique_ptr<KafkaConsumer>> Create(const KafkaOptions& opt);
  ~KafkaConsumer();
  KafkaConsumer(const KafkaConsumer&) = delete;
  KafkaConsumer& operator=(const KafkaConsumer&) = delete;

  // Where assigned partitions start (a checkpoint's offsets). Kept for
  // every later assignment of the same partitions until Store() moves on.
  void SetStartOffsets(const std::map<TopicPartition, int64_t>& offsets);
  // Hands on up to `max_records` records (fewer when none are waiting);
  // rebalances happen inside. Never blocks. Returns the records handed on.
  size_t Poll(KafkaHandler* h, size_t max_records);
  // True when the last Poll stopped at max_records (more are waiting).
  bool more() const { return more_; }
  // Readable when records (or a rebalance) are waiting; drained by Poll.
  int wait_fd() const { return wake_fds_[0]; }
  // Marks these offsets (the next offset to read, per partition) as
  // processed; committed with the next commit. Offsets of partitions no
  // longer assigned are dropped by librdkafka (another member owns them).
  void Store(const std::map<TopicPartition, int64_t>& offsets);
  std::vector<PartitionLag> Lag() const;
  // Stops (true) or resumes fetching a partition (back-pressure).
  void Pause(const TopicPartition& tp, bool pause);
  // Commits what was stored and leaves the group (its partitions go to the
  // other members at once, not after session.timeout.ms).
  void Close();

  // The changelog (state handoff, docs/KAFKA.md): a compacted topic, keyed
  // by chain. These block (at most `timeout`); librdkafka handles of their
  // own, made on first use with the consumer's brokers and properties.
  //
  // Partitions of `topic` (0 when it does not exist).
  [[nodiscard]] Result<int> Partitions(const std::string& topic, Nanos timeout);
  // Creates `topic` with `partitions` partitions, compacted or not (no
  // error when it exists).
  [[nodiscard]] Result<void> CreateTopic(const std::string& topic, int partitions, bool compacted,
                                         Nanos timeout);
  // Partitions of `topic`; when it does not exist, it is created (the
  // first time only: brokers that refuse will not change their mind) with
  // want() partitions (at least 1), compacted or not, and asked again. The
  // creation, or why it failed, is logged.
  [[nodiscard]] Result<int> EnsureTopic(const std::string& topic, const std::function<int()>& want,
                                        bool compacted, Nanos timeout);
  // Partitions `partitions` of `topic`, each from its beginning to its high
  // watermark, all at once (one offsets request per broker, one
  // assignment): per partition, the last value of each key (a tombstone
  // removes the key). Fails unless every one was read to its end.
  using ChangelogValues = std::map<std::string, std::string>;
  [[nodiscard]] Result<std::map<int32_t, ChangelogValues>> ReadChangelogs(
      const std::string& topic, const std::vector<int32_t>& partitions, Nanos timeout);
  // The same for one partition.
  [[nodiscard]] Result<ChangelogValues> ReadChangelog(const std::string& topic, int32_t partition,
                                                      Nanos timeout);
  struct ChangelogRecord {
    int32_t partition;
    std::string key, value;
  };
  // Writes the records and waits (at most `timeout`) until the brokers have
  // them and every earlier write's. Records not acknowledged in time stay
  // queued and go, in order, before any later write's. `if_earlier_done`:
  // while records of an earlier write are still waiting, fails at once
  // without writing (nothing piles up behind a broker that is away).
  [[nodiscard]] Result<void> WriteChangelog(const std::string& topic,
                                            const std::vector<ChangelogRecord>& records,
                                            Nanos timeout, bool if_earlier_done = false);

  // Repartition (docs/KAFKA.md): hands a record on to `topic`/`partition`
  // through a producer of its own (idempotent, so records to one partition
  // keep their order; librdkafka retries until the brokers take them,
  // however long they are away). Waits while librdkafka's queue is full.
  // `tag` comes back from Delivered() once the brokers have the record (or,
  // with `failed`, once they refused it for good: too large, not allowed).
  struct Header {
    const char* name;
    std::string_view value;
  };
  [[nodiscard]] Result<void> Send(const std::string& topic, int32_t partition, std::string_view key,
                                  std::string_view value, const std::vector<Header>& headers,
                                  uint64_t tag);
  struct Delivery {
    uint64_t tag;
    bool failed;
    std::string error;
  };
  // Serves the producer's delivery reports; those since the last call.
  std::vector<Delivery> Delivered();
  // Waits (at most `timeout`) until every record sent is delivered; the
  // records still waiting.
  size_t FlushSends(Nanos timeout);

  struct Impl;  // librdkafka's side (its callbacks reach it)

 private:
  KafkaConsumer() = default;
  std::unique_ptr<Impl> impl_;
  int wake_fds_[2] = {-1, -1};
  bool more_ = false;
};

}  // namespace qw::source
