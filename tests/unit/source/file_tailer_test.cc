// The file tailer on an in-memory file system: every step is a Poll the
// test makes, so nothing sleeps and nothing races. The in-memory file
// system sends no change notifications, like a network file system: the
// tailer must find everything by scanning. The last cases use the machine's
// file system and inotify (in a temporary folder).
#include "source/file_tailer.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/mem_file_system.h"
#include "match/registry.h"
#include "record/record_stage.h"
#include "test_files.h"

using namespace qw;
using namespace qw::source;

namespace {

// Records what the tailer reports, in order.
class Recorder : public TailSink {
 public:
  uint32_t OnOpen(const TailedFile& f) override {
    uint32_t id = next_++;
    opened.push_back(f);
    log.push_back("open " + std::to_string(id) + " " + f.path + " @" + std::to_string(f.offset));
    return id;
  }
  void OnData(uint32_t id, std::string_view bytes, Nanos) override { data[id].append(bytes); }
  void OnTruncated(uint32_t id, const FileIdentity& identity) override {
    log.push_back("truncated " + std::to_string(id));
    data[id].append("|");
    truncated_as[id] = identity;
  }
  void OnCaughtUp(uint32_t id) override { caught_up[id]++; }
  void OnClose(uint32_t id) override { log.push_back("close " + std::to_string(id)); }
  bool WantsData(uint32_t id) override { return !full.count(id); }

  std::vector<TailedFile> opened;
  std::vector<std::string> log;
  std::map<uint32_t, std::string> data;
  std::map<uint32_t, int> caught_up;
  std::map<uint32_t, bool> full;
  std::map<uint32_t, FileIdentity> truncated_as;

 private:
  uint32_t next_ = 0;
};

FileTailer::Options Opts(bool from_end = false) {
  FileTailer::Options o;
  o.include = {"/logs/*.log"};
  o.read_from_end = from_end;
  o.read_bytes = 7;  // small reads: records cross them
  o.rescan_interval = 0;
  return o;
}

}  // namespace

TEST_CASE("read_from decides for files present at the very first start; later files from 0") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "old a\n");
  FileTailer t(Opts(/*from_end=*/true), &fs);
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.opened.size() == 1);
  CHECK(r.opened[0].offset == 6);
  fs.Append("/logs/a.log", "new a\n");
  fs.Append("/logs/b.log", "all of b\n");
  t.Poll(&r, 1);
  CHECK(r.data[0] == "new a\n");
  CHECK(r.data[1] == "all of b\n");
  CHECK(r.opened[1].offset == 0);
  CHECK(t.caught_up());
}

TEST_CASE("files are found in name order; excluded ones are not") {
  MemFileSystem fs;
  for (const char* n : {"/logs/c.log", "/logs/a.log", "/logs/b.log", "/logs/skip.log"}) {
    fs.Append(n, "x\n");
  }
  auto o = Opts();
  o.exclude = {"/logs/skip*"};
  FileTailer t(o, &fs);
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.opened.size() == 3);
  CHECK(r.opened[0].path == "/logs/a.log");
  CHECK(r.opened[1].path == "/logs/b.log");
  CHECK(r.opened[2].path == "/logs/c.log");
}

TEST_CASE("rename rotation: the old file is read to its end, the new one followed; new opens first") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "one\n");
  FileTailer t(Opts(), &fs);
  Recorder r;
  t.Poll(&r, 0);
  fs.Append("/logs/a.log", "two\n");  // written before the rotation, not read yet
  fs.Rename("/logs/a.log", "/logs/a.log.1");
  fs.Append("/logs/a.log", "three\n");
  t.Poll(&r, 1);
  CHECK(r.data[0] == "one\ntwo\n");
  CHECK(r.data[1] == "three\n");
  // The old file is closed only after a later scan: a rotation seen between
  // the rename and the new file's creation finds its successor first.
  CHECK(r.log == std::vector<std::string>{"open 0 /logs/a.log @0", "open 1 /logs/a.log @0"});
  t.Poll(&r, 2);
  CHECK(r.log == std::vector<std::string>{"open 0 /logs/a.log @0", "open 1 /logs/a.log @0", "close 0"});
  CHECK(t.stats().rotations == 1);
  CHECK(t.open_files() == 1);
}

