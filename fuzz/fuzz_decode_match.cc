// Arbitrary bytes as a log stream through the record stage (framing,
// runtime format detection and decoding, joins, family detection or a
// forced family, times) and then matched. Must never crash or hang.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "match/registry.h"
#include "record/record_stage.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto registry = std::move(*qw::match::Registry::LoadEmbedded());
  static std::vector<std::unique_ptr<qw::match::FamilyMatcher>> matchers = [] {
    std::vector<std::unique_ptr<qw::match::FamilyMatcher>> m;
    for (size_t i = 0; i < registry->size(); ++i) {
      m.push_back(std::move(*qw::match::FamilyMatcher::Create(registry->file(i))));
    }
    return m;
  }();
  // One stage per routing, kept across inputs (each input is a new stream):
  // a stage compiles each family's matcher once, which dominated the cost.
  static std::vector<std::unique_ptr<qw::record::RecordStage>> stages = [] {
    std::vector<std::unique_ptr<qw::record::RecordStage>> out;
    // -1: the family is detected from the records; else forced.
    for (int family = -1; family < static_cast<int>(registry->size()); ++family) {
      qw::record::Routing routing;
      if (family >= 0) {
        routing.forced_chain = "fuzz";
        routing.forced_family = family;
      }
      qw::record::StageOptions opt;
      opt.hold_records = 20;
      opt.hold_bytes = 4096;
      out.push_back(std::make_unique<qw::record::RecordStage>(*registry, routing, opt,
                                                              [](const std::string&) {}));
    }
    return out;
  }();
  static uint32_t next_id = 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (auto& owned : stages) {
    qw::record::RecordStage& stage = *owned;
    const uint32_t id = next_id++;
    qw::record::Origin origin;
    origin.path = "fuzz_ns_app-0123456789ab.log";
    origin.name = qw::record::NameFromPath(origin.path);
    origin.max_line_bytes = 2048;
    stage.Open(id, origin);
    for (size_t at = 0; at < bytes.size(); at += 97) {
      stage.Feed(id, bytes.substr(at, 97), 1'700'000'000LL * qw::kSecond);
      if (at % 3 == 0) {
        stage.AtEnd(id, static_cast<qw::Nanos>(at) * qw::kMillisecond);
        stage.Expire(static_cast<qw::Nanos>(at + 60) * qw::kMillisecond);
      }
    }
    stage.Close(id, false);
    const qw::record::Output& out = *stage.output(id);
    for (const auto& e : out.entries) {
      if (e.kind != qw::record::EntryKind::kRecord || e.family < 0) continue;
      qw::Signal s;
      matchers[static_cast<size_t>(e.family)]->Match(out.text(e), &s);
    }
    stage.Forget(id);
  }
  return 0;
}
