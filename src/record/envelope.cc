#include "record/envelope.h"

#include <cmath>
#include <cstdint>

namespace qw::record {

namespace {

using simdjson::dom::element;
using simdjson::dom::object;

std::vector<std::string> SplitPath(std::string_view dotted) {
  // No escaping: "a.b" is always the key "b" inside the key "a".
  std::vector<std::string> segments;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string_view::npos) {
      segments.emplace_back(dotted.substr(start));
      return segments;
    }
    segments.emplace_back(dotted.substr(start, dot - start));
    start = dot + 1;
  }
}

std::vector<std::string> PathOr(const std::string& configured, std::string_view default_path) {
  return SplitPath(configured.empty() ? default_path : std::string_view(configured));
}

// The first field named `key` of `obj`. Fields are iterated rather than
// looked up with at_key so that, with duplicate keys, the first one is
// found whatever the lookup strategy of the simdjson version.
bool FirstField(object obj, std::string_view key, element* out) {
  for (auto [k, v] : obj) {
    if (k == key) {
      *out = v;
      return true;
    }
  }
  return false;
}

// The element at `path` (each segment a key of an object), first occurrence
// at every level.
bool Lookup(object obj, const std::vector<std::string>& path, element* out) {
  if (path.empty()) return false;
  element cur;
  for (size_t i = 0; i < path.size(); ++i) {
    if (i > 0 && cur.get_object().get(obj)) return false;
    if (!FirstField(obj, path[i], &cur)) return false;
  }
  *out = cur;
  return true;
}

// Epoch seconds as a double -> Nanos. simdjson's DOM keeps only the double
// (not the number's text), and a double near 1.7e9 s has a resolution of
// about 240 ns: splitting off the whole seconds first (the subtraction is
// exact) keeps the result within that of the written value, well inside
// 1 µs (1700000000.123456 -> 1700000000123456000 ± 1000 ns). Out of the
// range of Nanos (after year 2262 or before 1677): kNoTime.
Nanos SecondsToNanos(double s) {
  if (!(s > -9.2e9 && s < 9.2e9)) return kNoTime;
  double whole = std::floor(s);
  double frac = s - whole;
  return static_cast<Nanos>(whole) * kSecond + static_cast<Nanos>(std::llround(frac * 1e9));
}

// A time field: an RFC 3339 string or a number of epoch seconds. kNoTime for
// anything else, including a string that does not parse.
Nanos TimeOf(element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::STRING: {
      std::string_view s;
      if (e.get_string().get(s)) return kNoTime;
      return ParseRfc3339(s);
    }
    case simdjson::dom::element_type::INT64: {
      int64_t v;
      if (e.get_int64().get(v)) return kNoTime;
      if (v > INT64_MAX / kSecond || v < INT64_MIN / kSecond + 1) return kNoTime;
      return v * kSecond;
    }
    case simdjson::dom::element_type::UINT64:  // above INT64_MAX: out of range
      return kNoTime;
    case simdjson::dom::element_type::DOUBLE: {
      double v;
      if (e.get_double().get(v)) return kNoTime;
      return SecondsToNanos(v);
    }
    default:
      return kNoTime;
  }
}

// Copies the string at `path` into `dst`; clears it when absent or not a
// string.
void CopyString(object obj, const std::vector<std::string>& path, std::string* dst) {
  element e;
  std::string_view s;
  if (Lookup(obj, path, &e) && !e.get_string().get(s)) {
    dst->assign(s.data(), s.size());
  } else {
    dst->clear();
  }
}

// One trailing "\n" (and a "\r" before it) removed.
std::string_view StripNewline(std::string_view s) {
  if (!s.empty() && s.back() == '\n') {
    s.remove_suffix(1);
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  }
  return s;
}

bool StartsLikeObject(std::string_view v) {
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == '{';
  }
  return false;
}

void SetWhy(std::string* why, std::string_view reason) {
  if (why != nullptr) why->assign(reason.data(), reason.size());
}

}  // namespace

const char* EnvelopeFormatName(EnvelopeFormat f) {
  switch (f) {
    case EnvelopeFormat::kFluentBit:
      return "fluentbit";
    case EnvelopeFormat::kVector:
      return "vector";
    case EnvelopeFormat::kRaw:
      return "raw";
    default:
      return "auto";
  }
}

bool ParseEnvelopeFormat(std::string_view s, EnvelopeFormat* out) {
  if (s == "auto") {
    *out = EnvelopeFormat::kAuto;
  } else if (s == "fluentbit") {
    *out = EnvelopeFormat::kFluentBit;
  } else if (s == "vector") {
    *out = EnvelopeFormat::kVector;
  } else if (s == "raw") {
    *out = EnvelopeFormat::kRaw;
  } else {
    return false;
  }
  return true;
}