TEST_CASE("rotation seen between the rename and the creation: the successor opens before the close") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "one\n");
  FileTailer t(Opts(), &fs);
  Recorder r;
  t.Poll(&r, 0);
  fs.Rename("/logs/a.log", "/logs/a.log.1");
  t.Poll(&r, 1);  // a.log is gone and nothing replaces it yet
  CHECK(t.open_files() == 1);
  fs.Append("/logs/a.log", "two\n");
  t.Poll(&r, 2);
  CHECK(r.log == std::vector<std::string>{"open 0 /logs/a.log @0", "open 1 /logs/a.log @0", "close 0"});
  CHECK(r.data[1] == "two\n");
}

TEST_CASE("copytruncate: a file emptied in place is read again from 0") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "first line\n");
  FileTailer t(Opts(), &fs);
  Recorder r;
  t.Poll(&r, 0);
  fs.Truncate("/logs/a.log");
  fs.Append("/logs/a.log", "after\n");
  t.Poll(&r, 1);
  CHECK(r.data[0] == "first line\n|after\n");
  CHECK(t.stats().truncations == 1);
}

TEST_CASE("copytruncate: the file is known by its new first bytes, so a restart resumes in them") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "a first line, long enough to be past the new content\n");
  FileTailer t(Opts(), &fs);
  Recorder r;
  t.Poll(&r, 0);
  const FileIdentity before = r.opened.at(0).identity;
  fs.Truncate("/logs/a.log");
  fs.Append("/logs/a.log", "after\n");
  t.Poll(&r, 1);
  REQUIRE(r.truncated_as.count(0) == 1);
  const FileIdentity after = r.truncated_as[0];
  CHECK(after.dev == before.dev);
  CHECK(after.ino == before.ino);
  CHECK(after.fp_len == 6);  // "after\n": what the file held when the cut was seen
  CHECK(after.fingerprint != before.fingerprint);
  fs.Append("/logs/a.log", "more\n");

  // A restart with the position a checkpoint took after "after\n".
  FileTailer again(Opts(), &fs);
  again.Restore({SavedPosition{"/logs/a.log", after, 6, "", kNoTime}});
  Recorder r2;
  again.Poll(&r2, 2);
  REQUIRE(r2.opened.size() == 1);
  CHECK(r2.opened[0].offset == 6);
  CHECK(r2.data[0] == "more\n");

  // The identity from before the cut no longer names the file: read from 0.
  FileTailer stale(Opts(), &fs);
  stale.Restore({SavedPosition{"/logs/a.log", before, 6, "", kNoTime}});
  Recorder r3;
  stale.Poll(&r3, 3);
  CHECK(r3.data[0] == "after\nmore\n");
}

// What a checkpoint would say of the file `path` names now, read to `offset`.
SavedPosition SavedAt(MemFileSystem& fs, const std::string& path, uint64_t offset) {
  FileTailer t(Opts(), &fs);
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.opened.size() == 1);
  return SavedPosition{path, r.opened[0].identity, offset, "cometbft", kNoTime};
}

TEST_CASE("rotated while down (kubelet): the rest of the old file is read under its old name first") {
  MemFileSystem fs;
  const std::string link = "/logs/pod_ns_app-0123456789ab.log";
  fs.Append("/pods/ns_pod/app/0.log", "read before the stop\n");
  fs.Symlink("/pods/ns_pod/app/0.log", link);
  const SavedPosition saved = SavedAt(fs, link, 21);
  // While quorumwatch is down: more lines, kubelet's rotation, a new file.
  fs.Append("/pods/ns_pod/app/0.log", "written while down\n");
  fs.Rename("/pods/ns_pod/app/0.log", "/pods/ns_pod/app/0.log.20261206-021500");
  fs.Append("/pods/ns_pod/app/0.log", "in the new file\n");

  std::vector<std::string> logged;
  FileTailer::Options o = Opts();
  o.log = [&logged](const std::string& m) { logged.push_back(m); };
  FileTailer t(o, &fs);
  t.Restore({saved});
  Recorder r;
  t.Poll(&r, 1);
  REQUIRE(r.opened.size() == 2);
  CHECK(r.opened[0].path == link);  // the old file, known by its old path's name
  CHECK(r.opened[0].offset == 21);
  CHECK(r.opened[0].saved_family == "cometbft");
  CHECK(r.opened[1].path == link);  // the new one, from its start
  CHECK(r.opened[1].offset == 0);
  CHECK(r.data[0] == "written while down\n");
  CHECK(r.data[1] == "in the new file\n");
  CHECK(t.stats().recovered == 1);
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find("0.log.20261206-021500") != std::string::npos);
  // The old file is closed once read (it is not in the globs).
  t.Poll(&r, 2);
  CHECK(r.log.back() == "close 0");
  CHECK(t.open_files() == 1);
}

