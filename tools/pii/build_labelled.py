#!/usr/bin/python3
"""Writes tests/data/pii/labelled.jsonl: the project's own labelled personal-data set (Korean + English).

Each line: {"id", "lang", "text", "spans": [{"type", "begin", "end", "value"}]} with UTF-8 *byte* offsets
(what lathe::data::PiiDetector returns). Cases are sentences written for this project; numbers that must
pass a checksum are completed here by independent Python implementations of the published formulas
(Luhn; Korean RRN/FRN check digit; business registration number), so the labels do not come from the
detector under test. Texts without spans are decoys that must produce no match.

Run: /usr/bin/python3 tools/pii/build_labelled.py  (deterministic; rewrites the file).
"""
import json
import os
import random

RNG = random.Random(20261128)
W_RRN = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]


def rrn(birth, g, frn=False, valid=True):
    body = birth + str(g) + "".join(str(RNG.randrange(10)) for _ in range(5))
    s = sum(int(d) * w for d, w in zip(body, W_RRN))
    chk = ((13 if frn else 11) - s % 11) % 10
    if not valid:
        chk = (chk + 1 + RNG.randrange(9)) % 10
    return body + str(chk)


def brn(prefix9):
    w = [1, 3, 7, 1, 3, 7, 1, 3, 5]
    s = sum(int(d) * x for d, x in zip(prefix9, w)) + int(prefix9[8]) * 5 // 10
    return prefix9 + str((10 - s % 10) % 10)


def luhn_complete(prefix):
    digits = [int(d) for d in prefix] + [0]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix + str((10 - total % 10) % 10)


def dash(s, *sizes):
    out, i = [], 0
    for n in sizes:
        out.append(s[i:i + n])
        i += n
    return "-".join(out)


def rnd(n):
    return "".join(str(RNG.randrange(10)) for _ in range(n))


CASES = []


def case(lang, text, *spans):
    """spans: (TYPE, value) pairs; each value must occur in text (first occurrence after the previous)."""
    CASES.append((lang, text, list(spans)))


# ---- phones ----
for v in ["010-1234-5678", "010-9876-5432", "011-345-6789", "016-2222-3333", "019-876-5432"]:
    case("ko", f"제 휴대폰 번호는 {v}입니다.", ("PHONE", v))
case("ko", "연락처: 010 9876 5432 (문자 가능)", ("PHONE", "010 9876 5432"))
case("ko", "010.5555.1234 로 연락주세요", ("PHONE", "010.5555.1234"))
case("ko", "전화번호 01012345678로 문자 주세요", ("PHONE", "01012345678"))
case("ko", "문의는 02-123-4567로 주세요.", ("PHONE", "02-123-4567"))
case("ko", "사무실 031-987-6543, 팩스 031-987-6544", ("PHONE", "031-987-6543"), ("PHONE", "031-987-6544"))
case("ko", "고객센터 1588-1234 (평일 9시~6시)", ("PHONE", "1588-1234"))
case("ko", "대표번호 1644-0000으로 전화하세요", ("PHONE", "1644-0000"))
case("ko", "휴대전화 +82 10-2345-6789", ("PHONE", "+82 10-2345-6789"))
case("ko", "+82-2-3456-7890 으로 연락 바랍니다", ("PHONE", "+82-2-3456-7890"))
case("ko", "(02) 555-1234 대표번호로 연락", ("PHONE", "(02) 555-1234"))
case("ko", "부산 지점 051-740-1234 / 인터넷전화 070-4321-8765", ("PHONE", "051-740-1234"), ("PHONE", "070-4321-8765"))
case("ko", "김철수(010-3333-4444)님께 전달 바랍니다", ("PHONE", "010-3333-4444"))
case("en", "Call me at (415) 555-0132 tomorrow.", ("PHONE", "(415) 555-0132"))
case("en", "My cell is 415-555-0199.", ("PHONE", "415-555-0199"))
case("en", "Reach our London office on +44 20 7946 0958.", ("PHONE", "+44 20 7946 0958"))
case("en", "Her Korean mobile is +82 10 1234 5678, text first.", ("PHONE", "+82 10 1234 5678"))
case("en", "Phone: 212.555.0147", ("PHONE", "212.555.0147"))
case("en", "Contact the Seoul desk at 02-3456-7890 or the Paris desk at +33 1 42 68 53 00.",
     ("PHONE", "02-3456-7890"), ("PHONE", "+33 1 42 68 53 00"))
