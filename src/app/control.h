// Operator control of a running instance through its state directory
// (`quorumwatch bans hold|release|unban`), and the lock that keeps two
// instances off one state directory.
//
// A request is a small JSON file state_dir/control/<name>.json, written
// atomically (tmp + rename) by the command; the running instance picks
// requests up in name order (names start with the submit time), applies them
// on its detector thread, writes state_dir/control/<name>.done with the
// outcome and removes the request. Requests submitted while no instance runs
// wait for the next start.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/time.h"

namespace qw::app {

struct ControlRequest {
  std::string name;  // file name without extension
  std::string op;    // hold | release | unban
  std::string node;  // node reference: pod, namespace/pod or chain|namespace/pod
};

// The request a control file's text holds, or what is wrong with it
// (exposed for the fuzz target).
[[nodiscard]] Result<ControlRequest> ParseRequest(const std::string& text);

// Writes a request; returns its name.
[[nodiscard]] Result<std::string> SubmitRequest(const std::string& state_dir, const std::string& op,
                                                const std::string& node);
// Requests waiting, oldest first. Unreadable ones are answered with an error
// .done file and removed (`errors` receives a line for each).
std::vector<ControlRequest> PendingRequests(const std::string& state_dir,
                                            std::vector<std::string>* errors);
// Records the outcome (one line of text) and removes the request.
void CompleteRequest(const std::string& state_dir, const ControlRequest& r,
                     const std::string& outcome);
// The outcome of a request once done, waiting up to `timeout`.
std::optional<std::string> WaitForOutcome(const std::string& state_dir, const std::string& name,
                                          Nanos timeout);

// An exclusive lock on state_dir/lock, held while an instance runs.
class StateLock {
 public:
  [[nodiscard]] static Result<StateLock> Acquire(const std::string& state_dir);
  StateLock(StateLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  StateLock& operator=(StateLock&&) = delete;
  ~StateLock();

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// True when an instance holds the lock of `state_dir`.
bool InstanceRunning(const std::string& state_dir);

}  // namespace qw::app
