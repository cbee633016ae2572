#include "app/config.h"
#include "test_files.h"

#include <doctest/doctest.h>

using namespace qw;
using namespace qw::app;

TEST_CASE("a configuration using the keys of the README's Configuration section loads") {
  auto c = ParseConfig("qw.yaml", R"(
sources:
  - type: file
    include: ["/var/log/containers/*.log"]
    exclude: []
    format: auto
    read_from: end
    max_line_bytes: 1048576
streams:
  - match: {namespace: "cosmos-.*", container: "gaiad"}
    chain: cosmoshub
  - match: {container: "tmkms"}
    role: signer
  - match: {}
    chain: auto
chains:
  cosmoshub:
    family: cometbft
    timezone: UTC
    stall_after: 60s
    max_lag: 5
    missed: {window: 100, max: 5}
    ban_after: 30m
    stable_after: 5m
    unban_after: 10m
    auto_unban: true
    max_bans: 1
    require_healthy_peer: true
    ban_on_double_sign: false
    replace_window: 7m
    signer_groups: [[val-a, val-b]]
nodes:
  cosmos-mainnet/gaiad-validator-0: {signer: true, validator_address: "A1B2C3D4E5F6", stall_after: 2m, replace_window: 0s}
state_dir: /var/lib/quorumwatch
sinks:
  - {type: jsonl, path: /dev/stdout}
  - {type: alertmanager, urls: ["http://alertmanager:9093"], resend_interval: 1m, labels: {region: eu-1}}
  - type: ban
    action: webhook
    url: "http://ban-controller:8080/bans"
    secret_file: /etc/quorumwatch/ban-secret
    dry_run: false
  - {type: ban, action: exec, command: ["/usr/local/bin/failover", "--node"], timeout: 30s}
  - {type: metrics, listen: "0.0.0.0:9464"}
)");
  REQUIRE(c);
  CHECK(c->sources.size() == 1);
  CHECK(c->streams.size() == 3);
  auto name = [](std::string ns, std::string pod, std::string container) {
    record::StreamName n;
    n.namespace_ = std::move(ns);
    n.pod = std::move(pod);
    n.container = std::move(container);
    n.kubernetes = true;
    return n;
  };
  CHECK(c->streams[0].Matches(name("cosmos-mainnet", "any", "gaiad")));
  CHECK_FALSE(c->streams[0].Matches(name("cosmos-mainnet", "any", "gaiad-x")));
  CHECK(c->streams[1].signer);
  const ChainConfig* ch = c->FindChain("cosmoshub");
  REQUIRE(ch != nullptr);
  CHECK(ch->family == "cometbft");
  CHECK(ch->signer_groups.size() == 1);
  detect::Thresholds t;
  ch->overrides.ApplyTo(&t);
  CHECK(t.ban_after == 30 * 60 * kSecond);
  CHECK(t.replace_window == 7 * 60 * kSecond);
  CHECK(t.require_healthy_peer == detect::Tristate::kTrue);
  const NodeConfig* n = c->FindNode("cosmos-mainnet", "gaiad-validator-0");
  REQUIRE(n != nullptr);
  CHECK(n->signer);
  CHECK(n->validator_address == "A1B2C3D4E5F6");
  n->overrides.ApplyTo(&t);
  CHECK(t.stall_after == 120 * kSecond);
  CHECK(t.replace_window == 0);  // 0s: the node's pods are never taken as replaced
  CHECK(c->sinks.size() == 5);
}

