// Detector state as JSON, for checkpoints (live mode) and, later, the Kafka
// service's changelog. Nodes and chains are matched by name on restore, so
// a restart may add or drop nodes; times are absolute (a ban timer goes on
// where it was).
#pragma once

#include <string>

#include "common/result.h"
#include "detect/detector.h"

namespace qw::detect {

// Every field of every NodeState (except spec, which comes from the
// configuration) and ChainState (except spec), keyed by chain name and by
// "namespace/pod" (or pod). REQUIRES: called on the detector's thread.
std::string EncodeState(const Detector& d);

// Restores what `json` holds into `d`, whose chains and nodes are already
// added (from the configuration and the streams seen). State of nodes or
// chains that `d` does not have is kept aside and applied when AddNode adds
// them later (see Detector::AddNode). Fails on malformed JSON with the reason.
[[nodiscard]] Result<void> DecodeState(const std::string& json, Detector* d);

}  // namespace qw::detect
