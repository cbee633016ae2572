#include "source/byte_source.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <vector>

namespace qw::source {

struct OpenFiles::Lru {
  std::list<Member*> order;  // most recently read first; parkable and open only
};

// A file descriptor, plain reads. Under an OpenFiles bound a regular file is
// read with pread at its own offset, so it can be closed (parked) and opened
// again where it was.
class OpenFiles::Member : public ByteSource {
 public:
  Member(std::string path, int fd, OpenFiles* files)
      : path_(std::move(path)), fd_(fd), files_(files) {
    struct stat st {};
    if (files_ != nullptr && ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) {
      parkable_ = true;
      dev_ = st.st_dev;
      ino_ = st.st_ino;
    }
    if (files_ != nullptr) files_->Opened(this, parkable_);
  }
  ~Member() override {
    if (fd_ < 0) return;
    ::close(fd_);
    if (files_ != nullptr) files_->Closed(this, parkable_);
  }

  ssize_t Read(char* buf, size_t n) override {
    if (fd_ < 0) {
      if (!Reopen()) return -1;
    } else if (parkable_) {
      files_->Touched(this);
    }
    while (true) {
      ssize_t r = parkable_ ? ::pread(fd_, buf, n, offset_) : ::read(fd_, buf, n);
      if (r >= 0) {
        offset_ += r;
        return r;
      }
      if (errno == EINTR) continue;
      error_ = std::strerror(errno);
      return -1;
    }
  }
  const std::string& error() const override { return error_; }
  uint64_t consumed() const override { return static_cast<uint64_t>(offset_); }

  // OpenFiles only: gives the descriptor back (it has taken this off its list).
  void Park() {
    ::close(fd_);
    fd_ = -1;
  }
  std::list<Member*>::iterator lru_pos;

 private:
  bool Reopen() {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error_ = std::string("cannot open again: ") + std::strerror(errno);
      return false;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
      ::close(fd);
      error_ = "the file was replaced while being read";
      return false;
    }
    fd_ = fd;
    files_->Opened(this, true);
    return true;
  }

  std::string path_;
  int fd_;
  OpenFiles* files_;
  bool parkable_ = false;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  off_t offset_ = 0;
  std::string error_;
};

OpenFiles::OpenFiles(size_t max_open)
    : max_open_(std::max<size_t>(1, max_open)), lru_(std::make_unique<Lru>()) {}

OpenFiles::~OpenFiles() = default;

size_t OpenFiles::ForThisProcess() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 64;
  rlim_t soft = std::min<rlim_t>(rl.rlim_cur, 65536);
  // Keep 64 (or half, under a tiny limit) for everything that is not input.
  return static_cast<size_t>(soft > 128 ? soft - 64 : std::max<rlim_t>(4, soft / 2));
}

void OpenFiles::Opened(Member* m, bool parkable) {
  while (open_now_ >= max_open_ && !lru_->order.empty()) {
    Member* victim = lru_->order.back();
    lru_->order.pop_back();
    victim->Park();
    --open_now_;
    ++parks_;
  }
  ++open_now_;
  if (parkable) {
    lru_->order.push_front(m);
    m->lru_pos = lru_->order.begin();
  }
}

void OpenFiles::Closed(Member* m, bool parkable) {
  if (parkable) lru_->order.erase(m->lru_pos);
  --open_now_;
}

void OpenFiles::Touched(Member* m) {
  if (m->lru_pos != lru_->order.begin()) {
    lru_->order.splice(lru_->order.begin(), lru_->order, m->lru_pos);
  }
}

namespace {

class ZstdSource : public ByteSource {
 public:
  ZstdSource(std::unique_ptr<ByteSource> raw, std::vector<char> head)
      : raw_(std::move(raw)), in_(std::move(head)), dctx_(ZSTD_createDCtx()) {
    in_.resize(std::max(in_.size(), ZSTD_DStreamInSize()));
    have_ = head_size_ = 0;
  }
  void SetHead(size_t n) { have_ = n; }
  ~ZstdSource() override { ZSTD_freeDCtx(dctx_); }

