#include "lathe/core/html_escape.h"

namespace lathe {

void html_escape_append(std::string& out, std::string_view s, HtmlQuote quote) {
  out.reserve(out.size() + s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += quote == HtmlQuote::kNumeric ? "&#34;" : "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
}

std::string html_escape(std::string_view s, HtmlQuote quote) {
  std::string out;
  html_escape_append(out, s, quote);
  return out;
}

}  // namespace lathe
