// Result<T>: the return type of fallible set-up code (config, pattern files,
// opening inputs). Per-line problems are counted, never returned as errors.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace qw {

struct Error {
  std::string message;  // complete, operator-readable: "file:line: reason"
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> Fail(std::string message) {
  return tl::unexpected<Error>(Error{std::move(message)});
}

}  // namespace qw
