#include "source/file_tailer.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <set>

#include "common/json.h"

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

// Fingerprint of the first up to kFingerprintBytes bytes of fd.
void Fingerprint(int fd, uint64_t* fp, uint32_t* len) {
  char head[kFingerprintBytes];
  ssize_t n = ::pread(fd, head, sizeof head, 0);
  if (n < 0) n = 0;
  *fp = Fnv1a(head, static_cast<size_t>(n));
  *len = static_cast<uint32_t>(n);
}

bool Acceptable(std::string_view s) {
  if (std::memchr(s.data(), '\0', s.size()) != nullptr) return false;
  return IsValidUtf8(s);
}

}  // namespace

struct FileTailer::File {
  TailedFile info;
  int fd = -1;
  uint64_t offset = 0;       // bytes consumed from the file
  uint64_t safe_offset = 0;  // after the last complete record
  std::string line;          // bytes after the last newline
  bool cutting = false;      // discarding the rest of an overlong line
  bool line_cut = false;
  LogFormat format;
  std::string record;        // CRI P / docker partial pieces
  bool in_record = false;
  Nanos record_time = kNoTime;
  bool seen_eof = false;
  bool reported_end = false;  // OnPosition told the sink this file was read to its end
  int watch = -1;
};

FileTailer::FileTailer(Options opt) : opt_(std::move(opt)), buf_(256 << 10) {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  WatchDirs();
}

FileTailer::~FileTailer() {
  for (auto& [key, f] : files_) {
    if (f->fd >= 0) ::close(f->fd);
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void FileTailer::WatchDirs() {
  if (inotify_fd_ < 0) return;
  for (const auto& pattern : opt_.include) {
    std::string dir = pattern.substr(0, pattern.find_last_of('/') + 1);
    if (dir.empty()) dir = ".";
    if (dir.find_first_of("*?[") != std::string::npos) continue;  // polled only
    int wd = ::inotify_add_watch(inotify_fd_, dir.c_str(),
                                 IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB);
    if (wd >= 0) dir_watches_.insert(wd);
  }
}

void FileTailer::Restore(std::vector<SavedPosition> saved) {
  saved_ = std::move(saved);
  restored_ = true;
}

bool FileTailer::caught_up() const {
  for (const auto& [key, f] : files_) {
    if (!f->seen_eof) return false;
  }
  return first_poll_done_;
}

std::vector<FileLag> FileTailer::Lag() const {
  std::vector<FileLag> out;
  for (const auto& [key, f] : files_) {
    struct stat st {};
    if (::fstat(f->fd, &st) != 0) continue;
    uint64_t size = static_cast<uint64_t>(st.st_size);
    out.push_back({f->info.path, size > f->offset ? size - f->offset : 0});
  }
  return out;
}

bool FileTailer::Open(const std::string& path, uint64_t dev, uint64_t ino, TailSink* sink) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_dev) != dev ||
      static_cast<uint64_t>(st.st_ino) != ino) {
    ::close(fd);
    return false;  // replaced between stat and open: found again next pass
  }
  auto f = std::make_unique<File>();
  f->fd = fd;
  f->format = opt_.format;
  f->info.stream = next_stream_++;
  f->info.path = path;
  f->info.dev = dev;
  f->info.ino = ino;
  Fingerprint(fd, &f->info.fingerprint, &f->info.fp_len);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t start = 0;
  bool found = false;
  for (const auto& s : saved_) {
    if (s.dev == dev && s.ino == ino && s.fp_len <= f->info.fp_len) {
      // Same inode: the fingerprint over the saved length must agree too
      // (inodes are reused after deletion).
      char head[kFingerprintBytes];
      ssize_t n = ::pread(fd, head, s.fp_len, 0);
      if (n == static_cast<ssize_t>(s.fp_len) && Fnv1a(head, s.fp_len) == s.fingerprint) {
        start = std::min(s.offset, size);
        found = true;
        break;
      }
    }
  }
  if (!found) {
    // Present at the very first start: read_from decides; anything that
    // appears later (or while quorumwatch was down) is read from its start.
    start = (!restored_ && !first_poll_done_ && opt_.read_from_end) ? size : 0;
  }
  f->offset = f->safe_offset = start;
  f->info.offset = start;
  if (inotify_fd_ >= 0) {
    f->watch = ::inotify_add_watch(inotify_fd_, path.c_str(),
                                   IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB);
  }
  stats_.files_opened++;
  sink->OnStart(f->info);
  files_.emplace(std::make_pair(dev, ino), std::move(f));
  return true;
}

