#include "pipeline/replay.h"

#include <algorithm>
#include <numeric>

#include "pipeline/ordering.h"
#include "pipeline/stages.h"
#include "record/record_stage.h"

namespace qw::pipeline {
namespace {

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

ReplayResult Replay(match::Registry& registry, const record::Routing& routing,
                    const Topology& topology, std::vector<ReplayInput> inputs,
                    std::vector<sink::EventSink*> sinks, const ReplayOptions& opt) {
  ReplayResult result;
  auto log = opt.log ? opt.log : [](const std::string&) {};
  const size_t n = inputs.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const std::string ba = BaseName(inputs[a].path), bb = BaseName(inputs[b].path);
    return ba != bb ? ba < bb : inputs[a].path < inputs[b].path;
  });
  result.files.resize(n);
  for (size_t i = 0; i < n; ++i) result.files[i].path = inputs[i].path;

  Driver driver(topology, registry, std::move(sinks));
  driver.detector().SetObserver(opt.observer);
  driver.SetWindow(opt.since, opt.until);
  Stages stages(registry, opt.threads, opt.batch_bytes, opt.batch_records,
                [&driver](Batch& b) { driver.Consume(b); });
  record::StageOptions so;
  record::RecordStage stage(registry, routing, so, log);
  // The total only when every input's size is known.
  ReplayProgress progress;
  if (std::none_of(inputs.begin(), inputs.end(), [](const ReplayInput& in) { return in.size == 0; })) {
    for (const ReplayInput& in : inputs) progress.bytes_total += in.size;
  }
  auto report = [&] {  // every few batches: the sources say how far they are
    progress.records = result.records;
    progress.lines = stage.stats().lines_read;
    progress.bytes_read = 0;
    for (const ReplayInput& in : inputs) progress.bytes_read += in.bytes->consumed();
    opt.progress(progress);
  };
  auto dispatch = [&](Batch* b) {
    for (const Record& r : b->records) result.records += r.kind == RecordKind::kLine ? 1 : 0;
    ++result.batches;
    stages.Dispatch(b);
    if (opt.progress && result.batches % 64 == 0) report();
  };
  Ordering::Options oo;
  oo.batch_bytes = opt.batch_bytes;
  oo.batch_records = opt.batch_records;
  oo.positions = false;
  Ordering ordering(&stage, oo, [&](Batch* full) {
    dispatch(full);
    return stages.Acquire();
  });
  // Stream ids are positions in name order; id -> input index.
  for (uint32_t id = 0; id < n; ++id) {
    const ReplayInput& in = inputs[order[id]];
    record::Origin origin;
    origin.path = in.path;
    origin.name = record::NameFromPath(in.path);
    stage.Open(id, std::move(origin));
    ordering.Add(id);
  }
  // Bounded memory with many files: reading takes about 24 MiB over all
  // streams (each read between 32 KiB and 1 MiB).
  const size_t read_bytes =
      std::clamp<size_t>((24u << 20) / std::max<size_t>(1, n * 2), 32u << 10, 256u << 10);
  std::vector<char> buf(read_bytes);
  Batch* batch = stages.Acquire();
  while (true) {
    std::vector<uint32_t> need = ordering.Release(&batch);
    if (need.empty()) break;  // every stream ended and went out
    for (uint32_t id : need) {
      ReplayInput& in = inputs[order[id]];
      ReplayFile& file = result.files[order[id]];
      const ssize_t got = in.bytes->Read(buf.data(), buf.size());
      if (got > 0) {
        stage.Feed(id, std::string_view(buf.data(), static_cast<size_t>(got)), in.mtime);
        continue;
      }
      if (got < 0) file.error = in.bytes->error();
      stage.Close(id, /*gone=*/false);  // the end of what was captured, not of the node
      file.counts = stage.counts(id);
      file.format = stage.format(id);
    }
  }
  if (!batch->records.empty()) {
    dispatch(batch);
  } else {
    stages.Release(batch);
  }
  stages.Finish();
  driver.Finish();
  if (opt.progress) report();
  result.matched = stages.matched();
  result.prefilter_failures = stages.prefilter_failures();
  result.summary = driver.detector().Summary();
  result.events = driver.events();
  result.end = driver.time();
  return result;
}

}  // namespace qw::pipeline
