// Detector state <-> JSON (state_codec.h). One file of ~650 lines on
// purpose: the encoder and the decoder share the node field table and the
// layout below, and must change together.
#include "detect/state_codec.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "common/json.h"

// Layout (version 1), one JSON object, keys in a fixed order and chains,
// nodes and votes sorted, so equal states encode to equal bytes:
//
//   {"version":1,
//    "chains":{"<chain>":{"head":H,"halted":B,"halt_height":H,"halted_at":T,
//              "first_seen":T (added later),"votes_pruned_at":H,
//              "votes":[{"validator":S,"height":H,"round":R,"type":N,
//                        "node":"<node key>","block_id":S},...]},...},
//    "holds":["<node reference>",...],
//    "nodes":{"<node key>":{<the fields of kNodeFields, in that order>},...}}
//
// Times are int64 nanoseconds since the epoch, kNoTime as null; durations
// (longest_gap, ooc_total) are int64 nanoseconds.
// own_precommit is [[slot,height],...] for the slots not -1; missed_ring is
// a string of '0'/'1'; evidence is the 6 ring slots as strings (with
// evidence_next). Streams are not saved: a restarted instance re-attaches
// them, and a node with saved state is never restored retired. Keys added
// after version 1 was first written ("holds", and the fields marked so in
// kNodeFields) may be absent: the defaults stay. Unknown keys are ignored.

