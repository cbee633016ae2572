// Which node, chain and family a stream belongs to: names from log file
// names, stream rules, and the decision that replay, live tailing and Kafka
// all make the same way (docs/PIPELINE.md, "Streams, nodes and chains").
#pragma once

#include <re2/re2.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qw::match {
class Registry;
}

namespace qw::record {

struct StreamName {
  std::string pod;         // node name
  std::string namespace_;  // "" without Kubernetes names
  std::string container;   // "" without Kubernetes names
  bool kubernetes = false;
};

// "<pod>_<namespace>_<container>-<64 hex>.log[.zst]" -> pod, namespace,
// container; any other name -> the base name without extensions.
StreamName NameFromPath(const std::string& path);

// One `streams:` rule of the configuration. Absent keys match anything.
struct StreamRule {
  // Whole-value regexes on the Kubernetes names.
  std::shared_ptr<RE2> namespace_re, pod_re, container_re;
  std::string chain;  // a configured chain, a family name or alias, "auto", or ""
  bool signer = false;
  std::optional<int32_t> tz_offset_seconds;  // the rule's `timezone`
  int line = 0;
  bool Matches(const StreamName& name) const;
};

// A chain of the configuration, as far as streams are concerned.
struct KnownChain {
  std::string name;
  int family = -1;  // registry index
  int32_t tz_offset_seconds = 0;
};

// Everything that decides where a stream goes. Built from the configuration
// (and, in replay, the command line); read-only afterwards.
struct Routing {
  std::vector<StreamRule> rules;    // first match wins
  std::vector<KnownChain> chains;
  std::string forced_chain;         // replay --chain NAME (not auto): every stream's chain
  int forced_family = -1;           // ... and its family when NAME fixes one
  std::string node_override;        // replay --node NAME

  const KnownChain* FindChain(const std::string& name) const;
};

// What is known about a stream before its records are read.
struct Placement {
  StreamName name;
  std::string chain;  // "" until the family is known (then DefaultChain)
  int family = -1;    // -1: detect from the records
  bool signer = false;
  std::optional<int32_t> tz_offset_seconds;  // from the rule
};

// Applies the rules and the command line to a stream's name.
Placement Place(const Routing& routing, const match::Registry& registry, StreamName name);

// Completes a placement once its family is known (-1: unknown): signer role
// of the family, the chain when nothing named one (the family's only
// configured chain, else "<family>" or "<family>/<namespace>"), and the
// time zone (the rule's, else the chain's, else UTC).
void CompletePlacement(const Routing& routing, const match::Registry& registry, int family,
                       Placement* p);

}  // namespace qw::record
