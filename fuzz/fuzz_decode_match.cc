// Arbitrary bytes as a log stream: decode (auto format), join, time and
// match with every built-in family. Must never crash or hang.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "match/registry.h"
#include "source/stream_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto registry = std::move(*qw::match::Registry::LoadEmbedded());
  static std::vector<std::unique_ptr<qw::match::FamilyMatcher>> matchers = [] {
    std::vector<std::unique_ptr<qw::match::FamilyMatcher>> m;
    for (size_t i = 0; i < registry->size(); ++i) {
      m.push_back(std::move(*qw::match::FamilyMatcher::Create(registry->file(i))));
    }
    return m;
  }();
  qw::source::StreamOptions opt;
  opt.buffer_bytes = 4096;
  opt.max_line_bytes = 2048;
  opt.chunk_bytes = 1024;
  for (auto& m : matchers) {
    qw::source::StreamReader reader(
        qw::source::MemorySource(std::string(reinterpret_cast<const char*>(data), size), 97), opt);
    reader.SetMatcher(m.get());
    while (reader.NextChunk()) {
      for (const auto& r : reader.records()) {
        qw::Signal s;
        m->Match(reader.text(r), &s);
      }
    }
  }
  return 0;
}