EnvelopeDecoder::EnvelopeDecoder(EnvelopeFields fields)
    : message_configured_(!fields.message.empty()) {
  fluentbit_.message_name = fields.message.empty() ? "log" : fields.message;
  fluentbit_.message = SplitPath(fluentbit_.message_name);
  vector_.message_name = fields.message.empty() ? "message" : fields.message;
  vector_.message = SplitPath(vector_.message_name);
  if (fields.time.empty()) {
    // Fluent Bit: the record's own `time` (the container runtime's stamp,
    // nanoseconds, kept by the docker/cri parsers) before `@timestamp` (the
    // timestamp_key Fluent Bit adds: the same instant as a double).
    fluentbit_.times = {{"time"}, {"@timestamp"}};
    vector_.times = {{"timestamp"}};
  } else {
    fluentbit_.times = {SplitPath(fields.time)};
    vector_.times = fluentbit_.times;
  }
  fluentbit_.namespace_ = PathOr(fields.namespace_, "kubernetes.namespace_name");
  vector_.namespace_ = PathOr(fields.namespace_, "kubernetes.pod_namespace");
  fluentbit_.pod = PathOr(fields.pod, "kubernetes.pod_name");
  vector_.pod = fluentbit_.pod;
  fluentbit_.container = PathOr(fields.container, "kubernetes.container_name");
  vector_.container = fluentbit_.container;
}

bool EnvelopeDecoder::ParseObject(std::string_view value, object* obj, const char** why) {
  // Reused buffer: no allocation once it has grown to the largest record.
  padded_.assign(value.data(), value.size());
  padded_.append(simdjson::SIMDJSON_PADDING, '\0');
  element doc;
  if (parser_.parse(padded_.data(), value.size(), false).get(doc)) {
    *why = "not JSON";
    return false;
  }
  if (doc.get_object().get(*obj)) {
    *why = "not a JSON object";
    return false;
  }
  return true;
}

EnvelopeFormat EnvelopeDecoder::DetectObject(object obj) const {
  element e;
  if (!message_configured_) {
    if (FirstField(obj, "log", &e)) return EnvelopeFormat::kFluentBit;
    if (FirstField(obj, "message", &e)) return EnvelopeFormat::kVector;
    return EnvelopeFormat::kRaw;
  }
  if (!Lookup(obj, fluentbit_.message, &e)) return EnvelopeFormat::kRaw;
  static const std::vector<std::string> kPodNamespace = {"kubernetes", "pod_namespace"};
  if (FirstField(obj, "timestamp", &e) || Lookup(obj, kPodNamespace, &e)) {
    return EnvelopeFormat::kVector;
  }
  return EnvelopeFormat::kFluentBit;
}

EnvelopeFormat EnvelopeDecoder::Detect(std::string_view value) {
  if (!StartsLikeObject(value)) return EnvelopeFormat::kRaw;
  object obj;
  const char* why;
  if (!ParseObject(value, &obj, &why)) return EnvelopeFormat::kRaw;
  return DetectObject(obj);
}

bool EnvelopeDecoder::Decode(EnvelopeFormat format, std::string_view value, std::string_view key,
                             Envelope* out, std::string* why) {
  object obj;
  const char* reason = nullptr;
  if (format == EnvelopeFormat::kAuto) {
    // Detect and decode from one parse.
    format = EnvelopeFormat::kRaw;
    if (StartsLikeObject(value) && ParseObject(value, &obj, &reason)) format = DetectObject(obj);
  } else if (format != EnvelopeFormat::kRaw && !ParseObject(value, &obj, &reason)) {
    SetWhy(why, reason);
    return false;
  }

  if (format == EnvelopeFormat::kRaw) {
    message_.assign(value.data(), value.size());
    pod_.assign(key.data(), key.size());
    *out = Envelope{};
    out->format = EnvelopeFormat::kRaw;
    out->message = StripNewline(message_);
    out->pod = pod_;
    return true;
  }

  const Paths& paths = format == EnvelopeFormat::kFluentBit ? fluentbit_ : vector_;
  element e;
  if (!Lookup(obj, paths.message, &e)) {
    if (why != nullptr) {
      why->assign("no message field '");
      why->append(paths.message_name);
      why->push_back('\'');
    }
    return false;
  }
  std::string_view msg;
  if (e.get_string().get(msg)) {
    SetWhy(why, "message is not a string");
    return false;
  }
  message_.assign(msg.data(), msg.size());
  Nanos t = kNoTime;
  for (const auto& path : paths.times) {
    if (Lookup(obj, path, &e)) t = TimeOf(e);
    if (t != kNoTime) break;
  }
  CopyString(obj, paths.namespace_, &namespace_);
  CopyString(obj, paths.pod, &pod_);
  CopyString(obj, paths.container, &container_);

  out->format = format;
  out->message = StripNewline(message_);
  out->time = t;
  out->namespace_ = namespace_;
  out->pod = pod_;
  out->container = container_;
  return true;
}

bool EnvelopeDecoder::DecodeSticky(EnvelopeFormat* sticky, std::string_view value,
                                   std::string_view key, Envelope* out, std::string* why) {
  if (*sticky != EnvelopeFormat::kAuto) return Decode(*sticky, value, key, out, why);
  bool ok = Decode(EnvelopeFormat::kAuto, value, key, out, why);
  const size_t first = value.find_first_not_of(" \t\r\n");
  if (ok && out->format == EnvelopeFormat::kRaw && first != std::string_view::npos &&
      (value[first] == '{' || value[first] == '[')) {
    std::string detail;
    Envelope probe;
    if (!Decode(EnvelopeFormat::kFluentBit, value, key, &probe, &detail) &&
        (detail == "not JSON" || detail == "not a JSON object")) {
      ok = false;
      *why = "format auto: " + detail;
    } else {
      // The probe reused the decoder's buffers: decode the line again.
      ok = Decode(EnvelopeFormat::kRaw, value, key, out, why);
    }
  }
  if (ok) *sticky = out->format;
  return ok;
}

}  // namespace qw::record