TEST_CASE("bad configuration is refused with file:line and the reason") {
  struct Case {
    const char* text;
    const char* want;
  };
  for (const Case& k : std::initializer_list<Case>{
           {"chains:\n  c:\n    family: cometbft\n    stall_afterr: 60s\n",
            "qw.yaml:4: unknown key 'stall_afterr'"},
           {"chains:\n  c:\n    family: cometbft\n    stall_after: soon\n",
            "qw.yaml:4: 'stall_after' must be a positive duration"},
           {"chains:\n  c:\n    family: cometbft\n    replace_window: -5m\n",
            "qw.yaml:4: 'replace_window' must be a duration"},
           {"chains:\n  c:\n    family: cometbft\n    max_bans: -1\n",
            "qw.yaml:4: 'max_bans' must be a whole number"},
           {"chains:\n  c:\n    family: cometbft\n    auto_unban: maybe\n",
            "qw.yaml:4: 'auto_unban' must be true or false"},
           {"chains:\n  c: {stall_after: 1m}\n", "qw.yaml:2: chain 'c' needs a 'family'"},
           {"streams:\n  - match: {namespace: '('}\n    chain: auto\n", "qw.yaml:2: bad regex"},
           {"sinks:\n  - type: pager\n", "qw.yaml:2: unknown sink type 'pager'"},
           {"nodes:\n  a/b: {validator_address: 'xyz'}\n", "qw.yaml:2: validator_address must be hexadecimal"},
           {"sources:\n  - type: file\n    include: [a]\n    read_from: middle\n",
            "qw.yaml:4: read_from must be beginning or end"},
           {"bogus: 1\n", "qw.yaml:1: unknown key 'bogus'"},
           {"sinks:\n  - {type: alertmanager, urls: ['am:9093']}\n",
            "qw.yaml:2: alertmanager url 'am:9093' must start with http:// or https://"},
           {"sinks:\n  - {type: alertmanager, urls: []}\n",
            "qw.yaml:2: an alertmanager sink needs 'urls'"},
           {"sinks:\n  - {type: alertmanager, urls: ['http://a'], resend_interval: 500ms}\n",
            "qw.yaml:2: 'resend_interval' must be at least 1s"},
           {"sinks:\n  - {type: alertmanager, urls: ['http://a'], timout: 1s}\n",
            "qw.yaml:2: unknown key 'timout'"},
           {"sinks:\n  - {type: ban, action: webhook, url: 'ftp://x', secret_env: S}\n",
            "qw.yaml:2: ban url 'ftp://x' must start with http:// or https://"},
           {"sinks:\n  - {type: ban, action: webhook, url: 'http://x', secret_env: S, secret_file: f}\n",
            "qw.yaml:2: give 'secret_file' or 'secret_env', not both"},
           {"sinks:\n  - {type: ban, action: shout}\n",
            "qw.yaml:2: a ban sink's action must be webhook or exec"},
           {"sinks:\n  - {type: ban, action: exec}\n", "qw.yaml:2: an exec ban sink needs 'command'"},
           {"sinks:\n  - {type: metrics, listen: 'localhost'}\n",
            "qw.yaml:2: 'listen' must be host:port (port 0-65535), not 'localhost'"},
           {"sinks:\n  - {type: metrics, listen: ':99999'}\n",
            "qw.yaml:2: 'listen' must be host:port"},
           {"chains: [\n", "qw.yaml:"},
           // Keys that are not plain names (`? [a, b]`): refused, not thrown
           // (found by fuzzing; a SIGHUP reload must keep the running one).
           {"? [a, b]\n: 1\n", "qw.yaml:1: a key must be a plain name"},
           {"chains:\n  ? [a, b]\n  : {family: cometbft}\n", "qw.yaml:2: a chain name must be a plain name"},
           {"nodes:\n  ? {a: 1}\n  : {signer: true}\n", "qw.yaml:2: a node key must be a plain name"},
           {"chains:\n  c:\n    ? [x]\n    : 1\n", "qw.yaml:3: a key must be a plain name"},
           {"sinks:\n  - {type: alertmanager, urls: ['http://a'], labels: {a: [1]}}\n",
            "qw.yaml:2: a label is a plain name: plain value"},
           {"state_dir: [a]\n", "qw.yaml:"},
           // Globs that glob(3) would take literally instead of refusing.
           {"sources:\n  - type: file\n    include: [a]\n    exclude: ['[']\n",
            "qw.yaml:4: bad glob '[' in 'exclude': the '[' at offset 0 is never closed by ']'"},
           {"sources:\n  - type: file\n    include: ['/var/log/*.log', '/x/[ab.log']\n",
            "qw.yaml:3: bad glob '/x/[ab.log' in 'include': the '[' at offset 3 is never closed"},
           {"sources:\n  - type: file\n    include: ['/x/[a/b]']\n",
            "qw.yaml:3: bad glob '/x/[a/b]' in 'include': the '[' at offset 3 spans a '/'"},
           {"sources:\n  - type: file\n    include: ['/x/a\\']\n",
            "qw.yaml:3: bad glob '/x/a\\' in 'include': it ends with an unescaped '\\'"},
           {"sources:\n  - type: file\n    include: ['']\n",
            "qw.yaml:3: bad glob '' in 'include': an empty pattern matches no file"},
           // Kafka sources (docs/KAFKA.md).
           {"sources:\n  - type: kafka\n    topics: [t]\n",
            "qw.yaml:2: a kafka source needs 'brokers'"},
           {"sources:\n  - {type: kafka, brokers: [b:9092]}\n",
            "qw.yaml:2: a kafka source needs either 'topics' or 'topic_pattern'"},
           {"sources:\n  - {type: kafka, brokers: [b:9092], topics: [t], topic_pattern: '^t'}\n",
            "qw.yaml:2: a kafka source needs either 'topics' or 'topic_pattern'"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topic_pattern: '^(logs'\n",
            "qw.yaml:4: bad regex '^(logs'"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    format: gelf\n",
            "qw.yaml:5: format must be auto, fluentbit, vector or raw, not 'gelf'"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    include: [x]\n",
            "qw.yaml:5: unknown key 'include'"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    fields: {pods: x}\n",
            "qw.yaml:5: unknown key 'pods'"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    properties: {a: [1]}\n",
            "qw.yaml:5: kafka property 'a' must be a string, number or boolean"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    group: ''\n",
            "qw.yaml:5: 'group' must not be empty"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    state_topic: ''\n",
            "qw.yaml:5: 'state_topic' must not be empty (none: no state handoff"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    by_chain_topic: x\n",
            "qw.yaml:5: 'by_chain_topic' is for 'repartition: true'"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    repartition: true\n"
            "    by_chain_topic: t\n",
            "qw.yaml:2: the by-chain topic t must be a topic of its own"},
           {"sources:\n  - type: kafka\n    brokers: [b:9092]\n    topics: [t]\n    repartition: yes please\n",
            "qw.yaml:5:"},
           {"sources:\n  - type: file\n    include: [a]\n    brokers: [b:9092]\n",
            "qw.yaml:4: unknown key 'brokers'"},
           {"sources:\n  - type: pipe\n", "qw.yaml:2: source type 'pipe' is not supported (known: file, kafka)"},
       }) {
    auto c = ParseConfig("qw.yaml", k.text);
    REQUIRE_FALSE(c);
    INFO(c.error().message);
    CHECK(c.error().message.find(k.want) == 0);
  }
}

