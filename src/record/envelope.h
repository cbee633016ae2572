// Kafka record envelopes: the value of a record that carries one container
// log line, as shipped by Fluent Bit (kafka output, `format json`), Vector
// (kafka sink, `encoding.codec = "json"`) or as the bare line (raw). Decodes
// the log message, its time and the Kubernetes names (namespace, pod,
// container). Stateless apart from reusable scratch space.
//
// Defaults (used when an EnvelopeFields path is ""):
//   Fluent Bit: message `log`; time `time`, else `@timestamp`;
//               `kubernetes.namespace_name`, `kubernetes.pod_name`,
//               `kubernetes.container_name` (the kubernetes filter).
//   Vector:     message `message`; time `timestamp`;
//               `kubernetes.pod_namespace`, `kubernetes.pod_name`,
//               `kubernetes.container_name`.
//   Raw:        the value is the line; the pod is the Kafka key; no time, no
//               namespace, no container.
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"

namespace qw::record {

enum class EnvelopeFormat { kAuto, kFluentBit, kVector, kRaw };
// "auto", "fluentbit", "vector", "raw".
const char* EnvelopeFormatName(EnvelopeFormat f);
bool ParseEnvelopeFormat(std::string_view s, EnvelopeFormat* out);

// Dotted paths into the JSON object ("kubernetes.pod_name"); "" = the
// format's default. Each segment is an object key: a key that itself holds a
// dot cannot be addressed. A configured path replaces the default of
// whichever JSON format is decoded (a configured `time` also replaces the
// Fluent Bit `@timestamp` fallback); raw records ignore them.
struct EnvelopeFields {
  std::string message, time, namespace_, pod, container;
};

struct Envelope {
  EnvelopeFormat format = EnvelopeFormat::kRaw;  // the format it was decoded as
  std::string_view message;  // trailing "\n" / "\r\n" removed; valid until the next Decode
  Nanos time = kNoTime;      // kNoTime when the record has none
  std::string_view namespace_, pod, container;  // "" when absent; valid until the next Decode
};

// Decodes record values. Duplicate keys (Fluent Bit emits them, e.g. two
// "time" or "@timestamp") are tolerated at every level: the first
// occurrence of a key is the one that counts. Time fields: an RFC 3339
// string, or a JSON number of epoch seconds (integer or with a fraction; the
// fraction goes through a double, so it is exact to within 1 µs, see
// envelope.cc). A time that does not parse (or has another type) leaves
// kNoTime; it is not an error. Kubernetes names that are not strings count
// as absent. The message is not otherwise altered: embedded newlines stay.
class EnvelopeDecoder {
 public:
  explicit EnvelopeDecoder(EnvelopeFields fields = {});

  // The format of a record value: a JSON object with the Fluent Bit message
  // key -> kFluentBit, with Vector's -> kVector (both: kFluentBit), else
  // kRaw. A configured `message` path replaces both defaults, so it cannot
  // tell the two apart: an object holding it is kVector when it also has a
  // top-level `timestamp` or `kubernetes.pod_namespace` (Vector's own
  // fields), else kFluentBit. Does not invalidate the last Decode's Envelope.
  EnvelopeFormat Detect(std::string_view value);

  // Decodes `value` as `format` (kAuto: Detect first). `key`: the Kafka
  // message key (raw: the pod name when non-empty). false (and `why` set to
  // a short reason like "not JSON", "no message field 'log'", "message is
  // not a string") when the record is not what the format says; raw never
  // fails. The views in `out` point into this decoder and stay valid until
  // the next Decode.
  bool Decode(EnvelopeFormat format, std::string_view value, std::string_view key, Envelope* out,
              std::string* why);

  // Decode for one partition's records: `*sticky` is the partition's format
  // (kAuto until decided). With kAuto the first well-formed record decides
  // it (a producer writes one shape); a record that starts like JSON but is
  // no JSON object (truncated, say) fails and decides nothing, else one bad
  // record would make a shipper's partition raw. A JSON object without an
  // envelope's message field is a raw line (a node's own JSON log shipped
  // as is).
  bool DecodeSticky(EnvelopeFormat* sticky, std::string_view value, std::string_view key,
                    Envelope* out, std::string* why);

 private:
  using Path = std::vector<std::string>;  // the segments of a dotted path
  struct Paths {
    std::string message_name;  // the dotted message path, for `why`
    Path message;
    std::vector<Path> times;  // tried in order; the first that yields a time wins
    Path namespace_, pod, container;
  };

  // Parses `value` into parser_; false unless it is a JSON object.
  bool ParseObject(std::string_view value, simdjson::dom::object* obj, const char** why);
  EnvelopeFormat DetectObject(simdjson::dom::object obj) const;

  Paths fluentbit_, vector_;
  bool message_configured_;
  simdjson::dom::parser parser_;
  std::string padded_;
  // Copies of the decoded fields (Detect may parse again before they are used).
  std::string message_, namespace_, pod_, container_;
};

}  // namespace qw::record
