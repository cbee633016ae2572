#include "source/kafka_consumer.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "common/json.h"

namespace qw::source {

struct KafkaConsumer::Impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  std::function<void(const std::string&)> log;
  KafkaHandler* handler = nullptr;  // during Poll
  std::mutex mu;                    // guards start and assigned
  std::map<TopicPartition, int64_t> start;
  std::set<TopicPartition> assigned;
  // Where each assigned partition starts (-1: its beginning): the next
  // offset to read until a record of it is consumed (librdkafka's position
  // is unknown until then; guarded by mu).
  std::map<TopicPartition, int64_t> starts_at;
  std::string last_error;  // the last consumer error logged (repeats are not)
  std::set<std::string> create_tried;  // EnsureTopic: topics it tried to create
  // From librdkafka's statistics (every second): partitions whose leader
  // broker this client is not connected to (guarded by mu).
  std::set<TopicPartition> leader_down;

  // The changelog's handles (made on first use) and what they are made of.
  KafkaOptions opt;
  // The reader is the reading thread's; the producer is made by whichever
  // thread needs it first (the detector's writes, the reading thread's
  // topic creation): aux_mu guards making them.
  std::mutex aux_mu;
  rd_kafka_t* reader = nullptr;
  rd_kafka_t* producer = nullptr;
  rd_kafka_t* forwarder = nullptr;  // Send's (the reading thread's)
  // Of the current WriteChangelog: its delivery reports run inside its
  // rd_kafka_flush, on its thread (guarded by delivery_mu all the same).
  std::mutex delivery_mu;
  uint64_t delivery_failures = 0;
  std::string delivery_error;
  // Of Send: what the brokers took or refused for good (guarded by delivery_mu).
  std::vector<Delivery> delivered;
  // `forward`: the producer of Send (retries for ever); else the changelog's.
  Result<rd_kafka_t*> Aux(rd_kafka_type_t type, bool forward = false);

  void Stats(std::string_view json);

  void Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
};

namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

void RebalanceCb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                 void* opaque) {
  (void)rk;
  static_cast<KafkaConsumer::Impl*>(opaque)->Rebalance(err, parts);
}

int StatsCb(rd_kafka_t* rk, char* json, size_t len, void* opaque) {
  (void)rk;
  static_cast<KafkaConsumer::Impl*>(opaque)->Stats(std::string_view(json, len));
  return 0;  // librdkafka frees the JSON
}

void DeliveryCb(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
  (void)rk;
  auto* impl = static_cast<KafkaConsumer::Impl*>(opaque);
  if (m->_private != nullptr) {  // Send's: its tag + 1
    const uint64_t tag = reinterpret_cast<uintptr_t>(m->_private) - 1;
    std::lock_guard<std::mutex> lock(impl->delivery_mu);
    impl->delivered.push_back({tag, m->err != RD_KAFKA_RESP_ERR_NO_ERROR,
                               m->err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(m->err) : ""});
    return;
  }
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  std::lock_guard<std::mutex> lock(impl->delivery_mu);
  ++impl->delivery_failures;
  impl->delivery_error = rd_kafka_err2str(m->err);
}

int MillisOf(Nanos t) {
  return static_cast<int>(std::max<Nanos>(0, std::min<Nanos>(t / kMillisecond, 1 << 30)));
}

void LogCb(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  auto* impl = static_cast<KafkaConsumer::Impl*>(rd_kafka_opaque(rk));
  if (impl != nullptr && impl->log) {
    impl->log("kafka: " + std::string(level <= 3 ? "error" : level <= 4 ? "warning" : "info") +
              " " + fac + ": " + buf);
  }
}

}  // namespace

