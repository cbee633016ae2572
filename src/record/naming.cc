#include "record/naming.h"

#include "match/registry.h"

namespace qw::record {

StreamName NameFromPath(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string base = path.substr(slash == std::string::npos ? 0 : slash + 1);
  // Kubelet's /var/log/containers names; pod and namespace are DNS labels.
  static const RE2 kK8s(
      R"(([a-z0-9]([-a-z0-9.]*[a-z0-9])?)_([a-z0-9]([-a-z0-9]*[a-z0-9])?)_(.+)-[0-9a-f]{6,64}\.log(\.[0-9]+)?(\.zst)?)");
  StreamName n;
  std::string pod, ns, container;
  if (RE2::FullMatch(base, kK8s, &pod, nullptr, &ns, nullptr, &container)) {
    n.pod = pod;
    n.namespace_ = ns;
    n.container = container;
    n.kubernetes = true;
    return n;
  }
  size_t dot = base.find('.', 1);
  n.pod = dot == std::string::npos ? base : base.substr(0, dot);
  if (n.pod.empty()) n.pod = base;
  return n;
}

bool StreamRule::Matches(const StreamName& name) const {
  auto ok = [](const std::shared_ptr<RE2>& re, const std::string& v) {
    return !re || RE2::FullMatch(v, *re);
  };
  return ok(namespace_re, name.namespace_) && ok(pod_re, name.pod) &&
         ok(container_re, name.container);
}

const KnownChain* Routing::FindChain(const std::string& name) const {
  for (const auto& c : chains) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Placement Place(const Routing& routing, const match::Registry& registry, StreamName name) {
  Placement p;
  if (!routing.node_override.empty()) name.pod = routing.node_override;
  p.name = std::move(name);
  const StreamRule* rule = nullptr;
  for (const auto& r : routing.rules) {
    if (r.Matches(p.name)) {
      rule = &r;
      break;
    }
  }
  if (rule != nullptr) {
    p.signer = rule->signer;
    p.tz_offset_seconds = rule->tz_offset_seconds;
  }
  if (!routing.forced_chain.empty()) {
    // The command line names every stream's chain (and maybe its family).
    p.chain = routing.forced_chain;
    p.family = routing.forced_family;
  } else if (rule != nullptr && !rule->chain.empty() && rule->chain != "auto") {
    // A configured chain fixes the family; so does a family name or alias
    // used as a chain name. Any other name is a chain whose family is
    // detected.
    p.chain = rule->chain;
    if (const KnownChain* kc = routing.FindChain(rule->chain)) {
      p.family = kc->family;
    } else {
      p.family = registry.Find(rule->chain);
    }
  }
  return p;
}

void CompletePlacement(const Routing& routing, const match::Registry& registry, int family,
                       Placement* p) {
  p->family = family;
  if (family >= 0 && registry.file(static_cast<size_t>(family)).signer_role) p->signer = true;
  if (p->chain.empty()) {
    // Nothing named the chain: the family's only configured chain, else one
    // chain per family and namespace, so namespaces never merge.
    const KnownChain* only = nullptr;
    int count = 0;
    for (const auto& c : routing.chains) {
      if (family >= 0 && c.family == family) {
        only = &c;
        ++count;
      }
    }
    if (count == 1) {
      p->chain = only->name;
    } else {
      std::string fam = family >= 0 ? registry.file(static_cast<size_t>(family)).family : "unknown";
      p->chain = p->name.namespace_.empty() ? fam : fam + "/" + p->name.namespace_;
    }
  }
  if (!p->tz_offset_seconds) {
    const KnownChain* kc = routing.FindChain(p->chain);
    p->tz_offset_seconds = kc != nullptr ? kc->tz_offset_seconds : 0;
  }
}

}  // namespace qw::record
