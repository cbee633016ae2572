// What the configuration says about streams, chains and nodes, in the form
// the pipeline takes (record::Routing, pipeline::Topology). Shared by
// replay and run, so both place streams the same way.
#pragma once

#include <memory>
#include <string>

#include "app/config.h"
#include "common/result.h"
#include "match/registry.h"
#include "pipeline/driver.h"
#include "record/naming.h"

namespace qw::app {

// The pattern files: `dir` when given, else the ones built in.
[[nodiscard]] Result<std::unique_ptr<match::Registry>> LoadRegistry(const std::string& dir);

// Refuses chains whose family no pattern file has (file:line and reason).
[[nodiscard]] Result<void> CheckFamilies(const Config& config, const match::Registry& registry);

// The stream rules and configured chains.
record::Routing RoutingFrom(const Config& config, const match::Registry& registry);

// Chain specs: the family's default thresholds, then the chain's
// configuration (which also fixes the family of a configured chain); node
// specs: the node's configuration over its chain's.
class ConfigTopology : public pipeline::Topology {
 public:
  ConfigTopology(const Config& config, const match::Registry& registry)
      : config_(config), registry_(registry) {}
  detect::ChainSpec Chain(const std::string& name, int family) const override;
  void Node(detect::NodeSpec* spec) const override;

 private:
  const Config& config_;
  const match::Registry& registry_;
};

}  // namespace qw::app
