// Arbitrary text as a checkpoint file (state_dir/checkpoint.json): refused
// or accepted, never a crash. When it decodes, its detector state goes into
// a detector for its chains, the nodes it names are added (which restores
// their saved state), and the detector runs on for two hours of signals.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/event.h"
#include "common/signal.h"
#include "common/time.h"
#include "detect/detector.h"
#include "detect/state_codec.h"
#include "detect/thresholds.h"
#include "pipeline/checkpoint.h"

namespace {

class Discard : public qw::EventOutput {
 public:
  void Emit(qw::Event) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qw;
  auto cp = pipeline::DecodeCheckpoint(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!cp.has_value() || cp->detector.is_null()) return 0;

  std::vector<detect::ChainSpec> chains;
  for (const auto& [name, family] : cp->chains) {
    detect::ChainSpec c;
    c.name = name;
    c.family = family;
    chains.push_back(std::move(c));
  }
  if (chains.empty()) return 0;
  Discard out;
  detect::Detector det(std::move(chains), &out);
  if (!detect::DecodeStateJson(cp->detector, &det).has_value()) return 0;

  // Add a node for every saved key "chain|namespace/pod" whose chain exists.
  std::vector<int> nodes;
  if (const auto it = cp->detector.find("nodes"); it != cp->detector.end() && it->is_object()) {
    for (const auto& [key, value] : it->items()) {
      const size_t bar = key.find('|');
      if (bar == std::string::npos) continue;
      const std::string chain = key.substr(0, bar);
      const std::string rest = key.substr(bar + 1);
      const size_t slash = rest.find('/');
      detect::NodeSpec spec;
      spec.namespace_ = slash == std::string::npos ? "" : rest.substr(0, slash);
      spec.name = slash == std::string::npos ? rest : rest.substr(slash + 1);
      for (int c = 0; c < static_cast<int>(det.chain_count()); ++c) {
        if (det.chain(c).spec.name == chain) spec.chain = c;
      }
      if (spec.chain < 0 || spec.name.empty()) continue;
      const int n = det.AddNode(std::move(spec));
      det.AttachStream(n);
      nodes.push_back(n);
    }
  }
  // Run on from the latest time the state could hold.
  Nanos t = cp->written > 0 ? cp->written : 1'700'000'000 * kSecond;
  int64_t height = 1;
  for (int step = 0; step < 120; ++step) {
    t += 60 * kSecond;
    det.OnTick(t);
    for (int n : nodes) {
      if ((step + n) % 3 == 0) continue;  // some nodes fall behind
      Signal s;
      s.kind = SignalKind::kBlockCommitted;
      s.height = height;
      det.OnSignal(n, t, s, "committed");
    }
    ++height;
  }
  return 0;
}
