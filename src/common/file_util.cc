#include "common/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace qw {

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool FsyncDir(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return false;
  bool ok = ::fsync(dfd) == 0;
  int err = errno;
  ::close(dfd);
  errno = err;
  return ok;
}

Result<void> WriteFileAtomic(const std::string& path, std::string_view data,
                             const std::string& previous) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(tmp + ": " + std::strerror(errno));
  bool ok = WriteAll(fd, data) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return Fail(tmp + ": " + std::strerror(err));
  }
  if (!previous.empty()) {
    // The contents being replaced get a second name, so that `path` itself
    // exists throughout: a reader (or a crash) between the steps still finds
    // a whole file under `path`. Only where hard links are not possible is
    // `path` renamed away first.
    if (::unlink(previous.c_str()) != 0 && errno != ENOENT) {
      err = errno;
      ::unlink(tmp.c_str());
      return Fail(previous + ": " + std::strerror(err));
    }
    if (::link(path.c_str(), previous.c_str()) != 0 && errno != ENOENT &&
        ::rename(path.c_str(), previous.c_str()) != 0 && errno != ENOENT) {
      err = errno;
      ::unlink(tmp.c_str());
      return Fail(previous + ": " + std::strerror(err));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return Fail(path + ": " + std::strerror(err));
  }
  // Without this the rename itself may not survive a crash: the caller
  // must know that the new contents are not durable yet.
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  if (!FsyncDir(dir)) {
    return Fail(dir + ": cannot sync the folder after replacing " + path + ": " +
                std::strerror(errno));
  }
  return {};
}

Result<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(std::strerror(errno));
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Fail(std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace qw