namespace qw::detect {
namespace {

using Json = nlohmann::ordered_json;

constexpr int64_t kVersion = 1;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// ---------------------------------------------------------------------------
// The node fields, in encoding order.

enum class Kind {
  kHeight,    // int64: -1 (none) or more
  kCount,     // int64: 0 or more
  kTime,      // int64 nanoseconds since the epoch, or null (kNoTime)
  kDuration,  // int64 nanoseconds, 0 or more
  kBool,
  kString,
  kUint,      // uint64
  kSmall,     // int: 0 or more (bans)
  kRingPos,   // int: a slot of missed_ring
  kRingCount, // int: 0 to the size of missed_ring
  kEvidenceNext,
  kOwnPrecommit,
  kMissedRing,
  kEvidence,
};

using Member = std::variant<std::monostate, int64_t NodeState::*, int NodeState::*,
                            uint64_t NodeState::*, bool NodeState::*, std::string NodeState::*>;

struct NodeField {
  std::string_view name;
  Kind kind;
  Member member;
  bool optional = false;  // added after version 1 was first written
};

const NodeField kNodeFields[] = {
    // Heights.
    {"first_height", Kind::kHeight, &NodeState::first_height},
    {"last_height", Kind::kHeight, &NodeState::last_height},
    {"last_advance", Kind::kTime, &NodeState::last_advance},
    {"stall_base", Kind::kTime, &NodeState::stall_base},
    {"commits", Kind::kCount, &NodeState::commits},
    {"longest_gap", Kind::kDuration, &NodeState::longest_gap},
    // Conditions.
    {"stalled", Kind::kBool, &NodeState::stalled},
    {"stall_pending", Kind::kBool, &NodeState::stall_pending},
    {"failed", Kind::kBool, &NodeState::failed},
    {"failed_height", Kind::kHeight, &NodeState::failed_height},
    {"failed_at", Kind::kTime, &NodeState::failed_at, true},
    {"syncing", Kind::kBool, &NodeState::syncing},
    {"sync_since", Kind::kTime, &NodeState::sync_since},
    {"lagging", Kind::kBool, &NodeState::lagging},
    {"was_in_consensus", Kind::kBool, &NodeState::was_in_consensus},
    {"upgrade_height", Kind::kHeight, &NodeState::upgrade_height},
    // Out of consensus and bans.
    {"ooc", Kind::kBool, &NodeState::ooc},
    {"ooc_since", Kind::kTime, &NodeState::ooc_since},
    {"ooc_reason", Kind::kString, &NodeState::ooc_reason},
    {"ooc_total", Kind::kDuration, &NodeState::ooc_total},
    {"period_open", Kind::kBool, &NodeState::period_open},
    {"period_start", Kind::kTime, &NodeState::period_start},
    {"period_reason", Kind::kString, &NodeState::period_reason},
    {"back_since", Kind::kTime, &NodeState::back_since},
    {"banned", Kind::kBool, &NodeState::banned},
    {"ban_held", Kind::kBool, &NodeState::ban_held},
    {"ban_held_rail", Kind::kString, &NodeState::ban_held_rail, true},
    {"banned_at", Kind::kTime, &NodeState::banned_at},
    {"bans", Kind::kSmall, &NodeState::bans},
    // Votes.
    {"signer", Kind::kBool, &NodeState::signer},
    {"validator", Kind::kString, &NodeState::validator},
    {"first_vote_height", Kind::kHeight, &NodeState::first_vote_height},
    {"own_precommit", Kind::kOwnPrecommit, {}},
    {"last_judged", Kind::kHeight, &NodeState::last_judged},
    {"missed_ring", Kind::kMissedRing, {}},
    {"missed_ring_pos", Kind::kRingPos, &NodeState::missed_ring_pos},
    {"missed_in_window", Kind::kRingCount, &NodeState::missed_in_window},
    {"missed_total", Kind::kCount, &NodeState::missed_total},
    {"last_double_sign_height", Kind::kHeight, &NodeState::last_double_sign_height},
    {"double_sign_at", Kind::kTime, &NodeState::double_sign_at, true},
    {"double_sign_critical", Kind::kBool, &NodeState::double_sign_critical, true},
    {"double_sign_reason", Kind::kString, &NodeState::double_sign_reason, true},
    // Evidence.
    {"evidence", Kind::kEvidence, {}},
    {"evidence_next", Kind::kEvidenceNext, &NodeState::evidence_next},
    // Counters.
    {"lines_read", Kind::kUint, &NodeState::lines_read},
    {"lines_matched", Kind::kUint, &NodeState::lines_matched},
    {"lines_rejected", Kind::kUint, &NodeState::lines_rejected},
    // Replacement.
    {"first_seen", Kind::kTime, &NodeState::first_seen, true},
    {"last_seen", Kind::kTime, &NodeState::last_seen, true},
    {"successor_open", Kind::kBool, &NodeState::successor_open, true},
    {"replaced_by", Kind::kString, &NodeState::replaced_by, true},
};

// The member a field names, of type T.
template <typename T>
const T& At(const NodeState& n, const NodeField& f) {
  return n.*std::get<T NodeState::*>(f.member);
}
template <typename T>
T* At(NodeState* n, const NodeField& f) {
  return &(n->*std::get<T NodeState::*>(f.member));
}

// ---------------------------------------------------------------------------
// Encoding

Json TimeJson(Nanos t) { return t == kNoTime ? Json(nullptr) : Json(t); }

// Strings come from log lines and file names: bad bytes become U+FFFD here,
// so the document is valid whoever dumps it.
Json Text(std::string_view s) { return Json(ToValidUtf8(s)); }

Json FieldJson(const NodeState& n, const NodeField& f) {
  switch (f.kind) {
    case Kind::kHeight:
    case Kind::kCount:
    case Kind::kDuration:
      return Json(At<int64_t>(n, f));
    case Kind::kTime:
      return TimeJson(At<int64_t>(n, f));
    case Kind::kSmall:
    case Kind::kRingPos:
    case Kind::kRingCount:
    case Kind::kEvidenceNext:
      return Json(At<int>(n, f));
    case Kind::kUint:
      return Json(At<uint64_t>(n, f));
    case Kind::kBool:
      return Json(At<bool>(n, f));
    case Kind::kString:
      return Text(At<std::string>(n, f));
    case Kind::kOwnPrecommit: {
      Json own = Json::array();
      for (size_t slot = 0; slot < n.own_precommit.size(); ++slot) {
        if (n.own_precommit[slot] != -1) own.push_back(Json::array({slot, n.own_precommit[slot]}));
      }
      return own;
    }
    case Kind::kMissedRing: {
      std::string ring;
      ring.reserve(n.missed_ring.size());
      for (uint8_t m : n.missed_ring) ring.push_back(m ? '1' : '0');
      return Json(std::move(ring));
    }
    case Kind::kEvidence: {
      Json lines = Json::array();
      for (const auto& line : n.evidence) lines.push_back(Text(line));
      return lines;
    }
  }
  return Json(nullptr);
}

Json NodeJson(const NodeState& n) {
  Json o = Json::object();
  for (const NodeField& f : kNodeFields) o.emplace(f.name, FieldJson(n, f));
  return o;
}

std::string KeyOf(const Detector& d, int i) {
  const NodeState& n = d.node(i);
  return Detector::NodeKey(d.chain(n.spec.chain).spec.name, n.spec.namespace_, n.spec.name);
}

// ---------------------------------------------------------------------------
// Decoding

// Collects the first error; every check returns false once one is set.
// `where` is a path such as nodes["c|ns/pod"].last_height.
class Reader {
 public:
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  bool Fail(const std::string& where, std::string_view what) {
    if (error_.empty()) {
      error_ = "state: " + (where.empty() ? std::string(what) : where + ": " + std::string(what));
    }
    return false;
  }

