// kafka_mock: librdkafka's mock cluster (real Kafka-protocol brokers on 127.0.0.1) as a process of
// its own, so that kcat and several quorumwatch processes of an integration test can share one
// cluster. tests/integration/kafka_mock.py drives it.
//
//   kafka_mock [--brokers N] [--topic NAME:PARTITIONS ...]
//
// Prints one line `bootstraps 127.0.0.1:P1,127.0.0.1:P2,...` on stdout once the brokers listen and
// the topics exist, then answers each command line on stdin with `ok` or `error REASON`:
//   topic NAME PARTITIONS   create a topic (replication factor min(3, N))
//   down ID / up ID         broker ID (1..N) drops its connections and refuses new ones / accepts
//                           them again (no leader change: its partitions stay unreachable)
//   leader TOPIC P ID       broker ID leads partition P of TOPIC from now on (the mock picks
//                           leaders at random: a test that needs two leaders sets them)
//   quit                    destroy the cluster and exit 0 (so does EOF on stdin, and SIGTERM,
//                           SIGINT or SIGHUP); the death of the parent sends SIGTERM.
// Exit status: 0 done, 1 the cluster could not be made, 2 usage.
//
// What the mock cluster of librdkafka 2.0.2 does (checked with Debian's kcat 1.7.1, which links
// the same librdkafka):
//  - Clients need no special property: the brokers listen on 127.0.0.1 and advertise 127.0.0.1
//    (no IPv6 attempt, so no broker.address.family=v4).
//  - Any Metadata request that names an unknown topic creates it, with 4 partitions and
//    replication factor min(3, N): a produce (kcat -P), kcat -L -t T, kcat -C and a group
//    subscription (kcat -G) all do, even with allow.auto.create.topics=false. So a test cannot
//    see "topic missing" against the mock, and a topic that needs another partition count must be
//    created (--topic, `topic`) before any client names it. CreateTopics (the admin API) is not
//    implemented; `topic` on an existing topic answers `error Broker: Topic already exists`.
//  - Consumer groups work: JoinGroup/SyncGroup/Heartbeat/OffsetCommit/OffsetFetch. Two kcat -G
//    members split 4 partitions 2+2; a second run of a group resumes from the committed offsets.
//    A group without a committed offset starts at auto.offset.reset (default latest: set
//    earliest to read what was produced before the consumer joined).
//  - Rebalances are slow by default. A lone first member is assigned after ~3 s. Any later
//    join (a second member, or a new run after the previous member closed cleanly) completes
//    only after about session.timeout.ms, whose default in 2.0.2 is 45000: ~45 s. A member
//    killed with SIGKILL loses its partitions after about session.timeout.ms, then the others
//    rebalance once more. Measured with kcat -G:
//      session.timeout.ms=3000 heartbeat.interval.ms=300: rejoin 2.5 s, second member 2 s,
//        killed member: revoke after 3.5 s, reassigned after 5 s;
//      session.timeout.ms=6000 heartbeat.interval.ms=500: rejoin 5.5 s, second member 5 s,
//        killed member: revoke after 6.5 s;
//      session.timeout.ms=2000 (or 1000): no member is ever assigned (the join never completes).
//    So tests use 3000..6000 with heartbeat.interval.ms a tenth of it.
//  - `down` closes the broker's connections and refuses new ones; no leader moves, so records
//    for partitions it leads wait until `up` (or fail after message.timeout.ms: kcat -P exits 1
//    with "Delivery failed"). Clients log connection errors meanwhile; those are not failures.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct TopicSpec {
  std::string name;
  int partitions = 0;
};

struct Args {
  int brokers = 3;
  std::vector<TopicSpec> topics;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "kafka_mock: %s\nusage: kafka_mock [--brokers N] [--topic NAME:PARTITIONS ...]\n",
               why);
  std::exit(2);
}

bool ParseInt(std::string_view s, int lo, int hi, int* out) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// Kafka's own rule for topic names; checked here because the mock takes any string.
bool ValidTopicName(std::string_view s) {
  if (s.empty() || s.size() > 249 || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") Usage("a Kafka mock cluster on 127.0.0.1");
    if (i + 1 >= argc) Usage("an option without its value");
    std::string_view val = argv[++i];
    if (arg == "--brokers") {
      if (!ParseInt(val, 1, 64, &a.brokers)) Usage("--brokers takes 1..64");
    } else if (arg == "--topic") {
      size_t colon = val.rfind(':');
      TopicSpec t;
      if (colon == std::string_view::npos || !ValidTopicName(val.substr(0, colon)) ||
          !ParseInt(val.substr(colon + 1), 1, 10000, &t.partitions)) {
        Usage("--topic takes NAME:PARTITIONS");
      }
      t.name = std::string(val.substr(0, colon));
      a.topics.push_back(std::move(t));
    } else {
      Usage("unknown option");
    }
  }
  return a;
}

