// `quorumwatch replay`: captured logs through the pipeline, on event time.
#pragma once

#include <string>
#include <vector>

namespace qw::app {

struct ReplayArgs {
  std::string chain = "auto";
  int threads = 0;  // 0: one per core, at most 4
  std::string format = "text";
  std::string events_path;
  std::string summary_path;
  std::string config_path;
  std::string node_name;
  std::string patterns_dir;
  bool stats = false;  // print pipeline figures on stderr
  bool quiet = false;  // no progress line on a terminal
  std::string report_path;  // --report FILE.html ("" none)
  std::string since, until;  // RFC 3339 times ("" open)
  std::vector<std::string> files;
};

// Returns the process exit status (0 done, 1 bad input or configuration).
int RunReplay(const ReplayArgs& args);

}  // namespace qw::app
