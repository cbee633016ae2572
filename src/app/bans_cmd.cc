#include "app/bans_cmd.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "app/config.h"
#include "app/control.h"
#include "common/log.h"
#include "common/event.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/time.h"
#include "detect/detector.h"
#include "detect/state_codec.h"
#include "sink/ban_sink.h"

namespace qw::app {
namespace {

void Err(const std::string& msg) { LogLine(msg); }

struct Row {
  std::string node;  // node key chain|namespace/pod
  std::string state;
  Nanos since = kNoTime;      // out-of-consensus period start
  Nanos banned_at = kNoTime;
  std::string reason;
  bool hold = false;
  int pending = 0, delivered = 0;
};

std::string Time(Nanos t) { return t == kNoTime ? "-" : FormatRfc3339Millis(t); }

// What `list` needs of the checkpoint: the detector state's nodes and holds.
struct SavedBans {
  std::map<std::string, detect::NodeState> nodes;  // by node key
  std::set<std::string> holds;
};

class NoEvents : public EventOutput {
 public:
  void Emit(Event) override {}
};

// Reads the "detector" object of the checkpoint (docs/PIPELINE.md,
// "Checkpoints"); the checkpoint's other keys belong to the pipeline and
// are not looked at. The state is decoded by the state codec itself, into a
// detector with no chains or nodes: every node's state is kept aside
// there, by key, as a restart would keep it.
Result<SavedBans> ReadCheckpoint(const std::string& path, const std::string& text) {
  auto doc = ParseJson(text);
  if (!doc) return Fail(path + ": not valid JSON (" + doc.error().message + ")");
  if (!doc->is_object()) return Fail(path + ": not a JSON object");
  SavedBans out;
  auto state = doc->find("detector");
  if (state == doc->end()) return out;  // nothing decided yet
  NoEvents none;
  detect::Detector d({}, &none);
  if (auto r = detect::DecodeStateJson(*state, &d); !r) {
    return Fail(path + ": " + r.error().message);
  }
  out.nodes = d.restored_nodes();
  out.holds = d.holds();
  return out;
}

// The part of a node key after "chain|".
std::string NodePart(const std::string& key) {
  size_t bar = key.find('|');
  return bar == std::string::npos ? key : key.substr(bar + 1);
}

bool RefMatches(const std::string& ref, const std::string& key) {
  std::string node = NodePart(key);
  size_t slash = node.find('/');
  std::string pod = slash == std::string::npos ? node : node.substr(slash + 1);
  return ref == key || ref == node || ref == pod;
}

int List(const BansArgs& args, const std::string& state_dir) {
  std::vector<Row> rows;
  std::vector<std::string> holds;
  std::string path = state_dir + "/checkpoint.json";
  if (auto text = ReadWholeFile(path)) {
    auto saved = ReadCheckpoint(path, *text);
    if (!saved) {
      Err(saved.error().message);
      return 1;
    }
    holds.assign(saved->holds.begin(), saved->holds.end());
    for (const auto& [key, n] : saved->nodes) {
      Row r;
      r.node = key;
      r.banned_at = n.banned_at;
      r.since = n.period_open ? n.period_start : kNoTime;
      r.reason = n.period_reason;
      for (const auto& h : holds) r.hold = r.hold || RefMatches(h, r.node);
      if (n.banned) {
        r.state = "banned";
      } else if (n.ban_held && n.period_open) {
        r.state = "ban held" + (n.ban_held_rail.empty() ? "" : " (" + n.ban_held_rail + ")");
      } else if (n.ooc) {
        r.state = "out of consensus";
      } else if (n.period_open) {
        r.state = "recovering";
      } else {
        r.state = "ok";
        r.reason.clear();
      }
      rows.push_back(std::move(r));
    }
  } else if (text.error().message == std::strerror(ENOENT)) {
    Err(path + ": no checkpoint yet (the instance has not written one)");
  } else {
    Err(path + ": " + text.error().message);
    return 1;
  }
  auto outboxes = sink::ReadOutboxes(state_dir);
  if (!outboxes) {
    Err(outboxes.error().message);
    return 1;
  }
  for (const auto& e : *outboxes) {
    std::string key = e.decision.chain + "|" +
                      (e.decision.namespace_.empty() ? e.decision.node
                                                     : e.decision.namespace_ + "/" + e.decision.node);
    Row* row = nullptr;
    for (auto& r : rows) {
      if (r.node == key) row = &r;
    }
    if (row == nullptr) {
      rows.push_back(Row{key, "-", kNoTime, kNoTime, "", false, 0, 0});
      row = &rows.back();
    }
    (e.acknowledged ? row->delivered : row->pending)++;
  }
  std::vector<std::string> pending_requests;
  for (const auto& r : PendingRequests(state_dir, nullptr)) {
    pending_requests.push_back(r.op + " " + r.node);
  }
  bool running = InstanceRunning(state_dir);

  if (args.format == "json") {
    auto time_or_null = [](Nanos t) {
      return t == kNoTime ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(Time(t));
    };
    nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
    for (const Row& r : rows) {
      nlohmann::ordered_json o = nlohmann::ordered_json::object();
      o.emplace("node", r.node);
      o.emplace("state", r.state);
      o.emplace("since", time_or_null(r.since));
      o.emplace("banned_at", time_or_null(r.banned_at));
      o.emplace("reason", r.reason);
      o.emplace("hold", r.hold);
      o.emplace("decisions_pending", r.pending);
      o.emplace("decisions_delivered", r.delivered);
      nodes.push_back(std::move(o));
    }
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    out.emplace("running", running);
    out.emplace("holds", holds);
    out.emplace("pending_requests", pending_requests);
    out.emplace("nodes", std::move(nodes));
    std::fputs((DumpJson(out) + "\n").c_str(), stdout);
    return 0;
  }
  std::printf("%-44s %-34s %-24s %-24s %-6s %s\n", "NODE", "STATE", "OUT OF CONSENSUS SINCE",
              "BANNED AT", "HOLD", "DECISIONS");
  for (const auto& r : rows) {
    std::string state = r.state + (r.reason.empty() ? "" : " [" + r.reason + "]");
    std::string dec = std::to_string(r.pending) + " pending, " + std::to_string(r.delivered) +
                      " delivered";
    std::printf("%-44s %-34s %-24s %-24s %-6s %s\n", r.node.c_str(), state.c_str(),
                Time(r.since).c_str(), Time(r.banned_at).c_str(), r.hold ? "yes" : "no",
                dec.c_str());
  }
  for (const auto& h : holds) std::printf("hold: %s\n", h.c_str());
  for (const auto& p : pending_requests) std::printf("request waiting: %s\n", p.c_str());
  if (!running) std::printf("(no instance is running on %s)\n", state_dir.c_str());
  return 0;
}

}  // namespace

int RunBans(const BansArgs& args) {
  std::string state_dir = args.state_dir;
  if (state_dir.empty()) {
    if (args.config_path.empty()) {
      Err("bans: give --state-dir DIR or -c CONFIG");
      return 2;
    }
    auto c = LoadConfig(args.config_path);
    if (!c) {
      Err(c.error().message);
      return 1;
    }
    state_dir = c->state_dir;
  }
  if (args.op == "list") return List(args, state_dir);
  if (args.node.empty()) {
    Err("bans " + args.op + ": which node? (pod, namespace/pod or chain|namespace/pod)");
    return 2;
  }
  auto name = SubmitRequest(state_dir, args.op, args.node);
  if (!name) {
    Err(name.error().message);
    return 1;
  }
  if (!InstanceRunning(state_dir)) {
    std::printf("queued: no instance is running on %s; the next start applies '%s %s'\n",
                state_dir.c_str(), args.op.c_str(), args.node.c_str());
    return 3;
  }
  auto outcome = WaitForOutcome(state_dir, *name,
                                static_cast<Nanos>(args.wait_seconds * static_cast<double>(kSecond)));
  if (!outcome) {
    std::printf("queued: the running instance has not applied it yet (still waiting in %s/control)\n",
                state_dir.c_str());
    return 3;
  }
  std::printf("%s\n", outcome->c_str());
  return outcome->rfind("error:", 0) == 0 ? 1 : 0;
}

}  // namespace qw::app
