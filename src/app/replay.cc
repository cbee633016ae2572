#include "app/replay.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <map>
#include <thread>

#include "app/config.h"
#include "app/names.h"
#include "pipeline/pipeline.h"
#include "sink/event_sink.h"
#include "source/byte_source.h"

namespace qw::app {
namespace {

constexpr size_t kDetectSamples = 200;

struct StreamPlan {
  std::string path;
  StreamName name;
  std::unique_ptr<source::StreamReader> reader;
  int family = -1;
  bool signer = false;
  std::string chain;  // chain name
  int32_t tz = 0;
};

void Error(const std::string& msg) { std::fprintf(stderr, "quorumwatch: %s\n", msg.c_str()); }

}  // namespace

detect::ChainSpec ChainSpecFor(const Config& config, const match::Registry& registry,
                               const std::string& name, int family) {
  detect::ChainSpec spec;
  spec.name = name;
  const ChainConfig* cc = config.FindChain(name);
  if (cc != nullptr) family = registry.Find(cc->family);
  spec.family = family >= 0 ? registry.file(static_cast<size_t>(family)).family : "unknown";
  if (family >= 0) {
    const auto& d = registry.file(static_cast<size_t>(family)).defaults;
    spec.thresholds.stall_after = d.stall_after;
    spec.thresholds.max_lag = d.max_lag;
    spec.thresholds.missed_window = d.missed_window;
    spec.thresholds.missed_max = d.missed_max;
  }
  if (cc != nullptr) {
    cc->overrides.ApplyTo(&spec.thresholds);
    spec.signer_groups = cc->signer_groups;
  }
  return spec;
}

std::string DefaultChain(const Config& config, const match::Registry& registry, int family,
                         const std::string& fallback) {
  const ChainConfig* only = nullptr;
  int count = 0;
  for (const auto& cc : config.chains) {
    if (family >= 0 && registry.Find(cc.family) == family) {
      only = &cc;
      ++count;
    }
  }
  return count == 1 ? only->name : fallback;
}

Result<std::unique_ptr<match::Registry>> LoadRegistry(const std::string& dir) {
  if (!dir.empty()) return match::Registry::LoadDir(dir);
  return match::Registry::LoadEmbedded();
}

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
    for (const auto& ch : config.chains) {
      if (registry.Find(ch.family) < 0) {
        Error(config.path + ":" + std::to_string(ch.line) + ": chain '" + ch.name +
              "': unknown family '" + ch.family + "'");
        return 1;
      }
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

  // The chain named on the command line may fix the family.
  int forced_family = -1;
  std::string forced_chain;
  if (args.chain != "auto") {
    forced_chain = args.chain;
    if (const ChainConfig* cc = config.FindChain(args.chain)) {
      forced_family = registry.Find(cc->family);
    } else {
      forced_family = registry.Find(args.chain);
    }
  }

  std::vector<StreamPlan> plans;
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
    auto src = source::OpenFile(path);
    if (!src) {
      Error(src.error().message);
      return 1;
    }
    StreamPlan p;
    p.path = path;
    p.name = NameFromPath(path);
    if (!args.node_name.empty()) {
      p.name.pod = args.node_name;
    }
    source::StreamOptions opt;
    Nanos mtime = static_cast<Nanos>(st.st_mtim.tv_sec) * kSecond + st.st_mtim.tv_nsec;
    opt.default_year = YearOf(mtime);
    opt.fallback_time = mtime;
    // Bounded memory with many files: the read buffers and record chunks of
    // all streams share about 24 MiB (each between 32 KiB and 1 MiB).
    size_t per = std::clamp<size_t>((24u << 20) / (args.files.size() * 2), 32u << 10, 1u << 20);
    opt.buffer_bytes = per;
    opt.chunk_bytes = std::min<size_t>(per, 256u << 10);
    p.reader = std::make_unique<source::StreamReader>(std::move(*src), opt);
    plans.push_back(std::move(p));
  }

