// Metrics sink: serves /metrics (Prometheus text format), /healthz and
// /readyz over HTTP (sink/http_server.h) from its own thread.
//
// /metrics renders the process's Metrics registry plus per-node and
// per-chain gauges rebuilt from each status snapshot (the list with labels
// is in README.md, "Metrics"):
//   quorumwatch_node_{height,in_consensus,seconds_since_commit,
//   out_of_consensus,stalled,banned,ban_held},
//   quorumwatch_missed_precommits_total, quorumwatch_chain_{head_height,halted},
//   the health gauges (bytes and files behind, input outage, caught up, ban
//   outbox) and quorumwatch_events_total{event,severity,chain}.
// /healthz: 200 while the detector thread delivers status snapshots (a
//   stuck pipeline turns it 503 after 30 s).
// /readyz: 200 once every file was read to its end once since start
//   (history caught up), 503 before.
#pragma once

#include <memory>

#include "common/result.h"
#include "sink/event_sink.h"
#include "sink/sink_config.h"

namespace qw::sink {

class MetricsSink : public EventSink {
 public:
  // Binds `listen` ("host:port"; port 0 picks a free one). Refuses an
  // unusable address at start.
  [[nodiscard]] static Result<std::unique_ptr<MetricsSink>> Create(const SinkConfig& config,
                                                                   const SinkContext& ctx);
  ~MetricsSink() override;

  void Write(const Event& e) override;
  void OnStatus(const Status& status) override;
  void Close() override;

  // The port bound (useful with port 0).
  int port() const;

 private:
  struct Impl;
  explicit MetricsSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qw::sink
