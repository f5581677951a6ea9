// `lathe data prepare` under mpirun: the per-record stages (collect, map, clean, personal data) run on
// every rank over a contiguous share of the input files, and rank 0 joins the results in rank order.
// Because the shares are contiguous in the file order and every per-record stage keeps its records in
// input order, rank 0's join is exactly the record list (and the counts, drop examples, warnings,
// sources and personal-data summary) of one process; the stages that compare records (dedup,
// contamination, split) and the writing then run on rank 0 as they do in one process, so the output
// directory is the same bytes.
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "lathe/core/error.h"
#include "lathe/data/pipeline_internal.h"
#include "lathe/dist/comm.h"

namespace fs = std::filesystem;

namespace lathe::data {

void merge_counts(StageCounts& into, const StageCounts& part) {
  into.in += part.in;
  into.out += part.out;
  for (auto& [k, v] : part.dropped) into.dropped[k] += v;
  for (auto& [k, v] : part.examples) {
    auto& ex = into.examples[k];
    for (auto& e : v)
      if (ex.size() < kExamplesPerReason) ex.push_back(e);
  }
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  out += char(uint8_t(v));
}

namespace {

using json = nlohmann::json;

// ---- a compact binary form: LEB128 integers (put_varint), length-prefixed strings, tagged JSON values ----

void put_str(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

uint64_t zigzag(int64_t v) {
  return (uint64_t(v) << 1) ^ uint64_t(v >> 63);
}
int64_t unzigzag(uint64_t v) {
  return int64_t(v >> 1) ^ -int64_t(v & 1);
}

enum Tag : char { kNull, kFalse, kTrue, kInt, kUint, kFloat, kString, kArray, kObject };

void put_json(std::string& out, const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      out += char(kNull);
      return;
    case json::value_t::boolean:
      out += char(j.get<bool>() ? kTrue : kFalse);
      return;
    case json::value_t::number_integer:
      out += char(kInt);
      return put_varint(out, zigzag(j.get<int64_t>()));
    case json::value_t::number_unsigned:
      out += char(kUint);
      return put_varint(out, j.get<uint64_t>());
    case json::value_t::number_float: {
      out += char(kFloat);
      const double d = j.get<double>();
      char b[8];
      std::memcpy(b, &d, 8);
      out.append(b, 8);
      return;
    }
    case json::value_t::string:
      out += char(kString);
      return put_str(out, j.get_ref<const std::string&>());
    case json::value_t::array:
      out += char(kArray);
      put_varint(out, j.size());
      for (const auto& v : j) put_json(out, v);
      return;
    case json::value_t::object:
      out += char(kObject);
      put_varint(out, j.size());
      for (const auto& [k, v] : j.get_ref<const json::object_t&>()) {
        put_str(out, k);
        put_json(out, v);
      }
      return;
    default:
      fail("data", "a record holds a binary JSON value, which cannot travel between ranks");
  }
}

class Reader {
 public:
  Reader(std::string_view b, std::string what)
      : begin_(b.data()), p_(b.data()), end_(b.data() + b.size()), what_(std::move(what)) {}
  bool done() const { return p_ == end_; }
  char byte() {
    need(1);
    return *p_++;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = uint8_t(byte());
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    corrupt();
  }
  std::string str() {
    const uint64_t n = varint();
    need(n);
    std::string s(p_, size_t(n));
    p_ += n;
    return s;
  }
  void get_json(json& out) {
    switch (byte()) {
      case kNull:
        out = nullptr;
        return;
      case kFalse:
        out = false;
        return;
      case kTrue:
        out = true;
        return;
      case kInt:
        out = unzigzag(varint());
        return;
      case kUint:
        out = varint();
        return;
      case kFloat: {
        need(8);
        double d;
        std::memcpy(&d, p_, 8);
        p_ += 8;
        out = d;
        return;
      }
      case kString:
        out = str();
        return;
      case kArray: {
        const uint64_t n = varint();
        out = json::array();
        auto& a = out.get_ref<json::array_t&>();
        a.resize(size_t(std::min<uint64_t>(n, uint64_t(end_ - p_))));  // each value takes >= 1 byte
        if (a.size() != n) corrupt();
        for (auto& v : a) get_json(v);
        return;
      }
      case kObject: {
        const uint64_t n = varint();
        out = json::object();
        auto& m = out.get_ref<json::object_t&>();
        for (uint64_t i = 0; i < n; i++) {
          std::string k = str();
          // Keys arrive in the map's order, so each insertion goes at the end in constant time.
          auto it = m.emplace_hint(m.end(), std::move(k), nullptr);
          get_json(it->second);
        }
        return;
      }
      default:
        corrupt();
    }
  }

