// The alerts of the Alertmanager sink (alert_rules.h).
#include "sink/alert_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>

#include "common/json.h"

namespace qw::sink {
namespace {

using Json = nlohmann::ordered_json;

constexpr Nanos kDoubleSignHold = 3600 * kSecond;
constexpr Nanos kDroppingWindow = 600 * kSecond;
constexpr uint64_t kLaggingBytes = uint64_t{64} << 20;
constexpr Nanos kBanUndeliveredAfter = 120 * kSecond;

std::string Time(Nanos t) { return FormatRfc3339Millis(t); }

}  // namespace

std::string SanitizeLabelValue(std::string_view s, size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  bool cut = false;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = Utf8SeqLen(s, i, &cp);
    std::string_view piece;
    if (n == 0) {
      piece = "\xEF\xBF\xBD";
      n = 1;
    } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
      piece = " ";
    } else {
      piece = s.substr(i, n);
    }
    if (out.size() + piece.size() > max) {
      cut = true;
      break;
    }
    out.append(piece);
    i += n;
  }
  if (cut) {
    // Make room for the marker without splitting a character.
    while (!out.empty() && out.size() + 3 > max) {
      size_t k = out.size() - 1;
      while (k > 0 && (static_cast<unsigned char>(out[k]) & 0xC0) == 0x80) --k;
      out.resize(k);
    }
    out.append("...");
  }
  return out;
}

