// Alertmanager sink: pushes alerts to Prometheus Alertmanager's API v2
// (POST {url}/api/v2/alerts), the way Prometheus itself does.
//
// Alerts are level-triggered from the status snapshots (sink/status.h), one
// alert per (alertname, chain, node); retired nodes raise no node alerts.
//   alertname                  fires while                            severity
//   ValidatorMissedPrecommits  missed_in_window > missed_max (signers) warning
//   NodeStalled                stalled                                warning
//   NodeOutOfConsensus         out of consensus                       critical for a signer
//                                                                     (it misses blocks and heads
//                                                                     for a ban), else warning
//   ConsensusFailure           consensus failure until the node       critical
//                              advances again
//   DoubleSignRisk             for an hour (detector time) after the  critical (conflicting votes),
//                              latest double-sign risk                warning (dual active signer)
//   ChainHalted                chain halted (no node label)           warning
//   NodeBanned                 banned                                 critical
//   NodeBanHeld                a due ban held back                    critical; warning when held
//                                                                     by an operator's hold
//   Watchdog                   always, while quorumwatch runs         none
//   QuorumwatchInputStalled    input outage                           warning
//   QuorumwatchLagging         bytes behind over 64 MiB               warning
//   QuorumwatchDroppingLines   lines cut or rejected in the last      warning
//                              10 minutes
//   QuorumwatchEventsUnwritten a write of the events file failed in    critical
//                              the last 10 minutes
//   QuorumwatchBanUndelivered  a ban decision undelivered for over    critical
//                              2 minutes (as seen by this sink)
// Labels: alertname, severity, chain, node, namespace (when known; empty
// values are left out, as Alertmanager drops them) and the configured
// static labels (which may not use those names). Values are valid UTF-8
// without control characters, at most 512 bytes. Annotations: summary (one
// sentence), description, and the evidence (reason, height, since, ...).
// startsAt is the state's own time (stalled_since, out_of_consensus_since,
// banned_at, ...) when it has one, else when the sink first saw the alert.
//
// While history is read (health.caught_up false: after a start, a restart
// after downtime) the state is a past one: nothing fires or resolves from
// it; alerts firing before a restart go on being re-sent as they were.
//
// Firing alerts are re-sent every resend_interval with endsAt = now +
// 4 x resend_interval; a new alert is sent at once, and an alert that stops
// firing is sent once more at once with endsAt = now (resolved), then
// forgotten. Every URL gets every alert, each from its own thread with its
// own pending updates (the latest per alert) and retry backoff (1 s doubling
// to 30 s), so a slow or dead Alertmanager never blocks the detector or the
// other URLs. When no status snapshot comes for max(2 min, 3 x
// resend_interval) the detector is taken for wedged and nothing is re-sent,
// so the Watchdog expires and its absence pages.
//
// The set of alerts last sent as firing is kept in
// state_dir/alertmanager.json, so after a restart still-firing alerts are
// re-sent and ones that ended while quorumwatch was down are resolved (at
// the first status snapshot). Close resolves nothing, the Watchdog
// included: alerts run out at their endsAt, as when Prometheus stops.
//
// Which alerts fire, and their labels and annotations: sink/alert_rules.h.
//
// Counters (kind "sink", component "alertmanager"): received = alert
// changes (an alert starting or ending), processed = alerts delivered (per
// URL), dropped = updates given up (rejected with a 4xx, a resolve older
// than its alert's endsAt, left at shutdown), errors = failed POSTs.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/result.h"
#include "sink/alert_rules.h"
#include "sink/event_sink.h"
#include "sink/sink_config.h"

namespace qw::sink {

// Reads the state file's text (the alerts a previous run left firing) into
// `restored`, by key; returns what is wrong with it ("" when nothing). The
// Watchdog is never restored. Exposed for the fuzz target.
std::string ParseAlertmanagerState(const std::string& text,
                                   std::map<std::string, std::shared_ptr<const Alert>>* restored);

class AlertmanagerSink : public EventSink {
 public:
  // Refuses a bad configuration (file:line: reason).
  [[nodiscard]] static Result<std::unique_ptr<AlertmanagerSink>> Create(const SinkConfig& config,
                                                                        const SinkContext& ctx);
  ~AlertmanagerSink() override;

  void Write(const Event& e) override;
  void OnStatus(const Status& status) override;
  // Sends what is pending for up to 3 seconds (plus a request already in
  // flight, at most `timeout`), then stops the threads.
  void Close() override;

 private:
  struct Impl;
  explicit AlertmanagerSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qw::sink
