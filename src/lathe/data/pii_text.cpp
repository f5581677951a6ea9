// Non-numeric personal data: e-mail addresses, IPv6, passports (letter-led), secrets (known key
// prefixes, JWTs, bearer tokens, key/password assignments, PEM private keys).
#include <algorithm>
#include <cstring>

#include "lathe/data/pii_internal.h"

namespace lathe::data::pii_detail {

namespace {

void emit(Candidates& out, PiiType t, size_t b, size_t e, float base, float boost, const char* rule) {
  out.push_back({t, b, e, base, boost, rule});
}

bool all_of(std::string_view v, bool (*pred)(unsigned char)) {
  for (char c : v)
    if (!pred(static_cast<unsigned char>(c))) return false;
  return true;
}
bool key_char(unsigned char c) { return is_word(c) || c == '-'; }
bool upper_alnum(unsigned char c) { return is_digit(c) || (c >= 'A' && c <= 'Z'); }
bool has_digit_and_letter(std::string_view v) {
  bool d = false, l = false;
  for (char c : v) {
    d |= is_digit(static_cast<unsigned char>(c));
    l |= is_alpha(static_cast<unsigned char>(c));
  }
  return d && l;
}
bool starts_with(std::string_view v, const char* p) { return v.substr(0, std::strlen(p)) == p; }
std::string_view lower_ascii(std::string_view v, char* buf, size_t cap) {
  size_t n = std::min(v.size(), cap);
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<char>(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
  return std::string_view(buf, n);
}

// Vendor key formats with a fixed prefix (public documentation of each vendor's key format).
// Returns true when [b, e) is such a key.
bool known_key(std::string_view k, const char** rule, float* score) {
  *score = 0.9f;
  if ((starts_with(k, "AKIA") || starts_with(k, "ASIA")) && k.size() == 20 && all_of(k, upper_alnum)) {
    *rule = "aws_access_key"; *score = 0.95f; return true;
  }
  if (starts_with(k, "AIza") && k.size() == 39) { *rule = "google_api_key"; return true; }
  if (starts_with(k, "sk-") && k.size() >= 23 && has_digit_and_letter(k.substr(3))) { *rule = "sk_api_key"; return true; }
  if ((starts_with(k, "sk_live_") || starts_with(k, "sk_test_") || starts_with(k, "rk_live_") ||
       starts_with(k, "rk_test_")) && k.size() >= 24) {
    *rule = "stripe_key"; return true;
  }
  if ((starts_with(k, "ghp_") || starts_with(k, "gho_") || starts_with(k, "ghu_") || starts_with(k, "ghs_") ||
       starts_with(k, "ghr_")) && k.size() >= 40) {
    *rule = "github_token"; *score = 0.95f; return true;
  }
  if (starts_with(k, "github_pat_") && k.size() >= 33) { *rule = "github_token"; *score = 0.95f; return true; }
  if (starts_with(k, "glpat-") && k.size() >= 26) { *rule = "gitlab_token"; return true; }
  if (starts_with(k, "xox") && k.size() >= 15 && k[4] == '-' && std::strchr("abprs", k[3])) {
    *rule = "slack_token"; return true;
  }
  if (starts_with(k, "hf_") && k.size() >= 33 && all_of(k.substr(3), is_alnum)) { *rule = "hf_token"; return true; }
  return false;
}

bool b64url(unsigned char c) { return is_word(c) || c == '-'; }

}  // namespace

size_t scan_word(std::string_view s, size_t pos, Candidates& out) {
  const auto* b = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t e = pos;
  while (e < n && is_word(b[e])) ++e;
  if (pos > 0 && (is_word(b[pos - 1]) || b[pos - 1] == '-')) return e;  // not a word start
  std::string_view w = s.substr(pos, e - pos);

  // Korean passports: M/S/R/O/D + 3 digits + letter + 4 digits (since 2021), or + 8 digits (before).
  if (w.size() == 9 && std::strchr("MSRODmsrod", w[0])) {
    if (all_of(w.substr(1, 3), [](unsigned char c) { return is_digit(c); }) && is_alpha(w[4]) &&
        all_of(w.substr(5), [](unsigned char c) { return is_digit(c); }))
      emit(out, PiiType::Passport, pos, e, 0.5f, 0.4f, "passport_kr");
    else if (all_of(w.substr(1), [](unsigned char c) { return is_digit(c); }))
      emit(out, PiiType::Passport, pos, e, 0.3f, 0.45f, "passport_kr_old");
  }

  // A phone label glued to its number ("Tel010-1234-5678", "HP010 1234 5678", "is415-555-0132"): read
  // the number as if a space separated them. Other letters glued to digits stay a code ("SM-G991N",
  // "AB010...").
  if (is_digit(b[e - 1])) {  // cheap gate: this runs for every English word
    size_t le = pos;
    while (le < e && is_alpha(b[le])) ++le;
    if (le < e && le - pos >= 2 && le - pos <= 6 && is_digit(b[le])) {
      char lb[40];
      std::string_view label = lower_ascii(s.substr(pos, le - pos), lb, sizeof lb);
      static const char* const kLabels[] = {"tel", "hp", "ph", "phone", "mobile", "cell", "fax", "call", "is", "at"};
      for (const char* l : kLabels)
        if (label == l) return std::max(scan_number(s, le, out, true), e);
    }
  }
  // Vendor keys may contain '-', so they are read as a longer token. Only words long enough and starting
  // with a letter some key format starts with get that far (this runs for every English word).
  if (w[0] == 'A' || w[0] == 's' || w[0] == 'r' || w[0] == 'g' || w[0] == 'x' || w[0] == 'h') {
    size_t ke = pos;
    while (ke < n && key_char(b[ke])) ++ke;
    const char* rule = nullptr;
    float score = 0;
    if (ke - pos >= 15 && known_key(s.substr(pos, ke - pos), &rule, &score)) {
      emit(out, PiiType::Secret, pos, ke, score, 0.0f, rule);
      return ke;
    }
  }
  // JSON Web Token: three base64url parts, the first two JSON objects ("eyJ" = base64 of '{"').
  if (w.size() >= 3 && w[0] == 'e' && w[1] == 'y' && w[2] == 'J') {  // per word: no strlen or memcmp call
    size_t p = pos;
    int parts = 0;
    bool ok = true;
    while (true) {
      size_t q = p;
      while (q < n && b64url(b[q])) ++q;
      if (q - p < 8 || (parts < 2 && s.substr(p, 3) != "eyJ")) { ok = false; break; }
      ++parts;
      p = q;
      if (parts == 3 || p >= n || b[p] != '.') break;
      ++p;
    }
    if (ok && parts == 3) {
      emit(out, PiiType::Secret, pos, p, 0.9f, 0.0f, "jwt");
      return p;
    }
  }
  // "Bearer <token>" and key/password assignments: the value after the word is the secret. Cheap gate
  // first: the word must be followed by ':' / '=' (after spaces or quotes) or be "Bearer".
  {
    size_t p = e;
    while (p < n && (b[p] == ' ' || b[p] == '"' || b[p] == '\'')) ++p;
    bool assign = p < n && (b[p] == ':' || b[p] == '=');
    if (!assign && !(w.size() == 6 && (w[0] | 0x20) == 'b')) return e;
  }
  char lbuf[40];
  std::string_view lw = lower_ascii(w, lbuf, sizeof lbuf);
  bool is_bearer = lw == "bearer";
  bool is_key_word = w.size() <= 32 && (lw.find("key") != std::string_view::npos ||
                                        lw.find("token") != std::string_view::npos ||
                                        lw.find("secret") != std::string_view::npos);
  bool is_pw_word = w.size() <= 32 && (lw.find("password") != std::string_view::npos ||
                                       lw.find("passwd") != std::string_view::npos || lw == "pwd");
  if (is_bearer || is_key_word || is_pw_word) {
    size_t p = e;
    if (is_bearer) {
      if (p >= n || b[p] != ' ') return e;
      ++p;
    } else {
      while (p < n && (b[p] == ' ' || b[p] == '"' || b[p] == '\'')) ++p;
      if (p >= n || (b[p] != ':' && b[p] != '=')) return e;
      ++p;
      if (p < n && b[p] == '>') ++p;  // "=>"
      while (p < n && (b[p] == ' ' || b[p] == '"' || b[p] == '\'')) ++p;
    }
    size_t v = p;
    while (v < n && b[v] > 0x20 && b[v] < 0x7f && !std::strchr("\"'`,;", b[v])) ++v;
    std::string_view val = s.substr(p, v - p);
    bool ok = is_pw_word ? val.size() >= 6 && !all_of(val, is_alpha)
                         : val.size() >= 16 && has_digit_and_letter(val);
    if (ok) {
      emit(out, PiiType::Secret, p, v, is_bearer ? 0.85f : 0.8f, 0.0f,
           is_bearer ? "bearer_token" : is_pw_word ? "password_assignment" : "secret_assignment");
      return v;
    }
  }
  return e;
}

void scan_email(std::string_view s, size_t at, Candidates& out) {
  const auto* b = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  auto local = [](unsigned char c) { return is_alnum(c) || (c && std::strchr("._%+-", c)); };
  size_t lb = at;
  while (lb > 0 && at - lb < 64 && local(b[lb - 1])) --lb;
  while (lb < at && b[lb] == '.') ++lb;
  if (lb == at) return;
  size_t d = at + 1, last_label = d;
  int labels = 0;
  while (true) {
    size_t ls = d;
    while (d < n && (is_alnum(b[d]) || b[d] == '-')) ++d;
    if (d == ls) break;
    ++labels;
    last_label = ls;
    if (d + 1 < n && b[d] == '.' && is_alnum(b[d + 1])) { ++d; continue; }
    break;
  }
  if (labels < 2) return;
  std::string_view tld = s.substr(last_label, d - last_label);
  bool tld_ok = (tld.size() >= 2 && all_of(tld, is_alpha)) || starts_with(tld, "xn--");
  if (!tld_ok) return;
  emit(out, PiiType::Email, lb, d, 0.95f, 0.05f, "email");
}

size_t scan_ipv6(std::string_view s, size_t colon, Candidates& out) {
  const auto* b = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  auto v6 = [](unsigned char c) { return is_hex(c) || c == ':'; };
  size_t lb = colon, rb = colon;
  while (lb > 0 && colon - lb < 40 && v6(b[lb - 1])) --lb;
  while (rb < n && rb - lb < 45 && v6(b[rb])) ++rb;
  if ((lb > 0 && (is_word(b[lb - 1]) || b[lb - 1] == '.')) || (rb < n && (is_word(b[rb]) || b[rb] == '.')))
    return colon + 1;
  std::string_view tok = s.substr(lb, rb - lb);
  size_t dc = tok.find("::");
  if (tok.find(":::") != std::string_view::npos) return colon + 1;
  if (dc != std::string_view::npos && tok.find("::", dc + 1) != std::string_view::npos) return colon + 1;
  if (dc != 0 && tok.front() == ':') return colon + 1;
  if (dc + 2 != tok.size() && tok.back() == ':') return colon + 1;
  int groups = 0, colons = 0;
  size_t g = 0;
  for (size_t i = 0; i <= tok.size(); ++i) {
    if (i == tok.size() || tok[i] == ':') {
      if (i > g) {
        if (i - g > 4) return colon + 1;
        ++groups;
      }
      if (i < tok.size()) ++colons;
      g = i + 1;
    }
  }
  bool ok = dc == std::string_view::npos ? groups == 8 : (groups >= 2 && groups <= 7);
  if (!ok || colons < 2) return colon + 1;
  char lbuf[8];
  std::string_view low = lower_ascii(tok.substr(0, 4), lbuf, sizeof lbuf);
  if (low.size() == 4 && starts_with(low, "ff")) return rb > colon ? rb : colon + 1;  // multicast: no host
  bool priv = starts_with(low, "fe8") || starts_with(low, "fe9") || starts_with(low, "fea") ||
              starts_with(low, "feb") || starts_with(low, "fc") || starts_with(low, "fd") || tok == "::1";
  // Same policy as IPv4 (pii_numbers.cpp): internal addresses score like public ones.
  emit(out, PiiType::IpAddress, lb, rb, 0.75f, 0.15f, priv ? "ipv6_private" : "ipv6");
  return rb > colon ? rb : colon + 1;
}

size_t scan_private_key(std::string_view s, size_t pos, Candidates& out) {
  static constexpr std::string_view kBegin = "-----BEGIN ";
  if (s.substr(pos, kBegin.size()) != kBegin) {
    size_t e = pos;
    while (e < s.size() && s[e] == '-') ++e;
    return e;
  }
  size_t hdr_end = s.find("-----", pos + kBegin.size());
  if (hdr_end == std::string_view::npos) return pos + kBegin.size();
  std::string_view label = s.substr(pos + kBegin.size(), hdr_end - pos - kBegin.size());
  if (label.find("PRIVATE KEY") == std::string_view::npos || label.size() > 40) return hdr_end + 5;
  size_t end = s.find("-----END ", hdr_end + 5);
  size_t stop = s.size();
  if (end != std::string_view::npos) {
    size_t close = s.find("-----", end + 9);
    stop = close == std::string_view::npos ? s.size() : close + 5;
  }
  emit(out, PiiType::Secret, pos, stop, 1.0f, 0.0f, "private_key");
  return stop;
}

}  // namespace lathe::data::pii_detail
