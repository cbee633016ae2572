// The ban outbox (ban_outbox.h): its records and files are described in
// docs/BAN-OUTBOX.md.
#include "sink/ban_outbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string_view>
#include <utility>

#include "common/file_util.h"
#include "common/json.h"

namespace qw::sink {
namespace {

using Json = nlohmann::ordered_json;

constexpr Nanos kAckKeepFor = 7 * 24 * 3600 * kSecond;
constexpr size_t kAckKeepLast = 10000;

constexpr std::string_view kOutboxPrefix = "ban-outbox-";
constexpr std::string_view kOutboxSuffix = ".jsonl";

Json DecisionJson(const BanDecision& d) {
  Json j = Json::object();
  j.emplace("version", 1);
  j.emplace("action", d.action);
  j.emplace("id", d.id);
  j.emplace("idempotency_key", d.idempotency_key);
  j.emplace("chain", d.chain);
  if (!d.namespace_.empty()) j.emplace("namespace", d.namespace_);
  j.emplace("node", d.node);
  if (!d.validator.empty()) j.emplace("validator", d.validator);
  j.emplace("reason", d.reason);
  j.emplace("since", d.since);
  j.emplace("decided_at", d.decided_at);
  if (d.height >= 0) j.emplace("height", d.height);
  j.emplace("evidence", d.evidence);
  j.emplace("operator", d.operator_request);
  return j;
}

// A string member, "" when absent or not a string.
std::string Str(const Json& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// An integer member, when present.
bool Int(const Json& o, std::string_view key, int64_t* out) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number_integer()) return false;
  *out = it->get<int64_t>();
  return true;
}

// The body object -> decision (body rebuilt from the fields). False when it
// is not a decision.
bool DecisionFromJson(const Json& o, BanDecision* d) {
  d->action = Str(o, "action");
  d->id = Str(o, "id");
  d->idempotency_key = Str(o, "idempotency_key");
  d->chain = Str(o, "chain");
  d->namespace_ = Str(o, "namespace");
  d->node = Str(o, "node");
  d->validator = Str(o, "validator");
  d->reason = Str(o, "reason");
  d->since = Str(o, "since");
  d->decided_at = Str(o, "decided_at");
  Int(o, "height", &d->height);
  if (auto ev = o.find("evidence"); ev != o.end() && ev->is_array()) {
    for (const Json& x : *ev) {
      if (x.is_string()) d->evidence.push_back(x.get<std::string>());
    }
  }
  if (auto op = o.find("operator"); op != o.end() && op->is_boolean()) {
    d->operator_request = op->get<bool>();
  }
  if ((d->action != "ban" && d->action != "unban") || d->idempotency_key.empty()) return false;
  d->body = DecisionBody(*d);
  return true;
}

// One record, with its newline.
std::string Record(const Json& j) { return DumpJson(j) + "\n"; }

std::string DecisionRecord(const OutboxItem& item, bool compacted) {
  const OutboxEntry& e = item.entry;
  Json j = Json::object();
  j.emplace("type", "decision");
  if (compacted) {
    j.emplace("attempts", e.attempts);
    if (!e.last_error.empty()) j.emplace("last_error", e.last_error);
    if (e.acknowledged) {
      j.emplace("acked_at", item.acked_at == kNoTime ? "" : FormatRfc3339Millis(item.acked_at));
    }
  }
  j.emplace("decision", DecisionJson(e.decision));
  return Record(j);
}

struct LoadStats {
  size_t records = 0;  // lines read as records
  size_t bad = 0;      // lines skipped (torn or unreadable)
};

// Applies the records of one outbox file, in order, to `items`.
void ParseOutbox(std::string_view data, const std::string& sink_name,
                 std::vector<OutboxItem>* items, LoadStats* stats) {
  std::map<std::string, size_t, std::less<>> index;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) {  // torn last line
      stats->bad++;
      break;
    }
    std::string_view line = data.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    auto parsed = ParseJson(line);
    if (!parsed || !parsed->is_object()) {
      stats->bad++;
      continue;
    }
    const Json& o = *parsed;
    const std::string type = Str(o, "type");
    int64_t attempts = 0;
    if (type == "decision") {
      OutboxItem item;
      item.entry.sink = sink_name;
      auto body = o.find("decision");
      if (body == o.end() || !body->is_object() ||
          !DecisionFromJson(*body, &item.entry.decision)) {
        stats->bad++;
        continue;
      }
      stats->records++;
      if (index.count(item.entry.decision.idempotency_key) > 0) continue;
      if (Int(o, "attempts", &attempts)) item.entry.attempts = static_cast<int>(attempts);
      item.entry.last_error = Str(o, "last_error");
      std::string acked = Str(o, "acked_at");
      if (!acked.empty()) {
        item.entry.acknowledged = true;
        item.acked_at = ParseRfc3339(acked);
      }
      item.decided_at = ParseRfc3339(item.entry.decision.decided_at);
      index.emplace(item.entry.decision.idempotency_key, items->size());
      items->push_back(std::move(item));
    } else if (type == "attempt" || type == "ack") {
      auto it = index.find(Str(o, "key"));
      stats->records++;
      if (it == index.end()) continue;
      OutboxItem& item = (*items)[it->second];
      if (Int(o, "attempts", &attempts)) {
        item.entry.attempts = std::max(item.entry.attempts, static_cast<int>(attempts));
      }
      if (type == "attempt") {
        item.entry.last_error = Str(o, "error");
      } else {
        item.entry.acknowledged = true;
        item.acked_at = ParseRfc3339(Str(o, "at"));
      }
    } else {
      stats->bad++;
    }
  }
}

}  // namespace

