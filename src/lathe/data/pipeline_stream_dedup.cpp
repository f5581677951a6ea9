// The streaming driver's dedup (pipeline_stream.cpp has the reading and the per-record pass): exact
// duplicates by their 64-bit hashes, confirmed byte for byte by reading back only the records whose
// hash has a twin; near duplicates from the spooled band keys, with signatures recomputed for the
// records of candidate pairs. What is read back is read in rising spool order, a window at a time
// (scan_records), so that a spool on disk is read in one pass instead of one seek per record.
#include <xxhash.h>

#include <algorithm>
#include <future>
#include <map>
#include <unordered_map>

#include "lathe/core/error.h"
#include "lathe/data/bucket_sort.h"
#include "lathe/data/dedup.h"
#include "lathe/data/json_fast.h"
#include "lathe/data/pipeline_internal.h"
#include "lathe/data/pipeline_stream_internal.h"
#include "lathe/data/prepare_spool.h"

namespace lathe::data::stream_detail {

namespace {
constexpr uint32_t kNone = UINT32_MAX;
}  // namespace

// The dedup text of a spooled record, from its records-file line (whose added "_source" and "_id"
// the dedup text does not read).
std::string Streamer::dedup_text_of(std::string_view rec) {
  size_t char_len = 0;
  const size_t at = get_text_statistics(rec, char_len, nullptr);
  const std::string_view line = rec.substr(at, rec.size() - at - 1);
  nlohmann::json j;
  if (!json_parse_fast(line, j)) j = nlohmann::json::parse(line);
  return dedup_text(j);
}

std::string Streamer::read_dedup_text(size_t i) const {
  std::string scratch;
  return dedup_text_of(spool_.view(meta_[i].off, meta_[i].rec_bytes, scratch));
}

void Streamer::scan_records(const std::vector<uint32_t>& recs, const ScanWindow& fn) const {
  // A window: records whose bytes lie within 8 MiB of the first, with gaps of at most 1 MiB between
  // them (what dedup drops, or records not asked for, are read over rather than sought past).
  // (LATHE_DATA_SCAN_BYTES: tests cut windows of a few records.)
  static const uint64_t kWindow = knob("LATHE_DATA_SCAN_BYTES", uint64_t(8) << 20), kGap = kWindow / 8;
  constexpr size_t kInMemory = 4096;  // records a window, when nothing is read
  const size_t n = recs.size();
  auto end_of = [&](size_t k) { return meta_[recs[k]].off + meta_[recs[k]].rec_bytes; };
  if (!spool_.on_disk()) {
    for (size_t k0 = 0; k0 < n; k0 += kInMemory) {
      const size_t k1 = std::min(n, k0 + kInMemory);
      fn(k0, k1, [&](size_t k) {
        thread_local std::string scratch;
        return spool_.view(meta_[recs[k]].off, meta_[recs[k]].rec_bytes, scratch);
      });
    }
    return;
  }
  struct Window {
    size_t k0 = 0, k1 = 0;
    uint64_t first = 0;
    std::string scratch;
    std::string_view bytes;
  };
  auto plan = [&](size_t k0, Window& w) {
    w.k0 = k0;
    w.first = meta_[recs[k0]].off;
    uint64_t end = end_of(k0);
    size_t k1 = k0 + 1;
    // (recs rise, so each record starts at or after the last one's end)
    while (k1 < n && meta_[recs[k1]].off - end <= kGap && end_of(k1) - w.first <= kWindow)
      end = end_of(k1++);
    w.k1 = k1;
    return end;
  };
  Window w[2];
  IoWorker io;
  auto read = [&](Window& x, uint64_t end) { x.bytes = spool_.view(x.first, size_t(end - x.first), x.scratch); };
  if (n == 0) return;
  read(w[0], plan(0, w[0]));
  for (int c = 0;; c ^= 1) {
    Window &cur = w[c], &next = w[c ^ 1];
    std::future<void> ahead;  // the next window read while this one is worked on
    if (cur.k1 < n) {
      const uint64_t end = plan(cur.k1, next);
      ahead = io.submit([&read, &next, end] { read(next, end); });
    }
    fn(cur.k0, cur.k1, [&](size_t k) {
      const Meta& m = meta_[recs[k]];
      return cur.bytes.substr(m.off - cur.first, m.rec_bytes);
    });
    if (!ahead.valid()) break;
    ahead.get();
  }
}

bool RecentTexts::add(uint32_t i, uint64_t hash, std::string&& text) {
  constexpr uint64_t kEntryBytes = 64;  // what an entry costs beside its text (an empty text too)
  auto [it, fresh] = map_.try_emplace(hash);
  Entry& e = it->second;
  if (!fresh) {
    if (e.text != text) return false;  // (another text under this hash: dedup's read-back tells them apart)
    same.emplace_back(i, e.first);
    e.last = i;  // kept as long as its text keeps coming
    order_.emplace_back(hash, i);
    return true;
  }
  e.first = e.last = i;
  bytes_ += text.size() + kEntryBytes;
  e.text = std::move(text);
  order_.emplace_back(hash, i);
  while (bytes_ > cap_ && !order_.empty()) {
    const auto [h, r] = order_.front();
    order_.pop_front();
    auto o = map_.find(h);
    if (o == map_.end() || o->second.last != r) continue;
    bytes_ -= o->second.text.size() + kEntryBytes;
    map_.erase(o);
  }
  return false;
}

// Exact duplicates: rep[i] = the first record (in input order) whose normalized dedup text equals
// record i's, kNone for a record without an earlier equal. Records are grouped by hash (12 bytes a
// record, sorted). In a group, a record recent_ saw equal an earlier one follows that one (its root);
// a group with one root is settled so. Only the roots of the other groups are read back, in spool
// order, and each is compared with the distinct texts its group has shown so far, which are held
// until the group's last root has been read. Groups whose texts would push what is held past a
// quarter of max_memory wait for another pass, so memory stays bounded whatever the order of the
// duplicates.
std::vector<uint32_t> Streamer::exact_duplicates() {
  const size_t n = meta_.size();
#pragma pack(push, 4)
  struct Keyed {
    uint64_t h;
    uint32_t i;
  };
#pragma pack(pop)
  static_assert(sizeof(Keyed) == 12);
  std::vector<Keyed> order(n);
  // LATHE_DATA_DEDUP_HASH_BITS: tests keep a few bits of the hash, so that different texts share one.
  static const uint64_t mask = ~uint64_t(0) >> (64 - std::min<size_t>(64, knob("LATHE_DATA_DEDUP_HASH_BITS", 64)));
  for (size_t i = 0; i < n; i++) order[i] = {hashes_[i] & mask, uint32_t(i)};
  hashes_.clear();  // needed no more
  bucket_sort(order.data(), n, [](const Keyed& k) { return size_t(k.h >> 56); },
              [](const Keyed& a, const Keyed& b) { return a.h != b.h ? a.h < b.h : a.i < b.i; });
  const std::vector<std::pair<uint32_t, uint32_t>>& same = recent_.same;  // sorted by record
  auto root_of = [&](uint32_t i) {
    auto it = std::lower_bound(same.begin(), same.end(), std::make_pair(i, uint32_t(0)));
    return it != same.end() && it->first == i ? it->second : kNone;
  };
  std::vector<uint32_t> rep(n, kNone);
  struct Twin {
    uint32_t i, group;
  };
  std::vector<Twin> twins;  // the roots of groups with two or more, to read back
  std::vector<uint32_t> left;  // per group: roots not yet read
  std::vector<std::pair<uint32_t, uint32_t>> follows;  // (record, its root) in those groups
  std::vector<uint32_t> roots;
  for (size_t s = 0; s < n;) {
    size_t e = s + 1;
    while (e < n && order[e].h == order[s].h) e++;
    if (e - s > 1) {
      roots.clear();
      const size_t f0 = follows.size();
      for (size_t k = s; k < e; k++) {
        const uint32_t r = root_of(order[k].i);
        if (r == kNone)
          roots.push_back(order[k].i);
        else
          follows.emplace_back(order[k].i, r);
      }
      if (roots.size() == 1) {  // every other member's text was seen equal to it as the records came
        for (size_t q = f0; q < follows.size(); q++) rep[follows[q].first] = roots[0];
        follows.resize(f0);
      } else {
        for (uint32_t r : roots) twins.push_back({r, uint32_t(left.size())});
        left.push_back(uint32_t(roots.size()));
      }
    }
    s = e;
  }
  std::vector<Keyed>().swap(order);
  std::sort(twins.begin(), twins.end(), [](const Twin& a, const Twin& b) { return a.i < b.i; });
  const uint64_t cap = knob("LATHE_DATA_DEDUP_HOLD_BYTES", budget_ / 4);
  std::vector<char> started(left.size(), 0);
  while (!twins.empty()) {
    std::unordered_map<uint32_t, std::vector<std::pair<uint32_t, std::string>>> held;  // group -> texts
    uint64_t held_bytes = 0;
    std::vector<char> waits(left.size(), 0);
    std::vector<Twin> later;
    std::vector<uint32_t> recs(twins.size());
    for (size_t k = 0; k < twins.size(); k++) recs[k] = twins[k].i;
    scan_records(recs, [&](size_t k0, size_t k1, const RecordBytes& rec) {
      std::vector<std::string> norm(k1 - k0);
#pragma omp parallel for schedule(dynamic, 16)
      for (int64_t k = int64_t(k0); k < int64_t(k1); k++) {
        const uint32_t g = twins[size_t(k)].group;
        if (!waits[g]) norm[size_t(k) - k0] = dedup_normalize(dedup_text_of(rec(size_t(k))));
      }
      for (size_t k = k0; k < k1; k++) {
        const auto [i, g] = twins[k];
        if (!waits[g] && !started[g] && held_bytes > cap && !held.empty()) waits[g] = 1;
        if (waits[g]) {
          later.push_back(twins[k]);
          continue;
        }
        started[g] = 1;
        std::string& t = norm[k - k0];
        auto& texts = held[g];
        for (auto& [r, text] : texts)
          if (text == t) {
            rep[i] = r;
            break;
          }
        if (--left[g] == 0) {
          for (auto& x : texts) held_bytes -= x.second.size();
          held.erase(g);
        } else if (rep[i] == kNone) {
          held_bytes += t.size();
          texts.emplace_back(i, std::move(t));
        }
      }
    });
    twins.swap(later);
  }
  // A root's followers share its text: the first record with it is the root's representative, or the
  // root itself.
  for (auto [i, r] : follows) rep[i] = rep[r] != kNone ? rep[r] : r;
  return rep;
}

// Up to 20 clusters (by representative, in record order), as the in-memory dedup reports them;
// `pairs` = (representative, member) of every dropped or clustered member, in member order.
void Streamer::report_clusters(const std::vector<std::pair<size_t, size_t>>& pairs,
                               nlohmann::json& out) const {
  std::map<size_t, std::vector<size_t>> groups;
  for (auto& [rep, member] : pairs) {
    auto it = groups.find(rep);
    if (it == groups.end() && groups.size() >= 20 && rep > groups.rbegin()->first) continue;
    groups[rep].push_back(member);
    if (groups.size() > 20) groups.erase(std::prev(groups.end()));
  }
  for (auto& [rep, members] : groups) {
    nlohmann::json c{
        {"kept", where(rep)}, {"kept_text", snippet(read_dedup_text(rep))}, {"size", members.size() + 1}};
    for (size_t m = 0; m < std::min<size_t>(members.size(), 3); m++)
      c["duplicates"].push_back(where(members[m]));
    out.push_back(c);
  }
}

// Stage 5 on the Metas: `kept` = the surviving records in order, `cluster` their near-duplicate
// cluster as an index into `kept` (-1: none), as the in-memory dedup stage renumbers them.
StageCounts Streamer::dedup(nlohmann::json& info, std::vector<int64_t>& cluster,
                            std::vector<uint32_t>& kept) {
  const auto& o = cfg_.dedup;
  StageCounts counts("dedup");
  info = {{"exact_clusters", nlohmann::json::array()}, {"near_clusters", nlohmann::json::array()}};
  const size_t n = meta_.size();
  counts.in = n;
  // Record indices as 32 bits (take_batch stops a run before 2^32 - 1 records): these arrays and the
  // Metas are what is resident when dedup runs.
  std::vector<char> drop(n, 0);
  std::vector<uint32_t> cl_of(n, kNone);
  if (o.exact) {
    std::vector<uint32_t> rep = exact_duplicates();
    std::vector<std::pair<size_t, size_t>> pairs;
    for (size_t i = 0; i < n; i++)
      if (rep[i] != kNone) {
        pairs.emplace_back(size_t(rep[i]), i);
        drop[i] = 1;
        counts.drop("exact duplicate", where(i) + ": duplicate of " + where(size_t(rep[i])));
      }
    report_clusters(pairs, info["exact_clusters"]);
    steps_("dedup: exact");
  }
  hashes_.clear();
  if (o.near) {
    std::vector<uint32_t> idx;
    for (size_t i = 0; i < n; i++)
      if (!drop[i]) idx.push_back(uint32_t(i));
    std::vector<uint32_t> pos(n, kNone);  // record -> its place in idx
    for (size_t k = 0; k < idx.size(); k++) pos[idx[k]] = uint32_t(k);
    std::vector<uint64_t> block;
    auto cl = near_clusters_from_keys(
        int64_t(idx.size()),
        [&](int band, std::vector<std::pair<uint64_t, int64_t>>& bucket) {
          for (const KeyBlock& kb : key_blocks_) {
            block.resize(kb.count);
            key_spool_.read(kb.off + 8 * uint64_t(band) * kb.count, 8 * kb.count, block.data());
            for (size_t j = 0; j < kb.count; j++) {
              const size_t i = kb.first + j;
              if (pos[i] != kNone && (meta_[i].flags & kHasKeys))
                bucket.emplace_back(block[j], int64_t(pos[i]));
            }
          }
        },
        [&](const std::vector<int64_t>& which, uint32_t* sigs) {
          // In rising record order, so a spool on disk is read in one pass.
          std::vector<uint32_t> recs(which.size());
          for (size_t k = 0; k < which.size(); k++) recs[k] = idx[size_t(which[k])];
          const int P = mo_.num_perm;
          scan_records(recs, [&](size_t k0, size_t k1, const RecordBytes& rec) {
#pragma omp parallel for schedule(dynamic, 16)
            for (int64_t k = int64_t(k0); k < int64_t(k1); k++)
              hasher_->signature(dedup_normalize(dedup_text_of(rec(size_t(k)))), sigs + k * P);
          });
        },
        mo_);
    std::vector<std::pair<size_t, size_t>> pairs;
    for (size_t k = 0; k < cl.size(); k++) {
      const size_t i = idx[k], r = idx[size_t(cl[k])];
      cl_of[i] = uint32_t(r);
      if (cl[k] == int64_t(k)) continue;
      pairs.emplace_back(r, i);
      if (o.near_action == "drop") {
        drop[i] = 1;
        counts.drop("near duplicate", where(i) + ": near " + where(r));
      }
    }
    report_clusters(pairs, info["near_clusters"]);
    steps_("dedup: near");
  }
  if (!prompts_.empty()) {
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
      if (drop[i] || meta_[i].contaminated < 0) continue;
      hits++;
      std::string ex =
          where(i) + ": matches eval prompt \"" + snippet(prompts_[size_t(meta_[i].contaminated)], 80) + "\"";
      if (o.contamination_action == "drop") {
        drop[i] = 1;
        counts.drop("contaminated (eval prompt)", ex);
      } else if (info["contamination_examples"].size() < 10) {
        info["contamination_examples"].push_back(ex);
      }
    }
    info["eval_prompts"] = prompts_.size();
    info["contaminated"] = hits;
  }
  for (size_t i = 0; i < n; i++)
    if (!drop[i]) kept.push_back(uint32_t(i));
  counts.out = kept.size();
  // Cluster ids were record indices; renumbered as indices into `kept` of each cluster's first survivor.
  // (a record index -> the first place in `kept` of its cluster: an array, not a map, since with near
  // dedup every record is in a cluster, of one for most)
  std::vector<uint32_t> first_of(cl_of.empty() ? 0 : n, kNone);
  cluster.assign(kept.size(), -1);
  for (size_t k = 0; k < kept.size(); k++) {
    const uint32_t c = cl_of[kept[k]];
    if (c == kNone) continue;
    if (first_of[c] == kNone) first_of[c] = uint32_t(k);
    cluster[k] = int64_t(first_of[c]);
  }
  return counts;
}


}  // namespace lathe::data::stream_detail
