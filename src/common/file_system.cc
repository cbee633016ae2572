#include "common/file_system.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <set>

#ifdef QW_HAVE_LIBURING
#include <liburing.h>
#endif

namespace qw {
namespace {

void FromStat(const struct stat& s, FileStat* st) {
  st->dev = static_cast<uint64_t>(s.st_dev);
  st->ino = static_cast<uint64_t>(s.st_ino);
  st->size = static_cast<uint64_t>(s.st_size);
  st->nlink = static_cast<uint64_t>(s.st_nlink);
  st->mtime = static_cast<Nanos>(s.st_mtim.tv_sec) * kSecond + s.st_mtim.tv_nsec;
  st->regular = S_ISREG(s.st_mode);
}

class PosixFile : public ReadableFile {
 public:
  explicit PosixFile(int fd) : fd_(fd) {}
  ~PosixFile() override { ::close(fd_); }
  ssize_t ReadAt(char* buf, size_t n, uint64_t offset) override {
    while (true) {
      ssize_t r = ::pread(fd_, buf, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      return r;
    }
  }
  bool Stat(FileStat* st) override {
    struct stat s {};
    if (::fstat(fd_, &s) != 0) return false;
    FromStat(s, st);
    return true;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// The calling thread's ring for ReadMany, made at its first use. Reads of
// page-cached file data complete within the submission (the kernel tries
// them without blocking first), so a batch costs one io_uring_enter.
class Ring {
 public:
  static constexpr unsigned kEntries = 64;
  static Ring& ForThread() {
    thread_local Ring ring;
    return ring;
  }
  ~Ring() {
#ifdef QW_HAVE_LIBURING
    if (state_ == kReady) io_uring_queue_exit(&ring_);
#endif
  }
  bool usable() {
#ifdef QW_HAVE_LIBURING
    if (state_ == kUntried) state_ = io_uring_queue_init(kEntries, &ring_, 0) == 0 ? kReady : kFailed;
#endif
    return state_ == kReady && !off_;
  }
  void set_off(bool off) { off_ = off; }
  // Reads ops[0, count) (count <= kEntries, every file a PosixFile). A
  // read the ring could not do is done with pread.
  void Read(ReadOp* ops, size_t count) {
#ifdef QW_HAVE_LIBURING
    size_t queued = 0;
    for (size_t i = 0; i < count; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
      io_uring_prep_read(sqe, static_cast<PosixFile*>(ops[i].file)->fd(), ops[i].buf,
                         static_cast<unsigned>(ops[i].n), ops[i].offset);
      io_uring_sqe_set_data64(sqe, i);
      ops[i].result = -EAGAIN;  // not yet completed
      ++queued;
    }
    size_t done = 0;
    if (queued > 0) {
      int rc;
      do {
        rc = io_uring_submit_and_wait(&ring_, static_cast<unsigned>(queued));
      } while (rc == -EINTR);
      // Whatever was submitted completes; collect every completion.
      while (done < queued) {
        io_uring_cqe* cqe = nullptr;
        int w = io_uring_wait_cqe(&ring_, &cqe);
        if (w == -EINTR) continue;
        if (w < 0) break;
        const uint64_t i = io_uring_cqe_get_data64(cqe);
        if (i < count) ops[i].result = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        ++done;
      }
      if (done < queued) {
        // The ring is in an unknown state: do without it from now on.
        io_uring_queue_exit(&ring_);
        state_ = kFailed;
      }
    }
#endif
    for (size_t i = 0; i < count; ++i) {
      // Not queued, failed or interrupted in the ring: pread says what it is.
      if (ops[i].result < 0) ops[i].result = ops[i].file->ReadAt(ops[i].buf, ops[i].n, ops[i].offset);
    }
  }

 private:
  enum State { kUntried, kReady, kFailed };
  State state_ = kUntried;
  bool off_ = false;
#ifdef QW_HAVE_LIBURING
  io_uring ring_{};
#endif
};

class Inotify : public Watcher {
 public:
  Inotify() : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {}
  ~Inotify() override {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const override { return fd_; }
  int WatchDir(const std::string& path) override {
    if (fd_ < 0) return -1;
    int wd = ::inotify_add_watch(fd_, path.c_str(),
                                 IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB);
    if (wd >= 0) dirs_.insert(wd);
    return wd;
  }
  int WatchFile(const std::string& path) override {
    if (fd_ < 0) return -1;
    return ::inotify_add_watch(fd_, path.c_str(),
                               IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB);
  }
  void Unwatch(int handle) override {
    if (fd_ >= 0 && handle >= 0) {
      ::inotify_rm_watch(fd_, handle);
      dirs_.erase(handle);
    }
  }
  void Drain(std::vector<int>* written, bool* other) override {
    alignas(inotify_event) char events[16384];
    if (fd_ < 0) return;
    ssize_t n;
    // A read that does not fill the buffer took everything queued: no
    // second read just to hear EAGAIN (what comes later wakes poll()).
    bool full = true;
    while (full && (n = ::read(fd_, events, sizeof events)) > 0) {
      full = static_cast<size_t>(n) + sizeof(inotify_event) + NAME_MAX + 1 > sizeof events;
      for (ssize_t at = 0; at < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(events + at);
        if (ev->wd >= 0 && dirs_.count(ev->wd) == 0 && ev->mask == IN_MODIFY) {
          written->push_back(ev->wd);
        } else {
          // A folder's entries, a file's identity, or IN_Q_OVERFLOW.
          *other = true;
        }
        at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
  }

 private:
  int fd_;
  std::set<int> dirs_;
};

class PosixFileSystem : public FileSystem {
 public:
  std::vector<std::string> Glob(const std::string& pattern) override {
    std::vector<std::string> out;
    glob_t g{};
    if (::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    }
    ::globfree(&g);
    return out;
  }
  bool Stat(const std::string& path, FileStat* st) override {
    struct stat s {};
    if (::stat(path.c_str(), &s) != 0) return false;
    FromStat(s, st);
    return true;
  }
  std::string RealPath(const std::string& path) override {
    char buf[PATH_MAX];
    return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : std::string();
  }
  std::vector<std::string> ListDir(const std::string& dir) override {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") out.push_back(dir + "/" + name);
    }
    ::closedir(d);
    return out;
  }
  std::unique_ptr<ReadableFile> Open(const std::string& path) override {
    // Without access times: a log file read after every append would
    // otherwise have its inode written each time (the file was modified
    // since it was last read, so even relatime updates it). Allowed only
    // to the file's owner (or with CAP_FOWNER): else opened as usual.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    return std::make_unique<PosixFile>(fd);
  }
  std::unique_ptr<Watcher> NewWatcher() override { return std::make_unique<Inotify>(); }
  void ReadMany(ReadOp* ops, size_t count) override {
    Ring& ring = Ring::ForThread();
    if (count < 2 || !ring.usable()) {
      FileSystem::ReadMany(ops, count);
      return;
    }
    for (size_t i = 0; i < count; i += Ring::kEntries) {
      ring.Read(ops + i, std::min<size_t>(Ring::kEntries, count - i));
    }
  }
};

}  // namespace

void FileSystem::ReadMany(ReadOp* ops, size_t count) {
  for (size_t i = 0; i < count; ++i) ops[i].result = ops[i].file->ReadAt(ops[i].buf, ops[i].n, ops[i].offset);
}

const char* ReadManyMethod() { return Ring::ForThread().usable() ? "io_uring" : "pread"; }

void UseIoUring(bool use_io_uring) { Ring::ForThread().set_off(!use_io_uring); }

FileSystem* FileSystem::Default() {
  static PosixFileSystem fs;
  return &fs;
}

}  // namespace qw
