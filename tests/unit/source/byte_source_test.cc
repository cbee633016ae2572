// ByteSource under an OpenFiles bound: many files read in turn through a
// few descriptors give exactly the bytes of each file, whatever the order
// of reads; the bound holds; a file replaced while parked is an error.
#include <doctest/doctest.h>
#include <dirent.h>
#include <zstd.h>

#include <string>
#include <vector>

#include "source/byte_source.h"
#include "test_files.h"

using namespace qw;
using qw::testing::TempDir;

namespace {

// Descriptors this process has open now.
size_t OpenDescriptors() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n - 1;  // the directory's own
}

void Write(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
  std::fclose(f);
}

std::string Content(int i, size_t size) {
  std::string s;
  while (s.size() < size) s += "file " + std::to_string(i) + " line " + std::to_string(s.size()) + "\n";
  s.resize(size);
  return s;
}

std::string Zstd(const std::string& plain) {
  std::string out(ZSTD_compressBound(plain.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), plain.data(), plain.size(), 3);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// Reads until `want` bytes or the end: a source may hand back less per read.
std::string ReadSome(source::ByteSource& s, size_t want) {
  std::string out;
  char buf[512];
  while (out.size() < want) {
    ssize_t n = s.Read(buf, std::min(sizeof buf, want - out.size()));
    REQUIRE_MESSAGE(n >= 0, s.error());
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

TEST_CASE("forty files read round-robin through at most three descriptors") {
  TempDir dir("qw-bytes");
  constexpr int kFiles = 40;
  std::vector<std::string> want;
  for (int i = 0; i < kFiles; ++i) {
    // Every fifth file compressed: its decoder state survives parking.
    want.push_back(Content(i, 5000 + 137 * i));
    std::string name = dir / ("f" + std::to_string(i) + (i % 5 == 0 ? ".log.zst" : ".log"));
    Write(name, i % 5 == 0 ? Zstd(want.back()) : want.back());
  }
  const size_t before = OpenDescriptors();
  source::OpenFiles files(3);
  std::vector<std::unique_ptr<source::ByteSource>> src;
  for (int i = 0; i < kFiles; ++i) {
    auto s = source::OpenFile(dir / ("f" + std::to_string(i) + (i % 5 == 0 ? ".log.zst" : ".log")),
                              &files);
    REQUIRE(s);
    src.push_back(std::move(*s));
    CHECK(files.open_now() <= 3);
    CHECK(OpenDescriptors() <= before + 3);
  }
  std::vector<std::string> got(kFiles);
  std::vector<bool> done(kFiles, false);
  int left = kFiles;
  char buf[701];  // odd size: reads end mid-line and mid-frame
  for (int round = 0; left > 0; ++round) {
    REQUIRE(round < 100000);
    // Not plain round-robin: a stride that changes which file is least
    // recently read.
    for (int k = 0; k < kFiles; ++k) {
      int i = (k * 7 + round) % kFiles;
      if (done[i]) continue;
      ssize_t n = src[i]->Read(buf, sizeof buf);
      REQUIRE_MESSAGE(n >= 0, src[i]->error());
      if (n == 0) {
        done[i] = true;
        --left;
        continue;
      }
      got[i].append(buf, static_cast<size_t>(n));
      CHECK(files.open_now() <= 3);
    }
    CHECK(OpenDescriptors() <= before + 3);
  }
  for (int i = 0; i < kFiles; ++i) CHECK_MESSAGE(got[i] == want[i], "file " << i);
  CHECK(files.parks() > 0);
  src.clear();
  CHECK(files.open_now() == 0);
  CHECK(OpenDescriptors() == before);
}

TEST_CASE("a file replaced while its descriptor is parked is a read error, not another file") {
  TempDir dir("qw-bytes");
  Write(dir / "a.log", Content(1, 4000));
  Write(dir / "b.log", Content(2, 4000));
  source::OpenFiles files(1);
  auto a = source::OpenFile(dir / "a.log", &files);
  REQUIRE(a);
  REQUIRE(ReadSome(**a, 1000) == Content(1, 4000).substr(0, 1000));
  auto b = source::OpenFile(dir / "b.log", &files);  // parks a
  REQUIRE(b);
  CHECK(files.open_now() == 1);
  // Rotation while parked: a new file under the old name.
  REQUIRE(std::rename((dir / "a.log").c_str(), (dir / "a.log.1").c_str()) == 0);
  Write(dir / "a.log", Content(3, 4000));
  char buf[1000];
  CHECK((*a)->Read(buf, sizeof buf) == -1);
  CHECK((*a)->error().find("replaced") != std::string::npos);
  // b is untouched and still reads on.
  CHECK(ReadSome(**b, 4000) == Content(2, 4000));
}

TEST_CASE("without a bound a source keeps its descriptor and reads pipes") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  REQUIRE(::write(p[1], "one\ntwo\n", 8) == 8);
  ::close(p[1]);
  source::OpenFiles files(1);
  // A pipe cannot be parked: it reads on even when a bounded file opens.
  auto s = source::OpenFile("/proc/self/fd/" + std::to_string(p[0]), &files);
  REQUIRE(s);
  ::close(p[0]);
  TempDir dir("qw-bytes");
  Write(dir / "x.log", "x\n");
  auto x = source::OpenFile(dir / "x.log", &files);
  REQUIRE(x);
  CHECK(ReadSome(**s, 100) == "one\ntwo\n");
  CHECK(ReadSome(**x, 100) == "x\n");
  CHECK(files.open_now() == 2);  // the pipe was never parked
}

TEST_CASE("consumed: bytes taken from the file, compressed ones for zstd (replay's progress)") {
  TempDir dir("qw-bytes");
  const std::string plain = Content(1, 100'000);
  const std::string packed = Zstd(plain);
  REQUIRE(packed.size() < plain.size());
  Write(dir / "a.log", plain);
  Write(dir / "b.log.zst", packed);
  for (const std::string name : {"a.log", "b.log.zst"}) {
    INFO(name);
    auto s = source::OpenFile(dir / name);
    REQUIRE(s);
    const uint64_t size = name == "a.log" ? plain.size() : packed.size();
    CHECK((*s)->consumed() <= size);
    CHECK(ReadSome(**s, 1'000'000) == plain);
    CHECK((*s)->consumed() == size);  // all of the file, not the bytes it expands to
  }
  auto m = source::MemorySource("abcdef", 4);
  char buf[8];
  CHECK(m->Read(buf, sizeof buf) == 4);
  CHECK(m->consumed() == 4);
}
