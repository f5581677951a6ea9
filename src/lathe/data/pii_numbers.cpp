// Numeric personal data: a number token is a run of digit groups joined by short separators
// ("-", ".", " ", parentheses), optionally led by '+' or '('. Each position in the group list is tried
// against every numeric shape (registration numbers, cards, phones, BRN, licence, account, IPv4); all
// interpretations that pass their validators become candidates, and context decides between them.
#include <cstring>

#include "lathe/data/pii_internal.h"

namespace lathe::data::pii_detail {

namespace {

constexpr int kMaxGroups = 24;

struct Token {
  std::string_view s;
  size_t start = 0;  // first byte, '+' or '(' included
  bool plus = false, lparen = false;
  int ng = 0;
  size_t gb[kMaxGroups], ge[kMaxGroups];
  char sep[kMaxGroups];  // sep[k] joins group k and k+1: '-', '.', ' ', or 'p' (parentheses involved)

  int len(int k) const { return static_cast<int>(ge[k] - gb[k]); }
  char at(int k, int i) const { return s[gb[k] + i]; }
  // Groups k..k+m-1 joined by one separator kind from `allowed` (a 'p' in sep[k] is allowed when
  // `paren_first`, for "(02) 1234-5678" and "(415) 555-0132").
  bool uniform(int k, int m, const char* allowed, bool paren_first = false) const {
    if (k + m > ng) return false;
    char kind = 0;
    for (int j = k; j < k + m - 1; ++j) {
      if (paren_first && j == k && sep[j] == 'p') continue;
      if (!std::strchr(allowed, sep[j])) return false;
      if (kind && sep[j] != kind) return false;
      kind = sep[j];
    }
    return true;
  }
  // Concatenated digits of groups k..k+m-1 into buf (returns the count).
  int digits(int k, int m, char* buf, int cap) const {
    int n = 0;
    for (int j = k; j < k + m; ++j)
      for (size_t p = gb[j]; p < ge[j] && n < cap; ++p) buf[n++] = s[p];
    return n;
  }
  // '+' belongs to the number; '(' only when it wraps the first group ("(02) 1234-5678"), not when the
  // whole number is in parentheses ("홍길동(010-1234-5678)").
  size_t begin_of(int k) const {
    if (k != 0) return gb[k];
    if (lparen && !(ng > 1 && sep[0] == 'p')) return gb[0];
    return start;
  }
};

void emit(Candidates& out, PiiType t, size_t b, size_t e, float base, float boost, const char* rule) {
  out.push_back({t, b, e, base, boost, rule});
}

int match_registration(const Token& t, int k, Candidates& out) {
  int m;
  bool dashed = false;
  if (k + 1 < t.ng && t.len(k) == 6 && t.len(k + 1) == 7 && (t.sep[k] == '-' || t.sep[k] == ' ')) {
    m = 2;
    dashed = t.sep[k] == '-';
  } else if (t.len(k) == 13) {
    m = 1;
  } else {
    return 0;
  }
  char d[16];
  t.digits(k, m, d, 13);
  std::string_view dv(d, 13);
  if (!kr_registration_date_valid(dv)) return 0;
  int g = d[6] - '0';
  bool frn = g >= 5;
  PiiType type = frn ? PiiType::ForeignerRegistrationNumber : PiiType::ResidentRegistrationNumber;
  size_t b = t.begin_of(k), e = t.ge[k + m - 1];
  if (frn ? kr_frn_checksum_valid(dv) : kr_rrn_checksum_valid(dv)) {
    emit(out, type, b, e, dashed ? 0.9f : 0.85f, 0.35f, frn ? "frn_checksum" : "rrn_checksum");
    return m;
  }
  // Numbers issued since October 2020 end in random digits, so no checksum: only context words
  // (주민등록번호, 외국인등록번호, RRN, ...) make a born-after-2020-10 number confident.
  int yy = (d[0] - '0') * 10 + (d[1] - '0'), mm = (d[2] - '0') * 10 + (d[3] - '0');
  bool born_2000s = g == 3 || g == 4 || g == 7 || g == 8;
  if (born_2000s && (yy > 20 || (yy == 20 && mm >= 10)))
    emit(out, type, b, e, 0.35f, 0.5f, frn ? "frn_post2020" : "rrn_post2020");
  else
    emit(out, type, b, e, dashed ? 0.5f : 0.3f, 0.4f, frn ? "frn_format" : "rrn_format");
  return m;
}

// Returns the groups used; negative when the groups have a card's shape (4-4-4-4, 4-6-5, 15-19 digits)
// but fail Luhn: such a number is no card, and no phone or account hides inside it either ("4532 1588
// 1234 5678" holds "1588 1234"), so the caller skips its groups. It may still be an account number when
// the text says so: a low-base account candidate covers the whole run.
int match_card(const Token& t, int k, Candidates& out) {
  int m = 0;
  bool grouped = true;
  if (t.len(k) >= 13 && t.len(k) <= 19) {
    m = 1;
    grouped = false;
  } else if (k + 3 < t.ng && t.len(k) == 4 && t.len(k + 1) == 4 && t.len(k + 2) == 4 && t.len(k + 3) == 4 &&
             t.uniform(k, 4, "- ")) {
    m = 4;
  } else if (k + 2 < t.ng && t.len(k) == 4 && t.len(k + 1) == 6 && (t.len(k + 2) == 5 || t.len(k + 2) == 4) &&
             t.uniform(k, 3, "- ")) {
    m = 3;  // American Express 4-6-5, Diners 4-6-4
  } else {
    return 0;
  }
  char d[24];
  int nd = t.digits(k, m, d, 19);
  if (!luhn_valid(std::string_view(d, nd))) {
    // 13 and 14 contiguous digits are also registration and account shapes, "+" digits an international
    // phone number: leave them to those rules.
    if ((grouped || nd >= 15) && !(k == 0 && t.plus)) {
      emit(out, PiiType::BankAccount, t.begin_of(k), t.ge[k + m - 1], 0.1f, 0.6f, "account_context");
      return -m;
    }
    return 0;
  }
  // Issuer prefixes 1-6 (UATP, Mastercard 2-series, Amex/Diners/JCB, Visa, Mastercard/Maestro,
  // Discover/UnionPay); 13-digit numbers only exist for Visa.
  bool known = d[0] >= '1' && d[0] <= '6' && (nd != 13 || d[0] == '4');
  float base = !known ? 0.4f : grouped ? 0.85f : 0.7f;
  emit(out, PiiType::CardNumber, t.begin_of(k), t.ge[k + m - 1], base, 0.35f, "card_luhn");
  return m;
}

int match_brn(const Token& t, int k, Candidates& out) {
  int m;
  if (k + 2 < t.ng && t.len(k) == 3 && t.len(k + 1) == 2 && t.len(k + 2) == 5 && t.uniform(k, 3, "-")) m = 3;
  else if (t.len(k) == 10) m = 1;
  else return 0;
  char d[12];
  t.digits(k, m, d, 10);
  if (d[0] == '0' || !kr_brn_checksum_valid(std::string_view(d, 10))) return 0;  // tax office codes start at 101
  emit(out, PiiType::BusinessRegistrationNumber, t.begin_of(k), t.ge[k + m - 1], m == 3 ? 0.85f : 0.5f, 0.35f,
       "brn_checksum");
  return m;
}

int match_driver_license(const Token& t, int k, Candidates& out) {
  int m;
  if (k + 3 < t.ng && t.len(k) == 2 && t.len(k + 1) == 2 && t.len(k + 2) == 6 && t.len(k + 3) == 2 &&
      t.uniform(k, 4, "- "))
    m = 4;
  else if (t.len(k) == 12) m = 1;
  else return 0;
  // Region codes of Korean licences: 11 (Seoul) .. 26 (Ulsan) and 28 (northern Gyeonggi); 27 is unused.
  int region = (t.at(k, 0) - '0') * 10 + (t.at(k, 1) - '0');
  if (region < 11 || region > 28 || region == 27) return 0;
  emit(out, PiiType::DriverLicense, t.begin_of(k), t.ge[k + m - 1], m == 4 ? 0.6f : 0.35f, 0.4f,
       "driver_license_kr");
  return m;
}

bool starts(const Token& t, int k, const char* prefix) {
  size_t n = std::strlen(prefix);
  return static_cast<size_t>(t.len(k)) >= n && std::memcmp(t.s.data() + t.gb[k], prefix, n) == 0;
}

// Length of the Korean area/VoIP/toll-free prefix the digits start with (02, 031-033, 041-044, 051-055,
// 061-064, 050, 070, 080), or 0.
int kr_area_prefix(const char* d, int len) {
  if (len >= 2 && d[0] == '0' && d[1] == '2') return 2;
  if (len < 3 || d[0] != '0') return 0;
  int v = (d[1] - '0') * 10 + (d[2] - '0');
  bool ok = (v >= 31 && v <= 33) || (v >= 41 && v <= 44) || (v >= 51 && v <= 55) || (v >= 61 && v <= 64) ||
            v == 70 || v == 80 || v == 50;
  return ok ? 3 : 0;
}
bool kr_area_code(const Token& t, int k) {
  // 0502-0508: personal "safe numbers" (안심번호) of delivery apps, 050x-xxxx-xxxx.
  if (t.len(k) == 4 && starts(t, k, "050") && t.at(k, 3) >= '2' && t.at(k, 3) <= '8') return true;
  return t.len(k) >= 2 && t.len(k) <= 3 && kr_area_prefix(t.s.data() + t.gb[k], t.len(k)) == t.len(k);
}

int match_phone(const Token& t, int k, Candidates& out) {
  const char* seps = "- .";
  if (k == 0 && t.plus) {
    // International: "+CC" then groups, at most 15 digits in all (E.164).
    int total = 0, m = 0;
    while (m < t.ng && total + t.len(m) <= 15 && (m == 0 || t.sep[m - 1] != 0)) total += t.len(m++);
    if (m == 0 || total < 8) return 0;
    if (m == 1 && total < 10) return 0;
    size_t e = t.ge[m - 1];
    bool kr = starts(t, 0, "82");
    emit(out, PiiType::Phone, t.start, e, kr ? 0.85f : 0.75f, 0.2f, kr ? "phone_kr_intl" : "phone_intl");
    return m;
  }
  int L = t.len(k);
  char c2 = L >= 3 ? t.at(k, 2) : 0;
  bool mobile_prefix = L >= 3 && t.at(k, 0) == '0' && t.at(k, 1) == '1' && std::strchr("016789", c2);
  bool paren_first = k == 0 && t.lparen;
  // Korean mobile 010-1234-5678 (011/016-019 with 3 or 4 middle digits).
  // The 01x prefix is distinctive enough to accept mixed separators ("010 1234-5678", "010-1234.5678").
  if (L == 3 && mobile_prefix && k + 2 < t.ng && t.len(k + 1) >= 3 && t.len(k + 1) <= 4 && t.len(k + 2) == 4 &&
      std::strchr(seps, t.sep[k]) && std::strchr(seps, t.sep[k + 1]) && t.sep[k] && t.sep[k + 1]) {
    emit(out, PiiType::Phone, t.begin_of(k), t.ge[k + 2], 0.75f, 0.25f, "phone_kr_mobile");
    return 3;
  }
  if (mobile_prefix && ((L == 11 && c2 == '0') || (L == 10 && c2 != '0'))) {
    emit(out, PiiType::Phone, t.begin_of(k), t.ge[k], 0.6f, 0.3f, "phone_kr_mobile_plain");
    return 1;
  }
  // Korean landline/VoIP 02-123-4567, 031-1234-5678, (02) 1234-5678.
  if (kr_area_code(t, k) && k + 2 < t.ng && t.len(k + 1) >= 3 && t.len(k + 1) <= 4 && t.len(k + 2) == 4 &&
      t.uniform(k, 3, seps, paren_first || t.sep[k] == 'p')) {
    emit(out, PiiType::Phone, t.begin_of(k), t.ge[k + 2], 0.65f, 0.3f, "phone_kr_area");
    return 3;
  }
  // Korean representative numbers 1588-1234 (15xx, 16xx, 18xx).
  if (L == 4 && t.at(k, 0) == '1' && std::strchr("568", t.at(k, 1)) && k + 1 < t.ng && t.len(k + 1) == 4 &&
      t.uniform(k, 2, seps)) {
    emit(out, PiiType::Phone, t.begin_of(k), t.ge[k + 1], 0.6f, 0.3f, "phone_kr_rep");
    return 2;
  }
  // North American (415) 555-0132 / 415-555-0132: area and exchange codes start with 2-9.
  if (L == 3 && k + 2 < t.ng && t.len(k + 1) == 3 && t.len(k + 2) == 4 && t.at(k, 0) >= '2' &&
      t.at(k + 1, 0) >= '2' && t.uniform(k, 3, seps, paren_first || t.sep[k] == 'p')) {
    emit(out, PiiType::Phone, t.begin_of(k), t.ge[k + 2], 0.6f, 0.3f, "phone_nanp");
    return 3;
  }
  // Other national numbers with a trunk 0: 090-1234-5678, 09-7625400.
  if (L >= 2 && L <= 4 && t.at(k, 0) == '0') {
    int total = 0, m = 1;
    while (k + m < t.ng && m <= 3 && t.len(k + m) >= 3 && t.uniform(k, m + 1, seps, paren_first)) {
      total += t.len(k + m);
      ++m;
      if (total >= 6) break;
    }
    if (m >= 2 && total >= 6 && total <= 8) {
      emit(out, PiiType::Phone, t.begin_of(k), t.ge[k + m - 1], 0.5f, 0.3f, "phone_national");
      return m;
    }
  }
  if (L >= 9 && L <= 11 && kr_area_prefix(t.s.data() + t.gb[k], L) > 0) {
    emit(out, PiiType::Phone, t.begin_of(k), t.ge[k], 0.35f, 0.35f, "phone_kr_area_plain");
    return 1;
  }
  if (L == 11 && t.at(k, 0) == '1' && t.at(k, 1) >= '3') {  // mainland China mobile 13x-19x
    emit(out, PiiType::Phone, t.begin_of(k), t.ge[k], 0.3f, 0.35f, "phone_cn_plain");
    return 1;
  }
  return 0;
}

// Bank accounts have no public checksum and each bank its own grouping: KB 6-2-6 (14 digits), Shinhan
// 3-3-6 (12), Woori 4-3-6 (13), Hana 3-6-5 (14), NH 3-4-4-2 (13) / 6-2-6, IBK 3-6-2-3 (14), Kakao Bank
// 4-2-7 (13, 3333-), Toss Bank 4-4-4 (12), K Bank 3-3-6, SC 3-2-6 (11), Shinhan's chosen "lifetime"
// numbers 10-14 digits. So any 10-14 digits in 2-4 groups (dashes or spaces, one kind), or contiguous,
// count, and only next to 계좌/account words (the big context boost).
int match_account(const Token& t, int k, Candidates& out) {
  int best = 0, total = t.len(k);
  if (t.len(k) >= 2) {
    char kind = k + 1 < t.ng ? t.sep[k] : 0;
    for (int m = 2; m <= 4 && k + m <= t.ng; ++m) {
      char sp = t.sep[k + m - 2];
      if ((sp != '-' && sp != ' ') || sp != kind || t.len(k + m - 1) < 2) break;
      total += t.len(k + m - 1);
      if (total > 14) break;
      if (total >= 10) best = m;
    }
  }
  if (best) {
    emit(out, PiiType::BankAccount, t.begin_of(k), t.ge[k + best - 1], 0.15f, 0.6f, "account_context");
    return best;
  }
  if (t.len(k) >= 10 && t.len(k) <= 14) {
    emit(out, PiiType::BankAccount, t.begin_of(k), t.ge[k], 0.1f, 0.6f, "account_context");
    return 1;
  }
  return 0;
}

int match_ipv4(const Token& t, int k, Candidates& out) {
  if (k + 3 >= t.ng) return 0;
  if (k > 0 && t.sep[k - 1] == '.') return 0;          // part of a longer dotted run (versions, OIDs)
  if (k + 4 < t.ng && t.sep[k + 3] == '.') return 0;
  int oct[4];
  for (int j = 0; j < 4; ++j) {
    if (t.len(k + j) < 1 || t.len(k + j) > 3 || (j < 3 && t.sep[k + j] != '.')) return 0;
    int v = 0;
    for (int p = 0; p < t.len(k + j); ++p) v = v * 10 + (t.at(k + j, p) - '0');
    if (v > 255) return 0;
    oct[j] = v;
  }
  if (k == 0 && (t.plus || t.lparen)) return 0;
  // 0.0.0.0/8 ("this network"), multicast, reserved and broadcast (>= 224, netmasks such as
  // 255.255.255.0) name no host.
  if (oct[0] == 0 || oct[0] >= 224) return 0;
  // Private, loopback and link-local ranges name hosts of an internal network: in an in-house corpus that
  // is infrastructure data as sensitive as a public address, so they score the same; the detector's
  // ip_ranges option keeps one kind or the other (rule "ipv4_private" vs "ipv4").
  bool priv = oct[0] == 10 || oct[0] == 127 || (oct[0] == 172 && oct[1] >= 16 && oct[1] <= 31) ||
              (oct[0] == 192 && oct[1] == 168) || (oct[0] == 169 && oct[1] == 254) ||
              (oct[0] == 100 && oct[1] >= 64 && oct[1] <= 127);  // 100.64/10: carrier-grade NAT
  emit(out, PiiType::IpAddress, t.gb[k], t.ge[k + 3], 0.8f, 0.15f, priv ? "ipv4_private" : "ipv4");
  return 4;
}

}  // namespace

size_t scan_number(std::string_view s, size_t pos, Candidates& out, bool after_label) {
  const auto* b = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  Token t;
  t.s = s;
  t.start = pos;
  size_t i = pos;
  if (b[i] == '+') { t.plus = true; ++i; }
  else if (b[i] == '(') { t.lparen = true; ++i; }
  else if (pos >= 1 && b[pos - 1] == '(') { t.lparen = true; t.start = pos - 1; }  // "office(02)..." glued
  // A number glued to a code on its left ("AB-010-1234", "3.14", "1,234") is not personal data.
  bool left_ok = true;
  // After '.', only digits block ("3.14"); a letter is an abbreviation ("Tel.010-1234-5678", "No.").
  if (pos >= 2 && (b[pos - 1] == '-' || b[pos - 1] == ',' || b[pos - 1] == '/') && is_alnum(b[pos - 2]))
    left_ok = false;
  if (pos >= 2 && b[pos - 1] == '.' && is_digit(b[pos - 2])) left_ok = false;
  if (pos >= 1 && is_word(b[pos - 1]) && !after_label) left_ok = false;
  size_t end = i;
  while (true) {
    size_t j = i;
    while (j < n && is_digit(b[j])) ++j;
    if (t.ng < kMaxGroups) {
      t.gb[t.ng] = i;
      t.ge[t.ng] = j;
      t.sep[t.ng] = 0;
      ++t.ng;
    }
    end = j;
    size_t k = j;
    int dashdot = 0, paren = 0, space = 0;
    while (k < n && k - j < 3) {
      uint8_t c = b[k];
      if (c == '-' || c == '.') ++dashdot;
      else if (c == '(' || c == ')') ++paren;
      else if (c == ' ') ++space;
      else break;
      ++k;
    }
    if (k == j || k >= n || !is_digit(b[k]) || dashdot > 1 || paren > 1 || space > 2) break;
    // ". " ends a sentence or a list marker ("1. 010 1234 5678"), it joins no number.
    if (b[j] == '.' && b[j + 1] == ' ') break;
    if (t.ng <= kMaxGroups) {
      char kind = paren ? 'p' : dashdot ? static_cast<char>(b[j] == '-' || (k > j + 1 && b[j + 1] == '-') ? '-' : '.')
                                        : ' ';
      // a dash or dot may sit between spaces ("010 - 1234"); find which one it is
      if (dashdot && !paren) {
        for (size_t q = j; q < k; ++q)
          if (b[q] == '-' || b[q] == '.') kind = static_cast<char>(b[q]);
      }
      t.sep[t.ng - 1] = kind;
    }
    i = k;
  }
  if (!left_ok) return end > pos ? end : pos + 1;
  // Most digit runs are short lone numbers (years, amounts, counts): no shape has one group under 9 digits.
  if (t.ng == 1 && t.len(0) < 9) return end > pos ? end : pos + 1;
  // A code glued on the right ("110-81-4127A", "5678-A") removes the last group from consideration.
  if (end < n && (is_alpha(b[end]) || b[end] == '_' ||
                  ((b[end] == '-' || b[end] == '.') && end + 1 < n && is_alpha(b[end + 1]))))
    --t.ng;
  for (int k = 0; k < t.ng;) {
    // After a '.' the digits are decimals or a dotted code ("3.14159...", "v1.2.3"), not the start of
    // personal data; an IPv4 address is matched from its first octet instead.
    if (k > 0 && t.sep[k - 1] == '.') { ++k; continue; }
    int used = 0;
    auto take = [&used](int m) { if (m > used) used = m; };
    take(match_registration(t, k, out));
    int card = match_card(t, k, out);
    if (card < 0) {  // card-shaped, Luhn fails: nothing else inside (see match_card)
      k += -card;
      continue;
    }
    take(card);
    take(match_brn(t, k, out));
    take(match_driver_license(t, k, out));
    take(match_phone(t, k, out));
    take(match_ipv4(t, k, out));
    take(match_account(t, k, out));
    k += used > 0 ? used : 1;
  }
  return end > pos ? end : pos + 1;
}

namespace {
// Full-width forms (U+FF08 '(', U+FF09 ')', U+FF0D '-', U+FF0E '.', U+FF10-FF19 digits) as typed by
// Korean and Japanese input methods, and the ideographic space U+3000: the ASCII byte each stands for,
// and its UTF-8 length; 0 when the bytes at p are none of these (nor an ASCII digit or separator).
char wide_ascii(const uint8_t* b, size_t p, size_t n, int* len) {
  uint8_t c = b[p];
  if (is_digit(c) || c == '-' || c == '.' || c == ' ' || c == '(' || c == ')') { *len = 1; return static_cast<char>(c); }
  if (p + 2 >= n) return 0;
  *len = 3;
  if (c == 0xEF && b[p + 1] == 0xBC) {
    uint8_t d = b[p + 2];
    if (d >= 0x90 && d <= 0x99) return static_cast<char>('0' + (d - 0x90));
    if (d == 0x8D) return '-';
    if (d == 0x8E) return '.';
    if (d == 0x88) return '(';
    if (d == 0x89) return ')';
  }
  if (c == 0xE3 && b[p + 1] == 0x80 && b[p + 2] == 0x80) return ' ';
  return 0;
}
}  // namespace

size_t scan_wide_number(std::string_view s, size_t pos, Candidates& out) {
  const auto* b = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  // Rewrite the run as ASCII with a map back to byte offsets, then read it as any other number. Runs
  // longer than kMaxWideRun characters are read in pieces (no personal-data shape is that long).
  constexpr size_t kMaxWideRun = 96;
  char buf[kMaxWideRun + 2];
  size_t off[kMaxWideRun + 2];
  size_t k = 0, p = pos;
  int len = 0;
  while (p < n && k < kMaxWideRun) {
    char a = wide_ascii(b, p, n, &len);
    if (!a) break;
    buf[k] = a;
    off[k++] = p;
    p += len;
  }
  off[k] = p;
  size_t run = k;
  if (p < n && b[p] < 0x80) {  // one byte of right context: "０１０-１２３４-５６７８A" is a code
    buf[k] = static_cast<char>(b[p]);
    off[++k] = p + 1;
  }
  // Left context: a word character glued before the run makes it a code, as for ASCII numbers.
  if (pos > 0 && is_word(b[pos - 1])) return p > pos ? p : pos + 1;
  Candidates local;
  std::string_view view(buf, k);
  for (size_t i = 0; i < run;) {
    if (is_digit(static_cast<unsigned char>(buf[i])) || ((buf[i] == '(' || buf[i] == '+') && i + 1 < run &&
                                                         is_digit(static_cast<unsigned char>(buf[i + 1]))))
      i = scan_number(view, i, local);
    else
      ++i;
  }
  for (Candidate c : local) {
    c.begin = off[c.begin];
    c.end = off[c.end];
    out.push_back(c);
  }
  return p > pos ? p : pos + 1;
}

}  // namespace lathe::data::pii_detail