void KafkaConsumer::Impl::Stats(std::string_view json) {
  // {"brokers": {"<name>": {"nodeid": N, "state": "UP", ...}}, "topics":
  // {"<topic>": {"partitions": {"<p>": {"leader": N, ...}}}}}
  auto doc = ParseJson(json);
  if (!doc || !doc->is_object()) return;
  std::set<int64_t> up;
  std::set<TopicPartition> down;
  try {
    if (doc->contains("brokers")) {
      for (const auto& [name, b] : doc->at("brokers").items()) {
        if (!b.contains("nodeid") || !b.contains("state")) continue;
        const std::string state = b.at("state").get<std::string>();
        if (state == "UP" || state == "UPDATE") up.insert(b.at("nodeid").get<int64_t>());
      }
    }
    if (doc->contains("topics")) {
      for (const auto& [topic, t] : doc->at("topics").items()) {
        if (!t.contains("partitions")) continue;
        for (const auto& [p, part] : t.at("partitions").items()) {
          const int32_t partition = std::atoi(p.c_str());
          if (partition < 0 || !part.contains("leader")) continue;
          const TopicPartition tp{topic, partition};
          std::lock_guard<std::mutex> lock(mu);
          if (assigned.count(tp) != 0 && up.count(part.at("leader").get<int64_t>()) == 0) {
            down.insert(tp);
          }
        }
      }
    }
  } catch (const std::exception&) {
    return;  // a shape not known: keep what was known
  }
  std::lock_guard<std::mutex> lock(mu);
  leader_down = std::move(down);
}

