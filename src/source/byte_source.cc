#include "source/byte_source.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace qw::source {
namespace {

class FdSource : public ByteSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  ~FdSource() override { ::close(fd_); }
  ssize_t Read(char* buf, size_t n) override {
    while (true) {
      ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      error_ = std::strerror(errno);
      return -1;
    }
  }
  const std::string& error() const override { return error_; }

 private:
  int fd_;
  std::string error_;
};

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

Result<std::unique_ptr<ByteSource>> OpenFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(path + ": cannot open: " + std::strerror(errno));
  auto raw = std::make_unique<FdSource>(fd);
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

   private:
    std::unique_ptr<ByteSource> raw_;
    std::vector<char> head_;
    size_t pos_ = 0;
  };
  return std::unique_ptr<ByteSource>(std::make_unique<Prefixed>(std::move(raw), std::move(head)));
}

}  // namespace qw::source
