#include "common/mem_file_system.h"

#include <fnmatch.h>


#include <algorithm>
#include <cstring>

namespace qw {

struct MemFileSystem::Inode {
  uint64_t ino = 0;
  std::string data;
  Nanos mtime = 0;
  uint64_t nlink = 1;
  bool fail_reads = false;
};

namespace {

constexpr uint64_t kDev = 7;

void StatOf(const MemFileSystem::Inode& node, FileStat* st) {
  st->dev = kDev;
  st->ino = node.ino;
  st->size = node.data.size();
  st->nlink = node.nlink;
  st->mtime = node.mtime;
  st->regular = true;
}

// An open file: keeps its inode readable after the name is gone.
class MemFile : public ReadableFile {
 public:
  explicit MemFile(std::shared_ptr<MemFileSystem::Inode> node) : node_(std::move(node)) {}
  ssize_t ReadAt(char* buf, size_t n, uint64_t offset) override {
    if (node_->fail_reads) return -1;
    if (offset >= node_->data.size()) return 0;
    const size_t k = std::min<size_t>(n, node_->data.size() - offset);
    std::memcpy(buf, node_->data.data() + offset, k);
    return static_cast<ssize_t>(k);
  }
  bool Stat(FileStat* st) override {
    StatOf(*node_, st);
    return true;
  }

 private:
  std::shared_ptr<MemFileSystem::Inode> node_;
};

class SilentWatcher : public Watcher {
 public:
  int fd() const override { return -1; }
  int WatchDir(const std::string&) override { return -1; }
  int WatchFile(const std::string&) override { return -1; }
  void Unwatch(int) override {}
  void Drain(std::vector<int>*, bool*) override {}
};

}  // namespace

MemFileSystem::MemFileSystem() = default;
MemFileSystem::~MemFileSystem() = default;

std::shared_ptr<MemFileSystem::Inode> MemFileSystem::Resolve(const std::string& path) const {
  std::string p = path;
  for (int hops = 0; hops < 8; ++hops) {
    auto f = files_.find(p);
    if (f != files_.end()) return f->second;
    auto l = links_.find(p);
    if (l == links_.end()) return nullptr;
    p = l->second;
  }
  return nullptr;
}

void MemFileSystem::Append(const std::string& path, std::string_view data) {
  auto node = Resolve(path);
  if (!node) {
    node = std::make_shared<Inode>();
    node->ino = next_ino_++;
    files_[path] = node;
  }
  node->data.append(data);
  clock_ += kSecond;
  node->mtime = clock_;
}

void MemFileSystem::Rename(const std::string& from, const std::string& to) {
  auto it = files_.find(from);
  if (it == files_.end()) return;
  auto node = it->second;
  files_.erase(it);
  auto old = files_.find(to);
  if (old != files_.end()) old->second->nlink = 0;
  files_[to] = node;
}

void MemFileSystem::Truncate(const std::string& path, uint64_t size) {
  if (auto node = Resolve(path)) {
    node->data.resize(std::min<uint64_t>(size, node->data.size()));
    clock_ += kSecond;
    node->mtime = clock_;
  }
}

void MemFileSystem::Remove(const std::string& path) {
  auto it = files_.find(path);
  if (it != files_.end()) {
    it->second->nlink = 0;
    files_.erase(it);
    return;
  }
  links_.erase(path);
}

void MemFileSystem::Symlink(const std::string& target, const std::string& link) {
  links_[link] = target;
}

void MemFileSystem::SetMtime(const std::string& path, Nanos mtime) {
  if (auto node = Resolve(path)) node->mtime = mtime;
}

void MemFileSystem::FailReads(const std::string& path, bool fail) {
  if (auto node = Resolve(path)) node->fail_reads = fail;
}

std::vector<std::string> MemFileSystem::Glob(const std::string& pattern) {
  std::vector<std::string> out;
  auto add = [&](const std::string& path) {
    if (::fnmatch(pattern.c_str(), path.c_str(), FNM_PATHNAME) == 0) out.push_back(path);
  };
  for (const auto& entry : files_) add(entry.first);
  for (const auto& entry : links_) add(entry.first);
  return out;
}

bool MemFileSystem::Stat(const std::string& path, FileStat* st) {
  auto node = Resolve(path);
  if (!node) return false;
  StatOf(*node, st);
  return true;
}

std::string MemFileSystem::RealPath(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 8; ++hops) {
    if (files_.count(p)) return p;
    auto l = links_.find(p);
    if (l == links_.end()) return "";
    p = l->second;
  }
  return "";
}

std::vector<std::string> MemFileSystem::ListDir(const std::string& dir) {
  std::vector<std::string> out;
  auto add = [&](const std::string& path) {
    const size_t slash = path.find_last_of('/');
    if (slash != std::string::npos && path.compare(0, slash, dir) == 0 && slash == dir.size()) {
      out.push_back(path);
    }
  };
  for (const auto& entry : files_) add(entry.first);
  for (const auto& entry : links_) add(entry.first);
  return out;
}

std::unique_ptr<ReadableFile> MemFileSystem::Open(const std::string& path) {
  auto node = Resolve(path);
  if (!node) return nullptr;
  return std::make_unique<MemFile>(std::move(node));
}

std::unique_ptr<Watcher> MemFileSystem::NewWatcher() { return std::make_unique<SilentWatcher>(); }

}  // namespace qw