void FileTailer::Discover(TailSink* sink) {
  std::set<std::pair<uint64_t, uint64_t>> present;
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> fresh;
  for (const auto& pattern : opt_.include) {
    glob_t g{};
    if (::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) {
        std::string path = g.gl_pathv[i];
        bool excluded = false;
        for (const auto& ex : opt_.exclude) {
          excluded = excluded || ::fnmatch(ex.c_str(), path.c_str(), 0) == 0;
        }
        struct stat st {};
        if (excluded || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        auto key = std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
        if (!present.insert(key).second) continue;
        if (!files_.count(key)) fresh.emplace_back(path, key);
      }
    }
    ::globfree(&g);
  }
  // New files first (sorted, so runs are reproducible), then files whose
  // path is gone or now names another inode: drained, then ended. A node's
  // rotated file thus starts its new stream before the old one ends.
  std::sort(fresh.begin(), fresh.end());
  for (const auto& [path, key] : fresh) Open(path, key.first, key.second, sink);
  for (auto it = files_.begin(); it != files_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    File& f = *it->second;
    while (ReadFile(f, sink) > 0) {
    }
    struct stat st {};
    bool deleted = ::fstat(f.fd, &st) == 0 && st.st_nlink == 0;
    if (!deleted) stats_.rotations++;
    Close(f, sink);
    it = files_.erase(it);
  }
}

void FileTailer::Close(File& f, TailSink* sink) {
  // A last line without newline belongs to a file that will not grow now.
  if (!f.line.empty()) {
    std::string last = std::move(f.line);
    f.line.clear();
    Line(f, last, f.line_cut, f.offset, sink);
  }
  if (f.in_record) {
    f.in_record = false;
    sink->OnRecord(f.info.stream, f.record, f.record_time);
  }
  sink->OnPosition(f.info.stream, f.offset, true);
  if (f.watch >= 0 && inotify_fd_ >= 0) ::inotify_rm_watch(inotify_fd_, f.watch);
  ::close(f.fd);
  f.fd = -1;
  stats_.files_ended++;
  sink->OnEnd(f.info.stream);
}

void FileTailer::Line(File& f, std::string_view line, bool cut, uint64_t end_offset,
                      TailSink* sink) {
  stats_.lines_read++;
  if (cut) stats_.lines_cut++;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (f.format == LogFormat::kAuto) {
    if (line.empty()) return;
    f.format = SniffFormat(line);
  }
  Decoded d;
  bool ok = true;
  switch (f.format) {
    case LogFormat::kCri:
      ok = DecodeCri(line, &d);
      break;
    case LogFormat::kDocker:
      ok = docker_.Decode(line, &d);
      break;
    default:
      d.message = line;
      break;
  }
  if (!ok || !Acceptable(d.message)) {
    stats_.lines_rejected++;
    if (!f.in_record) f.safe_offset = end_offset;
    return;
  }
  if (d.partial || f.in_record) {
    if (!f.in_record) {
      f.record.clear();
      f.record_time = d.runtime_time;
      f.in_record = true;
    }
    size_t room = opt_.max_line_bytes > f.record.size() ? opt_.max_line_bytes - f.record.size() : 0;
    if (d.message.size() > room) stats_.lines_cut++;
    f.record.append(d.message.substr(0, room));
    if (d.partial) return;
    f.in_record = false;
    sink->OnRecord(f.info.stream, f.record, f.record_time);
  } else if (!d.message.empty()) {
    sink->OnRecord(f.info.stream, d.message, d.runtime_time);
  }
  f.safe_offset = end_offset;
}

