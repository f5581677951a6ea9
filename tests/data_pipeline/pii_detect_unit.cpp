// PII detector: each type's positives and decoys in Korean and English, context words raising and
// lowering confidence, validators on published examples, redaction and report masks, options.
#include <gtest/gtest.h>

#include <random>

#include "lathe/core/error.h"
#include "lathe/data/pii.h"
#include "lathe/data/pii_internal.h"
#include "lathe/data/pipeline.h"

#include <yaml-cpp/yaml.h>

namespace {

using namespace lathe::data;

// The single match of `type` in text (fails the test when there is not exactly one match overall).
PiiMatch only(const std::string& text, PiiOptions opt = {}) {
  auto m = PiiDetector(opt).detect(text);
  EXPECT_EQ(m.size(), 1u) << text;
  return m.empty() ? PiiMatch{PiiType::Email, 0, 0, 0, ""} : m[0];
}
std::string value(const std::string& text, const PiiMatch& m) { return text.substr(m.begin, m.end - m.begin); }
bool none(const std::string& text) {
  auto m = PiiDetector().detect(text);
  for (auto& x : m) ADD_FAILURE() << "unexpected " << pii_type_name(x.type) << " '" << value(text, x) << "' in " << text;
  return m.empty();
}
// The match starts at the first digit (no letters of a glued label in it).
bool is_digit_start(const std::string& text, const PiiMatch& m) { return text[m.begin] >= '0' && text[m.begin] <= '9'; }
float conf_of(const std::string& text, PiiType t) {
  PiiOptions o;
  o.min_confidence = 0;
  for (auto& m : PiiDetector(o).detect(text))
    if (m.type == t) return m.confidence;
  return -1;
}

TEST(PiiValidators, PublishedExamples) {
  // Luhn: the standard test numbers of card networks, and a one-digit change.
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_TRUE(luhn_valid("378282246310005"));
  EXPECT_TRUE(luhn_valid("79927398713"));  // Wikipedia's Luhn example
  EXPECT_FALSE(luhn_valid("4111111111111112"));
  EXPECT_FALSE(luhn_valid("4012888888881882"));
  // RRN/FRN: Presidio's valid and invalid examples (check digits computed by hand from the formula).
  EXPECT_TRUE(kr_rrn_checksum_valid("9601211021413"));
  EXPECT_TRUE(kr_rrn_checksum_valid("0509122000019"));
  EXPECT_FALSE(kr_rrn_checksum_valid("9601211234567"));
  EXPECT_TRUE(kr_frn_checksum_valid("9111245678906"));
  EXPECT_TRUE(kr_frn_checksum_valid("0509126000012"));
  EXPECT_FALSE(kr_frn_checksum_valid("9111245678901"));
  EXPECT_TRUE(kr_registration_date_valid("0002293000000"));   // 2000-02-29 (leap year)
  EXPECT_FALSE(kr_registration_date_valid("0102293000000"));  // 2001-02-29
  EXPECT_FALSE(kr_registration_date_valid("0013321234567"));  // month 13
  EXPECT_FALSE(kr_registration_date_valid("9603030021413"));  // gender digit 0
  EXPECT_FALSE(kr_registration_date_valid("0511029234110"));  // gender digit 9 (1800s)
  // BRN: 104-86-56659 valid, last digit changed invalid.
  EXPECT_TRUE(kr_brn_checksum_valid("1048656659"));
  EXPECT_FALSE(kr_brn_checksum_valid("1048656658"));
  EXPECT_FALSE(kr_brn_checksum_valid("104865665"));
}

TEST(PiiDetect, TypeNames) {
  for (PiiType t : all_pii_types()) EXPECT_EQ(pii_type_from_name(pii_type_name(t)), t);
  EXPECT_EQ(pii_type_from_name("rrn"), PiiType::ResidentRegistrationNumber);
  EXPECT_THROW(pii_type_from_name("SSN"), lathe::Error);
}

TEST(PiiDetect, KoreanPhones) {
  for (std::string v : {"010-1234-5678", "010 1234 5678", "010.1234.5678", "011-345-6789", "02-123-4567",
                        "031-987-6543", "1588-1234", "070-1234-5678", "+82 10-1234-5678", "+82-2-3456-7890"}) {
    std::string text = "연락처 " + v + "입니다";
    auto m = only(text);
    EXPECT_EQ(m.type, PiiType::Phone) << v;
    EXPECT_EQ(value(text, m), v);
  }
  std::string t = "(02) 555-1234 대표번호";
  EXPECT_EQ(value(t, only(t)), "(02) 555-1234");
  t = "홍길동(010-3333-4444)님";
  EXPECT_EQ(value(t, only(t)), "010-3333-4444");
}

TEST(PiiDetect, InternationalPhones) {
  for (std::string v : {"(415) 555-0132", "415-555-0132", "+1 415 555 0132", "+44 20 7946 0958", "+33 1 42 68 53 00"}) {
    std::string text = "Call " + v + " now.";
    auto m = only(text);
    EXPECT_EQ(m.type, PiiType::Phone) << v;
    EXPECT_EQ(value(text, m), v);
  }
}

TEST(PiiDetect, RegistrationNumbers) {
  std::string t = "주민등록번호: 960121-1021413";
  auto m = only(t);
  EXPECT_EQ(m.type, PiiType::ResidentRegistrationNumber);
  EXPECT_EQ(m.rule, "rrn_checksum");
  t = "외국인등록번호 911124-5678906";
  EXPECT_EQ(only(t).type, PiiType::ForeignerRegistrationNumber);
  // Invalid dates and gender digits are never registration numbers.
  EXPECT_TRUE(none("번호 001332-1234567"));
  EXPECT_TRUE(none("번호 960303-0021413"));
  // Post-2020 numbers (no checksum): only with a context word.
  EXPECT_LT(conf_of("번호 210315-3123456", PiiType::ResidentRegistrationNumber), 0.5f);
  EXPECT_GE(conf_of("주민등록번호 210315-3123456", PiiType::ResidentRegistrationNumber), 0.8f);
  EXPECT_GE(conf_of("주민번호는 2103153123456", PiiType::ResidentRegistrationNumber), 0.8f);
}

TEST(PiiDetect, BusinessCardLicencePassport) {
  std::string t = "사업자등록번호 104-86-56659";
  EXPECT_EQ(only(t).type, PiiType::BusinessRegistrationNumber);
  EXPECT_TRUE(none("사업자등록번호 104-86-56658"));  // checksum fails
  t = "카드번호 4111-1111-1111-1111";
  EXPECT_EQ(only(t).type, PiiType::CardNumber);
  t = "Amex 3782 822463 10005 on file";
  EXPECT_EQ(value(t, only(t)), "3782 822463 10005");
  EXPECT_TRUE(none("card 4111-1111-1111-1112"));  // Luhn fails
  t = "운전면허 11-22-123456-12";
  EXPECT_EQ(only(t).type, PiiType::DriverLicense);
  EXPECT_TRUE(none("번호 99-22-123456-12"));  // no such region
  t = "여권번호 M123A4567";
  EXPECT_EQ(only(t).type, PiiType::Passport);
  EXPECT_TRUE(none("code A123B4567"));
}

TEST(PiiDetect, AccountsNeedContext) {
  std::string t = "입금 계좌 110-123-456789 (신한은행)";
  auto m = only(t);
  EXPECT_EQ(m.type, PiiType::BankAccount);
  EXPECT_EQ(value(t, m), "110-123-456789");
  EXPECT_TRUE(none("참고 110-123-456789 입니다"));
  t = "Send it to bank account 1002-123-456789 please";
  EXPECT_EQ(only(t).type, PiiType::BankAccount);
}

TEST(PiiDetect, EmailIpSecrets) {
  std::string t = "메일 hong.gd@example.co.kr 로";
  EXPECT_EQ(value(t, only(t)), "hong.gd@example.co.kr");
  EXPECT_TRUE(none("my email is info@presidio."));
  t = "from 8.8.8.8 today";
  EXPECT_EQ(only(t).type, PiiType::IpAddress);
  // Internal hosts are redacted like public ones by default (ip_ranges = All).
  t = "gateway 192.168.0.1 (private)";
  EXPECT_EQ(value(t, only(t)), "192.168.0.1");
  t = "addr 2001:db8:85a3::8a2e:370:7334 ok";
  EXPECT_EQ(value(t, only(t)), "2001:db8:85a3::8a2e:370:7334");
  EXPECT_TRUE(none("at 10:30:45 and std::vector"));
  t = "AWS_SECRET=AKIAIOSFODNN7EXAMPLE";
  EXPECT_EQ(only(t).type, PiiType::Secret);
  t = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\nnext";
  EXPECT_EQ(value(t, only(t)), "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----");
}

TEST(PiiDetect, PhoneSeparatorsAndGlue) {
  // Every Korean shape with space, dot, dash and no separator; labelled or not.
  for (std::string v : {"010 2345 6789", "010.2345.6789", "010-2345-6789", "01023456789", "02 765 4321",
                        "02.765.4321", "031 765 4321", "064.712.3456", "070 1234 5678", "0505-123-4567",
                        "1577 1234", "1661.2345", "1899-0000"}) {
    for (std::string pre : {"", "담당 ", "Tel. ", "번호는 "}) {
      std::string text = pre + v + " 입니다";
      auto m = PiiDetector().detect(text);
      ASSERT_EQ(m.size(), 1u) << text;
      EXPECT_EQ(m[0].type, PiiType::Phone) << text;
      EXPECT_EQ(value(text, m[0]), v) << text;
    }
  }
  // Parenthesised area codes glued to Hangul or Latin words keep their parenthesis.
  for (std::string t : {"본점(02)765-4321로", "branch(031)765-4321 open", "지점(051) 743-2211"}) {
    auto m = only(t);
    EXPECT_EQ(m.type, PiiType::Phone) << t;
    EXPECT_EQ(t.substr(m.begin, 1), "(") << t;
  }
  for (std::string v : {"010 1234-5678", "010-1234 5678", "010.1234-5678"}) {  // mixed separators: mobiles only
    std::string text = "번호 " + v;
    EXPECT_EQ(value(text, only(text)), v);
  }
  // A phone label glued to the digits is still a label; other letters make a code.
  for (std::string v : {"Tel010-1234-5678", "HP010 2345 6789", "is415-555-0132", "Fax02-765-4321"}) {
    auto m = only(v);
    EXPECT_EQ(m.type, PiiType::Phone) << v;
    EXPECT_TRUE(is_digit_start(v, m)) << v;
  }
  EXPECT_TRUE(none("SKU010-2345-6789 stock"));
  EXPECT_TRUE(none("part AB010 1234 5678"));
  std::string t = "Tel.010-7777-1212";
  EXPECT_EQ(value(t, only(t)), "010-7777-1212");
  t = "1. 010 5678 1234";  // a list marker is no part of the number
  EXPECT_EQ(value(t, only(t)), "010 5678 1234");
  EXPECT_TRUE(none("pi 3.010 1234 5678"));  // digits after a decimal point stay decimals
}

TEST(PiiDetect, NearestLabelWins) {
  // A decoy elsewhere in the sentence does not hide a labelled value...
  std::string t = "Please pay the invoice total to account number 3333-05-7654321 today.";
  EXPECT_EQ(only(t).type, PiiType::BankAccount);
  t = "주문 관련 문의: 010 4321 8765";
  EXPECT_EQ(only(t).type, PiiType::Phone);
  // ...but a decoy that labels the number itself still does, generic words ("number") do not outrank it.
  EXPECT_TRUE(none("Order number 123-456-7890 shipped."));
  EXPECT_TRUE(none("주문번호 010-2345-6789 확인"));
  EXPECT_TRUE(none("Your order 1234-567-890123 has shipped; check your account page."));
  // The nearest label decides alone: the server word does not lift the version.
  std::string v = "version 1.2.3.4 server 10.0.0.1";
  auto m = PiiDetector().detect(v);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(value(v, m[0]), "10.0.0.1");
  // A strong shape needs the decoy right at it; a weak one is hit from further away.
  EXPECT_GE(conf_of("주문하신 분 010-2323-4545", PiiType::Phone), 0.5f);
  EXPECT_LT(conf_of("주문하신 분 01023234545", PiiType::Phone), 0.5f);
}

TEST(PiiDetect, AccountsOfMajorBanks) {
  for (std::string v : {"123456-01-234567", "110-234-567890", "1002-345-678901", "123-456789-01234",
                        "302-1234-5678-91", "123-456789-01-012", "3333-12-3456789", "1000-2345-6789",
                        "110 234 567890", "1002345678901"}) {
    for (std::string pre : {"입금 계좌 ", "account ", "KB국민은행 ", "Shinhan acct "}) {
      std::string text = pre + v + " 로";
      auto m = PiiDetector().detect(text);
      ASSERT_EQ(m.size(), 1u) << text;
      EXPECT_EQ(m[0].type, PiiType::BankAccount) << text;
      EXPECT_EQ(value(text, m[0]), v) << text;
    }
    EXPECT_TRUE(none("참고 " + v + " 입니다")) << v;
  }
}

TEST(PiiDetect, LuhnFailingCardShapes) {
  // A 16-digit number in card groups that fails Luhn (asserted) and holds a "1588 1234" phone shape.
  std::string bad = "4532 1588 1234 5674";
  std::string digits;
  for (char c : bad)
    if (c != ' ') digits += c;
  ASSERT_FALSE(luhn_valid(digits));
  EXPECT_TRUE(none("value " + bad + " fails the checksum"));
  EXPECT_TRUE(none("card 4485-0123-4567-8902 rejected"));
  EXPECT_TRUE(none("카드번호 1234561688234567 오류"));
  std::string intl = "call +861391234567891 now";  // 15 digits after '+' fail Luhn, still a phone
  EXPECT_EQ(only(intl).type, PiiType::Phone);
  // A bank's card brand is card context, not account context.
  EXPECT_TRUE(none("신한카드 " + bad + " 승인 거절"));
  EXPECT_TRUE(none("NH농협카드 " + bad));
  // It is an account only where the text says so, and then the whole run.
  std::string t = "입금 계좌 " + bad;
  auto m = only(t);
  EXPECT_EQ(m.type, PiiType::BankAccount);
  EXPECT_EQ(value(t, m), bad);
}

TEST(PiiDetect, IpPolicy) {
  std::string t = "internal host 10.20.30.40 and public 8.8.4.4, ULA fd12:3456:789a::10";
  auto m = PiiDetector().detect(t);
  ASSERT_EQ(m.size(), 3u);
  PiiOptions o;
  o.ip_ranges = IpRanges::Public;
  m = PiiDetector(o).detect(t);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(value(t, m[0]), "8.8.4.4");
  o.ip_ranges = IpRanges::Private;
  m = PiiDetector(o).detect(t);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(value(t, m[0]), "10.20.30.40");
  EXPECT_EQ(value(t, m[1]), "fd12:3456:789a::10");
  EXPECT_EQ(ip_ranges_from_name("PUBLIC"), IpRanges::Public);
  EXPECT_THROW(ip_ranges_from_name("internal"), lathe::Error);
  // Not host addresses: versions, sections, out-of-range octets, netmasks, multicast, longer dotted runs.
  for (std::string d : {"version 10.2.0.1", "버전 3.10.2.1 배포", "firmware 2.4.10.8", "release 1.0.0.12",
                        "see section 4.2.1.3", "octet 300.1.2.3", "mask 255.255.255.0", "group 239.1.2.3",
                        "OID 1.3.6.1.4.1", "0.0.0.0 binds all", "ver.1.2.3.4", "v1.2.3.4"})
    EXPECT_TRUE(none(d)) << d;
}

TEST(PiiDetect, FullWidthDigits) {
  // Korean input methods type full-width digits and separators; spans are the original bytes.
  for (std::string v : {"０１０－２３４５－６７８９", "０１０-２３４５-６７８９", "（０２）７６５－４３２１"}) {
    std::string t = "연락처 " + v + "입니다";
    auto m = only(t);
    EXPECT_EQ(m.type, PiiType::Phone) << t;
    EXPECT_EQ(value(t, m), v);
  }
  std::string t = "연락처 ０１０－２３４５－６７８９";
  EXPECT_EQ(mask_for_report(t, only(t)), "010-****-6789");  // no full-width digit survives the mask
  t = "계좌 １１０－２３４－５６７８９０ 로";
  EXPECT_EQ(only(t).type, PiiType::BankAccount);
  EXPECT_TRUE(none("２０２４년 １０월 ５일, Ｗｉｄｅ ＡＢＣ"));
  EXPECT_TRUE(none("코드 ０１０-２３４５-６７８９A"));
}

TEST(PiiDetect, IpRangesConfigKey) {
  auto c = lathe::data::parse_data_config(YAML::Load("pii: {policy: redact, ip_ranges: public}"), "project.yaml:data");
  EXPECT_EQ(c.pii.ip_ranges, "public");
  EXPECT_EQ(c.to_json()["pii"]["ip_ranges"], "public");
  EXPECT_EQ(lathe::data::parse_data_config(YAML::Load("pii: {policy: redact}"), "d").pii.ip_ranges, "all");
  try {
    lathe::data::parse_data_config(YAML::Load("pii: {ip_ranges: internal}"), "project.yaml:data");
    ADD_FAILURE() << "no error";
  } catch (const lathe::Error& e) {
    EXPECT_NE(std::string(e.what()).find("ip_ranges"), std::string::npos) << e.what();
  }
}

TEST(PiiDetect, DecoysSurvive) {
  EXPECT_TRUE(none("2023-10-15 회의, 2023.10.15. 오후"));
  EXPECT_TRUE(none("민법 제750조 및 형법 제307조 제1항"));
  EXPECT_TRUE(none("총 1,234,567원, 2,000만원"));
  EXPECT_TRUE(none("ISBN 978-89-374-6044-9"));
  EXPECT_TRUE(none("제품코드 010-2345-6789"));
  EXPECT_TRUE(none("Order #4111111111111111 refunded"));
  EXPECT_TRUE(none("Version 1.2.3.4 and pi 3.141592653589793"));
  EXPECT_TRUE(none("SKU AB-010-1234-5678"));
}

TEST(PiiDetect, ContextRaisesAndLowers) {
  float plain = conf_of("값 01012345678 끝", PiiType::Phone);
  float labelled = conf_of("휴대폰 01012345678 끝", PiiType::Phone);
  float decoy = conf_of("주문번호 01012345678 끝", PiiType::Phone);
  EXPECT_GT(labelled, plain);
  EXPECT_LT(decoy, plain);
  EXPECT_LT(decoy, 0.5f);
  EXPECT_GT(conf_of("my phone 415-555-0132", PiiType::Phone), conf_of("x 415-555-0132", PiiType::Phone));
  // English words match whole words only: "ship" holds no "ip".
  EXPECT_EQ(conf_of("ship 203.0.113.5", PiiType::IpAddress), conf_of("x 203.0.113.5", PiiType::IpAddress));
}

TEST(PiiDetect, OptionsFilterTypesAndThreshold) {
  std::string t = "메일 a@example.com 전화 010-1234-5678";
  PiiOptions o;
  o.types = {PiiType::Phone};
  auto m = PiiDetector(o).detect(t);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, PiiType::Phone);
  o = {};
  o.min_confidence = 0.99f;  // the labelled phone reaches 1.0, the e-mail stays at its base 0.95
  m = PiiDetector(o).detect(t);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, PiiType::Phone);
}

