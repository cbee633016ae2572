// FileTailer: follows the log files that match include globs (Kubernetes'
// /var/log/containers/*.log, symlinks into /var/log/pods), decodes their
// lines (CRI, docker json-file, raw; partial records joined) and reports
// complete records, safe resume offsets and file ends to a TailSink.
//
// Files are identified by device, inode and a fingerprint of their first
// bytes, never by path: rename+create rotation drains the old descriptor and
// starts a new stream; copytruncate (size below offset) restarts at 0; a
// removed file is drained, then ended. inotify wakes the tailer early; every
// Poll also stats every file, so file systems where inotify is silent work
// too (polling fallback).
//
// Threading: one thread calls Poll/Wait; Wake may be called from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "source/decoder.h"

namespace qw::source {

struct TailedFile {
  uint32_t stream = 0;  // the tailer's id for this file's stream
  std::string path;     // the path the glob found (a symlink stays one)
  uint64_t dev = 0, ino = 0;
  uint64_t fingerprint = 0;  // FNV-1a of the first fp_len bytes
  uint32_t fp_len = 0;
  uint64_t offset = 0;  // where reading starts
};

class TailSink {
 public:
  virtual ~TailSink() = default;
  virtual void OnStart(const TailedFile& f) = 0;
  // One complete record: message text (valid during the call) and the
  // runtime's timestamp (kNoTime for raw lines).
  virtual void OnRecord(uint32_t stream, std::string_view message, Nanos runtime_time) = 0;
  // Every record before this point was reported: resuming at `offset`
  // loses and repeats nothing. `at_end`: the file was read to its end (the
  // stream has caught up for now).
  virtual void OnPosition(uint32_t stream, uint64_t offset, bool at_end) = 0;
  virtual void OnEnd(uint32_t stream) = 0;
};

struct SavedPosition {
  std::string path;
  uint64_t dev = 0, ino = 0, fingerprint = 0;
  uint32_t fp_len = 0;
  uint64_t offset = 0;
};

struct TailStats {
  uint64_t lines_read = 0, lines_rejected = 0, lines_cut = 0;
  uint64_t bytes_read = 0, truncations = 0, rotations = 0, files_opened = 0, files_ended = 0;
};

struct FileLag {
  std::string path;
  uint64_t bytes_behind = 0;
};

class FileTailer {
 public:
  struct Options {
    std::vector<std::string> include, exclude;
    LogFormat format = LogFormat::kAuto;
    bool read_from_end = true;  // files present at the first start
    size_t max_line_bytes = 1 << 20;
    size_t max_bytes_per_poll = 4 << 20;  // per file, for fairness
    // The globs are expanded again (new, renamed and removed files) when
    // inotify reports a change of a watched folder or of a file's identity,
    // and at least this often (file systems where inotify is silent).
    Nanos rescan_interval = 250 * kMillisecond;
  };
  explicit FileTailer(Options opt);
  ~FileTailer();
  FileTailer(const FileTailer&) = delete;
  FileTailer& operator=(const FileTailer&) = delete;

  // Positions from a checkpoint: a file found again (same device, inode and
  // fingerprint) resumes at its offset; with a checkpoint, files not in it
  // appeared while quorumwatch was down and are read from the beginning.
  void Restore(std::vector<SavedPosition> saved);

  // One pass: new and removed files, then the new data of every file.
  // Returns the bytes read.
  size_t Poll(TailSink* sink);
  // Blocks until a watched file or folder changes, `timeout` passes, or
  // Wake() is called.
  void Wait(Nanos timeout);
  void Wake();
  // Reads pending inotify events without blocking (Poll and Wait call it).
  void Drain();
  // The descriptor Wake() writes to (a signal handler may write 8 bytes to it).
  int wake_fd() const { return wake_fd_; }
  // Stream ids start at `base` (several tailers feed one pipeline).
  void set_stream_base(uint32_t base) { next_stream_ = base; }

  // Every file has been read to its end at least once since start.
  bool caught_up() const;
  std::vector<FileLag> Lag() const;
  const TailStats& stats() const { return stats_; }
  size_t open_files() const { return files_.size(); }

 private:
  struct File;
  void Discover(TailSink* sink);
  bool Open(const std::string& path, uint64_t dev, uint64_t ino, TailSink* sink);
  size_t ReadFile(File& f, TailSink* sink);
  void Line(File& f, std::string_view line, bool cut, uint64_t end_offset, TailSink* sink);
  void Close(File& f, TailSink* sink);
  void WatchDirs();

  Options opt_;
  std::map<std::pair<uint64_t, uint64_t>, std::unique_ptr<File>> files_;  // by (dev, ino)
  std::vector<SavedPosition> saved_;
  bool restored_ = false;
  bool first_poll_done_ = false;
  bool rescan_ = true;            // a folder or file identity changed: expand the globs
  Nanos last_discover_ = 0;       // steady clock of the last expansion
  std::set<int> dir_watches_;     // inotify watches of include folders
  uint32_t next_stream_ = 0;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;
  std::vector<char> buf_;
  DockerDecoder docker_;
  TailStats stats_;
};

}  // namespace qw::source
