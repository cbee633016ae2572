#include "common/metrics.h"

#include <charconv>
#include <cmath>

namespace qw {
namespace {

void AppendEscaped(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
}

void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::floor(v) && std::fabs(v) < 9e15) {
    out += std::to_string(static_cast<int64_t>(v));
  } else {
    // The shortest text that reads back as the same double ("0.1", not
    // "0.10000000000000001").
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

}  // namespace

std::string RenderLabels(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out.push_back(',');
    first = false;
    out += k;
    out += "=\"";
    AppendEscaped(out, v);
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

Metrics::Family& Metrics::FamilyFor(std::string_view name, std::string_view type,
                                    std::string_view help) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{}).first;
    it->second.type = std::string(type);
    it->second.help = std::string(help);
  }
  return it->second;
}

std::atomic<uint64_t>* Metrics::Counter(std::string_view name, const MetricLabels& labels,
                                        std::string_view help) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, "counter", help);
  std::string key = RenderLabels(labels);
  auto it = f.counters.find(key);
  if (it != f.counters.end()) return it->second;
  std::atomic<uint64_t>* cell = &counter_cells_.emplace_back(0);
  f.counters.emplace(std::move(key), cell);
  return cell;
}

std::atomic<int64_t>* Metrics::Gauge(std::string_view name, const MetricLabels& labels,
                                     std::string_view help) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, "gauge", help);
  std::string key = RenderLabels(labels);
  auto it = f.gauges.find(key);
  if (it != f.gauges.end()) return it->second;
  std::atomic<int64_t>* cell = &gauge_cells_.emplace_back(0);
  f.gauges.emplace(std::move(key), cell);
  return cell;
}

void Metrics::SetFamily(std::string_view name, std::string_view type, std::string_view help,
                        std::vector<std::pair<MetricLabels, double>> series) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, type, help);
  f.values.clear();
  for (auto& [labels, v] : series) f.values[RenderLabels(labels)] = v;
}

std::string Metrics::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.reserve(4096);
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " ";
    for (char c : f.help) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out.push_back(c);
      }
    }
    out += "\n# TYPE " + name + " " + f.type + "\n";
    for (const auto& [labels, cell] : f.counters) {
      out += name + labels + " ";
      AppendNumber(out, static_cast<double>(cell->load(std::memory_order_relaxed)));
      out.push_back('\n');
    }
    for (const auto& [labels, cell] : f.gauges) {
      out += name + labels + " ";
      AppendNumber(out, static_cast<double>(cell->load(std::memory_order_relaxed)));
      out.push_back('\n');
    }
    for (const auto& [labels, v] : f.values) {
      out += name + labels + " ";
      AppendNumber(out, v);
      out.push_back('\n');
    }
  }
  return out;
}

double Metrics::Value(std::string_view name, const MetricLabels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  std::string key = RenderLabels(labels);
  const Family& f = it->second;
  if (auto c = f.counters.find(key); c != f.counters.end()) return static_cast<double>(c->second->load());
  if (auto g = f.gauges.find(key); g != f.gauges.end()) return static_cast<double>(g->second->load());
  if (auto v = f.values.find(key); v != f.values.end()) return v->second;
  return 0;
}

ComponentCounters ComponentCounters::For(Metrics* m, std::string_view kind,
                                         std::string_view component) {
  if (m == nullptr) return Detached();
  MetricLabels l = {{"kind", std::string(kind)}, {"component", std::string(component)}};
  ComponentCounters c;
  c.received = m->Counter("quorumwatch_component_received_total", l,
                          "Items (lines, records, events) a component received.");
  c.processed = m->Counter("quorumwatch_component_processed_total", l,
                           "Items a component finished: passed on, matched, or delivered.");
  c.dropped = m->Counter("quorumwatch_component_dropped_total", l,
                         "Items a component dropped (bad input, full queue).");
  c.errors = m->Counter("quorumwatch_component_errors_total", l,
                        "Errors a component met (failed deliveries, cut lines, read errors).");
  return c;
}

ComponentCounters ComponentCounters::Detached() {
  // A process-wide registry nobody renders; a fresh label set per call keeps
  // detached components from sharing cells.
  static Metrics detached;
  static std::atomic<uint64_t> next{0};
  return For(&detached, "detached", std::to_string(next.fetch_add(1)));
}

}  // namespace qw