  ssize_t Read(char* buf, size_t n) override {
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos == 0) {
      if (pos_ == have_) {
        if (eof_) {
          if (!frame_done_) {
            error_ = "truncated zstd stream";
            return -1;
          }
          return 0;
        }
        ssize_t r = raw_->Read(in_.data(), in_.size());
        if (r < 0) {
          error_ = raw_->error();
          return -1;
        }
        if (r == 0) {
          eof_ = true;
          continue;
        }
        have_ = static_cast<size_t>(r);
        pos_ = 0;
      }
      ZSTD_inBuffer in{in_.data(), have_, pos_};
      size_t ret = ZSTD_decompressStream(dctx_, &out, &in);
      pos_ = in.pos;
      if (ZSTD_isError(ret)) {
        error_ = std::string("zstd: ") + ZSTD_getErrorName(ret);
        return -1;
      }
      frame_done_ = ret == 0;
    }
    return static_cast<ssize_t>(out.pos);
  }
  const std::string& error() const override { return error_; }
  uint64_t consumed() const override { return raw_->consumed(); }

 private:
  std::unique_ptr<ByteSource> raw_;
  std::vector<char> in_;
  size_t have_ = 0, pos_ = 0, head_size_ = 0;
  bool eof_ = false;
  bool frame_done_ = true;
  ZSTD_DCtx* dctx_;
  std::string error_;
};

class MemSource : public ByteSource {
 public:
  MemSource(std::string data, size_t max_read) : data_(std::move(data)), max_read_(max_read) {}
  ssize_t Read(char* buf, size_t n) override {
    size_t k = std::min({n, max_read_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return static_cast<ssize_t>(k);
  }
  const std::string& error() const override { return error_; }
  uint64_t consumed() const override { return pos_; }

 private:
  std::string data_;
  size_t max_read_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

std::unique_ptr<ByteSource> MemorySource(std::string data, size_t max_read) {
  return std::make_unique<MemSource>(std::move(data), max_read);
}

Result<std::unique_ptr<ByteSource>> OpenFile(const std::string& path, OpenFiles* open_files) {
  // One over the bound for a moment (Opened then parks the least recently
  // read): ForThisProcess leaves a margin below the process limit for that.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(path + ": cannot open: " + std::strerror(errno));
  auto raw = std::make_unique<OpenFiles::Member>(path, fd, open_files);
  // Sniff the zstd magic (28 b5 2f fd) so renamed captures still work.
  std::vector<char> head(4);
  size_t got = 0;
  while (got < 4) {
    ssize_t r = raw->Read(head.data() + got, 4 - got);
    if (r < 0) return Fail(path + ": cannot read: " + raw->error());
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  head.resize(got);
  static const unsigned char kMagic[4] = {0x28, 0xb5, 0x2f, 0xfd};
  bool zstd = got == 4 && std::memcmp(head.data(), kMagic, 4) == 0;
  if (zstd) {
    auto z = std::make_unique<ZstdSource>(std::move(raw), head);
    z->SetHead(got);
    return std::unique_ptr<ByteSource>(std::move(z));
  }
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".zst") == 0 && got > 0) {
    return Fail(path + ": named .zst but not zstd data");
  }
  // Plain: hand back the sniffed bytes first.
  class Prefixed : public ByteSource {
   public:
    Prefixed(std::unique_ptr<ByteSource> raw, std::vector<char> head)
        : raw_(std::move(raw)), head_(std::move(head)) {}
    ssize_t Read(char* buf, size_t n) override {
      if (pos_ < head_.size()) {
        size_t k = std::min(n, head_.size() - pos_);
        std::memcpy(buf, head_.data() + pos_, k);
        pos_ += k;
        return static_cast<ssize_t>(k);
      }
      return raw_->Read(buf, n);
    }
    const std::string& error() const override { return raw_->error(); }
    uint64_t consumed() const override { return raw_->consumed(); }

   private:
    std::unique_ptr<ByteSource> raw_;
    std::vector<char> head_;
    size_t pos_ = 0;
  };
  return std::unique_ptr<ByteSource>(std::make_unique<Prefixed>(std::move(raw), std::move(head)));
}

}  // namespace qw::source