TEST(PiiRedact, PlaceholdersAndMasks) {
  std::string t = "주민등록번호 960121-1021413, 전화 010-1234-5678, 메일 kim@example.com";
  auto m = PiiDetector().detect(t);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(redact(t, m), "주민등록번호 [RRN], 전화 [PHONE], 메일 [EMAIL]");
  EXPECT_EQ(mask_for_report(t, m[0]), "960121-*******");
  EXPECT_EQ(mask_for_report(t, m[1]), "010-****-5678");
  EXPECT_EQ(mask_for_report(t, m[2]), "k***@example.com");
  std::string c = "card 4111-1111-1111-1111";
  EXPECT_EQ(mask_for_report(c, only(c)), "****-****-****-1111");
  std::string ip = "from 8.8.4.4 x";
  EXPECT_EQ(mask_for_report(ip, only(ip)), "8.8.*.*");
  EXPECT_EQ(redact("no pii here", {}), "no pii here");
}

TEST(PiiDetect, RobustOnOddInput) {
  PiiDetector d;
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 131 + 7) % 256));
  EXPECT_NO_THROW(d.detect(junk));
  EXPECT_NO_THROW(d.detect(""));
  EXPECT_NO_THROW(d.detect("@"));
  EXPECT_NO_THROW(d.detect("+"));
  EXPECT_NO_THROW(d.detect("::"));
  EXPECT_NO_THROW(d.detect("-----BEGIN PRIVATE KEY-----"));
  EXPECT_NO_THROW(d.detect(std::string(1000, '1')));
  EXPECT_NO_THROW(d.detect("1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1"));
  // Full-width forms cut at the end of the text, and runs longer than the full-width reader's buffer.
  for (std::string t : {"\xEF", "\xEF\xBC", "\xEF\xBC\x91", "１２\xEF\xBC", "（\xEF\xBC", "１\xE3\x80"}) {
    EXPECT_NO_THROW(d.detect(t));
  }
  std::string wide;
  for (int i = 0; i < 300; ++i) wide += (i % 5 == 4) ? "－" : "７";
  EXPECT_NO_THROW(d.detect(wide));
}

}  // namespace