void KafkaConsumer::Impl::Rebalance(rd_kafka_resp_err_t err,
                                    rd_kafka_topic_partition_list_t* parts) {
  // NULL while the consumer is closing or not in a group.
  const char* protocol = rd_kafka_rebalance_protocol(rk);
  const bool cooperative = protocol != nullptr && std::strcmp(protocol, "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (handler != nullptr) {
      std::vector<TopicPartition> tps;
      for (int i = 0; i < parts->cnt; ++i) tps.emplace_back(parts->elems[i].topic, parts->elems[i].partition);
      handler->BeforeAssign(tps);
    }
    for (int i = 0; i < parts->cnt; ++i) {
      auto& p = parts->elems[i];
      TopicPartition tp{p.topic, p.partition};
      // The changelog's offset (the handler's), else the checkpoint's,
      // else the group's committed one (INVALID).
      const int64_t from = handler != nullptr ? handler->OnAssigned(tp) : -1;
      std::lock_guard<std::mutex> lock(mu);
      auto it = start.find(tp);
      if (from >= 0) {
        p.offset = from;
      } else if (it != start.end()) {
        p.offset = it->second;
      }
      assigned.insert(tp);
    }
    if (handler != nullptr) handler->AfterAssign();
    // Partitions that start at the group's committed offset: asked now, so
    // that where they start is known (a partition read to its end before,
    // with nothing new, has no position until a record comes: without its
    // start it would look behind, and hold the merge, for ever).
    {
      rd_kafka_topic_partition_list_t* ask = rd_kafka_topic_partition_list_new(parts->cnt);
      for (int i = 0; i < parts->cnt; ++i) {
        if (parts->elems[i].offset < 0) {
          rd_kafka_topic_partition_list_add(ask, parts->elems[i].topic, parts->elems[i].partition);
        }
      }
      if (ask->cnt > 0 && rd_kafka_committed(rk, ask, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < ask->cnt; ++i) {
          if (ask->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR || ask->elems[i].offset < 0) continue;
          for (int j = 0; j < parts->cnt; ++j) {
            if (parts->elems[j].partition == ask->elems[i].partition &&
                std::strcmp(parts->elems[j].topic, ask->elems[i].topic) == 0) {
              parts->elems[j].offset = ask->elems[i].offset;
            }
          }
        }
      }
      rd_kafka_topic_partition_list_destroy(ask);
      std::lock_guard<std::mutex> lock(mu);
      for (int i = 0; i < parts->cnt; ++i) {
        starts_at[{parts->elems[i].topic, parts->elems[i].partition}] =
            parts->elems[i].offset >= 0 ? parts->elems[i].offset : -1;
      }
    }
    rd_kafka_error_t* e = nullptr;
    rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cooperative) {
      e = rd_kafka_incremental_assign(rk, parts);
    } else {
      r = rd_kafka_assign(rk, parts);
    }
    if (e != nullptr) {
      log(std::string("kafka: assigning partitions failed: ") + rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    } else if (r != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log(std::string("kafka: assigning partitions failed: ") + rd_kafka_err2str(r));
    }
    std::string names;
    for (int i = 0; i < parts->cnt; ++i) {
      names += (i ? " " : "") + std::string(parts->elems[i].topic) + "/" +
               std::to_string(parts->elems[i].partition);
    }
    log("kafka: assigned " + std::to_string(parts->cnt) + " partition(s): " + names);
    return;
  }
  // Revoked (or lost: another member owns them now). The handler hears of
  // it first, while the partitions are still ours.
  if (handler != nullptr && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS &&
      !rd_kafka_assignment_lost(rk)) {
    std::vector<TopicPartition> tps;
    for (int i = 0; i < parts->cnt; ++i) tps.emplace_back(parts->elems[i].topic, parts->elems[i].partition);
    handler->BeforeRevoke(tps);
  }
  for (int i = 0; i < parts->cnt; ++i) {
    if (handler != nullptr) handler->OnRevoked({parts->elems[i].topic, parts->elems[i].partition});
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < parts->cnt; ++i) {
      assigned.erase({parts->elems[i].topic, parts->elems[i].partition});
      starts_at.erase({parts->elems[i].topic, parts->elems[i].partition});
    }
  }
  if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    // What was stored for them goes to the group before they do.
    rd_kafka_commit(rk, nullptr, /*async=*/0);
  }
  if (cooperative) {
    if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) rd_kafka_error_destroy(e);
  } else {
    rd_kafka_assign(rk, nullptr);
  }
  std::string names;
  for (int i = 0; i < parts->cnt; ++i) {
    names += (i ? " " : "") + std::string(parts->elems[i].topic) + "/" +
             std::to_string(parts->elems[i].partition);
  }
  log("kafka: " + std::string(err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ? "revoked " : "lost ") +
      std::to_string(parts->cnt) + " partition(s): " + names);
}

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Create(const KafkaOptions& opt) {
  std::unique_ptr<KafkaConsumer> c(new KafkaConsumer());
  c->impl_ = std::make_unique<Impl>();
  Impl* impl = c->impl_.get();
  impl->log = opt.log ? opt.log : [](const std::string&) {};
  impl->opt = opt;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", Join(opt.brokers)},
      {"group.id", opt.group},
      {"enable.auto.offset.store", "false"},
      {"enable.auto.commit", "true"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"client.id", "quorumwatch"},
      // Which partitions' leaders are reachable (Lag(): leader_down).
      {"statistics.interval.ms", "1000"},
  };
  for (const auto& p : opt.properties) props.push_back(p);
  for (const auto& [k, v] : props) {
    if (k == "enable.auto.offset.store" && v != "false") {
      rd_kafka_conf_destroy(conf);
      return Fail("kafka property enable.auto.offset.store must stay false: offsets are stored "
                  "only once the state that reflects them is durable");
    }
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Fail("kafka property " + k + ": " + err);
    }
  }
  rd_kafka_conf_set_opaque(conf, impl);
  rd_kafka_conf_set_rebalance_cb(conf, RebalanceCb);
  rd_kafka_conf_set_log_cb(conf, LogCb);
  rd_kafka_conf_set_stats_cb(conf, StatsCb);
  impl->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (impl->rk == nullptr) return Fail(std::string("kafka consumer: ") + err);  // conf is freed
  rd_kafka_poll_set_consumer(impl->rk);
  impl->queue = rd_kafka_queue_get_consumer(impl->rk);
  if (::pipe2(c->wake_fds_, O_NONBLOCK | O_CLOEXEC) != 0) {
    return Fail(std::string("kafka consumer: pipe: ") + std::strerror(errno));
  }
  rd_kafka_queue_io_event_enable(impl->queue, c->wake_fds_[1], "1", 1);
  rd_kafka_topic_partition_list_t* subs = rd_kafka_topic_partition_list_new(
      static_cast<int>(opt.topics.size()) + 1);
  for (const auto& t : opt.topics) rd_kafka_topic_partition_list_add(subs, t.c_str(), RD_KAFKA_PARTITION_UA);
  if (!opt.topic_pattern.empty()) {
    // librdkafka takes a subscription starting with ^ as a regex.
    const std::string re = opt.topic_pattern[0] == '^' ? opt.topic_pattern : "^" + opt.topic_pattern;
    rd_kafka_topic_partition_list_add(subs, re.c_str(), RD_KAFKA_PARTITION_UA);
  }
  const rd_kafka_resp_err_t r = rd_kafka_subscribe(impl->rk, subs);
  rd_kafka_topic_partition_list_destroy(subs);
  if (r != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail(std::string("kafka subscribe: ") + rd_kafka_err2str(r));
  }
  return c;
}

