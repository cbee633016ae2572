#include "app/run.h"

#include <malloc.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <thread>

#include "app/config.h"
#include "app/control.h"
#include "app/topology.h"
#include "common/log.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "common/metrics.h"
#include "pipeline/live.h"
#include "sink/alertmanager_sink.h"
#include "sink/ban_sink.h"
#include "sink/event_sink.h"
#include "sink/metrics_sink.h"

namespace qw::app {
namespace {

// Signals: flags, and one eventfd made before the handlers are installed
// and never closed, so a handler never writes to a descriptor that was
// closed and reused.
std::atomic<int> g_stop{0};
std::atomic<int> g_reload{0};
int g_wake_fd = -1;

void OnSignal(int sig) {
  if (sig == SIGHUP) {
    g_reload.store(1);
  } else {
    g_stop.store(1);
  }
  if (g_wake_fd >= 0) {
    uint64_t one = 1;
    ssize_t r = ::write(g_wake_fd, &one, sizeof one);
    (void)r;
  }
}

void Log(const std::string& msg) { LogLine(msg); }

struct Loaded {
  Config config;
  std::unique_ptr<match::Registry> registry;
};

Result<Loaded> Load(const RunArgs& args) {
  Loaded l;
  auto c = LoadConfig(args.config_path);
  if (!c) return tl::unexpected(c.error());
  l.config = std::move(*c);
  auto r = LoadRegistry(args.patterns_dir);
  if (!r) return tl::unexpected(r.error());
  l.registry = std::move(*r);
  if (auto ok = CheckFamilies(l.config, *l.registry); !ok) return tl::unexpected(ok.error());
  if (l.config.sources.empty()) return Fail(l.config.path + ":1: 'sources' is empty: nothing to read");
  bool jsonl = false;
  for (const auto& s : l.config.sinks) jsonl = jsonl || s.type == "jsonl";
  if (!jsonl) Log(l.config.path + ": no jsonl sink: events go to standard output");
  return l;
}

// The configured sinks, owned for one run.
struct Sinks {
  std::vector<std::unique_ptr<std::FILE, int (*)(std::FILE*)>> files;
  std::vector<std::unique_ptr<sink::EventSink>> owned;
  pipeline::LiveSinks live;
  ~Sinks() {
    for (auto& o : owned) o->Close();
  }
};

Result<std::unique_ptr<Sinks>> MakeSinks(const Config& config, Metrics* metrics) {
  auto out = std::make_unique<Sinks>();
  sink::SinkContext ctx;
  ctx.state_dir = config.state_dir;
  ctx.metrics = metrics;
  ctx.clock = SystemClock::Get();
  ctx.log = [](const std::string& msg) { Log(msg); };
  bool has_jsonl = false;
  for (const auto& s : config.sinks) {
    Result<std::unique_ptr<sink::EventSink>> made = Fail("");
    if (s.type == "jsonl") {
      has_jsonl = true;
      std::FILE* f =
          s.path == "/dev/stdout" || s.path == "-" ? stdout : std::fopen(s.path.c_str(), "a");
      if (f == nullptr) {
        made = Fail(s.path + ": cannot open for appending: " + std::strerror(errno));
      } else {
        if (f != stdout) out->files.emplace_back(f, &std::fclose);
        sink::OutputOptions oo;
        oo.name = f == stdout ? "stdout" : s.path;
        oo.log = ctx.log;
        made = std::unique_ptr<sink::EventSink>(std::make_unique<sink::JsonlSink>(
            f, ComponentCounters::For(metrics, "sink", "jsonl"), std::move(oo)));
      }
    } else if (s.type == "alertmanager") {
      made = sink::AlertmanagerSink::Create(s, ctx);
    } else if (s.type == "ban") {
      auto b = sink::BanSink::Create(s, ctx);
      if (b) out->live.bans.push_back(b->get());
      made = b ? Result<std::unique_ptr<sink::EventSink>>(std::move(*b))
               : tl::unexpected(b.error());
    } else if (s.type == "metrics") {
      made = sink::MetricsSink::Create(s, ctx);
    }
    if (!made) return tl::unexpected(made.error());
    out->owned.push_back(std::move(*made));
    out->live.all.push_back(out->owned.back().get());
  }
  if (!has_jsonl) {
    sink::OutputOptions oo;
    oo.name = "stdout";
    oo.log = ctx.log;
    out->owned.push_back(std::make_unique<sink::JsonlSink>(
        stdout, ComponentCounters::For(metrics, "sink", "jsonl"), std::move(oo)));
    out->live.all.push_back(out->owned.back().get());
  }
  return out;
}

pipeline::LiveOptions LiveOptionsFrom(const Config& config, const RunArgs& args) {
  pipeline::LiveOptions o;
  o.stats_every = args.stats ? 10 * kSecond : 0;
  for (const auto& sc : config.sources) {
    if (sc.type == "kafka") {
      pipeline::KafkaSourceOptions k;
      k.consumer.brokers = sc.kafka.brokers;
      k.consumer.topics = sc.kafka.topics;
      k.consumer.topic_pattern = sc.kafka.topic_pattern;
      k.consumer.group = sc.kafka.group;
      k.consumer.properties = sc.kafka.properties;
      k.state_topic = sc.kafka.state_topic;
      k.by_chain_topic = sc.kafka.by_chain_topic;
      k.consumer.log = [](const std::string& msg) { Log(msg); };
      record::ParseEnvelopeFormat(sc.kafka.format, &k.format);
      k.fields.message = sc.kafka.field_message;
      k.fields.time = sc.kafka.field_time;
      k.fields.namespace_ = sc.kafka.field_namespace;
      k.fields.pod = sc.kafka.field_pod;
      k.fields.container = sc.kafka.field_container;
      k.max_line_bytes = static_cast<size_t>(sc.max_line_bytes);
      o.kafka.push_back(std::move(k));
      continue;
    }
    pipeline::FileSourceOptions f;
    f.include = sc.include;
    f.exclude = sc.exclude;
    record::ParseLogFormat(sc.format, &f.format);
    f.read_from_end = sc.read_from == "end";
    f.max_line_bytes = static_cast<size_t>(sc.max_line_bytes);
    f.poll_interval = sc.poll_interval;
    o.sources.push_back(std::move(f));
  }
  o.state_dir = config.state_dir;
  o.checkpoint_interval = config.checkpoint_interval;
  o.input_outage_after = config.input_outage_after;
  o.threads = args.threads > 0
                  ? args.threads
                  : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  return o;
}

enum class Outcome { kStop, kReload, kError };

// One life of the pipeline with one configuration. `previous`: the
// configuration that ran before a reload, kept until this one has started
// (it runs again if this one cannot), then freed.
Outcome RunWith(const RunArgs& args, Loaded& loaded, std::unique_ptr<Loaded>* next,
                std::unique_ptr<Loaded>* previous, Metrics* metrics, uint64_t* decided) {
  const Config& config = loaded.config;
  if (::mkdir(config.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    Log("cannot create state_dir " + config.state_dir + ": " + std::strerror(errno));
    return Outcome::kError;
  }
  auto lock = StateLock::Acquire(config.state_dir);
  if (!lock) {
    Log(lock.error().message);
    return Outcome::kError;
  }
  auto sinks = MakeSinks(config, metrics);
  if (!sinks) {
    Log(sinks.error().message);
    return Outcome::kError;
  }
  record::Routing routing = RoutingFrom(config, *loaded.registry);
  ConfigTopology topology(config, *loaded.registry);

  pipeline::LiveContext ctx;
  ctx.fs = FileSystem::Default();
  ctx.metrics = metrics;
  ctx.decided_total = decided;
  ctx.log = Log;
  ctx.wake_fd = g_wake_fd;
  ctx.stop = [] { return g_stop.load() != 0; };
  ctx.running = [previous]() {
    if (!*previous) return;
    // Its compiled patterns and rules are several MiB: given back now, so
    // reloads do not pile up memory.
    previous->reset();
    ::malloc_trim(0);
  };
  ctx.reload = [&]() {
    if (!g_reload.exchange(0)) return false;
    auto fresh = Load(args);
    if (!fresh) {
      Log("reload refused, keeping the running configuration: " + fresh.error().message);
      return false;
    }
    *next = std::make_unique<Loaded>(std::move(*fresh));
    Log("reloading " + args.config_path);
    return true;
  };
  std::set<std::string> taken;  // requests handed on (answered later)
  ctx.requests = [&]() {
    std::vector<std::string> bad;
    std::vector<pipeline::OperatorRequest> out;
    for (auto& r : PendingRequests(config.state_dir, &bad)) {
      if (taken.insert(r.name).second) out.push_back({r.name, r.op, r.node});
    }
    for (const auto& b : bad) Log(b);
    return out;
  };
  ctx.answer = [&config](const pipeline::OperatorRequest& r, const std::string& outcome) {
    CompleteRequest(config.state_dir, ControlRequest{r.name, r.op, r.node}, outcome);
  };

  auto outcome = pipeline::RunLive(LiveOptionsFrom(config, args), *loaded.registry, routing,
                                   topology, (*sinks)->live, ctx);
  if (!outcome) {
    Log(outcome.error().message);
    return Outcome::kError;
  }
  return *outcome == pipeline::LiveOutcome::kReload ? Outcome::kReload : Outcome::kStop;
}

}  // namespace

int RunLive(const RunArgs& args) {
  // One malloc arena for every thread. A sidecar's memory is paid on every
  // node: with an arena per thread, the transient allocations of the
  // configuration's compile, checkpoints and statuses (made on the reading
  // thread or the detector thread, as batches go) stay in several arenas
  // and the peak RSS wanders by several MB from run to run. Its threads
  // allocate little once running, so the one lock costs nothing measurable.
  ::mallopt(M_ARENA_MAX, 1);
  auto loaded = Load(args);
  if (!loaded) {
    Log(loaded.error().message);
    return 1;
  }
  if (g_wake_fd < 0) g_wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  auto current = std::make_unique<Loaded>(std::move(*loaded));
  std::unique_ptr<Loaded> last_good;  // the configuration before a reload, until the new one runs
  Metrics metrics;                    // telemetry keeps counting across reloads
  uint64_t decided = 0;               // so does the count of decided events
  while (true) {
    std::unique_ptr<Loaded> next;
    Outcome o = RunWith(args, *current, &next, &last_good, &metrics, &decided);
    if (o == Outcome::kError) {
      // A reloaded configuration that cannot start (a sink's port taken, a
      // secret missing) must not take the instance down: the one that ran
      // before goes on. At the first start there is none: exit.
      if (!last_good) return 1;
      Log("reload refused, the new configuration could not start; running the previous one "
          "again");
      current = std::move(last_good);
      continue;
    }
    if (o == Outcome::kStop) return 0;
    last_good = std::move(current);
    current = std::move(next);
  }
}

}  // namespace qw::app