TEST_CASE("rotated while down (rename in place): found beside the path; read to the end already: not opened") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "one\n");
  const SavedPosition saved = SavedAt(fs, "/logs/a.log", 4);
  fs.Append("/logs/a.log", "two\n");
  fs.Rename("/logs/a.log", "/logs/a.log.1");
  fs.Append("/logs/a.log", "three\n");
  {
    FileTailer t(Opts(), &fs);
    t.Restore({saved});
    Recorder r;
    t.Poll(&r, 1);
    CHECK(r.data[0] == "two\n");
    CHECK(r.data[1] == "three\n");
  }
  {
    // Everything of it read before the stop: nothing to open.
    SavedPosition all = saved;
    all.offset = 8;
    FileTailer t(Opts(), &fs);
    t.Restore({all});
    Recorder r;
    t.Poll(&r, 1);
    REQUIRE(r.opened.size() == 1);
    CHECK(r.data[0] == "three\n");
    CHECK(t.stats().recovered == 0);
  }
}

TEST_CASE("rotated twice while down: the piece the checkpoint never knew is read whole, older pieces not") {
  MemFileSystem fs;
  const std::string dir = "/pods/ns_pod/app/";
  const std::string link = "/logs/pod_ns_app-0123456789ab.log";
  fs.Symlink(dir + "0.log", link);
  fs.Append(dir + "0.log", "oldest piece, read long ago\n");
  fs.Rename(dir + "0.log", dir + "0.log.20261206-010000");
  fs.Append(dir + "0.log.20261206-005000.gz", std::string("\x1f\x8b compressed", 13));
  fs.Append(dir + "0.log", "known\n");
  const SavedPosition saved = SavedAt(fs, link, 6);
  // Down: written, rotated, a new file written and rotated too, a third.
  fs.Append(dir + "0.log", "after the checkpoint\n");
  fs.Rename(dir + "0.log", dir + "0.log.20261206-020000");
  fs.Append(dir + "0.log", "second file\n");
  fs.Rename(dir + "0.log", dir + "0.log.20261206-030000");
  fs.Append(dir + "0.log.20261206-020000.gz", std::string("\x1f\x8b newer, compressed", 21));
  fs.Append(dir + "0.log", "current\n");

  FileTailer t(Opts(), &fs);
  t.Restore({saved}, kNoTime);
  Recorder r;
  t.Poll(&r, 1);
  REQUIRE(r.opened.size() == 3);
  for (const auto& f : r.opened) CHECK(f.path == link);
  CHECK(r.data[0] == "after the checkpoint\n");  // the known file, from its offset
  CHECK(r.data[1] == "second file\n");           // unknown to the checkpoint: whole
  CHECK(r.data[2] == "current\n");
  CHECK(t.stats().recovered == 2);
  t.Poll(&r, 2);
  CHECK(t.open_files() == 1);
}

TEST_CASE("rotated while down, the known file already removed: pieces written after the checkpoint") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "known\n");
  const SavedPosition saved = SavedAt(fs, "/logs/a.log", 6);
  fs.Append("/logs/b.log.1", "another file's piece\n");  // not named like a.log
  fs.Remove("/logs/a.log");                                // as if compressed away
  FileStat st;
  REQUIRE(fs.Stat("/logs/b.log.1", &st));
  const Nanos written = st.mtime;  // the checkpoint: after that write
  fs.Append("/logs/a.log", "new, rotated while down\n");
  fs.Rename("/logs/a.log", "/logs/a.log.1");
  fs.Append("/logs/a.log", "current\n");
  {
    FileTailer t(Opts(), &fs);
    t.Restore({saved}, written);
    Recorder r;
    t.Poll(&r, 1);
    REQUIRE(r.opened.size() == 2);  // b.log.1 is not a piece of a.log
    CHECK(r.opened[0].path == "/logs/a.log");
    CHECK(r.data[0] == "new, rotated while down\n");
    CHECK(r.data[1] == "current\n");
  }
  {
    // Without the checkpoint's time nothing tells which pieces are newer.
    FileTailer t(Opts(), &fs);
    t.Restore({saved}, kNoTime);
    Recorder r;
    t.Poll(&r, 1);
    REQUIRE(r.opened.size() == 1);
    CHECK(r.data[0] == "current\n");
  }
}

