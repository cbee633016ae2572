// Checkpoint: what a restart needs (docs/PIPELINE.md, "Checkpoints"), kept
// in state_dir/checkpoint.json and replaced atomically. It pairs the
// detector state with the resume position of every stream that state has
// seen, and holds the events decided but not yet written (their time
// equals the watermark), so a crash right after a checkpoint loses none.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/event.h"
#include "common/file_identity.h"
#include "common/result.h"
#include "common/time.h"

namespace qw::pipeline {

struct SavedStream {
  std::string path;
  FileIdentity identity;
  uint64_t offset = 0;       // resume position
  std::string family;        // the stream's family, when decided
  Nanos last_time = kNoTime; // its latest record time
};

// Kafka sources: the next offset to read of a partition, as far as this
// checkpoint's state reflects it (docs/KAFKA.md).
struct KafkaOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  // repartition (a by-chain partition): per input partition ("<topic>/<p>")
  // whose records come here, the input offset of the last of them read
  // before `offset`. Whoever resumes at `offset` drops a record handed on
  // again (its input offset not past this) as the member that wrote it did.
  std::vector<std::pair<std::string, int64_t>> origins;
};

// How a Kafka partition's streams are named (their paths, in checkpoints
// and to the driver): "kafka:<topic>/<partition>/<namespace>/<pod>/<container>".
// The part every stream of one partition starts with.
inline std::string KafkaStreamPrefix(const std::string& topic, int32_t partition) {
  return "kafka:" + topic + "/" + std::to_string(partition) + "/";
}

struct Checkpoint {
  Nanos written = 0;  // wall clock
  std::vector<std::pair<std::string, std::string>> chains;  // name, family
  std::vector<SavedStream> streams;
  std::vector<Event> pending;
  std::vector<KafkaOffset> kafka_offsets;
  nlohmann::ordered_json detector;  // detect::EncodeStateJson (null: none)
};

// Version 2 (version 1, which named its streams "files" and had no pending
// events, is still read).
std::string EncodeCheckpoint(const Checkpoint& cp);
[[nodiscard]] Result<Checkpoint> DecodeCheckpoint(std::string_view text);

// In state_dir: the checkpoint, and the one it replaced (kept for when the
// newest is damaged: a torn write, a disk fault, an edit by hand).
inline constexpr char kCheckpointFile[] = "checkpoint.json";
inline constexpr char kPreviousCheckpointFile[] = "checkpoint.json.prev";

}  // namespace qw::pipeline
