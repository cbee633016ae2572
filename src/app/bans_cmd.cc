#include "app/bans_cmd.h"

#include <simdjson.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "app/config.h"
#include "app/control.h"
#include "common/json.h"
#include "common/time.h"
#include "sink/ban_sink.h"

namespace qw::app {
namespace {

void Err(const std::string& msg) { std::fprintf(stderr, "quorumwatch: %s\n", msg.c_str()); }

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

Nanos GetTime(simdjson::dom::element o, const char* key) {
  int64_t v = 0;
  if (o[key].get(v)) return kNoTime;
  return v;
}

bool GetBool(simdjson::dom::element o, const char* key) {
  bool v = false;
  if (o[key].get(v)) return false;
  return v;
}

std::string GetStr(simdjson::dom::element o, const char* key) {
  std::string_view v;
  if (o[key].get(v)) return "";
  return std::string(v);
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
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(ss.str()).get(doc)) {
      Err(path + ": not valid JSON");
      return 1;
    }
    simdjson::dom::array ha;
    if (!doc["detector"]["holds"].get(ha)) {
      for (auto h : ha) {
        std::string_view v;
        if (!h.get(v)) holds.emplace_back(v);
      }
    }
    simdjson::dom::object nodes;
    if (!doc["detector"]["nodes"].get(nodes)) {
      for (auto [key, n] : nodes) {
        Row r;
        r.node = std::string(key);
        bool banned = GetBool(n, "banned"), held = GetBool(n, "ban_held"),
             open = GetBool(n, "period_open"), ooc = GetBool(n, "ooc");
        r.banned_at = GetTime(n, "banned_at");
        r.since = open ? GetTime(n, "period_start") : kNoTime;
        r.reason = GetStr(n, "period_reason");
        for (const auto& h : holds) r.hold = r.hold || RefMatches(h, r.node);
        if (banned) {
          r.state = "banned";
        } else if (held && open) {
          std::string rail = GetStr(n, "ban_held_rail");
          r.state = "ban held" + (rail.empty() ? "" : " (" + rail + ")");
        } else if (ooc) {
          r.state = "out of consensus";
        } else if (open) {
          r.state = "recovering";
        } else {
          r.state = "ok";
          r.reason.clear();
        }
        rows.push_back(std::move(r));
      }
    }
  } else {
    Err(path + ": no checkpoint yet (the instance has not written one)");
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
    std::string out = "{\"running\":" + std::string(running ? "true" : "false") + ",\"holds\":[";
    for (size_t i = 0; i < holds.size(); ++i) out += (i ? "," : "") + JsonString(holds[i]);
    out += "],\"pending_requests\":[";
    for (size_t i = 0; i < pending_requests.size(); ++i) {
      out += (i ? "," : "") + JsonString(pending_requests[i]);
    }
    out += "],\"nodes\":[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      out += (i ? "," : "");
      out += "{\"node\":" + JsonString(r.node) + ",\"state\":" + JsonString(r.state) +
             ",\"since\":" + (r.since == kNoTime ? "null" : JsonString(Time(r.since))) +
             ",\"banned_at\":" + (r.banned_at == kNoTime ? "null" : JsonString(Time(r.banned_at))) +
             ",\"reason\":" + JsonString(r.reason) + ",\"hold\":" + (r.hold ? "true" : "false") +
             ",\"decisions_pending\":" + std::to_string(r.pending) +
             ",\"decisions_delivered\":" + std::to_string(r.delivered) + "}";
    }
    out += "]}\n";
    std::fputs(out.c_str(), stdout);
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
