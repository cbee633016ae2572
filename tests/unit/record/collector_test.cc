#include "record/collector.h"

#include <doctest/doctest.h>

#include <string>

#include "common/time.h"

using namespace qw;
using namespace qw::record;

namespace {

Unwrapped Any(std::string_view line) { return Unwrap(line, CollectorKind::kNone, true, 2022, 0); }

Nanos Utc(const char* rfc3339) { return ParseRfc3339(rfc3339); }

}  // namespace

TEST_CASE("collector prefixes come off, and their stamps are kept") {
  // journald short (tests/reallogs/solana/solana-rpc-journald-stack-overflow-crashloop.log)
  auto u = Any("May 18 23:12:18 tyo47 solana-rpc.sh[35735]: thread 'solana-db-accounts-1' has overflowed its stack");
  CHECK(u.kind == CollectorKind::kSyslog);
  CHECK(u.message == "thread 'solana-db-accounts-1' has overflowed its stack");
  CHECK(u.time == Utc("2022-05-18T23:12:18Z"));
  // no host name, a version in the program name (tmkms under journald)
  u = Any("Feb 16 13:21:03 tmkms-0.13.1[2143273]: 2024-02-16T13:21:03.791764Z DEBUG tmkms::chain::state: ok");
  CHECK(u.kind == CollectorKind::kSyslog);
  CHECK(u.message == "2024-02-16T13:21:03.791764Z DEBUG tmkms::chain::state: ok");
  // an empty host name (two spaces), with a syslog priority
  u = Any("<30>Sep 23 06:26:01  nodeos[44813]: 2018-09-23T06:26:01.856 thread-0   producer_plugin.cpp:330");
  CHECK(u.kind == CollectorKind::kSyslog);
  CHECK(u.message.substr(0, 23) == "2018-09-23T06:26:01.856");
  // journald short-precise: six digits of fraction
  u = Any("Mar  1 10:00:00.123456 host gaiad[1]: 10:00AM INF committed state height=5");
  CHECK(u.kind == CollectorKind::kSyslog);
  CHECK(u.time == Utc("2022-03-01T10:00:00.123456Z"));
  // short-iso
  u = Any("2024-03-11T14:04:42+0100 val-1 gaiad[77]: 2:04PM INF committed state height=9");
  CHECK(u.kind == CollectorKind::kIsoSyslog);
  CHECK(u.message == "2:04PM INF committed state height=9");
  CHECK(u.time == Utc("2024-03-11T13:04:42Z"));
  // RFC 5424, with and without structured data
  u = Any("<165>1 2024-03-11T14:04:42.003Z host.example gaiad 77 - - I[2024-03-11|14:04:42.003] Committed state");
  CHECK(u.kind == CollectorKind::kRfc5424);
  CHECK(u.message == "I[2024-03-11|14:04:42.003] Committed state");
  CHECK(u.time == Utc("2024-03-11T14:04:42.003Z"));
  u = Any("<165>1 2024-03-11T14:04:42Z h app - ID47 [ex@32473 iut=\"3\" x=\"a\\]b\"] the line");
  CHECK(u.kind == CollectorKind::kRfc5424);
  CHECK(u.message == "the line");
  // docker-compose (tests/reallogs/cometbft-signers/horcrux-v3-cosigner-shards.log)
  u = Any("cosigner_1  | I[2025-03-07|22:42:33.237] Signed with shard   chain_id=namada");
  CHECK(u.kind == CollectorKind::kCompose);
  CHECK(u.message == "I[2025-03-07|22:42:33.237] Signed with shard   chain_id=namada");
  CHECK(u.time == kNoTime);
  // kubectl logs --prefix
  u = Any("[pod/validator-0/gaiad] 3:04PM INF committed state height=6 module=state");
  CHECK(u.kind == CollectorKind::kKubectl);
  CHECK(u.message == "3:04PM INF committed state height=6 module=state");
  // cloud console export (tests/reallogs/tezos/babylon-endorser-ledger-error-stackdriver.log)
  u = Any("E 2019-11-09T05:49:49.665002992Z Nov  9 05:49:49 - 005-PsBabyM1.baking.endorsement: Error:");
  CHECK(u.kind == CollectorKind::kCloud);
  CHECK(u.message == "Nov  9 05:49:49 - 005-PsBabyM1.baking.endorsement: Error:");
  CHECK(u.time == Utc("2019-11-09T05:49:49.665002992Z"));
  u = Any("WARNING 2024-01-02T03:04:05Z [2024-01-02T03:04:05.000000000Z WARN  solana_core::replay_stage] x");
  CHECK(u.kind == CollectorKind::kCloud);
}

TEST_CASE("a node's own line is never taken for a collector prefix") {
  for (const char* own : {
           // Octez v10-v16 and before v7 (section after the stamp)
           "Mar 22 12:09:44.815 - 016-PtMumbai.baker.actions: injected preendorsement",
           "Aug 15 08:19:10 - validator.chain: Update current head to BLx (level 5)",
           "Nov 24 13:56:37.284 NOTICE \xe2\x94\x82 head is now BLrg (1)",
           // tmkms 0.8-0.10
           "Nov 29 07:13:31.855  INFO tmkms::session: [columbus-4@tcp://a:1] signed PreVote",
           "Nov 29 07:13:31.855 ERROR tmkms::session: [columbus-4@tcp://a:1] error",
           // Dash, Decred, nodeos, klog (Livepeer), tmkms >= 0.11, Solana
           "2021-03-04T12:00:00Z UpdateTip: new best=00000 height=5",
           "2021-03-04T12:00:00Z ThreadSocketHandler ERROR: something",
           "2019-06-11 10:28:00.509 [INF] BMGR: Processed 2 blocks in the last 30.73s",
           "info  2019-05-07T19:28:15.501 thread-0  producer_plugin.cpp:1597      produce_block        ] Produced",
           "I0330 18:08:15.313752    7227 rewardservice.go:117] Called reward for round 2108",
           "2024-02-16T13:21:03.791809Z  INFO tmkms::session: [chain@addr] signed",
           "[2024-10-25T08:49:51.991145196Z INFO  solana_core::validator] identity pubkey: 3pE",
           "I[2021-05-05|12:03:00.156] Committed state                              module=state height=5",
           "3:04PM INF committed state height=6 module=state",
           "",
       }) {
    CAPTURE(own);
    auto u = Any(own);
    CHECK(u.kind == CollectorKind::kNone);
    CHECK(u.message == own);
  }
}

TEST_CASE("a fixed kind strips only itself; without looking nothing is stripped") {
  const char* compose = "node-1  | panic: boom";
  CHECK(Unwrap(compose, CollectorKind::kSyslog, false, 2022, 0).message == compose);
  CHECK(Unwrap(compose, CollectorKind::kCompose, false, 2022, 0).message == "panic: boom");
  CHECK(Unwrap(compose, CollectorKind::kNone, false, 2022, 0).message == compose);
}
