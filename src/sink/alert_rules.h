// What the Alertmanager sink fires (the table in alertmanager_sink.h):
// alerts built from status snapshots, with label and annotation values made
// acceptable to Alertmanager, and their API v2 JSON. Used by
// alertmanager_sink.cc, which keeps the firing set and delivers.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/time.h"
#include "sink/status.h"

namespace qw::sink {

inline constexpr size_t kMaxLabelBytes = 512;  // per label value
inline constexpr size_t kMaxAnnotationBytes = 4096;
inline constexpr std::string_view kWatchdog = "Watchdog";

using Annotations = std::vector<std::pair<std::string, std::string>>;

// A label or annotation value Alertmanager accepts and a pager shows:
// well-formed UTF-8 (a bad byte becomes U+FFFD), control characters (C0,
// DEL, C1) become spaces, and at most `max` bytes, cut on a character
// boundary and marked with "...".
std::string SanitizeLabelValue(std::string_view s, size_t max);
// Prometheus' label name syntax, which Alertmanager enforces.
bool ValidLabelName(std::string_view n);
// Names quorumwatch sets itself (and Prometheus' reserved "__" prefix).
bool ReservedLabel(std::string_view n);

// Labels sorted by name (the map's order), empty values left out (as
// Alertmanager drops them), so equal sets are equal JSON.
nlohmann::ordered_json LabelsJson(const std::map<std::string, std::string>& labels);
// Annotations in their order, empty ones left out, values sanitised.
nlohmann::ordered_json AnnotationsJson(const Annotations& ann);

// One alert as Alertmanager identifies it: its label set. Immutable once
// built, shared between the firing set and the URLs' pending updates.
struct Alert {
  Alert(std::string alertname, nlohmann::ordered_json label_set,
        nlohmann::ordered_json annotation_set, Nanos start)
      : name(std::move(alertname)),
        labels(std::move(label_set)),
        key(DumpJson(labels)),
        annotations(std::move(annotation_set)),
        starts_at(start) {}

  std::string name;                    // alertname
  nlohmann::ordered_json labels;       // object, sorted by name
  std::string key;                     // `labels` as compact JSON: the identity
  nlohmann::ordered_json annotations;  // object
  Nanos starts_at = kNoTime;
};

// The alert as API v2 takes it (labels, annotations, startsAt, endsAt and
// generatorURL when not empty); endsAt is never before startsAt.
nlohmann::ordered_json AlertJson(const Alert& a, Nanos ends, const std::string& generator_url);

// Turns status snapshots into the alerts that should fire. Evaluate keeps
// what it saw of dropped lines and the ban outbox between calls: one
// thread (the detector's) calls it.
class AlertRules {
 public:
  // `static_labels`: the configured labels, values sanitised.
  explicit AlertRules(std::map<std::string, std::string> static_labels = {})
      : static_labels_(std::move(static_labels)) {}

  // An alert with the static labels and these; `own_start` kNoTime when the
  // state has no start time of its own.
  Alert Make(std::string_view name, std::string_view severity, std::string_view chain,
             std::string_view node, std::string_view ns, Nanos own_start,
             const Annotations& ann) const;
  // The alerts a status snapshot calls for. starts_at is the state's own
  // time when it has one, else kNoTime (filled in from the firing set).
  std::vector<Alert> Evaluate(const Status& s, Nanos now);

 private:
  std::map<std::string, std::string> static_labels_;
  uint64_t bad_lines_ = 0;
  Nanos bad_lines_at_ = kNoTime;
  uint64_t write_errors_ = 0;
  Nanos write_errors_at_ = kNoTime;
  Nanos outbox_seen_ = kNoTime;  // when a non-empty ban outbox was first seen
};

}  // namespace qw::sink
