// Container runtime log line decoders: CRI (containerd, CRI-O), docker
// json-file, raw. Stateless apart from reusable scratch space. Used only by
// the record stage (record_stage.h): nothing else decodes log lines.
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>

#include "common/time.h"

namespace qw::record {

enum class LogFormat { kAuto, kCri, kDocker, kRaw };
const char* LogFormatName(LogFormat f);
bool ParseLogFormat(std::string_view s, LogFormat* out);

struct Decoded {
  Nanos runtime_time = kNoTime;  // the runtime's stamp, if any
  bool partial = false;          // more of this record follows (CRI P, docker without \n)
  std::string_view message;      // valid until the next decode call
};

// "<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <message>". false if not CRI.
bool DecodeCri(std::string_view line, Decoded* out);

// Docker json-file lines: {"log":"...\n","stream":"stdout","time":"..."}.
class DockerDecoder {
 public:
  // false for lines that are not a docker json-file record (bad JSON too).
  bool Decode(std::string_view line, Decoded* out);

 private:
  simdjson::dom::parser parser_;
  std::string padded_;
  std::string log_;
};

// Picks the format of a stream from one of its lines.
LogFormat SniffFormat(std::string_view line);

// A message that may be matched: valid UTF-8 without NUL bytes. Binary data
// and invalid UTF-8 are counted and skipped by the record stage.
bool AcceptableText(std::string_view s);

}  // namespace qw::record