TEST_CASE("rotated while down: an inode with other first bytes, or a path outside the globs, is left alone") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "original first line\n");
  SavedPosition saved = SavedAt(fs, "/logs/a.log", 20);
  fs.Rename("/logs/a.log", "/logs/a.log.1");
  fs.Append("/logs/a.log", "new\n");
  SavedPosition reused = saved;
  reused.identity.fingerprint ^= 1;  // the inode now holds another file
  FileTailer t(Opts(), &fs);
  SavedPosition other = saved;
  other.path = "/elsewhere/a.log";  // another source's file
  t.Restore({reused, other});
  Recorder r;
  t.Poll(&r, 1);
  REQUIRE(r.opened.size() == 1);
  CHECK(r.opened[0].path == "/logs/a.log");
  CHECK(t.stats().recovered == 0);
}

TEST_CASE("a removed file is read to its end, then closed") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "one\n");
  FileTailer t(Opts(), &fs);
  Recorder r;
  t.Poll(&r, 0);
  fs.Append("/logs/a.log", "last words\n");
  fs.Remove("/logs/a.log");
  t.Poll(&r, 1);
  CHECK(r.data[0] == "one\nlast words\n");
  CHECK(t.open_files() == 1);  // closed at a later scan
  t.Poll(&r, 2);
  CHECK(r.log.back() == "close 0");
  CHECK(t.open_files() == 0);
  CHECK(t.stats().rotations == 0);
}

TEST_CASE("symlinks: the glob's path is kept, the target's identity counts") {
  MemFileSystem fs;
  fs.Append("/pods/ns_pod/app/0.log", "from the pod folder\n");
  fs.Symlink("/pods/ns_pod/app/0.log", "/logs/pod_ns_app-0123456789ab.log");
  FileTailer t(Opts(), &fs);
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.opened.size() == 1);
  CHECK(r.opened[0].path == "/logs/pod_ns_app-0123456789ab.log");
  CHECK(r.data[0] == "from the pod folder\n");
  // The container restarts: a new file and a new link; the old link goes.
  fs.Append("/pods/ns_pod/app/1.log", "restarted\n");
  fs.Symlink("/pods/ns_pod/app/1.log", "/logs/pod_ns_app-abcdef012345.log");
  fs.Remove("/logs/pod_ns_app-0123456789ab.log");
  t.Poll(&r, 1);
  CHECK(r.data[1] == "restarted\n");
  t.Poll(&r, 2);
  CHECK(r.log.back() == "close 0");
}

TEST_CASE("a checkpoint's position counts only for the same identity (inode and first bytes)") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "line one\nline two\n");
  fs.Append("/logs/b.log", "b line\n");
  FileStat a, b;
  REQUIRE(fs.Stat("/logs/a.log", &a));
  REQUIRE(fs.Stat("/logs/b.log", &b));
  std::vector<SavedPosition> saved;
  SavedPosition pa;
  pa.path = "/logs/a.log";
  pa.identity = FileIdentity{a.dev, a.ino, 0, 0};
  {
    // The fingerprint of a's first 9 bytes, as the tailer computes it.
    FileTailer probe(Opts(), &fs);
    Recorder pr;
    probe.Poll(&pr, 0);
    pa.identity = pr.opened[0].identity;
  }
  pa.offset = 9;
  pa.family = "cometbft";
  saved.push_back(pa);
  SavedPosition pb;
  pb.path = "/logs/b.log";
  pb.identity = FileIdentity{b.dev, b.ino, 12345, 7};  // same inode, other content
  pb.offset = 3;
  saved.push_back(pb);
  FileTailer t(Opts(/*from_end=*/true), &fs);
  t.Restore(saved);
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.opened.size() == 2);
  CHECK(r.opened[0].offset == 9);
  CHECK(r.opened[0].saved_family == "cometbft");
  CHECK(r.data[0] == "line two\n");
  // b is not the file the checkpoint knew: with a checkpoint, a file it does
  // not know appeared meanwhile and is read from its beginning.
  CHECK(r.opened[1].offset == 0);
  CHECK(r.data[1] == "b line\n");
}