KafkaConsumer::~KafkaConsumer() {
  if (impl_ && impl_->rk != nullptr) {
    Close();
  }
  for (int fd : wake_fds_) {
    if (fd >= 0) ::close(fd);
  }
}

void KafkaConsumer::SetStartOffsets(const std::map<TopicPartition, int64_t>& offsets) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->start = offsets;
}

size_t KafkaConsumer::Poll(KafkaHandler* h, size_t max_records) {
  // Emptied first: a record queued from now on writes to it again.
  char buf[256];
  while (::read(wake_fds_[0], buf, sizeof buf) > 0) {
  }
  impl_->handler = h;
  size_t n = 0;
  more_ = false;
  while (n < max_records) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(impl_->rk, 0);
    if (m == nullptr) break;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Broker and partition errors: librdkafka retries on its own; the
      // operator hears of each new one once.
      std::string what = rd_kafka_message_errstr(m);
      if (what != impl_->last_error) {
        impl_->last_error = what;
        impl_->log("kafka: consumer error: " + what);
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    KafkaRecord r;
    r.topic = rd_kafka_topic_name(m->rkt);
    r.partition = m->partition;
    r.offset = m->offset;
    r.key = std::string_view(static_cast<const char*>(m->key), m->key != nullptr ? m->key_len : 0);
    r.value = std::string_view(static_cast<const char*>(m->payload), m->payload != nullptr ? m->len : 0);
    rd_kafka_timestamp_type_t tt;
    const int64_t ms = rd_kafka_message_timestamp(m, &tt);
    r.timestamp = ms >= 0 ? ms * kMillisecond : kNoTime;
    rd_kafka_headers_t* hdrs = nullptr;
    if (impl_->opt.read_headers &&
        rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) {
      for (auto [name, view] : {std::pair{"qw-from", &r.from}, std::pair{"qw-key", &r.from_key},
                                std::pair{"qw-mark", &r.mark}}) {
        const void* v = nullptr;
        size_t size = 0;
        if (rd_kafka_header_get_last(hdrs, name, &v, &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            v != nullptr) {
          *view = std::string_view(static_cast<const char*>(v), size);
        }
      }
    }
    h->OnRecord(r);
    rd_kafka_message_destroy(m);
    ++n;
  }
  more_ = n == max_records;
  impl_->handler = nullptr;
  return n;
}

void KafkaConsumer::Store(const std::map<TopicPartition, int64_t>& offsets) {
  if (offsets.empty()) return;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const auto& [tp, off] : offsets) {
      // A partition another member owns now: its offsets are that
      // member's business.
      if (impl_->assigned.count(tp) == 0) continue;
      rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset = off;
      impl_->start[tp] = off;
    }
  }
  if (list->cnt > 0) {
    const rd_kafka_resp_err_t r = rd_kafka_offsets_store(impl_->rk, list);
    if (r != RD_KAFKA_RESP_ERR_NO_ERROR && r != RD_KAFKA_RESP_ERR__STATE &&
        r != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
      impl_->log(std::string("kafka: storing offsets failed: ") + rd_kafka_err2str(r));
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
}

std::vector<PartitionLag> KafkaConsumer::Lag() const {
  std::vector<PartitionLag> out;
  std::set<TopicPartition> assigned;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    assigned = impl_->assigned;
  }
  if (assigned.empty()) return out;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(assigned.size()));
  for (const auto& tp : assigned) rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second);
  rd_kafka_position(impl_->rk, list);
  std::set<TopicPartition> down;
  std::map<TopicPartition, int64_t> starts;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    down = impl_->leader_down;
    starts = impl_->starts_at;
  }
  for (int i = 0; i < list->cnt; ++i) {
    PartitionLag l;
    l.tp = {list->elems[i].topic, list->elems[i].partition};
    l.position = list->elems[i].offset >= 0 ? list->elems[i].offset : -1;
    bool from_start = false;
    if (l.position < 0) {
      // Nothing consumed since the assignment: the next offset is where it
      // started (-1 when that is its beginning).
      if (auto s = starts.find(l.tp); s != starts.end()) {
        l.position = s->second;
        from_start = true;
      }
    }
    l.leader_down = down.count(l.tp) != 0;
    int64_t low = -1, high = -1;
    // Cached from the fetch responses: no request to a broker.
    if (rd_kafka_get_watermark_offsets(impl_->rk, list->elems[i].topic, list->elems[i].partition,
                                       &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0) {
      l.high_watermark = high;
      l.low_watermark = low;
      // A start the log no longer holds (deleted by retention): reading
      // begins at its first record (auto.offset.reset=earliest).
      if (from_start && l.position >= 0 && low >= 0 && l.position < low) l.position = low;
    }
    out.push_back(std::move(l));
  }
  rd_kafka_topic_partition_list_destroy(list);
  return out;
}

