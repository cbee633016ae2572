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
// On failure errno holds the reason.
bool FsyncDir(const std::string& dir);

// Replaces `path` atomically: `path`.tmp written and fsynced, renamed over
// `path`, then the folder fsynced. When writing or renaming fails the old
// file is untouched and the error reads "<file>: <reason>". When only the
// folder's fsync fails the new contents are in place but may not survive a
// crash, and the error reads "<folder>: cannot sync the folder after
// replacing <path>: <reason>".
// With `previous`, the contents being replaced are kept under that name
// first (one older generation, for a reader to fall back to when `path` is
// damaged). `path` is never missing meanwhile: the older generation gets
// its name by a hard link (on a filesystem without them, by a rename: there
// a crash between the two renames leaves only `previous`).
[[nodiscard]] Result<void> WriteFileAtomic(const std::string& path, std::string_view data,
                                           const std::string& previous = "");

// The whole file; the error is the system's reason (e.g. "No such file or
// directory").
[[nodiscard]] Result<std::string> ReadWholeFile(const std::string& path);

}  // namespace qw