TEST_CASE("back-pressure: a stream that wants no data is read later, nothing is lost") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "one\ntwo\n");
  FileTailer t(Opts(), &fs);
  Recorder r;
  r.full[0] = true;
  t.Poll(&r, 0);
  CHECK(r.data[0].empty());
  CHECK(t.more());
  CHECK_FALSE(t.caught_up());
  r.full.clear();
  t.Poll(&r, 1);
  CHECK(r.data[0] == "one\ntwo\n");
  CHECK(t.caught_up());
}

TEST_CASE("a read error is counted and the file read again later") {
  MemFileSystem fs;
  fs.Append("/logs/a.log", "one\n");
  FileTailer t(Opts(), &fs);
  Recorder r;
  fs.FailReads("/logs/a.log", true);
  t.Poll(&r, 0);
  CHECK(t.stats().read_errors >= 1);
  CHECK(r.data[0].empty());
  fs.FailReads("/logs/a.log", false);
  t.Poll(&r, 1);
  CHECK(r.data[0] == "one\n");
}

namespace {

// The tailer feeding the record stage, as live reading wires them.
class StageSink : public TailSink {
 public:
  explicit StageSink(record::RecordStage* stage) : stage_(stage) {}
  uint32_t OnOpen(const TailedFile& f) override {
    record::Origin o;
    o.path = f.path;
    o.name = record::NameFromPath(f.path);
    o.start_offset = f.offset;
    stage_->Open(next_, o);
    return next_++;
  }
  void OnData(uint32_t id, std::string_view bytes, Nanos mtime) override {
    stage_->Feed(id, bytes, mtime);
  }
  void OnTruncated(uint32_t id, const FileIdentity& identity) override {
    stage_->Truncate(id, identity);
  }
  void OnCaughtUp(uint32_t id) override { stage_->AtEnd(id, 0); }
  void OnClose(uint32_t id) override { stage_->Close(id, true); }
  bool WantsData(uint32_t) override { return true; }

  std::vector<std::string> Records(uint32_t id) {
    std::vector<std::string> out;
    record::Output& o = *stage_->output(id);
    for (; o.head < o.ready; ++o.head) {
      if (o.entries[o.head].kind == record::EntryKind::kRecord) {
        out.emplace_back(o.text(o.entries[o.head]));
      }
    }
    return out;
  }

 private:
  record::RecordStage* stage_;
  uint32_t next_ = 0;
};

}  // namespace

TEST_CASE("CRI P/F parts across reads and polls make one record; an incomplete last line waits") {
  auto reg = match::Registry::LoadEmbedded();
  REQUIRE(reg);
  record::Routing routing;
  routing.forced_chain = "c";
  routing.forced_family = (*reg)->Find("cometbft-signers");  // no continuation rules
  record::RecordStage stage(**reg, routing, {}, [](const std::string&) {});
  StageSink sink(&stage);
  MemFileSystem fs;
  const std::string stamp = "2025-01-02T03:04:05.000000000Z stdout ";
  fs.Append("/logs/a.log", stamp + "P first half, \n");
  FileTailer t(Opts(), &fs);
  t.Poll(&sink, 0);
  CHECK(sink.Records(0).empty());
  CHECK(stage.ResumePosition(0) == 0);  // a restart would read the P part again
  fs.Append("/logs/a.log", stamp + "F second half\n" + stamp + "F no newline yet");
  t.Poll(&sink, 1);
  CHECK(sink.Records(0) == std::vector<std::string>{"first half, second half"});
  fs.Append("/logs/a.log", ", now\n");
  t.Poll(&sink, 2);
  CHECK(sink.Records(0) == std::vector<std::string>{"no newline yet, now"});
  FileStat st;
  REQUIRE(fs.Stat("/logs/a.log", &st));
  CHECK(stage.ResumePosition(0) == st.size);
}

