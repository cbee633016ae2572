// Arbitrary text as each of the small files quorumwatch reads back from its
// state_dir or from the operator: the ban outbox, the Alertmanager state, a
// control request, and a pattern file. The first byte picks the reader.
// Refused or accepted, never a crash; what is accepted is consistent.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "app/control.h"
#include "match/pattern_file.h"
#include "sink/alertmanager_sink.h"
#include "sink/ban_outbox.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      size_t bad = 0;
      auto items = qw::sink::ParseOutboxText(text, "fuzz", &bad);
      for (const auto& i : items) {
        // Every decision read back has the key it is found by.
        if (i.entry.decision.idempotency_key.empty()) std::abort();
      }
      break;
    }
    case 1: {
      std::map<std::string, std::shared_ptr<const qw::sink::Alert>> restored;
      std::string error = qw::sink::ParseAlertmanagerState(text, &restored);
      (void)error;
      break;
    }
    case 2: {
      auto r = qw::app::ParseRequest(text);
      if (r && r->node.empty()) std::abort();
      break;
    }
    default: {
      auto p = qw::match::LoadPatternText("fuzz.yaml", text);
      (void)p;
      break;
    }
  }
  return 0;
}
