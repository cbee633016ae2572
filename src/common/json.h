// JSON helpers. Documents (checkpoints, detector state, Alertmanager and ban
// bodies, outbox records, control requests, summaries) are built and read
// with nlohmann::ordered_json through DumpJson and ParseJson below; the
// per-event line keeps its own writer (AppendEventJson in common/event.h:
// the hot path, 6-30x faster than nlohmann; benchmarks/RESULTS.md, "Event
// line: hand-written or nlohmann"). Records are decoded with simdjson, the
// configuration with yaml-cpp.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace qw {

// Appends `s` as a JSON string literal (with quotes). `"` `\` `\n` `\r` `\t`
// get short escapes, other control characters and DEL \u00xx; bytes that
// are not part of well-formed UTF-8 become U+FFFD, one per byte, so the
// output is always valid.
void AppendJsonString(std::string& out, std::string_view s);
std::string JsonString(std::string_view s);

// Length of the well-formed UTF-8 sequence at s[i] (1-4), or 0 when there
// is none; `code_point` (optional) receives its value. REQUIRES: i < size.
size_t Utf8SeqLen(std::string_view s, size_t i, uint32_t* code_point = nullptr);

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF, no truncated sequence).
bool IsValidUtf8(std::string_view s);

// `s` with every byte that is not part of a well-formed UTF-8 sequence
// replaced by U+FFFD (one per byte, as AppendJsonString does).
std::string ToValidUtf8(std::string_view s);

// A document as compact JSON (no whitespace, no trailing newline), keys in
// insertion order, non-ASCII as UTF-8 (not \u escapes). nlohmann's escaping:
// `"` `\` `\b` `\f` `\n` `\r` `\t` short, other control characters \u00xx,
// DEL as is. Strings and keys that are not well-formed UTF-8 get U+FFFD for
// each bad byte (ToValidUtf8). Never throws.
std::string DumpJson(const nlohmann::ordered_json& doc);

// Parses one document (nothing but whitespace after it). The error is
// nlohmann's reason with its position, e.g. "parse error at line 1, column
// 3: syntax error while parsing object key - ...". Never throws.
[[nodiscard]] Result<nlohmann::ordered_json> ParseJson(std::string_view text);

}  // namespace qw