TEST_CASE("a scan reads only the files whose size changed") {
  // Without notifications every scan looks at every file; a stat each, and
  // a read only for a file that grew (or shrank).
  MemFileSystem fs;
  for (const char* name : {"a", "b", "c"}) fs.Append(std::string("/logs/") + name + ".log", "first\n");
  FileTailer t(Opts(), &fs);
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.data.size() == 3);
  const uint64_t reads = t.stats().reads;
  t.Poll(&r, 1);
  CHECK(t.stats().reads == reads);  // nothing changed: nothing read
  fs.Append("/logs/b.log", "second\n");
  t.Poll(&r, 2);
  CHECK(r.data[1] == "first\nsecond\n");
  // "second\n" is 7 bytes, one read of 7: a full read, so one more to see the end.
  CHECK(t.stats().reads == reads + 2);
  fs.Truncate("/logs/c.log", 0);
  fs.Append("/logs/c.log", "x\n");
  t.Poll(&r, 3);
  CHECK(r.data[2] == "first\n|x\n");
  CHECK(t.stats().reads == reads + 3);
  auto [bytes, files] = t.Lag();
  CHECK(bytes == 0);
  CHECK(files == 0);
}

namespace {

// The machine's file system, whose change notifications say nothing of
// appends (as inotify on some network and FUSE file systems): folder
// changes and renames still come.
class NoWriteNotifications : public FileSystem {
 public:
  std::vector<std::string> Glob(const std::string& p) override { return real_->Glob(p); }
  bool Stat(const std::string& p, FileStat* st) override { return real_->Stat(p, st); }
  std::string RealPath(const std::string& p) override { return real_->RealPath(p); }
  std::vector<std::string> ListDir(const std::string& d) override { return real_->ListDir(d); }
  std::unique_ptr<ReadableFile> Open(const std::string& p) override { return real_->Open(p); }
  std::unique_ptr<Watcher> NewWatcher() override {
    class W : public Watcher {
     public:
      explicit W(std::unique_ptr<Watcher> w) : w_(std::move(w)) {}
      int fd() const override { return w_->fd(); }
      int WatchDir(const std::string& p) override { return w_->WatchDir(p); }
      int WatchFile(const std::string& p) override { return w_->WatchFile(p); }
      void Unwatch(int h) override { w_->Unwatch(h); }
      void Drain(std::vector<int>*, bool* other) override {
        std::vector<int> dropped;
        w_->Drain(&dropped, other);
      }

     private:
      std::unique_ptr<Watcher> w_;
    };
    return std::make_unique<W>(real_->NewWatcher());
  }

 private:
  FileSystem* real_ = FileSystem::Default();
};

void AppendTo(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app) << text;
}

FileTailer::Options RealOpts(const std::string& dir, std::vector<std::string>* log = nullptr) {
  FileTailer::Options o;
  o.include = {dir + "/*.log"};
  o.read_from_end = false;
  o.rescan_interval = 250 * kMillisecond;
  o.notified_rescan_interval = 5 * kSecond;
  if (log != nullptr) o.log = [log](const std::string& m) { log->push_back(m); };
  return o;
}

}  // namespace

TEST_CASE("inotify: appends are read when notified; the scan is a rare safety net") {
  qw::testing::TempDir dir("qw-tail-inotify");
  AppendTo(dir / "a.log", "one\n");
  AppendTo(dir / "b.log", "two\n");
  FileTailer t(RealOpts(dir.path()), FileSystem::Default());
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.data.size() == 2);
  CHECK(t.notified());
  CHECK(t.next_scan() == 5 * kSecond);
  const uint64_t reads = t.stats().reads;
  AppendTo(dir / "b.log", "three\n");
  t.Poll(&r, kMillisecond);  // no scan due: the notification names b.log
  CHECK(r.data[1] == "two\nthree\n");
  CHECK(t.stats().reads == reads + 1);  // b.log only
  t.Poll(&r, 2 * kMillisecond);
  CHECK(t.stats().reads == reads + 1);  // nothing new, nothing read
}