void KafkaConsumer::Pause(const TopicPartition& tp, bool pause) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second);
  if (pause) {
    rd_kafka_pause_partitions(impl_->rk, list);
  } else {
    rd_kafka_resume_partitions(impl_->rk, list);
  }
  rd_kafka_topic_partition_list_destroy(list);
}

void KafkaConsumer::Close() {
  if (impl_->rk == nullptr) return;
  rd_kafka_consumer_close(impl_->rk);  // commits stored offsets, leaves the group
  rd_kafka_queue_destroy(impl_->queue);
  rd_kafka_destroy(impl_->rk);
  impl_->rk = nullptr;
  for (rd_kafka_t** p : {&impl_->producer, &impl_->forwarder}) {
    if (*p == nullptr) continue;
    rd_kafka_flush(*p, 5000);
    rd_kafka_destroy(*p);
    *p = nullptr;
  }
  if (impl_->reader != nullptr) {
    rd_kafka_consumer_close(impl_->reader);
    rd_kafka_destroy(impl_->reader);
    impl_->reader = nullptr;
  }
}

// ---------------------------------------------------------------------------
// The changelog

Result<rd_kafka_t*> KafkaConsumer::Impl::Aux(rd_kafka_type_t type, bool forward) {
  std::lock_guard<std::mutex> lock(aux_mu);
  rd_kafka_t*& h = type == RD_KAFKA_PRODUCER ? (forward ? forwarder : producer) : reader;
  if (h != nullptr) return h;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", Join(opt.brokers)},
      {"client.id", "quorumwatch-state"},
  };
  if (type == RD_KAFKA_PRODUCER) {
    // Writes of one key stay in order through retries (a newer state is
    // never overtaken by an older one).
    props.insert(props.end(), {{"enable.idempotence", "true"}, {"linger.ms", "5"}});
    // Handed-on records are retried until the brokers take them (0: no
    // limit): their offsets are not stored before, and a gap in a chain's
    // records would read as its nodes falling silent.
    if (forward) props.insert(props.end(), {{"message.timeout.ms", "0"}, {"client.id", "quorumwatch-forward"}});
  } else {
    // Assigned by hand, never subscribed, commits nothing: the group id
    // only lets librdkafka's consumer calls work.
    props.insert(props.end(), {{"group.id", opt.group + ".state-reader"},
                               {"enable.auto.commit", "false"},
                               {"enable.partition.eof", "true"}});
  }
  // The operator's (SASL, TLS, ...); the consumer's own ones are not the
  // producer's business (librdkafka would warn about each).
  static const char* const kConsumerOnly[] = {
      "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "group.",
      "partition.assignment.strategy", "auto.offset.reset", "enable.auto.", "auto.commit.",
      "fetch.", "max.partition.fetch.bytes", "queued.", "isolation.level", "check.crcs",
      "enable.partition.eof", "allow.auto.create.topics"};
  for (const auto& p : opt.properties) {
    bool skip = false;
    for (const char* c : kConsumerOnly) {
      skip = skip || (type == RD_KAFKA_PRODUCER && p.first.rfind(c, 0) == 0);
    }
    if (!skip) props.push_back(p);
  }
  for (const auto& [k, v] : props) {
    if (k == "enable.auto.offset.store") continue;
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Fail("kafka property " + k + ": " + err);
    }
  }
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_log_cb(conf, LogCb);
  if (type == RD_KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(conf, DeliveryCb);
  h = rd_kafka_new(type, conf, err, sizeof err);
  if (h == nullptr) return Fail(std::string("kafka state client: ") + err);
  return h;
}

