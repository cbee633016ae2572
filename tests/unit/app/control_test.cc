// Operator control through the state directory (app/control.h) and
// `quorumwatch bans list` (app/bans_cmd.h): request files written and read
// back, bad request files answered and removed, and the listing's reading
// of a checkpoint, which must use only its "detector" object.
#include "app/control.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "app/bans_cmd.h"
#include "common/event.h"
#include "common/json.h"
#include "detect/detector.h"
#include "detect/state_codec.h"
#include "test_files.h"

namespace qw::app {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

// What a function prints on stdout and stderr (file descriptors 1 and 2).
struct Captured {
  std::string out, err;
  int status = 0;
};

Captured Capture(const std::function<int()>& fn) {
  std::fflush(stdout);
  std::fflush(stderr);
  char out_path[] = "/tmp/qw-control-out-XXXXXX";
  char err_path[] = "/tmp/qw-control-err-XXXXXX";
  int out_fd = ::mkstemp(out_path), err_fd = ::mkstemp(err_path);
  REQUIRE(out_fd >= 0);
  REQUIRE(err_fd >= 0);
  int saved_out = ::dup(1), saved_err = ::dup(2);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  Captured c;
  c.status = fn();
  std::fflush(stdout);
  std::fflush(stderr);
  ::dup2(saved_out, 1);
  ::dup2(saved_err, 2);
  ::close(saved_out);
  ::close(saved_err);
  ::close(out_fd);
  ::close(err_fd);
  c.out = ReadFile(out_path);
  c.err = ReadFile(err_path);
  ::unlink(out_path);
  ::unlink(err_path);
  return c;
}

class NoEvents : public EventOutput {
 public:
  void Emit(Event) override {}
};

constexpr Nanos kBannedAt = 1735788894000000000;  // 2025-01-02T03:34:54Z
constexpr Nanos kPeriod = 1735787094000000000;    // 2025-01-02T03:04:54Z

// A detector state with val-a banned and val-b fine but held.
nlohmann::ordered_json State() {
  NoEvents none;
  detect::ChainSpec chain;
  chain.name = "cosmoshub";
  detect::Detector d({chain}, &none);
  for (const char* pod : {"val-a", "val-b"}) {
    detect::NodeSpec n;
    n.name = pod;
    n.namespace_ = "cosmos";
    n.chain = 0;
    d.AddNode(n);
  }
  detect::NodeState& a = d.mutable_node(0);
  a.ooc = true;
  a.ooc_since = kPeriod;
  a.period_open = true;
  a.period_start = kPeriod;
  a.period_reason = "stalled";
  a.banned = true;
  a.banned_at = kBannedAt;
  d.SetHold("val-b", true, kNoTime);
  return detect::EncodeStateJson(d);
}

TEST_CASE("requests are written as JSON and read back in submission order") {
  TempDir dir("qw-control-test");
  auto first = SubmitRequest(dir.path(), "hold", "cosmos/v\xC3\xA4l-\"a\"");
  auto second = SubmitRequest(dir.path(), "unban", "val-b");
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK(ReadFile(dir.path() + "/control/" + *first + ".json") ==
        "{\"op\":\"hold\",\"node\":\"cosmos/v\xC3\xA4l-\\\"a\\\"\"}\n");
  std::vector<std::string> errors;
  auto pending = PendingRequests(dir.path(), &errors);
  CHECK(errors.empty());
  REQUIRE(pending.size() == 2);
  CHECK(pending[0].name == *first);
  CHECK(pending[0].op == "hold");
  CHECK(pending[0].node == "cosmos/v\xC3\xA4l-\"a\"");
  CHECK(pending[1].op == "unban");
  CHECK(pending[1].node == "val-b");
  CompleteRequest(dir.path(), pending[0], "held: cosmos/v\xC3\xA4l-\"a\"");
  CHECK_FALSE(fs::exists(dir.path() + "/control/" + *first + ".json"));
  auto outcome = WaitForOutcome(dir.path(), *first, 0);
  REQUIRE(outcome.has_value());
  CHECK(*outcome == "held: cosmos/v\xC3\xA4l-\"a\"");
}

TEST_CASE("a bad request file is answered with the reason and removed; the others go on") {
  TempDir dir("qw-control-test");
  fs::create_directories(dir.path() + "/control");
  struct Bad {
    const char* name;
    const char* text;
    const char* reason;
  };
  const Bad bad[] = {
      {"01-text", "hold val-a", "not JSON: "},
      {"02-array", "[\"hold\",\"val-a\"]", "not a JSON object"},
      {"03-no-node", "{\"op\":\"hold\"}", "no \"node\" string"},
      {"04-empty-node", "{\"op\":\"hold\",\"node\":\"\"}", "no \"node\" string"},
      {"05-op-number", "{\"op\":1,\"node\":\"val-a\"}", "no \"op\" string"},
      {"06-op-unknown", "{\"op\":\"ban\",\"node\":\"val-a\"}",
       "op \"ban\" is not hold, release or unban"},
      {"07-cut", "{\"op\":\"hold\",\"no", "not JSON: "},
      {"08-invalid-utf8", "{\"op\":\"hold\",\"node\":\"\xFF\"}", "not JSON: "},
  };
  for (const Bad& b : bad) WriteFile(dir.path() + "/control/" + b.name + ".json", b.text);
  WriteFile(dir.path() + "/control/09-good.json", "{\"node\":\"val-a\",\"op\":\"release\",\"x\":1}");
  std::vector<std::string> errors;
  auto pending = PendingRequests(dir.path(), &errors);
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].name == "09-good");
  CHECK(pending[0].op == "release");
  CHECK(pending[0].node == "val-a");
  REQUIRE(errors.size() == std::size(bad));
  for (size_t i = 0; i < std::size(bad); ++i) {
    CAPTURE(bad[i].name);
    const std::string file = dir.path() + "/control/" + bad[i].name;
    CHECK(errors[i].rfind(file + ".json: not a valid request (" + bad[i].reason, 0) == 0);
    CHECK(errors[i].find("); removed") != std::string::npos);
    CHECK_FALSE(fs::exists(file + ".json"));
    std::string done = ReadFile(file + ".done");
    CHECK(done.rfind(std::string("error: not a valid request (") + bad[i].reason, 0) == 0);
    CHECK(done.back() == '\n');
  }
}

