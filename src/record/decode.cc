#include "record/decode.h"

#include <cstring>

#include "common/json.h"

namespace qw::record {

const char* LogFormatName(LogFormat f) {
  switch (f) {
    case LogFormat::kCri:
      return "cri";
    case LogFormat::kDocker:
      return "docker";
    case LogFormat::kRaw:
      return "raw";
    default:
      return "auto";
  }
}

bool ParseLogFormat(std::string_view s, LogFormat* out) {
  if (s == "auto") {
    *out = LogFormat::kAuto;
  } else if (s == "cri") {
    *out = LogFormat::kCri;
  } else if (s == "docker") {
    *out = LogFormat::kDocker;
  } else if (s == "raw") {
    *out = LogFormat::kRaw;
  } else {
    return false;
  }
  return true;
}

bool DecodeCri(std::string_view line, Decoded* out) {
  size_t used = 0;
  Nanos t = ParseRfc3339(line, &used);
  if (t == kNoTime || used >= line.size() || line[used] != ' ') return false;
  std::string_view rest = line.substr(used + 1);
  if (rest.compare(0, 7, "stdout ") == 0 || rest.compare(0, 7, "stderr ") == 0) {
    rest.remove_prefix(7);
  } else {
    return false;
  }
  if (rest.empty() || (rest[0] != 'P' && rest[0] != 'F')) return false;
  out->partial = rest[0] == 'P';
  size_t sp = rest.find(' ');
  if (sp == std::string_view::npos) {
    // "F" with an empty message and no trailing space.
    if (rest.find(':') == std::string_view::npos && rest.size() != 1) return false;
    out->message = std::string_view();
  } else {
    out->message = rest.substr(sp + 1);
  }
  out->runtime_time = t;
  return true;
}

bool DockerDecoder::Decode(std::string_view line, Decoded* out) {
  if (line.size() < 10 || line[0] != '{') return false;
  padded_.assign(line.data(), line.size());
  padded_.append(simdjson::SIMDJSON_PADDING, '\0');
  simdjson::dom::element doc;
  if (parser_.parse(padded_.data(), line.size(), false).get(doc)) return false;
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) return false;
  std::string_view v;
  // The first "log" and "time" win when keys repeat.
  bool have_log = false;
  out->runtime_time = kNoTime;
  for (auto [key, value] : obj) {
    if (key == "log" && !have_log) {
      if (value.get_string().get(v)) return false;
      log_.assign(v.data(), v.size());
      have_log = true;
    } else if (key == "time" && out->runtime_time == kNoTime) {
      if (value.get_string().get(v)) return false;
      out->runtime_time = ParseRfc3339(v);
    }
  }
  if (!have_log) return false;
  std::string_view msg = log_;
  out->partial = true;
  if (!msg.empty() && msg.back() == '\n') {
    msg.remove_suffix(1);
    out->partial = false;
    if (!msg.empty() && msg.back() == '\r') msg.remove_suffix(1);
  }
  out->message = msg;
  return true;
}

bool AcceptableText(std::string_view s) {
  if (!s.empty() && std::memchr(s.data(), '\0', s.size()) != nullptr) return false;
  // ASCII fast path, eight bytes at a time; the rest is validated as UTF-8.
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (w & 0x8080808080808080ULL) break;
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) return IsValidUtf8(s.substr(i));
  }
  return true;
}

LogFormat SniffFormat(std::string_view line) {
  Decoded d;
  if (DecodeCri(line, &d)) return LogFormat::kCri;
  if (!line.empty() && line[0] == '{' && line.find("\"log\"") != std::string_view::npos) {
    DockerDecoder dec;
    if (dec.Decode(line, &d)) return LogFormat::kDocker;
  }
  return LogFormat::kRaw;
}

}  // namespace qw::record
