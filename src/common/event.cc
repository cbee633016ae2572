#include "common/event.h"

#include <openssl/evp.h>

#include <array>
#include <tuple>

#include "common/json.h"

namespace qw {

std::string_view EventKindName(EventKind k) {
  static constexpr std::array<std::string_view, 15> kNames = {
      "back_in_consensus", "ban",           "chain_halted",    "chain_resumed",
      "consensus_failure", "double_sign_risk", "missed_precommit", "node_recovered",
      "node_stalled",      "node_synced",   "node_syncing",    "out_of_consensus",
      "unban",             "upgrade_halt",  "node_replaced"};
  return kNames[static_cast<size_t>(k)];
}

std::string_view SeverityName(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    default:
      return "critical";
  }
}

void Event::AddDetailString(std::string key, std::string_view value) {
  AddDetail(std::move(key), JsonString(value));
}

void Event::AddDetailInt(std::string key, int64_t value) {
  AddDetail(std::move(key), std::to_string(value));
}

bool EventLess(const Event& a, const Event& b) {
  // EventKind enumerators are declared in name order, so comparing the
  // enum compares the kind names.
  return std::tie(a.time, a.chain, a.node, a.kind, a.height, a.id) <
         std::tie(b.time, b.chain, b.node, b.kind, b.height, b.id);
}

std::string MakeEventId(std::string_view chain, std::string_view node, EventKind kind,
                        int64_t key) {
  return MakeEventId(chain, node, EventKindName(kind), key);
}

std::string MakeEventId(std::string_view chain, std::string_view node, std::string_view label,
                        int64_t key) {
  std::string input;
  input.reserve(chain.size() + node.size() + 40);
  input.append(chain).push_back('|');
  input.append(node).push_back('|');
  input.append(label).push_back('|');
  input.append(std::to_string(key));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  for (int i = 0; i < 8; ++i) {
    id[2 * i] = kHex[digest[i] >> 4];
    id[2 * i + 1] = kHex[digest[i] & 15];
  }
  return id;
}

void AppendEventJson(std::string& out, const Event& e) {
  out.append("{\"id\":");
  AppendJsonString(out, e.id);
  out.append(",\"time\":\"");
  AppendRfc3339Millis(out, e.time);
  out.append("\",\"event\":\"");
  out.append(EventKindName(e.kind));
  out.append("\",\"severity\":\"");
  out.append(SeverityName(e.severity));
  out.append("\",\"chain\":");
  AppendJsonString(out, e.chain);
  out.append(",\"node\":");
  AppendJsonString(out, e.node);
  if (!e.namespace_.empty()) {
    out.append(",\"namespace\":");
    AppendJsonString(out, e.namespace_);
  }
  if (e.height >= 0) {
    out.append(",\"height\":");
    out.append(std::to_string(e.height));
  }
  out.append(",\"detail\":{");
  bool first = true;
  for (const auto& [k, v] : e.detail) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, k);
    out.push_back(':');
    out.append(v);
  }
  out.append("}}");
}

}  // namespace qw
