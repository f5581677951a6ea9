// core/html_escape.h: the five characters every report and Jinja's |e escape, and the one spelling
// that differs (Jinja writes '"' as &#34;, as markupsafe does).
#include "lathe/core/html_escape.h"

#include <gtest/gtest.h>

namespace {

TEST(HtmlEscape, EscapesTheFiveCharacters) {
  EXPECT_EQ(lathe::html_escape("a<b>&\"'c"), "a&lt;b&gt;&amp;&quot;&#39;c");
  EXPECT_EQ(lathe::html_escape("a<b>&\"'c", lathe::HtmlQuote::kNumeric), "a&lt;b&gt;&amp;&#34;&#39;c");
  EXPECT_EQ(lathe::html_escape(""), "");
  // Everything else, multi-byte UTF-8 and NUL included, passes through unchanged.
  const std::string plain = std::string("\xEA\xB0\x80 =;/\\ \n") + '\0' + "x";
  EXPECT_EQ(lathe::html_escape(plain), plain);
  // Escaping is not idempotent by design: an entity in the input is text and stays visible.
  EXPECT_EQ(lathe::html_escape("&amp;"), "&amp;amp;");
}

TEST(HtmlEscape, AppendKeepsWhatIsThere) {
  std::string out = "<p>";
  lathe::html_escape_append(out, "x<y");
  EXPECT_EQ(out, "<p>x&lt;y");
}

}  // namespace
