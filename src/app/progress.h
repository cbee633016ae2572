// Progress of a long replay on a terminal: one line on stderr, rewritten in
// place, shown only after the replay has run a while, and cleared at the
// end. Never on stdout (events and the summary go there).
#pragma once

#include <cstdio>
#include <string>

#include "common/time.h"
#include "pipeline/replay.h"

namespace qw::app {

// "replay: 51.2 MB of 102.4 MB (50 %), 1,234,567 lines/s, 0:02 left"; with
// no known total: "replay: 51.2 MB read, 1,234,567 lines/s". `elapsed`:
// since the replay began (> 0).
std::string FormatProgress(const pipeline::ReplayProgress& p, Nanos elapsed);

class ProgressLine {
 public:
  // `out`: where (stderr); `delay`: nothing is shown before the replay has
  // run this long; `every`: at most one update per this.
  ProgressLine(std::FILE* out, Nanos started, Nanos delay = kSecond, Nanos every = 250 * kMillisecond)
      : out_(out), started_(started), delay_(delay), every_(every) {}
  void Update(const pipeline::ReplayProgress& p, Nanos now);
  // Clears the line if one was shown.
  void Finish();
  bool shown() const { return shown_; }

 private:
  std::FILE* out_;
  Nanos started_, delay_, every_;
  Nanos last_ = 0;
  bool shown_ = false;
};

}  // namespace qw::app
