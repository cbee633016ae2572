// quorumwatch: parses the command line and hands over to a command.
// Exit status: 0 done, 1 bad input or configuration, 2 usage.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "app/bans_cmd.h"
#include "app/patterns_cmd.h"
#include "app/replay.h"
#include "common/version.h"
#include "app/run.h"

int main(int argc, char** argv) {
  CLI::App app{"quorumwatch: consensus detector for proof-of-stake validator logs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("quorumwatch ") + std::string(qw::kVersion));

  qw::app::ReplayArgs replay;
  auto* rc = app.add_subcommand("replay", "replay captured logs (plain or .zst) on event time");
  rc->add_option("--chain", replay.chain,
                 "chain name, a family or alias (fixes the family), or auto (detect)")
      ->default_val("auto");
  rc->add_option("--threads", replay.threads, "matcher threads (default: one per core, max 4)")
      ->check(CLI::Range(1, 64));
  rc->add_option("--format", replay.format, "output: text timeline and summary, or jsonl events")
      ->check(CLI::IsMember({"text", "jsonl"}))
      ->default_val("text");
  rc->add_option("--events", replay.events_path, "also write the events as JSON lines to FILE");
  rc->add_option("--summary", replay.summary_path, "write the per-node summary (JSON) to FILE");
  rc->add_option("-c,--config", replay.config_path, "configuration file (chains, nodes)");
  rc->add_option("--node", replay.node_name, "node name of a single file");
  rc->add_option("--patterns", replay.patterns_dir, "pattern folder instead of the built-in one");
  rc->add_flag("--stats", replay.stats, "print pipeline figures (prefilter, records/s) on stderr");
  rc->add_flag("--quiet", replay.quiet,
               "no progress line (shown on stderr, when it is a terminal, for replays over a second)");
  rc->add_option("--report", replay.report_path,
                 "write a postmortem report (one self-contained HTML page) to FILE");
  rc->add_option("--since", replay.since,
                 "report from TIME on (RFC 3339; earlier lines still build the state)");
  rc->add_option("--until", replay.until, "report up to TIME (RFC 3339); later lines are not read");
  rc->add_option("files", replay.files, "log files")->required();

  qw::app::RunArgs run;
  auto* runc = app.add_subcommand("run", "tail container logs live (DaemonSet sidecar)");
  runc->add_option("-c,--config", run.config_path, "configuration file")->required();
  runc->add_option("--threads", run.threads, "matcher threads (default: one per core, max 4)")
      ->check(CLI::Range(1, 64));
  runc->add_option("--patterns", run.patterns_dir, "pattern folder instead of the built-in one");
  runc->add_flag("--stats", run.stats,
                 "print pipeline figures every 10 s on stderr (lines, lag, Kafka lag per partition)");

  std::vector<std::string> pattern_files;
  std::string patterns_dir;
  auto* pc = app.add_subcommand("patterns", "pattern file tools");
  pc->require_subcommand(1);
  auto* pt = pc->add_subcommand("test", "run the test lines of pattern files");
  pt->add_option("files", pattern_files, "pattern files (default: the built-in ones)");
  pt->add_option("--patterns", patterns_dir, "pattern folder instead of the built-in one");

  std::string export_chain, export_format = "re2", export_config;
  auto* pe = pc->add_subcommand("export", "print a chain's rules for other tools (rg -f, mtail)");
  pe->add_option("--chain", export_chain, "chain, family or alias")->required();
  pe->add_option("--format", export_format, "re2: one regex a line; mtail: an mtail program")
      ->check(CLI::IsMember({"re2", "mtail"}))
      ->default_val("re2");
  pe->add_option("-c,--config", export_config, "configuration naming the chain's family");
  pe->add_option("--patterns", patterns_dir, "pattern folder instead of the built-in one");

  qw::app::BansArgs bans;
  auto* bc = app.add_subcommand("bans", "list bans, hold, release or unban a node (state directory)");
  bc->require_subcommand(1);
  std::vector<CLI::App*> bans_cmds;
  for (const char* op : {"list", "hold", "release", "unban"}) {
    const char* help = std::string(op) == "list"      ? "bans, held bans and undelivered decisions"
                       : std::string(op) == "hold"    ? "no ban for NODE until released"
                       : std::string(op) == "release" ? "undo a hold (a due ban is decided again)"
                                                      : "unban NODE now (an unban decision)";
    auto* sc = bc->add_subcommand(op, help);
    sc->add_option("-c,--config", bans.config_path, "configuration file (its state_dir)");
    sc->add_option("--state-dir", bans.state_dir, "state directory instead of -c");
    if (std::string(op) == "list") {
      sc->add_option("--format", bans.format, "text or json")
          ->check(CLI::IsMember({"text", "json"}))
          ->default_val("text");
    } else {
      sc->add_option("node", bans.node, "pod, namespace/pod or chain|namespace/pod")->required();
      sc->add_option("--wait", bans.wait_seconds, "seconds to wait for the running instance")
          ->default_val(10);
    }
    bans_cmds.push_back(sc);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc_exit = app.exit(e);
    return e.get_exit_code() == 0 ? rc_exit : 2;
  }
  if (rc->parsed()) return qw::app::RunReplay(replay);
  if (runc->parsed()) return qw::app::RunLive(run);
  for (auto* sc : bans_cmds) {
    if (sc->parsed()) {
      bans.op = sc->get_name();
      return qw::app::RunBans(bans);
    }
  }
  if (pt->parsed()) return qw::app::RunPatternsTest(pattern_files, patterns_dir);
  if (pe->parsed()) {
    return qw::app::RunPatternsExport(export_chain, export_format, patterns_dir, export_config);
  }
  return 2;
}
