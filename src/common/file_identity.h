// FileIdentity: how a log file is recognised across renames and restarts —
// by device, inode and a fingerprint of its first bytes, never by path.
#pragma once

#include <cstdint>

namespace qw {

struct FileIdentity {
  uint64_t dev = 0, ino = 0;
  uint64_t fingerprint = 0;  // FNV-1a of the first fp_len bytes
  uint32_t fp_len = 0;
};

}  // namespace qw
