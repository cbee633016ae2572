#include "app/config.h"

#include <algorithm>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

#include <fmt/format.h>

#include "common/yaml_util.h"

namespace qw::app {
namespace {

using yamlutil::Where;

#define QW_TRY(expr)                                  \
  do {                                                \
    auto qw_r = (expr);                               \
    if (!qw_r) return tl::unexpected(qw_r.error());   \
  } while (0)

Result<std::vector<std::string>> StringList(const std::string& path, const YAML::Node& n,
                                            const char* key) {
  std::vector<std::string> out;
  const auto& v = n[key];
  if (!v) return out;
  if (!v.IsSequence()) return Fail(Where(path, v) + "'" + key + "' must be a list of strings");
  for (const auto& s : v) {
    if (!s.IsScalar()) return Fail(Where(path, s) + "'" + key + "' must be a list of strings");
    out.push_back(s.Scalar());
  }
  return out;
}

// Why `glob` is not a well-formed glob(7) pattern, or empty when it is.
// glob(3) and fnmatch(3) take an unclosed '[' or a trailing '\\' as literal
// characters, so `exclude: ['[']` would exclude nothing without a word.
std::string GlobProblem(std::string_view glob) {
  if (glob.empty()) return "an empty pattern matches no file";
  for (size_t i = 0; i < glob.size(); ++i) {
    char c = glob[i];
    if (c == '\\') {
      if (i + 1 == glob.size()) return "it ends with an unescaped '\\'";
      ++i;
      continue;
    }
    if (c != '[') continue;
    size_t j = i + 1;
    if (j < glob.size() && (glob[j] == '!' || glob[j] == '^')) ++j;
    if (j < glob.size() && glob[j] == ']') ++j;  // a leading ']' is a member
    while (j < glob.size() && glob[j] != ']') {
      if (glob[j] == '/') return fmt::format("the '[' at offset {} spans a '/'", i);
      ++j;
    }
    if (j == glob.size()) return fmt::format("the '[' at offset {} is never closed by ']'", i);
    i = j;
  }
  return {};
}

Result<std::vector<std::string>> GlobList(const std::string& path, const YAML::Node& n,
                                          const char* key) {
  auto list = StringList(path, n, key);
  if (!list) return list;
  size_t k = 0;
  for (const auto& s : n[key]) {
    std::string why = GlobProblem((*list)[k++]);
    if (!why.empty()) {
      return Fail(Where(path, s) + "bad glob '" + s.Scalar() + "' in '" + key + "': " + why);
    }
  }
  return list;
}

Result<void> LoadOverrides(const std::string& path, const YAML::Node& n, ThresholdOverrides* o) {
  auto dur = [&](const char* key, std::optional<Nanos>* out) -> Result<void> {
    if (!n[key]) return {};
    Nanos v = 0;
    QW_TRY(yamlutil::GetDuration(path, n, key, &v));
    *out = v;
    return {};
  };
  auto num = [&](const YAML::Node& m, const char* key, int64_t lo, int64_t hi,
                 std::optional<int64_t>* out) -> Result<void> {
    if (!m[key]) return {};
    int64_t v = 0;
    QW_TRY(yamlutil::GetInt(path, m, key, lo, hi, &v));
    *out = v;
    return {};
  };
  auto flag = [&](const char* key, std::optional<bool>* out) -> Result<void> {
    if (!n[key]) return {};
    bool v = false;
    QW_TRY(yamlutil::GetBool(path, n, key, &v));
    *out = v;
    return {};
  };
  QW_TRY(dur("stall_after", &o->stall_after));
  QW_TRY(dur("ban_after", &o->ban_after));
  QW_TRY(dur("stable_after", &o->stable_after));
  QW_TRY(dur("unban_after", &o->unban_after));
  if (n["replace_window"]) {  // 0s: pods are never taken as replaced
    Nanos v = 0;
    QW_TRY(yamlutil::GetDuration(path, n, "replace_window", &v, /*allow_zero=*/true));
    o->replace_window = v;
  }
  QW_TRY(num(n, "max_lag", 0, 1'000'000'000, &o->max_lag));
  QW_TRY(num(n, "max_bans", 0, 1'000'000, &o->max_bans));
  if (const auto& m = n["missed"]) {
    QW_TRY(yamlutil::CheckKeys(path, m, {"window", "max"}));
    QW_TRY(num(m, "window", 1, 100'000, &o->missed_window));
    QW_TRY(num(m, "max", 0, 100'000, &o->missed_max));
  }
  QW_TRY(flag("auto_unban", &o->auto_unban));
  QW_TRY(flag("require_healthy_peer", &o->require_healthy_peer));
  QW_TRY(flag("ban_on_double_sign", &o->ban_on_double_sign));
  return {};
}

#define QW_THRESHOLD_KEYS                                                                    \
  "stall_after", "max_lag", "missed", "ban_after", "stable_after", "unban_after", "auto_unban", \
      "max_bans", "require_healthy_peer", "ban_on_double_sign", "replace_window"

Result<std::shared_ptr<RE2>> WholeRegex(const std::string& path, const YAML::Node& v) {
  if (!v.IsScalar()) return Fail(Where(path, v) + "a match value must be a regex string");
  RE2::Options opt;
  opt.set_log_errors(false);
  auto re = std::make_shared<RE2>("(?:" + v.Scalar() + ")", opt);
  if (!re->ok()) return Fail(Where(path, v) + "bad regex '" + v.Scalar() + "': " + re->error());
  return re;
}

Result<void> LoadKafkaSource(const std::string& path, const YAML::Node& s, SourceConfig* sc) {
  QW_TRY(yamlutil::CheckKeys(path, s,
                             {"type", "brokers", "topics", "topic_pattern", "group", "format",
                              "fields", "properties", "max_line_bytes", "state_topic",
                              "repartition", "by_chain_topic"}));
  KafkaSourceConfig& k = sc->kafka;
  if (s["brokers"] && s["brokers"].IsScalar()) {
    // "host:port,host:port" as librdkafka's bootstrap.servers takes it.
    std::stringstream list(s["brokers"].Scalar());
    for (std::string b; std::getline(list, b, ',');) {
      if (!b.empty()) k.brokers.push_back(b);
    }
  } else {
    auto brokers = StringList(path, s, "brokers");
    if (!brokers) return tl::unexpected(brokers.error());
    k.brokers = *brokers;
  }
  if (k.brokers.empty()) {
    return Fail(Where(path, s) + "a kafka source needs 'brokers' (bootstrap servers, host:port)");
  }
  auto topics = StringList(path, s, "topics");
  if (!topics) return tl::unexpected(topics.error());
  k.topics = *topics;
  QW_TRY(yamlutil::GetString(path, s, "topic_pattern", &k.topic_pattern));
  if (!k.topic_pattern.empty()) {
    RE2::Options opt;
    opt.set_log_errors(false);
    RE2 re(k.topic_pattern, opt);
    if (!re.ok()) {
      return Fail(Where(path, s["topic_pattern"]) + "bad regex '" + k.topic_pattern + "': " +
                  re.error());
    }
  }
  if (k.topics.empty() == k.topic_pattern.empty()) {
    return Fail(Where(path, s) + "a kafka source needs either 'topics' or 'topic_pattern'");
  }
  QW_TRY(yamlutil::GetString(path, s, "group", &k.group));
  if (k.group.empty()) return Fail(Where(path, s["group"]) + "'group' must not be empty");
  QW_TRY(yamlutil::GetString(path, s, "format", &k.format));
  if (k.format != "auto" && k.format != "fluentbit" && k.format != "vector" && k.format != "raw") {
    return Fail(Where(path, s["format"]) + "format must be auto, fluentbit, vector or raw, not '" +
                k.format + "'");
  }
  if (const auto& f = s["fields"]) {
    QW_TRY(yamlutil::CheckKeys(path, f, {"message", "time", "namespace", "pod", "container"}));
    QW_TRY(yamlutil::GetString(path, f, "message", &k.field_message));
    QW_TRY(yamlutil::GetString(path, f, "time", &k.field_time));
    QW_TRY(yamlutil::GetString(path, f, "namespace", &k.field_namespace));
    QW_TRY(yamlutil::GetString(path, f, "pod", &k.field_pod));
    QW_TRY(yamlutil::GetString(path, f, "container", &k.field_container));
  }
  if (const auto& p = s["properties"]) {
    if (!p.IsMap()) return Fail(Where(path, p) + "'properties' must be a map of librdkafka properties");
    for (const auto& kv : p) {
      if (!kv.second.IsScalar()) {
        return Fail(Where(path, kv.second) + "kafka property '" + kv.first.as<std::string>() +
                    "' must be a string, number or boolean");
      }
      k.properties.emplace_back(kv.first.as<std::string>(), kv.second.Scalar());
    }
  }
  QW_TRY(yamlutil::GetInt(path, s, "max_line_bytes", 256, 64 << 20, &sc->max_line_bytes));
  // The changelog: <group>-state unless named; "none" for no handoff.
  k.state_topic = k.group + "-state";
  QW_TRY(yamlutil::GetString(path, s, "state_topic", &k.state_topic));
  if (k.state_topic.empty()) {
    return Fail(Where(path, s["state_topic"]) + "'state_topic' must not be empty (none: no state "
                "handoff between the group's members)");
  }
  if (k.state_topic == "none") k.state_topic.clear();
  // Records not keyed by chain: handed on, keyed by chain, to <group>-by-chain
  // (docs/KAFKA.md, "Repartition").
  QW_TRY(yamlutil::GetBool(path, s, "repartition", &k.repartition));
  if (s["by_chain_topic"] && !k.repartition) {
    return Fail(Where(path, s["by_chain_topic"]) + "'by_chain_topic' is for 'repartition: true'");
  }
  k.by_chain_topic = k.group + "-by-chain";
  QW_TRY(yamlutil::GetString(path, s, "by_chain_topic", &k.by_chain_topic));
  if (k.by_chain_topic.empty()) {
    return Fail(Where(path, s["by_chain_topic"]) + "'by_chain_topic' must not be empty");
  }
  if (k.repartition && (k.by_chain_topic == k.state_topic ||
                        std::find(k.topics.begin(), k.topics.end(), k.by_chain_topic) != k.topics.end())) {
    return Fail(Where(path, s) + "the by-chain topic " + k.by_chain_topic +
                " must be a topic of its own (not an input topic, not the state topic)");
  }
  if (!k.repartition) k.by_chain_topic.clear();
  return {};
}

Result<void> LoadSources(const std::string& path, const YAML::Node& n, Config* c) {
  if (!n) return {};
  if (!n.IsSequence()) return Fail(Where(path, n) + "'sources' must be a list");
  for (const auto& s : n) {
    if (!s.IsMap()) return Fail(Where(path, s) + "a source must be a map");
    SourceConfig sc;
    sc.line = static_cast<int>(s.Mark().line) + 1;
    QW_TRY(yamlutil::GetString(path, s, "type", &sc.type));
    if (sc.type == "kafka") {
      QW_TRY(LoadKafkaSource(path, s, &sc));
      c->sources.push_back(std::move(sc));
      continue;
    }
    if (sc.type != "file") {
      return Fail(Where(path, s["type"]) + "source type '" + sc.type +
                  "' is not supported (known: file, kafka)");
    }
    QW_TRY(yamlutil::CheckKeys(path, s,
                               {"type", "include", "exclude", "format", "read_from",
                                "max_line_bytes", "poll_interval"}));
    auto inc = GlobList(path, s, "include");
    if (!inc) return tl::unexpected(inc.error());
    sc.include = *inc;
    if (sc.include.empty()) return Fail(Where(path, s) + "a file source needs 'include' globs");
    auto exc = GlobList(path, s, "exclude");
    if (!exc) return tl::unexpected(exc.error());
    sc.exclude = *exc;
    QW_TRY(yamlutil::GetString(path, s, "format", &sc.format));
    if (sc.format != "auto" && sc.format != "cri" && sc.format != "docker" && sc.format != "raw") {
      return Fail(Where(path, s["format"]) + "format must be auto, cri, docker or raw, not '" +
                  sc.format + "'");
    }
    QW_TRY(yamlutil::GetString(path, s, "read_from", &sc.read_from));
    if (sc.read_from != "beginning" && sc.read_from != "end") {
      return Fail(Where(path, s["read_from"]) + "read_from must be beginning or end, not '" +
                  sc.read_from + "'");
    }
    QW_TRY(yamlutil::GetInt(path, s, "max_line_bytes", 256, 64 << 20, &sc.max_line_bytes));
    QW_TRY(yamlutil::GetDuration(path, s, "poll_interval", &sc.poll_interval));
    c->sources.push_back(std::move(sc));
  }
  return {};
}

Result<void> LoadStreams(const std::string& path, const YAML::Node& n, Config* c) {
  if (!n) return {};
  if (!n.IsSequence()) return Fail(Where(path, n) + "'streams' must be a list");
  for (const auto& s : n) {
    QW_TRY(yamlutil::CheckKeys(path, s, {"match", "chain", "role", "timezone"}));
    StreamRule r;
    r.line = static_cast<int>(s.Mark().line) + 1;
    if (const auto& m = s["match"]) {
      QW_TRY(yamlutil::CheckKeys(path, m, {"namespace", "pod", "container"}));
      for (const char* key : {"namespace", "pod", "container"}) {
        if (!m[key]) continue;
        auto re = WholeRegex(path, m[key]);
        if (!re) return tl::unexpected(re.error());
        (std::string(key) == "namespace" ? r.namespace_re
                                         : std::string(key) == "pod" ? r.pod_re : r.container_re) =
            *re;
      }
    }
    QW_TRY(yamlutil::GetString(path, s, "chain", &r.chain));
    std::string role = "node";
    QW_TRY(yamlutil::GetString(path, s, "role", &role));
    if (role != "node" && role != "signer") {
      return Fail(Where(path, s["role"]) + "role must be node or signer, not '" + role + "'");
    }
    r.signer = role == "signer";
    if (r.chain.empty() && !r.signer) {
      return Fail(Where(path, s) + "a stream rule needs 'chain' (a chain name or auto) or role: signer");
    }
    std::string timezone;
    QW_TRY(yamlutil::GetString(path, s, "timezone", &timezone));
    int32_t off = 0;
    if (!timezone.empty()) {
      if (!ParseTimezone(timezone, &off)) {
        return Fail(Where(path, s["timezone"]) + "timezone must be UTC or an offset like +02:00");
      }
      r.tz_offset_seconds = off;
    }
    c->streams.push_back(std::move(r));
  }
  return {};
}

Result<void> LoadChains(const std::string& path, const YAML::Node& n, Config* c) {
  if (!n) return {};
  if (!n.IsMap()) return Fail(Where(path, n) + "'chains' must be a map of chain name: settings");
  for (const auto& kv : n) {
    const YAML::Node& v = kv.second;
    ChainConfig cc;
    if (!kv.first.IsScalar()) return Fail(Where(path, kv.first) + "a chain name must be a plain name");
    cc.name = kv.first.as<std::string>();
    cc.line = static_cast<int>(kv.first.Mark().line) + 1;
    if (!v.IsMap()) return Fail(Where(path, kv.first) + "chain '" + cc.name + "' must be a map");
    QW_TRY(yamlutil::CheckKeys(path, v, {"family", "timezone", "signer_groups", QW_THRESHOLD_KEYS}));
    QW_TRY(yamlutil::GetString(path, v, "family", &cc.family));
    if (cc.family.empty()) {
      return Fail(Where(path, kv.first) + "chain '" + cc.name + "' needs a 'family'");
    }
    if (v["timezone"]) {
      if (!v["timezone"].IsScalar() || !ParseTimezone(v["timezone"].Scalar(), &cc.tz_offset_seconds)) {
        return Fail(Where(path, v["timezone"]) + "timezone must be UTC or an offset like +02:00");
      }
    }
    QW_TRY(LoadOverrides(path, v, &cc.overrides));
    if (const auto& g = v["signer_groups"]) {
      if (!g.IsSequence()) return Fail(Where(path, g) + "'signer_groups' must be a list of lists");
      for (const auto& group : g) {
        if (!group.IsSequence()) {
          return Fail(Where(path, group) + "each signer group must be a list of node names");
        }
        std::vector<std::string> names;
        for (const auto& name : group) names.push_back(name.as<std::string>());
        cc.signer_groups.push_back(std::move(names));
      }
    }
    c->chains.push_back(std::move(cc));
  }
  return {};
}

Result<void> LoadNodes(const std::string& path, const YAML::Node& n, Config* c) {
  if (!n) return {};
  if (!n.IsMap()) return Fail(Where(path, n) + "'nodes' must be a map of namespace/pod: settings");
  for (const auto& kv : n) {
    const YAML::Node& v = kv.second;
    NodeConfig nc;
    if (!kv.first.IsScalar()) return Fail(Where(path, kv.first) + "a node key must be a plain name");
    nc.key = kv.first.as<std::string>();
    nc.line = static_cast<int>(kv.first.Mark().line) + 1;
    if (!v.IsMap()) return Fail(Where(path, kv.first) + "node '" + nc.key + "' must be a map");
    QW_TRY(yamlutil::CheckKeys(path, v, {"signer", "validator_address", QW_THRESHOLD_KEYS}));
    QW_TRY(yamlutil::GetBool(path, v, "signer", &nc.signer));
    QW_TRY(yamlutil::GetString(path, v, "validator_address", &nc.validator_address));
    for (char ch : nc.validator_address) {
      if (!std::isxdigit(static_cast<unsigned char>(ch))) {
        return Fail(Where(path, v["validator_address"]) +
                    "validator_address must be hexadecimal (the consensus address)");
      }
    }
    QW_TRY(LoadOverrides(path, v, &nc.overrides));
    c->nodes.push_back(std::move(nc));
  }
  return {};
}

Result<void> LoadSinks(const std::string& path, const YAML::Node& n, Config* c) {
  if (!n) return {};
  if (!n.IsSequence()) return Fail(Where(path, n) + "'sinks' must be a list");
  for (const auto& s : n) {
    SinkConfig sc;
    sc.line = static_cast<int>(s.Mark().line) + 1;
    sc.file = path;
    if (!s.IsMap() || !s["type"]) return Fail(Where(path, s) + "a sink needs a 'type'");
    sc.type = s["type"].as<std::string>();
    if (sc.type == "jsonl") {
      QW_TRY(yamlutil::CheckKeys(path, s, {"type", "path"}));
      sc.path = "/dev/stdout";
      QW_TRY(yamlutil::GetString(path, s, "path", &sc.path));
    } else if (sc.type == "alertmanager") {
      QW_TRY(yamlutil::CheckKeys(
          path, s, {"type", "urls", "resend_interval", "labels", "timeout", "generator_url"}));
      auto urls = StringList(path, s, "urls");
      if (!urls) return tl::unexpected(urls.error());
      sc.urls = *urls;
      if (sc.urls.empty()) return Fail(Where(path, s) + "an alertmanager sink needs 'urls'");
      QW_TRY(yamlutil::GetDuration(path, s, "resend_interval", &sc.resend_interval));
      QW_TRY(yamlutil::GetDuration(path, s, "timeout", &sc.timeout));
      QW_TRY(yamlutil::GetString(path, s, "generator_url", &sc.generator_url));
      for (const auto& u : sc.urls) {
        if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) {
          return Fail(Where(path, s["urls"]) + "alertmanager url '" + u +
                      "' must start with http:// or https://");
        }
      }
      if (sc.resend_interval < kSecond) {
        return Fail(Where(path, s["resend_interval"]) + "'resend_interval' must be at least 1s");
      }
      if (const auto& l = s["labels"]) {
        if (!l.IsMap()) return Fail(Where(path, l) + "'labels' must be a map");
        for (const auto& kv : l) {
          if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
            return Fail(Where(path, kv.first) + "a label is a plain name: plain value");
          }
          sc.labels[kv.first.as<std::string>()] = kv.second.as<std::string>();
        }
      }
    } else if (sc.type == "ban") {
      QW_TRY(yamlutil::CheckKeys(path, s, {"type", "action", "url", "secret_file", "secret_env",
                                           "dry_run", "command", "timeout"}));
      QW_TRY(yamlutil::GetString(path, s, "action", &sc.action));
      if (sc.action != "webhook" && sc.action != "exec") {
        return Fail(Where(path, s) + "a ban sink's action must be webhook or exec");
      }
      QW_TRY(yamlutil::GetString(path, s, "url", &sc.url));
      QW_TRY(yamlutil::GetString(path, s, "secret_file", &sc.secret_file));
      QW_TRY(yamlutil::GetString(path, s, "secret_env", &sc.secret_env));
      QW_TRY(yamlutil::GetBool(path, s, "dry_run", &sc.dry_run));
      auto cmd = StringList(path, s, "command");
      if (!cmd) return tl::unexpected(cmd.error());
      sc.command = *cmd;
      QW_TRY(yamlutil::GetDuration(path, s, "timeout", &sc.timeout));
      if (sc.action == "webhook" && sc.url.empty()) {
        return Fail(Where(path, s) + "a webhook ban sink needs 'url'");
      }
      if (sc.action == "exec" && sc.command.empty()) {
        return Fail(Where(path, s) + "an exec ban sink needs 'command'");
      }
      if (!sc.secret_file.empty() && !sc.secret_env.empty()) {
        return Fail(Where(path, s) + "give 'secret_file' or 'secret_env', not both");
      }
      if (!sc.url.empty() && sc.url.rfind("http://", 0) != 0 && sc.url.rfind("https://", 0) != 0) {
        return Fail(Where(path, s["url"]) + "ban url '" + sc.url +
                    "' must start with http:// or https://");
      }
    } else if (sc.type == "metrics") {
      QW_TRY(yamlutil::CheckKeys(path, s, {"type", "listen"}));
      sc.listen = "0.0.0.0:9464";
      QW_TRY(yamlutil::GetString(path, s, "listen", &sc.listen));
      size_t colon = sc.listen.rfind(':');
      std::string port = colon == std::string::npos ? "" : sc.listen.substr(colon + 1);
      if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(port) > 65535) {
        return Fail(Where(path, s["listen"]) + "'listen' must be host:port (port 0-65535), not '" +
                    sc.listen + "'");
      }
    } else {
      return Fail(Where(path, s["type"]) + "unknown sink type '" + sc.type +
                  "' (known: jsonl, alertmanager, ban, metrics)");
    }
    c->sinks.push_back(std::move(sc));
  }
  return {};
}

}  // namespace

void ThresholdOverrides::ApplyTo(detect::Thresholds* t) const {
  if (stall_after) t->stall_after = *stall_after;
  if (ban_after) t->ban_after = *ban_after;
  if (stable_after) t->stable_after = *stable_after;
  if (unban_after) t->unban_after = *unban_after;
  if (replace_window) t->replace_window = *replace_window;
  if (max_lag) t->max_lag = *max_lag;
  if (missed_window) t->missed_window = static_cast<int>(*missed_window);
  if (missed_max) t->missed_max = static_cast<int>(*missed_max);
  if (max_bans) t->max_bans = static_cast<int>(*max_bans);
  if (auto_unban) t->auto_unban = *auto_unban;
  if (require_healthy_peer) {
    t->require_healthy_peer = *require_healthy_peer ? detect::Tristate::kTrue : detect::Tristate::kFalse;
  }
  if (ban_on_double_sign) t->ban_on_double_sign = *ban_on_double_sign;
}

const ChainConfig* Config::FindChain(const std::string& name) const {
  for (const auto& c : chains) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const NodeConfig* Config::FindNode(const std::string& ns, const std::string& pod) const {
  std::string key = ns.empty() ? pod : ns + "/" + pod;
  for (const auto& n : nodes) {
    if (n.key == key) return &n;
  }
  if (!ns.empty()) {
    for (const auto& n : nodes) {
      if (n.key == pod) return &n;
    }
  }
  return nullptr;
}

bool ParseTimezone(const std::string& s, int32_t* offset) {
  if (s == "UTC" || s == "Z" || s == "utc" || s == "Etc/UTC") {
    *offset = 0;
    return true;
  }
  if (s.size() < 3 || (s[0] != '+' && s[0] != '-')) return false;
  std::string digits;
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] == ':') continue;
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    digits.push_back(s[i]);
  }
  if (digits.size() != 4 && digits.size() != 2) return false;
  int hh = std::stoi(digits.substr(0, 2));
  int mm = digits.size() == 4 ? std::stoi(digits.substr(2, 2)) : 0;
  if (hh > 14 || mm > 59) return false;
  *offset = (hh * 3600 + mm * 60) * (s[0] == '-' ? -1 : 1);
  return true;
}

namespace {
Result<Config> ParseConfigYaml(const std::string& path, const std::string& text);
}  // namespace

Result<Config> ParseConfig(const std::string& path, const std::string& text) {
  // The loaders check shapes before converting; a conversion they missed
  // still becomes a refusal with file and line, never an exception out of
  // a SIGHUP reload.
  try {
    return ParseConfigYaml(path, text);
  } catch (const YAML::Exception& e) {
    return Fail(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

namespace {
Result<Config> ParseConfigYaml(const std::string& path, const std::string& text) {
  auto root = yamlutil::LoadText(path, text);
  if (!root) return tl::unexpected(root.error());
  const YAML::Node& y = *root;
  Config c;
  c.path = path;
  if (y.IsNull()) return c;
  QW_TRY(yamlutil::CheckKeys(path, y,
                             {"sources", "streams", "chains", "nodes", "state_dir", "sinks",
                              "checkpoint_interval", "input_outage_after"}));
  // 0s: a checkpoint after every batch (tests; costly in production).
  QW_TRY(yamlutil::GetDuration(path, y, "checkpoint_interval", &c.checkpoint_interval,
                               /*allow_zero=*/true));
  QW_TRY(yamlutil::GetDuration(path, y, "input_outage_after", &c.input_outage_after));
  QW_TRY(LoadSources(path, y["sources"], &c));
  QW_TRY(LoadStreams(path, y["streams"], &c));
  QW_TRY(LoadChains(path, y["chains"], &c));
  QW_TRY(LoadNodes(path, y["nodes"], &c));
  QW_TRY(yamlutil::GetString(path, y, "state_dir", &c.state_dir));
  QW_TRY(LoadSinks(path, y["sinks"], &c));
  return c;
}
}  // namespace

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(path + ": cannot open: " + std::strerror(errno));
  // yaml-cpp holds about 25 bytes of memory per byte of a document: a
  // configuration is a page or two, and a huge one is a mistake (a log
  // pasted in, a generated list gone wrong), refused before it is parsed.
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) {
    return Fail(path + ": larger than " + std::to_string(kMaxConfigBytes >> 20) +
                " MiB: not a configuration");
  }
  return ParseConfig(path, text);
}

}  // namespace qw::app
