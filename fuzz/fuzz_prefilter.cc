// Differential: arbitrary bytes as a buffer of records, matched by every
// family with its libhs prefilter (Hyperscan or Vectorscan) and with RE2
// alone. The signals must be the same, record for record; any difference
// aborts (a prefilter that loses or invents a match).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "match/matcher.h"
#include "match/registry.h"

namespace {

struct Pair {
  std::unique_ptr<qw::match::FamilyMatcher> with, without;
};

std::vector<Pair>& Matchers() {
  static std::vector<Pair> pairs = [] {
    std::vector<Pair> out;
    auto reg = qw::match::Registry::LoadEmbedded();
    if (!reg) std::abort();
    static std::unique_ptr<qw::match::Registry> keep = std::move(*reg);
    for (size_t i = 0; i < keep->size(); ++i) {
      Pair p;
      auto a = qw::match::FamilyMatcher::Create(keep->file(i), keep->Prefilter(i));
      auto b = qw::match::FamilyMatcher::Create(keep->file(i));
      if (!a || !b) std::abort();
      p.with = std::move(*a);
      p.without = std::move(*b);
      out.push_back(std::move(p));
    }
    return out;
  }();
  return pairs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string buf(reinterpret_cast<const char*>(data), size);
  for (auto& p : Matchers()) {
    const std::string d = qw::match::CompareMatchers(*p.with, *p.without, buf);
    if (!d.empty()) {
      std::fprintf(stderr, "prefilter and RE2 disagree: %s\n", d.c_str());
      std::abort();
    }
  }
  return 0;
}
