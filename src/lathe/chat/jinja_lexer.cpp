#include "lathe/core/error.h"
#include "lathe/core/utf8.h"
#include "lathe/chat/jinja_ast.h"

#include <cctype>

namespace lathe::jinja {

void fail_at(Pos pos, const std::string& msg) {
  lathe::fail("chat-template", "line {} col {}: {}", pos.line, pos.col, msg);
}

namespace {

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {
    // Jinja's default keep_trailing_newline=False drops one trailing newline of the source.
    if (!src_.empty() && src_.back() == '\n') src_.remove_suffix(1);
  }

  std::vector<Token> run() {
    std::string text;
    Pos text_pos = pos_;
    bool line_starting = true;  // Jinja: the previous tag's match ended with a newline (or at start)
    while (i_ < src_.size()) {
      size_t open = find_open(i_);
      if (open == std::string_view::npos) {
        text.append(src_.substr(i_));
        advance_to(src_.size());
        break;
      }
      text.append(src_.substr(i_, open - i_));
      advance_to(open);
      char kind = src_[i_ + 1];  // '{', '%' or '#'
      char mod = i_ + 2 < src_.size() ? src_[i_ + 2] : '\0';
      Pos tag_pos = pos_;
      if (mod == '-') {
        while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
      } else if (mod != '+' && kind != '{') {
        // lstrip_blocks: drop spaces and tabs between the line start and a block or comment tag.
        size_t l = text.rfind('\n');
        size_t from = l == std::string::npos ? 0 : l + 1;
        if (l != std::string::npos || line_starting) {
          bool blank = true;
          for (size_t k = from; k < text.size(); ++k)
            if (!std::isspace(static_cast<unsigned char>(text[k]))) blank = false;
          if (blank) text.resize(from);
        }
      }
      if (!text.empty()) out_.push_back(Token{TokKind::Text, std::move(text), 0, 0, text_pos});
      text.clear();
      advance_to(i_ + 2 + (mod == '-' || mod == '+'));
      bool strip_after = false, keep_after = false;
      if (kind == '#') {
        size_t close = src_.find("#}", i_);
        if (close == std::string_view::npos) fail_at(tag_pos, "unterminated comment");
        strip_after = close > i_ && src_[close - 1] == '-';
        keep_after = close > i_ && src_[close - 1] == '+';
        advance_to(close + 2);
      } else {
        out_.push_back(Token{kind == '{' ? TokKind::VarBegin : TokKind::BlockBegin, "", 0, 0, tag_pos});
        lex_tag(kind == '{' ? '}' : '%', &strip_after, &keep_after);
      }
      size_t tag_end = i_;
      if (strip_after) {
        while (i_ < src_.size() && std::isspace(static_cast<unsigned char>(src_[i_]))) advance_to(i_ + 1);
      } else if (kind != '{' && !keep_after && i_ < src_.size() && src_[i_] == '\n') {
        advance_to(i_ + 1);  // trim_blocks
      }
      line_starting = i_ > tag_end ? src_[i_ - 1] == '\n' : false;
      text_pos = pos_;
    }
    if (!text.empty()) out_.push_back(Token{TokKind::Text, std::move(text), 0, 0, text_pos});
    out_.push_back(Token{TokKind::End, "", 0, 0, pos_});
    return std::move(out_);
  }

 private:
  size_t find_open(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k)
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return std::string_view::npos;
  }

  void advance_to(size_t to) {
    for (; i_ < to; ++i_) {
      if (src_[i_] == '\n') {
        ++pos_.line;
        pos_.col = 1;
      } else if (!utf8_is_continuation(src_[i_])) {
        ++pos_.col;
      }
    }
  }