case("en", "Text 010-2468-1357 when you arrive.", ("PHONE", "010-2468-1357"))

# ---- resident / foreigner registration numbers ----
for birth, g in [("900101", 1), ("850315", 2), ("021224", 3), ("770707", 2), ("991231", 1), ("050505", 4)]:
    v = rrn(birth, g)
    case("ko", f"주민등록번호: {dash(v, 6, 7)}", ("RRN", dash(v, 6, 7)))
v = rrn("880808", 1)
case("ko", f"주민번호 {v} 확인 부탁드립니다", ("RRN", v))
v = rrn("930220", 2)
case("ko", f"신청인 홍길동 ({dash(v, 6, 7)})", ("RRN", dash(v, 6, 7)))
v = rrn("210315", 3, valid=False)  # issued after Oct 2020: random tail, no checksum, context needed
case("ko", f"아기 주민등록번호는 {dash(v, 6, 7)} 입니다", ("RRN", dash(v, 6, 7)))
v = rrn("220901", 4, valid=False)
case("ko", f"주민번호: {v}", ("RRN", v))
v = rrn("750101", 1)
case("en", f"His RRN is {dash(v, 6, 7)}.", ("RRN", dash(v, 6, 7)))
v = rrn("681130", 2)
case("en", f"Resident registration number {v} was on the form.", ("RRN", v))
for birth, g in [("920505", 5), ("870228", 6), ("030303", 7)]:
    v = rrn(birth, g, frn=True)
    case("ko", f"외국인등록번호 {dash(v, 6, 7)}", ("FRN", dash(v, 6, 7)))
v = rrn("910101", 5, frn=True)
case("en", f"Alien registration no. {dash(v, 6, 7)} (ARC)", ("FRN", dash(v, 6, 7)))

# ---- business registration numbers ----
for p in ["104865665", "220816251", "124810001", "513861234"]:
    v = brn(p)
    case("ko", f"사업자등록번호 : {dash(v, 3, 2, 5)}", ("BRN", dash(v, 3, 2, 5)))
v = brn("211870123")
case("en", f"Business registration number {dash(v, 3, 2, 5)}, Seoul.", ("BRN", dash(v, 3, 2, 5)))
v = brn("314812345")
case("ko", f"사업자번호 {v} 로 세금계산서 발행", ("BRN", v))

# ---- cards ----
cards = [luhn_complete("411111111111111"), luhn_complete("555555555555444"), luhn_complete("401288888888188"),
         luhn_complete("356600202036050"), luhn_complete("622202123456789")]
for c in cards[:3]:
    case("ko", f"카드번호 {dash(c, 4, 4, 4, 4)} 로 결제했습니다", ("CARD", dash(c, 4, 4, 4, 4)))
case("ko", f"신한카드 {' '.join([cards[3][i:i+4] for i in range(0, 16, 4)])}",
     ("CARD", " ".join([cards[3][i:i+4] for i in range(0, 16, 4)])))
case("en", f"Visa {' '.join([cards[2][i:i+4] for i in range(0, 16, 4)])} expires 12/27",
     ("CARD", " ".join([cards[2][i:i+4] for i in range(0, 16, 4)])))
amex = luhn_complete("37828224631000")
case("en", f"Amex: {amex[:4]} {amex[4:10]} {amex[10:]}", ("CARD", f"{amex[:4]} {amex[4:10]} {amex[10:]}"))
case("en", f"credit card {cards[4]} on file", ("CARD", cards[4]))
case("en", f"Please charge card number {cards[0]}.", ("CARD", cards[0]))

# ---- bank accounts (context needed) ----
case("ko", "입금 계좌: 국민은행 123-45-6789-012", ("ACCOUNT", "123-45-6789-012"))
case("ko", "계좌번호 110-123-456789 (신한은행, 예금주 홍길동)", ("ACCOUNT", "110-123-456789"))
case("ko", "우리은행 1002-345-678901 로 송금해 주세요", ("ACCOUNT", "1002-345-678901"))
case("ko", "환불 계좌 3333-01-1234567 (카카오뱅크)", ("ACCOUNT", "3333-01-1234567"))
case("en", "Wire the funds to account 1002-123-456789 at Woori Bank.", ("ACCOUNT", "1002-123-456789"))
case("en", "Bank account: 356-0123-4567-83", ("ACCOUNT", "356-0123-4567-83"))

