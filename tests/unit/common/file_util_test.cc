#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include <doctest/doctest.h>

using namespace qw;

namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/qw-file-util-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

std::string Read(const std::string& path) {
  auto r = ReadWholeFile(path);
  REQUIRE_MESSAGE(r, path);
  return *r;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

TEST_CASE("WriteFileAtomic keeps one older generation under `previous`") {
  std::string dir = TempDir();
  std::string path = dir + "/state.json", prev = path + ".prev";

  // The first write: nothing to keep.
  REQUIRE(WriteFileAtomic(path, "one\n", prev));
  CHECK(Read(path) == "one\n");
  CHECK_FALSE(Exists(prev));

  REQUIRE(WriteFileAtomic(path, "two\n", prev));
  CHECK(Read(path) == "two\n");
  CHECK(Read(prev) == "one\n");

  // Only one generation is kept; no temporary file is left behind.
  REQUIRE(WriteFileAtomic(path, "three\n", prev));
  CHECK(Read(path) == "three\n");
  CHECK(Read(prev) == "two\n");
  CHECK_FALSE(Exists(path + ".tmp"));

  // Without `previous` nothing else is touched.
  REQUIRE(WriteFileAtomic(path, "four\n"));
  CHECK(Read(path) == "four\n");
  CHECK(Read(prev) == "two\n");

  for (const auto& f : {path, prev}) ::unlink(f.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("WriteFileAtomic never leaves `path` missing while it keeps the older generation") {
  // A reader (the tests, an operator's cat, another process) that opens the
  // file while it is being replaced finds a whole file, old or new.
  std::string dir = TempDir();
  std::string path = dir + "/alerts.json", prev = path + ".prev";
  REQUIRE(WriteFileAtomic(path, "gen 0\n", prev));

  std::atomic<bool> done{false};
  std::atomic<long> opened{0}, missing{0}, torn{0};
  std::thread reader([&] {
    while (!done.load()) {
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        missing.fetch_add(1);
        continue;
      }
      char buf[64];
      ssize_t n = ::read(fd, buf, sizeof buf);
      ::close(fd);
      std::string got(buf, n > 0 ? static_cast<size_t>(n) : 0);
      if (got.rfind("gen ", 0) != 0 || got.back() != '\n') torn.fetch_add(1);
      opened.fetch_add(1);
    }
  });
  // Writes go on until the reader has looked many times (or a generous cap).
  int gen = 1;
  for (; gen < 100000 && (gen < 300 || opened.load() < 3000); ++gen) {
    REQUIRE(WriteFileAtomic(path, "gen " + std::to_string(gen) + "\n", prev));
  }
  done = true;
  reader.join();
  CHECK(opened.load() > 0);
  CHECK(missing.load() == 0);
  CHECK(torn.load() == 0);
  CHECK(Read(path) == "gen " + std::to_string(gen - 1) + "\n");
  CHECK(Read(prev) == "gen " + std::to_string(gen - 2) + "\n");

  for (const auto& f : {path, prev}) ::unlink(f.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("WriteFileAtomic: a folder that does not exist is named in the error, nothing written") {
  auto r = WriteFileAtomic("/nonexistent-qw-dir/x.json", "x", "/nonexistent-qw-dir/x.json.prev");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("/nonexistent-qw-dir/x.json.tmp: ") == 0);
}
