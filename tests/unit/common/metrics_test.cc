#include "common/metrics.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

using namespace qw;

TEST_CASE("an empty registry renders nothing") {
  Metrics m;
  CHECK(m.Render() == "");
  CHECK(m.Value("nothing_here", {}) == 0);
}

TEST_CASE("counters and gauges render in the text format, families sorted by name") {
  Metrics m;
  m.Counter("b_total", {{"x", "1"}}, "B things.")->fetch_add(3);
  m.Gauge("a_level", {}, "A level.")->store(-7);
  m.Counter("b_total", {{"x", "0"}}, "B things.")->fetch_add(1);
  CHECK(m.Render() ==
        "# HELP a_level A level.\n"
        "# TYPE a_level gauge\n"
        "a_level -7\n"
        "# HELP b_total B things.\n"
        "# TYPE b_total counter\n"
        "b_total{x=\"0\"} 1\n"
        "b_total{x=\"1\"} 3\n");
}

TEST_CASE("label values and help text are escaped") {
  CHECK(RenderLabels({}) == "");
  CHECK(RenderLabels({{"a", "x"}, {"b", "y"}}) == "{a=\"x\",b=\"y\"}");
  CHECK(RenderLabels({{"p", "C:\\dir"}}) == "{p=\"C:\\\\dir\"}");
  CHECK(RenderLabels({{"q", "say \"hi\""}}) == "{q=\"say \\\"hi\\\"\"}");
  CHECK(RenderLabels({{"n", "two\nlines"}}) == "{n=\"two\\nlines\"}");
  // Other bytes (UTF-8, tabs, braces, commas) pass as they are.
  CHECK(RenderLabels({{"u", "nöde\t{a,b}"}}) == "{u=\"nöde\t{a,b}\"}");

  Metrics m;
  m.Counter("c_total", {{"node", "a\"b\\c\nd"}}, "Help with a \\ and a\nnewline; \"quotes\" stay.");
  CHECK(m.Render() ==
        "# HELP c_total Help with a \\\\ and a\\nnewline; \"quotes\" stay.\n"
        "# TYPE c_total counter\n"
        "c_total{node=\"a\\\"b\\\\c\\nd\"} 0\n");
  // Value() takes the labels unescaped, as they were registered.
  m.Counter("c_total", {{"node", "a\"b\\c\nd"}}, "")->fetch_add(2);
  CHECK(m.Value("c_total", {{"node", "a\"b\\c\nd"}}) == 2);
}

TEST_CASE("the same name and labels give the same cell") {
  Metrics m;
  auto* a = m.Counter("x_total", {{"k", "1"}}, "X.");
  auto* b = m.Counter("x_total", {{"k", "1"}}, "X.");
  auto* c = m.Counter("x_total", {{"k", "2"}}, "X.");
  auto* d = m.Counter("y_total", {{"k", "1"}}, "Y.");
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != d);
  a->fetch_add(5);
  b->fetch_add(1);
  CHECK(m.Value("x_total", {{"k", "1"}}) == 6);
  CHECK(m.Value("x_total", {{"k", "2"}}) == 0);
  CHECK(m.Value("x_total", {{"k", "3"}}) == 0);  // absent

  auto* g1 = m.Gauge("g", {}, "G.");
  auto* g2 = m.Gauge("g", {}, "G.");
  CHECK(g1 == g2);
  g1->store(4);
  g2->fetch_sub(10);
  CHECK(m.Value("g", {}) == -6);
  // One series line per cell.
  std::string text = m.Render();
  CHECK(text.find("x_total{k=\"1\"} 6\n") != std::string::npos);
  CHECK(text.find("x_total{k=\"1\"}", text.find("x_total{k=\"1\"}") + 1) == std::string::npos);
}

