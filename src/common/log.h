#pragma once

#include <string>
#include <string_view>

namespace qw {

// `s` as one printable line: line breaks, tabs and other control characters
// become \n, \r, \t or \xNN, and bytes that are not well-formed UTF-8 become
// \xNN, so a file name with a newline or Latin-1 bytes can neither split a
// message in two nor garble the terminal. Valid UTF-8 text is kept as is.
std::string OneLine(std::string_view s);

// Writes "quorumwatch: <OneLine(msg)>\n" to stderr in one write: the
// program's messages to the operator, one line each.
void LogLine(std::string_view msg);

}  // namespace qw
