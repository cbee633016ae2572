#include "app/control.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <simdjson.h>
#include <thread>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/json.h"

namespace qw::app {
namespace {

std::string ControlDir(const std::string& state_dir) { return state_dir + "/control"; }

}  // namespace

Result<std::string> SubmitRequest(const std::string& state_dir, const std::string& op,
                                  const std::string& node) {
  std::string dir = ControlDir(state_dir);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Fail(dir + ": cannot create: " + std::strerror(errno));
  }
  static std::atomic<int> seq{0};
  char name[64];
  std::snprintf(name, sizeof name, "%020lld-%d-%d",
                static_cast<long long>(SystemClock::Get()->Now()), static_cast<int>(::getpid()),
                seq.fetch_add(1));
  std::string text = "{\"op\":" + JsonString(op) + ",\"node\":" + JsonString(node) + "}\n";
  std::string path = dir + "/" + name + ".json";
  if (auto w = WriteFileAtomic(path, text); !w) return Fail("cannot write " + w.error().message);
  return std::string(name);
}

std::vector<ControlRequest> PendingRequests(const std::string& state_dir,
                                            std::vector<std::string>* errors) {
  std::vector<ControlRequest> out;
  std::string dir = ControlDir(state_dir);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string f = e->d_name;
    if (f.size() > 5 && f.compare(f.size() - 5, 5, ".json") == 0) names.push_back(f.substr(0, f.size() - 5));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  simdjson::dom::parser parser;
  for (const auto& name : names) {
    auto text = ReadWholeFile(dir + "/" + name + ".json");
    ControlRequest r;
    r.name = name;
    simdjson::dom::element doc;
    std::string_view op, node;
    if (!text || parser.parse(*text).get(doc) || doc["op"].get(op) || doc["node"].get(node) ||
        node.empty() || (op != "hold" && op != "release" && op != "unban")) {
      if (errors != nullptr) errors->push_back(dir + "/" + name + ".json: not a valid request; removed");
      CompleteRequest(state_dir, r, "error: not a valid request");
      continue;
    }
    r.op = std::string(op);
    r.node = std::string(node);
    out.push_back(std::move(r));
  }
  return out;
}

void CompleteRequest(const std::string& state_dir, const ControlRequest& r,
                     const std::string& outcome) {
  std::string dir = ControlDir(state_dir);
  (void)WriteFileAtomic(dir + "/" + r.name + ".done", outcome + "\n");
  ::unlink((dir + "/" + r.name + ".json").c_str());
}

std::optional<std::string> WaitForOutcome(const std::string& state_dir, const std::string& name,
                                          Nanos timeout) {
  std::string path = ControlDir(state_dir) + "/" + name + ".done";
  const Nanos deadline = SystemClock::Get()->Now() + timeout;
  while (true) {
    if (auto text = ReadWholeFile(path)) {
      ::unlink(path.c_str());
      while (!text->empty() && text->back() == '\n') text->pop_back();
      return *text;
    }
    if (SystemClock::Get()->Now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<StateLock> StateLock::Acquire(const std::string& state_dir) {
  std::string path = state_dir + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(path + ": cannot open: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return Fail(state_dir + ": another quorumwatch instance uses this state_dir");
  }
  return StateLock(fd);
}

StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

bool InstanceRunning(const std::string& state_dir) {
  std::string path = state_dir + "/lock";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool running = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return running;
}

}  // namespace qw::app
