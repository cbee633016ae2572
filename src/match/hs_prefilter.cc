#include "match/hs_prefilter.h"

#include <algorithm>

#ifdef QW_HAVE_HS
#include <hs.h>
#endif

namespace qw::match {

#ifdef QW_HAVE_HS

bool HsDatabase::Available() { return true; }
#ifdef QW_HS_ENGINE
const char* HsDatabase::Engine() { return QW_HS_ENGINE; }
#else
const char* HsDatabase::Engine() { return "hyperscan"; }
#endif

std::shared_ptr<const HsDatabase> HsDatabase::Compile(const PatternFile& pf, std::string* why) {
  std::vector<const char*> exprs;
  std::vector<unsigned> flags, ids;
  for (size_t i = 0; i < pf.rules.size(); ++i) {
    exprs.push_back(pf.rules[i].regex.c_str());
    // PREFILTER: may report more than the regex matches, never less.
    // MULTILINE: ^ and $ hold at the record separators.
    flags.push_back(HS_FLAG_PREFILTER | HS_FLAG_MULTILINE | HS_FLAG_ALLOWEMPTY);
    ids.push_back(static_cast<unsigned>(i));
  }
  std::shared_ptr<HsDatabase> d(new HsDatabase());
  d->words_ = (pf.rules.size() + 63) / 64;
  hs_database_t* db = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()),
                       HS_MODE_BLOCK, nullptr, &db, &err) != HS_SUCCESS) {
    *why = pf.path + ": Vectorscan cannot compile rule '" +
           (err != nullptr && err->expression >= 0
                ? pf.rules[static_cast<size_t>(err->expression)].name
                : std::string("?")) +
           "': " + (err != nullptr ? err->message : "unknown error");
    hs_free_compile_error(err);
    return nullptr;
  }
  d->db_ = db;
  return d;
}

HsDatabase::~HsDatabase() {
  if (db_ != nullptr) hs_free_database(static_cast<hs_database_t*>(db_));
}

std::unique_ptr<HsPrefilter> HsPrefilter::Create(std::shared_ptr<const HsDatabase> db) {
  if (!db) return nullptr;
  std::unique_ptr<HsPrefilter> p(new HsPrefilter());
  hs_scratch_t* scratch = nullptr;
  if (hs_alloc_scratch(static_cast<const hs_database_t*>(db->raw()), &scratch) != HS_SUCCESS) {
    return nullptr;
  }
  p->db_ = std::move(db);
  p->scratch_ = scratch;
  return p;
}

HsPrefilter::~HsPrefilter() {
  if (scratch_ != nullptr) hs_free_scratch(static_cast<hs_scratch_t*>(scratch_));
}

namespace {
struct ScanContext {
  const uint32_t* starts;
  size_t n;
  size_t words;
  uint64_t* masks;
  size_t last = 0;  // record of the previous report (reports come in offset order)
};

int OnMatch(unsigned int id, unsigned long long, unsigned long long to, unsigned int, void* ctx) {
  auto* c = static_cast<ScanContext*>(ctx);
  if (to == 0) return 0;
  const uint32_t pos = static_cast<uint32_t>(to - 1);
  size_t i = c->last;
  if (!(c->starts[i] <= pos && (i + 1 == c->n || pos < c->starts[i + 1]))) {
    // The record holding pos: the last one starting at or before it.
    i = static_cast<size_t>(std::upper_bound(c->starts, c->starts + c->n, pos) - c->starts);
    i = i == 0 ? 0 : i - 1;
    c->last = i;
  }
  c->masks[i * c->words + id / 64] |= uint64_t{1} << (id % 64);
  return 0;
}
}  // namespace

bool HsPrefilter::Scan(std::string_view buf, const uint32_t* starts, size_t n, uint64_t* masks) {
  if (n == 0) return true;
  ScanContext ctx{starts, n, db_->words(), masks};
  return hs_scan(static_cast<const hs_database_t*>(db_->raw()), buf.data(),
                 static_cast<unsigned>(buf.size()), 0, static_cast<hs_scratch_t*>(scratch_),
                 OnMatch, &ctx) == HS_SUCCESS;
}

#else  // !QW_HAVE_HS

bool HsDatabase::Available() { return false; }
const char* HsDatabase::Engine() { return "re2-set"; }
std::shared_ptr<const HsDatabase> HsDatabase::Compile(const PatternFile&, std::string* why) {
  *why = "built without Hyperscan or Vectorscan";
  return nullptr;
}
HsDatabase::~HsDatabase() = default;
std::unique_ptr<HsPrefilter> HsPrefilter::Create(std::shared_ptr<const HsDatabase>) {
  return nullptr;
}
HsPrefilter::~HsPrefilter() = default;
bool HsPrefilter::Scan(std::string_view, const uint32_t*, size_t, uint64_t*) { return false; }

#endif

}  // namespace qw::match