bool ValidLabelName(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool ReservedLabel(std::string_view n) {
  return n == "alertname" || n == "chain" || n == "node" || n == "namespace" || n == "severity" ||
         n.substr(0, 2) == "__";
}

nlohmann::ordered_json LabelsJson(const std::map<std::string, std::string>& labels) {
  Json out = Json::object();
  for (const auto& [k, v] : labels) {
    if (!v.empty()) out.emplace(k, v);  // Alertmanager drops empty labels: absent is the same
  }
  return out;
}

nlohmann::ordered_json AnnotationsJson(const Annotations& ann) {
  Json out = Json::object();
  for (const auto& [k, v] : ann) {
    if (!v.empty()) out.emplace(k, SanitizeLabelValue(v, kMaxAnnotationBytes));
  }
  return out;
}

nlohmann::ordered_json AlertJson(const Alert& a, Nanos ends, const std::string& generator_url) {
  Json j = Json::object();
  j.emplace("labels", Json(a.labels));
  j.emplace("annotations", Json(a.annotations));
  j.emplace("startsAt", Time(a.starts_at));
  j.emplace("endsAt", Time(std::max(ends, a.starts_at)));
  if (!generator_url.empty()) j.emplace("generatorURL", generator_url);
  return j;
}

Alert AlertRules::Make(std::string_view name, std::string_view severity, std::string_view chain,
                       std::string_view node, std::string_view ns, Nanos own_start,
                       const Annotations& ann) const {
  std::map<std::string, std::string> labels = static_labels_;
  labels["alertname"] = SanitizeLabelValue(name, kMaxLabelBytes);
  labels["severity"] = SanitizeLabelValue(severity, kMaxLabelBytes);
  labels["chain"] = SanitizeLabelValue(chain, kMaxLabelBytes);
  labels["node"] = SanitizeLabelValue(node, kMaxLabelBytes);
  labels["namespace"] = SanitizeLabelValue(ns, kMaxLabelBytes);
  return Alert(std::string(name), LabelsJson(labels), AnnotationsJson(ann), own_start);
}

std::vector<Alert> AlertRules::Evaluate(const Status& s, Nanos now) {
  std::vector<Alert> out;
  auto h = [](int64_t v) { return v < 0 ? std::string("unknown") : std::to_string(v); };
  auto t = [](Nanos v) { return v == kNoTime ? std::string("unknown") : Time(v); };
  std::map<std::string, int64_t> heads;
  for (const ChainStatus& c : s.chains) heads[c.name] = c.head;

  for (const NodeStatus& n : s.nodes) {
    if (n.retired) continue;  // its log is gone: nothing to say about it
    std::string who = n.node + " on " + n.chain;
    int64_t head = heads.count(n.chain) ? heads[n.chain] : -1;
    auto add = [&](std::string_view name, std::string_view severity, Nanos start,
                   Annotations ann) {
      if (!n.validator.empty()) ann.emplace_back("validator", n.validator);
      out.push_back(Make(name, severity, n.chain, n.node, n.namespace_, start, ann));
    };
    if (n.signer && n.missed_window > 0 && n.missed_in_window > n.missed_max) {
      add("ValidatorMissedPrecommits", "warning", kNoTime,
          {{"summary", fmt::format("{} missed {} of its last {} precommits (more than {})", who,
                                   n.missed_in_window, n.missed_window, n.missed_max)},
           {"description",
            fmt::format("The validator signed too few of the recent heights: {} missed in the "
                        "window of {} (threshold {}), {} missed since quorumwatch started "
                        "following it. Last committed height {}.",
                        n.missed_in_window, n.missed_window, n.missed_max, n.missed_total,
                        h(n.height))},
           {"missed_in_window", std::to_string(n.missed_in_window)},
           {"missed_window", std::to_string(n.missed_window)},
           {"missed_max", std::to_string(n.missed_max)},
           {"height", h(n.height)}});
    }
    if (n.stalled) {
      add("NodeStalled", "warning", n.stalled_since,
          {{"summary", fmt::format("{} has committed no block since {} (height {})", who,
                                   t(n.last_advance), h(n.height))},
           {"description",
            fmt::format("No height advance for longer than the chain's stall_after while the "
                        "node's log still arrives. Last committed height {} at {}; chain head "
                        "{}.",
                        h(n.height), t(n.last_advance), h(head))},
           {"height", h(n.height)},
           {"last_commit", t(n.last_advance)},
           {"since", t(n.stalled_since)}});
    }
    if (n.out_of_consensus) {
      // Critical for a signer: it misses blocks and heads for a ban.
      add("NodeOutOfConsensus", n.signer ? "critical" : "warning", n.out_of_consensus_since,
          {{"summary", fmt::format("{} is out of consensus ({}) since {}", who,
                                   n.out_of_consensus_reason, t(n.out_of_consensus_since))},
           {"description",
            fmt::format("Reason: {}. Height {}, chain head {}. After ban_after out of "
                        "consensus (period started {}) a ban is decided so the standby "
                        "takes over.",
                        n.out_of_consensus_reason, h(n.height), h(head), t(n.period_start))},
           {"reason", n.out_of_consensus_reason},
           {"height", h(n.height)},
           {"chain_head", h(head)},
           {"since", t(n.out_of_consensus_since)}});
    }
    if (n.consensus_failure) {
      add("ConsensusFailure", "critical", n.consensus_failure_at,
          {{"summary", fmt::format("{} logged CONSENSUS FAILURE at height {}", who,
                                   h(n.consensus_failure_height))},
           {"description",
            fmt::format("The node's consensus stopped with a failure at {} (height {}). The "
                        "alert lasts until the node commits a new height.",
                        t(n.consensus_failure_at), h(n.consensus_failure_height))},
           {"height", h(n.consensus_failure_height)},
           {"since", t(n.consensus_failure_at)}});
    }
    Nanos ref = s.detector_time != kNoTime ? s.detector_time : s.now;
    if (n.double_sign && n.double_sign_at != kNoTime &&
        ref - n.double_sign_at < kDoubleSignHold) {
      add("DoubleSignRisk", n.double_sign_critical ? "critical" : "warning", n.double_sign_at,
          {{"summary", fmt::format("{}: double-sign risk ({}) at height {}", who,
                                   n.double_sign_reason, h(n.double_sign_height))},
           {"description",
            fmt::format("{} at {} (height {}). The alert lasts an hour after the latest risk.",
                        n.double_sign_critical
                            ? "Our validator may sign conflicting votes: stop all but one signer"
                            : "Two of our nodes sign for the same validator: only one producer "
                              "should be live",
                        t(n.double_sign_at), h(n.double_sign_height))},
           {"reason", n.double_sign_reason},
           {"height", h(n.double_sign_height)},
           {"since", t(n.double_sign_at)}});
    }
    if (n.banned) {
      add("NodeBanned", "critical", n.banned_at,
          {{"summary", fmt::format("{} is banned since {}", who, t(n.banned_at))},
           {"description",
            fmt::format("The node was out of consensus for ban_after: the ban controller was "
                        "asked to take it out of service (out-of-consensus period started {}).",
                        t(n.period_start))},
           {"height", h(n.height)},
           {"since", t(n.banned_at)}});
    }
    if (n.ban_held && !n.banned) {
      // An operator's own hold is known to them; a rail holding a due
      // ban leaves a broken node in service: someone must act.
      add("NodeBanHeld", n.operator_hold ? "warning" : "critical", kNoTime,
          {{"summary", fmt::format("A ban of {} is due but held back ({})", who,
                                   n.ban_held_rail.empty() ? "hold" : n.ban_held_rail)},
           {"description",
            fmt::format("The node has been out of consensus for ban_after (period started {}) "
                        "but the ban is held by '{}'; the standby does not take over.",
                        t(n.period_start), n.ban_held_rail)},
           {"rail", n.ban_held_rail},
           {"since", t(n.period_start)}});
    }
  }

  for (const ChainStatus& c : s.chains) {
    if (!c.halted) continue;
    out.push_back(
        Make("ChainHalted", "warning", c.name, "", "", c.halted_at,
             {{"summary", fmt::format("Chain {} is halted at height {} since {}", c.name,
                                      h(c.halt_height), t(c.halted_at))},
              {"description",
               "Every visible node stopped at the same height (or an upgrade halt was logged): "
               "nodes are not judged stalled or out of consensus while the chain is halted."},
              {"height", h(c.halt_height)},
              {"since", t(c.halted_at)}}));
  }

  const HealthStatus& hs = s.health;
  if (hs.input_outage) {
    out.push_back(Make("QuorumwatchInputStalled", "warning", "", "", "", kNoTime,
                       {{"summary", fmt::format("quorumwatch receives no log line from "
                                                "any stream (the last one at {})",
                                                t(hs.last_input))},
                        {"description",
                         "No stream has produced a line for input_outage_after: stalls are "
                         "not judged meanwhile. Check the log files, the runtime and the "
                         "mounts."},
                        {"since", t(hs.last_input)}}));
  }
  if (hs.bytes_behind > kLaggingBytes) {
    out.push_back(
        Make("QuorumwatchLagging", "warning", "", "", "", kNoTime,
             {{"summary", fmt::format("quorumwatch is {} MiB behind the logs in {} file(s)",
                                      hs.bytes_behind >> 20, hs.files_behind)},
              {"description", "Reading falls behind what the nodes write: alerts come late."},
              {"bytes_behind", std::to_string(hs.bytes_behind)}}));
  }
  uint64_t bad = hs.lines_cut + hs.lines_rejected;
  if (bad > bad_lines_) bad_lines_at_ = now;
  bad_lines_ = bad;
  if (bad_lines_at_ != kNoTime && now - bad_lines_at_ < kDroppingWindow) {
    out.push_back(
        Make("QuorumwatchDroppingLines", "warning", "", "", "", kNoTime,
             {{"summary", fmt::format("quorumwatch cut or rejected log lines in the last 10 "
                                      "minutes ({} cut, {} rejected since start)",
                                      hs.lines_cut, hs.lines_rejected)},
              {"description",
               "Lines over max_line_bytes are cut; undecodable lines are skipped. "
               "What they said is not judged."},
              {"lines_cut", std::to_string(hs.lines_cut)},
              {"lines_rejected", std::to_string(hs.lines_rejected)}}));
  }
  if (hs.event_write_errors > write_errors_) write_errors_at_ = now;
  write_errors_ = hs.event_write_errors;
  if (write_errors_at_ != kNoTime && now - write_errors_at_ < kDroppingWindow) {
    out.push_back(
        Make("QuorumwatchEventsUnwritten", "critical", "", "", "", kNoTime,
             {{"summary", fmt::format("quorumwatch failed to write events in the last 10 "
                                      "minutes ({} since start)",
                                      hs.event_write_errors)},
              {"description",
               "The events file could not be written (disk full, I/O error): events are "
               "missing from it; no checkpoint is written meanwhile, so a restart reads "
               "those lines again."},
              {"event_write_errors", std::to_string(hs.event_write_errors)}}));
  }
  if (hs.checkpoint_failing) {
    out.push_back(Make(
        "QuorumwatchCheckpointFailing", "warning", "", "", "", kNoTime,
        {{"summary", fmt::format("quorumwatch cannot write its checkpoint ({} failed write(s) "
                                 "since start): {}",
                                 hs.checkpoint_errors, hs.checkpoint_error)},
         {"description",
          "state_dir is full, read-only or failing. Detection goes on; a restart now would "
          "resume from the last checkpoint written and read those lines again."},
         {"last_checkpoint", hs.last_checkpoint != kNoTime ? t(hs.last_checkpoint) : "never"}}));
  }
  if (hs.ban_outbox_pending == 0) {
    outbox_seen_ = kNoTime;
  } else if (outbox_seen_ == kNoTime) {
    outbox_seen_ = now;
  }
  // Undelivered since the decision, but not before this sink saw it (a
  // decision replayed from old history is not two minutes late at once).
  Nanos since = outbox_seen_;
  if (since != kNoTime && hs.ban_outbox_oldest != kNoTime) {
    since = std::max(since, hs.ban_outbox_oldest);
  }
  if (since != kNoTime && now - since > kBanUndeliveredAfter) {
    out.push_back(
        Make("QuorumwatchBanUndelivered", "critical", "", "", "", kNoTime,
             {{"summary", fmt::format("{} ban decision(s) not delivered to the ban controller, "
                                      "the oldest since {}",
                                      hs.ban_outbox_pending, t(hs.ban_outbox_oldest))},
              {"description",
               "The failover a ban asks for has not happened: check the ban "
               "controller and quorumwatch's log."},
              {"pending", std::to_string(hs.ban_outbox_pending)},
              {"since", t(hs.ban_outbox_oldest)}}));
  }
  return out;
}

}  // namespace qw::sink
