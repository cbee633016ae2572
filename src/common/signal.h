// Signal: what one matched log record says. Produced by the stateless
// matchers, consumed by node state. String fields are views into the batch
// arena that holds the record: they live as long as that batch.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace qw {

enum class SignalKind : uint8_t {
  kNone = 0,
  kBlockCommitted,
  kVoteSigned,
  kVoteMissed,
  kBlockProduced,
  kSlotSkipped,
  kDoubleSignRisk,
  kConsensusFailure,
  kUpgradeHalt,
  kSyncing,
  kSynced,
  kPeers,
  kRoundTimeout,
  kOthersMisbehaviour,
};
inline constexpr int kSignalKindCount = 14;

std::string_view SignalName(SignalKind k);
std::optional<SignalKind> SignalFromName(std::string_view name);

enum class VoteType : uint8_t { kUnknown = 0, kPrevote, kPrecommit, kProposal };
VoteType ParseVoteType(std::string_view s);
std::string_view VoteTypeName(VoteType t);

// Field ids a rule may extract.
enum class Field : uint8_t {
  kHeight = 0,
  kRound,
  kStep,
  kType,
  kValidator,
  kBlockId,
  kReason,
  kName,
  kTargetHeight,
  kCount,
};
inline constexpr int kFieldCount = 10;
std::string_view FieldName(Field f);
std::optional<Field> FieldFromName(std::string_view name);

struct Signal {
  SignalKind kind = SignalKind::kNone;
  uint16_t rule = 0;  // index of the rule in its family's pattern file
  VoteType vote_type = VoteType::kUnknown;
  int64_t height = -1;
  int64_t round = -1;
  int64_t target_height = -1;
  int64_t count = -1;
  std::string_view type_raw;  // the vote type as logged
  std::string_view validator;
  std::string_view block_id;
  std::string_view reason;
  std::string_view name;
};

}  // namespace qw
