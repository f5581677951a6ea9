// PiiDetector: the single byte pass that dispatches to the scanners, overlap resolution, redaction and
// report masking.
#include "lathe/data/pii.h"

#include <algorithm>
#include <map>

#include "lathe/core/error.h"
#include "lathe/data/pii_internal.h"
#include "lathe/data/text_blocks_avx2.h"

namespace lathe::data {

using namespace pii_detail;

namespace {
const char* const kNames[kPiiTypeCount] = {"EMAIL", "PHONE", "RRN",     "FRN",            "BRN",   "CARD",
                                           "ACCOUNT", "PASSPORT", "DRIVER_LICENSE", "IP", "SECRET"};

// What the byte at hand may start. Everything else (>= 0x80 included: Korean text is skipped a byte at
// a time without any other test) is class 0.
enum ByteClass : uint8_t { kNone = 0, kDigit, kPlusParen, kAt, kColon, kLetter, kDash, kWide };
struct ClassTable {
  uint8_t t[256] = {};
  constexpr ClassTable() {
    for (int c = '0'; c <= '9'; ++c) t[c] = kDigit;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = kLetter;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = kLetter;
    t[static_cast<int>('+')] = kPlusParen;
    t[static_cast<int>('(')] = kPlusParen;
    t[static_cast<int>('@')] = kAt;
    t[static_cast<int>(':')] = kColon;
    t[static_cast<int>('-')] = kDash;
    t[0xEF] = kWide;  // lead byte of full-width forms (U+FF00-FFEF); Hangul syllables lead with EA-ED
  }
};
constexpr ClassTable kClass;
#ifdef LATHE_TEXT_AVX2
// The first byte of b[i, n) that may start a candidate, 32 bytes at a time; stops with fewer than 32
// left (the table loop finishes).
LATHE_TARGET_AVX2 size_t skip_inert_avx2(const unsigned char* b, size_t i, size_t n) {
  using namespace text_blocks;
  for (; i + 32 <= n; i += 32) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i));
    // '0'-'9' and ':' (0x30-0x3A), letters (x | 0x20 in 'a'-'z'), ( + - @ and EF: kClass's bytes.
    const __m256i hit = _mm256_or_si256(
        _mm256_or_si256(in(x, '0', ':'), in(_mm256_or_si256(x, _mm256_set1_epi8(0x20)), 'a', 'z')),
        _mm256_or_si256(_mm256_or_si256(eq(x, '('), eq(x, '+')), _mm256_or_si256(_mm256_or_si256(eq(x, '-'), eq(x, '@')), eq(x, 0xEF))));
    if (const uint32_t m = uint32_t(_mm256_movemask_epi8(hit))) return i + size_t(__builtin_ctz(m));
  }
  return i;
}
#endif
}  // namespace

size_t pii_detail::skip_inert(const unsigned char* b, size_t i, size_t n, bool blocks) {
  // English words are a space or two apart: the first eight bytes by the table, blocks only past them.
  auto inert4 = [&](size_t p) { return (kClass.t[b[p]] | kClass.t[b[p + 1]] | kClass.t[b[p + 2]] | kClass.t[b[p + 3]]) == 0; };
  if (i + 8 <= n && inert4(i) && inert4(i + 4)) {
    i += 8;
#ifdef LATHE_TEXT_AVX2
    static const bool avx2 = cpu_text_avx2();
    if (blocks && avx2) i = skip_inert_avx2(b, i, n);
#else
    (void)blocks;
#endif
  }
  while (i + 4 <= n && inert4(i)) i += 4;
  while (i < n && kClass.t[b[i]] == 0) ++i;
  return i;
}

const char* pii_type_name(PiiType type) {
  int i = static_cast<int>(type);
  LATHE_CHECK(i >= 0 && i < kPiiTypeCount, "bad PiiType {}", i);
  return kNames[i];
}

PiiType pii_type_from_name(std::string_view name) {
  std::string up(name);
  for (char& c : up) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  for (int i = 0; i < kPiiTypeCount; ++i)
    if (up == kNames[i]) return static_cast<PiiType>(i);
  fail("pii", "unknown personal-data type '{}' (known: EMAIL, PHONE, RRN, FRN, BRN, CARD, ACCOUNT, PASSPORT, "
              "DRIVER_LICENSE, IP, SECRET)", name);
}

IpRanges ip_ranges_from_name(std::string_view name) {
  std::string low(name);
  for (char& c : low) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  if (low == "all") return IpRanges::All;
  if (low == "public") return IpRanges::Public;
  if (low == "private") return IpRanges::Private;
  fail("pii", "unknown ip_ranges '{}' (known: all, public, private)", name);
}

