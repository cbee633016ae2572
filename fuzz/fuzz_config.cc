// Arbitrary text as a configuration file: refused or accepted, never a crash.
#include <cstdint>
#include <string>

#include "app/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = qw::app::ParseConfig("fuzz.yaml",
                                std::string(reinterpret_cast<const char*>(data), size));
  (void)c;
  return 0;
}
