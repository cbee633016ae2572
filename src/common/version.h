// The release this build is (--version, the report's generator line).
#pragma once

#include <string_view>

namespace qw {

inline constexpr std::string_view kVersion = "0.1.0";

}  // namespace qw