  // Families: forced, from a stream rule, or detected from the first records.
  for (auto& p : plans) {
    p.reader->NextChunk();
    if (!p.reader->error().empty()) {
      Error(p.path + ": cannot read: " + p.reader->error());
      return 1;
    }
    const StreamRule* rule = nullptr;
    if (p.name.kubernetes) {
      for (const auto& r : config.streams) {
        if (r.Matches(p.name.namespace_, p.name.pod, p.name.container)) {
          rule = &r;
          break;
        }
      }
    }
    if (rule != nullptr) {
      p.signer = rule->signer;
      if (!rule->timezone.empty()) ParseTimezone(rule->timezone, &p.tz);
    }
    if (forced_family >= 0) {
      p.family = forced_family;
    } else if (rule != nullptr && !rule->chain.empty() && rule->chain != "auto") {
      if (const ChainConfig* cc = config.FindChain(rule->chain)) {
        p.family = registry.Find(cc->family);
        p.chain = cc->name;
      } else {
        p.family = registry.Find(rule->chain);
        p.chain = rule->chain;
      }
    }
    if (p.family < 0) {
      std::vector<std::string_view> samples;
      for (const auto& r : p.reader->records()) {
        if (samples.size() == kDetectSamples) break;
        samples.push_back(p.reader->text(r));
      }
      auto d = registry.Detect(samples);
      if (d.family < 0) {
        Error(p.path + ": family unknown (" + d.reason +
              "); its lines are counted, not matched. Name it with --chain.");
      }
      p.family = d.family;
    }
    if (p.family >= 0 && registry.file(static_cast<size_t>(p.family)).signer_role) p.signer = true;
    if (!forced_chain.empty()) {
      p.chain = forced_chain;
    } else if (p.chain.empty() && p.family >= 0) {
      p.chain = DefaultChain(config, registry, p.family,
                             registry.file(static_cast<size_t>(p.family)).family);
    } else if (p.chain.empty()) {
      p.chain = p.family >= 0 ? registry.file(static_cast<size_t>(p.family)).family : "unknown";
    }
  }