TEST_CASE("bans list reads only the checkpoint's detector state") {
  TempDir dir("qw-control-test");
  nlohmann::ordered_json cp = nlohmann::ordered_json::object();
  cp["version"] = 2;
  cp["written"] = 1;
  cp["streams"] = nlohmann::ordered_json::array({{{"path", "/x"}, {"offset", "not a number"}}});
  cp["pending_events"] = nlohmann::ordered_json::array({{{"anything", true}}});
  cp["some_future_key"] = {{"a", {1, 2}}};
  cp["detector"] = State();
  WriteFile(dir.path() + "/checkpoint.json", DumpJson(cp) + "\n");

  BansArgs args;
  args.op = "list";
  args.state_dir = dir.path();
  args.format = "json";
  Captured c = Capture([&] { return RunBans(args); });
  CHECK(c.status == 0);
  CHECK(c.err.empty());
  CHECK(c.out ==
        "{\"running\":false,\"holds\":[\"val-b\"],\"pending_requests\":[],\"nodes\":["
        "{\"node\":\"cosmoshub|cosmos/val-a\",\"state\":\"banned\","
        "\"since\":\"2025-01-02T03:04:54.000Z\",\"banned_at\":\"2025-01-02T03:34:54.000Z\","
        "\"reason\":\"stalled\",\"hold\":false,\"decisions_pending\":0,\"decisions_delivered\":0},"
        "{\"node\":\"cosmoshub|cosmos/val-b\",\"state\":\"ok\",\"since\":null,\"banned_at\":null,"
        "\"reason\":\"\",\"hold\":true,\"decisions_pending\":0,\"decisions_delivered\":0}]}\n");

  // Without a detector object: no nodes, and no error.
  cp.erase("detector");
  WriteFile(dir.path() + "/checkpoint.json", DumpJson(cp));
  c = Capture([&] { return RunBans(args); });
  CHECK(c.status == 0);
  CHECK(c.out == "{\"running\":false,\"holds\":[],\"pending_requests\":[],\"nodes\":[]}\n");
}

TEST_CASE("bans list: a damaged checkpoint is a clear error, not a crash") {
  TempDir dir("qw-control-test");
  BansArgs args;
  args.op = "list";
  args.state_dir = dir.path();
  const std::string path = dir.path() + "/checkpoint.json";

  WriteFile(path, "{\"version\":2,\"detector\":{\"version\":1,");
  Captured c = Capture([&] { return RunBans(args); });
  CHECK(c.status == 1);
  CHECK(c.out.empty());
  CHECK(c.err.rfind("quorumwatch: " + path + ": not valid JSON (parse error at line 1", 0) == 0);

  nlohmann::ordered_json cp = {{"version", 2}, {"detector", State()}};
  cp["detector"]["nodes"]["cosmoshub|cosmos/val-a"]["banned_at"] = "yesterday";
  WriteFile(path, DumpJson(cp));
  c = Capture([&] { return RunBans(args); });
  CHECK(c.status == 1);
  CHECK(c.err == "quorumwatch: " + path +
                     ": state: nodes[\"cosmoshub|cosmos/val-a\"].banned_at: expected an integer "
                     "or null\n");

  WriteFile(path, "[1,2]");
  c = Capture([&] { return RunBans(args); });
  CHECK(c.status == 1);
  CHECK(c.err == "quorumwatch: " + path + ": not a JSON object\n");
}

}  // namespace
}  // namespace qw::app
