// KafkaForwarder: the first half of `repartition: true` (docs/KAFKA.md,
// "Repartition"), for input whose records are not keyed by chain. A member
// of the consumer group `<group>.forward` reads the input topics and hands
// each record on, unchanged, to the by-chain topic: to the partition of its
// chain key (RecordStage::ChainKey of the names its envelope carries), with
// where it was read in headers ("qw-from": <topic>/<partition>/<offset>,
// "qw-key": its key). The second half is an ordinary KafkaInput reading the
// by-chain topic, so a chain's records meet in one partition whatever
// partition they were written to.
//
// Offsets: an input record's offset is stored (for the group's commit) once
// the brokers have its copy; a member that dies forwards again what was
// not committed (the reader drops the repeats by their "qw-from" offset).
//
// Marks: every second, and for every input partition it holds, a record
// with no key and no value and the headers "qw-from" (<topic>/<partition>)
// and "qw-mark" ("end": everything that partition held at some moment since
// the last mark has been handed on, and sits before this mark in every
// by-chain partition; "behind": not so; "gone": the partition was revoked
// from this member, another takes it up) goes to every by-chain partition.
// The reader holds its merge on event time while an input partition it
// has heard of is behind or has not been heard of lately, as it does for a
// partition of its own that is behind: else the nodes whose records wait in
// that input partition would be judged silent.
//
// Threading: all on the reading thread (inside KafkaInput::Poll).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "common/time.h"
#include "record/envelope.h"
#include "record/record_stage.h"
#include "source/kafka_consumer.h"

namespace qw::pipeline {

// The interval between a forwarder's marks, and how long a reader waits
// without a mark before it takes the input partition as behind.
constexpr Nanos kForwardMarkEvery = kSecond;
constexpr Nanos kForwardMarkStale = 10 * kSecond;

// Shared by the forwarder and KafkaInput: "<topic>/<partition>".
std::string TopicPartitionName(const source::TopicPartition& tp);
// A record that is not what its format says: counted (in the partition's
// `*count`, in `*total`, as dropped), logged (the partition's first 3,
// then at powers of two) and skipped.
void CountPoison(const source::TopicPartition& tp, int64_t offset, const std::string& why,
                 uint64_t* count, uint64_t* total, const ComponentCounters& counters,
                 const std::function<void(const std::string&)>& log);

class KafkaForwarder : public source::KafkaHandler {
 public:
  // `consumer`: subscribed to the input topics in the group `<group>.forward`.
  KafkaForwarder(std::string by_chain_topic, record::EnvelopeFormat format,
                 const record::EnvelopeFields& fields,
                 std::unique_ptr<source::KafkaConsumer> consumer, const record::RecordStage* stage,
                 Metrics* metrics, std::function<void(const std::string&)> log);

  // Reads and hands on what is waiting (at most `max_records`); sends the
  // marks that are due; stores the offsets of what the brokers have.
  size_t Poll(size_t max_records);
  bool more() const { return consumer_->more(); }
  int wait_fd() const { return consumer_->wait_fd(); }
  uint64_t poison() const { return poison_; }
  // Per input partition held: records not handed on yet (-1: not known).
  std::map<source::TopicPartition, int64_t> Lags() const;
  // Hands on what was read (waits up to 30 s), stores, leaves the group.
  void Close();

  // KafkaHandler (inside Poll).
  int64_t OnAssigned(const source::TopicPartition& tp) override;
  void BeforeRevoke(const std::vector<source::TopicPartition>& parts) override;
  void OnRevoked(const source::TopicPartition& tp) override;
  void OnRecord(const source::KafkaRecord& r) override;

 private:
  struct Input {
    uint32_t slot = 0;  // its number in delivery tags
    record::EnvelopeFormat format = record::EnvelopeFormat::kAuto;
    uint64_t poison = 0;
    std::set<int64_t> unsent;  // offsets handed on, not yet taken by the brokers
    int64_t next = -1;         // the offset after the last record read
    bool reached_end = false;  // read to its end at some moment since the last mark
    bool leader_down = false;
  };
  // Partitions of the by-chain topic (0: missing; asked at most every 30 s).
  int Partitions();
  void Mark(const source::TopicPartition& tp, std::string_view state);
  // Deliveries -> offsets stored.
  void Acknowledge();

  std::string topic_;
  record::EnvelopeFormat format_;
  std::unique_ptr<source::KafkaConsumer> consumer_;
  const record::RecordStage* stage_;
  std::function<void(const std::string&)> log_;
  record::EnvelopeDecoder decoder_;
  ComponentCounters counters_;
  std::map<source::TopicPartition, Input> inputs_;
  std::vector<source::TopicPartition> slots_;  // slot - 1 -> partition
  std::unordered_map<std::string, std::string> keys_;  // names -> chain key
  int partitions_ = 0;
  Nanos partitions_asked_ = kNoTime;
  bool missing_logged_ = false;  // "does not exist" logged (again once it came and went)
  Nanos marked_ = kNoTime;
  uint64_t poison_ = 0, refused_ = 0;
  std::string from_, name_;  // scratch
};

}  // namespace qw::pipeline
