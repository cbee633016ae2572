// Synthetic CometBFT / Cosmos-SDK log corpora for the micro benchmarks,
// generated in code (nothing committed). Line shapes follow
// docs/LOG-FORMATS.md section 3 and the test lines of
// patterns/cometbft.yaml:
//   plain    I[2006-01-02|15:04:05.000] <msg padded to 44> module=... k=v (call order)
//   tmjson   {"_msg":"...", <keys sorted>, "ts":"RFC3339Nano"}
//   sdkcon   3:04PM INF <msg> k=v (keys sorted)
//   sdkjson  {"level":...,"module":..., <fields>, "time":"RFC3339","message":"..."}
//
// The declarations are repeated in each micro_*.cc that uses them (see the
// block marked "micro_corpus.cc" there); keep them in step with this file.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"

namespace qwbench {

enum class Shape { kPlain = 0, kTmJson = 1, kSdkConsole = 2, kSdkJson = 3 };

struct GenLine {
  std::string text;  // the message as the node prints it (no runtime wrapper)
  qw::Nanos time;    // when it was printed
  bool consensus;    // one of the lines the cometbft rules must match
};

namespace {

// Small deterministic generator (xorshift64*): same corpus on every run.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
};

std::string Hex(Rng& r, size_t n) {
  static const char kDigits[] = "0123456789ABCDEF";
  std::string s(n, '0');
  for (auto& c : s) c = kDigits[r.Below(16)];
  return s;
}

std::string LowerHex(Rng& r, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = kDigits[r.Below(16)];
  return s;
}

struct Civil {
  int y, mo, d, h, mi, s, ms;
};

// UTC calendar fields of t (the generator only needs UTC).
Civil ToCivil(qw::Nanos t) {
  int64_t secs = t / qw::kSecond;
  int ms = static_cast<int>((t % qw::kSecond) / qw::kMillisecond);
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  // civil_from_days (H. Hinnant).
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = static_cast<unsigned>(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  unsigned d = doy - (153 * mp + 2) / 5 + 1;
  unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return Civil{static_cast<int>(y + (m <= 2)), static_cast<int>(m), static_cast<int>(d),
               static_cast<int>(rem / 3600), static_cast<int>(rem % 3600 / 60),
               static_cast<int>(rem % 60), ms};
}

std::string PlainStamp(qw::Nanos t) {  // 2006-01-02|15:04:05.000
  Civil c = ToCivil(t);
  char b[40];
  std::snprintf(b, sizeof b, "%04d-%02d-%02d|%02d:%02d:%02d.%03d", c.y, c.mo, c.d, c.h, c.mi, c.s,
                c.ms);
  return b;
}

std::string KitchenStamp(qw::Nanos t) {  // 3:04PM
  Civil c = ToCivil(t);
  int h12 = c.h % 12 == 0 ? 12 : c.h % 12;
  char b[16];
  std::snprintf(b, sizeof b, "%d:%02d%s", h12, c.mi, c.h < 12 ? "AM" : "PM");
  return b;
}

std::string SecondsStamp(qw::Nanos t) {  // 2006-01-02T15:04:05Z
  Civil c = ToCivil(t);
  char b[40];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02dZ", c.y, c.mo, c.d, c.h, c.mi, c.s);
  return b;
}

}  // namespace

// RFC3339 with nanoseconds (the CRI / docker runtime stamp and Vote{... @ t}).
std::string NanoStamp(qw::Nanos t) {
  Civil c = ToCivil(t);
  char b[48];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", c.y, c.mo, c.d, c.h, c.mi,
                c.s, static_cast<long long>(t % qw::kSecond));
  return b;
}

namespace {

struct Kv {
  std::string key;
  std::string value;
  bool number;  // emitted bare in JSON
};

struct Msg {
  char level;  // 'D', 'I', 'E'
  std::string text;
  std::string module;
  std::vector<Kv> fields;  // call order
};

bool NeedsQuote(std::string_view v) {
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=') return true;
  }
  return v.empty();
}