  // Tokens of one {{ }} or {% %} tag up to and including its end. `close` is '}' or '%'.
  void lex_tag(char close, bool* strip_after, bool* keep_after) {
    int depth = 0;  // brackets open inside the tag: a '}' there is not the tag end
    while (true) {
      while (i_ < src_.size() && std::isspace(static_cast<unsigned char>(src_[i_]))) advance_to(i_ + 1);
      if (i_ >= src_.size()) fail_at(pos_, "unterminated tag");
      char c = src_[i_];
      Pos p = pos_;
      auto at = [&](std::string_view s) { return src_.substr(i_, s.size()) == s; };
      char end_seq[3] = {close, '}', '\0'};
      if (depth == 0 && (c == '-' || c == '+') && src_.substr(i_ + 1, 2) == end_seq) {
        (c == '-' ? *strip_after : *keep_after) = true;
        advance_to(i_ + 1);
        c = src_[i_];
      }
      if (depth == 0 && at(end_seq)) {
        advance_to(i_ + 2);
        out_.push_back(Token{close == '}' ? TokKind::VarEnd : TokKind::BlockEnd, "", 0, 0, p});
        return;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i_;
        while (j < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[j])) || src_[j] == '_')) ++j;
        out_.push_back(Token{TokKind::Name, std::string(src_.substr(i_, j - i_)), 0, 0, p});
        advance_to(j);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number(p);
      } else if (c == '\'' || c == '"') {
        lex_string(p);
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                     ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
        const char* op = nullptr;
        for (const char* o : kOps)
          if (at(o)) {
            op = o;
            break;
          }
        if (!op) fail_at(p, fmt::format("unexpected character '{}' in tag", c));
        if (*op == '(' || *op == '[' || *op == '{') ++depth;
        if ((*op == ')' || *op == ']' || *op == '}') && depth > 0) --depth;
        out_.push_back(Token{TokKind::Op, op, 0, 0, p});
        advance_to(i_ + std::string_view(op).size());
      }
    }
  }

  void lex_number(Pos p) {
    size_t j = i_;
    bool is_float = false;
    auto digits = [&] {
      while (j < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[j])) || src_[j] == '_')) ++j;
    };
    digits();
    if (j + 1 < src_.size() && src_[j] == '.' && std::isdigit(static_cast<unsigned char>(src_[j + 1]))) {
      is_float = true;
      ++j;
      digits();
    }
    if (j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
      size_t k = j + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        is_float = true;
        j = k;
        digits();
      }
    }
    std::string num;
    for (char ch : src_.substr(i_, j - i_))
      if (ch != '_') num += ch;
    Token t{is_float ? TokKind::Float : TokKind::Int, num, 0, 0, p};
    try {
      if (is_float) t.fval = std::stod(num);
      else t.ival = std::stoll(num);
    } catch (const std::exception&) {
      fail_at(p, "number literal out of range: " + num);
    }
    out_.push_back(std::move(t));
    advance_to(j);
  }

  // Python string escapes, as Jinja decodes literals.
  void lex_string(Pos p) {
    char q = src_[i_];
    size_t j = i_ + 1;
    std::string s;
    while (true) {
      if (j >= src_.size()) fail_at(p, "unterminated string literal");
      char c = src_[j];
      if (c == q) break;
      if (c != '\\') {
        s += c;
        ++j;
        continue;
      }
      if (j + 1 >= src_.size()) fail_at(p, "unterminated string literal");
      char e = src_[j + 1];
      j += 2;
      auto hex = [&](int n) {
        if (j + n > src_.size()) fail_at(p, "bad escape in string literal");
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
          char h = src_[j + k];
          if (!std::isxdigit(static_cast<unsigned char>(h))) fail_at(p, "bad escape in string literal");
          v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                                         : (std::tolower(h) - 'a' + 10));
        }
        j += n;
        return v;
      };
      switch (e) {
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'r': s += '\r'; break;
        case '\\': s += '\\'; break;
        case '\'': s += '\''; break;
        case '"': s += '"'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'v': s += '\v'; break;
        case 'a': s += '\a'; break;
        case '0': s += '\0'; break;
        case '\n': break;  // line continuation
        case 'x': utf8_append(s, hex(2)); break;
        case 'u': utf8_append(s, hex(4)); break;
        case 'U': {
          uint32_t cp = hex(8);
          if (cp > 0x10FFFF) fail_at(p, "bad escape in string literal");
          utf8_append(s, cp);
          break;
        }
        default:  // unknown escapes keep the backslash, as Python does
          s += '\\';
          s += e;
      }
    }
    out_.push_back(Token{TokKind::String, std::move(s), 0, 0, p});
    advance_to(j + 1);
  }

  std::string_view src_;
  size_t i_ = 0;
  Pos pos_;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> jinja_lex(std::string_view src) { return Lexer(src).run(); }

}  // namespace lathe::jinja
