#include "app/replay.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "app/config.h"
#include "app/progress.h"
#include "app/report.h"
#include "common/version.h"
#include "common/log.h"
#include "app/topology.h"
#include "pipeline/replay.h"
#include "sink/event_sink.h"
#include "source/byte_source.h"

namespace qw::app {
namespace {

void Error(const std::string& msg) { LogLine(msg); }

// The sinks see only events inside --since/--until.
class WindowSink : public sink::EventSink {
 public:
  WindowSink(sink::EventSink* inner, Nanos since, Nanos until)
      : inner_(inner), since_(since), until_(until) {}
  void Write(const Event& e) override {
    if ((since_ == kNoTime || e.time >= since_) && (until_ == kNoTime || e.time < until_)) {
      inner_->Write(e);
    }
  }
  void Flush() override { inner_->Flush(); }

 private:
  sink::EventSink* inner_;
  Nanos since_, until_;
};

// An RFC 3339 time of --since/--until; kNoTime when `text` is empty.
bool ParseWindowTime(const std::string& flag, const std::string& text, Nanos* out) {
  *out = kNoTime;
  if (text.empty()) return true;
  size_t used = 0;
  *out = ParseRfc3339(text, &used);
  if (*out == kNoTime || used != text.size()) {
    Error(flag + " " + text + ": not a time; give RFC 3339, e.g. 2025-03-11T14:05:00Z");
    return false;
  }
  return true;
}

}  // namespace

int RunReplay(const ReplayArgs& args) {
  auto registry_or = LoadRegistry(args.patterns_dir);
  if (!registry_or) {
    Error(registry_or.error().message);
    return 1;
  }
  match::Registry& registry = **registry_or;
  Config config;
  if (!args.config_path.empty()) {
    auto c = LoadConfig(args.config_path);
    if (!c) {
      Error(c.error().message);
      return 1;
    }
    config = std::move(*c);
    if (auto ok = CheckFamilies(config, registry); !ok) {
      Error(ok.error().message);
      return 1;
    }
  }
  if (args.files.empty()) {
    Error("replay needs at least one log file");
    return 2;
  }
  if (!args.node_name.empty() && args.files.size() != 1) {
    Error("--node names the node of a single file; give one file");
    return 2;
  }

  Nanos since = kNoTime, until = kNoTime;
  if (!ParseWindowTime("--since", args.since, &since) ||
      !ParseWindowTime("--until", args.until, &until)) {
    return 2;
  }
  if (since != kNoTime && until != kNoTime && until <= since) {
    Error("--until must be after --since");
    return 2;
  }

  record::Routing routing = RoutingFrom(config, registry);
  routing.node_override = args.node_name;
  if (args.chain != "auto") {
    // The chain named on the command line; a configured chain, a family
    // name or an alias also fixes the family.
    routing.forced_chain = args.chain;
    const ChainConfig* cc = config.FindChain(args.chain);
    routing.forced_family = registry.Find(cc != nullptr ? cc->family : args.chain);
  }

  // Thousands of files under a low `ulimit -n`: descriptors are shared out
  // (least recently read given back, reopened at their offset).
  source::OpenFiles open_files(source::OpenFiles::ForThisProcess());
  std::vector<pipeline::ReplayInput> inputs;
  for (const auto& path : args.files) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      Error(path + ": cannot open: " + std::strerror(errno));
      return 1;
    }
    if (S_ISDIR(st.st_mode)) {
      Error(path + ": is a directory; give log files");
      return 1;
    }
    auto src = source::OpenFile(path, &open_files);
    if (!src) {
      Error(src.error().message);
      return 1;
    }
    pipeline::ReplayInput in;
    in.path = path;
    in.bytes = std::move(*src);
    in.mtime = static_cast<Nanos>(st.st_mtim.tv_sec) * kSecond + st.st_mtim.tv_nsec;
    in.size = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
    inputs.push_back(std::move(in));
  }

  std::FILE* events_file = nullptr;
  if (!args.events_path.empty()) {
    events_file = std::fopen(args.events_path.c_str(), "w");
    if (events_file == nullptr) {
      Error(args.events_path + ": cannot write: " + std::strerror(errno));
      return 1;
    }
  }
  sink::OutputOptions to_stdout;
  to_stdout.name = "stdout";
  sink::JsonlSink jsonl_stdout(stdout, ComponentCounters::Detached(), to_stdout);
  sink::TextSink text_stdout(stdout, ComponentCounters::Detached(), to_stdout);
  std::unique_ptr<sink::JsonlSink> jsonl_file;
  std::vector<sink::EventSink*> sinks;
  sinks.push_back(args.format == "jsonl" ? static_cast<sink::EventSink*>(&jsonl_stdout)
                                         : &text_stdout);
  if (events_file != nullptr) {
    sink::OutputOptions to_file;
    to_file.name = args.events_path;
    jsonl_file = std::make_unique<sink::JsonlSink>(events_file, ComponentCounters::Detached(),
                                                   std::move(to_file));
    sinks.push_back(jsonl_file.get());
  }

  // Only events inside the window are written; the report sees them all
  // (a condition that began before --since is shown from the window's start).
  std::vector<std::unique_ptr<WindowSink>> windowed;
  if (since != kNoTime || until != kNoTime) {
    for (auto*& s : sinks) {
      windowed.push_back(std::make_unique<WindowSink>(s, since, until));
      s = windowed.back().get();
    }
  }
  std::unique_ptr<Report> report;
  if (!args.report_path.empty()) {
    Report::Options ro;
    ro.since = since;
    ro.until = until;
    ro.files = args.files;
    ro.generator = "quorumwatch " + std::string(kVersion);
    report = std::make_unique<Report>(std::move(ro));
    sinks.push_back(report.get());
  }

  pipeline::ReplayOptions opt;
  opt.since = since;
  opt.until = until;
  opt.observer = report.get();
  opt.threads = args.threads > 0
                    ? args.threads
                    : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  opt.log = Error;
  // Progress on a terminal only, after a second (QUORUMWATCH_PROGRESS_AFTER_MS
  // sets another delay: the tests use 0), cleared at the end.
  Nanos delay = kSecond;
  if (const char* ms = std::getenv("QUORUMWATCH_PROGRESS_AFTER_MS"); ms != nullptr && *ms != '\0') {
    delay = static_cast<Nanos>(std::strtoll(ms, nullptr, 10)) * kMillisecond;
  }
  ProgressLine progress(stderr, SteadyNow(), delay);
  if (!args.quiet && ::isatty(STDERR_FILENO)) {
    opt.progress = [&progress](const pipeline::ReplayProgress& p) { progress.Update(p, SteadyNow()); };
  }
  ConfigTopology topology(config, registry);
  auto started = std::chrono::steady_clock::now();
  pipeline::ReplayResult r =
      pipeline::Replay(registry, routing, topology, std::move(inputs), sinks, opt);
  progress.Finish();
  if (args.stats) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::string prefilter = "none";
    for (size_t i = 0; i < registry.size(); ++i) {
      bool used = false;
      for (const auto& n : r.summary) used = used || n.family == registry.file(i).family;
      if (!used) continue;
      prefilter = registry.Prefilter(i) ? match::HsDatabase::Engine() : "re2-set";
      std::string note = registry.prefilter_note(i);
      if (!note.empty()) prefilter += " (" + note + ")";
    }
    std::fprintf(stderr,
                 "quorumwatch: stats: prefilter=%s prefilter_fallbacks=%d threads=%d records=%llu "
                 "matched=%llu batches=%llu seconds=%.3f records_per_second=%.0f\n",
                 prefilter.c_str(), registry.prefilter_fallbacks(), opt.threads, static_cast<unsigned long long>(r.records),
                 static_cast<unsigned long long>(r.matched),
                 static_cast<unsigned long long>(r.batches), secs,
                 secs > 0 ? static_cast<double>(r.records) / secs : 0.0);
  }
  if (r.prefilter_failures > 0) {
    Error("the prefilter's DFA ran out of memory " + std::to_string(r.prefilter_failures) +
          " times (each line was matched rule by rule instead; nothing was missed)");
  }
  int status = 0;
  for (const auto& f : r.files) {
    if (!f.error.empty()) {
      Error(f.path + ": read error: " + f.error);
      status = 1;
      continue;
    }
    if (f.counts.lines_rejected > 0 || f.counts.lines_cut > 0) {
      Error(f.path + ": " + std::to_string(f.counts.lines_rejected) + " lines skipped (binary, " +
            "invalid UTF-8 or not " + record::LogFormatName(f.format) + "), " +
            std::to_string(f.counts.lines_cut) + " cut at the line limit");
    }
  }
  if (status != 0) return status;
  const uint64_t unwritten = jsonl_stdout.write_errors() + text_stdout.write_errors() +
                             (jsonl_file ? jsonl_file->write_errors() : 0);
  if (unwritten > 0) {
    Error(std::to_string(unwritten) + " write(s) of the events failed (see above)");
    return 1;
  }
  if (args.format != "jsonl") {
    std::string table = "\n" + sink::SummaryTable(r.summary);
    std::fwrite(table.data(), 1, table.size(), stdout);
  }
  std::fflush(stdout);
  if (events_file != nullptr) std::fclose(events_file);
  if (report != nullptr) {
    std::string page = report->Page(r.end, r.summary);
    std::FILE* f = std::fopen(args.report_path.c_str(), "w");
    const bool ok = f != nullptr && std::fwrite(page.data(), 1, page.size(), f) == page.size();
    if (f != nullptr && std::fclose(f) != 0) f = nullptr;
    if (!ok || f == nullptr) {
      Error(args.report_path + ": cannot write: " + std::strerror(errno));
      return 1;
    }
  }
  if (!args.summary_path.empty()) {
    std::FILE* f = std::fopen(args.summary_path.c_str(), "w");
    if (f == nullptr) {
      Error(args.summary_path + ": cannot write: " + std::strerror(errno));
      return 1;
    }
    std::string json = sink::SummaryJson(r.summary);
    std::fwrite(json.data(), 1, json.size(), f);
    std::fclose(f);
  }
  return 0;
}

}  // namespace qw::app