void AppendLogfmtValue(std::string& out, std::string_view v) {
  if (!NeedsQuote(v)) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

void AppendJsonString(std::string& out, std::string_view v) {
  out.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

void AppendJsonValue(std::string& out, const Kv& kv) {
  if (kv.number) {
    out.append(kv.value);
  } else {
    AppendJsonString(out, kv.value);
  }
}

std::vector<Kv> Sorted(std::vector<Kv> kvs) {
  // Insertion sort by key (byte order, as go-kit and zerolog sort).
  for (size_t i = 1; i < kvs.size(); ++i) {
    for (size_t j = i; j > 0 && kvs[j].key < kvs[j - 1].key; --j) std::swap(kvs[j], kvs[j - 1]);
  }
  return kvs;
}

std::string Render(Shape shape, const Msg& m, qw::Nanos t) {
  std::string out;
  out.reserve(256);
  const char* lvl_word = m.level == 'D' ? "debug" : m.level == 'E' ? "error" : "info";
  const char* lvl_con = m.level == 'D' ? "DBG" : m.level == 'E' ? "ERR" : "INF";
  switch (shape) {
    case Shape::kPlain: {
      out.push_back(m.level);
      out.push_back('[');
      out += PlainStamp(t);
      out += "] ";
      out += m.text;
      if (m.text.size() < 44) out.append(44 - m.text.size(), ' ');
      out.push_back(' ');
      out += "module=" + m.module;
      for (const Kv& kv : m.fields) {
        out.push_back(' ');
        out += kv.key;
        out.push_back('=');
        AppendLogfmtValue(out, kv.value);
      }
      break;
    }
    case Shape::kTmJson: {
      std::vector<Kv> all = m.fields;
      all.push_back(Kv{"level", lvl_word, false});
      all.push_back(Kv{"module", m.module, false});
      all.push_back(Kv{"ts", NanoStamp(t), false});
      all = Sorted(std::move(all));
      out += "{\"_msg\":";
      AppendJsonString(out, m.text);
      for (const Kv& kv : all) {
        out += ",\"" + kv.key + "\":";
        AppendJsonValue(out, kv);
      }
      out.push_back('}');
      break;
    }
    case Shape::kSdkConsole: {
      std::vector<Kv> all = m.fields;
      all.push_back(Kv{"module", m.module, false});
      all = Sorted(std::move(all));
      out += KitchenStamp(t);
      out.push_back(' ');
      out += lvl_con;
      out.push_back(' ');
      out += m.text;
      for (const Kv& kv : all) {
        out.push_back(' ');
        out += kv.key;
        out.push_back('=');
        AppendLogfmtValue(out, kv.value);
      }
      break;
    }
    case Shape::kSdkJson: {
      out += "{\"level\":\"";
      out += lvl_word;
      out += "\",\"module\":";
      AppendJsonString(out, m.module);
      for (const Kv& kv : m.fields) {
        out += ",\"" + kv.key + "\":";
        AppendJsonValue(out, kv);
      }
      out += ",\"time\":\"" + SecondsStamp(t) + "\",\"message\":";
      AppendJsonString(out, m.text);
      out.push_back('}');
      break;
    }
  }
  return out;
}

std::string Num(int64_t v) { return std::to_string(v); }

std::string PeerId(Rng& r) { return LowerHex(r, 40); }
std::string PeerAddr(Rng& r) {
  return "10.0." + Num(static_cast<int64_t>(r.Below(4))) + "." +
         Num(static_cast<int64_t>(r.Below(250) + 2)) + ":26656";
}

std::string VoteString(Rng& r, int64_t height, int round, bool precommit, qw::Nanos t,
                       const std::string& validator, int index) {
  char rnd[8];
  std::snprintf(rnd, sizeof rnd, "%02d", round);
  return "Vote{" + Num(index) + ":" + validator + " " + Num(height) + "/" + rnd +
         (precommit ? "/SIGNED_MSG_TYPE_PRECOMMIT(Precommit) " : "/SIGNED_MSG_TYPE_PREVOTE(Prevote) ") +
         Hex(r, 12) + " " + Hex(r, 12) + " 000000000000 @ " + NanoStamp(t) + "}";
}

// Noise: p2p, mempool, txindex and consensus debug lines that no rule of
// patterns/cometbft.yaml matches (several are its non_matching examples).
Msg NoiseMsg(Rng& r, int64_t height, qw::Nanos t) {
  switch (r.Below(10)) {
    case 0:
    case 1:
    case 2:
      return Msg{'D', "Receive", "p2p",
                 {{"peer", PeerId(r) + "@" + PeerAddr(r), false},
                  {"chId", Num(static_cast<int64_t>(32 + r.Below(3))), true},
                  {"msgBytes", Num(static_cast<int64_t>(64 + r.Below(2048))), true}}};
    case 3:
    case 4:
      return Msg{'D', "Send", "p2p",
                 {{"channel", Num(static_cast<int64_t>(32 + r.Below(3))), true},
                  {"conn", "MConn{" + PeerAddr(r) + "}", false},
                  {"msgBytes", Hex(r, 48), false}}};
    case 5:
      return Msg{'D', "Read PacketMsg", "p2p",
                 {{"peer", PeerId(r) + "@" + PeerAddr(r), false},
                  {"conn", "MConn{" + PeerAddr(r) + "}", false},
                  {"packet", "PacketMsg{30:" + Hex(r, 32) + " T:1}", false}}};
    case 6:
      return Msg{'D', "Receive", "consensus",
                 {{"src", "Peer{MConn{" + PeerAddr(r) + "} " + PeerId(r) + " out}", false},
                  {"chId", "34", true},
                  {"msg", "[Vote " + VoteString(r, height, 0, r.Below(2) == 1, t, Hex(r, 12),
                                                static_cast<int>(r.Below(150))) +
                              "]",
                   false}}};
    case 7:
      return Msg{'D', "Added good transaction", "mempool",
                 {{"tx", Hex(r, 64), false},
                  {"height", Num(height), true},
                  {"total", Num(static_cast<int64_t>(1 + r.Below(40))), true}}};
    case 8:
      return Msg{'I', "indexed block events", "txindex", {{"height", Num(height), true}}};
    default:
      return Msg{'I', "received complete proposal block", "consensus",
                 {{"height", Num(height), true}, {"hash", Hex(r, 64), false}}};
  }
}

constexpr int kConsensusPerHeight = 5;

// The five lines a validator logs per height that the cometbft rules take:
// finalizing commit, committed state, Timed out, and its prevote/precommit.
Msg ConsensusMsg(Rng& r, int which, int64_t height, qw::Nanos t, const std::string& validator) {
  switch (which) {
    case 0:
      return Msg{'D', "signed and pushed vote", "consensus",
                 {{"height", Num(height), true},
                  {"round", "0", true},
                  {"vote", VoteString(r, height, 0, false, t, validator, 12), false}}};
    case 1:
      return Msg{'D', "signed and pushed vote", "consensus",
                 {{"height", Num(height), true},
                  {"round", "0", true},
                  {"vote", VoteString(r, height, 0, true, t, validator, 12), false}}};
    case 2:
      return Msg{'I', "finalizing commit of block", "consensus",
                 {{"height", Num(height), true},
                  {"hash", Hex(r, 64), false},
                  {"root", Hex(r, 64), false},
                  {"num_txs", Num(static_cast<int64_t>(r.Below(20))), true}}};
    case 3:
      return Msg{'I', "committed state", "state",
                 {{"height", Num(height), true},
                  {"num_txs", Num(static_cast<int64_t>(r.Below(20))), true},
                  {"app_hash", Hex(r, 64), false}}};
    default:
      return Msg{'I', "Timed out", "consensus",
                 {{"dur", "996.204ms", false},
                  {"height", Num(height + 1), true},
                  {"round", "0", true},
                  {"step", "RoundStepNewHeight", false}}};
  }
}

}  // namespace

const char* ShapeName(Shape s) {
  switch (s) {
    case Shape::kPlain:
      return "plain";
    case Shape::kTmJson:
      return "tmjson";
    case Shape::kSdkConsole:
      return "sdkcon";
    default:
      return "sdkjson";
  }
}

// One node's log: heights committed every 6 s from t0; per height the five
// consensus lines and enough noise for `consensus_fraction` of the lines to
// be consensus lines. `node` shifts the times and the validator address.
std::vector<GenLine> NodeLog(Shape shape, size_t lines, double consensus_fraction, int node,
                             qw::Nanos t0, int64_t first_height) {
  Rng r(static_cast<uint64_t>(node) * 7919 + static_cast<uint64_t>(shape) + 1);
  const std::string validator = Hex(r, 12);
  const size_t per_height =
      std::max<size_t>(kConsensusPerHeight + 1,
                       static_cast<size_t>(kConsensusPerHeight / consensus_fraction + 0.5));
  const qw::Nanos block = 6 * qw::kSecond;
  const qw::Nanos step = block / static_cast<qw::Nanos>(per_height);
  std::vector<GenLine> out;
  out.reserve(lines);
  int64_t height = first_height;
  qw::Nanos base = t0 + node * 7 * qw::kMillisecond;
  while (out.size() < lines) {
    // Noise spread over the height; the consensus lines in block order
    // (prevote, precommit, finalizing, committed, timed out) at its end.
    size_t noise = per_height - kConsensusPerHeight;
    for (size_t i = 0; i < per_height && out.size() < lines; ++i) {
      qw::Nanos t = base + static_cast<qw::Nanos>(i) * step;
      if (i < noise) {
        out.push_back(GenLine{Render(shape, NoiseMsg(r, height, t), t), t, false});
      } else {
        int which = static_cast<int>(i - noise);
        out.push_back(
            GenLine{Render(shape, ConsensusMsg(r, which, height, t, validator), t), t, true});
      }
    }
    ++height;
    base += block;
  }
  return out;
}

// A CRI (containerd / CRI-O) log file of the lines; about `partial_fraction`
// of them are split by the runtime into a P piece and the F rest.
std::string CriFile(const std::vector<GenLine>& lines, double partial_fraction) {
  Rng r(12345);
  std::string out;
  size_t total = 0;
  for (const auto& l : lines) total += l.text.size() + 48;
  out.reserve(total + total / 8);
  const uint64_t every =
      partial_fraction > 0 ? static_cast<uint64_t>(1.0 / partial_fraction + 0.5) : 0;
  for (const auto& l : lines) {
    std::string stamp = NanoStamp(l.time);
    if (every != 0 && r.Below(every) == 0 && l.text.size() > 16) {
      size_t cut = l.text.size() / 2;
      out += stamp + " stderr P " + l.text.substr(0, cut) + "\n";
      out += stamp + " stderr F " + l.text.substr(cut) + "\n";
    } else {
      out += stamp + " stderr F " + l.text + "\n";
    }
  }
  return out;
}

// The same lines without a runtime wrapper (a plain log file).
std::string RawFile(const std::vector<GenLine>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l.text;
    out.push_back('\n');
  }
  return out;
}

// One docker json-file record of `msg`.
std::string DockerLine(std::string_view msg, qw::Nanos t) {
  std::string out = "{\"log\":";
  std::string body(msg);
  body += "\n";
  out.push_back('"');
  for (char c : body) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  out += "\",\"stream\":\"stderr\",\"time\":\"" + NanoStamp(t) + "\"}";
  return out;
}

}  // namespace qwbench
