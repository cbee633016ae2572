#include "match/matcher.h"

#include <charconv>
#include <cstring>

namespace qw::match {
namespace {

RE2::Options RuleOptions() {
  RE2::Options opt;
  opt.set_log_errors(false);
  opt.set_max_mem(64 << 20);
  return opt;
}

int64_t ToInt(std::string_view s) {
  int64_t v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p == s.data()) return -1;
  return v;
}

void SetField(Field f, std::string_view v, Signal* out) {
  switch (f) {
    case Field::kHeight:
      out->height = ToInt(v);
      break;
    case Field::kRound:
      out->round = ToInt(v);
      break;
    case Field::kStep:
      break;
    case Field::kType:
      out->type_raw = v;
      out->vote_type = ParseVoteType(v);
      break;
    case Field::kValidator:
      out->validator = v;
      break;
    case Field::kBlockId:
      out->block_id = v;
      break;
    case Field::kReason:
      out->reason = v;
      break;
    case Field::kName:
      out->name = v;
      break;
    case Field::kTargetHeight:
      out->target_height = ToInt(v);
      break;
    case Field::kCount:
      out->count = ToInt(v);
      break;
  }
}

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-' || c == '/';
}

// Reads a quoted value starting after the opening quote at `p`.
std::string_view Quoted(std::string_view line, size_t p) {
  size_t end = p;
  while (end < line.size() && line[end] != '"') {
    if (line[end] == '\\' && end + 1 < line.size()) ++end;
    ++end;
  }
  return line.substr(p, end - p);
}

}  // namespace

bool FindKeyValue(std::string_view line, std::string_view key, std::string_view* value) {
  size_t from = 0;
  while (from < line.size()) {
    size_t at = line.find(key, from);
    if (at == std::string_view::npos) return false;
    from = at + 1;
    size_t after = at + key.size();
    if (after >= line.size()) return false;
    char before = at > 0 ? line[at - 1] : ' ';
    if (line[after] == '=' && !IsKeyChar(before) && before != '"') {
      // logfmt
      size_t p = after + 1;
      if (p < line.size() && line[p] == '"') {
        *value = Quoted(line, p + 1);
      } else {
        size_t end = p;
        while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
        *value = line.substr(p, end - p);
      }
      return true;
    }
    if (before == '"' && line[after] == '"' && after + 1 < line.size() &&
        (at < 2 || line[at - 2] != '\\')) {
      // JSON: "key" then optional spaces, ':'
      size_t p = after + 1;
      while (p < line.size() && line[p] == ' ') ++p;
      if (p >= line.size() || line[p] != ':') continue;
      ++p;
      while (p < line.size() && line[p] == ' ') ++p;
      if (p < line.size() && line[p] == '"') {
        *value = Quoted(line, p + 1);
      } else {
        size_t end = p;
        while (end < line.size() && line[end] != ',' && line[end] != '}' && line[end] != ' ') ++end;
        *value = line.substr(p, end - p);
      }
      return true;
    }
  }
  return false;
}

FamilyMatcher::FamilyMatcher(const PatternFile& pf)
    : pf_(&pf), set_(RuleOptions(), RE2::UNANCHORED) {}