# ---- passports and driver licences ----
case("ko", "여권번호 M123A4567", ("PASSPORT", "M123A4567"))
case("ko", "여권 번호는 S987B6543 입니다", ("PASSPORT", "S987B6543"))
case("ko", "구여권 M12345678 은 만료되었습니다", ("PASSPORT", "M12345678"))
case("en", "passport number M987B6543", ("PASSPORT", "M987B6543"))
case("en", "Her old passport R24681357 expired.", ("PASSPORT", "R24681357"))
case("ko", "운전면허번호 11-22-123456-12", ("DRIVER_LICENSE", "11-22-123456-12"))
case("ko", "면허번호: 13-05-654321-88 (경기)", ("DRIVER_LICENSE", "13-05-654321-88"))
case("en", "Korean driver's license 21 19 246810 33", ("DRIVER_LICENSE", "21 19 246810 33"))
case("en", "Driver licence no. 281501234567", ("DRIVER_LICENSE", "281501234567"))

# ---- e-mail ----
case("ko", "이메일은 hong.gildong@example.co.kr 입니다", ("EMAIL", "hong.gildong@example.co.kr"))
case("ko", "문의: support+kr@lathe-project.org", ("EMAIL", "support+kr@lathe-project.org"))
case("ko", "담당자메일 kim_01@naver.com 으로 보내주세요", ("EMAIL", "kim_01@naver.com"))
case("en", "email john.doe@example.com for details", ("EMAIL", "john.doe@example.com"))
case("en", "CC: a.b@sub.example.org, c@example.net", ("EMAIL", "a.b@sub.example.org"), ("EMAIL", "c@example.net"))
case("en", "<mailto:alerts@status.example.io>", ("EMAIL", "alerts@status.example.io"))

# ---- IP addresses ----
case("ko", "접속 IP 203.0.113.45에서 로그인 시도", ("IP", "203.0.113.45"))
case("en", "The server at 8.8.8.8 responded in 12 ms.", ("IP", "8.8.8.8"))
case("en", "client 198.51.100.23 connected", ("IP", "198.51.100.23"))
case("en", "IPv6 address 2001:db8:85a3::8a2e:370:7334 was logged", ("IP", "2001:db8:85a3::8a2e:370:7334"))
case("ko", "서버 주소 2001:0db8:0000:0000:0000:ff00:0042:8329", ("IP", "2001:0db8:0000:0000:0000:ff00:0042:8329"))

