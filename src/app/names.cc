#include "app/names.h"

#include <re2/re2.h>

namespace qw::app {

StreamName NameFromPath(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') == std::string::npos
                                     ? 0
                                     : path.find_last_of('/') + 1);
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

}  // namespace qw::app
