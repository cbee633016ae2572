// ByteSource: a sequential reader of a file's bytes, plain or zstd
// compressed (streaming: memory stays bounded whatever the file size).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace qw::source {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n bytes into buf. Returns bytes read, 0 at end, -1 on error
  // (then error() says why).
  virtual ssize_t Read(char* buf, size_t n) = 0;
  virtual const std::string& error() const = 0;
  // Bytes taken from the file so far (compressed bytes for a .zst file):
  // with the file's size, how far through it reading is.
  virtual uint64_t consumed() const = 0;
};

// A bound on the files a set of sources keeps open at once (replay of
// thousands of files under `ulimit -n 256`). A source opened with one gives
// back its descriptor when another needs one and it is the least recently
// read (parked), and opens the file again at its offset when read next; its
// decoder state (zstd) stays in memory. Only regular files are parked (a
// pipe cannot be reopened); they count against the bound all the same. A
// file replaced while parked (another inode) is a read error, not another
// file's bytes read on. One thread; outlives its sources.
class OpenFiles {
 public:
  explicit OpenFiles(size_t max_open);
  ~OpenFiles();
  OpenFiles(const OpenFiles&) = delete;
  OpenFiles& operator=(const OpenFiles&) = delete;

  size_t max_open() const { return max_open_; }
  size_t open_now() const { return open_now_; }
  size_t parks() const { return parks_; }  // descriptors given back so far

  // The bound for this process: its soft RLIMIT_NOFILE less a margin for
  // everything else (standard streams, output files, libraries).
  static size_t ForThisProcess();

  class Member;  // an open file under this bound (byte_source.cc)

 private:
  friend class Member;
  void Opened(Member* m, bool parkable);  // parks others first when full
  void Closed(Member* m, bool parkable);
  void Touched(Member* m);

  size_t max_open_;
  size_t open_now_ = 0;
  size_t parks_ = 0;
  struct Lru;
  std::unique_ptr<Lru> lru_;
};

// Opens `path`; a name ending in .zst (or zstd magic bytes) is decompressed.
// With `open_files`, the descriptor is shared out under that bound.
[[nodiscard]] Result<std::unique_ptr<ByteSource>> OpenFile(const std::string& path,
                                                           OpenFiles* open_files = nullptr);

// Bytes held in memory, handed out at most `max_read` at a time (tests use
// small reads to cross buffer boundaries).
std::unique_ptr<ByteSource> MemorySource(std::string data, size_t max_read = SIZE_MAX);

}  // namespace qw::source