TEST_CASE("inotify: a rotated file's successor in the folder the path leads to is found at once") {
  // kubelet's layout: the glob finds a symlink, the file is elsewhere; the
  // successor is created after the rename, with no change in the glob's
  // folder. The file's own folder is watched, so no periodic scan is needed.
  qw::testing::TempDir dir("qw-tail-inotify");
  std::filesystem::create_directories(dir / "pods/ns_p_uid/app");
  std::filesystem::create_directories(dir / "containers");
  const std::string file = dir / "pods/ns_p_uid/app/0.log";
  AppendTo(file, "before\n");
  std::filesystem::create_symlink(file, dir / "containers/p_ns_app-0123.log");
  FileTailer::Options o = RealOpts(dir / "containers");
  FileTailer t(o, FileSystem::Default());
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.opened.size() == 1);
  CHECK(t.notified());
  std::filesystem::rename(file, file + ".20261206-010203");
  t.Poll(&r, kMillisecond);  // the rename is seen: the path names nothing now
  REQUIRE(r.opened.size() == 1);
  AppendTo(file, "after\n");
  t.Poll(&r, 2 * kMillisecond);  // long before the next periodic scan (5 s)
  REQUIRE(r.opened.size() == 2);
  CHECK(r.opened[1].path == dir / "containers/p_ns_app-0123.log");
  CHECK(r.data[1] == "after\n");
  t.Poll(&r, 3 * kMillisecond);
  CHECK(r.log.back() == "close 0");  // the old one, read to its end
}

TEST_CASE("inotify silent about appends: found by the scans, then every poll_interval") {
  qw::testing::TempDir dir("qw-tail-silent");
  AppendTo(dir / "a.log", "one\n");
  std::vector<std::string> log;
  NoWriteNotifications fs;
  FileTailer t(RealOpts(dir.path(), &log), &fs);
  Recorder r;
  t.Poll(&r, 0);
  REQUIRE(r.data[0] == "one\n");
  CHECK(t.notified());
  AppendTo(dir / "a.log", "two\n");
  t.Poll(&r, kSecond);  // no notification, no scan due: not seen yet
  CHECK(r.data[0] == "one\n");
  t.Poll(&r, 5 * kSecond);  // the safety scan finds it
  CHECK(r.data[0] == "one\ntwo\n");
  CHECK(t.notified());  // once may be a notification on its way
  CHECK(log.empty());
  AppendTo(dir / "a.log", "three\n");
  t.Poll(&r, 10 * kSecond);  // twice in a row: silent
  CHECK(r.data[0] == "one\ntwo\nthree\n");
  CHECK_FALSE(t.notified());
  REQUIRE(log.size() == 1);
  CHECK(log[0].find("grew without a change notification") != std::string::npos);
  CHECK(t.next_scan() == 10 * kSecond + 250 * kMillisecond);
  AppendTo(dir / "a.log", "four\n");
  t.Poll(&r, 10 * kSecond + 250 * kMillisecond);
  CHECK(r.data[0] == "one\ntwo\nthree\nfour\n");
  CHECK(log.size() == 1);  // said once
}

TEST_CASE("inotify: a removed file is closed at the next short scan, not the rare one") {
  // Its node is retired when its stream ends; waiting for the safety scan
  // (5 s) would let it look stalled first.
  qw::testing::TempDir dir("qw-tail-inotify");
  AppendTo(dir / "a.log", "one\n");
  FileTailer t(RealOpts(dir.path()), FileSystem::Default());
  Recorder r;
  t.Poll(&r, 0);
  CHECK(t.next_scan() == 5 * kSecond);
  std::filesystem::remove(dir / "a.log");
  t.Poll(&r, kMillisecond);  // the folder's notification: scanned, found gone
  CHECK(t.open_files() == 1);
  CHECK(t.next_scan() == kMillisecond + 250 * kMillisecond);
  t.Poll(&r, kMillisecond + 250 * kMillisecond);
  CHECK(r.log.back() == "close 0");
  CHECK(t.open_files() == 0);
  CHECK(t.next_scan() == kMillisecond + 250 * kMillisecond + 5 * kSecond);
}

