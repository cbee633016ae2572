#include "detect/state_codec.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "common/json.h"

// Format (version 1), one JSON object, keys written in a fixed order and
// chains, nodes and votes sorted, so equal states encode to equal bytes:
//
//   {"version":1,
//    "chains":{"<chain>":{"head":H,"halted":B,"halt_height":H,"halted_at":T,
//              "votes_pruned_at":H,
//              "votes":[{"validator":S,"height":H,"round":R,"type":N,
//                        "node":"<node key>","block_id":S},...]},...},
//    "holds":["<node reference>",...],
//    "nodes":{"<node key>":{<every NodeState field but spec, open_streams and
//              retired>},...}}
//
// Times are int64 nanoseconds since the epoch, kNoTime as null; durations
// (longest_gap, ooc_total) are int64 nanoseconds.
// own_precommit is [[slot,height],...] for the slots not -1; missed_ring is
// a string of '0'/'1'; evidence is the 6 ring slots as strings (with
// evidence_next). Streams are not saved: a restarted instance re-attaches
// them, and a node with saved state is never restored retired.

namespace qw::detect {
namespace {

constexpr int64_t kVersion = 1;

// ---------------------------------------------------------------------------
// Encoding

class Writer {
 public:
  explicit Writer(std::string* out) : out_(*out) {}

  void Key(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    AppendJsonString(out_, k);
    out_.push_back(':');
  }
  void Int(std::string_view k, int64_t v) {
    Key(k);
    out_.append(std::to_string(v));
  }
  void Uint(std::string_view k, uint64_t v) {
    Key(k);
    out_.append(std::to_string(v));
  }
  void Bool(std::string_view k, bool v) {
    Key(k);
    out_.append(v ? "true" : "false");
  }
  void Time(std::string_view k, Nanos v) {
    Key(k);
    out_.append(v == kNoTime ? std::string("null") : std::to_string(v));
  }
  void Str(std::string_view k, std::string_view v) {
    Key(k);
    AppendJsonString(out_, v);
  }
  // Opens a nested object / array after Key(); the caller closes it.
  void BeginObject() {
    out_.push_back('{');
    first_ = true;
  }
  void EndObject() {
    out_.push_back('}');
    first_ = false;
  }
  std::string& raw() { return out_; }

 private:
  std::string& out_;
  bool first_ = true;
};

void EncodeNode(Writer& w, const NodeState& n) {
  w.BeginObject();
  // Heights.
  w.Int("first_height", n.first_height);
  w.Int("last_height", n.last_height);
  w.Time("last_advance", n.last_advance);
  w.Time("stall_base", n.stall_base);
  w.Int("commits", n.commits);
  w.Int("longest_gap", n.longest_gap);
  // Conditions.
  w.Bool("stalled", n.stalled);
  w.Bool("stall_pending", n.stall_pending);
  w.Bool("failed", n.failed);
  w.Int("failed_height", n.failed_height);
  w.Time("failed_at", n.failed_at);
  w.Bool("syncing", n.syncing);
  w.Time("sync_since", n.sync_since);
  w.Bool("lagging", n.lagging);
  w.Bool("was_in_consensus", n.was_in_consensus);
  w.Int("upgrade_height", n.upgrade_height);
  // Out of consensus and bans.
  w.Bool("ooc", n.ooc);
  w.Time("ooc_since", n.ooc_since);
  w.Str("ooc_reason", n.ooc_reason);
  w.Int("ooc_total", n.ooc_total);
  w.Bool("period_open", n.period_open);
  w.Time("period_start", n.period_start);
  w.Str("period_reason", n.period_reason);
  w.Time("back_since", n.back_since);
  w.Bool("banned", n.banned);
  w.Bool("ban_held", n.ban_held);
  w.Str("ban_held_rail", n.ban_held_rail);
  w.Time("banned_at", n.banned_at);
  w.Int("bans", n.bans);
  // Votes.
  w.Bool("signer", n.signer);
  w.Str("validator", n.validator);
  w.Int("first_vote_height", n.first_vote_height);
  w.Key("own_precommit");
  {
    std::string& o = w.raw();
    o.push_back('[');
    bool first = true;
    for (size_t slot = 0; slot < n.own_precommit.size(); ++slot) {
      if (n.own_precommit[slot] == -1) continue;
      if (!first) o.push_back(',');
      first = false;
      o.push_back('[');
      o.append(std::to_string(slot));
      o.push_back(',');
      o.append(std::to_string(n.own_precommit[slot]));
      o.push_back(']');
    }
    o.push_back(']');
  }
  w.Int("last_judged", n.last_judged);
  {
    std::string ring;
    ring.reserve(n.missed_ring.size());
    for (uint8_t m : n.missed_ring) ring.push_back(m ? '1' : '0');
    w.Str("missed_ring", ring);
  }
  w.Int("missed_ring_pos", n.missed_ring_pos);
  w.Int("missed_in_window", n.missed_in_window);
  w.Int("missed_total", n.missed_total);
  w.Int("last_double_sign_height", n.last_double_sign_height);
  w.Time("double_sign_at", n.double_sign_at);
  w.Bool("double_sign_critical", n.double_sign_critical);
  w.Str("double_sign_reason", n.double_sign_reason);
  // Evidence.
  w.Key("evidence");
  {
    std::string& o = w.raw();
    o.push_back('[');
    for (size_t i = 0; i < n.evidence.size(); ++i) {
      if (i > 0) o.push_back(',');
      AppendJsonString(o, n.evidence[i]);
    }
    o.push_back(']');
  }
  w.Int("evidence_next", n.evidence_next);
  // Counters.
  w.Uint("lines_read", n.lines_read);
  w.Uint("lines_matched", n.lines_matched);
  w.Uint("lines_rejected", n.lines_rejected);
  w.EndObject();
}

std::string KeyOf(const Detector& d, int i) {
  const NodeState& n = d.node(i);
  return Detector::NodeKey(d.chain(n.spec.chain).spec.name, n.spec.namespace_, n.spec.name);
}

// ---------------------------------------------------------------------------
// Decoding

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

// Collects the first error; every getter returns false once one is set.
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