Result<std::unique_ptr<FamilyMatcher>> FamilyMatcher::Create(
    const PatternFile& pf, std::shared_ptr<const HsDatabase> prefilter) {
  std::unique_ptr<FamilyMatcher> m(new FamilyMatcher(pf));
  int max_groups = 0;
  for (const Rule& r : pf.rules) {
    std::string err;
    if (m->set_.Add(r.regex, &err) < 0) {
      return Fail(pf.path + ":" + std::to_string(r.file_line) + ": rule '" + r.name +
                  "': " + err);
    }
    CompiledRule cr;
    cr.re = std::make_unique<RE2>(r.regex, RuleOptions());
    if (!cr.re->ok()) {
      return Fail(pf.path + ":" + std::to_string(r.file_line) + ": rule '" + r.name +
                  "': " + cr.re->error());
    }
    cr.groups = cr.re->NumberOfCapturingGroups();
    for (const auto& [name, index] : cr.re->NamedCapturingGroups()) {
      cr.named.emplace_back(*FieldOfGroup(name), index);
    }
    cr.needs_confirm = !cr.named.empty();
    max_groups = std::max(max_groups, cr.groups);
    m->rules_.push_back(std::move(cr));
  }
  if (!m->set_.Compile()) return Fail(pf.path + ": the rules' set does not compile");
  if (!pf.timestamps.empty()) {
    m->timestamp_set_ = std::make_unique<RE2::Set>(RuleOptions(), RE2::UNANCHORED);
    for (const TimestampSpec& t : pf.timestamps) {
      if (m->timestamp_set_->Add(t.regex, nullptr) < 0) {
        return Fail(pf.path + ":" + std::to_string(t.line) + ": timestamp regex does not compile");
      }
    }
    if (!m->timestamp_set_->Compile()) return Fail(pf.path + ": timestamp regexes do not compile");
  }
  for (const TimestampSpec& t : pf.timestamps) {
    CompiledTimestamp ct;
    ct.re = std::make_unique<RE2>(t.regex, RuleOptions());
    ct.ts_group = ct.re->NamedCapturingGroups().at("ts");
    ct.layout = t.layout;
    max_groups = std::max(max_groups, ct.re->NumberOfCapturingGroups());
    m->timestamps_.push_back(std::move(ct));
  }
  if (!pf.continuation.empty()) {
    std::string any;
    for (const std::string& c : pf.continuation) {
      if (!any.empty()) any += "|";
      any += "(?:" + c + ")";
    }
    m->continuation_ = std::make_unique<RE2>(any, RuleOptions());
    if (!m->continuation_->ok()) {
      return Fail(pf.path + ": continuation rules: " + m->continuation_->error());
    }
  }
  if (!pf.fingerprints.empty()) {
    std::string any;
    for (const Fingerprint& f : pf.fingerprints) {
      if (!any.empty()) any += "|";
      any += "(?:" + f.regex + ")";
    }
    m->fingerprint_ = std::make_unique<RE2>(any, RuleOptions());
    if (!m->fingerprint_->ok()) return Fail(pf.path + ": fingerprints: " + m->fingerprint_->error());
  }
  m->hits_.reserve(pf.rules.size());
  if (prefilter) {
    m->hs_ = HsPrefilter::Create(std::move(prefilter));
    if (!m->hs_) m->hs_note_ = "Vectorscan: cannot allocate scratch space";
  } else {
    m->hs_note_ = "no Vectorscan database given";
  }
  m->submatch_.resize(static_cast<size_t>(max_groups) + 1);
  return m;
}

int FamilyMatcher::FirstHit(std::string_view line) {
  re2::StringPiece text(line.data(), line.size());
  RE2::Set::ErrorInfo info{};
  // First pass without a result vector: most lines are noise and miss.
  if (!set_.Match(text, nullptr, &info)) {
    if (info.kind != RE2::Set::kOutOfMemory) return -1;
    ++dfa_oom_;
    for (size_t i = 0; i < rules_.size(); ++i) {
      if (RE2::PartialMatch(text, *rules_[i].re)) return static_cast<int>(i);
    }
    return -1;
  }
  hits_.clear();
  if (!set_.Match(text, &hits_, &info)) {
    // Cannot happen unless the DFA failed on the second pass.
    ++dfa_oom_;
    for (size_t i = 0; i < rules_.size(); ++i) {
      if (RE2::PartialMatch(text, *rules_[i].re)) return static_cast<int>(i);
    }
    return -1;
  }
  int best = hits_[0];
  for (int h : hits_) best = std::min(best, h);
  return best;
}

int FamilyMatcher::FirstRule(std::string_view line) { return FirstHit(line); }

void FamilyMatcher::Fill(int rule, std::string_view line, bool have_submatch, Signal* out) {
  const Rule& r = pf_->rules[static_cast<size_t>(rule)];
  const CompiledRule& cr = rules_[static_cast<size_t>(rule)];
  *out = Signal{};
  out->kind = r.signal;
  out->rule = static_cast<uint16_t>(rule);
  for (const FieldFromKey& fk : r.key_fields) {
    std::string_view v;
    if (FindKeyValue(line, fk.key, &v)) SetField(fk.field, v, out);
  }
  if (have_submatch) {
    for (const auto& [field, index] : cr.named) {
      const re2::StringPiece& sp = submatch_[static_cast<size_t>(index)];
      if (sp.data() != nullptr) SetField(field, std::string_view(sp.data(), sp.size()), out);
    }
  }
  if (out->reason.empty() && !r.reason.empty()) out->reason = r.reason;
}

