// The Jinja subset construct by construct (jinja_ast.h / jinja_eval.h), with Python Jinja2's output
// as transformers renders it (trim_blocks, lstrip_blocks), and error positions for what we refuse.
#include "lathe/core/error.h"
#include "lathe/chat/jinja_eval.h"
#include "test_util.h"

namespace jj = lathe::jinja;

namespace {

std::string render(const std::string& src, const std::string& vars_json = "{}") {
  auto tpl = jj::jinja_parse(src);
  jj::Dict g;
  auto vars = nlohmann::ordered_json::parse(vars_json);
  for (auto it = vars.begin(); it != vars.end(); ++it) g.emplace_back(it.key(), jj::Value::from_json(it.value()));
  jj::RenderOptions o;
  o.now = 1735776000;  // 2025-01-02 00:00:00 UTC
  return jj::jinja_render(*tpl, g, o).out.s;
}

std::string error_of(const std::string& src, const std::string& vars_json = "{}", size_t max_steps = 0) {
  try {
    if (max_steps) {
      jj::RenderOptions o;
      o.limits.max_steps = max_steps;
      jj::jinja_render(*jj::jinja_parse(src), {}, o);
    }
    render(src, vars_json);
  } catch (const lathe::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(JinjaWhitespace, TrimBlocksLstripBlocksAndModifiers) {
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(render("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(render("x {#- note -#} y"), "xy");
  EXPECT_EQ(render("a\n  {%+ if true %}b{% endif +%}\nc"), "a\n  b\nc");
  EXPECT_EQ(render("line\n"), "line");  // one trailing newline dropped, as Jinja does
  EXPECT_EQ(render("{{ 'x' }}\n{{ 'y' }}"), "x\ny");  // trim_blocks leaves {{ }} alone
}

TEST(JinjaExpressions, LiteralsOperatorsAndPrinting) {
  EXPECT_EQ(render("{{ 'a\\n\\'b\\u00e9' }}"), "a\n'bé");
  EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 10 / 4 }}"),
            "7 3 -4 1 2 1024 2.5");
  EXPECT_EQ(render("{{ 1.0 }} {{ none }} {{ True }} {{ [1, 'a', none] }} {{ {'k': 'v'} }}"),
            "1.0 None True [1, 'a', None] {'k': 'v'}");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ [1] + [2] }}"), "a1None abab [1, 2]");
  EXPECT_EQ(render("{{ 1 < 2 and not 2 < 1 }} {{ 0 or 'x' }} {{ 'b' in 'abc' }} {{ 3 not in [1] }}"), "True x True True");
  EXPECT_EQ(render("{{ 'y' if x else 'n' }}{{ 'z' if not x }}", R"({"x": 0})"), "nz");
  EXPECT_EQ(render("{{ m['a'].b }} {{ m.a['b'] }} {{ l[-1] }} {{ l[1:] }} {{ l[::-1] }} {{ 'héllo'[1:3] }}",
                   R"({"m": {"a": {"b": 5}}, "l": [1, 2, 3]})"),
            "5 5 3 [2, 3] [3, 2, 1] él");
  EXPECT_EQ(render("{{ messages|length - 1 }}", R"({"messages": [1, 2]})"), "1");
}

TEST(JinjaExpressions, UndefinedIsLenient) {
  EXPECT_EQ(render("[{{ nope }}][{{ nope.attr.deeper }}][{{ nope['k'] }}]"), "[][][]");
  EXPECT_EQ(render("{{ nope is defined }} {{ nope is undefined }} {{ nope | default('d') }} {{ '' | default('e', true) }}"),
            "False True d e");
  EXPECT_EQ(render("{% for x in nope %}x{% else %}empty{% endfor %}"), "empty");
  // Membership in an undefined value is false, as in Jinja2 (SmolLM3 without a system message).
  EXPECT_EQ(render("{{ 'a' in nope }} {{ 'a' not in nope }} {{ 'a' is in nope }}"), "False True False");
  // What a loop iteration wrote before `continue` stays in the output (EXAONE 4.0's system turn).
  EXPECT_EQ(render("{% for x in xs %}<{{ x }}{% if x == 1 %}>{% continue %}{% endif %}.{% endfor %}",
                   R"({"xs": [1, 2]})"),
            "<1><2.");
}

TEST(JinjaStatements, ForLoopVariablesFilterElseUnpackBreakContinue) {
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
                   "{{ loop.length }}{{ loop.revindex }};{% endfor %}",
                   R"({"xs": ["a", "b"]})"),
            "10TrueFalse22;21FalseTrue21;");
  EXPECT_EQ(render("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}", R"({"xs": [1, 2, 3]})"), "2232");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.previtem }}>{{ loop.nextitem }} {% endfor %}", R"({"xs": [1, 2]})"),
            ">2 1> ");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}", R"({"d": {"z": 1, "a": 2}})"), "z=1,a=2,");
  EXPECT_EQ(render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}"
                   "{% endif %}{{ i }}{% endfor %}"),
            "013");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}none{% endfor %}"), "none");
}

