// Recursive-descent parser for the Jinja subset. Operator precedence follows Jinja2's parser, lowest
// first: ternary `if/else`, `or`, `and`, `not`, comparisons (incl. `in`, `not in`), `+ -`, `~`,
// `* / // %`, `**`, unary `- +`, then postfix (`.attr`, `[item]`, `[a:b:c]`, call) with filters `|f`
// and tests `is t` binding tighter than any binary operator (`messages|length - 1` is
// `(messages|length) - 1`).
#include "lathe/core/error.h"
#include "lathe/chat/jinja_ast.h"

namespace lathe::jinja {
namespace {

// Deep nesting would overflow the C++ stack on hostile input (the fuzz target feeds arbitrary bytes).
constexpr int kMaxDepth = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  std::shared_ptr<const Template> run() {
    auto tpl = std::make_shared<Template>();
    std::string stop;
    tpl->body = parse_body({}, &stop);
    return tpl;
  }

 private:
  const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() {
    const Token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).kind == TokKind::Op && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).kind == TokKind::Name && peek(k).text == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) fail_at(peek().pos, fmt::format("expected '{}', got {}", op, describe(peek())));
  }
  std::string expect_name() {
    if (peek().kind != TokKind::Name) fail_at(peek().pos, "expected a name, got " + describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != TokKind::BlockEnd) fail_at(peek().pos, "expected '%}', got " + describe(peek()));
    next();
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TokKind::End: return "end of template";
      case TokKind::BlockEnd: return "'%}'";
      case TokKind::VarEnd: return "'}}'";
      case TokKind::Text: return "text";
      default: return "'" + t.text + "'";
    }
  }

  struct DepthGuard {
    int& d;
    DepthGuard(int& depth, Pos pos) : d(depth) {
      if (++d > kMaxDepth) fail_at(pos, "template nested too deeply");
    }
    ~DepthGuard() { --d; }
  };

  // Statements until one of `stops` (a block keyword) is next; its name goes to *stop, the keyword
  // itself is consumed but not the rest of that tag.
  Body parse_body(std::initializer_list<const char*> stops, std::string* stop) {
    DepthGuard g(depth_, peek().pos);
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.kind == TokKind::End) {
        if (stops.size() > 0)
          fail_at(t.pos, fmt::format("unexpected end of template, expected '{{% {} %}}'", *stops.begin()));
        *stop = "";
        return body;
      }
      if (t.kind == TokKind::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->pos = t.pos;
        s->text = t.text;
        next();
        body.push_back(std::move(s));
      } else if (t.kind == TokKind::VarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->pos = next().pos;
        s->expr = parse_expr();
        if (peek().kind != TokKind::VarEnd) fail_at(peek().pos, "expected '}}', got " + describe(peek()));
        next();
        body.push_back(std::move(s));
      } else if (t.kind == TokKind::BlockBegin) {
        next();
        const Token& kw = peek();
        if (kw.kind != TokKind::Name) fail_at(kw.pos, "expected a statement name, got " + describe(kw));
        for (const char* s : stops)
          if (kw.text == s) {
            *stop = next().text;
            return body;
          }
        body.push_back(parse_statement());
      } else {
        fail_at(t.pos, "unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& kw = next();
    auto s = std::make_unique<Stmt>();
    s->pos = kw.pos;
    std::string stop;
    if (kw.text == "if") {
      parse_if_rest(*s);
    } else if (kw.text == "for") {
      s->kind = Stmt::Kind::For;
      s->targets.push_back(expect_name());
      while (accept_op(",")) s->targets.push_back(expect_name());
      if (!accept_name("in")) fail_at(peek().pos, "expected 'in' in for loop");
      s->expr = parse_or();  // Jinja parses the iterable without the ternary, so `if` starts a filter
      if (accept_name("if")) s->cond = parse_expr();
      if (is_name("recursive")) fail_at(peek().pos, "unsupported: recursive for loops");
      expect_block_end();
      s->body = parse_body({"endfor", "else"}, &stop);
      if (stop == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"}, &stop);
      }
      expect_block_end();
    } else if (kw.text == "set") {
      s->kind = Stmt::Kind::Set;
      s->targets.push_back(expect_name());
      if (accept_op(".")) {
        s->attr = expect_name();
      } else {
        while (accept_op(",")) s->targets.push_back(expect_name());
      }
      if (peek().kind == TokKind::BlockEnd && s->targets.size() == 1 && s->attr.empty()) {
        next();
        s->kind = Stmt::Kind::SetBlock;
        s->body = parse_body({"endset"}, &stop);
        expect_block_end();
      } else {
        expect_op("=");
        s->expr = parse_tuple_or_expr();
        expect_block_end();
      }
    } else if (kw.text == "macro") {
      s->kind = Stmt::Kind::Macro;
      s->name = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        std::string p = expect_name();
        ExprPtr def;
        if (accept_op("=")) def = parse_expr();
        s->params.emplace_back(p, std::move(def));
        if (!accept_op(",")) break;
      }
      expect_op(")");
      expect_block_end();
      s->body = parse_body({"endmacro"}, &stop);
      if (peek().kind == TokKind::Name) next();  // {% endmacro name %}
      expect_block_end();
    } else if (kw.text == "break" || kw.text == "continue") {
      s->kind = kw.text == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      expect_block_end();
    } else if (kw.text == "generation") {
      s->kind = Stmt::Kind::Generation;
      expect_block_end();
      s->body = parse_body({"endgeneration"}, &stop);
      expect_block_end();
    } else {
      fail_at(kw.pos, fmt::format("unsupported statement '{}'", kw.text));
    }
    return s;
  }

  // After `if` (or `elif`): condition, body, then elif/else chains.
  void parse_if_rest(Stmt& s) {
    s.kind = Stmt::Kind::If;
    s.expr = parse_expr();
    expect_block_end();
    std::string stop;
    s.body = parse_body({"endif", "elif", "else"}, &stop);
    if (stop == "elif") {
      auto e = std::make_unique<Stmt>();
      e->pos = peek().pos;
      parse_if_rest(*e);  // consumes through endif
      s.else_body.push_back(std::move(e));
      return;
    }
    if (stop == "else") {
      expect_block_end();
      s.else_body = parse_body({"endif"}, &stop);
    }
    expect_block_end();
  }

  ExprPtr make(Expr::Kind k, Pos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->pos = pos;
    return e;
  }
  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b, Pos pos) {
    auto e = make(Expr::Kind::Binary, pos);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  // `set a, b = 1, 2` and `{{ 1, 2 }}` build tuples without parentheses.
  ExprPtr parse_tuple_or_expr() {
    Pos pos = peek().pos;
    ExprPtr first = parse_expr();
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::Tuple, pos);
    t->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (peek().kind == TokKind::BlockEnd || peek().kind == TokKind::VarEnd) break;
      t->args.push_back(parse_expr());
    }
    return t;
  }

  ExprPtr parse_expr() {
    DepthGuard g(depth_, peek().pos);
    Pos pos = peek().pos;
    ExprPtr e = parse_or();
    while (is_name("if")) {
      next();
      auto c = make(Expr::Kind::Cond, pos);
      c->args.push_back(std::move(e));
      c->args.push_back(parse_or());
      c->args.push_back(accept_name("else") ? parse_expr() : nullptr);
      e = std::move(c);
    }
    return e;
  }
  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      Pos p = next().pos;
      e = binary("or", std::move(e), parse_and(), p);
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      Pos p = next().pos;
      e = binary("and", std::move(e), parse_not(), p);
    }
    return e;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(depth_, peek().pos);
      auto e = make(Expr::Kind::Unary, next().pos);
      e->name = "not";
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  // Consumes a comparison operator if one is next.
  bool accept_compare_op(std::string* op) {
    static const char* kCmp[] = {"==", "!=", "<", ">", "<=", ">="};
    for (const char* c : kCmp)
      if (is_op(c)) {
        *op = next().text;
        return true;
      }
    if (is_name("in")) {
      next();
      *op = "in";
      return true;
    }
    if (is_name("not") && is_name("in", 1)) {
      next();
      next();
      *op = "not in";
      return true;
    }
    return false;
  }
  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    Pos pos = peek().pos;
    std::string op;
    if (!accept_compare_op(&op)) return e;
    e = binary(op, std::move(e), parse_math1(), pos);
    // Python's a < b < c chains never appear in chat templates; refuse rather than misread them.
    if (accept_compare_op(&op)) fail_at(pos, "unsupported: chained comparison");
    return e;
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      e = binary(t.text, std::move(e), parse_concat(), t.pos);
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      Pos p = next().pos;
      e = binary("~", std::move(e), parse_math2(), p);
    }
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      e = binary(t.text, std::move(e), parse_pow(), t.pos);
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary();
    while (is_op("**")) {
      Pos p = next().pos;
      e = binary("**", std::move(e), parse_unary(), p);
    }
    return e;
  }
  ExprPtr parse_unary() {
    DepthGuard g(depth_, peek().pos);
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      auto e = make(Expr::Kind::Unary, t.pos);
      e->name = t.text;
      e->args.push_back(parse_unary());
      return parse_filters(std::move(e));
    }
    return parse_filters(parse_postfix(parse_primary()));
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    Pos pos = t.pos;
    switch (t.kind) {
      case TokKind::String: {
        // Adjacent literals concatenate, as in Python.
        std::string s = next().text;
        while (peek().kind == TokKind::String) s += next().text;
        auto e = make(Expr::Kind::Literal, pos);
        e->lit = Value::string(std::move(s));
        return e;
      }
      case TokKind::Int: {
        auto e = make(Expr::Kind::Literal, pos);
        e->lit = Value::integer(next().ival);
        return e;
      }
      case TokKind::Float: {
        auto e = make(Expr::Kind::Literal, pos);
        e->lit = Value::number(next().fval);
        return e;
      }
      case TokKind::Name: {
        std::string n = next().text;
        auto e = make(Expr::Kind::Literal, pos);
        if (n == "true" || n == "True") e->lit = Value::boolean(true);
        else if (n == "false" || n == "False") e->lit = Value::boolean(false);
        else if (n == "none" || n == "None") e->lit = Value::none();
        else {
          e->kind = Expr::Kind::Name;
          e->name = n;
        }
        return e;
      }
      case TokKind::Op:
        if (t.text == "(") {
          next();
          if (accept_op(")")) return make(Expr::Kind::Tuple, pos);
          ExprPtr first = parse_expr();
          if (accept_op(")")) return first;
          auto tup = make(Expr::Kind::Tuple, pos);
          tup->args.push_back(std::move(first));
          while (accept_op(",")) {
            if (is_op(")")) break;
            tup->args.push_back(parse_expr());
          }
          expect_op(")");
          return tup;
        }
        if (t.text == "[") {
          next();
          auto l = make(Expr::Kind::List, pos);
          while (!is_op("]")) {
            l->args.push_back(parse_expr());
            if (!accept_op(",")) break;
          }
          expect_op("]");
          return l;
        }
        if (t.text == "{") {
          next();
          auto d = make(Expr::Kind::Dict, pos);
          while (!is_op("}")) {
            d->args.push_back(parse_expr());
            expect_op(":");
            d->args.push_back(parse_expr());
            if (!accept_op(",")) break;
          }
          expect_op("}");
          return d;
        }
        break;
      default: break;
    }
    fail_at(pos, "unexpected " + describe(t) + " in expression");
  }

  void parse_call_args(Expr& call) {
    // Positional then keyword arguments: f(a, b, key=value).
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail_at(peek().pos, "unsupported: *args / **kwargs in a call");
      if (peek().kind == TokKind::Name && is_op("=", 1)) {
        std::string k = next().text;
        next();
        call.kwargs.emplace_back(k, parse_expr());
      } else {
        call.args.push_back(parse_expr());
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        Pos p = next().pos;
        auto a = make(Expr::Kind::Attr, p);
        if (peek().kind == TokKind::Int) {  // foo.0 is foo[0] in Jinja
          a->kind = Expr::Kind::Item;
          a->args.push_back(std::move(e));
          auto idx = make(Expr::Kind::Literal, peek().pos);
          idx->lit = Value::integer(next().ival);
          a->args.push_back(std::move(idx));
        } else {
          a->name = expect_name();
          a->args.push_back(std::move(e));
        }
        e = std::move(a);
      } else if (is_op("[")) {
        Pos p = next().pos;
        ExprPtr parts[3];
        bool slice = false;
        int k = 0;
        while (true) {
          if (!is_op(":") && !is_op("]")) parts[k] = parse_expr();
          if (accept_op(":")) {
            slice = true;
            if (++k > 2) fail_at(p, "bad slice");
            continue;
          }
          break;
        }
        expect_op("]");
        auto it = make(slice ? Expr::Kind::Slice : Expr::Kind::Item, p);
        it->args.push_back(std::move(e));
        if (!slice && !parts[0]) fail_at(p, "empty subscript");
        it->args.push_back(std::move(parts[0]));
        if (slice) {
          it->args.push_back(std::move(parts[1]));
          it->args.push_back(std::move(parts[2]));
        }
        e = std::move(it);
      } else if (is_op("(")) {
        Pos p = next().pos;
        auto c = make(Expr::Kind::Call, p);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filters(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        Pos p = next().pos;
        auto f = make(Expr::Kind::Filter, p);
        f->name = expect_name();
        while (accept_op(".")) { f->name += '.'; f->name += expect_name(); }
        f->args.push_back(std::move(e));
        if (accept_op("(")) parse_call_args(*f);
        e = parse_postfix(std::move(f));
      } else if (is_name("is")) {
        Pos p = next().pos;
        auto t = make(Expr::Kind::Test, p);
        t->negated = accept_name("not");
        // `is none` / `is true` arrive as literal keywords.
        if (peek().kind != TokKind::Name) fail_at(peek().pos, "expected a test name, got " + describe(peek()));
        t->name = next().text;
        if (t->name == "None") t->name = "none";
        if (t->name == "True") t->name = "true";
        if (t->name == "False") t->name = "false";
        t->args.push_back(std::move(e));
        if (accept_op("(")) {
          parse_call_args(*t);
        } else if (takes_argument(t->name) && peek().kind != TokKind::BlockEnd &&
                   peek().kind != TokKind::VarEnd && peek().kind != TokKind::End) {
          // `x is divisibleby 3`, `x is sameas y`: one argument without parentheses.
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  static bool takes_argument(const std::string& test) {
    static const char* kArgTests[] = {"divisibleby", "sameas", "equalto", "eq", "ne", "lt", "gt", "le",
                                      "ge", "lessthan", "greaterthan", "in", "=="};
    for (const char* a : kArgTests)
      if (test == a) return true;
    return false;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

std::shared_ptr<const Template> jinja_parse(std::string_view src) { return Parser(jinja_lex(src)).run(); }

}  // namespace lathe::jinja