Result<int> KafkaConsumer::Partitions(const std::string& topic, Nanos timeout) {
  auto rk = impl_->Aux(RD_KAFKA_CONSUMER);
  if (!rk) return tl::unexpected(rk.error());
  const rd_kafka_metadata_t* md = nullptr;
  // All topics: asking for one by name could create it with the brokers'
  // defaults (not compacted, maybe too few partitions).
  const rd_kafka_resp_err_t r = rd_kafka_metadata(*rk, 1, nullptr, &md, MillisOf(timeout));
  if (r != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail("kafka metadata: " + std::string(rd_kafka_err2str(r)));
  }
  int n = 0;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      n = md->topics[i].partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

Result<void> KafkaConsumer::CreateTopic(const std::string& topic, int partitions, bool compacted,
                                        Nanos timeout) {
  auto rk = impl_->Aux(RD_KAFKA_PRODUCER);
  if (!rk) return tl::unexpected(rk.error());
  char err[512];
  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, err, sizeof err);  // -1: brokers' replication
  if (nt == nullptr) return Fail("kafka: creating " + topic + ": " + err);
  if (compacted) rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
  rd_kafka_queue_t* q = rd_kafka_queue_new(*rk);
  rd_kafka_AdminOptions_t* o = rd_kafka_AdminOptions_new(*rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(o, MillisOf(timeout), err, sizeof err);
  rd_kafka_CreateTopics(*rk, &nt, 1, o, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, MillisOf(timeout) + 1000);
  std::string failure;
  if (ev == nullptr) {
    failure = "no answer";
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_event_error_string(ev);
  } else if (const auto* res = rd_kafka_event_CreateTopics_result(ev)) {
    size_t cnt = 0;
    const rd_kafka_topic_result_t** tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
    for (size_t i = 0; i < cnt; ++i) {
      const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* why = rd_kafka_topic_result_error_string(tr[i]);
        failure = why != nullptr ? why : rd_kafka_err2str(e);
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  if (!failure.empty()) return Fail("kafka: creating " + topic + ": " + failure);
  return {};
}

Result<int> KafkaConsumer::EnsureTopic(const std::string& topic, const std::function<int()>& want,
                                       bool compacted, Nanos timeout) {
  auto n = Partitions(topic, timeout);
  if (!n || *n > 0 || !impl_->create_tried.insert(topic).second) return n;
  const int partitions = std::max(1, want());
  if (auto c = CreateTopic(topic, partitions, compacted, timeout); !c) {
    impl_->log(c.error().message);
  } else {
    impl_->log("kafka: created the topic " + topic + " (" + std::to_string(partitions) +
               " partitions" + (compacted ? ", compacted)" : ")"));
  }
  return Partitions(topic, timeout);
}

Result<std::map<int32_t, KafkaConsumer::ChangelogValues>> KafkaConsumer::ReadChangelogs(
    const std::string& topic, const std::vector<int32_t>& partitions, Nanos timeout) {
  std::map<int32_t, ChangelogValues> out;
  if (partitions.empty()) return out;
  auto rk = impl_->Aux(RD_KAFKA_CONSUMER);
  if (!rk) return tl::unexpected(rk.error());
  const Nanos deadline = SteadyNow() + timeout;
  const std::string where = topic + "/" + (partitions.size() == 1
                                               ? std::to_string(partitions[0])
                                               : std::to_string(partitions.size()) + " partitions");
  // Each partition's low and high watermarks: ListOffsets for the logical
  // times "earliest" (-2) and "latest" (-1) of every partition at once.
  std::map<int32_t, std::pair<int64_t, int64_t>> marks;
  for (int64_t which : {int64_t{RD_KAFKA_OFFSET_BEGINNING}, int64_t{RD_KAFKA_OFFSET_END}}) {
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
    for (int32_t p : partitions) rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = which;
    rd_kafka_resp_err_t r = rd_kafka_offsets_for_times(*rk, list, MillisOf(timeout));
    std::string failed;
    for (int i = 0; r == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; ++i) {
      const auto& e = list->elems[i];
      if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failed = "partition " + std::to_string(e.partition) + ": " + rd_kafka_err2str(e.err);
        break;
      }
      auto& m = marks[e.partition];
      (which == RD_KAFKA_OFFSET_BEGINNING ? m.first : m.second) = e.offset;
    }
    rd_kafka_topic_partition_list_destroy(list);
    if (r != RD_KAFKA_RESP_ERR_NO_ERROR) failed = rd_kafka_err2str(r);
    if (!failed.empty()) return Fail("kafka: " + where + ": watermarks: " + failed);
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  std::map<int32_t, int64_t> todo;  // partition -> its high watermark
  for (int32_t p : partitions) {
    out[p];
    const auto [low, high] = marks[p];
    if (high <= low || high < 0) continue;  // empty
    todo[p] = high;
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  if (todo.empty()) {
    rd_kafka_topic_partition_list_destroy(list);
    return out;
  }
  rd_kafka_resp_err_t r = rd_kafka_assign(*rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (r != RD_KAFKA_RESP_ERR_NO_ERROR) return Fail("kafka: assign " + topic + ": " + rd_kafka_err2str(r));
  std::string error;
  while (!todo.empty() && SteadyNow() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(*rk, 100);
    if (m == nullptr) continue;
    auto it = todo.find(m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (it != todo.end() && m->offset >= it->second) todo.erase(it);
    } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      error = rd_kafka_message_errstr(m);
    } else if (it != todo.end()) {
      ChangelogValues& values = out[m->partition];
      std::string key(static_cast<const char*>(m->key), m->key != nullptr ? m->key_len : 0);
      if (m->payload == nullptr) {
        values.erase(key);  // a tombstone
      } else {
        values[key].assign(static_cast<const char*>(m->payload), m->len);
      }
      if (m->offset + 1 >= it->second) todo.erase(it);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_assign(*rk, nullptr);
  if (!todo.empty()) {
    std::string left;
    for (const auto& [p, high] : todo) {
      left += (left.empty() ? "" : ", ") + std::to_string(p) + " (high watermark " +
              std::to_string(high) + ")";
    }
    return Fail("kafka: " + topic + ": partition(s) " + left + " not read to their high watermark " +
                "within " + FormatDuration(timeout) + (error.empty() ? "" : " (" + error + ")"));
  }
  return out;
}

Result<KafkaConsumer::ChangelogValues> KafkaConsumer::ReadChangelog(const std::string& topic,
                                                                    int32_t partition,
                                                                    Nanos timeout) {
  auto all = ReadChangelogs(topic, {partition}, timeout);
  if (!all) return tl::unexpected(all.error());
  return std::move((*all)[partition]);
}

Result<void> KafkaConsumer::WriteChangelog(const std::string& topic,
                                           const std::vector<ChangelogRecord>& records,
                                           Nanos timeout, bool if_earlier_done) {
  if (records.empty()) return {};
  auto rk = impl_->Aux(RD_KAFKA_PRODUCER);
  if (!rk) return tl::unexpected(rk.error());
  if (if_earlier_done) {
    rd_kafka_poll(*rk, 0);  // delivery reports that are in
    if (const int waiting = rd_kafka_outq_len(*rk); waiting > 0) {
      return Fail("kafka: " + std::to_string(waiting) + " record(s) of an earlier write to " +
                  topic + " still waiting for the brokers: this state is not written");
    }
  }
  const Nanos deadline = SteadyNow() + timeout;
  {
    std::lock_guard<std::mutex> lock(impl_->delivery_mu);
    impl_->delivery_failures = 0;
  }
  for (const auto& rec : records) {
    while (true) {
      const rd_kafka_resp_err_t r = rd_kafka_producev(
          *rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(rec.partition),
          RD_KAFKA_V_KEY(rec.key.data(), rec.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(rec.value.data()), rec.value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (r == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (r != RD_KAFKA_RESP_ERR__QUEUE_FULL || SteadyNow() >= deadline) {
        return Fail("kafka: writing to " + topic + ": " + rd_kafka_err2str(r));
      }
      rd_kafka_poll(*rk, 50);
    }
  }
  rd_kafka_flush(*rk, MillisOf(deadline - SteadyNow()));
  if (const int left = rd_kafka_outq_len(*rk); left > 0) {
    // They stay queued and go in order before any later write.
    return Fail("kafka: " + std::to_string(left) + " record(s) to " + topic +
                " not acknowledged within " + FormatDuration(timeout));
  }
  std::lock_guard<std::mutex> lock(impl_->delivery_mu);
  if (impl_->delivery_failures > 0) {
    return Fail("kafka: " + std::to_string(impl_->delivery_failures) + " record(s) to " + topic +
                " failed: " + impl_->delivery_error);
  }
  return {};
}


// ---------------------------------------------------------------------------
// Repartition

Result<void> KafkaConsumer::Send(const std::string& topic, int32_t partition, std::string_view key,
                                 std::string_view value, const std::vector<Header>& headers,
                                 uint64_t tag) {
  auto rk = impl_->Aux(RD_KAFKA_PRODUCER, /*forward=*/true);
  if (!rk) return tl::unexpected(rk.error());
  Nanos reported = SteadyNow();
  while (true) {
    rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size());
    for (const auto& x : headers) {
      rd_kafka_header_add(h, x.name, -1, x.value.data(), static_cast<ssize_t>(x.value.size()));
    }
    const rd_kafka_resp_err_t r = rd_kafka_producev(
        *rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(tag + 1))),
        RD_KAFKA_V_END);
    if (r == RD_KAFKA_RESP_ERR_NO_ERROR) return {};  // the headers are librdkafka's now
    rd_kafka_headers_destroy(h);
    if (r != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return Fail("kafka: handing a record on to " + topic + ": " + rd_kafka_err2str(r));
    }
    // The brokers are slow or away: wait for room (what was read waits too).
    rd_kafka_poll(*rk, 50);
    if (SteadyNow() - reported > 10 * kSecond) {
      reported = SteadyNow();
      impl_->log("kafka: handing records on to " + topic + ": " +
                 std::to_string(rd_kafka_outq_len(*rk)) +
                 " waiting for the brokers; reading waits");
    }
  }
}

std::vector<KafkaConsumer::Delivery> KafkaConsumer::Delivered() {
  if (impl_->forwarder != nullptr) rd_kafka_poll(impl_->forwarder, 0);
  std::vector<Delivery> out;
  std::lock_guard<std::mutex> lock(impl_->delivery_mu);
  out.swap(impl_->delivered);
  return out;
}

size_t KafkaConsumer::FlushSends(Nanos timeout) {
  if (impl_->forwarder == nullptr) return 0;
  rd_kafka_flush(impl_->forwarder, MillisOf(timeout));
  return static_cast<size_t>(rd_kafka_outq_len(impl_->forwarder));
}

}  // namespace qw::source