  // Chains and nodes.
  std::vector<detect::ChainSpec> chains;
  std::map<std::string, int> chain_index;
  auto chain_of = [&](const std::string& name, int family) {
    auto it = chain_index.find(name);
    if (it != chain_index.end()) return it->second;
    detect::ChainSpec spec = ChainSpecFor(config, registry, name, family);
    int index = static_cast<int>(chains.size());
    chains.push_back(std::move(spec));
    chain_index.emplace(name, index);
    return index;
  };
  // Daemon streams first, so that a signer stream finds its pod's node.
  struct NodeKey {
    std::string chain, ns, pod;
    bool operator<(const NodeKey& o) const {
      return std::tie(chain, ns, pod) < std::tie(o.chain, o.ns, o.pod);
    }
  };
  std::map<NodeKey, int> node_index;
  std::vector<detect::NodeSpec> node_specs;
  std::vector<int> stream_node(plans.size(), -1);
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < plans.size(); ++i) {
      auto& p = plans[i];
      if (p.signer != (pass == 1)) continue;
      if (p.signer) {
        // Attach to the node of the same pod, on whatever chain it is.
        for (const auto& [key, idx] : node_index) {
          if (key.pod == p.name.pod && key.ns == p.name.namespace_) stream_node[i] = idx;
        }
        if (stream_node[i] >= 0) continue;
        if (!chains.empty() && forced_chain.empty()) p.chain = chains.front().name;
      }
      int c = chain_of(p.chain, p.family);
      NodeKey key{p.chain, p.name.namespace_, p.name.pod};
      auto it = node_index.find(key);
      if (it != node_index.end()) {
        stream_node[i] = it->second;
        continue;
      }
      detect::NodeSpec spec;
      spec.name = p.name.pod;
      spec.namespace_ = p.name.namespace_;
      spec.chain = c;
      spec.thresholds = chains[static_cast<size_t>(c)].thresholds;
      if (const NodeConfig* nc = config.FindNode(p.name.namespace_, p.name.pod)) {
        spec.signer = nc->signer;
        spec.validator_address = nc->validator_address;
        nc->overrides.ApplyTo(&spec.thresholds);
      }
      int idx = static_cast<int>(node_specs.size());
      node_specs.push_back(std::move(spec));
      node_index.emplace(key, idx);
      stream_node[i] = idx;
    }
  }

  // Sinks.
  std::FILE* events_file = nullptr;
  if (!args.events_path.empty()) {
    events_file = std::fopen(args.events_path.c_str(), "w");
    if (events_file == nullptr) {
      Error(args.events_path + ": cannot write: " + std::strerror(errno));
      return 1;
    }
  }
  sink::JsonlSink jsonl_stdout(stdout);
  sink::TextSink text_stdout(stdout);
  std::unique_ptr<sink::JsonlSink> jsonl_file;
  std::vector<sink::EventSink*> sinks;
  sinks.push_back(args.format == "jsonl" ? static_cast<sink::EventSink*>(&jsonl_stdout)
                                         : &text_stdout);
  if (events_file != nullptr) {
    jsonl_file = std::make_unique<sink::JsonlSink>(events_file);
    sinks.push_back(jsonl_file.get());
  }
  sink::EventOrderer orderer(sinks);
  detect::Detector detector(chains, &orderer);
  for (auto& spec : node_specs) detector.AddNode(std::move(spec));

  std::vector<pipeline::ReplayStream> streams;
  // Matchers for message times and continuation rules, owned here (the
  // reader thread), one per stream family.
  std::vector<std::unique_ptr<match::FamilyMatcher>> time_matchers(registry.size());
  for (size_t i = 0; i < plans.size(); ++i) {
    auto& p = plans[i];
    if (p.family >= 0) {
      auto& m = time_matchers[static_cast<size_t>(p.family)];
      if (!m) {
        auto created = match::FamilyMatcher::Create(registry.file(static_cast<size_t>(p.family)));
        if (!created) {
          Error(created.error().message);
          return 1;
        }
        m = std::move(*created);
      }
      p.reader->SetMatcher(m.get());
    }
    detector.AttachStream(stream_node[i]);
    pipeline::ReplayStream rs;
    rs.reader = std::move(p.reader);
    rs.node = stream_node[i];
    rs.family = p.family;
    streams.push_back(std::move(rs));
  }

  pipeline::ReplayOptions opt;
  opt.threads = args.threads > 0
                    ? args.threads
                    : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  if (::isatty(STDERR_FILENO)) {
    opt.progress = [](uint64_t records) {
      std::fprintf(stderr, "\rreplayed %llu records", static_cast<unsigned long long>(records));
    };
  }
  auto started = std::chrono::steady_clock::now();
  auto stats = pipeline::RunReplay(registry, streams, &detector, &orderer, opt);
  if (args.stats) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::string prefilter = "none";
    for (size_t i = 0; i < time_matchers.size(); ++i) {
      if (!time_matchers[i]) continue;
      prefilter = registry.Prefilter(i) ? "hyperscan" : "re2-set";
      std::string note = registry.prefilter_note(i);
      if (!note.empty()) prefilter += " (" + note + ")";
    }
    std::fprintf(stderr,
                 "quorumwatch: stats: prefilter=%s threads=%d records=%llu matched=%llu "
                 "batches=%llu seconds=%.3f records_per_second=%.0f\n",
                 prefilter.c_str(), opt.threads, static_cast<unsigned long long>(stats.records),
                 static_cast<unsigned long long>(stats.matched),
                 static_cast<unsigned long long>(stats.batches), secs,
                 secs > 0 ? static_cast<double>(stats.records) / secs : 0.0);
  }
  if (opt.progress) std::fprintf(stderr, "\n");
  if (stats.prefilter_failures > 0) {
    Error("the prefilter's DFA ran out of memory " + std::to_string(stats.prefilter_failures) +
          " times (each line was matched rule by rule instead; nothing was missed)");
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    const auto& st = streams[i].reader->stats();
    detector.CountLines(streams[i].node, st.lines_read, 0, st.lines_rejected);
    if (!streams[i].reader->error().empty()) {
      Error(plans[i].path + ": read error: " + streams[i].reader->error());
      return 1;
    }
    if (st.lines_rejected > 0 || st.lines_cut > 0) {
      Error(plans[i].path + ": " + std::to_string(st.lines_rejected) + " lines skipped (binary, " +
            "invalid UTF-8 or not " + source::LogFormatName(streams[i].reader->format()) + "), " +
            std::to_string(st.lines_cut) + " cut at the line limit");
    }
  }
  auto summary = detector.Summary();
  if (args.format != "jsonl") {
    std::string table = "\n" + sink::SummaryTable(summary);
    std::fwrite(table.data(), 1, table.size(), stdout);
  }
  std::fflush(stdout);
  if (events_file != nullptr) std::fclose(events_file);
  if (!args.summary_path.empty()) {
    std::FILE* f = std::fopen(args.summary_path.c_str(), "w");
    if (f == nullptr) {
      Error(args.summary_path + ": cannot write: " + std::strerror(errno));
      return 1;
    }
    std::string json = sink::SummaryJson(summary);
    std::fwrite(json.data(), 1, json.size(), f);
    std::fclose(f);
  }
  return 0;
}

}  // namespace qw::app