 private:
  void need(uint64_t n) {
    if (n > uint64_t(end_ - p_)) corrupt();
  }
  [[noreturn]] void corrupt() {
    fail("data", "{}: corrupt data at byte {} of {}", what_, p_ - begin_, end_ - begin_);
  }
  const char* begin_;
  const char* p_;
  const char* end_;
  std::string what_;
};

// ---- what a rank reports besides its records ----

void put_counts(json& j, const StageCounts& c) {
  j = {{"in", c.in}, {"out", c.out}, {"dropped", c.dropped}, {"examples", c.examples}};
}

// `into` followed by `part`, as one stage over both would have counted.
void merge_counts(StageCounts& into, const json& part) {
  StageCounts p;
  p.in = part["in"].get<size_t>();
  p.out = part["out"].get<size_t>();
  p.dropped = part["dropped"].get<std::map<std::string, size_t>>();
  p.examples = part["examples"].get<std::map<std::string, std::vector<std::string>>>();
  merge_counts(into, p);
}

std::string encode_summary(const RecordStages& rs) {
  json j;
  put_counts(j["collect"], rs.cr.counts);
  put_counts(j["map"], rs.map);
  put_counts(j["clean"], rs.clean);
  put_counts(j["pii"], rs.pii);
  j["inputs"] = json::array();
  for (auto& f : rs.cr.inputs) j["inputs"].push_back({f.path, f.hash, f.records, f.format});
  j["skipped"] = json::array();
  for (auto& s : rs.cr.skipped) j["skipped"].push_back({s.path, s.reason, s.detail});
  j["warnings"] = rs.cr.warnings;
  j["shapes"] = rs.shapes;
  if (rs.kind.kind) j["kind"] = {int(*rs.kind.kind), rs.kind.first};
  j["pii_hits"] = rs.pii_summary.hits;
  j["pii_examples"] = rs.pii_summary.examples;
  std::string out;
  put_json(out, j);
  return out;
}

void merge_summary(RecordStages& rs, const std::string& bytes, const std::string& what) {
  json j;
  Reader rd(bytes, what);
  rd.get_json(j);
  merge_counts(rs.cr.counts, j["collect"]);
  merge_counts(rs.map, j["map"]);
  merge_counts(rs.clean, j["clean"]);
  merge_counts(rs.pii, j["pii"]);
  for (auto& f : j["inputs"])
    rs.cr.inputs.push_back(
        {f[0].get<std::string>(), f[1].get<std::string>(), f[2].get<size_t>(), f[3].get<std::string>()});
  for (auto& s : j["skipped"])
    rs.cr.skipped.push_back({s[0].get<std::string>(), s[1].get<std::string>(), s[2].get<std::string>()});
  for (auto& w : j["warnings"]) rs.cr.warnings.push_back(w.get<std::string>());
  for (auto& [k, v] : j["shapes"].items()) rs.shapes[k] += v.get<size_t>();
  if (j.contains("kind"))
    merge_kinds(rs.kind, KindSeen{DatasetKind(j["kind"][0].get<int>()), j["kind"][1].get<std::string>()});
  for (auto& [k, v] : j["pii_hits"].items()) rs.pii_summary.hits[k] += v.get<size_t>();
  for (auto& [k, v] : j["pii_examples"].items()) {
    auto& ex = rs.pii_summary.examples[k];
    for (auto& e : v)
      if (ex.size() < kExamplesPerReason) ex.push_back(e.get<std::string>());
  }
}

// Bytes one rank sends in one gather: MPI counts are int, for each rank's part and for their sum at
// the root, so a round carries at most INT_MAX / ranks per rank (256 MiB at most, to bound the
// root's buffer). LATHE_DATA_GATHER_BYTES sets a smaller piece (tests use it to force many rounds).
size_t piece_limit(int ranks) {
  size_t limit = std::min<size_t>(size_t(256) << 20, size_t(INT_MAX) / size_t(ranks) - 1);
  if (const char* e = std::getenv("LATHE_DATA_GATHER_BYTES")) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(e, &end, 10);
    if (!*e || *end || v == 0) fail("data", "LATHE_DATA_GATHER_BYTES={}: not a positive number of bytes", e);
    limit = std::min<size_t>(limit, size_t(v));
  }
  return limit;
}

}  // namespace

void encode_record(const Record& r, std::string& out, std::string& last_file) {
  // Records of one file follow each other: its name travels once per run of them.
  if (r.source.file == last_file) {
    out += char(0);
  } else {
    out += char(1);
    put_str(out, r.source.file);
    last_file = r.source.file;
  }
  put_varint(out, zigzag(r.source.line));
  put_varint(out, zigzag(r.source.page));
  put_varint(out, zigzag(r.source.item));
  put_str(out, r.id);
  put_str(out, r.stratum);
  put_varint(out, zigzag(r.cluster));
  put_json(out, r.json);
}

void decode_records(std::string_view bytes, std::vector<Record>& out, const std::string& what) {
  Reader rd(bytes, what);
  std::string file;
  while (!rd.done()) {
    Record r;
    if (rd.byte()) file = rd.str();
    r.source.file = file;
    r.source.line = unzigzag(rd.varint());
    r.source.page = unzigzag(rd.varint());
    r.source.item = unzigzag(rd.varint());
    r.id = rd.str();
    r.stratum = rd.str();
    r.cluster = unzigzag(rd.varint());
    rd.get_json(r.json);
    out.push_back(std::move(r));
  }
}

