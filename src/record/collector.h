// Collector prefixes: what a log collector or a terminal puts before the
// node's own line — syslog and journald (`Mon DD hh:mm:ss host proc[pid]: `,
// ISO stamps, RFC 5424), docker-compose (`name  | `), `kubectl logs
// --prefix` (`[pod/name/container] `) and cloud console exports (a leading
// severity and an RFC 3339 stamp). docs/LOG-FORMATS.md describes each.
//
// The record stage takes the prefix off before family detection and
// matching, for every family, and keeps the prefix's stamp: the node's own
// stamp is preferred, the prefix's stands in when the line has none.
#pragma once

#include <string_view>

#include "common/time.h"

namespace qw::record {

enum class CollectorKind : uint8_t {
  kNone,
  kSyslog,     // BSD syslog / journald short: `Mar 11 14:04:42 host proc[pid]: `
  kIsoSyslog,  // journald short-iso / rsyslog: `2024-03-11T14:04:42+0000 host proc[pid]: `
  kRfc5424,    // `<165>1 2024-03-11T14:04:42.003Z host app procid msgid [sd] `
  kCompose,    // docker-compose: `name-1  | `
  kKubectl,    // kubectl logs --prefix: `[pod/name/container] `
  kCloud,      // `E 2024-03-11T14:04:42.665Z ` or `ERROR 2024-03-11T14:04:42Z `
};

struct Unwrapped {
  CollectorKind kind = CollectorKind::kNone;
  std::string_view message;  // the node's own line
  Nanos time = kNoTime;      // the prefix's stamp, if it has one
};

// Takes `kind`'s prefix off `line` (any kind's when `kind` is kNone and
// `any` is true). A line without the prefix comes back whole, kind kNone.
// Year-less stamps take `year`; zone-less ones `offset_seconds`.
Unwrapped Unwrap(std::string_view line, CollectorKind kind, bool any, int32_t year,
                 int32_t offset_seconds);

const char* CollectorName(CollectorKind kind);

}  // namespace qw::record