  // For keys added after version 1 was first written: absent keeps defaults.
  static bool Has(object o, std::string_view key) {
    element e;
    return !o.at_key(key).get(e);
  }
  bool Get(object o, const std::string& where, std::string_view key, element* out) {
    if (!ok()) return false;
    if (o.at_key(key).get(*out)) return Fail(where, "missing \"" + std::string(key) + "\"");
    return true;
  }
  bool Object(object o, const std::string& where, std::string_view key, object* out) {
    element e;
    if (!Get(o, where, key, &e)) return false;
    if (e.get_object().get(*out)) return Fail(Path(where, key), "expected an object");
    return true;
  }
  bool Array(object o, const std::string& where, std::string_view key, array* out) {
    element e;
    if (!Get(o, where, key, &e)) return false;
    if (e.get_array().get(*out)) return Fail(Path(where, key), "expected an array");
    return true;
  }
  bool Int(object o, const std::string& where, std::string_view key, int64_t lo, int64_t hi,
           int64_t* out) {
    element e;
    if (!Get(o, where, key, &e)) return false;
    return IntValue(e, Path(where, key), lo, hi, out);
  }
  bool IntValue(element e, const std::string& where, int64_t lo, int64_t hi, int64_t* out) {
    if (!ok()) return false;
    if (e.get_int64().get(*out)) return Fail(where, "expected a 64-bit integer");
    if (*out < lo || *out > hi) {
      return Fail(where, "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return true;
  }
  bool Int32(object o, const std::string& where, std::string_view key, int64_t lo, int64_t hi,
             int* out) {
    int64_t v = 0;
    if (!Int(o, where, key, lo, hi, &v)) return false;
    *out = static_cast<int>(v);
    return true;
  }
  // A height: -1 (none) or more.
  bool Height(object o, const std::string& where, std::string_view key, int64_t* out) {
    return Int(o, where, key, -1, std::numeric_limits<int64_t>::max(), out);
  }
  bool Count(object o, const std::string& where, std::string_view key, int64_t* out) {
    return Int(o, where, key, 0, std::numeric_limits<int64_t>::max(), out);
  }
  bool Uint(object o, const std::string& where, std::string_view key, uint64_t* out) {
    element e;
    if (!Get(o, where, key, &e)) return false;
    if (e.get_uint64().get(*out)) return Fail(Path(where, key), "expected an unsigned integer");
    return true;
  }
  // An int64 nanosecond time, or null for kNoTime.
  bool Time(object o, const std::string& where, std::string_view key, Nanos* out) {
    element e;
    if (!Get(o, where, key, &e)) return false;
    if (e.is_null()) {
      *out = kNoTime;
      return true;
    }
    if (e.get_int64().get(*out)) return Fail(Path(where, key), "expected an integer or null");
    return true;
  }
  // A duration: an int64 of nanoseconds, 0 or more.
  bool Duration(object o, const std::string& where, std::string_view key, Nanos* out) {
    return Int(o, where, key, 0, std::numeric_limits<int64_t>::max(), out);
  }
  bool Bool(object o, const std::string& where, std::string_view key, bool* out) {
    element e;
    if (!Get(o, where, key, &e)) return false;
    if (e.get_bool().get(*out)) return Fail(Path(where, key), "expected true or false");
    return true;
  }
  bool Str(object o, const std::string& where, std::string_view key, std::string* out) {
    element e;
    if (!Get(o, where, key, &e)) return false;
    return StrValue(e, Path(where, key), out);
  }
  bool StrValue(element e, const std::string& where, std::string* out) {
    if (!ok()) return false;
    std::string_view v;
    if (e.get_string().get(v)) return Fail(where, "expected a string");
    out->assign(v.data(), v.size());
    return true;
  }

  static std::string Path(const std::string& where, std::string_view key) {
    return where.empty() ? std::string(key) : where + "." + std::string(key);
  }
  static std::string Quoted(std::string_view s) { return JsonString(s); }

 private:
  std::string error_;
};

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
  int64_t votes_pruned_at = -1;
  std::vector<SavedVote> votes;
};

bool DecodeNode(Reader& r, object o, const std::string& where, NodeState* n) {
  r.Height(o, where, "first_height", &n->first_height);
  r.Height(o, where, "last_height", &n->last_height);
  r.Time(o, where, "last_advance", &n->last_advance);
  r.Time(o, where, "stall_base", &n->stall_base);
  r.Count(o, where, "commits", &n->commits);
  r.Duration(o, where, "longest_gap", &n->longest_gap);

  r.Bool(o, where, "stalled", &n->stalled);
  r.Bool(o, where, "stall_pending", &n->stall_pending);
  r.Bool(o, where, "failed", &n->failed);
  r.Height(o, where, "failed_height", &n->failed_height);
  if (r.Has(o, "failed_at")) r.Time(o, where, "failed_at", &n->failed_at);
  r.Bool(o, where, "syncing", &n->syncing);
  r.Time(o, where, "sync_since", &n->sync_since);
  r.Bool(o, where, "lagging", &n->lagging);
  r.Bool(o, where, "was_in_consensus", &n->was_in_consensus);
  r.Height(o, where, "upgrade_height", &n->upgrade_height);

  r.Bool(o, where, "ooc", &n->ooc);
  r.Time(o, where, "ooc_since", &n->ooc_since);
  r.Str(o, where, "ooc_reason", &n->ooc_reason);
  r.Duration(o, where, "ooc_total", &n->ooc_total);
  r.Bool(o, where, "period_open", &n->period_open);
  r.Time(o, where, "period_start", &n->period_start);
  r.Str(o, where, "period_reason", &n->period_reason);
  r.Time(o, where, "back_since", &n->back_since);
  r.Bool(o, where, "banned", &n->banned);
  r.Bool(o, where, "ban_held", &n->ban_held);
  if (r.Has(o, "ban_held_rail")) r.Str(o, where, "ban_held_rail", &n->ban_held_rail);
  r.Time(o, where, "banned_at", &n->banned_at);
  r.Int32(o, where, "bans", 0, std::numeric_limits<int>::max(), &n->bans);

  r.Bool(o, where, "signer", &n->signer);
  r.Str(o, where, "validator", &n->validator);
  r.Height(o, where, "first_vote_height", &n->first_vote_height);
  n->own_precommit.fill(-1);
  array own;
  if (r.Array(o, where, "own_precommit", &own)) {
    std::string at = Reader::Path(where, "own_precommit");
    for (element entry : own) {
      array pair;
      element first, second;
      if (entry.get_array().get(pair) || pair.size() != 2 || pair.at(0).get(first) ||
          pair.at(1).get(second)) {
        r.Fail(at, "expected [slot, height] pairs");
        break;
      }
      int64_t slot = 0, height = 0;
      if (!r.IntValue(first, at, 0, kVoteRing - 1, &slot) ||
          !r.IntValue(second, at, std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max(), &height)) {
        break;
      }
      n->own_precommit[static_cast<size_t>(slot)] = height;
    }
  }
  r.Height(o, where, "last_judged", &n->last_judged);
  std::string ring;
  if (r.Str(o, where, "missed_ring", &ring)) {
    if (ring.empty()) {
      r.Fail(Reader::Path(where, "missed_ring"), "empty");
    } else if (ring.find_first_not_of("01") != std::string::npos) {
      r.Fail(Reader::Path(where, "missed_ring"), "expected a string of 0 and 1");
    } else if (ring.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
      r.Fail(Reader::Path(where, "missed_ring"), "too long");
    } else {
      n->missed_ring.resize(ring.size());
      for (size_t i = 0; i < ring.size(); ++i) n->missed_ring[i] = ring[i] == '1';
    }
  }
  if (r.ok()) {
    const auto size = static_cast<int64_t>(n->missed_ring.size());
    r.Int32(o, where, "missed_ring_pos", 0, size - 1, &n->missed_ring_pos);
    r.Int32(o, where, "missed_in_window", 0, size, &n->missed_in_window);
  }
  r.Count(o, where, "missed_total", &n->missed_total);
  r.Height(o, where, "last_double_sign_height", &n->last_double_sign_height);
  if (r.Has(o, "double_sign_at")) {
    r.Time(o, where, "double_sign_at", &n->double_sign_at);
    r.Bool(o, where, "double_sign_critical", &n->double_sign_critical);
    r.Str(o, where, "double_sign_reason", &n->double_sign_reason);
  }

  array evidence;
  if (r.Array(o, where, "evidence", &evidence)) {
    std::string at = Reader::Path(where, "evidence");
    if (evidence.size() > static_cast<size_t>(kEvidenceLines)) {
      r.Fail(at, "more than " + std::to_string(kEvidenceLines) + " lines");
    } else {
      size_t i = 0;
      for (element line : evidence) {
        if (!r.StrValue(line, at, &n->evidence[i++])) break;
      }
    }
  }
  r.Int32(o, where, "evidence_next", 0, kEvidenceLines - 1, &n->evidence_next);

  r.Uint(o, where, "lines_read", &n->lines_read);
  r.Uint(o, where, "lines_matched", &n->lines_matched);
  r.Uint(o, where, "lines_rejected", &n->lines_rejected);

  // States the detector never produces, and whose timers would be nonsense.
  if (r.ok()) {
    if (n->period_open && n->period_start == kNoTime) r.Fail(where, "period_open without period_start");
    else if (n->ooc && n->ooc_since == kNoTime) r.Fail(where, "ooc without ooc_since");
    else if (n->banned && n->banned_at == kNoTime) r.Fail(where, "banned without banned_at");
  }
  return r.ok();
}

bool DecodeChain(Reader& r, object o, const std::string& where, SavedChain* c) {
  r.Height(o, where, "head", &c->head);
  r.Bool(o, where, "halted", &c->halted);
  r.Height(o, where, "halt_height", &c->halt_height);
  r.Time(o, where, "halted_at", &c->halted_at);
  r.Height(o, where, "votes_pruned_at", &c->votes_pruned_at);
  if (r.ok() && c->halted && c->halted_at == kNoTime) r.Fail(where, "halted without halted_at");
  array votes;
  if (!r.Array(o, where, "votes", &votes)) return false;
  size_t i = 0;
  for (element v : votes) {
    std::string at = Reader::Path(where, "votes") + "[" + std::to_string(i++) + "]";
    object vo;
    if (v.get_object().get(vo)) return r.Fail(at, "expected an object");
    SavedVote sv;
    int64_t type = 0;
    r.Str(vo, at, "validator", &sv.key.validator);
    r.Int(vo, at, "height", 0, std::numeric_limits<int64_t>::max(), &sv.key.height);
    r.Int(vo, at, "round", -1, std::numeric_limits<int64_t>::max(), &sv.key.round);
    r.Int(vo, at, "type", 0, static_cast<int64_t>(VoteType::kProposal), &type);
    r.Str(vo, at, "node", &sv.node);
    r.Str(vo, at, "block_id", &sv.block_id);
    if (!r.ok()) return false;
    sv.key.type = static_cast<uint8_t>(type);
    c->votes.push_back(std::move(sv));
  }
  return r.ok();
}

}  // namespace

std::string EncodeState(const Detector& d) {
  std::string out;
  out.reserve(4096 + d.node_count() * 1024);
  Writer w(&out);
  w.BeginObject();
  w.Int("version", kVersion);

  // Node keys (sorted); the first node of a key wins should two share one.
  std::map<std::string, int> by_key;
  std::vector<std::string> key_of(d.node_count());
  for (size_t i = 0; i < d.node_count(); ++i) {
    key_of[i] = KeyOf(d, static_cast<int>(i));
    by_key.emplace(key_of[i], static_cast<int>(i));
  }

  // Chains, by name.
  std::map<std::string, int> chains;
  for (size_t i = 0; i < d.chain_count(); ++i) {
    chains.emplace(d.chain(static_cast<int>(i)).spec.name, static_cast<int>(i));
  }
  w.Key("chains");
  w.BeginObject();
  for (const auto& [name, ci] : chains) {
    const ChainState& c = d.chain(ci);
    w.Key(name);
    w.BeginObject();
    w.Int("head", c.head);
    w.Bool("halted", c.halted);
    w.Int("halt_height", c.halt_height);
    w.Time("halted_at", c.halted_at);
    w.Int("votes_pruned_at", c.votes_pruned_at);
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
    w.Key("votes");
    std::string& o = w.raw();
    o.push_back('[');
    for (size_t i = 0; i < votes.size(); ++i) {
      if (i > 0) o.push_back(',');
      const auto& [key, seen] = *votes[i];
      Writer vw(&o);
      vw.BeginObject();
      vw.Str("validator", key.validator);
      vw.Int("height", key.height);
      vw.Int("round", key.round);
      vw.Int("type", key.type);
      vw.Str("node", key_of[static_cast<size_t>(seen.node)]);
      vw.Str("block_id", seen.block_id);
      vw.EndObject();
    }
    o.push_back(']');
    w.EndObject();
  }
  w.EndObject();

  // Live nodes, and restored states whose node has not come back yet (a
  // file that reappears later must still find its state after the next
  // checkpoint), in key order.
  std::map<std::string, const NodeState*> nodes;
  for (const auto& [key, ni] : by_key) nodes.emplace(key, &d.node(ni));
  for (const auto& [key, state] : d.restored_nodes()) nodes.emplace(key, &state);
  w.Key("holds");
  {
    std::string& o = w.raw();
    o.push_back('[');
    bool first = true;
    for (const auto& ref : d.holds()) {
      if (!first) o.push_back(',');
      first = false;
      AppendJsonString(o, ref);
    }
    o.push_back(']');
  }
  w.Key("nodes");
  w.BeginObject();
  for (const auto& [key, state] : nodes) {
    w.Key(key);
    Writer nw(&out);
    EncodeNode(nw, *state);
  }
  w.EndObject();
  w.EndObject();
  return out;
}

Result<void> DecodeState(const std::string& json, Detector* d) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  element root;
  if (auto err = parser.parse(padded).get(root)) {
    return Fail("state: not valid JSON (" + std::string(simdjson::error_message(err)) + ")");
  }
  object top;
  if (root.get_object().get(top)) return Fail("state: expected a JSON object");