# ---- secrets ----
case("en", "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", ("SECRET", "AKIAIOSFODNN7EXAMPLE"))
case("en", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r",
     ("SECRET", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r"))
case("en", "token = ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", ("SECRET", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"))
case("ko", "API 키 sk-proj-abc123DEF456ghi789JKL012 는 외부에 공유하지 마세요",
     ("SECRET", "sk-proj-abc123DEF456ghi789JKL012"))
case("en", 'config = {"api_key": "9f8e7d6c5b4a39281706f5e4d3c2b1a0"}', ("SECRET", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"))
case("en", "password: Tr0ub4dor&3", ("SECRET", "Tr0ub4dor&3"))
case("en", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\n-----END RSA PRIVATE KEY-----",
     ("SECRET", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\n-----END RSA PRIVATE KEY-----"))
case("ko", "슬랙 토큰 xoxb-1234567890-abcdefghij 유출 주의", ("SECRET", "xoxb-1234567890-abcdefghij"))
case("en", "HF_TOKEN hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 in the CI log", ("SECRET", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"))

# ---- mixed records ----
v = rrn("800505", 1)
case("ko", f"성명: 이영희 / 주민등록번호: {dash(v, 6, 7)} / 연락처: 010-7777-8888 / 이메일: yh.lee@example.com",
     ("RRN", dash(v, 6, 7)), ("PHONE", "010-7777-8888"), ("EMAIL", "yh.lee@example.com"))
case("en", "Name: Jane Park, phone +1 415 555 0123, email jane.park@example.com, card 4111 1111 1111 1111",
     ("PHONE", "+1 415 555 0123"), ("EMAIL", "jane.park@example.com"), ("CARD", "4111 1111 1111 1111"))
case("ko", "배송지 연락처 010-1111-2222, 주문번호 20231015-0001", ("PHONE", "010-1111-2222"))

# ---- harder cases written without checking the detector first (some are expected misses) ----
case("ko", "핸드폰 010 - 4567 - 8901 로 연락", ("PHONE", "010 - 4567 - 8901"))
case("ko", "연락처는 공일공-1234-5678 입니다", ("PHONE", "공일공-1234-5678"))
case("ko", "☎ 02)3456-7890", ("PHONE", "02)3456-7890"))
case("en", "Ph: +82 (0)10 9876 5432", ("PHONE", "+82 (0)10 9876 5432"))
case("en", "reach me: j.smith [at] example [dot] com", ("EMAIL", "j.smith [at] example [dot] com"))
v = rrn("970707", 1)
case("ko", f"주민등록번호 앞자리 {v[:6]} 뒷자리 {v[6:]}", ("RRN", v[:6] + " 뒷자리 " + v[6:]))
case("en", "card: 4111-1111-1111-1111, exp 09/28, cvc 123", ("CARD", "4111-1111-1111-1111"))
case("ko", "입금은 농협 302-1234-5678-91 로", ("ACCOUNT", "302-1234-5678-91"))
case("en", "IP was 203.0.113.7:8080 when it failed", ("IP", "203.0.113.7"))
case("ko", "사업자 등록번호는 1048656659 입니다", ("BRN", "1048656659"))

# ---- decoys: must produce no match ----
decoys_ko = [
    "2023-10-15 회의록", "2023.10.15. 오후 3시 회의", "민법 제750조에 따라 손해를 배상한다.",
    "형법 제307조 제1항 위반", "개인정보 보호법 제24조의2를 참고하세요", "총 금액 1,234,567원", "가격: 15,000원",
    "ISBN 978-89-374-6044-9 도서", "모델명 SM-G991N 스마트폰", "제품코드 010-2345-6789 재고 있음",
    "상품번호 1588-2000 할인", "우편번호 06236", "2024년 3월 15일 발표", "좌표 37.5665, 126.9780",
    "주문번호 20231015-1234567 배송 시작", "송장번호 6123-4567-8901-2345", "항공편 KE123 편 탑승",
    "버전 1.2.3.4 배포", "제 1 장 총칙", "회원 수 1,588,000명", "2,000만원 대출", "5월 5일 어린이날",
    "전화 주세요", "계좌 개설 방법 안내", "주민등록 등본 발급 안내", "예약번호 A12345678",
    "관리번호 11-22-333333-44 처리 완료", "사건번호 2023가합12345",
]
if True:
    v = rrn("231015", 1)
    decoys_ko.append(f"주문번호 {dash(v, 6, 7)} 결제 완료")
    c = luhn_complete("412345678901234")
    decoys_ko.append(f"주문번호 {c} 조회")
decoys_en = [
    "The meeting is on 2023-10-15 at 10:30:45.", "Version 1.2.3.4 released today.", "Python 3.11.4 is installed.",
    "See RFC 2616 section 14.9.", "ISBN 9788937460449", "Price: $1,299.00", "Chapter 12, page 345",
    "Order 123-456-7890 shipped yesterday.", "Invoice 2023-0001-2345 is overdue.", "Call 911 in an emergency.",
    "Use std::vector and std::map.", "Tracking number 1Z999AA10123456784", "Serial no. 1234-5678-9012-3456",
    "pi is 3.141592653589793", "The MAC is 00:1A:2B:3C:4D:5E", "Population grew to 51,780,000 people.",
    "Part number 4012-8888-8888-1882", "Room 101, building 5", "Model M123A4567 is discontinued.",
    "My email is info@example.", "See section 3.4.5.6.7 of the spec.", "Coordinates 37.5665, 126.9780",
    "Order #4111111111111111 was refunded.", "The key insight: understanding users matters.",
    "Set the password field to a strong value.", "Account settings were updated on 2024-01-02.",
]
for t in decoys_ko:
    case("ko", t)
for t in decoys_en:
    case("en", t)


# ---- added after a held-out evaluation (spacing variants, glued landlines, internal IPs, accounts in
# English, Luhn-failing card-shaped numbers). Written fresh (not the evaluation's sentences); appended
# after the older cases with their own random stream so earlier lines stay byte-identical.
RNG2 = random.Random(20261202)


def luhn_fail(prefix15):
    good = luhn_complete(prefix15)
    return good[:-1] + str((int(good[-1]) + 1 + RNG2.randrange(9)) % 10)


def quad(s, sep=" "):
    return sep.join(s[i:i + 4] for i in range(0, 16, 4))


# phones: space / dot / plain variants, numbered lists, parenthesised area codes glued to words, 050x
case("ko", "HP 010 2345 6789로 문자 남겨주세요", ("PHONE", "010 2345 6789"))
case("ko", "김대리 010 8765 4321 확인 부탁", ("PHONE", "010 8765 4321"))
case("en", "Text me at 010 3456 7890 after 6pm.", ("PHONE", "010 3456 7890"))
case("ko", "1. 010 5678 1234 (김영수)\n2. 010 4455 6677 (박지민)", ("PHONE", "010 5678 1234"), ("PHONE", "010 4455 6677"))
case("ko", "주문 관련 문의: 010 4321 8765", ("PHONE", "010 4321 8765"))
case("ko", "주문하신 상품이 오늘 도착했습니다. 궁금한 점은 010 9988 7766 으로 연락주세요",
     ("PHONE", "010 9988 7766"))
case("ko", "본사(031)987-6543로 연락 바랍니다", ("PHONE", "(031)987-6543"))
case("ko", "지점(051) 743-2211 평일 운영", ("PHONE", "(051) 743-2211"))
case("en", "Our Busan branch(051)743-2211 opens at 9.", ("PHONE", "(051)743-2211"))
case("en", "Seoul office: 02 2345 6789", ("PHONE", "02 2345 6789"))
case("ko", "제주 사무소 064.712.3456", ("PHONE", "064.712.3456"))
case("ko", "인터넷전화 070 8765 4321", ("PHONE", "070 8765 4321"))
case("ko", "안심번호 0504-1234-5678 로 전화 주세요", ("PHONE", "0504-1234-5678"))
case("ko", "콜센터 1577.1234 / 1899 0000", ("PHONE", "1577.1234"), ("PHONE", "1899 0000"))
case("en", "For refunds call 1661-2345, not the order line.", ("PHONE", "1661-2345"))
case("ko", "연락처:02)7654-3210", ("PHONE", "02)7654-3210"))
case("en", "Please pay the invoice total and then reach me on 010-2020-3030.", ("PHONE", "010-2020-3030"))

# IP addresses: internal hosts are redacted like public ones (docs/pii_dedup.md)
case("ko", "사내 DB 서버는 10.20.30.40 입니다", ("IP", "10.20.30.40"))
case("en", "VPN gateway 172.20.1.254 timed out twice.", ("IP", "172.20.1.254"))
case("ko", "내부망 192.168.100.12에서 접근이 차단되었습니다", ("IP", "192.168.100.12"))
case("en", "Jenkins runs on 10.1.15.7 behind the firewall.", ("IP", "10.1.15.7"))
case("ko", "NAS는 192.168.0.20, 프린터는 192.168.0.21", ("IP", "192.168.0.20"), ("IP", "192.168.0.21"))
case("en", "The printer has the ULA fd12:3456:789a::10 on the office LAN.", ("IP", "fd12:3456:789a::10"))
case("en", "traffic from 100.72.4.9 (carrier NAT) was dropped", ("IP", "100.72.4.9"))

# bank accounts: the major banks' groupings, Korean and English labels
case("en", "Please send the refund to my KB account 123456-01-234567.", ("ACCOUNT", "123456-01-234567"))
case("en", "Deposit to Hana Bank acct 123-456789-01234 before noon.", ("ACCOUNT", "123-456789-01234"))
case("ko", "IBK기업은행 123-456789-01-012 예금주 박민수", ("ACCOUNT", "123-456789-01-012"))
case("en", "Toss Bank account 1000-2345-6789 (payee: Lee)", ("ACCOUNT", "1000-2345-6789"))
case("ko", "송금 계좌 농협 351-2345-6789-01", ("ACCOUNT", "351-2345-6789-01"))
case("en", "Payment of the invoice total should go to account number 1002-456-789012 at Woori.",
     ("ACCOUNT", "1002-456-789012"))
case("en", "My Shinhan account is 110 234 567890.", ("ACCOUNT", "110 234 567890"))
case("ko", "카카오뱅크 3333-12-3456789로 입금 부탁드립니다", ("ACCOUNT", "3333-12-3456789"))
case("en", "beneficiary account: 302-0123-4567-81 (NH Nonghyup)", ("ACCOUNT", "302-0123-4567-81"))
case("ko", "환불받을 계좌는 우리은행 1002345678901 입니다", ("ACCOUNT", "1002345678901"))

# cards: a valid test number; Luhn-failing card-shaped numbers follow among the decoys
case("ko", "결제 카드 5105 1051 0510 5100 로 승인", ("CARD", "5105 1051 0510 5100"))
case("en", f"charge the card {quad(luhn_complete('453201511283036'), '-')} tonight",
     ("CARD", quad(luhn_complete('453201511283036'), '-')))

case("en", "Tel.010-7777-1212 (mobile, after 7pm)", ("PHONE", "010-7777-1212"))
case("en", "Acct# 123-456-789012, Shinhan", ("ACCOUNT", "123-456-789012"))
case("en", "ssh admin@10.0.0.12 -p 2222", ("IP", "10.0.0.12"))
case("en", "build 2.3.4.5 runs on host 10.8.0.3 since Monday", ("IP", "10.8.0.3"))
case("ko", "야간 HP010-8080-9090 (당직자)", ("PHONE", "010-8080-9090"))
case("ko", "주문하신 분 010-2323-4545 께 연락드렸습니다", ("PHONE", "010-2323-4545"))
case("ko", "연락처 ０１０-２３４５-６７８９", ("PHONE", "０１０-２３４５-６７８９"))  # full-width digits

decoys_new = [
    # Luhn-failing 16-digit numbers (grouped with spaces or dashes, contiguous), some with 15xx/16xx/0xxx
    # groups inside that a phone rule could take
    f"The 16-digit value {quad(luhn_fail('453215881234567'))} fails the Luhn check.",
    f"카드번호 {quad(luhn_fail('123456168823456'))} 는 검증에 실패한 번호입니다",
    f"invalid card {quad(luhn_fail('448501234567890'), '-')} was rejected",
    f"reference {luhn_fail('492912345678123')} on the statement",
    f"테스트용 번호 {quad(luhn_fail('540012340567890'), '-')} (체크섬 불일치)",
    # versions, section numbers, out-of-range octets, netmasks
    "version 10.2.0.1 ships today", "버전 3.10.2.1 배포 완료", "firmware 2.4.10.8 is required",
    "Chrome 120.0.6099.109 on Windows", "octets like 300.1.2.3 are invalid", "subnet mask 255.255.255.0",
    "see section 4.2.1.3 for details", "release 1.0.0.12 notes", "Ubuntu 22.04.3 LTS",
    # order, invoice, tracking numbers shaped like accounts or phones
    "주문번호 123456-01-234567 처리 완료", "Invoice no. 2024-08-000931 total 1,200,000 KRW",
    "Your order 1234-567-890123 has shipped; check your account page.", "Order ID 1588 2044 shipped",
    "송장번호 5012-3456-7890 배송 조회", "ISBN 979-11-6050-123-4",
    # amounts, dates, times, code
    "총 12,345,678원 입금 예정", "$ 1,599.00 per seat", "2024-10-15 10:30 ~ 2024-10-15 18:00",
    "운영시간 09:00-18:00 (주말 휴무)", "hash = 0x0101234567801", "사건번호 2024노1234",
    "2024. 10. 15. 회의 결과", "SKU010-2345-6789 재고 3개", "신한카드 4532-0151-1283-0367 승인 거절",
]
for t in decoys_new:
    case("ko" if any("\uac00" <= ch <= "\ud7a3" for ch in t) else "en", t)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_path = os.path.join(root, "tests", "data", "pii", "labelled.jsonl")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    lines = []
    for i, (lang, text, spans) in enumerate(CASES):
        raw = text.encode("utf-8")
        pos = 0
        out_spans = []
        for typ, value in spans:
            vb = value.encode("utf-8")
            b = raw.find(vb, pos)
            assert b >= 0, (text, value)
            out_spans.append({"type": typ, "begin": b, "end": b + len(vb), "value": value})
            pos = b + len(vb)
        lines.append(json.dumps({"id": i, "lang": lang, "text": text, "spans": out_spans}, ensure_ascii=False))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    n_pos = sum(1 for c in CASES if c[2])
    print(f"wrote {len(CASES)} cases ({n_pos} with personal data, {len(CASES) - n_pos} decoys) to {out_path}")


if __name__ == "__main__":
    main()
