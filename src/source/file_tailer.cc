#include "source/file_tailer.h"

#include <fnmatch.h>

#include <algorithm>
#include <chrono>

namespace qw::source {
namespace {

constexpr uint32_t kFingerprintBytes = 256;

uint64_t Fnv1a(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ULL;
  }
  return h;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The fingerprint of the file's first bytes as they are now, into `id`;
// `head` keeps them (a saved fingerprint is compared with their prefix).
void TakeFingerprint(ReadableFile& file, char (&head)[kFingerprintBytes], FileIdentity* id) {
  ssize_t n = file.ReadAt(head, sizeof head, 0);
  if (n < 0) n = 0;
  id->fingerprint = Fnv1a(head, static_cast<size_t>(n));
  id->fp_len = static_cast<uint32_t>(n);
}

// gzip or zstd: a piece the rotator compressed, not lines.
bool Compressed(FileSystem& fs, const std::string& path) {
  auto f = fs.Open(path);
  unsigned char magic[4] = {0, 0, 0, 0};
  if (!f || f->ReadAt(reinterpret_cast<char*>(magic), sizeof magic, 0) < 2) return true;
  return (magic[0] == 0x1f && magic[1] == 0x8b) ||
         (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd);
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

struct FileTailer::File {
  uint32_t id = 0;
  std::string path;
  FileIdentity identity;
  std::unique_ptr<ReadableFile> file;
  uint64_t offset = 0;  // bytes handed on
  uint64_t size = 0;    // its size when last looked at (read or scanned)
  int watch = -1;
  std::string folder;   // the watched folder it really is in ("": none)
  bool unwatched = false;  // counted in unwatched_
  bool suspect = false;    // grew without a notification at the last scan
  bool notified = false;   // written to, as a notification said, since the last read
  bool seen_end = false;      // read to its end at least once
  bool told_end = false;      // OnCaughtUp since the last data
  bool gone = false;          // its path no longer names it: close at its end
  uint64_t gone_scan = 0;     // the scan that found it gone
};

FileTailer::FileTailer(Options opt, FileSystem* fs)
    : opt_(std::move(opt)), fs_(fs), watcher_(fs->NewWatcher()), buf_(opt_.read_bytes) {
  WatchDirs();
}

FileTailer::~FileTailer() {
  for (auto& [key, f] : files_) watcher_->Unwatch(f->watch);
  for (auto& [dir, folder] : folders_) watcher_->Unwatch(folder.watch);
}

void FileTailer::WatchDirs() {
  dirs_watched_ = watcher_->fd() >= 0;
  for (const auto& pattern : opt_.include) {
    std::string dir = DirName(pattern);
    if (dir.find_first_of("*?[") != std::string::npos) {
      dirs_watched_ = false;  // its new folders are found by scanning only
      continue;
    }
    const int w = watcher_->WatchDir(dir);
    dirs_watched_ = dirs_watched_ && w >= 0;
    // Files found there need no second watch of it (and must not remove
    // this one when they close).
    if (w >= 0) folders_[dir] = Folder{w, 0, /*permanent=*/true};
  }
}

bool FileTailer::notified() const {
  return watcher_->fd() >= 0 && dirs_watched_ && unwatched_ == 0 && !silent_;
}

void FileTailer::WatchFolder(const std::string& path, std::string* folder) {
  folder->clear();
  const std::string real = fs_->RealPath(path);
  const std::string dir = DirName(real.empty() ? path : real);
  auto it = folders_.find(dir);
  if (it == folders_.end()) {
    const int w = watcher_->WatchDir(dir);
    if (w < 0) return;
    // Another name of an include pattern's folder (through a symlink):
    // the kernel gave its watch, which stays.
    const bool permanent = std::any_of(folders_.begin(), folders_.end(), [w](const auto& e) {
      return e.second.permanent && e.second.watch == w;
    });
    it = folders_.emplace(dir, Folder{w, 0, permanent}).first;
  }
  ++it->second.files;
  *folder = dir;
}

void FileTailer::UnwatchFolder(const std::string& folder) {
  auto it = folders_.find(folder);
  if (folder.empty() || it == folders_.end()) return;
  if (--it->second.files == 0 && !it->second.permanent) {
    watcher_->Unwatch(it->second.watch);
    folders_.erase(it);
  }
}

int FileTailer::wait_fd() const { return watcher_->fd(); }

void FileTailer::Restore(std::vector<SavedPosition> saved, Nanos written) {
  saved_ = std::move(saved);
  saved_written_ = written;
  restored_ = true;
}

bool FileTailer::caught_up() const {
  if (!first_scan_done_) return false;
  for (const auto& [key, f] : files_) {
    if (!f->seen_end) return false;
  }
  return true;
}

std::pair<uint64_t, uint64_t> FileTailer::Lag() const {
  uint64_t bytes = 0, files = 0;
  for (const auto& [key, f] : files_) {
    if (f->size > f->offset) {
      bytes += f->size - f->offset;
      ++files;
    }
  }
  return {bytes, files};
}

void FileTailer::Open(const std::string& path, const FileStat& st, TailSink* sink,
                      const std::string& name, Found how) {
  auto file = fs_->Open(path);
  if (!file) return;
  FileStat now;
  if (!file->Stat(&now) || now.dev != st.dev || now.ino != st.ino) return;  // replaced meanwhile
  auto f = std::make_unique<File>();
  f->path = path;
  f->identity.dev = st.dev;
  f->identity.ino = st.ino;
  char head[kFingerprintBytes];
  TakeFingerprint(*file, head, &f->identity);

  TailedFile info;
  info.path = name.empty() ? path : name;
  info.identity = f->identity;
  bool found = false;
  for (const auto& s : saved_) {
    if (s.identity.dev != st.dev || s.identity.ino != st.ino || s.identity.fp_len > f->identity.fp_len) {
      continue;
    }
    // Same inode: the first bytes must agree too (inodes are reused).
    if (Fnv1a(head, s.identity.fp_len) != s.identity.fingerprint) continue;
    info.offset = std::min(s.offset, now.size);
    info.saved_family = s.family;
    info.saved_last_time = s.last_time;
    found = true;
    break;
  }
  if (!found && how == Found::kRecovered) return;  // not the checkpoint's file (an inode reused)
  if (!found) {
    // Present at the very first start: read_from decides; anything that
    // appears later (or while quorumwatch was down) is read from its start.
    info.offset =
        (how == Found::kGlob && !restored_ && !first_scan_done_ && opt_.read_from_end) ? now.size : 0;
  }
  f->offset = info.offset;
  f->size = now.size;
  f->file = std::move(file);
  f->watch = watcher_->WatchFile(path);
  WatchFolder(path, &f->folder);
  if (f->watch < 0 || f->folder.empty()) {
    f->unwatched = true;  // only the periodic scan sees it
    ++unwatched_;
  }
  f->id = sink->OnOpen(info);
  stats_.files_opened++;
  if (how != Found::kGlob) {
    f->gone = true;  // read to its end, closed at a later scan
    f->gone_scan = scans_;
    ++gone_;
    stats_.recovered++;
    if (opt_.log) {
      opt_.log(info.path + ": rotated to " + path + " after the last checkpoint; reading the " +
               std::to_string(now.size - info.offset) + " byte(s) not yet read from offset " +
               std::to_string(info.offset));
    }
  }
  const auto key = std::make_pair(st.dev, st.ino);
  if (f->watch >= 0) by_watch_[f->watch] = key;
  dirty_.insert(key);
  files_.emplace(key, std::move(f));
}

void FileTailer::Scan(TailSink* sink) {
  std::set<std::pair<uint64_t, uint64_t>> present;
  struct Fresh {
    std::string base, path;
    FileStat st;
  };
  std::vector<Fresh> fresh;
  size_t suspects = 0;
  for (const auto& pattern : opt_.include) {
    for (const auto& path : fs_->Glob(pattern)) {
      bool excluded = false;
      for (const auto& ex : opt_.exclude) {
        excluded = excluded || ::fnmatch(ex.c_str(), path.c_str(), 0) == 0;
      }
      FileStat st;
      if (excluded || !fs_->Stat(path, &st) || !st.regular) continue;
      auto key = std::make_pair(st.dev, st.ino);
      if (!present.insert(key).second) continue;
      auto it = files_.find(key);
      if (it == files_.end()) {
        fresh.push_back({BaseName(path), path, st});
        continue;
      }
      // Read only if its size changed (a stat per file is the scan's
      // cost). One that grew though caught up and not notified: inotify
      // may be silent here (checked below).
      File& f = *it->second;
      f.size = st.size;
      if (st.size == f.offset || dirty_.count(key)) continue;
      f.suspect = f.seen_end && !f.unwatched && notified();
      if (f.suspect) ++suspects;
      dirty_.insert(key);
    }
  }
  if (suspects > 0) {
    CheckSilent();
  } else {
    silent_scans_ = 0;
  }
  // New files first, in name order (ids follow it, and ids break ties of
  // equal times, so replay and live order the same files the same way);
  // then files whose path is gone or names another inode now: read to
  // their end, then closed. A rotated file's new stream starts before the
  // old one ends, so its node never looks gone; and a gone file is closed
  // only at a later scan, so a rotation seen between its rename and the new
  // file's creation still finds the successor first.
  ++scans_;
  // The checkpoint's files rotated away meanwhile come first: their lines
  // are older than their successors'.
  if (restored_ && !first_scan_done_) Recover(present, sink);
  std::sort(fresh.begin(), fresh.end(), [](const Fresh& a, const Fresh& b) {
    return a.base != b.base ? a.base < b.base : a.path < b.path;
  });
  for (const auto& f : fresh) Open(f.path, f.st, sink);
  for (auto& [key, f] : files_) {
    if (!present.count(key) && !f->gone) {
      f->gone = true;
      f->gone_scan = scans_;
      ++gone_;
      FileStat st;
      if (f->file->Stat(&st) && st.nlink > 0) stats_.rotations++;
    }
    if (f->gone) dirty_.insert(key);  // read to its end, then closed
  }
}

// A file that grew with no notification for it: its notification may still
// be on its way (the kernel queues it just after the write), so the queue is
// read once more. Still none, at two scans in a row: inotify is silent here,
// and the scan runs every rescan_interval from now on.
void FileTailer::CheckSilent() {
  Drain();  // marks what it names to be read, like any notification
  std::string example;
  size_t suspects = 0;
  for (auto& [key, f] : files_) {
    if (f->suspect && !f->notified) {
      ++suspects;
      if (example.empty()) example = f->path;
    }
    f->suspect = false;
  }
  if (suspects == 0) {
    silent_scans_ = 0;
    return;
  }
  if (++silent_scans_ < 2 || silent_) return;
  silent_ = true;
  if (opt_.log) {
    opt_.log(example + ": grew without a change notification (" + std::to_string(suspects) +
             " file(s) at this scan and the one before): inotify seems silent on this file "
             "system; every file is looked at every poll_interval from now on");
  }
}

bool FileTailer::Included(const std::string& path) const {
  bool in = false;
  for (const auto& p : opt_.include) in = in || ::fnmatch(p.c_str(), path.c_str(), 0) == 0;
  for (const auto& ex : opt_.exclude) in = in && ::fnmatch(ex.c_str(), path.c_str(), 0) != 0;
  return in;
}

// kubelet renames a container's 0.log to 0.log.<time> beside it (and
// compresses older pieces); logrotate and most writers rotate within the
// folder too. So a file the checkpoint knows and the globs no longer find is
// looked for in the folder its path leads to now (through symlinks, as
// /var/log/containers/*.log lead into /var/log/pods) and in the path's own
// folder, by device and inode, then by its first bytes; it is read from the
// saved offset. Pieces rotated away after it (named like the file the path
// leads to, "<name>.<suffix>", written after it or, when it is not found,
// after the checkpoint, and unknown to the checkpoint) are read from their
// start, oldest first. A compressed or removed piece is not found: its
// unread lines are lost.
void FileTailer::Recover(const std::set<std::pair<uint64_t, uint64_t>>& present, TailSink* sink) {
  std::set<std::pair<uint64_t, uint64_t>> known;
  for (const auto& s : saved_) known.insert({s.identity.dev, s.identity.ino});
  for (const auto& s : saved_) {
    const auto key = std::make_pair(s.identity.dev, s.identity.ino);
    if (present.count(key) || files_.count(key) || !Included(s.path)) continue;
    std::vector<std::string> dirs;
    const std::string real = fs_->RealPath(s.path);
    if (!real.empty()) dirs.push_back(DirName(real));
    if (std::find(dirs.begin(), dirs.end(), DirName(s.path)) == dirs.end()) {
      dirs.push_back(DirName(s.path));
    }
    const std::string prefix = BaseName(real.empty() ? s.path : real) + ".";
    Nanos after = saved_written_;  // pieces written later than this
    struct Piece {
      Nanos mtime;
      std::string path;
      FileStat st;
    };
    std::vector<Piece> pieces;
    for (const auto& dir : dirs) {
      for (const auto& entry : fs_->ListDir(dir)) {
        FileStat st;
        if (!fs_->Stat(entry, &st) || !st.regular) continue;
        const auto entry_key = std::make_pair(st.dev, st.ino);
        if (entry_key == key) {
          if (st.size > s.offset) Open(entry, st, sink, s.path, Found::kRecovered);
          // Its pieces are the ones written after it (unless the inode now
          // holds another file: Open refused it).
          if (st.size <= s.offset || files_.count(key)) after = st.mtime;
        } else if (!known.count(entry_key) && !present.count(entry_key) && !files_.count(entry_key) &&
                   BaseName(entry).rfind(prefix, 0) == 0 && !Included(entry) && st.size > 0 &&
                   std::none_of(pieces.begin(), pieces.end(),
                                [&](const Piece& p) { return p.st.dev == st.dev && p.st.ino == st.ino; })) {
          pieces.push_back({st.mtime, entry, st});
        }
      }
    }
    if (after == kNoTime) continue;
    std::sort(pieces.begin(), pieces.end(),
              [](const Piece& a, const Piece& b) { return a.mtime != b.mtime ? a.mtime < b.mtime : a.path < b.path; });
    for (const auto& p : pieces) {
      if (p.mtime <= after || Compressed(*fs_, p.path)) continue;
      Open(p.path, p.st, sink, s.path, Found::kPiece);
      known.insert({p.st.dev, p.st.ino});
    }
  }
}

size_t FileTailer::Read(File& f, TailSink* sink) {
  if (!sink->WantsData(f.id)) return 0;  // stays dirty: read later
  return Finish(f, sink, Begin(f, sink), nullptr);
}

// The file's status: its size (truncated?) and modification time.
Nanos FileTailer::Look(File& f, TailSink* sink) {
  FileStat st;
  if (!f.file->Stat(&st)) return 0;
  f.size = st.size;
  if (st.size >= f.offset) return st.mtime;
  // copytruncate: emptied in place; start again at 0. The fingerprint is
  // taken again: the old first bytes are gone, and a checkpoint that kept
  // them would not know the file after a restart (it would be read again
  // from its start).
  stats_.truncations++;
  f.offset = 0;
  char head[kFingerprintBytes];
  TakeFingerprint(*f.file, head, &f.identity);
  sink->OnTruncated(f.id, f.identity);
  return st.mtime;
}

FileTailer::ReadStart FileTailer::Begin(File& f, TailSink* sink) {
  // An append notified to a file read to its end before: read at once, and
  // the time now stands for its modification time (it was just written).
  // Only when nothing is there is the file looked at (truncated, then
  // notified: Finish looks). Else the status first.
  ReadStart start;
  start.looked = !(f.notified && f.seen_end && notified());
  f.notified = false;
  start.mtime = start.looked ? Look(f, sink) : WallNow();
  return start;
}

size_t FileTailer::Finish(File& f, TailSink* sink, ReadStart start, const ReadOp* first) {
  bool looked = start.looked;
  Nanos mtime = start.mtime;
  size_t total = 0;
  bool at_end = false;
  while (true) {
    // (WantsData was asked before the first read.)
    if (total >= opt_.max_bytes_per_poll || (total > 0 && !sink->WantsData(f.id))) break;
    const char* data = buf_.data();
    size_t want;
    ssize_t n;
    if (first != nullptr) {
      data = first->buf;
      want = first->n;
      n = first->result;
      first = nullptr;
    } else {
      want = std::min(buf_.size(), opt_.max_bytes_per_poll - total);
      n = f.file->ReadAt(buf_.data(), want, f.offset);
    }
    stats_.reads++;
    if (n < 0) {
      stats_.read_errors++;
      break;
    }
    if (n == 0 && !looked) {
      looked = true;
      if (const Nanos m = Look(f, sink); m != 0) mtime = m;
      continue;
    }
    if (n == 0) {
      at_end = true;
      break;
    }
    total += static_cast<size_t>(n);
    stats_.bytes_read += static_cast<uint64_t>(n);
    f.offset += static_cast<uint64_t>(n);
    f.size = std::max(f.size, f.offset);
    f.told_end = false;
    sink->OnData(f.id, std::string_view(data, static_cast<size_t>(n)), mtime);
    if (static_cast<size_t>(n) < want) {
      // Short read: the end, unless it grew meanwhile (the next poll sees).
      at_end = true;
      break;
    }
  }
  const auto key = std::make_pair(f.identity.dev, f.identity.ino);
  if (!at_end) return total;  // more to read: stays dirty
  dirty_.erase(key);
  f.seen_end = true;
  if (!f.told_end) {
    f.told_end = true;
    sink->OnCaughtUp(f.id);
  }
  if (f.gone && scans_ > f.gone_scan) {
    watcher_->Unwatch(f.watch);
    by_watch_.erase(f.watch);
    UnwatchFolder(f.folder);
    if (f.unwatched) --unwatched_;
    --gone_;
    stats_.files_closed++;
    sink->OnClose(f.id);
    files_.erase(key);  // f is gone now
  }
  return total;
}

void FileTailer::Drain() {
  std::vector<int> written;
  bool other = false;
  watcher_->Drain(&written, &other);
  if (other) rescan_ = true;
  for (int w : written) {
    auto it = by_watch_.find(w);
    if (it == by_watch_.end()) continue;
    dirty_.insert(it->second);
    auto f = files_.find(it->second);
    if (f != files_.end()) f->second->notified = true;
  }
}

size_t FileTailer::Poll(TailSink* sink, Nanos now) {
  Drain();
  if (rescan_ || !first_scan_done_ || watcher_->fd() < 0 || now - last_scan_ >= scan_interval()) {
    rescan_ = false;
    last_scan_ = now;
    Scan(sink);
    first_scan_done_ = true;
  }
  size_t total = 0;
  // In id order (the order files were found), so runs are reproducible.
  std::vector<File*> todo;
  for (auto key = dirty_.begin(); key != dirty_.end();) {
    auto it = files_.find(*key);
    if (it == files_.end()) {
      key = dirty_.erase(key);
      continue;
    }
    todo.push_back(it->second.get());
    ++key;
  }
  std::sort(todo.begin(), todo.end(), [](const File* a, const File* b) { return a->id < b->id; });
  if (todo.size() < 2) {
    for (File* f : todo) total += Read(*f, sink);
    return total;
  }
  // The first read of every file at once, kBatchFiles at a time; what
  // does not fit in its first read is read on one file at a time.
  if (batch_buf_.empty()) batch_buf_.resize(kBatchFiles * kBatchReadBytes);
  File* files[kBatchFiles];
  ReadStart starts[kBatchFiles];
  ReadOp ops[kBatchFiles];
  const size_t first_bytes = std::min({kBatchReadBytes, buf_.size(), opt_.max_bytes_per_poll});
  for (size_t i = 0; i < todo.size(); i += kBatchFiles) {
    size_t count = 0;
    for (size_t j = i; j < todo.size() && j < i + kBatchFiles; ++j) {
      File& f = *todo[j];
      if (!sink->WantsData(f.id)) continue;  // stays dirty: read later
      files[count] = &f;
      starts[count] = Begin(f, sink);
      ops[count] = ReadOp{f.file.get(), batch_buf_.data() + count * kBatchReadBytes, first_bytes, f.offset};
      ++count;
    }
    fs_->ReadMany(ops, count);
    for (size_t k = 0; k < count; ++k) total += Finish(*files[k], sink, starts[k], &ops[k]);
  }
  return total;
}

}  // namespace qw::source
