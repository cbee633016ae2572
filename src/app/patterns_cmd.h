// `quorumwatch patterns test`: runs the test lines of pattern files.
#pragma once

#include <string>
#include <vector>

#include "match/pattern_file.h"

namespace qw::app {

// Checks one loaded pattern file's tests; appends "file:line: problem"
// strings to `problems`. Returns the number of test lines run.
int TestPatternFile(const match::PatternFile& pf, std::vector<std::string>* problems);
// Fingerprints must be specific: none may be on another family's test line.
int CheckFingerprints(const std::vector<const match::PatternFile*>& files,
                      std::vector<std::string>* problems);

// Files given, or every built-in file (or those in patterns_dir). Prints a
// line per file and each problem; returns the exit status.
int RunPatternsTest(const std::vector<std::string>& files, const std::string& patterns_dir);

}  // namespace qw::app

namespace qw::app {

// `patterns export --chain NAME [--format re2|mtail]`: the family's rules as
// one RE2 regex a line (for `rg -f`), or an mtail program with one counter
// per rule plus `quorumwatch_lines_matched`, counting each line once.
int RunPatternsExport(const std::string& chain, const std::string& format,
                      const std::string& patterns_dir, const std::string& config_path);

// The mtail program text for a pattern file.
std::string MtailProgram(const match::PatternFile& pf);

}  // namespace qw::app