bool FamilyMatcher::Confirm(int rule, std::string_view line, Signal* out) {
  const CompiledRule& cr = rules_[static_cast<size_t>(rule)];
  re2::StringPiece text(line.data(), line.size());
  if (cr.needs_confirm) {
    if (!cr.re->Match(text, 0, text.size(), RE2::UNANCHORED, submatch_.data(), cr.groups + 1)) {
      return false;
    }
    Fill(rule, line, true, out);
    return true;
  }
  if (!cr.re->Match(text, 0, text.size(), RE2::UNANCHORED, nullptr, 0)) return false;
  Fill(rule, line, false, out);
  return true;
}

bool FamilyMatcher::Match(std::string_view line, Signal* out) {
  int rule = FirstHit(line);
  if (rule < 0) return false;
  // The Set said which rule; captures need the rule's own regex.
  if (rules_[static_cast<size_t>(rule)].needs_confirm) return Confirm(rule, line, out);
  Fill(rule, line, false, out);
  return true;
}

size_t FamilyMatcher::MatchRecords(std::string_view buf, const uint32_t* starts,
                                   const uint32_t* lengths, const uint8_t* active, size_t n,
                                   Signal* out) {
  size_t hits = 0;
  if (hs_) {
    const size_t words = hs_->words();
    masks_.assign(n * words, 0);
    if (hs_->Scan(buf, starts, n, masks_.data())) {
      for (size_t i = 0; i < n; ++i) {
        out[i].kind = SignalKind::kNone;
        if (!active[i]) continue;
        std::string_view line = buf.substr(starts[i], lengths[i]);
        bool found = false;
        for (size_t w = 0; w < words && !found; ++w) {
          uint64_t m = masks_[i * words + w];
          while (m != 0 && !found) {
            int bit = __builtin_ctzll(m);
            m &= m - 1;
            found = Confirm(static_cast<int>(w * 64 + static_cast<size_t>(bit)), line, &out[i]);
          }
        }
        if (found) {
          ++hits;
        } else {
          out[i].kind = SignalKind::kNone;
        }
      }
      return hits;
    }
    ++dfa_oom_;  // scan error: fall through to rule-by-rule matching
  }
  for (size_t i = 0; i < n; ++i) {
    out[i].kind = SignalKind::kNone;
    if (active[i] && Match(buf.substr(starts[i], lengths[i]), &out[i])) ++hits;
  }
  return hits;
}

Nanos FamilyMatcher::MessageTime(std::string_view line, int32_t default_year,
                                 int32_t offset_seconds, TimeHint* hint) const {
  auto parse = [&](const CompiledTimestamp& t, std::string_view ts, size_t* used) {
    if (t.layout == "rfc3339") return ParseRfc3339(ts, used, offset_seconds);
    return ParseLayout(ts, t.layout, default_year, offset_seconds, used);
  };
  if (hint != nullptr && hint->spec >= 0 && hint->spec < static_cast<int>(timestamps_.size()) &&
      hint->offset + hint->length < line.size() && hint->offset > 0) {
    const CompiledTimestamp& t = timestamps_[static_cast<size_t>(hint->spec)];
    size_t used = 0;
    if (line[hint->offset - 1] == hint->before && line[hint->offset + hint->length] == hint->after) {
      Nanos v = parse(t, line.substr(hint->offset), &used);
      if (v != kNoTime && used == hint->length) return v;
    }
  }
  re2::StringPiece text(line.data(), line.size());
  // Most lines of a stream without stamps: one DFA pass says so.
  if (!timestamp_set_) return kNoTime;
  RE2::Set::ErrorInfo info{};
  if (!timestamp_set_->Match(text, nullptr, &info) && info.kind != RE2::Set::kOutOfMemory) {
    return kNoTime;
  }
  re2::StringPiece sub[8];
  for (size_t idx = 0; idx < timestamps_.size(); ++idx) {
    const CompiledTimestamp& t = timestamps_[idx];
    if (t.ts_group >= 8) continue;
    if (!t.re->Match(text, 0, text.size(), RE2::UNANCHORED, sub, t.ts_group + 1)) continue;
    std::string_view ts(sub[t.ts_group].data(), sub[t.ts_group].size());
    size_t used = 0;
    Nanos v = parse(t, ts, &used);
    if (v == kNoTime) continue;
    if (hint != nullptr) {
      size_t off = static_cast<size_t>(ts.data() - line.data());
      hint->spec = static_cast<int>(idx);
      hint->offset = static_cast<uint32_t>(off);
      hint->length = static_cast<uint32_t>(used);
      hint->before = off > 0 ? line[off - 1] : 0;
      hint->after = off + used < line.size() ? line[off + used] : 0;
    }
    return v;
  }
  return kNoTime;
}

