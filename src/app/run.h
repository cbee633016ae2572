// `quorumwatch run`: live tailing (DaemonSet sidecar). Reads history on
// event time like replay, then wall-clock ticks take over; checkpoints file
// offsets and detector state in state_dir; SIGTERM/SIGINT stop gracefully,
// SIGHUP reloads configuration and patterns (a bad new one is refused and
// the old one kept).
#pragma once

#include <string>

namespace qw::app {

struct RunArgs {
  std::string config_path;
  std::string patterns_dir;
  int threads = 0;  // 0: one per core, at most 4
  bool stats = false;  // a figures line on stderr every 10 s
};

// Returns the process exit status.
int RunLive(const RunArgs& args);

}  // namespace qw::app