// FileSystem::ReadMany: every read as its ReadAt would do it, whether the
// kernel lets the machine's file system use io_uring or it falls back to
// one pread each (both are tried; UseIoUring(false) forces the fallback).
TEST_CASE("ReadMany reads exactly what ReadAt reads, with io_uring and without") {
  qw::testing::TempDir dir("qw-readmany");
  FileSystem* fs = FileSystem::Default();
  std::vector<std::unique_ptr<ReadableFile>> files;
  std::vector<std::string> texts;
  for (int i = 0; i < 5; ++i) {
    std::string text;
    for (int k = 0; k < 40 * (i + 1); ++k) text += "file " + std::to_string(i) + " line " + std::to_string(k) + "\n";
    const std::string path = dir / ("f" + std::to_string(i));
    AppendTo(path, text);
    files.push_back(fs->Open(path));
    REQUIRE(files.back() != nullptr);
    texts.push_back(text);
  }
  for (bool uring : {true, false}) {
    UseIoUring(uring);
    INFO("method: " << ReadManyMethod());
    if (!uring) CHECK(std::string(ReadManyMethod()) == "pread");
    // 150 reads: more than one submission (64), at offsets inside, at the
    // end and past the end of each file, of sizes below and above the rest.
    std::vector<std::string> bufs(150, std::string(300, '\0'));
    std::vector<ReadOp> ops;
    for (size_t k = 0; k < bufs.size(); ++k) {
      const size_t f = k % files.size();
      const uint64_t size = texts[f].size();
      const uint64_t offsets[] = {0, size / 3, size - 10, size, size + 100};
      const uint64_t off = offsets[(k / files.size()) % 5];
      ops.push_back(ReadOp{files[f].get(), bufs[k].data(), 100 + (k % 3) * 100, off});
    }
    fs->ReadMany(ops.data(), ops.size());
    for (size_t k = 0; k < ops.size(); ++k) {
      const size_t f = k % files.size();
      // The model: the file's bytes from the offset, at most n of them.
      const std::string expect =
          ops[k].offset >= texts[f].size() ? std::string() : texts[f].substr(ops[k].offset, ops[k].n);
      REQUIRE(ops[k].result == static_cast<ssize_t>(expect.size()));
      CHECK(std::string(ops[k].buf, static_cast<size_t>(ops[k].result)) == expect);
    }
  }
  UseIoUring(true);
}

TEST_CASE("inotify: a round's appends to many files are read in one batch, long ones read on, truncation seen") {
  for (bool uring : {true, false}) {
    UseIoUring(uring);
    INFO("method: " << ReadManyMethod());
    qw::testing::TempDir dir("qw-tail-batch");
    const int kFiles = 70;  // more than one batch (FileTailer::kBatchFiles)
    std::vector<std::string> expect(kFiles);
    for (int i = 0; i < kFiles; ++i) {
      const std::string line = "start " + std::to_string(i) + "\n";
      AppendTo(dir / ("f" + std::to_string(100 + i) + ".log"), line);
      expect[i] = line;
    }
    FileTailer t(RealOpts(dir.path()), FileSystem::Default());
    Recorder r;
    t.Poll(&r, 0);
    REQUIRE(r.opened.size() == kFiles);
    REQUIRE(t.notified());
    // One round of appends to every file: file 3 gets 40 KiB (more than a
    // batched first read), file 5 is truncated and written again shorter
    // (copytruncate between two rounds).
    for (int i = 0; i < kFiles; ++i) {
      const std::string path = dir / ("f" + std::to_string(100 + i) + ".log");
      if (i == 5) {
        std::filesystem::resize_file(path, 0);
        AppendTo(path, "new\n");
        expect[i] += "|new\n";
        continue;
      }
      std::string more;
      const int lines = i == 3 ? 4000 : 1;
      for (int k = 0; k < lines; ++k) more += "file " + std::to_string(i) + " append " + std::to_string(k) + "\n";
      AppendTo(path, more);
      expect[i] += more;
    }
    t.Poll(&r, kMillisecond);  // no scan due: the notifications name them all
    for (int i = 0; i < kFiles; ++i) {
      INFO("file " << i);
      CHECK(r.data[static_cast<uint32_t>(i)] == expect[i]);
    }
    CHECK(t.stats().truncations == 1);
  }
  UseIoUring(true);
}