TEST_CASE("well-formed globs with brackets, negation and escapes are accepted") {
  auto c = ParseConfig("qw.yaml",
                       "sources:\n  - type: file\n"
                       "    include: ['/l/[!a]*.log', '/l/[]x]*.log', '/l/\\[a.log', '/l/[^.]*']\n"
                       "    exclude: ['/l/*[0-9].log']\n");
  REQUIRE(c);
  REQUIRE(c->sources.size() == 1);
  CHECK(c->sources[0].include.size() == 4);
  CHECK(c->sources[0].include[2] == "/l/\\[a.log");
  CHECK(c->sources[0].exclude == std::vector<std::string>{"/l/*[0-9].log"});
}

TEST_CASE("a configuration file over 4 MiB is refused before it is parsed") {
  qw::testing::TempDir dir("qw-config");
  std::string big = "sources:\n  - type: file\n    include:\n";
  while (big.size() <= kMaxConfigBytes) big += "      - /var/log/pods/ns_pod_0123456789abcdef/c/*.log\n";
  qw::testing::WriteFile(dir / "big.yaml", big);
  auto c = LoadConfig(dir / "big.yaml");
  REQUIRE_FALSE(c);
  CHECK(c.error().message == dir / "big.yaml" + ": larger than 4 MiB: not a configuration");
  // An ordinary one is read as usual.
  qw::testing::WriteFile(dir / "ok.yaml", "state_dir: /var/lib/qw\n");
  auto ok = LoadConfig(dir / "ok.yaml");
  REQUIRE(ok);
  CHECK(ok->state_dir == "/var/lib/qw");
}

