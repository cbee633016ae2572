// MemFileSystem: an in-memory FileSystem for tests of the tailer. Files are
// inodes with a device, an inode number, data and a modification time;
// paths name inodes or symlinks. It sends no change notifications (like a
// network file system): the tailer finds changes by scanning. Operations
// mirror what log writers and rotators do: append, rename, truncate in
// place, remove (an open file stays readable), symlink.
//
// Threading: one thread at a time.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_system.h"

namespace qw {

class MemFileSystem : public FileSystem {
 public:
  MemFileSystem();
  ~MemFileSystem() override;

  // Appends to `path`, creating it (a new inode) when absent.
  void Append(const std::string& path, std::string_view data);
  // Renames `from` to `to` (replacing what `to` named).
  void Rename(const std::string& from, const std::string& to);
  // Truncates the inode `path` names to `size` bytes in place.
  void Truncate(const std::string& path, uint64_t size = 0);
  // Removes the name; open files keep reading the inode.
  void Remove(const std::string& path);
  // `link` names `target` (a path, resolved when used).
  void Symlink(const std::string& target, const std::string& link);
  // Sets the modification time of what `path` names.
  void SetMtime(const std::string& path, Nanos mtime);
  // The next reads of what `path` names fail (-1) while `fail` is true.
  void FailReads(const std::string& path, bool fail);

  std::vector<std::string> Glob(const std::string& pattern) override;
  bool Stat(const std::string& path, FileStat* st) override;
  std::string RealPath(const std::string& path) override;
  std::vector<std::string> ListDir(const std::string& dir) override;
  std::unique_ptr<ReadableFile> Open(const std::string& path) override;
  std::unique_ptr<Watcher> NewWatcher() override;

  struct Inode;  // defined in the .cc

 private:
  std::shared_ptr<Inode> Resolve(const std::string& path) const;

  std::map<std::string, std::shared_ptr<Inode>> files_;  // path -> inode
  std::map<std::string, std::string> links_;             // path -> target path
  uint64_t next_ino_ = 100;
  Nanos clock_ = 1'700'000'000LL * kSecond;  // modification times advance by 1 s per write
};

}  // namespace qw
