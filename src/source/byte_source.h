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
};

// Opens `path`; a name ending in .zst (or zstd magic bytes) is decompressed.
[[nodiscard]] Result<std::unique_ptr<ByteSource>> OpenFile(const std::string& path);

// Bytes held in memory, handed out at most `max_read` at a time (tests use
// small reads to cross buffer boundaries).
std::unique_ptr<ByteSource> MemorySource(std::string data, size_t max_read = SIZE_MAX);

}  // namespace qw::source
