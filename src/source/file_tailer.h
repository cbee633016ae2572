// FileTailer: follows the log files that match include globs (Kubernetes'
// /var/log/containers/*.log, symlinks into /var/log/pods) and hands their
// bytes on, with where they come from: file identity, offsets, truncation
// and the end of the file. It neither frames nor decodes: the record stage
// (record/record_stage.h) does that for every source.
//
// Files are known by device, inode and a fingerprint of their first bytes,
// never by path: rename+create rotation reads the old file to its end and
// follows the new one as a new stream; copytruncate (size below the
// offset) starts again at 0; a removed file is read to its end and closed.
// A file of the checkpoint rotated away while quorumwatch was down (or
// after its last checkpoint) is looked for by identity in its folder and
// read from the saved offset to its end, under its old path's name; so are
// pieces rotated away after it (from their start).
// Change notifications (inotify) say which files to read, and when to
// expand the globs again (a watched folder's entries changed, a file was
// renamed or removed); the folders the files are really in (kubelet's
// /var/log/pods/...) are watched too, so a rotated file's successor is
// found at once. The periodic scan (globs expanded, every file stat'ed,
// read only if its size changed) is then a safety net, every
// notified_rescan_interval; it runs every rescan_interval when
// notifications cannot be trusted: no inotify, a folder pattern with
// wildcards (its new folders are found only by scanning), a file that could
// not be watched, or a file that grew without a notification (inotify is
// silent on some network and FUSE file systems; logged once).
//
// All file system access goes through a FileSystem (common/file_system.h).
// Threading: one thread calls everything.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/file_identity.h"
#include "common/file_system.h"
#include "common/time.h"

namespace qw::source {

// A file found, as the tailer starts reading it.
struct TailedFile {
  std::string path;  // the path the glob found (a symlink stays one)
  FileIdentity identity;
  uint64_t offset = 0;  // where reading starts
  // From a checkpoint that knew this file (else empty / kNoTime).
  std::string saved_family;
  Nanos saved_last_time = kNoTime;
};

// Where the bytes go.
class TailSink {
 public:
  virtual ~TailSink() = default;
  // A new stream; returns its id (ids ascend across all tailers).
  virtual uint32_t OnOpen(const TailedFile& f) = 0;
  // The stream's next bytes; `mtime`: the file's modification time.
  virtual void OnData(uint32_t id, std::string_view bytes, Nanos mtime) = 0;
  // The file was truncated in place: its bytes start again at offset 0,
  // and `identity` is the file's now (the fingerprint of its new first
  // bytes: a restart must know the file by what it holds after the cut).
  virtual void OnTruncated(uint32_t id, const FileIdentity& identity) = 0;
  // Everything the file holds now was handed on.
  virtual void OnCaughtUp(uint32_t id) = 0;
  // The file was rotated away or removed and read to its end.
  virtual void OnClose(uint32_t id) = 0;
  // Back-pressure: false while the stream's reader holds enough; the
  // tailer reads the file later.
  virtual bool WantsData(uint32_t id) = 0;
};

struct SavedPosition {
  std::string path;
  FileIdentity identity;
  uint64_t offset = 0;
  std::string family;
  Nanos last_time = kNoTime;
};

struct TailStats {
  uint64_t bytes_read = 0, read_errors = 0, truncations = 0, rotations = 0, files_opened = 0,
           files_closed = 0;
  uint64_t recovered = 0;  // rotated away while down, found again by identity
  uint64_t reads = 0;      // read calls (each file read costs at least one)
};

class FileTailer {
 public:
  struct Options {
    std::vector<std::string> include, exclude;
    bool read_from_end = true;           // files present at the very first start
    size_t read_bytes = 256 << 10;       // one read
    size_t max_bytes_per_poll = 4 << 20;  // per file and poll, for fairness
    Nanos rescan_interval = 250 * kMillisecond;           // without trusted notifications
    Nanos notified_rescan_interval = 5 * kSecond;         // with them (at least rescan_interval)
    std::function<void(const std::string&)> log;  // what an operator should know
  };
  FileTailer(Options opt, FileSystem* fs);
  ~FileTailer();
  FileTailer(const FileTailer&) = delete;
  FileTailer& operator=(const FileTailer&) = delete;

  // Positions from a checkpoint: a file found again (same identity)
  // resumes at its offset; with a checkpoint, files not in it appeared
  // while quorumwatch was down and are read from the beginning.
  // `written`: when the checkpoint was written (wall clock; kNoTime: not
  // known): rotated pieces written after it are read too.
  void Restore(std::vector<SavedPosition> saved, Nanos written = kNoTime);

  // One pass at steady time `now`: the globs when due (or when a folder or
  // a file's identity changed), then the files that were written to (all
  // of them when the globs were expanded). Returns the bytes read.
  size_t Poll(TailSink* sink, Nanos now);
  // Reads pending change notifications (Poll does too).
  void Drain();
  // The descriptor to wait on for changes, or -1.
  int wait_fd() const;
  // When Poll has something to do without a notification (steady time).
  Nanos next_scan() const { return last_scan_ + scan_interval(); }
  // Change notifications are trusted: the periodic scan is rare.
  bool notified() const;
  // Files that could not all be read in the last poll (limit or
  // back-pressure): poll again soon.
  bool more() const { return !dirty_.empty(); }

