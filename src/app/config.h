// quorumwatch.yaml: the configuration (README.md, "Configuration").
// Every key has a default; unknown keys and bad values are refused with
// file:line and the reason.
#pragma once

#include <re2/re2.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/time.h"
#include "detect/thresholds.h"
#include "record/naming.h"
#include "sink/sink_config.h"

namespace qw::app {

// Threshold keys that a chain or a node may set; unset ones inherit.
struct ThresholdOverrides {
  std::optional<Nanos> stall_after, ban_after, stable_after, unban_after, replace_window;
  std::optional<int64_t> max_lag, missed_window, missed_max, max_bans;
  std::optional<bool> auto_unban, require_healthy_peer, ban_on_double_sign;
  void ApplyTo(detect::Thresholds* t) const;
};

// A `type: kafka` source (docs/KAFKA.md).
struct KafkaSourceConfig {
  std::vector<std::string> brokers;
  std::vector<std::string> topics;
  std::string topic_pattern;
  std::string group = "quorumwatch";
  std::string format = "auto";  // auto | fluentbit | vector | raw
  // Dotted paths into the envelope; "" = the format's default.
  std::string field_message, field_time, field_namespace, field_pod, field_container;
  std::vector<std::pair<std::string, std::string>> properties;  // librdkafka's, in file order
  std::string state_topic;  // the changelog; "" = none (state_topic: none)
  bool repartition = false;    // records re-keyed by chain into by_chain_topic first
  std::string by_chain_topic;  // "" unless repartition (default <group>-by-chain)
};

struct SourceConfig {
  std::string type = "file";
  KafkaSourceConfig kafka;  // type kafka
  std::vector<std::string> include, exclude;
  std::string format = "auto";
  std::string read_from = "end";
  int64_t max_line_bytes = 1 << 20;
  Nanos poll_interval = 250 * kMillisecond;  // stat every file at least this often
  int line = 0;
};

using record::StreamRule;

struct ChainConfig {
  std::string name;
  std::string family;
  int32_t tz_offset_seconds = 0;
  ThresholdOverrides overrides;
  std::vector<std::vector<std::string>> signer_groups;
  int line = 0;
};

struct NodeConfig {
  std::string key;  // "namespace/pod" (or a bare name for files without Kubernetes names)
  bool signer = false;
  std::string validator_address;
  ThresholdOverrides overrides;
  int line = 0;
};

using sink::SinkConfig;

struct Config {
  std::string path;
  std::vector<SourceConfig> sources;
  std::vector<StreamRule> streams;
  std::vector<ChainConfig> chains;
  std::vector<NodeConfig> nodes;
  std::string state_dir = "/var/lib/quorumwatch";
  Nanos checkpoint_interval = 5 * kSecond;
  // No line from any stream for this long is an input outage, not stalls.
  Nanos input_outage_after = 60 * kSecond;
  std::vector<SinkConfig> sinks;

  const ChainConfig* FindChain(const std::string& name) const;
  const NodeConfig* FindNode(const std::string& ns, const std::string& pod) const;
};

// Files over kMaxConfigBytes are refused unparsed.
inline constexpr size_t kMaxConfigBytes = 4u << 20;
[[nodiscard]] Result<Config> LoadConfig(const std::string& path);
[[nodiscard]] Result<Config> ParseConfig(const std::string& path, const std::string& text);

// "UTC", "Z", "+02:00", "-0530" -> seconds east of UTC.
bool ParseTimezone(const std::string& s, int32_t* offset);

}  // namespace qw::app
