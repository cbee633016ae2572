// KafkaInput's repartition dedupe across a handoff: a record a forwarder
// handed on twice (it stopped before committing it) is dropped by the
// reader, and still is by whoever resumes the by-chain partition from a
// state written in the middle of the repeats (KafkaOffset::origins,
// docs/KAFKA.md "repartition"). Records are handed to KafkaInput::OnRecord
// as the consumer would (headers qw-from / qw-key); the consumer is never
// polled, so no broker is needed (its bootstrap is a closed loopback port).
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/time.h"
#include "match/registry.h"
#include "pipeline/checkpoint.h"
#include "pipeline/kafka_input.h"
#include "pipeline/ordering.h"
#include "record/naming.h"
#include "record/record_stage.h"
#include "source/kafka_consumer.h"

using namespace qw;

namespace {

constexpr char kByChain[] = "g-by-chain";
constexpr Nanos kT0 = 1735786800LL * kSecond;  // 2025-01-02T03:00:00Z

// One member's reader of the by-chain topic, partition 0.
class Reader {
 public:
  explicit Reader(const std::vector<pipeline::KafkaOffset>& saved = {})
      : reg_(std::move(*match::Registry::LoadEmbedded())),
        stage_(*reg_, routing_, record::StageOptions{}, [](const std::string&) {}),
        ordering_(&stage_, pipeline::Ordering::Options{}, [](pipeline::Batch* b) {
          b->records.clear();
          b->arena.clear();
          return b;
        }) {
    pipeline::KafkaSourceOptions opt;
    opt.consumer.brokers = {"127.0.0.1:9"};
    opt.consumer.topics = {kByChain};
    opt.consumer.group = "g";
    opt.consumer.read_headers = true;
    opt.format = record::EnvelopeFormat::kFluentBit;
    opt.by_chain_topic = kByChain;
    auto c = source::KafkaConsumer::Create(opt.consumer);
    REQUIRE_MESSAGE(c, (c ? "" : c.error().message));
    input_ = std::make_unique<pipeline::KafkaInput>(opt, std::move(*c), &stage_, &ordering_, &next_id_,
                                                    nullptr, [this](const std::string& line) {
                                                      log.push_back(line);
                                                    });
    input_->SetStartOffsets(saved);
    input_->OnAssigned(tp_);
  }
  ~Reader() { input_->Close(); }

  // The record at `offset` here, read at in/0/<from> there.
  void Record(int64_t offset, int64_t from) {
    const std::string value = R"({"log":"3:00AM INF committed state height=)" +
                              std::to_string(1000 + from) +
                              R"( module=state num_txs=0\n","time":"2025-01-02T03:00:00.000Z",)"
                              R"("kubernetes":{"pod_name":"val-a","namespace_name":"cosmos",)"
                              R"("container_name":"node"}})";
    const std::string at = "in/0/" + std::to_string(from);
    source::KafkaRecord r;
    r.topic = kByChain;
    r.partition = 0;
    r.offset = offset;
    r.key = "cosmoshub";
    r.value = value;
    r.timestamp = kT0 + from * kSecond;
    r.from = at;
    r.from_key = "cosmoshub";
    input_->OnRecord(r);
  }
  std::vector<std::pair<std::string, int64_t>> OriginsBefore(int64_t offset) {
    return input_->OriginsBefore(tp_, offset);
  }
  size_t Dropped() const {
    size_t n = 0;
    for (const auto& l : log) n += l.find("was handed on before: dropped") != std::string::npos;
    return n;
  }
  std::vector<std::string> log;

 private:
  const source::TopicPartition tp_{kByChain, 0};
  std::unique_ptr<match::Registry> reg_;
  record::Routing routing_;
  record::RecordStage stage_;
  pipeline::Ordering ordering_;
  uint32_t next_id_ = 0;
  std::unique_ptr<pipeline::KafkaInput> input_;
};

using Origins = std::vector<std::pair<std::string, int64_t>>;

}  // namespace

TEST_CASE("repartition: the input offsets read before a state's offset go with it, and seed the next reader") {
  // The by-chain partition as a forwarder wrote it: in/0 offsets 0..5,
  // then (restarted before its commit) 3..5 again, then 6..9.
  const std::vector<std::pair<int64_t, int64_t>> topic = {
      {0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5},  // first time
      {6, 3}, {7, 4}, {8, 5},                          // handed on again
      {9, 6}, {10, 7}, {11, 8}, {12, 9}};

  // Member A reads up to offset 7 (inside the repeats) and judges what is
  // before it: the state it writes says offset 7, in/0 read up to 5.
  Reader a;
  for (size_t i = 0; i < 8; ++i) a.Record(topic[i].first, topic[i].second);
  CHECK(a.Dropped() == 2);  // offsets 6 and 7: in/0/3 and 4 again
  CHECK(a.OriginsBefore(3) == Origins{{"in/0", 2}});
  CHECK(a.OriginsBefore(7) == Origins{{"in/0", 5}});
  pipeline::KafkaOffset state{kByChain, 0, 7, a.OriginsBefore(7)};
  // Through the checkpoint text, as the changelog carries it.
  pipeline::Checkpoint cp;
  cp.kafka_offsets.push_back(state);
  auto back = pipeline::DecodeCheckpoint(pipeline::EncodeCheckpoint(cp));
  REQUIRE(back);

  SUBCASE("member B resumes at 7 with the origins: the rest of the repeats is dropped there too") {
    Reader b(back->kafka_offsets);
    for (size_t i = 7; i < topic.size(); ++i) b.Record(topic[i].first, topic[i].second);
    CHECK(b.Dropped() == 2);  // offsets 7 and 8: in/0/4 and 5, read before 7 by A
    // What B read from in/0 before 12: 9 (offset 11: in/0/8), and before 9
    // still what A had read (nothing new accepted at 7 and 8).
    CHECK(b.OriginsBefore(9) == Origins{{"in/0", 5}});
    CHECK(b.OriginsBefore(12) == Origins{{"in/0", 8}});
  }
  SUBCASE("without the origins (a state written before them) the repeats after 7 are judged") {
    pipeline::KafkaOffset bare = back->kafka_offsets[0];
    bare.origins.clear();
    Reader b({bare});
    for (size_t i = 7; i < topic.size(); ++i) b.Record(topic[i].first, topic[i].second);
    CHECK(b.Dropped() == 0);
  }
}
