// The report's bounded series (Thinned): at most its bound, spread evenly,
// the same for the same input; and the page's data element cannot be closed
// by what the logs say.
#include "app/report.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace qw;
using namespace qw::app;

TEST_CASE("Thinned keeps everything under its bound") {
  Thinned<int> t(8);
  for (int i = 0; i < 7; ++i) t.Add(i);
  CHECK(t.items() == std::vector<int>{0, 1, 2, 3, 4, 5, 6});
  CHECK(t.seen() == 7);
}

TEST_CASE("Thinned halves when full and then keeps every stride-th") {
  Thinned<int> t(8);
  // 0..7: the eighth fills it -> 0 2 4 6, stride 2; 8..15 adds 8 10 12 14
  // -> full again -> 0 4 8 12, stride 4; 16..19 adds 16.
  for (int i = 0; i < 20; ++i) t.Add(i);
  CHECK(t.items() == std::vector<int>{0, 4, 8, 12, 16});
  CHECK(t.seen() == 20);
  // A million in: under the bound, evenly spaced.
  Thinned<int> big(100);
  for (int i = 0; i < 1'000'000; ++i) big.Add(i);
  REQUIRE(big.items().size() < 100);
  REQUIRE(big.items().size() > 25);
  const int step = big.items()[1] - big.items()[0];
  for (size_t i = 1; i < big.items().size(); ++i) CHECK(big.items()[i] - big.items()[i - 1] == step);
}

TEST_CASE("a line with </script> in it stays inside the page's data") {
  Report::Options o;
  o.files = {"a</script><script>alert(1)</script>.log"};
  Report r(o);
  const std::string page = r.Page(kNoTime, {});
  CHECK(page.find("</script><script>alert") == std::string::npos);
  CHECK(page.find("a\\u003c/script>\\u003cscript>alert(1)\\u003c/script>.log") != std::string::npos);
}
