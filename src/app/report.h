// The postmortem report: `quorumwatch replay --report FILE.html` writes one
// self-contained HTML page (inline CSS, JavaScript and SVG) of what the
// replay saw, per chain: heights and lag over time, condition spans,
// event markers with their evidence lines, the summary and thresholds.
// What it holds and its bounds: docs/REPORT.md.
//
// It is a sink (the events in output order) and a detector observer (each
// height reached, the evidence behind each node event). Detector's thread.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/event.h"
#include "common/summary.h"
#include "detect/detector.h"
#include "sink/event_sink.h"

namespace qw::app {

// At most about `cap` items spread evenly over everything added: when
// full, every other item goes and from then on only every stride-th added
// one is kept. The result depends only on what was added.
template <typename T>
class Thinned {
 public:
  explicit Thinned(size_t cap) : cap_(cap < 2 ? 2 : cap) {}
  void Add(T v) {
    if (seen_++ % stride_ != 0) return;
    items_.push_back(std::move(v));
    if (items_.size() < cap_) return;
    size_t kept = 0;
    for (size_t i = 0; i < items_.size(); i += 2) items_[kept++] = std::move(items_[i]);
    items_.resize(kept);
    stride_ *= 2;
  }
  const std::vector<T>& items() const { return items_; }
  uint64_t seen() const { return seen_; }

 private:
  size_t cap_;
  uint64_t stride_ = 1, seen_ = 0;
  std::vector<T> items_;
};

class Report : public sink::EventSink, public detect::DetectorObserver {
 public:
  struct Options {
    Nanos since = kNoTime, until = kNoTime;  // replay --since/--until
    std::vector<std::string> files;
    std::string generator;  // "quorumwatch VERSION"
    // Bounds (docs/REPORT.md): height samples over all nodes, markers per
    // chain and kind, evidence lines per event and bytes per line.
    size_t height_points = 60000;
    size_t markers_per_kind = 2000;
    size_t evidence_lines = 6;
    size_t evidence_line_bytes = 300;
  };
  explicit Report(Options opt);

  void Write(const Event& e) override;
  void OnHeight(int n, const detect::NodeSpec& node, const detect::ChainSpec& chain, Nanos at,
                int64_t height, int64_t head) override;
  void OnNodeEvent(int n, const detect::ChainSpec& chain, const Event& e,
                   const std::vector<std::string>& evidence) override;

  // After the replay. `end`: the replay's last time (the window's end when
  // the input went past it); `summary`: the detector's.
  nlohmann::ordered_json Data(Nanos end, const std::vector<NodeSummary>& summary) const;
  // The page: the template with Data in it.
  std::string Page(Nanos end, const std::vector<NodeSummary>& summary) const;

 private:
  struct Sample {
    Nanos at;
    int64_t height, lag;
  };
  struct NodeData {
    std::string name, namespace_;
    Thinned<Sample> heights{4096};
    Sample last{kNoTime, -1, 0};
  };
  struct Span {
    std::string node;  // "" chain-level
    std::string kind;  // stalled | out_of_consensus | syncing | halted | upgrade_halt | banned
    Nanos start = kNoTime, end = kNoTime;
    std::string reason, rail;
    bool held = false;
  };
  struct Marker {
    Nanos at;
    std::string id, kind, severity, node, json;
    int64_t height;
    std::vector<std::string> evidence;
  };
  struct ChainData {
    std::string name, family;
    bool have_thresholds = false;
    detect::Thresholds thresholds;
    std::map<std::string, NodeData> nodes;  // by "namespace/name"
    std::vector<Span> spans;
    std::map<std::pair<std::string, std::string>, size_t> open;  // (node, kind) -> spans index
    std::map<std::string, Thinned<Marker>> markers;               // by kind
  };

  ChainData& Chain(const std::string& name);
  void See(Nanos t);
  bool InWindow(Nanos t) const;
  void OpenSpan(ChainData& c, const std::string& node, const std::string& kind, Nanos at,
            std::string reason = "", bool held = false, std::string rail = "");
  void CloseSpan(ChainData& c, const std::string& node, const std::string& kind, Nanos at);

  Options opt_;
  std::map<std::string, ChainData> chains_;
  std::vector<ChainData*> by_node_;  // node index -> its chain (OnHeight's cache)
  std::vector<NodeData*> node_data_;
  std::vector<int> node_chain_;
  std::unordered_map<std::string, std::vector<std::string>> evidence_;  // event id -> lines
  Nanos first_ = kNoTime, last_ = kNoTime;  // times seen
};

}  // namespace qw::app
