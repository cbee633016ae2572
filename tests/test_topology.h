// A topology for pipeline unit tests: chains take the family's name (its
// built-in thresholds); nodes have no configuration.
#pragma once

#include <string>

#include "match/registry.h"
#include "pipeline/driver.h"

namespace qw::testing {

class PlainTopology : public pipeline::Topology {
 public:
  explicit PlainTopology(const match::Registry& reg) : reg_(reg) {}
  detect::ChainSpec Chain(const std::string& name, int family) const override {
    detect::ChainSpec spec;
    spec.name = name;
    spec.family = family >= 0 ? reg_.file(static_cast<size_t>(family)).family : "unknown";
    return spec;
  }
  void Node(detect::NodeSpec*) const override {}

 private:
  const match::Registry& reg_;
};

}  // namespace qw::testing