std::string DecisionBody(const BanDecision& d) { return DumpJson(DecisionJson(d)); }

std::string BanNodeName(const BanDecision& d) {
  return d.namespace_.empty() ? d.node : d.namespace_ + "/" + d.node;
}

Outbox::Outbox(std::string state_dir, std::string name, const Clock* clock,
               std::function<void(const std::string&)> log)
    : state_dir_(std::move(state_dir)),
      name_(std::move(name)),
      path_(state_dir_ + "/" + std::string(kOutboxPrefix) + name_ + std::string(kOutboxSuffix)),
      clock_(clock),
      log_(std::move(log)) {}

std::vector<OutboxItem> ParseOutboxText(std::string_view data, const std::string& sink_name,
                                        size_t* bad) {
  std::vector<OutboxItem> items;
  LoadStats stats;
  ParseOutbox(data, sink_name, &items, &stats);
  if (bad != nullptr) *bad = stats.bad;
  return items;
}

Outbox::~Outbox() { Close(); }

void Outbox::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<void> Outbox::Open() {
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};  // created with the first decision
    return Fail("cannot read the ban outbox " + path_ + ": " + std::strerror(errno));
  }
  auto data = ReadWholeFile(path_);
  if (!data) return Fail("cannot read the ban outbox " + path_ + ": " + data.error().message);
  LoadStats stats;
  ParseOutbox(*data, name_, &items_, &stats);
  for (const OutboxItem& i : items_) keys_.insert(i.entry.decision.idempotency_key);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) return Fail("cannot open the ban outbox " + path_ + ": " + std::strerror(errno));
  file_records_ = stats.records + stats.bad;
  if (stats.bad > 0) {
    // An unreadable line may have been a decision: nothing is thrown away.
    // The file as found is kept beside it, and decisions that only the
    // previous generation (the file before the last compaction) still
    // holds are taken back; delivering one again is harmless (receivers
    // dedupe on Idempotency-Key), losing one is not.
    const std::string damaged = path_ + ".damaged";
    std::string kept_as = WriteFileAtomic(damaged, *data) ? "; the file as found is kept as " + damaged
                                                          : "";
    size_t recovered = 0;
    if (auto prev = ReadWholeFile(path_ + ".prev")) {
      std::vector<OutboxItem> older;
      LoadStats older_stats;
      ParseOutbox(*prev, name_, &older, &older_stats);
      for (OutboxItem& o : older) {
        if (keys_.count(o.entry.decision.idempotency_key) > 0) continue;
        keys_.insert(o.entry.decision.idempotency_key);
        recovered += o.entry.acknowledged ? 0 : 1;
        items_.push_back(std::move(o));
      }
      std::stable_sort(items_.begin(), items_.end(), [](const OutboxItem& a, const OutboxItem& b) {
        return a.decided_at < b.decided_at;
      });
    }
    log_(std::to_string(stats.bad) + " unreadable line(s) in " + path_ +
         " skipped (a write cut short by a crash, a disk fault?)" + kept_as +
         (recovered > 0 ? "; " + std::to_string(recovered) +
                              " undelivered decision(s) taken back from " + path_ + ".prev"
                        : "") +
         "; rewriting it");
    Compact(/*keep_previous=*/false);
  } else {
    MaybeCompact();
  }
  return {};
}

bool Outbox::Add(OutboxItem item) {
  bool durable = Append(DecisionRecord(item, false), true);
  int err = errno;
  keys_.insert(item.entry.decision.idempotency_key);
  items_.push_back(std::move(item));
  errno = err;
  return durable;
}

int Outbox::RecordFailure(size_t i, const std::string& error) {
  OutboxEntry& e = items_[i].entry;
  e.attempts++;
  e.last_error = error;
  Json j = Json::object();
  j.emplace("type", "attempt");
  j.emplace("key", e.decision.idempotency_key);
  j.emplace("attempts", e.attempts);
  j.emplace("error", e.last_error);
  Append(Record(j), false);  // informational: losing it loses nothing
  const int attempts = e.attempts;
  MaybeCompact();
  return attempts;
}