bool FamilyMatcher::HasFingerprint(std::string_view line) const {
  if (!fingerprint_) return false;
  re2::StringPiece text(line.data(), line.size());
  return fingerprint_->Match(text, 0, text.size(), RE2::UNANCHORED, nullptr, 0);
}

bool FamilyMatcher::IsContinuation(std::string_view line) const {
  if (!continuation_) return false;
  re2::StringPiece text(line.data(), line.size());
  return continuation_->Match(text, 0, text.size(), RE2::UNANCHORED, nullptr, 0);
}

namespace {

std::string Describe(const Signal& s) {
  if (s.kind == SignalKind::kNone) return "none";
  std::string out = "rule " + std::to_string(s.rule) + " height=" + std::to_string(s.height) +
                    " round=" + std::to_string(s.round) + " target=" + std::to_string(s.target_height) +
                    " count=" + std::to_string(s.count);
  auto add = [&out](const char* k, std::string_view v) {
    if (!v.empty()) out.append(" ").append(k).append("=").append(v);
  };
  add("type", s.type_raw);
  add("validator", s.validator);
  add("block_id", s.block_id);
  add("reason", s.reason);
  add("name", s.name);
  return out;
}

}  // namespace

std::string CompareMatchers(FamilyMatcher& a, FamilyMatcher& b, std::string_view buf) {
  std::vector<uint32_t> starts, lengths;
  size_t at = 0;
  while (at <= buf.size()) {
    size_t nl = buf.find('\n', at);
    if (nl == std::string_view::npos) nl = buf.size();
    if (nl > UINT32_MAX) break;
    starts.push_back(static_cast<uint32_t>(at));
    lengths.push_back(static_cast<uint32_t>(nl - at));
    at = nl + 1;
  }
  const size_t n = starts.size();
  std::vector<uint8_t> active(n, 1);
  std::vector<Signal> sa(n), sb(n);
  a.MatchRecords(buf, starts.data(), lengths.data(), active.data(), n, sa.data());
  b.MatchRecords(buf, starts.data(), lengths.data(), active.data(), n, sb.data());
  for (size_t i = 0; i < n; ++i) {
    const std::string da = Describe(sa[i]), db = Describe(sb[i]);
    if (da != db) {
      return "record " + std::to_string(i) + " '" +
             std::string(buf.substr(starts[i], std::min<size_t>(lengths[i], 120))) + "': " + da +
             " with " + a.prefilter_name() + ", " + db + " with " + b.prefilter_name();
    }
  }
  return "";
}

std::string PrefilterSelfCheck(const PatternFile& pf, std::shared_ptr<const HsDatabase> db) {
  auto with = FamilyMatcher::Create(pf, db);
  auto without = FamilyMatcher::Create(pf);
  if (!with || !without) return "cannot build the matchers";
  if (!(*with)->has_prefilter()) return "";  // nothing to check: RE2::Set runs
  std::vector<const std::string*> lines;
  for (const auto& r : pf.rules) {
    for (const auto& t : r.tests) lines.push_back(&t.line);
  }
  for (const auto& t : pf.non_matching) lines.push_back(&t.line);
  auto check = [&](const std::string& buf) { return CompareMatchers(**with, **without, buf); };
  std::string all, twice;
  for (const std::string* l : lines) {
    // Alone; twice in a row (two adjacent records of one rule); after
    // fillers that put it at every offset modulo 64.
    if (auto d = check(*l); !d.empty()) return d;
    if (auto d = check(*l + "\n" + *l); !d.empty()) return d;
    for (size_t pad = 1; pad <= 64; ++pad) {
      if (auto d = check(std::string(pad - 1, 'x') + "\n" + *l + "\n" + *l); !d.empty()) return d;
    }
    all += *l + "\n";
  }
  // Every line next to every other, forwards and backwards (a batch's
  // start and end): the whole set as one buffer.
  if (auto d = check(all); !d.empty()) return d;
  std::string back;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) back += **it + "\n";
  return check(back);
}

}  // namespace qw::match
