// Personal-data detection (pipeline stage 4): a single-pass, hand-written scanner over UTF-8 bytes.
//
// Why no regex engine: the pipeline budget is >= 100 MB/s for collect + clean + PII + exact dedup on
// 2 cores, so the detector looks at each byte once through a 256-entry class table and only does work
// at the few bytes that can start personal data ('@', digits, '+', '(', ':', word starts of ASCII
// letters). Candidates are then checked by validators (Luhn, resident-registration checksum and date,
// business-registration checksum, IPv4 ranges, IPv6 groups) and scored; Korean and English context
// words around a candidate raise (e.g. 주민등록번호, 전화, card) or lower (e.g. 주문번호, ISBN, 원)
// the confidence. Rules and scores are documented in docs/pii_dedup.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::data {

enum class PiiType {
  Email,
  Phone,
  ResidentRegistrationNumber,  // 주민등록번호 (Korea)
  ForeignerRegistrationNumber,  // 외국인등록번호 (Korea)
  BusinessRegistrationNumber,  // 사업자등록번호 (Korea)
  CardNumber,
  BankAccount,
  Passport,
  DriverLicense,
  IpAddress,
  Secret,  // API keys, access tokens, private keys, password assignments
};
inline constexpr int kPiiTypeCount = 11;

// "EMAIL", "PHONE", "RRN", "FRN", "BRN", "CARD", "ACCOUNT", "PASSPORT", "DRIVER_LICENSE", "IP", "SECRET".
const char* pii_type_name(PiiType type);
// Accepts the names above (case-insensitive); throws lathe::Error naming the value otherwise.
PiiType pii_type_from_name(std::string_view name);
std::vector<PiiType> all_pii_types();

struct PiiMatch {
  PiiType type;
  size_t begin = 0, end = 0;  // byte offsets into the UTF-8 text, [begin, end)
  float confidence = 0;       // 0..1 after context adjustment
  std::string rule;           // which rule fired, e.g. "rrn_checksum", "phone_kr_mobile"
};

// Which IP addresses count as personal data. Default All: private, loopback and link-local addresses
// (10/8, 172.16/12, 192.168/16, 127/8, 169.254/16, 100.64/10, fc00::/7, fe80::/10, ::1) name hosts of an
// internal network, which an in-house corpus must not leak any more than public ones. Public keeps only
// internet-routable addresses (datatrove's PIIFormatter default); Private keeps only the internal ones.
enum class IpRanges { All, Public, Private };
// "all", "public", "private" (case-insensitive); throws lathe::Error naming the value otherwise.
IpRanges ip_ranges_from_name(std::string_view name);

struct PiiOptions {
  float min_confidence = 0.5f;  // matches below this are not returned
  std::vector<PiiType> types;   // empty = all types
  IpRanges ip_ranges = IpRanges::All;
};

class PiiDetector {
 public:
  explicit PiiDetector(PiiOptions options = {});
  // Non-overlapping matches sorted by begin. Thread-safe (const, no shared mutable state).
  std::vector<PiiMatch> detect(std::string_view text) const;
  const PiiOptions& options() const { return options_; }

 private:
  PiiOptions options_;
  bool enabled_[kPiiTypeCount];
};

// Replaces each match with its typed placeholder "[RRN]", "[PHONE]", ... (matches sorted, non-overlapping
// as detect() returns them; overlapping ones are skipped).
std::string redact(std::string_view text, const std::vector<PiiMatch>& matches);
// A masked rendering of one match for reports: "010-****-5678", "k***@example.com", "960121-*******",
// "****-****-****-1111", "192.168.*.*", "sk-a***". Never the full value.
std::string mask_for_report(std::string_view text, const PiiMatch& match);

// Validators, exposed for tests and for other stages. Each takes the digits only (no separators).
bool luhn_valid(std::string_view digits);
// 13-digit Korean RRN/FRN: YYMMDD + gender/century digit G (1-4 RRN, 5-8 FRN, 9/0 for 1800s are
// rejected) + 6 digits. date_valid checks the birth date (with century from G, leap years included).
bool kr_registration_date_valid(std::string_view digits13);
// Pre-Oct-2020 check digit: RRN X = (11 - sum(d_i * w_i) mod 11) mod 10, FRN X = (13 - ...) mod 10,
// w = 2,3,4,5,6,7,8,9,2,3,4,5.
bool kr_rrn_checksum_valid(std::string_view digits13);
bool kr_frn_checksum_valid(std::string_view digits13);
// 10-digit business registration number: weights 1,3,7,1,3,7,1,3,5 plus floor(5*d9/10).
bool kr_brn_checksum_valid(std::string_view digits10);

}  // namespace lathe::data