std::vector<int> shard_files(const std::vector<uint64_t>& sizes, int ranks) {
  const size_t n = sizes.size();
  unsigned __int128 total = 0;
  for (uint64_t s : sizes) total += s;
  std::vector<int> owner(n, 0);
  unsigned __int128 before = 0;
  for (size_t i = 0; i < n; i++) {
    // The middle of file i, in half bytes, against equal shares of the total: monotone in i, so the
    // shares are contiguous ranges of the file order.
    const unsigned __int128 share = total == 0 ? (unsigned __int128)(i) * unsigned(ranks) / n
                                               : (2 * before + sizes[i]) * unsigned(ranks) / (2 * total);
    owner[i] = int(std::min<unsigned __int128>(share, unsigned(ranks - 1)));
    before += sizes[i];
  }
  return owner;
}

bool sharded_record_stages(const DataConfig& cfg, const Tokenizer* tok, Communicator& comm, RecordStages& rs,
                           const std::function<void(const char*)>& lap) {
  const int rank = comm.rank(), ranks = comm.size();
  const CollectOptions co = collect_options(cfg, tok);
  // Rank 0 lists the files (one walk, so every rank shares one list even where directories are
  // listed differently) and sends the list with the sizes that balance the shares.
  std::vector<std::string> files;
  std::vector<uint64_t> sizes;
  std::string list;
  if (comm.is_root()) {
    std::vector<SkippedSource> skipped;
    files = expand_inputs(cfg.inputs, &skipped);
    collect_skipped(std::move(skipped), co, rs.cr);  // counted once, first, as one process does
    for (auto& f : files) {
      std::error_code ec;
      const uintmax_t s = fs::file_size(f, ec);
      put_str(list, f);
      put_varint(list, ec ? 0 : uint64_t(s));
    }
  }
  int64_t list_bytes = int64_t(list.size());
  comm.broadcast(&list_bytes, sizeof list_bytes, 0);
  list.resize(size_t(list_bytes));
  comm.broadcast(list.data(), list.size(), 0);
  if (!comm.is_root()) {
    Reader rd(list, "the file list from rank 0");
    while (!rd.done()) {
      files.push_back(rd.str());
      sizes.push_back(rd.varint());
    }
  } else {
    Reader rd(list, "the file list");
    while (!rd.done()) {
      rd.str();
      sizes.push_back(rd.varint());
    }
  }
  const std::vector<int> owner = shard_files(sizes, ranks);
  for (size_t i = 0; i < files.size(); i++)
    if (owner[i] == rank) collect_file(files[i], co, rs.cr);
  rs.cr.counts.out = rs.cr.records.size();
  lap("collect");
  run_record_stages(cfg, rs, lap);

  // The summaries (counts, sources, warnings, personal data), then the records in rounds.
  const std::vector<std::string> summaries =
      comm.gather(comm.is_root() ? std::string() : encode_summary(rs), 0);
  if (comm.is_root())
    for (int r = 1; r < ranks; r++)
      merge_summary(rs, summaries[size_t(r)], fmt::format("the summary of rank {}", r));
  // Every piece is encoded before the first is sent (freeing each record once encoded, so a rank
  // holds its share once), so that the number of rounds is agreed on once and a rank that has sent
  // its last piece goes on to exit instead of waiting, busy, for rank 0 to decode each round: MPI
  // waits by polling, which takes a core from rank 0 on a machine whose cores are all in use.
  const size_t limit = piece_limit(ranks);
  std::vector<Record>& mine = rs.cr.records;
  std::vector<std::string> pieces;
  if (!comm.is_root()) {
    std::string last_file;
    for (size_t i = 0; i < mine.size(); i++) {
      if (pieces.empty()) pieces.emplace_back();
      std::string* piece = &pieces.back();
      const size_t before = piece->size();
      encode_record(mine[i], *piece, last_file);
      if (piece->size() > limit && before > 0) {  // whole records up to the limit; a larger one alone
        piece->resize(before);
        last_file.clear();  // each piece decodes on its own
        piece = &pieces.emplace_back();
        encode_record(mine[i], *piece, last_file);
      }
      mine[i] = Record();
    }
    mine.clear();
  }
  int64_t rounds = int64_t(pieces.size());
  comm.allreduce_max(&rounds, 1);
  std::vector<std::vector<Record>> parts(comm.is_root() ? size_t(ranks) : 0);
  for (int64_t k = 0; k < rounds; k++) {
    std::string piece;
    if (size_t(k) < pieces.size()) piece.swap(pieces[size_t(k)]);
    const std::vector<std::string> got = comm.gather(piece, 0);
    piece = {};
    if (comm.is_root())
      for (int r = 1; r < ranks; r++)
        decode_records(got[size_t(r)], parts[size_t(r)], fmt::format("records of rank {}", r));
  }
  lap("gather");
  if (!comm.is_root()) return false;
  size_t total = mine.size();
  for (auto& p : parts) total += p.size();
  mine.reserve(total);
  for (auto& p : parts) {
    for (auto& r : p) mine.push_back(std::move(r));
    p = {};
  }
  return true;
}

}  // namespace lathe::data