// detect's skip over bytes that start nothing: the 32-byte blocks find the same first byte as the
// table loop, from every start, over text where such bytes are sparse (Korean, spaces, punctuation)
// and next to the class boundaries ('/' and ';' around the digits and ':', '`' and '{', '[' around the
// letters, ')' ',' '.' '?' 'A'-1 around the single bytes, EE and F0 around EF, 0xC0 | 'a').
TEST(PiiDetect, SkipBlocksFindTheTableLoopsByte) {
  const unsigned char inert[] = {' ', '.', ',', '/', ';', '`', '{', '[', ')', '*', '?', '\n', 0xEA, 0xB0, 0x80,
                                 0xED, 0x9E, 0xEE, 0xF0, 0xC1, 0xE1, 0x7F, 0x00, 0x1F, '!', '=', '_'};
  const unsigned char active[] = {'0', '9', ':', 'a', 'z', 'A', 'Z', '(', '+', '-', '@', 0xEF};
  std::mt19937 rng(11);
  size_t found = 0;
  for (int t = 0; t < 3000; t++) {
    std::string s(rng() % 300, ' ');
    const unsigned every = 1 + rng() % 200;
    for (auto& c : s)
      c = char(rng() % every == 0 ? active[rng() % std::size(active)] : inert[rng() % std::size(inert)]);
    const auto* b = reinterpret_cast<const unsigned char*>(s.data());
    for (size_t i = 0; i <= s.size(); i++) {
      const size_t want = pii_detail::skip_inert(b, i, s.size(), false);
      ASSERT_EQ(pii_detail::skip_inert(b, i, s.size(), true), want) << "text " << t << " from " << i;
      found += want < s.size();
    }
  }
  EXPECT_GT(found, 100000u);
}