TEST(JinjaStatements, SetScopingNamespaceMacroBlockSet) {
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"),
            "4");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                   "{{ greet('A') }} {{ greet('B', punct='?') }}"),
            "Hi A! Hi B?");
  EXPECT_EQ(render("{% set body %}x{{ 1 + 1 }}{% endset %}[{{ body }}]"), "[x2]");
  EXPECT_EQ(render("{% if a %}A{% elif b %}B{% else %}C{% endif %}", R"({"a": false, "b": true})"), "B");
  EXPECT_EQ(render("{% set l = [] %}{% set _ = l.append(3) %}{{ l }}"), "[3]");
  EXPECT_EQ(render("{% generation %}g{% endgeneration %}"), "g");
}

TEST(JinjaBuiltins, Filters) {
  EXPECT_EQ(render("{{ '  x  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello world' | title }}|"
                   "{{ 'hELLO' | capitalize }}|{{ [1, 2] | length }}|{{ 'héllo' | count }}"),
            "x|AB|ab|Hello World|Hello|2|5");
  EXPECT_EQ(render("{{ d | tojson }}|{{ 'é\"' | tojson }}|{{ d | tojson(indent=2) }}",
                   R"({"d": {"b": [1, true, null], "a": 1.5}})"),
            "{\"b\": [1, true, null], \"a\": 1.5}|\"é\\\"\"|{\n  \"b\": [\n    1,\n    true,\n    null\n  ],\n  \"a\": 1.5\n}");
  EXPECT_EQ(render("{{ xs | first }}{{ xs | last }}{{ xs | join('-') }}{{ xs | reverse | join }}{{ xs | unique | list | length }}",
                   R"({"xs": ["a", "b", "a"]})"),
            "aaa-b-aaba2");
  EXPECT_EQ(render("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='c') | join(',') }}|"
                   "{{ ms | rejectattr('role', 'equalto', 'user') | list | length }}|{{ ms | map(attribute='c') | map('upper') | join }}",
                   R"({"ms": [{"role": "user", "c": "a"}, {"role": "bot", "c": "b"}, {"role": "user", "c": "c"}]})"),
            "a,c|1|ABC");
  EXPECT_EQ(render("{{ 'aXbX' | replace('X', '-') }} {{ '3' | int + 1 }} {{ '2.5' | float }} {{ 2.567 | round(2) }} "
                   "{{ 1 | string ~ 'x' }} {{ 'a\\nb' | indent(2) }} {{ d | items | list }}",
                   R"({"d": {"k": 1}})"),
            "a-b- 4 2.5 2.57 1x a\n  b [['k', 1]]");
}