  static std::string Path(const std::string& where, std::string_view key) {
    return where.empty() ? std::string(key) : where + "." + std::string(key);
  }

  // o[key], or nullptr (after failing with "missing" unless `optional`).
  const Json* Get(const Json& o, const std::string& where, std::string_view key,
                  bool optional = false) {
    if (!ok()) return nullptr;
    auto it = o.find(key);
    if (it != o.end()) return &*it;
    if (!optional) Fail(where, "missing \"" + std::string(key) + "\"");
    return nullptr;
  }
  const Json* Object(const Json& o, const std::string& where, std::string_view key) {
    const Json* v = Get(o, where, key);
    if (v != nullptr && !v->is_object()) {
      Fail(Path(where, key), "expected an object");
      return nullptr;
    }
    return v;
  }
  const Json* Array(const Json& v, const std::string& where) {
    if (!ok()) return nullptr;
    if (v.is_array()) return &v;
    Fail(where, "expected an array");
    return nullptr;
  }

  // Parsed numbers are unsigned when not negative; built ones are signed.
  bool Int(const Json& v, const std::string& where, int64_t lo, int64_t hi, int64_t* out) {
    if (!ok()) return false;
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(kInt64Max)) return Fail(where, "expected a 64-bit integer");
      *out = static_cast<int64_t>(u);
    } else if (v.is_number_integer()) {
      *out = v.get<int64_t>();
    } else {
      return Fail(where, "expected a 64-bit integer");
    }
    if (*out < lo || *out > hi) {
      return Fail(where, "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return true;
  }
  bool Int32(const Json& v, const std::string& where, int64_t lo, int64_t hi, int* out) {
    int64_t x = 0;
    if (!Int(v, where, lo, hi, &x)) return false;
    *out = static_cast<int>(x);
    return true;
  }
  bool Uint(const Json& v, const std::string& where, uint64_t* out) {
    if (!ok()) return false;
    if (v.is_number_unsigned()) {
      *out = v.get<uint64_t>();
    } else if (v.is_number_integer() && v.get<int64_t>() >= 0) {
      *out = static_cast<uint64_t>(v.get<int64_t>());
    } else {
      return Fail(where, "expected an unsigned integer");
    }
    return true;
  }
  // An int64 nanosecond time, or null for kNoTime.
  bool Time(const Json& v, const std::string& where, Nanos* out) {
    if (!ok()) return false;
    if (v.is_null()) {
      *out = kNoTime;
      return true;
    }
    if (!v.is_number_integer()) return Fail(where, "expected an integer or null");
    return Int(v, where, kInt64Min, kInt64Max, out);
  }
  bool Bool(const Json& v, const std::string& where, bool* out) {
    if (!ok()) return false;
    if (!v.is_boolean()) return Fail(where, "expected true or false");
    *out = v.get<bool>();
    return true;
  }
  bool Str(const Json& v, const std::string& where, std::string* out) {
    if (!ok()) return false;
    if (!v.is_string()) return Fail(where, "expected a string");
    *out = v.get<std::string>();
    return true;
  }
  // A member of `o` that must be there.
  bool IntAt(const Json& o, const std::string& where, std::string_view key, int64_t lo,
             int64_t hi, int64_t* out) {
    const Json* v = Get(o, where, key);
    return v != nullptr && Int(*v, Path(where, key), lo, hi, out);
  }
  bool StrAt(const Json& o, const std::string& where, std::string_view key, std::string* out) {
    const Json* v = Get(o, where, key);
    return v != nullptr && Str(*v, Path(where, key), out);
  }
  bool BoolAt(const Json& o, const std::string& where, std::string_view key, bool* out) {
    const Json* v = Get(o, where, key);
    return v != nullptr && Bool(*v, Path(where, key), out);
  }
  bool TimeAt(const Json& o, const std::string& where, std::string_view key, Nanos* out) {
    const Json* v = Get(o, where, key);
    return v != nullptr && Time(*v, Path(where, key), out);
  }

 private:
  std::string error_;
};

bool ReadOwnPrecommit(Reader& r, const Json& v, const std::string& at, NodeState* n) {
  if (r.Array(v, at) == nullptr) return false;
  for (const Json& entry : v) {
    if (!entry.is_array() || entry.size() != 2) return r.Fail(at, "expected [slot, height] pairs");
    int64_t slot = 0, height = 0;
    if (!r.Int(entry[0], at, 0, kVoteRing - 1, &slot) ||
        !r.Int(entry[1], at, kInt64Min, kInt64Max, &height)) {
      return false;
    }
    n->own_precommit[static_cast<size_t>(slot)] = height;
  }
  return true;
}

bool ReadMissedRing(Reader& r, const Json& v, const std::string& at, NodeState* n) {
  std::string ring;
  if (!r.Str(v, at, &ring)) return false;
  if (ring.empty()) return r.Fail(at, "empty");
  if (ring.find_first_not_of("01") != std::string::npos) {
    return r.Fail(at, "expected a string of 0 and 1");
  }
  if (ring.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return r.Fail(at, "too long");
  }
  n->missed_ring.resize(ring.size());
  for (size_t i = 0; i < ring.size(); ++i) n->missed_ring[i] = ring[i] == '1';
  return true;
}

bool ReadEvidence(Reader& r, const Json& v, const std::string& at, NodeState* n) {
  if (r.Array(v, at) == nullptr) return false;
  if (v.size() > static_cast<size_t>(kEvidenceLines)) {
    return r.Fail(at, "more than " + std::to_string(kEvidenceLines) + " lines");
  }
  size_t i = 0;
  for (const Json& line : v) {
    if (!r.Str(line, at, &n->evidence[i++])) return false;
  }
  return true;
}

bool ReadField(Reader& r, const Json& v, const std::string& at, const NodeField& f, NodeState* n) {
  const auto ring = static_cast<int64_t>(n->missed_ring.size());
  switch (f.kind) {
    case Kind::kHeight:
      return r.Int(v, at, -1, kInt64Max, At<int64_t>(n, f));
    case Kind::kCount:
    case Kind::kDuration:
      return r.Int(v, at, 0, kInt64Max, At<int64_t>(n, f));
    case Kind::kTime:
      return r.Time(v, at, At<int64_t>(n, f));
    case Kind::kSmall:
      return r.Int32(v, at, 0, std::numeric_limits<int>::max(), At<int>(n, f));
    case Kind::kRingPos:
      return r.Int32(v, at, 0, ring - 1, At<int>(n, f));
    case Kind::kRingCount:
      return r.Int32(v, at, 0, ring, At<int>(n, f));
    case Kind::kEvidenceNext:
      return r.Int32(v, at, 0, kEvidenceLines - 1, At<int>(n, f));
    case Kind::kUint:
      return r.Uint(v, at, At<uint64_t>(n, f));
    case Kind::kBool:
      return r.Bool(v, at, At<bool>(n, f));
    case Kind::kString:
      return r.Str(v, at, At<std::string>(n, f));
    case Kind::kOwnPrecommit:
      return ReadOwnPrecommit(r, v, at, n);
    case Kind::kMissedRing:
      return ReadMissedRing(r, v, at, n);
    case Kind::kEvidence:
      return ReadEvidence(r, v, at, n);
  }
  return r.Fail(at, "unknown field kind (internal)");
}

bool DecodeNode(Reader& r, const Json& o, const std::string& where, NodeState* n) {
  n->own_precommit.fill(-1);
  for (const NodeField& f : kNodeFields) {
    const Json* v = r.Get(o, where, f.name, f.optional);
    if (v != nullptr) ReadField(r, *v, Reader::Path(where, f.name), f, n);
    if (!r.ok()) return false;
  }
  // States the detector never produces, and whose timers would be nonsense.
  if (n->period_open && n->period_start == kNoTime) {
    return r.Fail(where, "period_open without period_start");
  }
  if (n->ooc && n->ooc_since == kNoTime) return r.Fail(where, "ooc without ooc_since");
  if (n->banned && n->banned_at == kNoTime) return r.Fail(where, "banned without banned_at");
  return true;
}

struct SavedVote {
  VoteKey key;
  std::string node;  // node key
  std::string block_id;
};

struct SavedChain {
  std::string name;
  int64_t head = -1;
  bool halted = false;
  int64_t halt_height = -1;
  Nanos halted_at = kNoTime;
  Nanos first_seen = kNoTime;
  int64_t votes_pruned_at = -1;
  std::vector<SavedVote> votes;
};

bool DecodeChain(Reader& r, const Json& o, const std::string& where, SavedChain* c) {
  r.IntAt(o, where, "head", -1, kInt64Max, &c->head);
  r.BoolAt(o, where, "halted", &c->halted);
  r.IntAt(o, where, "halt_height", -1, kInt64Max, &c->halt_height);
  r.TimeAt(o, where, "halted_at", &c->halted_at);
  if (const Json* fs = r.Get(o, where, "first_seen", true)) {  // added later: may be absent
    r.Time(*fs, Reader::Path(where, "first_seen"), &c->first_seen);
  }
  r.IntAt(o, where, "votes_pruned_at", -1, kInt64Max, &c->votes_pruned_at);
  if (r.ok() && c->halted && c->halted_at == kNoTime) r.Fail(where, "halted without halted_at");
  const Json* votes = r.Get(o, where, "votes");
  if (votes == nullptr || r.Array(*votes, Reader::Path(where, "votes")) == nullptr) return false;
  size_t i = 0;
  for (const Json& v : *votes) {
    std::string at = Reader::Path(where, "votes") + "[" + std::to_string(i++) + "]";
    if (!v.is_object()) return r.Fail(at, "expected an object");
    SavedVote sv;
    int64_t type = 0;
    r.StrAt(v, at, "validator", &sv.key.validator);
    r.IntAt(v, at, "height", 0, kInt64Max, &sv.key.height);
    r.IntAt(v, at, "round", -1, kInt64Max, &sv.key.round);
    r.IntAt(v, at, "type", 0, static_cast<int64_t>(VoteType::kProposal), &type);
    r.StrAt(v, at, "node", &sv.node);
    r.StrAt(v, at, "block_id", &sv.block_id);
    if (!r.ok()) return false;
    sv.key.type = static_cast<uint8_t>(type);
    c->votes.push_back(std::move(sv));
  }
  return r.ok();
}

}  // namespace

Json EncodeStateJson(const Detector& d) {
  Json out = Json::object();
  out.emplace("version", kVersion);

  // Node keys (sorted); the first node of a key wins should two share one.
  std::map<std::string, int> by_key;
  std::vector<std::string> key_of(d.node_count());
  for (size_t i = 0; i < d.node_count(); ++i) {
    key_of[i] = KeyOf(d, static_cast<int>(i));
    by_key.emplace(key_of[i], static_cast<int>(i));
  }

  // Chains, by name.
  std::map<std::string, int> chain_by_name;
  for (size_t i = 0; i < d.chain_count(); ++i) {
    chain_by_name.emplace(d.chain(static_cast<int>(i)).spec.name, static_cast<int>(i));
  }
  Json chains = Json::object();
  for (const auto& [name, ci] : chain_by_name) {
    const ChainState& c = d.chain(ci);
    std::vector<const std::pair<const VoteKey, VoteSeen>*> votes;
    votes.reserve(c.votes.size());
    for (const auto& v : c.votes) {
      if (v.second.node >= 0 && static_cast<size_t>(v.second.node) < d.node_count()) {
        votes.push_back(&v);
      }
    }
    std::sort(votes.begin(), votes.end(), [](const auto* a, const auto* b) {
      return std::tie(a->first.height, a->first.round, a->first.type, a->first.validator) <
             std::tie(b->first.height, b->first.round, b->first.type, b->first.validator);
    });
    Json vote_list = Json::array();
    for (const auto* v : votes) {
      const auto& [key, seen] = *v;
      Json vo = Json::object();
      vo.emplace("validator", Text(key.validator));
      vo.emplace("height", key.height);
      vo.emplace("round", key.round);
      vo.emplace("type", static_cast<int>(key.type));
      vo.emplace("node", Text(key_of[static_cast<size_t>(seen.node)]));
      vo.emplace("block_id", Text(seen.block_id));
      vote_list.push_back(std::move(vo));
    }
    Json co = Json::object();
    co.emplace("head", c.head);
    co.emplace("halted", c.halted);
    co.emplace("halt_height", c.halt_height);
    co.emplace("halted_at", TimeJson(c.halted_at));
    co.emplace("first_seen", TimeJson(c.first_seen));
    co.emplace("votes_pruned_at", c.votes_pruned_at);
    co.emplace("votes", std::move(vote_list));
    chains.emplace(ToValidUtf8(name), std::move(co));
  }
  out.emplace("chains", std::move(chains));

  Json holds = Json::array();
  for (const auto& ref : d.holds()) holds.push_back(Text(ref));
  out.emplace("holds", std::move(holds));

  // Live nodes, and restored states whose node has not come back yet (a
  // file that reappears later must still find its state after the next
  // checkpoint), in key order.
  std::map<std::string, const NodeState*> states;
  for (const auto& [key, ni] : by_key) states.emplace(key, &d.node(ni));
  for (const auto& [key, state] : d.restored_nodes()) states.emplace(key, &state);
  Json nodes = Json::object();
  for (const auto& [key, state] : states) nodes.emplace(ToValidUtf8(key), NodeJson(*state));
  out.emplace("nodes", std::move(nodes));
  return out;
}

std::string EncodeState(const Detector& d) { return DumpJson(EncodeStateJson(d)); }

Result<void> DecodeState(const std::string& json, Detector* d) {
  auto doc = ParseJson(json);
  if (!doc) return Fail("state: not valid JSON (" + doc.error().message + ")");
  return DecodeStateJson(*doc, d);
}

Json ChainStateJson(const Json& state, const std::string& chain) {
  Json out = Json::object();
  out["version"] = kVersion;
  Json chains = Json::object();
  if (auto c = state.find("chains"); c != state.end() && c->is_object()) {
    if (auto it = c->find(chain); it != c->end()) chains[chain] = *it;
  }
  out["chains"] = std::move(chains);
  if (auto h = state.find("holds"); h != state.end()) out["holds"] = *h;
  Json nodes = Json::object();
  if (auto n = state.find("nodes"); n != state.end() && n->is_object()) {
    Detector::NodeKeyParts parts;
    for (const auto& [key, value] : n->items()) {
      if (Detector::SplitNodeKey(key, &parts) && parts.chain == chain) nodes[key] = value;
    }
  }
  out["nodes"] = std::move(nodes);
  return out;
}

Result<void> DecodeStateJson(const Json& top, Detector* d) {
  if (!top.is_object()) return Fail("state: expected a JSON object");

  // Everything is read and checked before anything is applied: a malformed
  // state leaves `d` as it was.
  Reader r;
  int64_t version = 0;
  if (!r.IntAt(top, "", "version", kInt64Min, kInt64Max, &version)) return Fail(r.error());
  if (version != kVersion) {
    return Fail("state: unsupported version " + std::to_string(version) + " (expected " +
                std::to_string(kVersion) + ")");
  }

  std::vector<std::pair<std::string, NodeState>> nodes;
  if (const Json* nodes_obj = r.Object(top, "", "nodes")) {
    for (const auto& [key, value] : nodes_obj->items()) {
      std::string where = "nodes[" + JsonString(key) + "]";
      if (!value.is_object()) {
        r.Fail(where, "expected an object");
        break;
      }
      NodeState n;
      if (!DecodeNode(r, value, where, &n)) break;
      nodes.emplace_back(key, std::move(n));
    }
  }
  if (!r.ok()) return Fail(r.error());

  std::vector<SavedChain> chains;
  if (const Json* chains_obj = r.Object(top, "", "chains")) {
    for (const auto& [name, value] : chains_obj->items()) {
      std::string where = "chains[" + JsonString(name) + "]";
      if (!value.is_object()) {
        r.Fail(where, "expected an object");
        break;
      }
      SavedChain c;
      c.name = name;
      if (!DecodeChain(r, value, where, &c)) break;
      chains.push_back(std::move(c));
    }
  }
  if (!r.ok()) return Fail(r.error());

  std::vector<std::string> holds;
  if (const Json* list = r.Get(top, "", "holds", true)) {
    if (r.Array(*list, "holds") != nullptr) {
      for (const Json& h : *list) {
        std::string ref;
        if (!r.Str(h, "holds", &ref)) break;
        holds.push_back(std::move(ref));
      }
    }
  }
  if (!r.ok()) return Fail(r.error());

  // Apply. Nodes are matched by key; the first saved entry of a key wins.
  std::map<std::string, int> index;
  for (size_t i = 0; i < d->node_count(); ++i) {
    index.emplace(KeyOf(*d, static_cast<int>(i)), static_cast<int>(i));
  }
  std::map<std::string, bool> seen;
  for (auto& [key, saved] : nodes) {
    if (!seen.emplace(key, true).second) continue;
    auto it = index.find(key);
    if (it == index.end()) {
      d->AddRestoredNode(key, std::move(saved));  // AddNode takes it later
      continue;
    }
    NodeState& n = d->mutable_node(it->second);
    saved.spec = std::move(n.spec);
    saved.workload = std::move(n.workload);
    saved.open_streams = n.open_streams;
    saved.retired = n.retired || !saved.replaced_by.empty();
    const auto window = static_cast<size_t>(std::max(1, saved.spec.thresholds.missed_window));
    if (saved.missed_ring.size() != window) {
      // The window changed: the saved ring means nothing against it.
      saved.missed_ring.assign(window, 0);
      saved.missed_ring_pos = 0;
      saved.missed_in_window = 0;
    }
    n = std::move(saved);
  }

  std::map<std::string, int> chain_index;
  for (size_t i = 0; i < d->chain_count(); ++i) {
    chain_index.emplace(d->chain(static_cast<int>(i)).spec.name, static_cast<int>(i));
  }
  std::map<std::string, bool> chain_seen;
  for (auto& saved : chains) {
    auto ci = chain_index.find(saved.name);
    if (ci == chain_index.end() || !chain_seen.emplace(saved.name, true).second) continue;
    ChainState& c = d->mutable_chain(ci->second);
    c.head = saved.head;
    c.halted = saved.halted;
    c.halt_height = saved.halt_height;
    c.halted_at = saved.halted_at;
    if (saved.first_seen != kNoTime) c.first_seen = saved.first_seen;
    c.votes_pruned_at = saved.votes_pruned_at;
    c.votes.clear();
    for (auto& v : saved.votes) {
      // Only votes of a node of this chain present now; others are dropped.
      auto ni = index.find(v.node);
      if (ni == index.end() || d->node(ni->second).spec.chain != ci->second) continue;
      c.votes.emplace(std::move(v.key), VoteSeen{ni->second, std::move(v.block_id)});
    }
  }
  for (const auto& ref : holds) d->SetHold(ref, true, kNoTime);
  d->AfterRestore();
  return {};
}

}  // namespace qw::detect