std::vector<PiiType> all_pii_types() {
  std::vector<PiiType> v;
  for (int i = 0; i < kPiiTypeCount; ++i) v.push_back(static_cast<PiiType>(i));
  return v;
}

PiiDetector::PiiDetector(PiiOptions options) : options_(std::move(options)) {
  for (int i = 0; i < kPiiTypeCount; ++i) enabled_[i] = options_.types.empty();
  for (PiiType t : options_.types) enabled_[static_cast<int>(t)] = true;
}

std::vector<PiiMatch> PiiDetector::detect(std::string_view s) const {
  Candidates cands;
  const auto* b = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Most bytes start nothing (Korean text, spaces, punctuation).
    i = skip_inert(b, i, n);
    if (i == n) break;
    switch (kClass.t[b[i]]) {
      case kNone: ++i; break;
      case kDigit: i = scan_number(s, i, cands); break;
      case kPlusParen:
        if (i + 1 < n && is_digit(b[i + 1]) && (i == 0 || !is_word(b[i - 1]))) i = scan_number(s, i, cands);
        else ++i;
        break;
      case kAt: scan_email(s, i, cands); ++i; break;
      case kColon: i = scan_ipv6(s, i, cands); break;
      case kLetter: {
        // Most words are plain words: settle them here when none of scan_word's rules can apply (no
        // passport length, no digit at the end for a glued phone label, too short for a vendor key and
        // no '-' to extend one, no JWT start, not "bearer", no ':' or '=' after it). Else scan_word.
        size_t e = i + 1;
        while (e < n && is_word(b[e])) ++e;
        const size_t wl = e - i;
        const uint8_t next = e < n ? b[e] : 0;
        bool plain = wl < 15 && wl != 9 && !is_digit(b[e - 1]) && next != '-' &&
                     !(wl == 6 && (b[i] | 0x20) == 'b') && !(wl >= 3 && b[i] == 'e' && b[i + 1] == 'y' && b[i + 2] == 'J');
        if (plain) {
          size_t p = e;
          while (p < n && (b[p] == ' ' || b[p] == '"' || b[p] == '\'')) ++p;
          plain = !(p < n && (b[p] == ':' || b[p] == '='));
        }
        i = plain ? e : scan_word(s, i, cands);
        break;
      }
      case kDash: i = scan_private_key(s, i, cands); break;
      case kWide: {
        // full-width digit U+FF10-FF19, or '(' U+FF08 followed by one
        auto wide_digit = [&](size_t p) { return p + 2 < n && b[p] == 0xEF && b[p + 1] == 0xBC && b[p + 2] >= 0x90 && b[p + 2] <= 0x99; };
        if (wide_digit(i) || (i + 2 < n && b[i + 1] == 0xBC && b[i + 2] == 0x88 && wide_digit(i + 3)))
          i = scan_wide_number(s, i, cands);
        else
          ++i;
        break;
      }
    }
  }
  // Score, filter, then resolve overlaps: highest confidence first (longer span on ties), a candidate is
  // kept only if it overlaps nothing kept so far.
  struct Scored { Candidate c; float conf; };
  std::vector<Scored> scored;
  for (const Candidate& c : cands) {
    if (!enabled_[static_cast<int>(c.type)]) continue;
    if (c.type == PiiType::IpAddress && options_.ip_ranges != IpRanges::All) {
      bool priv = std::string_view(c.rule).ends_with("_private");
      if (priv != (options_.ip_ranges == IpRanges::Private)) continue;
    }
    // Context only adds the boost (or subtracts): a candidate that cannot reach the threshold even
    // with it is not worth reading the words around it (most contiguous-digit account candidates).
    if (c.base + c.boost + 1e-6f < options_.min_confidence) continue;
    float conf = score_with_context(s, c);
    if (conf + 1e-6f >= options_.min_confidence) scored.push_back({c, conf});
  }
  std::stable_sort(scored.begin(), scored.end(), [](const Scored& x, const Scored& y) {
    if (x.conf != y.conf) return x.conf > y.conf;
    if (x.c.end - x.c.begin != y.c.end - y.c.begin) return x.c.end - x.c.begin > y.c.end - y.c.begin;
    return x.c.begin < y.c.begin;
  });
  std::map<size_t, size_t> kept;  // begin -> end of accepted spans
  std::vector<PiiMatch> out;
  for (const Scored& sc : scored) {
    auto it = kept.lower_bound(sc.c.begin);
    if (it != kept.end() && it->first < sc.c.end) continue;
    if (it != kept.begin() && std::prev(it)->second > sc.c.begin) continue;
    kept.emplace(sc.c.begin, sc.c.end);
    out.push_back({sc.c.type, sc.c.begin, sc.c.end, sc.conf, sc.c.rule});
  }
  std::sort(out.begin(), out.end(), [](const PiiMatch& x, const PiiMatch& y) { return x.begin < y.begin; });
  return out;
}

