#include "app/report.h"

#include <algorithm>

#include "common/json.h"

namespace qw::app {

// The page template (src/app/report_page.html), built in.
extern const std::string_view kReportPage;

namespace {

using Json = nlohmann::ordered_json;

int64_t Ms(Nanos t) { return t / kMillisecond; }

// Points per node, evenly spaced, that carry its lag between its heights:
// 400, fewer when there are over 100 nodes (40,000 in all, at least 50).
int LagPoints(size_t nodes) {
  return static_cast<int>(std::clamp<size_t>(40000 / std::max<size_t>(1, nodes), 50, 400));
}

// A detail value (already JSON) as a string, "" when absent or not a string.
std::string DetailString(const Event& e, std::string_view key) {
  for (const auto& [k, v] : e.detail) {
    if (k != key) continue;
    auto parsed = ParseJson(v);
    if (parsed && parsed->is_string()) return parsed->get<std::string>();
  }
  return "";
}

bool DetailTrue(const Event& e, std::string_view key) {
  for (const auto& [k, v] : e.detail) {
    if (k == key) return v == "true";
  }
  return false;
}

std::string NodeKey(const std::string& namespace_, const std::string& name) {
  return namespace_.empty() ? name : namespace_ + "/" + name;
}

}  // namespace

Report::Report(Options opt) : opt_(std::move(opt)) {}

Report::ChainData& Report::Chain(const std::string& name) {
  auto [it, added] = chains_.try_emplace(name);
  if (added) it->second.name = name;
  return it->second;
}

void Report::See(Nanos t) {
  if (t == kNoTime) return;
  if (first_ == kNoTime || t < first_) first_ = t;
  if (last_ == kNoTime || t > last_) last_ = t;
}

bool Report::InWindow(Nanos t) const {
  return (opt_.since == kNoTime || t >= opt_.since) && (opt_.until == kNoTime || t < opt_.until);
}

void Report::OnHeight(int n, const detect::NodeSpec& node, const detect::ChainSpec& chain,
                      Nanos at, int64_t height, int64_t head) {
  const size_t i = static_cast<size_t>(n);
  if (i >= node_data_.size()) {
    node_data_.resize(i + 1, nullptr);
    node_chain_.resize(i + 1, -1);
  }
  // A node moves to another chain when a signer's stream named it first.
  if (node_data_[i] == nullptr || node_chain_[i] != node.chain) {
    ChainData& c = Chain(chain.name);
    c.family = chain.family;
    c.thresholds = chain.thresholds;
    c.have_thresholds = true;
    NodeData& d = c.nodes[NodeKey(node.namespace_, node.name)];
    d.name = node.name;
    d.namespace_ = node.namespace_;
    node_data_[i] = &d;
    node_chain_[i] = node.chain;
  }
  if (!InWindow(at)) return;
  See(at);
  NodeData& d = *node_data_[i];
  const Sample s{at, height, std::max<int64_t>(0, head - height)};
  d.heights.Add(s);
  d.last = s;
}

void Report::OnNodeEvent(int n, const detect::ChainSpec& chain, const Event& e,
                         const std::vector<std::string>& evidence) {
  (void)n;
  ChainData& c = Chain(chain.name);
  if (!c.have_thresholds) {
    c.family = chain.family;
    c.thresholds = chain.thresholds;
    c.have_thresholds = true;
  }
  if (!InWindow(e.time)) return;
  // Missed precommits are many: the line that decided each is enough.
  const size_t keep = e.kind == EventKind::kMissedPrecommit ? 1 : opt_.evidence_lines;
  std::vector<std::string> lines;
  for (size_t k = evidence.size() > keep ? evidence.size() - keep : 0; k < evidence.size(); ++k) {
    std::string_view l = evidence[k];
    if (l.size() > opt_.evidence_line_bytes) {
      // Cut on a character boundary.
      size_t cut = opt_.evidence_line_bytes;
      while (cut > 0 && (static_cast<unsigned char>(l[cut]) & 0xC0) == 0x80) --cut;
      lines.push_back(std::string(l.substr(0, cut)) + "…");
    } else {
      lines.emplace_back(l);
    }
  }
  evidence_[e.id] = std::move(lines);
}

void Report::OpenSpan(ChainData& c, const std::string& node, const std::string& kind, Nanos at,
                  std::string reason, bool held, std::string rail) {
  auto key = std::make_pair(node, kind);
  if (c.open.count(key) != 0) return;  // already open (a repeat)
  Span s;
  s.node = node;
  s.kind = kind;
  s.start = at;
  s.reason = std::move(reason);
  s.held = held;
  s.rail = std::move(rail);
  c.open[key] = c.spans.size();
  c.spans.push_back(std::move(s));
}

void Report::CloseSpan(ChainData& c, const std::string& node, const std::string& kind, Nanos at) {
  auto it = c.open.find(std::make_pair(node, kind));
  if (it == c.open.end()) return;
  c.spans[it->second].end = at;
  c.open.erase(it);
}

void Report::Write(const Event& e) {
  ChainData& c = Chain(e.chain);
  const std::string node = e.node.empty() ? "" : NodeKey(e.namespace_, e.node);
  const Nanos t = e.time;
  // Spans from the events that open and close them (all events: a span
  // that began before --since is shown from the window's start).
  switch (e.kind) {
    case EventKind::kNodeStalled: OpenSpan(c, node, "stalled", t); break;
    case EventKind::kNodeRecovered:
      CloseSpan(c, node, "stalled", t);
      CloseSpan(c, node, "upgrade_halt", t);
      break;
    case EventKind::kOutOfConsensus:
      OpenSpan(c, node, "out_of_consensus", t, DetailString(e, "reason"));
      break;
    case EventKind::kBackInConsensus:
      CloseSpan(c, node, "out_of_consensus", t);
      CloseSpan(c, node, "ban_held", t);  // the period ended: nothing held any more
      break;
    case EventKind::kNodeSyncing: OpenSpan(c, node, "syncing", t); break;
    case EventKind::kNodeSynced: CloseSpan(c, node, "syncing", t); break;
    case EventKind::kChainHalted: OpenSpan(c, "", "halted", t, DetailString(e, "reason")); break;
    case EventKind::kChainResumed:
      CloseSpan(c, "", "halted", t);
      for (auto it = c.open.begin(); it != c.open.end();) {
        auto next = std::next(it);
        if (it->first.second == "upgrade_halt") CloseSpan(c, it->first.first, "upgrade_halt", t);
        it = next;
      }
      break;
    case EventKind::kUpgradeHalt: OpenSpan(c, node, "upgrade_halt", t); break;
    case EventKind::kBan:
      if (DetailTrue(e, "held")) {
        OpenSpan(c, node, "ban_held", t, DetailString(e, "reason"), true, DetailString(e, "rail"));
      } else {
        CloseSpan(c, node, "ban_held", t);
        OpenSpan(c, node, "banned", t, DetailString(e, "reason"));
      }
      break;
    case EventKind::kUnban:
      CloseSpan(c, node, "ban_held", t);
      CloseSpan(c, node, "banned", t);
      break;
    case EventKind::kNodeReplaced:
      // Gone (a newer pod took its place): what was open about it ends here.
      for (const char* span : {"stalled", "out_of_consensus", "ban_held", "syncing", "upgrade_halt"}) {
        CloseSpan(c, node, span, t);
      }
      break;
    default: break;
  }
  auto ev = evidence_.find(e.id);
  std::vector<std::string> evidence;
  if (ev != evidence_.end()) {
    evidence = std::move(ev->second);
    evidence_.erase(ev);
  }
  if (!InWindow(t)) return;
  See(t);
  Marker m;
  m.at = t;
  m.id = e.id;
  m.kind = std::string(EventKindName(e.kind));
  m.severity = std::string(SeverityName(e.severity));
  m.node = node;
  m.height = e.height;
  AppendEventJson(m.json, e);
  m.evidence = std::move(evidence);
  auto [it, added] = c.markers.try_emplace(m.kind, opt_.markers_per_kind);
  it->second.Add(std::move(m));
}

Json Report::Data(Nanos end, const std::vector<NodeSummary>& summary) const {
  Nanos start = opt_.since != kNoTime ? opt_.since : first_;
  if (end == kNoTime || (last_ != kNoTime && last_ > end)) end = last_;
  if (start == kNoTime) start = end;
  if (end == kNoTime) start = end = 0;
  Json doc = Json::object();
  doc["title"] = "quorumwatch replay report";
  doc["generator"] = opt_.generator;
  doc["files"] = opt_.files;
  doc["start"] = Ms(start);
  doc["end"] = Ms(end);
  Json window = Json::object();
  window["since"] = opt_.since == kNoTime ? Json(nullptr) : Json(Ms(opt_.since));
  window["until"] = opt_.until == kNoTime ? Json(nullptr) : Json(Ms(opt_.until));
  doc["window"] = std::move(window);

  // The height budget is shared out over all nodes.
  size_t node_count = 0;
  for (const auto& [name, c] : chains_) node_count += c.nodes.size();
  const size_t per_node = std::max<size_t>(64, opt_.height_points / std::max<size_t>(1, node_count));
  const int lag_points = LagPoints(node_count);

  Json chains = Json::array();
  for (const auto& [name, c] : chains_) {
    Json ch = Json::object();
    ch["name"] = c.name;
    ch["family"] = c.family;
    Json th = Json::object();
    if (c.have_thresholds) {
      const detect::Thresholds& t = c.thresholds;
      th["stall_after"] = FormatDuration(t.stall_after);
      th["max_lag"] = std::to_string(t.max_lag);
      th["missed_window"] = std::to_string(t.missed_window);
      th["missed_max"] = std::to_string(t.missed_max);
      th["ban_after"] = FormatDuration(t.ban_after);
      th["stable_after"] = FormatDuration(t.stable_after);
      th["unban_after"] = FormatDuration(t.unban_after);
      th["auto_unban"] = t.auto_unban ? "true" : "false";
      th["max_bans"] = std::to_string(t.max_bans);
      th["require_healthy_peer"] = t.require_healthy_peer == detect::Tristate::kAuto ? "auto"
                                   : t.require_healthy_peer == detect::Tristate::kTrue ? "true"
                                                                                       : "false";
      th["ban_on_double_sign"] = t.ban_on_double_sign ? "true" : "false";
    }
    ch["thresholds"] = std::move(th);

    Json nodes = Json::array();
    std::map<std::string, bool> signer;
    for (const auto& s : summary) {
      if (s.chain == c.name) signer[NodeKey(s.namespace_, s.node)] = s.signer;
    }
    // Nodes with heights, then those only the summary knows.
    std::map<std::string, const NodeData*> all;
    for (const auto& [key, d] : c.nodes) all[key] = &d;
    for (const auto& s : summary) {
      if (s.chain == c.name) all.try_emplace(NodeKey(s.namespace_, s.node), nullptr);
    }
    // The chain's head over time, from every node's samples (each knows
    // the head when it was taken).
    std::vector<std::pair<Nanos, int64_t>> head;
    for (const auto& [key, d] : c.nodes) {
      for (const Sample& x : d.heights.items()) head.emplace_back(x.at, x.height + x.lag);
      if (d.last.at != kNoTime) head.emplace_back(d.last.at, d.last.height + d.last.lag);
    }
    std::sort(head.begin(), head.end());
    for (size_t i = 1; i < head.size(); ++i) head[i].second = std::max(head[i].second, head[i - 1].second);
    auto head_at = [&head](Nanos t) {
      auto it = std::upper_bound(head.begin(), head.end(), std::make_pair(t, INT64_MAX));
      return it == head.begin() ? int64_t{-1} : std::prev(it)->second;
    };
    for (const auto& [key, d] : all) {
      Json n = Json::object();
      const auto slash = key.find('/');
      n["name"] = key;  // the node's identity in spans and events
      n["pod"] = d != nullptr ? d->name : (slash == std::string::npos ? key : key.substr(slash + 1));
      n["namespace"] = d != nullptr ? d->namespace_ : (slash == std::string::npos ? "" : key.substr(0, slash));
      n["signer"] = signer.count(key) != 0 && signer[key];
      std::vector<Sample> own;
      if (d != nullptr) {
        const auto& items = d->heights.items();
        const size_t step = std::max<size_t>(1, (items.size() + per_node - 1) / per_node);
        for (size_t i = 0; i < items.size(); i += step) own.push_back(items[i]);
        // The last height reached is always there.
        if (d->last.at != kNoTime && (own.empty() || own.back().at != d->last.at)) own.push_back(d->last);
      }
      // Between its own samples a node stays at its height while the head
      // may move on (a stall): evenly spaced points show that lag.
      std::vector<Sample> all_points;
      size_t k = 0;
      for (int g = 0; g <= lag_points && !own.empty(); ++g) {
        const Nanos t = start + (end - start) / lag_points * g;
        while (k < own.size() && own[k].at <= t) all_points.push_back(own[k++]);
        if (k == 0 || all_points.back().at == t) continue;
        const int64_t h = own[k - 1].height;
        all_points.push_back(Sample{t, h, std::max<int64_t>(0, head_at(t) - h)});
      }
      while (k < own.size()) all_points.push_back(own[k++]);
      Json hs = Json::array();
      for (const Sample& x : all_points) hs.push_back(Json::array({Ms(x.at), x.height, x.lag}));
      n["heights"] = std::move(hs);
      nodes.push_back(std::move(n));
    }
    ch["nodes"] = std::move(nodes);

    Json spans = Json::array();
    for (const Span& s : c.spans) {
      const bool open = s.end == kNoTime;
      const Nanos from = std::max(s.start, start);
      const Nanos to = open ? end : std::min(s.end, end);
      if (to < start || from > end || (!open && s.end < start)) continue;
      Json o = Json::object();
      o["node"] = s.node;
      o["kind"] = s.held ? "banned" : s.kind;
      o["start"] = Ms(from);
      o["end"] = Ms(to);
      o["began"] = Ms(s.start);  // before the window when it was cut
      o["open"] = open;
      o["reason"] = s.reason;
      o["held"] = s.held;
      if (s.held) o["rail"] = s.rail;
      spans.push_back(std::move(o));
    }
    ch["spans"] = std::move(spans);

    // Markers in time order (kinds merged), then what was left out.
    std::vector<const Marker*> ms;
    Json omitted = Json::object();
    for (const auto& [kind, t] : c.markers) {
      for (const Marker& m : t.items()) ms.push_back(&m);
      if (t.seen() > t.items().size()) omitted[kind] = t.seen() - t.items().size();
    }
    std::stable_sort(ms.begin(), ms.end(), [](const Marker* a, const Marker* b) {
      return a->at != b->at ? a->at < b->at : a->id < b->id;
    });
    Json events = Json::array();
    for (const Marker* m : ms) {
      Json o = Json::object();
      o["id"] = m->id;
      o["time"] = Ms(m->at);
      o["kind"] = m->kind;
      o["severity"] = m->severity;
      o["node"] = m->node;
      o["height"] = m->height < 0 ? Json(nullptr) : Json(m->height);
      o["json"] = m->json;
      o["evidence"] = m->evidence;
      events.push_back(std::move(o));
    }
    ch["events"] = std::move(events);
    ch["events_omitted"] = std::move(omitted);

    Json rows = Json::array();
    for (const auto& s : summary) {
      if (s.chain != c.name) continue;
      Json row = sink::SummaryObject(s);
      row["key"] = NodeKey(s.namespace_, s.node);
      rows.push_back(std::move(row));
    }
    ch["summary"] = std::move(rows);
    chains.push_back(std::move(ch));
  }
  doc["chains"] = std::move(chains);
  return doc;
}

std::string Report::Page(Nanos end, const std::vector<NodeSummary>& summary) const {
  // '<' inside the data could end its script element: written as \u003c
  // (only strings hold it, where the escape means the same).
  std::string data;
  for (char ch : DumpJson(Data(end, summary))) {
    if (ch == '<') {
      data += "\\u003c";
    } else {
      data.push_back(ch);
    }
  }
  static constexpr std::string_view kSlot = "@QW_DATA@";
  const size_t at = kReportPage.find(kSlot);
  std::string page;
  page.reserve(kReportPage.size() + data.size());
  page.append(kReportPage.substr(0, at));
  page.append(data);
  page.append(kReportPage.substr(at + kSlot.size()));
  return page;
}

}  // namespace qw::app
