#include "pipeline/checkpoint.h"

#include <limits>
#include <stdexcept>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "common/json.h"

namespace qw::pipeline {
namespace {

using Json = nlohmann::ordered_json;

Json TimeJson(Nanos t) { return t == kNoTime ? Json(nullptr) : Json(t); }

// An integer of type T, or an exception: a float or a value out of T's
// range is malformed (converting it would be undefined behaviour).
template <typename T>
T Num(const Json& v) {
  if (!v.is_number_integer()) throw std::invalid_argument("expected an integer");
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      throw std::out_of_range("integer out of range");
    }
    return static_cast<T>(u);
  }
  const int64_t i = v.get<int64_t>();
  if constexpr (std::is_unsigned_v<T>) {
    if (i < 0 || static_cast<uint64_t>(i) > std::numeric_limits<T>::max()) {
      throw std::out_of_range("integer out of range");
    }
  } else {
    if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        i > static_cast<int64_t>(std::numeric_limits<T>::max())) {
      throw std::out_of_range("integer out of range");
    }
  }
  return static_cast<T>(i);
}

Nanos TimeFrom(const Json& j) { return j.is_number_integer() ? j.get<Nanos>() : kNoTime; }

constexpr EventKind kKinds[] = {
    EventKind::kBackInConsensus, EventKind::kBan,          EventKind::kChainHalted,
    EventKind::kChainResumed,    EventKind::kConsensusFailure, EventKind::kDoubleSignRisk,
    EventKind::kMissedPrecommit, EventKind::kNodeRecovered, EventKind::kNodeStalled,
    EventKind::kNodeSynced,      EventKind::kNodeSyncing,   EventKind::kOutOfConsensus,
    EventKind::kUnban,           EventKind::kUpgradeHalt,   EventKind::kNodeReplaced};

bool KindFrom(const std::string& name, EventKind* out) {
  for (EventKind k : kKinds) {
    if (EventKindName(k) == name) {
      *out = k;
      return true;
    }
  }
  return false;
}

bool SeverityFrom(const std::string& name, Severity* out) {
  for (Severity s : {Severity::kInfo, Severity::kWarning, Severity::kCritical}) {
    if (SeverityName(s) == name) {
      *out = s;
      return true;
    }
  }
  return false;
}

Json EventJson(const Event& e) {
  Json j;
  j["time"] = e.time;
  j["event"] = std::string(EventKindName(e.kind));
  j["severity"] = std::string(SeverityName(e.severity));
  j["chain"] = e.chain;
  j["node"] = e.node;
  j["namespace"] = e.namespace_;
  j["height"] = e.height;
  j["id"] = e.id;
  // Detail values are already-encoded JSON: kept as their exact text.
  Json detail = Json::array();
  for (const auto& [k, v] : e.detail) detail.push_back(Json::array({k, v}));
  j["detail"] = std::move(detail);
  return j;
}

bool EventFrom(const Json& j, Event* e) {
  if (!j.is_object()) return false;
  try {
    e->time = Num<Nanos>(j.at("time"));
    if (!KindFrom(j.at("event").get<std::string>(), &e->kind)) return false;
    if (!SeverityFrom(j.at("severity").get<std::string>(), &e->severity)) return false;
    e->chain = j.at("chain").get<std::string>();
    e->node = j.at("node").get<std::string>();
    e->namespace_ = j.at("namespace").get<std::string>();
    e->height = Num<int64_t>(j.at("height"));
    e->id = j.at("id").get<std::string>();
    for (const auto& kv : j.at("detail")) {
      e->detail.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
    }
  } catch (const Json::exception&) {
    return false;
  } catch (const std::logic_error&) {  // Num: a float or out of range
    return false;
  }
  return true;
}

}  // namespace