  // Every file has been read to its end at least once since start.
  bool caught_up() const;
  // Unread bytes: (total, files with some), from each file's size when it
  // was last looked at (read or scanned): no system call.
  std::pair<uint64_t, uint64_t> Lag() const;
  const TailStats& stats() const { return stats_; }
  size_t open_files() const { return files_.size(); }

 private:
  struct File;
  void Scan(TailSink* sink);
  // How a file came to be opened.
  enum class Found {
    kGlob,       // by the include globs
    kRecovered,  // a checkpoint's file rotated away: opened only if the
                 // checkpoint knows it (first bytes too), from its offset
    kPiece,      // rotated away after the checkpoint, unknown to it: from 0
  };
  // Starts following the file at `path`. `name`: the path the stream is
  // known by (else `path`). Files not found by the globs are read to their
  // end and closed.
  void Open(const std::string& path, const FileStat& st, TailSink* sink,
            const std::string& name = "", Found how = Found::kGlob);
  // At the first scan after a restore: the checkpoint's files the globs no
  // longer find (`present`: what they found), looked for in their folders.
  void Recover(const std::set<std::pair<uint64_t, uint64_t>>& present, TailSink* sink);
  bool Included(const std::string& path) const;
  void CheckSilent();
  // Reads what is new; returns bytes read. Closes files gone and drained.
  size_t Read(File& f, TailSink* sink);
  // Read in two steps, so Poll can do the first read of many files at once
  // (FileSystem::ReadMany): Begin looks at the file when it must (its size
  // and modification time; a truncation is handled); Finish reads on (its
  // first read done already when `first` is given) and handles the end.
  struct ReadStart {
    bool looked = false;
    Nanos mtime = 0;
  };
  ReadStart Begin(File& f, TailSink* sink);
  // The file's size (and a truncation handled); returns its modification
  // time (0 if it cannot be looked at).
  Nanos Look(File& f, TailSink* sink);
  size_t Finish(File& f, TailSink* sink, ReadStart start, const ReadOp* first);
  // The first reads of a batch, a buffer each (256 KiB in all, like one
  // ordinary read: a round at 2,000 lines/s brings a few hundred bytes per
  // file, at 100,000 lines/s over 50 files some 9 KB; what is more is read
  // on with ordinary reads).
  static constexpr size_t kBatchFiles = 32;
  static constexpr size_t kBatchReadBytes = 8 << 10;
  void WatchDirs();
  // Watches the folder a file really is in (once per folder); `Unwatch
  // Folder` when its last file closes.
  void WatchFolder(const std::string& path, std::string* folder);
  void UnwatchFolder(const std::string& folder);
  // A file found gone is closed at a later scan (see scans_), which must
  // come soon: its node is retired then, before it could look stalled.
  Nanos scan_interval() const {
    return notified() && gone_ == 0 ? std::max(opt_.rescan_interval, opt_.notified_rescan_interval)
                                    : opt_.rescan_interval;
  }

  Options opt_;
  FileSystem* fs_;
  std::unique_ptr<Watcher> watcher_;
  std::map<std::pair<uint64_t, uint64_t>, std::unique_ptr<File>> files_;  // by (dev, ino)
  std::unordered_map<int, std::pair<uint64_t, uint64_t>> by_watch_;        // watch handle -> file
  struct Folder {
    int watch = -1;
    size_t files = 0;        // open files in it
    bool permanent = false;  // an include pattern's folder: watched always
  };
  std::map<std::string, Folder> folders_;  // real folders of open files
  bool dirs_watched_ = false;   // every include pattern's folder is watched
  size_t unwatched_ = 0;        // open files without a watch (theirs or their folder's)
  size_t gone_ = 0;             // open files found gone, not yet closed
  bool silent_ = false;         // files grew without notifications
  int silent_scans_ = 0;        // scans in a row that found such files
  std::set<std::pair<uint64_t, uint64_t>> dirty_;                          // to read
  std::vector<SavedPosition> saved_;
  Nanos saved_written_ = kNoTime;
  bool restored_ = false;
  bool first_scan_done_ = false;
  // Scans so far. A file whose path no longer names it is closed once read
  // to its end at a later scan than the one that found it gone: kubelet
  // renames a log, then creates the new one, and a scan may fall between;
  // the successor must open before the old stream ends, or the node looks
  // gone for a moment and loses its state (an open ban period).
  uint64_t scans_ = 0;
  bool rescan_ = true;
  Nanos last_scan_ = 0;
  std::vector<char> buf_;
  std::vector<char> batch_buf_;  // kBatchFiles x kBatchReadBytes, made at first use
  TailStats stats_;
};

}  // namespace qw::source