TEST_CASE("cells stay valid while many more are registered") {
  Metrics m;
  auto* first = m.Counter("many_total", {{"i", "first"}}, "Many.");
  first->fetch_add(1);
  for (int i = 0; i < 5000; ++i) m.Counter("many_total", {{"i", std::to_string(i)}}, "Many.");
  first->fetch_add(1);
  CHECK(m.Value("many_total", {{"i", "first"}}) == 2);
  CHECK(m.Counter("many_total", {{"i", "first"}}, "Many.") == first);
}

TEST_CASE("SetFamily replaces the family's series as a whole") {
  Metrics m;
  m.SetFamily("node_height", "gauge", "Height.", {{{{"node", "a"}}, 10}, {{{"node", "b"}}, 12}});
  CHECK(m.Value("node_height", {{"node", "a"}}) == 10);
  CHECK(m.Render() ==
        "# HELP node_height Height.\n"
        "# TYPE node_height gauge\n"
        "node_height{node=\"a\"} 10\n"
        "node_height{node=\"b\"} 12\n");

  // b is gone, c is new, a changed.
  m.SetFamily("node_height", "gauge", "Height.", {{{{"node", "a"}}, 11}, {{{"node", "c"}}, 1}});
  CHECK(m.Render() ==
        "# HELP node_height Height.\n"
        "# TYPE node_height gauge\n"
        "node_height{node=\"a\"} 11\n"
        "node_height{node=\"c\"} 1\n");
  CHECK(m.Value("node_height", {{"node", "b"}}) == 0);

  // Empty: the family stays declared, without samples.
  m.SetFamily("node_height", "gauge", "Height.", {});
  CHECK(m.Render() == "# HELP node_height Height.\n# TYPE node_height gauge\n");

  // Counter-typed families and values that are not integers.
  m.SetFamily("missed_total", "counter", "Missed.", {{{}, 3}});
  m.SetFamily("age_seconds", "gauge", "Age.",
              {{{{"k", "half"}}, 0.5},
               {{{"k", "nan"}}, std::nan("")},
               {{{"k", "inf"}}, std::numeric_limits<double>::infinity()},
               {{{"k", "neg"}}, -2.25},
               {{{"k", "tenth"}}, 0.1},
               {{{"k", "tiny"}}, 1.5e-300},
               {{{"k", "huge"}}, 1e300}});
  std::string text = m.Render();
  CHECK(text.find("# TYPE missed_total counter\nmissed_total 3\n") != std::string::npos);
  CHECK(text.find("age_seconds{k=\"half\"} 0.5\n") != std::string::npos);
  CHECK(text.find("age_seconds{k=\"nan\"} NaN\n") != std::string::npos);
  CHECK(text.find("age_seconds{k=\"inf\"} +Inf\n") != std::string::npos);
  CHECK(text.find("age_seconds{k=\"neg\"} -2.25\n") != std::string::npos);
  // The shortest form that reads back exactly.
  CHECK(text.find("age_seconds{k=\"tenth\"} 0.1\n") != std::string::npos);
  CHECK(text.find("age_seconds{k=\"tiny\"} 1.5e-300\n") != std::string::npos);
  CHECK(text.find("age_seconds{k=\"huge\"} 1e+300\n") != std::string::npos);
  // Families are rendered in name order whatever their kind.
  CHECK(text.find("# HELP age_seconds") < text.find("# HELP missed_total"));
  CHECK(text.find("# HELP missed_total") < text.find("# HELP node_height"));
}

TEST_CASE("large counts render as integers") {
  Metrics m;
  m.Counter("big_total", {}, "Big.")->store(1'000'000'000'000ULL);
  CHECK(m.Render().find("big_total 1000000000000\n") != std::string::npos);
}

