// Small file helpers for state written in state_dir: whole writes, atomic
// replacement and whole reads. Thread-safe (no shared state).
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace qw {

// Writes all of `data` to `fd` (retrying short writes and EINTR).
bool WriteAll(int fd, std::string_view data);

// fsync of a folder, so a file created or renamed in it survives a crash.
bool FsyncDir(const std::string& dir);

// Replaces `path` atomically: `path`.tmp written and fsynced, renamed over
// `path`, then the folder fsynced. On failure the old file is untouched and
// the error reads "<file>: <reason>".
[[nodiscard]] Result<void> WriteFileAtomic(const std::string& path, std::string_view data);

// The whole file; the error is the system's reason (e.g. "No such file or
// directory").
[[nodiscard]] Result<std::string> ReadWholeFile(const std::string& path);

}  // namespace qw
