// Checksums and date rules for card numbers and Korean registration numbers (formulas in pii.h).
#include "lathe/data/pii.h"
#include "lathe/data/pii_internal.h"

namespace lathe::data {

using pii_detail::is_digit;

namespace {
bool all_digits(std::string_view d, size_t n) {
  if (d.size() != n) return false;
  for (char c : d)
    if (!is_digit(static_cast<unsigned char>(c))) return false;
  return true;
}
int dig(std::string_view d, size_t i) { return d[i] - '0'; }

// Weighted sum of the first 12 digits, shared by the RRN and FRN check digits.
int kr_weighted_sum(std::string_view d) {
  static const int w[12] = {2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5};
  int sum = 0;
  for (int i = 0; i < 12; ++i) sum += dig(d, i) * w[i];
  return sum;
}
}  // namespace

bool luhn_valid(std::string_view digits) {
  if (digits.size() < 2) return false;
  int sum = 0;
  bool dbl = false;
  for (size_t k = digits.size(); k-- > 0;) {
    if (!is_digit(static_cast<unsigned char>(digits[k]))) return false;
    int v = digits[k] - '0';
    if (dbl) { v *= 2; if (v > 9) v -= 9; }
    sum += v;
    dbl = !dbl;
  }
  return sum % 10 == 0;
}

bool kr_registration_date_valid(std::string_view d) {
  if (!all_digits(d, 13)) return false;
  int g = dig(d, 6);
  int century;
  switch (g) {
    case 1: case 2: case 5: case 6: century = 1900; break;
    case 3: case 4: case 7: case 8: century = 2000; break;
    default: return false;  // 9/0 (born 1800s) are not issued to living people; treat as not a number
  }
  int year = century + dig(d, 0) * 10 + dig(d, 1);
  int month = dig(d, 2) * 10 + dig(d, 3);
  int day = dig(d, 4) * 10 + dig(d, 5);
  if (month < 1 || month > 12 || day < 1) return false;
  static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  int maxd = mdays[month - 1] + (month == 2 && leap ? 1 : 0);
  return day <= maxd;
}

bool kr_rrn_checksum_valid(std::string_view d) {
  if (!all_digits(d, 13)) return false;
  return (11 - kr_weighted_sum(d) % 11) % 10 == dig(d, 12);
}

bool kr_frn_checksum_valid(std::string_view d) {
  if (!all_digits(d, 13)) return false;
  return (13 - kr_weighted_sum(d) % 11) % 10 == dig(d, 12);
}

bool kr_brn_checksum_valid(std::string_view d) {
  if (!all_digits(d, 10)) return false;
  static const int w[9] = {1, 3, 7, 1, 3, 7, 1, 3, 5};
  int sum = 0;
  for (int i = 0; i < 9; ++i) sum += dig(d, i) * w[i];
  sum += dig(d, 8) * 5 / 10;
  return (10 - sum % 10) % 10 == dig(d, 9);
}

}  // namespace lathe::data
