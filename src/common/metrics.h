// Metrics: quorumwatch's own telemetry, rendered in the Prometheus text
// format by the metrics sink. Every source, stage and sink has the same four
// counters (received, processed, dropped, errors), labelled by kind and name,
// so one dashboard reads them all.
//
// Threading: every method is thread-safe. Counter and gauge cells are
// registered once (under a mutex) and then updated lock-free through the
// returned pointer, which stays valid for the registry's life.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qw {

// Label pairs in a fixed order per family: the same labels in another order
// would be another series.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  // A monotonically increasing count. Same (name, labels): same cell.
  std::atomic<uint64_t>* Counter(std::string_view name, const MetricLabels& labels,
                                 std::string_view help);
  // A value that goes up and down.
  std::atomic<int64_t>* Gauge(std::string_view name, const MetricLabels& labels,
                              std::string_view help);

  // A family whose series are replaced as a whole (e.g. one gauge per node,
  // rebuilt from each status snapshot). `type`: "gauge" or "counter".
  void SetFamily(std::string_view name, std::string_view type, std::string_view help,
                 std::vector<std::pair<MetricLabels, double>> series);

  // The whole registry in the Prometheus text exposition format (0.0.4).
  std::string Render() const;

  // The value of a registered cell (tests, health checks); 0 when absent.
  double Value(std::string_view name, const MetricLabels& labels) const;

 private:
  struct Family {
    std::string type, help;
    // Registered cells by rendered label set.
    std::map<std::string, std::atomic<uint64_t>*> counters;
    std::map<std::string, std::atomic<int64_t>*> gauges;
    // Replaced families.
    std::map<std::string, double> values;
  };
  Family& FamilyFor(std::string_view name, std::string_view type, std::string_view help);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;  // guarded by mu_
  std::deque<std::atomic<uint64_t>> counter_cells_;      // guarded by mu_ (growth only)
  std::deque<std::atomic<int64_t>> gauge_cells_;         // guarded by mu_ (growth only)
};

// Renders {a="x",b="y"} with the text format's escapes ("" for no labels).
std::string RenderLabels(const MetricLabels& labels);

// The four counters every component has:
//   quorumwatch_component_{received,processed,dropped,errors}_total
//   {kind="source|stage|sink", component="<name>"}
struct ComponentCounters {
  std::atomic<uint64_t>* received = nullptr;
  std::atomic<uint64_t>* processed = nullptr;
  std::atomic<uint64_t>* dropped = nullptr;
  std::atomic<uint64_t>* errors = nullptr;

  static ComponentCounters For(Metrics* m, std::string_view kind, std::string_view component);
  // For components built without a registry (tests, replay): private cells.
  static ComponentCounters Detached();
};

}  // namespace qw
