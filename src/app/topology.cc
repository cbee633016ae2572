#include "app/topology.h"

namespace qw::app {

Result<std::unique_ptr<match::Registry>> LoadRegistry(const std::string& dir) {
  if (!dir.empty()) return match::Registry::LoadDir(dir);
  return match::Registry::LoadEmbedded();
}

Result<void> CheckFamilies(const Config& config, const match::Registry& registry) {
  for (const auto& ch : config.chains) {
    if (registry.Find(ch.family) < 0) {
      return Fail(config.path + ":" + std::to_string(ch.line) + ": chain '" + ch.name +
                  "': unknown family '" + ch.family + "'");
    }
  }
  return {};
}

record::Routing RoutingFrom(const Config& config, const match::Registry& registry) {
  record::Routing r;
  r.rules = config.streams;
  for (const auto& cc : config.chains) {
    r.chains.push_back(record::KnownChain{cc.name, registry.Find(cc.family), cc.tz_offset_seconds});
  }
  return r;
}

detect::ChainSpec ConfigTopology::Chain(const std::string& name, int family) const {
  detect::ChainSpec spec;
  spec.name = name;
  const ChainConfig* cc = config_.FindChain(name);
  if (cc != nullptr) family = registry_.Find(cc->family);
  spec.family = family >= 0 ? registry_.file(static_cast<size_t>(family)).family : "unknown";
  if (family >= 0) {
    const auto& d = registry_.file(static_cast<size_t>(family)).defaults;
    spec.thresholds.stall_after = d.stall_after;
    spec.thresholds.max_lag = d.max_lag;
    spec.thresholds.missed_window = d.missed_window;
    spec.thresholds.missed_max = d.missed_max;
    spec.thresholds.derive_misses = d.derive_misses;
  }
  if (cc != nullptr) {
    cc->overrides.ApplyTo(&spec.thresholds);
    spec.signer_groups = cc->signer_groups;
  }
  return spec;
}

void ConfigTopology::Node(detect::NodeSpec* spec) const {
  if (const NodeConfig* nc = config_.FindNode(spec->namespace_, spec->name)) {
    spec->signer = nc->signer;
    spec->validator_address = nc->validator_address;
    nc->overrides.ApplyTo(&spec->thresholds);
  }
}

}  // namespace qw::app