bool Outbox::RecordAck(size_t i, Nanos at) {
  OutboxItem& item = items_[i];
  item.entry.attempts++;
  item.entry.acknowledged = true;
  item.acked_at = at;
  Json j = Json::object();
  j.emplace("type", "ack");
  j.emplace("key", item.entry.decision.idempotency_key);
  j.emplace("at", FormatRfc3339Millis(at));
  j.emplace("attempts", item.entry.attempts);
  bool durable = Append(Record(j), true);
  int err = errno;
  MaybeCompact();
  errno = err;
  return durable;
}

uint64_t Outbox::pending() const {
  uint64_t n = 0;
  for (const OutboxItem& i : items_) n += i.entry.acknowledged ? 0 : 1;
  return n;
}

Nanos Outbox::oldest_pending() const {
  Nanos oldest = kNoTime;
  for (const OutboxItem& i : items_) {
    if (!i.entry.acknowledged && (oldest == kNoTime || i.decided_at < oldest)) {
      oldest = i.decided_at;
    }
  }
  return oldest;
}

bool Outbox::Append(const std::string& record, bool sync) {
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return false;
    if (!FsyncDir(state_dir_)) return false;
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0) return false;
  if (!WriteAll(fd_, record)) {
    // No half record for the next one to be glued to (disk full, say).
    int err = errno;
    bool cut = ::ftruncate(fd_, st.st_size) == 0;  // best effort
    (void)cut;
    errno = err;
    return false;
  }
  file_records_++;
  return !sync || ::fsync(fd_) == 0;
}

void Outbox::Compact(bool keep_previous) {
  Nanos cutoff = clock_->Now() - kAckKeepFor;
  size_t acked_seen = 0;
  std::vector<bool> keep(items_.size(), true);
  for (size_t i = items_.size(); i-- > 0;) {
    const OutboxItem& it = items_[i];
    if (!it.entry.acknowledged) continue;
    if (++acked_seen > kAckKeepLast && it.acked_at != kNoTime && it.acked_at < cutoff) {
      keep[i] = false;
    }
  }
  std::string data;
  size_t kept = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (!keep[i]) continue;
    data.append(DecisionRecord(items_[i], true));
    kept++;
  }
  // The file replaced is kept as the previous generation, for a reader
  // that finds this one damaged (not when it is the damaged one itself).
  if (auto w = WriteFileAtomic(path_, data, keep_previous ? path_ + ".prev" : ""); !w) {
    log_("cannot compact the outbox: " + w.error().message);
    // Only the folder's fsync failed when the file was replaced: the
    // compacted file is the outbox now, and appends must go to it.
    if (!Replaced()) return;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  file_records_ = kept;
  std::vector<OutboxItem> rest;
  rest.reserve(kept);
  for (size_t i = 0; i < items_.size(); ++i) {
    if (keep[i]) {
      rest.push_back(std::move(items_[i]));
    } else {
      keys_.erase(items_[i].entry.decision.idempotency_key);
    }
  }
  items_ = std::move(rest);
}

void Outbox::MaybeCompact() {
  if (file_records_ > 2 * items_.size() + 64) Compact();
}

bool Outbox::Replaced() const {
  struct stat open_st, path_st;
  if (fd_ < 0 || ::fstat(fd_, &open_st) != 0 || ::stat(path_.c_str(), &path_st) != 0) return false;
  return open_st.st_dev != path_st.st_dev || open_st.st_ino != path_st.st_ino;
}

Result<std::vector<OutboxEntry>> ReadOutboxes(const std::string& state_dir) {
  DIR* dir = ::opendir(state_dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return std::vector<OutboxEntry>{};
    return Fail(state_dir + ": " + std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dirent* de = ::readdir(dir)) {
    std::string_view n(de->d_name);
    if (n.size() > kOutboxPrefix.size() + kOutboxSuffix.size() && n.starts_with(kOutboxPrefix) &&
        n.ends_with(kOutboxSuffix)) {
      names.emplace_back(n);
    }
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  std::vector<OutboxEntry> out;
  for (const auto& n : names) {
    std::string path = state_dir + "/" + n;
    auto data = ReadWholeFile(path);
    if (!data) return Fail(path + ": " + data.error().message);
    std::string sink_name =
        n.substr(kOutboxPrefix.size(), n.size() - kOutboxPrefix.size() - kOutboxSuffix.size());
    std::vector<OutboxItem> items;
    LoadStats stats;
    ParseOutbox(*data, sink_name, &items, &stats);
    for (auto& i : items) out.push_back(std::move(i.entry));
  }
  return out;
}

}  // namespace qw::sink
