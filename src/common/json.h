// Small JSON writing helpers for the output contract. Reading JSON is done
// with simdjson (decoders) and yaml-cpp (configuration).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qw {

// Appends `s` as a JSON string literal (with quotes). Control characters are
// escaped; invalid UTF-8 bytes become U+FFFD, so the output is always valid.
void AppendJsonString(std::string& out, std::string_view s);
std::string JsonString(std::string_view s);

// Length of the well-formed UTF-8 sequence at s[i] (1-4), or 0 when there
// is none; `code_point` (optional) receives its value. REQUIRES: i < size.
size_t Utf8SeqLen(std::string_view s, size_t i, uint32_t* code_point = nullptr);

// True when `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

}  // namespace qw
