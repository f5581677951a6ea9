// Syntax tree and tokens of the Jinja subset (see jinja_parser.h). One node struct per family with a
// kind tag keeps the parser and evaluator short; fields unused by a kind stay empty.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lathe/chat/jinja_value.h"

namespace lathe::jinja {

struct Pos {
  int line = 1, col = 1;
};

// Throws lathe::Error "[chat-template] line L col C: <msg>".
[[noreturn]] void fail_at(Pos pos, const std::string& msg);

enum class TokKind { Text, BlockBegin, BlockEnd, VarBegin, VarEnd, Name, String, Int, Float, Op, End };

struct Token {
  TokKind kind = TokKind::End;
  std::string text;  // Text body, name, op symbol, or decoded string literal
  int64_t ival = 0;
  double fval = 0;
  Pos pos;
};

// Splits a template into tokens, applying whitespace control as transformers compiles chat templates:
// trim_blocks and lstrip_blocks on, a single trailing newline of the source dropped, and the
// '-' / '+' tag modifiers honoured. Comments are dropped here.
std::vector<Token> jinja_lex(std::string_view src);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,  // lit
    Name,     // name
    Attr,     // args[0].name
    Item,     // args[0][args[1]]
    Slice,    // args[0][args[1]:args[2]:args[3]], missing parts null
    Call,     // args[0](args[1..], kwargs)
    Filter,   // args[0] | name(args[1..], kwargs)
    Test,     // args[0] is [not] name(args[1..])
    Unary,    // name in {"-", "+", "not"} applied to args[0]
    Binary,   // args[0] name args[1]; name is an operator, "and", "or", "in", "not in"
    Cond,     // args[0] if args[1] else args[2] (args[2] may be null)
    List,     // [args...]
    Tuple,    // (args...)
    Dict,     // {args[0]: args[1], args[2]: args[3], ...}
  };
  Kind kind = Kind::Literal;
  Pos pos;
  Value lit;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    Text,        // text
    Output,      // {{ expr }}
    If,          // if expr: body else else_body (elif nests an If in else_body)
    For,         // for targets in expr [if cond]: body else else_body
    Set,         // set targets = expr, or set targets[0].attr = expr
    SetBlock,    // set targets[0] %} body {% endset
    Macro,       // macro name(params) body
    Break,
    Continue,
    Generation,  // generation %} body {% endgeneration: rendered, its output span recorded
  };
  Kind kind = Kind::Text;
  Pos pos;
  std::string text;
  std::string name;  // macro name
  std::string attr;  // Set on a namespace attribute
  std::vector<std::string> targets;
  ExprPtr expr, cond;
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters; default may be null
};

struct Template {
  Body body;
};

// Parses a template; unsupported syntax throws naming line and column.
std::shared_ptr<const Template> jinja_parse(std::string_view src);

}  // namespace lathe::jinja
