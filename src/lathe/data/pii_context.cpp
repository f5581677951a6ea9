// Context words: Korean and English words near a candidate that raise (a label such as 주민등록번호,
// 연락처, card) or lower (a decoy such as 주문번호, ISBN, version) its confidence.
//
// Window: 64 bytes before and 32 after the candidate (about 20 / 10 Hangul syllables or 10 / 5 English
// words: a label usually precedes the value, "...번호는 X입니다" puts a short tail after it). English
// words match case-insensitively as whole words; Korean words as substrings (particles attach to them).
// Score = base + boost (if a positive word of the candidate's type is present and no decoy word labels
// the number) - 0.45 (if a decoy word labels the number, or the number is glued to a unit/statute
// marker such as 원, 조, 제N조), clamped to [0, 1].
//
// Which label belongs to the number: a sentence often holds both kinds ("invoice amount ... to account
// number X", "주문 관련 문의는 연락처 X"), so the nearest one wins. A decoy word counts only when it is
// closer to the number than every strong positive word of the candidate's type, and only within
// kDecoyBefore / kDecoyAfter bytes (a decoy far away labels something else). Generic words ("number",
// "address", "registration") are weak: they add the boost but never outrank a decoy ("order number X").
#include <algorithm>
#include <cstring>

#include "lathe/data/pii_internal.h"

