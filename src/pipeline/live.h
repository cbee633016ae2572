// Live: `quorumwatch run` as a DaemonSet or sidecar. The file tailers feed
// the same record stage, ordering, matchers and detector side as replay;
// history (read_from: beginning, or whatever was written while quorumwatch
// was down) is thus judged exactly as replay judges it. Around that: the
// reading loop (waits on change notifications, signals and timers), health,
// checkpoints, operator requests and status snapshots for the sinks
// (docs/PIPELINE.md).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/file_system.h"
#include "common/metrics.h"
#include "common/result.h"
#include "match/registry.h"
#include "pipeline/batch.h"
#include "pipeline/driver.h"
#include "pipeline/kafka_input.h"
#include "record/decode.h"
#include "record/naming.h"
#include "sink/ban_sink.h"
#include "sink/event_sink.h"

namespace qw::pipeline {

struct FileSourceOptions {
  std::vector<std::string> include, exclude;
  record::LogFormat format = record::LogFormat::kAuto;
  bool read_from_end = true;
  size_t max_line_bytes = 1 << 20;
  Nanos poll_interval = 250 * kMillisecond;
};

struct LiveOptions {
  std::vector<FileSourceOptions> sources;
  std::vector<KafkaSourceOptions> kafka;
  std::string state_dir;
  Nanos checkpoint_interval = 5 * kSecond;
  Nanos input_outage_after = 60 * kSecond;
  int threads = 1;
  // A figures line on stderr this often (0: none): `run --stats`.
  Nanos stats_every = 0;
};

// What the process around the pipeline provides.
struct LiveContext {
  FileSystem* fs = nullptr;
  Metrics* metrics = nullptr;
  std::function<void(const std::string&)> log;
  // Readable when a signal arrived; stays open for the process's life.
  int wake_fd = -1;
  // SIGTERM or SIGINT was received.
  std::function<bool()> stop;
  // SIGHUP was received and a new configuration is ready to run: the run
  // ends (its state checkpointed) so the caller can start the new one.
  std::function<bool()> reload;
  // Operator requests not handed on yet, and where their outcome goes.
  std::function<std::vector<OperatorRequest>()> requests;
  std::function<void(const OperatorRequest&, const std::string&)> answer;
  // Called once the run has started (it can no longer fail to start).
  std::function<void()> running;
  // Events decided over the process's life (runs before a reload
  // included): the run adds its own; the stop message gives the total.
  uint64_t* decided_total = nullptr;
};

enum class LiveOutcome { kStopped, kReload };

struct LiveSinks {
  std::vector<sink::EventSink*> all;    // in order; level-triggered ones get status snapshots
  std::vector<sink::BanSink*> bans;     // also in `all`: their outbox is part of health
};

// Runs until stopped or reloaded. Fails only when it cannot start (the
// state directory's checkpoint cannot be read is not a failure: it is
// reported and the run starts without it).
[[nodiscard]] Result<LiveOutcome> RunLive(const LiveOptions& opt, match::Registry& registry,
                                          const record::Routing& routing,
                                          const Topology& topology, const LiveSinks& sinks,
                                          const LiveContext& ctx);

}  // namespace qw::pipeline
