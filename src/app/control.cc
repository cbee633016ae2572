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
#include <nlohmann/json.hpp>
#include <thread>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/json.h"

namespace qw::app {
namespace {

using Json = nlohmann::ordered_json;

std::string ControlDir(const std::string& state_dir) { return state_dir + "/control"; }

}  // namespace

// The request a file's text holds, or what is wrong with it.
Result<ControlRequest> ParseRequest(const std::string& text) {
  auto doc = ParseJson(text);
  if (!doc) return Fail("not JSON: " + doc.error().message);
  if (!doc->is_object()) return Fail("not a JSON object");
  auto op = doc->find("op");
  auto node = doc->find("node");
  if (op == doc->end() || !op->is_string()) return Fail("no \"op\" string");
  if (node == doc->end() || !node->is_string() || node->get_ref<const std::string&>().empty()) {
    return Fail("no \"node\" string");
  }
  ControlRequest r;
  r.op = op->get<std::string>();
  r.node = node->get<std::string>();
  if (r.op != "hold" && r.op != "release" && r.op != "unban") {
    return Fail("op \"" + ToValidUtf8(r.op) + "\" is not hold, release or unban");
  }
  return r;
}

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
  Json request = Json::object();
  request.emplace("op", op);
  request.emplace("node", node);
  std::string text = DumpJson(request) + "\n";
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
  for (const auto& name : names) {
    auto text = ReadWholeFile(dir + "/" + name + ".json");
    Result<ControlRequest> r =
        text ? ParseRequest(*text) : Fail("cannot read: " + text.error().message);
    if (!r) {
      // Answered and removed, so a bad file never blocks the requests after it.
      if (errors != nullptr) {
        errors->push_back(dir + "/" + name + ".json: not a valid request (" + r.error().message +
                          "); removed");
      }
      CompleteRequest(state_dir, ControlRequest{name, "", ""},
                      "error: not a valid request (" + r.error().message + ")");
      continue;
    }
    r->name = name;
    out.push_back(std::move(*r));
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