size_t FileTailer::ReadFile(File& f, TailSink* sink) {
  struct stat st {};
  if (::fstat(f.fd, &st) == 0 && static_cast<uint64_t>(st.st_size) < f.offset) {
    // copytruncate: the file was emptied in place; start again at 0.
    stats_.truncations++;
    f.offset = f.safe_offset = 0;
    f.line.clear();
    f.cutting = f.line_cut = false;
    f.in_record = false;
  }
  size_t total = 0;
  const uint64_t before_safe = f.safe_offset;
  while (total < opt_.max_bytes_per_poll) {
    ssize_t n = ::pread(f.fd, buf_.data(), buf_.size(), static_cast<off_t>(f.offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      f.seen_eof = true;
      break;
    }
    total += static_cast<size_t>(n);
    stats_.bytes_read += static_cast<uint64_t>(n);
    f.reported_end = false;
    const char* p = buf_.data();
    const char* end = p + n;
    uint64_t pos = f.offset;
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      size_t take = static_cast<size_t>((nl != nullptr ? nl : end) - p);
      if (!f.cutting) {
        size_t room = opt_.max_line_bytes > f.line.size() ? opt_.max_line_bytes - f.line.size() : 0;
        if (take > room) {
          f.line.append(p, room);
          f.cutting = true;
          f.line_cut = true;
        } else {
          f.line.append(p, take);
        }
      }
      pos += take;
      p += take;
      if (nl != nullptr) {
        ++p;
        ++pos;
        Line(f, f.line, f.line_cut, pos, sink);
        f.line.clear();
        f.cutting = f.line_cut = false;
      }
    }
    f.offset = pos;
    if (static_cast<size_t>(n) < buf_.size()) {
      f.seen_eof = true;
      break;
    }
  }
  if (f.safe_offset != before_safe || (f.seen_eof && !f.reported_end)) {
    sink->OnPosition(f.info.stream, f.safe_offset, f.seen_eof);
    f.reported_end = f.seen_eof;
  }
  return total;
}

size_t FileTailer::Poll(TailSink* sink) {
  Drain();
  // Expanding the globs stats every candidate file: done when something
  // other than appended data changed, or every rescan_interval, not on
  // every write.
  const Nanos now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
  if (rescan_ || !first_poll_done_ || inotify_fd_ < 0 ||
      now - last_discover_ >= opt_.rescan_interval) {
    rescan_ = false;
    last_discover_ = now;
    Discover(sink);
  }
  first_poll_done_ = true;
  size_t total = 0;
  for (auto& [key, f] : files_) total += ReadFile(*f, sink);
  return total;
}

void FileTailer::Drain() {
  // Appends (IN_MODIFY) need no more than the next
  // Poll's reads; anything else about a folder or a file's identity
  // (created, moved, removed, links changed, queue overflow) expands the
  // globs again.
  alignas(inotify_event) char events[4096];
  if (inotify_fd_ >= 0) {
    ssize_t n;
    while ((n = ::read(inotify_fd_, events, sizeof events)) > 0) {
      for (ssize_t at = 0; at < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(events + at);
        if (dir_watches_.count(ev->wd) > 0 || (ev->mask & ~static_cast<uint32_t>(IN_MODIFY)) != 0) {
          rescan_ = true;
        }
        at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
  }
}

void FileTailer::Wait(Nanos timeout) {
  struct pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  int ms = static_cast<int>(std::max<Nanos>(0, timeout / kMillisecond));
  ::poll(fds, 2, ms);
  Drain();
  uint64_t v;
  if (wake_fd_ >= 0) {
    while (::read(wake_fd_, &v, sizeof v) > 0) {
    }
  }
}

void FileTailer::Wake() {
  uint64_t one = 1;
  if (wake_fd_ >= 0) {
    ssize_t r = ::write(wake_fd_, &one, sizeof one);
    (void)r;
  }
}

}  // namespace qw::source