std::string EncodeCheckpoint(const Checkpoint& cp) {
  Json j;
  j["version"] = 2;
  j["written"] = cp.written;
  Json chains = Json::array();
  for (const auto& [name, family] : cp.chains) chains.push_back({{"name", name}, {"family", family}});
  j["chains"] = std::move(chains);
  Json streams = Json::array();
  for (const auto& s : cp.streams) {
    Json o;
    o["path"] = s.path;
    o["dev"] = s.identity.dev;
    o["ino"] = s.identity.ino;
    o["fingerprint"] = s.identity.fingerprint;
    o["fp_len"] = s.identity.fp_len;
    o["offset"] = s.offset;
    o["family"] = s.family;
    o["last_time"] = TimeJson(s.last_time);
    streams.push_back(std::move(o));
  }
  j["streams"] = std::move(streams);
  Json pending = Json::array();
  for (const auto& e : cp.pending) pending.push_back(EventJson(e));
  j["pending_events"] = std::move(pending);
  if (!cp.kafka_offsets.empty()) {
    Json offsets = Json::array();
    for (const auto& o : cp.kafka_offsets) {
      Json one = {{"topic", o.topic}, {"partition", o.partition}, {"offset", o.offset}};
      if (!o.origins.empty()) {
        Json origins = Json::object();
        for (const auto& [name, at] : o.origins) origins[name] = at;
        one["origins"] = std::move(origins);
      }
      offsets.push_back(std::move(one));
    }
    j["kafka_offsets"] = std::move(offsets);
  }
  if (!cp.detector.is_null()) j["detector"] = cp.detector;
  // Names come from file names, which need not be UTF-8: such bytes are
  // replaced (streams are matched by identity, not by path).
  return DumpJson(j) + "\n";
}

Result<Checkpoint> DecodeCheckpoint(std::string_view text) {
  auto parsed = ParseJson(text);
  if (!parsed) return tl::unexpected(parsed.error());
  Json j = std::move(*parsed);
  if (!j.is_object()) return Fail("not a JSON object");
  Checkpoint cp;
  try {
    const int version = j.contains("version") ? Num<int>(j.at("version")) : 0;
    if (version != 1 && version != 2) {
      return Fail("version " + std::to_string(version) + " is not known (1 or 2)");
    }
    cp.written = j.contains("written") ? Num<Nanos>(j.at("written")) : 0;
    if (j.contains("chains")) {
      for (const auto& c : j.at("chains")) {
        cp.chains.emplace_back(c.at("name").get<std::string>(), c.at("family").get<std::string>());
      }
    }
    const char* key = version == 1 ? "files" : "streams";
    if (j.contains(key)) {
      for (const auto& f : j.at(key)) {
        SavedStream s;
        s.path = f.at("path").get<std::string>();
        s.identity.dev = Num<uint64_t>(f.at("dev"));
        s.identity.ino = Num<uint64_t>(f.at("ino"));
        s.identity.fingerprint = Num<uint64_t>(f.at("fingerprint"));
        s.identity.fp_len = Num<uint32_t>(f.at("fp_len"));
        s.offset = Num<uint64_t>(f.at("offset"));
        if (f.contains("family")) s.family = f.at("family").get<std::string>();
        if (f.contains("last_time")) s.last_time = TimeFrom(f.at("last_time"));
        cp.streams.push_back(std::move(s));
      }
    }
    if (j.contains("pending_events")) {
      for (const auto& e : j.at("pending_events")) {
        Event ev;
        if (!EventFrom(e, &ev)) return Fail("a pending event is malformed");
        cp.pending.push_back(std::move(ev));
      }
    }
    if (j.contains("kafka_offsets")) {
      for (const auto& o : j.at("kafka_offsets")) {
        KafkaOffset k{o.at("topic").get<std::string>(), Num<int32_t>(o.at("partition")),
                      Num<int64_t>(o.at("offset")), {}};
        if (o.contains("origins")) {
          if (!o.at("origins").is_object()) return Fail("kafka_offsets: origins is not an object");
          for (const auto& [name, at] : o.at("origins").items()) {
            k.origins.emplace_back(name, Num<int64_t>(at));
          }
        }
        cp.kafka_offsets.push_back(std::move(k));
      }
    }
    if (j.contains("detector")) cp.detector = j.at("detector");
  } catch (const Json::exception& e) {
    return Fail(std::string("malformed: ") + e.what());
  } catch (const std::logic_error& e) {  // Num: a float or out of range
    return Fail(std::string("malformed: ") + e.what());
  }
  return cp;
}

}  // namespace qw::pipeline
