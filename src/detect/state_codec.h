// Detector state as JSON, for checkpoints (live mode) and, later, the Kafka
// service's changelog. Nodes and chains are matched by name on restore, so
// a restart may add or drop nodes; times are absolute (a ban timer goes on
// where it was). The layout is described at the top of state_codec.cc.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>

#include "common/result.h"
#include "detect/detector.h"

namespace qw::detect {

// Every field of every NodeState (except spec, which comes from the
// configuration) and ChainState (except spec), keyed by chain name and by
// "namespace/pod" (or pod). Equal states give equal documents (and equal
// bytes). Strings are well-formed UTF-8 (bad bytes become U+FFFD).
// REQUIRES: called on the detector's thread.
nlohmann::ordered_json EncodeStateJson(const Detector& d);
// The same as compact JSON text (DumpJson).
std::string EncodeState(const Detector& d);

// The part of an encoded state that is one chain's: the chain, its nodes
// (keys "<chain>|..."), the holds (all of them: operator intent is not per
// chain). Decoding it into a detector that has the chain sets that chain
// and its nodes and leaves every other as it is (the Kafka service's
// changelog keeps a value per chain).
nlohmann::ordered_json ChainStateJson(const nlohmann::ordered_json& state, const std::string& chain);

// Restores what `state` holds into `d`, whose chains and nodes are already
// added (from the configuration and the streams seen). State of nodes or
// chains that `d` does not have is kept aside and applied when AddNode adds
// them later (see Detector::AddNode). Everything is checked before anything
// is applied: on failure (the reason, starting "state: ", names the field)
// `d` is as it was.
[[nodiscard]] Result<void> DecodeStateJson(const nlohmann::ordered_json& state, Detector* d);
// The same from JSON text; text that is not JSON fails with the reason.
[[nodiscard]] Result<void> DecodeState(const std::string& json, Detector* d);

}  // namespace qw::detect