std::string redact(std::string_view text, const std::vector<PiiMatch>& matches) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (const PiiMatch& m : matches) {
    if (m.begin < pos || m.end > text.size() || m.end <= m.begin) continue;
    out.append(text.substr(pos, m.begin - pos));
    out += '[';
    out += pii_type_name(m.type);
    out += ']';
    pos = m.end;
  }
  out.append(text.substr(pos));
  return out;
}

std::string mask_for_report(std::string_view text, const PiiMatch& m) {
  if (m.end > text.size() || m.end <= m.begin) return "";
  std::string v(text.substr(m.begin, m.end - m.begin));
  // Full-width digits and separators are rewritten as ASCII first, so that masking sees every digit.
  if (v.find('\xEF') != std::string::npos) {
    std::string a;
    for (size_t k = 0; k < v.size(); ++k) {
      auto u = [&](size_t q) { return static_cast<unsigned char>(v[q]); };
      if (k + 2 < v.size() && u(k) == 0xEF && u(k + 1) == 0xBC) {
        unsigned char d = u(k + 2);
        char c = d >= 0x90 && d <= 0x99 ? static_cast<char>('0' + d - 0x90)
                 : d == 0x8D ? '-' : d == 0x8E ? '.' : d == 0x88 ? '(' : d == 0x89 ? ')' : 0;
        if (c) { a += c; k += 2; continue; }
      }
      if (k + 2 < v.size() && u(k) == 0xE3 && u(k + 1) == 0x80 && u(k + 2) == 0x80) { a += ' '; k += 2; continue; }
      a += v[k];
    }
    v = a;
  }
  auto digit_positions = [&] {
    std::vector<size_t> p;
    for (size_t k = 0; k < v.size(); ++k)
      if (is_digit(static_cast<unsigned char>(v[k]))) p.push_back(k);
    return p;
  };
  // Mask digits [keep_front, ndigits - keep_back) and keep separators, so the shape stays readable.
  auto mask_digits = [&](size_t keep_front, size_t keep_back) {
    auto p = digit_positions();
    for (size_t k = 0; k < p.size(); ++k)
      if (k >= keep_front && k + keep_back < p.size()) v[p[k]] = '*';
    return v;
  };
  switch (m.type) {
    case PiiType::Email: {
      size_t at = v.find('@');
      if (at == std::string::npos || at == 0) return "***";
      return v.substr(0, 1) + "***" + v.substr(at);
    }
    case PiiType::Phone: {
      // Keep the first group (carrier / area / country code) and the last four digits: "010-****-5678".
      size_t first_sep = v.find_first_of("- .)", v[0] == '+' || v[0] == '(' ? 1 : 0);
      size_t front = 0;
      for (size_t k = 0; k < std::min(first_sep, v.size()); ++k) front += is_digit(static_cast<unsigned char>(v[k]));
      if (first_sep == std::string::npos) front = 3;
      return mask_digits(front, 4);
    }
    case PiiType::ResidentRegistrationNumber:
    case PiiType::ForeignerRegistrationNumber:
      return mask_digits(6, 0);  // the birth date stays (needed to judge a report), the rest goes
    case PiiType::CardNumber:
    case PiiType::BankAccount:
    case PiiType::BusinessRegistrationNumber:
    case PiiType::DriverLicense:
      return mask_digits(0, 4);
    case PiiType::Passport:
      return v.substr(0, 1) + std::string(v.size() - 1, '*');
    case PiiType::IpAddress: {
      if (v.find(':') != std::string::npos) {  // IPv6: the first group only
        size_t c = v.find(':');
        return v.substr(0, c) + ":****";
      }
      size_t dots = 0;
      for (char& c : v) {
        if (c == '.') ++dots;
        else if (dots >= 2) c = '*';
      }
      // collapse runs of '*' within an octet to one so "192.168.*.*"
      std::string o;
      for (char c : v)
        if (!(c == '*' && !o.empty() && o.back() == '*')) o += c;
      return o;
    }
    case PiiType::Secret:
      return v.substr(0, std::min<size_t>(4, v.size())) + "***";
  }
  return "***";
}

}  // namespace lathe::data
