#include "common/json.h"

#include <simdjson.h>

#include <nlohmann/json.hpp>

namespace qw {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Escapes well-formed UTF-8 (the caller checked it): only ASCII needs work,
// and runs of bytes that need none are copied at once.
void AppendEscaped(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\r':
        out.append("\\r");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

// A copy of `j` whose strings and keys are well-formed UTF-8.
Json Sanitized(const Json& j) {
  switch (j.type()) {
    case Json::value_t::string:
      return Json(ToValidUtf8(j.get_ref<const std::string&>()));
    case Json::value_t::array: {
      Json out = Json::array();
      for (const auto& v : j) out.push_back(Sanitized(v));
      return out;
    }
    case Json::value_t::object: {
      Json out = Json::object();
      for (const auto& [k, v] : j.items()) out[ToValidUtf8(k)] = Sanitized(v);
      return out;
    }
    default:
      return j;
  }
}

}  // namespace

// The validity rules are simdjson's (validate_utf8); only the length a lead
// byte announces and the assembly of the code point are done here, as
// simdjson offers no per-character decoder.
size_t Utf8SeqLen(std::string_view s, size_t i, uint32_t* code_point) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    if (code_point != nullptr) *code_point = c;
    return 1;
  }
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (n == 0 || i + n > s.size() || !simdjson::validate_utf8(s.data() + i, n)) return 0;
  if (code_point != nullptr) {
    uint32_t cp = c & (0x7Fu >> n);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
    *code_point = cp;
  }
  return n;
}

bool IsValidUtf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

std::string ToValidUtf8(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8SeqLen(s, i);
    if (n == 0) {
      out.append(kReplacement);
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

void AppendJsonString(std::string& out, std::string_view s) {
  if (IsValidUtf8(s)) {
    AppendEscaped(out, s);
  } else {
    AppendEscaped(out, ToValidUtf8(s));
  }
}

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

std::string DumpJson(const Json& doc) {
  try {
    return doc.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const Json::exception&) {
    // Invalid UTF-8 somewhere (rare: file names, log lines): replaced byte
    // by byte, not as nlohmann's replace mode would (one U+FFFD for a whole
    // broken sequence).
    return Sanitized(doc).dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

Result<Json> ParseJson(std::string_view text) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    std::string_view what = e.what();
    // "[json.exception.parse_error.101] parse error at ...": the bracket
    // names nlohmann's error class, nothing an operator needs.
    if (what.starts_with("[json.exception.")) {
      size_t end = what.find("] ");
      if (end != std::string_view::npos) what.remove_prefix(end + 2);
    }
    return Fail(std::string(what));
  }
}

}  // namespace qw