  // Everything is read and checked before anything is applied: a malformed
  // state leaves `d` as it was.
  Reader r;
  int64_t version = 0;
  if (!r.Int(top, "", "version", std::numeric_limits<int64_t>::min(),
             std::numeric_limits<int64_t>::max(), &version)) {
    return Fail(r.error());
  }
  if (version != kVersion) {
    return Fail("state: unsupported version " + std::to_string(version) + " (expected " +
                std::to_string(kVersion) + ")");
  }

  std::vector<std::pair<std::string, NodeState>> nodes;
  object nodes_obj;
  if (r.Object(top, "", "nodes", &nodes_obj)) {
    for (auto [key, value] : nodes_obj) {
      std::string where = "nodes[" + Reader::Quoted(key) + "]";
      object o;
      if (value.get_object().get(o)) {
        r.Fail(where, "expected an object");
        break;
      }
      NodeState n;
      if (!DecodeNode(r, o, where, &n)) break;
      nodes.emplace_back(std::string(key), std::move(n));
    }
  }
  if (!r.ok()) return Fail(r.error());

  std::vector<SavedChain> chains;
  object chains_obj;
  if (r.Object(top, "", "chains", &chains_obj)) {
    for (auto [name, value] : chains_obj) {
      std::string where = "chains[" + Reader::Quoted(name) + "]";
      object o;
      if (value.get_object().get(o)) {
        r.Fail(where, "expected an object");
        break;
      }
      SavedChain c;
      c.name = std::string(name);
      if (!DecodeChain(r, o, where, &c)) break;
      chains.push_back(std::move(c));
    }
  }
  if (!r.ok()) return Fail(r.error());

  std::vector<std::string> holds;
  if (Reader::Has(top, "holds")) {
    array holds_arr;
    if (r.Array(top, "", "holds", &holds_arr)) {
      for (element h : holds_arr) {
        std::string ref;
        if (!r.StrValue(h, "holds", &ref)) break;
        holds.push_back(std::move(ref));
      }
    }
  }
  if (!r.ok()) return Fail(r.error());

  // Apply. Nodes are matched by key; the first saved entry of a key wins.
  std::map<std::string, int> index;
  for (size_t i = 0; i < d->node_count(); ++i) index.emplace(KeyOf(*d, static_cast<int>(i)), static_cast<int>(i));
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
    saved.open_streams = n.open_streams;
    saved.retired = n.retired;
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
