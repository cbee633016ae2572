// `quorumwatch bans list|hold|release|unban`: operator control of bans on a
// state directory (README.md, "Ban controller"; the rails and holds:
// docs/DETECTION.md, "Bans"). `list` reads the checkpoint and the ban
// outboxes; the others submit a request that the running instance applies
// (app/control.h) and wait for its outcome.
#pragma once

#include <string>

namespace qw::app {

struct BansArgs {
  std::string op;          // list | hold | release | unban
  std::string node;        // pod, namespace/pod or chain|namespace/pod
  std::string config_path; // state_dir from the configuration ...
  std::string state_dir;   // ... or given directly
  std::string format = "text";  // list: text | json
  double wait_seconds = 10;
};

// Returns the process exit status: 0 done, 1 refused or failed, 3 queued
// (no instance running: the request waits for the next start).
int RunBans(const BansArgs& args);

}  // namespace qw::app
