// Files for unit tests: a temporary folder removed with everything in it at
// the end of the test, and whole-file reads and writes.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace qw::testing {

class TempDir {
 public:
  // /tmp/<prefix>-XXXXXX
  explicit TempDir(const std::string& prefix = "qw-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole file ("" when it cannot be read).
inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Replaces the file with `data`; `executable` makes it mode 0755.
inline void WriteFile(const std::string& path, const std::string& data, bool executable = false) {
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << data;
  }
  if (executable) ::chmod(path.c_str(), 0755);
}

}  // namespace qw::testing
