// What a sink is built from: its configuration block (parsed and checked by
// app/config.cc) and the context of the running process.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/time.h"

namespace qw::sink {

class HttpTransport;

struct SinkConfig {
  std::string type;  // jsonl | alertmanager | ban | metrics
  std::string path;  // jsonl
  // alertmanager
  std::vector<std::string> urls;
  Nanos resend_interval = 60 * kSecond;
  std::map<std::string, std::string> labels;
  std::string generator_url;  // generatorURL of every alert ("" = none)
  // ban
  std::string action;  // webhook | exec
  std::string url;
  std::string secret_file, secret_env;
  bool dry_run = false;
  std::vector<std::string> command;
  Nanos timeout = 10 * kSecond;  // one delivery attempt (HTTP request, program run)
  // metrics
  std::string listen;
  // Where the block starts in the configuration file (for messages).
  std::string file;
  int line = 0;
};

// Built once per configuration life by app/run.cc; outlives every sink.
struct SinkContext {
  std::string state_dir;               // exists, writable
  Metrics* metrics = nullptr;          // never null in `run`
  const Clock* clock = nullptr;        // never null
  // Operator-facing log line (stderr); thread-safe. Never pass secrets.
  std::function<void(const std::string&)> log;
  // Tests may inject a transport; null means libcurl (one per sink thread).
  std::function<std::unique_ptr<HttpTransport>()> make_transport;
};

}  // namespace qw::sink
