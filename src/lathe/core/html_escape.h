// HTML escaping for the reports and Jinja's escape filter: one set of characters everywhere.
//
// & < > " ' all become entities, so the result is safe in text and in attributes quoted either way
// (the reports write single-quoted SVG attributes). Only the spelling of '"' differs by caller: the
// reports write &quot;, Jinja's |e writes &#34; as markupsafe does (template output must match
// transformers' byte for byte).
#pragma once
#include <string>
#include <string_view>

namespace lathe {

enum class HtmlQuote {
  kNamed,    // " -> &quot;
  kNumeric,  // " -> &#34; (markupsafe)
};

void html_escape_append(std::string& out, std::string_view s, HtmlQuote quote = HtmlQuote::kNamed);
std::string html_escape(std::string_view s, HtmlQuote quote = HtmlQuote::kNamed);

}  // namespace lathe