TEST(JinjaBuiltins, TestsMethodsAndGlobals) {
  EXPECT_EQ(render("{{ 's' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 1 is number }}{{ [] is sequence }}"
                   "{{ none is none }}{{ true is true }}{{ false is false }}{{ 4 is divisibleby 2 }}{{ 3 is odd }}"),
            "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(render("{{ ' x '.strip() }}|{{ 'xxa'.lstrip('x') }}|{{ 'a\\n'.rstrip() }}|{{ 'a b  c'.split() }}|"
                   "{{ 'a</t>b'.split('</t>')[-1] }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}|"
                   "{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'a-b'.replace('-', '+') }}|{{ \"it's x\".title() }}|"
                   "{{ '{} and {name}'.format(1, name='n') }}"),
            "x|a|a|['a', 'b', 'c']|b|TrueTrue|ABab|a+b|It'S X|1 and n");
  EXPECT_EQ(render("{{ d.get('a') }} {{ d.get('z', 0) }} {{ d.keys() | list }} {{ d.values() | list }}",
                   R"({"d": {"a": 1}})"),
            "1 0 ['a'] [1]");
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}"), "02 Jan 2025");
  EXPECT_EQ(render("{{ strftime_now is defined }} {{ raise_exception is defined }}"), "True True");
  EXPECT_NE(error_of("{{ raise_exception('Roles must alternate') }}").find("raise_exception: Roles must alternate"),
            std::string::npos);
}

TEST(JinjaErrors, UnsupportedSyntaxNamesThePosition) {
  EXPECT_EQ(error_of("ab\n  {% include 'x' %}"), "[chat-template] line 2 col 6: unsupported statement 'include'");
  EXPECT_EQ(error_of("{{ x | nosuchfilter }}"), "[chat-template] line 1 col 6: unsupported filter 'nosuchfilter'");
  EXPECT_EQ(error_of("{{ x is nosuchtest }}"), "[chat-template] line 1 col 6: unsupported test 'nosuchtest'");
  EXPECT_NE(error_of("{% if x %}never closed").find("line 1 col 23: unexpected end of template"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 < 2 < 3 }}").find("unsupported: chained comparison"), std::string::npos);
  EXPECT_NE(error_of("{{ '%s' % 1 }}").find("unsupported: printf-style"), std::string::npos);
  EXPECT_NE(error_of("{{ 'unterminated }}").find("line 1 col 4: unterminated string literal"), std::string::npos);
  EXPECT_NE(error_of("{% for x in xs recursive %}{% endfor %}").find("recursive"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
  EXPECT_NE(error_of("{% break %}").find("outside a for loop"), std::string::npos);
}

TEST(JinjaLimits, RunawayTemplatesStop) {
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").find("nested deeper"), std::string::npos);
  EXPECT_NE(error_of("{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}", "{}", 100000)
                .find("evaluation steps"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000000 }}").find("exceeds the limit"), std::string::npos);
  // Empty operands repeat to nothing at once (the fuzzer's ''*4e18 spun for minutes); a size product that
  // overflows 64 bits is over the limit, not wrapped to a small number.
  EXPECT_EQ(render("[{{ 4111111111111111111 * '' }}][{{ ([] * 4111111111111111111) | length }}]"), "[][0]");
  EXPECT_NE(error_of("{{ 'xxxxxxxx' * 4611686018427387905 }}").find("exceeds the limit"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").find("nested too deeply"), std::string::npos);
}

TEST(JinjaProvenance, ContentOriginsSurviveSlicingAndConcat) {
  auto tpl = jj::jinja_parse("<{{ m.content | trim }}|{{ m.content.split('/')[1] ~ '!' }}|{{ m.content | upper }}>");
  jj::Dict g{{"m", jj::Value::dict({{"content", jj::Value::from_json(" a/b ", 7)}})}};
  auto r = jj::jinja_render(*tpl, g);
  EXPECT_EQ(r.out.s, "<a/b|b !| A/B >");
  ASSERT_EQ(r.out.origins.size(), 2u);  // upper() drops provenance
  EXPECT_EQ(r.out.origins[0].pos, 1u);
  EXPECT_EQ(r.out.origins[0].len, 3u);
  EXPECT_EQ(r.out.origins[0].src_pos, 1u);
  EXPECT_EQ(r.out.origins[1].pos, 5u);
  EXPECT_EQ(r.out.origins[1].len, 2u);
  EXPECT_EQ(r.out.origins[1].source, 7);
}