// A whole line at once, so that a reader never sees half an answer.
bool WriteLine(const std::string& line) {
  std::string s = line + "\n";
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

class Mock {
 public:
  explicit Mock(int brokers) : brokers_(brokers) {}
  ~Mock() {
    // The cluster first: its thread uses rk_.
    if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }
  Mock(const Mock&) = delete;
  Mock& operator=(const Mock&) = delete;

  bool Start(std::string* err) {
    // The handle only hosts the cluster (its bookkeeping and threads); it never connects to
    // anything, so it has no bootstrap.servers and its complaint about that is kept quiet.
    char buf[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", buf, sizeof buf) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      *err = buf;
      return false;
    }
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, buf, sizeof buf);  // takes conf
    if (rk_ == nullptr) {
      *err = std::string("rd_kafka_new: ") + buf;
      return false;
    }
    cluster_ = rd_kafka_mock_cluster_new(rk_, brokers_);
    if (cluster_ == nullptr) {
      *err = "rd_kafka_mock_cluster_new failed";
      return false;
    }
    return true;
  }

  std::string Bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

  // "" when done, else the reason.
  std::string CreateTopic(const std::string& name, int partitions) {
    if (!ValidTopicName(name)) return "bad topic name";
    if (partitions < 1) return "bad partition count";
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, std::min(3, brokers_));
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(e);
  }

  std::string SetLeader(const std::string& topic, int partition, int id) {
    if (id < 1 || id > brokers_) return "no broker " + std::to_string(id);
    rd_kafka_resp_err_t e = rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, id);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(e);
  }

  std::string SetBroker(int id, bool up) {
    // The mock takes -1 as "all brokers"; an id outside 1..N is a mistake of the test.
    if (id < 1 || id > brokers_) return "no broker " + std::to_string(id);
    rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(cluster_, id)
                               : rd_kafka_mock_broker_set_down(cluster_, id);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(e);
  }

 private:
  int brokers_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

std::vector<std::string> Words(std::string_view line) {
  std::vector<std::string> w;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) w.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return w;
}

enum class Next { kGoOn, kQuit };

Next Execute(Mock& mock, std::string_view line) {
  std::vector<std::string> w = Words(line);
  std::string err;
  int n = 0;
  // Every line gets exactly one answer, a blank one too: the driver waits for it.
  if (w.empty()) {
    err = "empty command";
  } else if (w[0] == "quit" && w.size() == 1) {
    WriteLine("ok");
    return Next::kQuit;
  } else if (w[0] == "topic" && w.size() == 3) {
    err = ParseInt(w[2], 1, 10000, &n) ? mock.CreateTopic(w[1], n) : "bad partition count";
  } else if ((w[0] == "down" || w[0] == "up") && w.size() == 2) {
    err = ParseInt(w[1], 1, 64, &n) ? mock.SetBroker(n, w[0] == "up") : "bad broker id";
  } else if (w[0] == "leader" && w.size() == 4) {
    int partition = 0;
    err = !ParseInt(w[2], 0, 100000, &partition) ? "bad partition"
          : !ParseInt(w[3], 1, 64, &n)           ? "bad broker id"
                                                 : mock.SetLeader(w[1], partition, n);
  } else {
    err = "unknown command (topic NAME PARTITIONS | down ID | up ID | leader TOPIC P ID | quit)";
  }
  // A failed write means the reader is gone: nobody is left to ask anything.
  if (!WriteLine(err.empty() ? "ok" : "error " + err)) return Next::kQuit;
  return Next::kGoOn;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);

  // A test that crashes must not leave brokers behind: the parent's death sends SIGTERM. The
  // parent may have died before prctl; then we were reparented already.
  pid_t parent = ::getppid();
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != parent) return 1;

  // The stop signals arrive through a signalfd read by the command loop, so that the cluster is
  // destroyed from the main thread. They are blocked before librdkafka starts its threads, which
  // inherit the mask, so that none of them takes a signal.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  if (::sigprocmask(SIG_BLOCK, &stop, nullptr) != 0) return 1;
  int sig_fd = ::signalfd(-1, &stop, SFD_CLOEXEC);
  if (sig_fd < 0) return 1;
  // A reader that went away shows as a failed write, not a death.
  ::signal(SIGPIPE, SIG_IGN);

  Mock mock(args.brokers);
  std::string err;
  if (!mock.Start(&err)) {
    std::fprintf(stderr, "kafka_mock: %s\n", err.c_str());
    return 1;
  }
  for (const TopicSpec& t : args.topics) {
    err = mock.CreateTopic(t.name, t.partitions);
    if (!err.empty()) {
      std::fprintf(stderr, "kafka_mock: topic %s: %s\n", t.name.c_str(), err.c_str());
      return 1;
    }
  }
  if (!WriteLine("bootstraps " + mock.Bootstraps())) return 0;

  std::string pending;
  char buf[4096];
  for (;;) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {sig_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[1].revents & POLLIN) break;  // a stop signal: clean up below
    if (fds[0].revents == 0) continue;
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF (or a broken stdin): the driver is gone
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    bool quit = false;
    while (!quit && (nl = pending.find('\n')) != std::string::npos) {
      quit = Execute(mock, std::string_view(pending).substr(0, nl)) == Next::kQuit;
      pending.erase(0, nl + 1);
    }
    if (quit) break;
  }
  ::close(sig_fd);
  return 0;  // ~Mock destroys the cluster
}
