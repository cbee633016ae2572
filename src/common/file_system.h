// FileSystem: everything the file tailer asks of the operating system,
// behind a small interface (in the manner of leveldb's Env), so the tailer
// can be tested on an in-memory file system (mem_file_system.h) step by
// step, without sleeps, and with faults.
//
// Threading: an implementation may be used from one thread at a time
// (FileSystem::Default() is stateless and thread-safe).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/time.h"

namespace qw {

struct FileStat {
  uint64_t dev = 0, ino = 0;
  uint64_t size = 0;
  uint64_t nlink = 1;  // 0: removed while open
  Nanos mtime = 0;
  bool regular = false;
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to n bytes at `offset`. Returns the bytes read, 0 at the end,
  // -1 on an error.
  virtual ssize_t ReadAt(char* buf, size_t n, uint64_t offset) = 0;
  // The open file's own status (it may have been renamed or removed).
  virtual bool Stat(FileStat* st) = 0;
};

// One read of a batch (FileSystem::ReadMany).
struct ReadOp {
  ReadableFile* file = nullptr;
  char* buf = nullptr;
  size_t n = 0;
  uint64_t offset = 0;
  ssize_t result = -1;  // as ReadAt returns
};

// Change notification (inotify). Handles are the watcher's own numbers.
// A file system that tells nothing (network file systems, some overlays,
// the in-memory one) has a watcher with fd() == -1: the tailer then finds
// every change by its periodic scan.
class Watcher {
 public:
  virtual ~Watcher() = default;
  // A descriptor that becomes readable when something happened; -1: none.
  virtual int fd() const = 0;
  // Watch a folder's entries (created, moved, removed) or a file's data and
  // identity. Returns a handle, or -1.
  virtual int WatchDir(const std::string& path) = 0;
  virtual int WatchFile(const std::string& path) = 0;
  virtual void Unwatch(int handle) = 0;
  // What happened since the last call, without blocking: handles of files
  // that were written to, and whether anything else changed (a folder's
  // entries, a file's links or name, lost notifications).
  virtual void Drain(std::vector<int>* written, bool* other) = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Paths matching a shell pattern (glob(3)), in no particular order.
  virtual std::vector<std::string> Glob(const std::string& pattern) = 0;
  // Status of what `path` names, symlinks followed. false if none.
  virtual bool Stat(const std::string& path, FileStat* st) = 0;
  // The path with every symlink followed, or "" if it names nothing.
  virtual std::string RealPath(const std::string& path) = 0;
  // The entries of folder `dir` as paths ("<dir>/<name>"), in no
  // particular order; empty when it cannot be read.
  virtual std::vector<std::string> ListDir(const std::string& dir) = 0;
  // Opens for reading; nullptr when it cannot be opened.
  virtual std::unique_ptr<ReadableFile> Open(const std::string& path) = 0;
  virtual std::unique_ptr<Watcher> NewWatcher() = 0;
  // Does every read of `ops` (files opened by this file system), each
  // exactly as its ReadAt would, and sets their results. The machine's
  // file system hands them to the kernel in one io_uring submission where
  // the kernel allows it (a tailer reads dozens of files after each round
  // of notifications: one system call instead of one each), else one
  // pread each.
  virtual void ReadMany(ReadOp* ops, size_t count);

  // The machine's file system, with inotify.
  static FileSystem* Default();
};

// How the machine's file system does ReadMany on the calling thread:
// "io_uring", or "pread" when io_uring is unavailable (an old kernel,
// kernel.io_uring_disabled, a seccomp profile that forbids it, a build
// without liburing) or was turned off. `use_io_uring`: false turns it off
// for the calling thread (tests of the fallback).
const char* ReadManyMethod();
void UseIoUring(bool use_io_uring);

}  // namespace qw