TEST_CASE("ComponentCounters: the four counters, labelled by kind and component") {
  Metrics m;
  ComponentCounters c = ComponentCounters::For(&m, "source", "file");
  c.received->fetch_add(10);
  c.processed->fetch_add(8);
  c.dropped->fetch_add(1);
  c.errors->fetch_add(2);
  MetricLabels l = {{"kind", "source"}, {"component", "file"}};
  CHECK(m.Value("quorumwatch_component_received_total", l) == 10);
  CHECK(m.Value("quorumwatch_component_processed_total", l) == 8);
  CHECK(m.Value("quorumwatch_component_dropped_total", l) == 1);
  CHECK(m.Value("quorumwatch_component_errors_total", l) == 2);
  std::string text = m.Render();
  CHECK(text.find("# TYPE quorumwatch_component_received_total counter\n") != std::string::npos);
  CHECK(
      text.find("quorumwatch_component_received_total{kind=\"source\",component=\"file\"} 10\n") !=
      std::string::npos);
  CHECK(text.find("quorumwatch_component_errors_total{kind=\"source\",component=\"file\"} 2\n") !=
        std::string::npos);

  // The same component again: the same cells; another one: its own.
  ComponentCounters again = ComponentCounters::For(&m, "source", "file");
  CHECK(again.received == c.received);
  CHECK(again.errors == c.errors);
  ComponentCounters stage = ComponentCounters::For(&m, "stage", "match");
  CHECK(stage.received != c.received);
  CHECK(m.Value("quorumwatch_component_received_total",
                {{"kind", "stage"}, {"component", "match"}}) == 0);
}

TEST_CASE("detached ComponentCounters share nothing and stay out of registries") {
  Metrics m;
  ComponentCounters a = ComponentCounters::Detached();
  ComponentCounters b = ComponentCounters::Detached();
  ComponentCounters n = ComponentCounters::For(nullptr, "sink", "jsonl");
  REQUIRE(a.received != nullptr);
  REQUIRE(n.received != nullptr);
  CHECK(a.received != b.received);
  CHECK(a.received != n.received);
  CHECK(a.received != a.processed);
  a.received->fetch_add(1);
  CHECK(b.received->load() == 0);
  CHECK(m.Render() == "");
}

TEST_CASE("increments from many threads are all counted, while others register and render") {
  Metrics m;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100'000;
  auto* shared = m.Counter("shared_total", {}, "Shared.");
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, shared, t] {
      // Each thread also registers cells of its own (looked up under the
      // registry's lock) and one cell every thread shares by name.
      auto* own = m.Counter("own_total", {{"thread", std::to_string(t)}}, "Own.");
      for (int i = 0; i < kPerThread; ++i) {
        shared->fetch_add(1, std::memory_order_relaxed);
        own->fetch_add(1, std::memory_order_relaxed);
        if (i % 1000 == 0) {
          m.Counter("by_name_total", {}, "By name.")->fetch_add(1);
          m.Gauge("gauge", {{"thread", std::to_string(t)}}, "G.")->store(i);
          m.SetFamily("replaced", "gauge", "R.",
                      {{{{"thread", std::to_string(t)}}, static_cast<double>(i)}});
        }
      }
    });
  }
  // Render concurrently: every render must be complete lines.
  std::thread renderer([&m] {
    for (int i = 0; i < 200; ++i) {
      std::string text = m.Render();
      CHECK((text.empty() || text.back() == '\n'));
    }
  });
  for (auto& th : threads) th.join();
  renderer.join();

  CHECK(m.Value("shared_total", {}) == kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    CHECK(m.Value("own_total", {{"thread", std::to_string(t)}}) == kPerThread);
    CHECK(m.Value("gauge", {{"thread", std::to_string(t)}}) == kPerThread - 1000);
  }
  CHECK(m.Value("by_name_total", {}) == kThreads * (kPerThread / 1000));
  // SetFamily replaced whole: exactly one thread's series remains.
  std::string text = m.Render();
  size_t replaced = 0;
  for (size_t p = text.find("\nreplaced{"); p != std::string::npos;
       p = text.find("\nreplaced{", p + 1)) {
    ++replaced;
  }
  CHECK(replaced == 1);
}