TEST_CASE("a kafka source's keys") {
  auto c = ParseConfig("qw.yaml",
                       "sources:\n"
                       "  - type: kafka\n"
                       "    brokers: ['k-0:9092', 'k-1:9092']\n"
                       "    topics: [validator-logs]\n"
                       "    group: qw-east\n"
                       "    format: fluentbit\n"
                       "    fields: {message: msg, time: ts, namespace: k8s.ns, pod: k8s.pod, container: k8s.c}\n"
                       "    properties: {security.protocol: SASL_SSL, session.timeout.ms: 6000}\n"
                       "  - type: kafka\n"
                       "    brokers: k:9092\n"
                       "    topic_pattern: '^logs-'\n"
                       "  - type: kafka\n"
                       "    brokers: k:9092\n"
                       "    topics: [a]\n"
                       "    state_topic: qw-changelog\n"
                       "  - type: kafka\n"
                       "    brokers: k:9092\n"
                       "    topics: [a]\n"
                       "    state_topic: none\n"
                       "  - type: kafka\n"
                       "    brokers: k:9092\n"
                       "    topics: [a]\n"
                       "    group: g\n"
                       "    repartition: true\n"
                       "  - type: kafka\n"
                       "    brokers: k:9092\n"
                       "    topics: [a]\n"
                       "    repartition: true\n"
                       "    by_chain_topic: rekeyed\n");
  REQUIRE(c);
  REQUIRE(c->sources.size() == 6);
  const auto& k = c->sources[0].kafka;
  CHECK(c->sources[0].type == "kafka");
  CHECK(k.brokers == std::vector<std::string>{"k-0:9092", "k-1:9092"});
  CHECK(k.topics == std::vector<std::string>{"validator-logs"});
  CHECK(k.group == "qw-east");
  CHECK(k.format == "fluentbit");
  CHECK(k.field_message == "msg");
  CHECK(k.field_time == "ts");
  CHECK(k.field_namespace == "k8s.ns");
  CHECK(k.field_pod == "k8s.pod");
  CHECK(k.field_container == "k8s.c");
  CHECK(k.properties == std::vector<std::pair<std::string, std::string>>{
                           {"security.protocol", "SASL_SSL"}, {"session.timeout.ms", "6000"}});
  const auto& d = c->sources[1].kafka;
  CHECK(d.brokers == std::vector<std::string>{"k:9092"});
  CHECK(d.topics.empty());
  CHECK(d.topic_pattern == "^logs-");
  CHECK(d.group == "quorumwatch");
  CHECK(d.format == "auto");
  // The changelog: <group>-state unless named; none: no handoff.
  CHECK(k.state_topic == "qw-east-state");
  CHECK(d.state_topic == "quorumwatch-state");
  CHECK(c->sources[2].kafka.state_topic == "qw-changelog");
  CHECK(c->sources[3].kafka.state_topic.empty());
  // repartition: off unless asked; the by-chain topic <group>-by-chain unless named.
  CHECK_FALSE(k.repartition);
  CHECK(k.by_chain_topic.empty());
  CHECK(c->sources[4].kafka.repartition);
  CHECK(c->sources[4].kafka.by_chain_topic == "g-by-chain");
  CHECK(c->sources[5].kafka.by_chain_topic == "rekeyed");
}

TEST_CASE("an empty configuration takes every default") {
  auto c = ParseConfig("qw.yaml", "");
  REQUIRE(c);
  CHECK(c->chains.empty());
  CHECK(c->state_dir == "/var/lib/quorumwatch");
}

TEST_CASE("timezones") {
  int32_t off = 1;
  CHECK(ParseTimezone("UTC", &off));
  CHECK(off == 0);
  CHECK(ParseTimezone("+02:00", &off));
  CHECK(off == 7200);
  CHECK(ParseTimezone("-0530", &off));
  CHECK(off == -19800);
  CHECK_FALSE(ParseTimezone("Europe/Berlin", &off));
}

TEST_CASE("checkpoint_interval may be 0s (a checkpoint after every batch); other durations must be positive") {
  auto zero = ParseConfig("q.yaml", "checkpoint_interval: 0s\n");
  REQUIRE(zero);
  CHECK(zero->checkpoint_interval == 0);
  auto bad = ParseConfig("q.yaml", "input_outage_after: 0s\n");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("q.yaml:1:") == 0);
}
