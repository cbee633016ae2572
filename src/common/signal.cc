#include "common/signal.h"

#include <array>
#include <cctype>

namespace qw {
namespace {

constexpr std::array<std::string_view, kSignalKindCount> kSignalNames = {
    "none",           "block_committed",  "vote_signed", "vote_missed",   "block_produced",
    "slot_skipped",   "double_sign_risk", "consensus_failure",            "upgrade_halt",
    "syncing",        "synced",           "peers",       "round_timeout", "others_misbehaviour"};

constexpr std::array<std::string_view, kFieldCount> kFieldNames = {
    "height", "round", "step", "type", "validator", "block_id", "reason", "name", "target_height",
    "count"};

bool ContainsNoCase(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t j = 0;
    while (j < needle.size() &&
           std::tolower(static_cast<unsigned char>(hay[i + j])) == needle[j]) {
      ++j;
    }
    if (j == needle.size()) return true;
  }
  return false;
}

}  // namespace

std::string_view SignalName(SignalKind k) { return kSignalNames[static_cast<size_t>(k)]; }

std::optional<SignalKind> SignalFromName(std::string_view name) {
  for (size_t i = 1; i < kSignalNames.size(); ++i) {
    if (kSignalNames[i] == name) return static_cast<SignalKind>(i);
  }
  return std::nullopt;
}

std::string_view FieldName(Field f) { return kFieldNames[static_cast<size_t>(f)]; }

std::optional<Field> FieldFromName(std::string_view name) {
  for (size_t i = 0; i < kFieldNames.size(); ++i) {
    if (kFieldNames[i] == name) return static_cast<Field>(i);
  }
  return std::nullopt;
}

VoteType ParseVoteType(std::string_view s) {
  // CometBFT prints SIGNED_MSG_TYPE_PRECOMMIT(Precommit), Precommit, or the
  // numeric SignedMsgType (1 prevote, 2 precommit, 32 proposal); tmkms
  // prints PreCommit / Prevote.
  // Tezos: (pre)attestation, formerly (pre)endorsement.
  if (ContainsNoCase(s, "preattestation") || ContainsNoCase(s, "preendorsement")) {
    return VoteType::kPrevote;
  }
  if (ContainsNoCase(s, "attestation") || ContainsNoCase(s, "endorsement")) {
    return VoteType::kPrecommit;
  }
  if (s == "2" || ContainsNoCase(s, "precommit")) return VoteType::kPrecommit;
  if (s == "1" || ContainsNoCase(s, "prevote")) return VoteType::kPrevote;
  if (s == "32" || ContainsNoCase(s, "proposal")) return VoteType::kProposal;
  return VoteType::kUnknown;
}

std::string_view VoteTypeName(VoteType t) {
  switch (t) {
    case VoteType::kPrevote:
      return "prevote";
    case VoteType::kPrecommit:
      return "precommit";
    case VoteType::kProposal:
      return "proposal";
    default:
      return "unknown";
  }
}

}  // namespace qw