namespace lathe::data::pii_detail {

namespace {

constexpr size_t kBefore = 64, kAfter = 32;
// A decoy word labels the number only this close to it (bytes between word and number): about 10
// Hangul syllables or 5 English words before, 4 syllables after ("... 6123-4567 송장"). Shapes that are
// strong evidence on their own (base >= kStrongBase: dashed mobiles, grouped cards, checksummed RRNs,
// IPv4) need the decoy right at the number ("주문번호: X", "order no. X", not "주문하신 분 X").
constexpr size_t kDecoyBefore = 32, kDecoyAfter = 12;
constexpr size_t kStrongDecoyBefore = 10, kStrongDecoyAfter = 6;
constexpr float kStrongBase = 0.75f;
constexpr float kDecoyPenalty = 0.45f;

using WordList = std::vector<const char*>;

const WordList& positive_words(PiiType t) {
  static const WordList phone = {"전화", "연락처", "연락", "휴대폰", "핸드폰", "휴대전화", "문의", "팩스", "콜센터",
                                 "고객센터", "대표번호", "담당자", "사무소", "사무실", "내선", "tel", "phone",
                                 "telephone", "mobile", "cell", "cellphone", "call", "fax", "contact", "whatsapp",
                                 "hp", "office", "text", "reach"};
  static const WordList rrn = {"주민등록번호", "주민번호", "주민등록", "주민", "rrn", "resident registration",
                               "resident number", "social security"};
  static const WordList frn = {"외국인등록번호", "외국인등록", "외국인번호", "외국인", "frn", "alien registration",
                               "foreigner registration", "foreign resident"};
  static const WordList brn = {"사업자등록번호", "사업자번호", "사업자", "brn", "business registration",
                               "business number", "tax id"};
  static const WordList card = {"카드", "결제", "신용", "체크카드", "card", "credit", "debit", "visa",
                                "mastercard", "amex"};
  // Bank names: Korean ones mostly end in 은행/뱅크 (matched as substrings); the short forms and the
  // English names are listed (우리/하나/국민/기업 alone are everyday words: "we", "one", "nation", "company").
  static const WordList account = {"계좌", "입금", "송금", "이체", "예금주", "은행", "통장", "뱅크", "account",
                                   "acct", "a/c", "bank", "deposit", "transfer", "wire", "iban", "농협", "신한",
                                   "카카오뱅크", "토스뱅크", "새마을금고", "우체국", "수협", "신협", "nh",
                                   "ibk", "keb", "shinhan", "kookmin", "woori", "hana", "nonghyup", "kakaobank",
                                   "payee", "beneficiary"};
  static const WordList passport = {"여권", "passport"};
  static const WordList license = {"운전면허", "면허번호", "면허", "driver", "driving", "licence", "license"};
  static const WordList ip = {"아이피", "접속", "서버", "호스트", "내부망", "사설", "게이트웨이", "ip", "server",
                              "host", "hostname", "client", "gateway", "internal", "intranet", "ping", "ssh",
                              "lan", "vpn", "proxy", "dns", "subnet"};
  static const WordList none = {};
  switch (t) {
    case PiiType::Phone: return phone;
    case PiiType::ResidentRegistrationNumber: return rrn;
    case PiiType::ForeignerRegistrationNumber: return frn;
    case PiiType::BusinessRegistrationNumber: return brn;
    case PiiType::CardNumber: return card;
    case PiiType::BankAccount: return account;
    case PiiType::Passport: return passport;
    case PiiType::DriverLicense: return license;
    case PiiType::IpAddress: return ip;
    default: return none;
  }
}

// Generic label words: they raise a candidate of their type but never outrank a decoy, because decoys
// use them too ("order number", "serial no.", "mailing address").
const WordList& weak_words(PiiType t) {
  static const WordList phone = {"number", "no"};
  static const WordList frn = {"registration"};
  static const WordList ip = {"address", "addr"};
  static const WordList none = {};
  switch (t) {
    case PiiType::Phone: return phone;
    case PiiType::ForeignerRegistrationNumber: return frn;
    case PiiType::IpAddress: return ip;
    default: return none;
  }
}

const WordList kDecoys = {"주문번호", "주문", "송장", "운송장", "택배", "배송", "order", "invoice", "tracking",
                          "shipment", "isbn", "issn", "doi", "품번", "제품번호", "제품코드", "상품코드", "상품번호",
                          "모델명", "모델", "sku", "model", "serial", "시리얼", "일련번호", "part no", "접수번호",
                          "예약번호", "승인번호", "거래번호", "관리번호", "사건번호", "특허", "patent", "버전",
                          "version", "ver", "release", "릴리스", "build", "빌드", "firmware", "펌웨어", "barcode",
                          "바코드", "우편번호", "zip", "postal", "법률", "시행령", "금액", "amount", "price",
                          "가격", "합계", "total", "krw", "usd", "won", "학번", "사번", "회원번호", "ticket",
                          "티켓", "reference", "ref", "doc", "문서번호", "coordinates", "좌표", "section",
                          "chapter", "figure", "table", "clause", "oid", "isin"};

// Units and markers that, written right after a number, make it an amount, a count or a statute.
const WordList kDecoySuffixes = {"원", "만", "억", "달러", "조", "항", "호", "번지", "년", "개", "명", "건", "%"};

inline unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// Bucket key of a word starting at p: its first two bytes for ASCII; for a multi-byte character the
// two bytes after the lead byte, which tell Hangul syllables apart (the lead byte EA-ED only names a
// block of 1024 syllables, so keying on it would put 사무소, 사업자 and 사건번호 together). The two key
// spaces are disjoint (< 0x80 vs >= 0x80 bytes).
inline unsigned key_at(const unsigned char* p) {
  return p[0] < 0x80 ? (lower(p[0]) << 8) | lower(p[1]) : (p[1] << 8) | p[2];
}

// All context words in one table, bucketed by their first two (lowercased) bytes, so one pass over the
// window with one bucket lookup per byte finds every word: candidates are frequent in number-heavy text
// and a per-word search over the window cost more than the whole byte scan.
struct ContextWord {
  std::string_view w;
  bool ascii;
  uint32_t positive_mask;  // bit i: strong positive word for PiiType i
  uint32_t weak_mask;      // bit i: weak positive word for PiiType i
  bool decoy;
};
struct ContextTable {
  std::vector<ContextWord> words;
  std::vector<std::vector<uint16_t>> bucket = std::vector<std::vector<uint16_t>>(65536);
  uint64_t nonempty[1024] = {};  // bit per bucket: an 8 KiB test that stays in L1, unlike the vectors
  ContextTable() {
    auto add = [&](const char* w, uint32_t mask, uint32_t weak, bool decoy) {
      std::string_view v(w);
      for (auto& cw : words)
        if (cw.w == v) { cw.positive_mask |= mask; cw.weak_mask |= weak; cw.decoy |= decoy; return; }
      words.push_back({v, static_cast<unsigned char>(w[0]) < 0x80, mask, weak, decoy});
    };
    for (int t = 0; t < kPiiTypeCount; ++t) {
      for (const char* w : positive_words(static_cast<PiiType>(t))) add(w, 1u << t, 0, false);
      for (const char* w : weak_words(static_cast<PiiType>(t))) add(w, 0, 1u << t, false);
    }
    for (const char* w : kDecoys) add(w, 0, 0, true);
    for (size_t i = 0; i < words.size(); ++i) {
      const auto& w = words[i].w;
      unsigned key = key_at(reinterpret_cast<const unsigned char*>(w.data()));
      bucket[key].push_back(static_cast<uint16_t>(i));
      nonempty[key >> 6] |= uint64_t{1} << (key & 63);
    }
  }
};

constexpr size_t kFar = static_cast<size_t>(-1);
struct Found {
  bool weak = false;           // a weak word of the candidate's type
  size_t strong_dist = kFar;   // distance of the nearest strong word of the candidate's type
  size_t decoy_before = kFar;  // gap to the nearest decoy word before the candidate
  size_t decoy_after = kFar;   // gap to the nearest decoy word after it
  size_t rival_dist = kFar;    // distance of the nearest strong word of the rival type (see below)
};

// Scans `win` once for the words of candidate type bit `tbit`. Distances are bytes between the word and
// the candidate; words after the candidate count double (a label usually precedes its value).
void scan_window(const ContextTable& tab, std::string_view win, bool is_before, uint32_t tbit, uint32_t rival,
                 Found& f) {
  const auto* b = reinterpret_cast<const unsigned char*>(win.data());
  const size_t n = win.size();
  for (size_t i = 0; i + 1 < n; ++i) {
    // Words start at a UTF-8 lead byte, and English ones at a word boundary: skip the rest unseen.
    if (b[i] >= 0x80 && b[i] < 0xC0) continue;
    if (b[i] < 0x80 && i > 0 && is_alpha(b[i - 1])) continue;
    if (b[i] >= 0x80 && i + 2 >= n) continue;
    unsigned key = key_at(b + i);
    if (!(tab.nonempty[key >> 6] >> (key & 63) & 1)) continue;
    const auto& bk = tab.bucket[key];
    for (uint16_t id : bk) {
      const ContextWord& cw = tab.words[id];
      size_t wl = cw.w.size();
      if (i + wl > n) continue;
      if (!cw.decoy && !((cw.positive_mask | cw.weak_mask) & (tbit | rival))) continue;
      if (cw.ascii) {
        size_t k = 2;
        while (k < wl && lower(b[i + k]) == static_cast<unsigned char>(cw.w[k])) ++k;
        if (k < wl) continue;
        if (i + wl < n && is_alpha(b[i + wl])) continue;
      } else if (std::memcmp(b + i + 3, cw.w.data() + 3, wl - 3) != 0 || b[i] != static_cast<unsigned char>(cw.w[0])) {
        continue;
      }
      size_t gap = is_before ? n - (i + wl) : i;
      size_t dist = is_before ? gap : 2 * gap;  // words after the number are weaker labels
      if (cw.positive_mask & tbit) f.strong_dist = std::min(f.strong_dist, dist);
      if (cw.positive_mask & rival) f.rival_dist = std::min(f.rival_dist, dist);
      if (cw.weak_mask & tbit) f.weak = true;
      if (cw.decoy) (is_before ? f.decoy_before : f.decoy_after) = std::min(is_before ? f.decoy_before : f.decoy_after, gap);
    }
  }
}

}  // namespace

float score_with_context(std::string_view s, const Candidate& c) {
  if (c.type == PiiType::Email || c.type == PiiType::Secret) return c.base;  // self-evident shapes
  size_t wb = c.begin > kBefore ? c.begin - kBefore : 0;
  std::string_view before = s.substr(wb, c.begin - wb);
  std::string_view after = s.substr(c.end, std::min(kAfter, s.size() - c.end));
  static const ContextTable table;
  const uint32_t tbit = 1u << static_cast<int>(c.type);
  float conf = c.base;
  // An account number and a card number share shapes and bank names ("신한카드", "NH농협카드"): for an
  // account candidate a card word at least as near as the nearest account word cancels its boost.
  const uint32_t rival = c.type == PiiType::BankAccount ? 1u << static_cast<int>(PiiType::CardNumber) : 0;
  Found f;
  scan_window(table, before, true, tbit, rival, f);
  scan_window(table, after, false, tbit, rival, f);
  if (f.rival_dist <= f.strong_dist) f.strong_dist = kFar;
  const bool strong_shape = c.base >= kStrongBase - 1e-6f;
  size_t decoy_dist = kFar;
  if (f.decoy_before <= (strong_shape ? kStrongDecoyBefore : kDecoyBefore)) decoy_dist = f.decoy_before;
  if (f.decoy_after <= (strong_shape ? kStrongDecoyAfter : kDecoyAfter))
    decoy_dist = std::min(decoy_dist, 2 * f.decoy_after);
  bool decoy = decoy_dist < f.strong_dist;
  // The nearest label decides: when a decoy labels the number, the positive words further away label
  // something else and add nothing ("version 1.2.3.4, server 10.0.0.1").
  if (!decoy && (f.strong_dist != kFar || f.weak)) conf += c.boost;
  if (!decoy) {
    std::string_view tail = after;
    while (!tail.empty() && tail.front() == ' ') tail.remove_prefix(1);
    for (const char* suf : kDecoySuffixes)
      if (tail.substr(0, std::strlen(suf)) == suf) { decoy = true; break; }
    // Currency signs and "#" before the number. (Statutes "제12조" are caught by the 조/항/호 suffix; a
    // "제" prefix alone would also hit "제 010-..." = "my 010-...".)
    // "#" yields to a label right before it ("Acct# 110-...", "account #: ...").
    static const WordList kPrefixes = {"₩", "$", "#"};
    for (const char* pre : kPrefixes) {
      if (pre[0] == '#' && f.strong_dist <= 3) continue;
      size_t pl = std::strlen(pre);
      std::string_view head = before;
      while (!head.empty() && head.back() == ' ') head.remove_suffix(1);
      if (head.size() >= pl && head.substr(head.size() - pl) == pre) { decoy = true; break; }
    }
  }
  if (decoy) conf -= kDecoyPenalty;
  return conf < 0 ? 0 : conf > 1 ? 1 : conf;
}

}  // namespace lathe::data::pii_detail
