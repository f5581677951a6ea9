// report.html: written for QA people and planners, not engineers — the questions first (did tuning
// beat prompting, what did it break, did the gate pass), then the numbers, then every case side by
// side. One file, inline CSS and SVG, no scripts, so it opens offline and can be attached to a ticket.
#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "lathe/eval/report.h"
#include "lathe/eval/text_metrics.h"

namespace lathe::eval {

using ojson = nlohmann::ordered_json;

namespace {

std::string esc(const ojson& j) { return html_escape(j.is_string() ? j.get<std::string>() : j.dump()); }

std::string pct(double x) { return fmt::format("{:.1f}%", 100 * x); }

std::string num(const ojson& j, const char* fmtstr = "{:.3f}") {
  if (j.is_null()) return "&mdash;";
  return fmt::format(fmt::runtime(fmtstr), j.get<double>());
}

const char* kCss = R"(
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans KR","Malgun Gothic",sans-serif;margin:24px;color:#1d2330;max-width:1400px}
h1{font-size:1.6em;margin-bottom:4px} h2{margin-top:32px;border-bottom:2px solid #e3e7ee;padding-bottom:4px}
.sub{color:#5b6475} table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #d6dbe4;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#f3f5f9} td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#116b2e;font-weight:600} .fail{color:#a3122a;font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.85em;margin-right:4px}
.b-pass{background:#dff3e4;color:#116b2e} .b-fail{background:#fbe1e5;color:#a3122a} .b-warn{background:#fff1cc;color:#7a5600} .b-tag{background:#e8ecf4;color:#334}
.gate{padding:12px 16px;border-radius:6px;margin:12px 0} .gate.ok{background:#dff3e4} .gate.bad{background:#fbe1e5} .gate.decision{background:#e8eefb}
.case{border:1px solid #d6dbe4;border-radius:6px;margin:16px 0;padding:12px} .case h3{margin:0 0 6px 0}
.grid{display:grid;gap:10px;grid-template-columns:repeat(auto-fit,minmax(280px,1fr))}
.col{border:1px solid #e3e7ee;border-radius:4px;padding:8px;background:#fbfcfe}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fb;padding:8px;border-radius:4px;margin:4px 0;font-size:.92em}
ins{background:#c9f0d3;text-decoration:none} del{background:#f9c9d0}
ul.as{margin:4px 0;padding-left:18px} .small{font-size:.85em;color:#5b6475}
svg text{font-size:11px;fill:#334}
)";

// A line chart: x = step, one polyline per series, axes with min/max labels.
std::string svg_plot(const std::string& title, const std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>>& series,
                     const std::vector<std::string>& colors, bool log_y = false) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (auto& [n, pts] : series)
    for (auto& [x, y] : pts) {
      if (!std::isfinite(y) || (log_y && y <= 0)) continue;
      double yy = log_y ? std::log10(y) : y;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, yy), y1 = std::max(y1, yy);
    }
  if (x0 > x1) return "";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1, y0 = y0 - 1;
  const double W = 460, H = 220, L = 60, R = 12, T = 24, B = 32;
  auto sx = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto sy = [&](double y) { return T + (1 - ((log_y ? std::log10(y) : y) - y0) / (y1 - y0)) * (H - T - B); };
  auto ylab = [&](double v) { return log_y ? fmt::format("{:.2e}", std::pow(10, v)) : fmt::format("{:.3g}", v); };
  std::string s = fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' role='img' aria-label='{}'>", W, H,
                              html_escape(title));
  s += fmt::format("<text x='{}' y='14' font-weight='600'>{}</text>", L, html_escape(title));
  s += fmt::format("<line x1='{0}' y1='{1}' x2='{0}' y2='{2}' stroke='#889'/><line x1='{0}' y1='{2}' x2='{3}' y2='{2}' stroke='#889'/>",
                   L, T, H - B, W - R);
  s += fmt::format("<text x='{}' y='{}' text-anchor='end'>{}</text>", L - 4, T + 4, ylab(y1));
  s += fmt::format("<text x='{}' y='{}' text-anchor='end'>{}</text>", L - 4, H - B, ylab(y0));
  s += fmt::format("<text x='{}' y='{}'>{}</text>", L, H - B + 14, fmt::format("{:g}", x0));
  s += fmt::format("<text x='{}' y='{}' text-anchor='end'>step {}</text>", W - R, H - B + 14, fmt::format("{:g}", x1));
  for (size_t k = 0; k < series.size(); k++) {
    const auto& [name, pts] = series[k];
    std::string path;
    int n = 0;
    for (auto& [x, y] : pts) {
      if (!std::isfinite(y) || (log_y && y <= 0)) continue;
      path += fmt::format("{:.1f},{:.1f} ", sx(x), sy(y));
      n++;
    }
    const std::string& col = colors[k % colors.size()];
    if (n == 1)
      s += fmt::format("<circle cx='{}' cy='{}' r='3' fill='{}'/>", path.substr(0, path.find(',')),
                       path.substr(path.find(',') + 1, path.find(' ') - path.find(',') - 1), col);
    else
      s += fmt::format("<polyline fill='none' stroke='{}' stroke-width='1.5' points='{}'/>", col, path);
    s += fmt::format("<text x='{}' y='{}' fill='{}'>{}</text>", L + 8 + 110 * double(k), H - 4, col, html_escape(name));
  }
  return s + "</svg>";
}

std::string_view trim_ws(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string diff_html(const std::string& expected, const std::string& actual) {
  // Word diff, except for short Korean/CJK answers: there one changed particle (은 -> 이) would
  // mark the whole word, so the diff goes by character. Surrounding whitespace is not a difference
  // worth showing (assertions trim it too).
  auto cps = utf8_code_points(expected);
  bool cjk = std::any_of(cps.begin(), cps.end(), [](char32_t c) { return c >= 0x1100; });
  bool chars = cjk && std::count(expected.begin(), expected.end(), ' ') < 3;
  std::string o;
  for (auto& d : text_diff(trim_ws(expected), trim_ws(actual), chars)) {
    if (d.kind == DiffOp::Equal)
      o += html_escape(d.text);
    else if (d.kind == DiffOp::Delete)
      o += "<del>" + html_escape(d.text) + "</del>";
    else
      o += "<ins>" + html_escape(d.text) + "</ins>";
  }
  return o;
}

}  // namespace

// The decision box: the chosen variant overall and per tag, and the cases only one approach fixes.
std::string decision_box_html(const ojson& r) {
  std::ostringstream h;
  const ojson& d = r["decision"];
  auto choice = [&](const ojson& j) {
    if (j["choice"].is_null()) return std::string("none passes") + (j.contains("best_pass_rate") ? " (best " + pct(j["best_pass_rate"].get<double>()) + ")" : "");
    return "<b>" + esc(j["choice"]) + "</b> (" + pct(j["pass_rate"].get<double>()) + ", " +
           fmt::format("{:.0f}", j["tokens_per_answer"].get<double>()) + " tokens per answer)";
  };
  h << "<div class='gate decision'><b>Tune, prompt or retrieve?</b> " << esc(d["rule"]) << ".<div>Overall: "
    << choice(d["overall"]) << "</div>";
  if (!d["per_tag"].empty()) {
    h << "<div>By tag: ";
    const char* sep = "";
    for (auto& [t, j] : d["per_tag"].items()) {
      h << sep << html_escape(t) << " &rarr; " << choice(j);
      sep = "; ";
    }
    h << "</div>";
  }
  for (const char* k : {"only_retrieval_fixes", "only_tuning_fixes"}) {
    if (d[k].empty()) continue;
    h << "<div>" << (std::string(k) == "only_retrieval_fixes" ? "Only retrieval fixes: " : "Only tuning fixes: ");
    const char* sep = "";
    for (auto& c : d[k]) {
      h << sep << "<a href='#case-" << esc(c) << "'>" << esc(c) << "</a>";
      sep = ", ";
    }
    h << "</div>";
  }
  if (d.contains("retrieval_with_adapter"))
    for (auto& a : d["retrieval_with_adapter"])
      for (const char* k : {"fixes", "breaks"}) {
        if (a[k].empty()) continue;
        h << "<div>Retrieval on top of " << esc(a["adapter"]) << " " << k << ": ";
        const char* sep = "";
        for (auto& c : a[k]) {
          h << sep << "<a href='#case-" << esc(c) << "'>" << esc(c) << "</a>";
          sep = ", ";
        }
        h << "</div>";
      }
  auto case_links = [&](const ojson& ids) {
    std::string s;
    for (auto& c : ids) s += (s.empty() ? "" : ", ") + ("<a href='#case-" + esc(c) + "'>" + esc(c) + "</a>");
    return s.empty() ? std::string("none") : s;
  };
  if (d.contains("feedback_rounds"))
    for (auto& fr : d["feedback_rounds"]) {
      h << "<div><b>" << esc(fr["variant"]) << "</b> (a round on " << esc(fr["parent"]) << ", "
        << fr["parent_passed"].get<int>() << " &rarr; " << fr["passed"].get<int>() << " passed) fixed "
        << fr["fixed"].size() << ": " << case_links(fr["fixed"]) << "; broke " << fr["broken"].size() << ": "
        << case_links(fr["broken"]);
      if (!fr["per_tag"].empty()) {
        h << "<div class='small'>By tag:";
        const char* sep = " ";
        for (auto& [t, j] : fr["per_tag"].items()) {
          h << sep << html_escape(t) << " fixed " << j["fixed"].size() << ", broke " << j["broken"].size();
          sep = "; ";
        }
        h << "</div>";
      }
      h << "</div>";
    }
  h << "<div>" << esc(d["summary"]) << "</div>";
  if (r.contains("retrieval")) {
    const ojson& rt = r["retrieval"];
    h << "<div class='small'>Retrieval: index <code>" << esc(rt["index"]) << "</code>, k = " << rt["k"].dump()
      << "; hit@k over " << rt["cases_with_key"].dump() << " cases with an answer key:";
    int j = 1;
    for (auto& x : rt["hit_at_k"]) h << " @" << j++ << " " << pct(x.get<double>());
    h << "; search " << fmt::format("{:.1f}", rt["latency_ms_p50"].get<double>()) << " ms p50.</div>";
  }
  h << "</div>";
  return h.str();
}

std::string report_html(const ojson& r) {
  std::ostringstream h;
  const ojson& suite = r["suite"];
  const ojson& vars = r["variants"];
  std::string title = suite["name"].is_string() && !suite["name"].get<std::string>().empty()
                          ? suite["name"].get<std::string>() : std::string("evaluation");
  h << "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>lathe eval: " << html_escape(title)
    << "</title><style>" << kCss << "</style></head><body>";
  h << "<h1>Evaluation report: " << html_escape(title) << "</h1>";
  h << "<div class='sub'>" << suite["cases"].get<size_t>() << " test cases &middot; model <code>"
    << esc(r["config"]["model"]) << "</code> &middot; compared against <b>" << esc(r["config"]["reference"])
    << "</b></div>";

  // The gate, first: it is what a release decision waits on.
  const ojson& gate = r["gate"];
  if (!gate["min_pass_rate"].is_null() || !gate["max_forgetting"].is_null()) {
    bool ok = gate["passed"].get<bool>();
    h << "<div class='gate " << (ok ? "ok" : "bad") << "'><b>Gate " << (ok ? "PASSED" : "FAILED") << "</b>";
    if (!gate["min_pass_rate"].is_null()) h << " &middot; minimum pass rate " << pct(gate["min_pass_rate"].get<double>());
    if (!gate["max_forgetting"].is_null()) h << " &middot; maximum forgetting " << pct(gate["max_forgetting"].get<double>());
    for (auto& f : gate["failures"]) {
      h << "<div>" << esc(f["variant"]) << ": " << esc(f["gate"]) << " is " << pct(f["value"].get<double>())
        << " (limit " << pct(f["limit"].get<double>()) << ")";
      if (!f["failing_cases"].empty()) {
        h << " &mdash; failing cases: ";
        const char* sep = "";
        for (auto& c : f["failing_cases"]) {
          h << sep << "<a href='#case-" << esc(c) << "'>" << esc(c) << "</a>";
          sep = ", ";
        }
      }
      h << "</div>";
    }
    h << "</div>";
  }

  // Tune, prompt or retrieve: the answer to the question the report exists for.
  if (r.contains("decision")) h << decision_box_html(r);

  h << "<h2>Summary</h2><p class='small'>Pass rate: share of cases whose every check passed. Score: weighted mean of "
       "check scores (0&ndash;1). Fixed / broken: cases that pass now but failed with the reference, and the "
       "reverse. Perplexity: lower is better; forgetting is how much worse the model got on general text than "
       "the base (+10% means 10% higher perplexity). Tokens per answer: prompt plus generated tokens, the "
       "cost paid on every request; latency includes retrieval for the rag variants.</p>";
  h << "<table><tr><th>Variant</th><th>Passed</th><th>Pass rate</th><th>Weighted score</th><th>Fixed</th><th>Broken</th>"
       "<th>Validation perplexity</th><th>Holdout perplexity</th><th>Forgetting</th><th>Tokens / answer</th>"
       "<th>Latency</th><th>Pass rate given a retrieval hit</th></tr>";
  for (auto& v : vars) {
    std::string kind = v["kind"] == "prompt"        ? " <span class='badge b-tag'>prompting</span>"
                       : v["kind"] == "adapter"     ? " <span class='badge b-tag'>tuned</span>"
                       : v["kind"] == "rag"         ? " <span class='badge b-tag'>retrieval</span>"
                       : v["kind"] == "adapter+rag" ? " <span class='badge b-tag'>tuned + retrieval</span>"
                                                    : "";
    h << "<tr><td>" << esc(v["name"]) << kind << "</td><td class='n'>" << v["passed"].get<int>() << " / "
      << v["cases"].get<size_t>() << "</td><td class='n'>" << pct(v["pass_rate"].get<double>()) << "</td><td class='n'>"
      << num(v["weighted_score"]) << "</td><td class='n'>" << (v["fixed_vs_reference"].is_null() ? "&mdash;" : v["fixed_vs_reference"].dump())
      << "</td><td class='n'>" << (v["broken_vs_reference"].is_null() ? "&mdash;" : v["broken_vs_reference"].dump()) << "</td>";
    for (const char* k : {"validation", "holdout"})
      h << "<td class='n'>" << (v[k].is_null() ? (v["kind"] == "prompt" ? "= base" : "&mdash;") : num(v[k]["ppl"], "{:.3f}"))
        << "</td>";
    h << "<td class='n'>" << (v["forgetting"].is_null() ? "&mdash;" : fmt::format("{:+.1f}%", 100 * v["forgetting"].get<double>()))
      << "</td>";
    h << "<td class='n'>" << fmt::format("{:.0f}", v.value("mean_prompt_tokens", 0.0) + v.value("mean_new_tokens", 0.0))
      << "</td><td class='n'>" << fmt::format("{:.0f} ms", 1e3 * v.value("mean_latency_s", 0.0)) << "</td><td class='n'>"
      << (v.contains("pass_given_hit") && !v["pass_given_hit"].is_null() ? pct(v["pass_given_hit"].get<double>()) : "&mdash;")
      << "</td></tr>";
  }
  h << "</table>";
  if (r["contaminated_cases"].get<int>() > 0)
    h << "<p><span class='badge b-warn'>contamination</span>" << r["contaminated_cases"].get<int>()
      << " case(s) have a prompt that also appears in the training data; a tuned model may pass them by "
         "memory. They are marked below.</p>";

  // Per tag.
  std::vector<std::string> tags;
  for (auto& v : vars)
    for (auto& [t, st] : v["tags"].items())
      if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
  if (!tags.empty()) {
    h << "<h2>Pass rate by tag</h2><table><tr><th>Tag</th>";
    for (auto& v : vars) h << "<th>" << esc(v["name"]) << "</th>";
    h << "</tr>";
    for (auto& t : tags) {
      h << "<tr><td>" << html_escape(t) << "</td>";
      for (auto& v : vars) {
        if (!v["tags"].contains(t)) {
          h << "<td>&mdash;</td>";
          continue;
        }
        const ojson& st = v["tags"][t];
        h << "<td class='n'>" << st["passed"].get<int>() << "/" << st["cases"].get<int>() << " ("
          << pct(st["pass_rate"].get<double>()) << ")</td>";
      }
      h << "</tr>";
    }
    h << "</table>";
  }

  // Methods side by side: what each variant cost to train against what it scored.
  if (r.contains("training_cost") && !r["training_cost"].empty()) {
    h << "<h2>Training cost by method</h2><p class='small'>From each variant's metrics.jsonl: trainable "
         "parameters (and their share of all parameters), training throughput and the training process's "
         "peak memory, measured on the machine that trained it.</p>";
    h << "<table><tr><th>Variant</th><th>Method</th><th>Trainable parameters</th><th>Share</th><th>Tokens / s</th>"
         "<th>Peak RSS</th><th>Training time</th><th>Pass rate</th></tr>";
    for (const auto& m : r["training_cost"]) {
      auto n = [&](const char* k, const char* f) {
        return m.contains(k) && m[k].is_number() ? fmt::format(fmt::runtime(f), m[k].get<double>()) : std::string("&mdash;");
      };
      h << "<tr><td>" << esc(m["variant"]) << "</td><td>" << esc(m["method"]) << "</td><td class='n'>"
        << n("trainable_params", "{:.0f}") << "</td><td class='n'>" << n("trainable_percent", "{:.3f}%")
        << "</td><td class='n'>" << n("train_tokens_per_second", "{:.0f}") << "</td><td class='n'>"
        << n("peak_rss_mib", "{:.1f} MiB") << "</td><td class='n'>" << n("train_runtime", "{:.1f} s")
        << "</td><td class='n'>" << (m.contains("pass_rate") ? pct(m["pass_rate"].get<double>()) : "&mdash;")
        << "</td></tr>";
    }
    h << "</table>";
  }

  // Training curves.
  const ojson& curves = r["training_curves"];
  if (!curves.empty()) {
    h << "<h2>Training curves</h2>";
    for (auto& [name, c] : curves.items()) {
      std::vector<std::pair<double, double>> loss, eval_loss, lr;
      for (auto& row : c["rows"]) {
        double x = row["step"].get<double>();
        if (row.contains("loss")) loss.emplace_back(x, row["loss"].get<double>());
        if (row.contains("eval_loss")) eval_loss.emplace_back(x, row["eval_loss"].get<double>());
        if (row.contains("lr")) lr.emplace_back(x, row["lr"].get<double>());
      }
      h << "<h3>" << html_escape(name) << " <span class='small'>" << esc(c["path"]) << "</span></h3>";
      if (loss.empty() && eval_loss.empty()) {
        h << "<p class='small'>no rows</p>";
        continue;
      }
      h << svg_plot("loss", {{"training loss", loss}, {"eval loss", eval_loss}}, {"#2458c6", "#d2691e"});
      if (!lr.empty()) h << svg_plot("learning rate", {{"lr", lr}}, {"#3a8a3a"});
    }
  }

  // Case by case.
  h << "<h2>Case by case</h2><p class='small'>Each column is one variant. In the diff, <del>struck</del> text is "
       "expected but missing, <ins>green</ins> text is in the output but not expected.</p>";
  for (auto& c : r["cases"]) {
    h << "<div class='case' id='case-" << esc(c["id"]) << "'><h3>" << esc(c["id"]) << " ";
    for (auto& v : vars) {
      bool p = c["results"][v["name"].get<std::string>()]["pass"].get<bool>();
      h << "<span class='badge " << (p ? "b-pass" : "b-fail") << "'>" << esc(v["name"]) << (p ? " &#10003;" : " &#10007;") << "</span>";
    }
    h << "</h3><div class='small'>" << esc(c["where"]);
    for (auto& t : c["tags"]) h << " <span class='badge b-tag'>" << esc(t) << "</span>";
    if (c["contaminated"].get<bool>())
      h << " <span class='badge b-warn'>prompt seen in training: " << esc(c["contamination_source"]) << "</span>";
    h << "</div>";
    if (!c["system"].get<std::string>().empty()) h << "<div><b>System</b><pre>" << esc(c["system"]) << "</pre></div>";
    if (c.contains("prompt"))
      h << "<div><b>Prompt</b><pre>" << esc(c["prompt"]) << "</pre></div>";
    else
      for (auto& m : c["messages"]) h << "<div><b>" << esc(m["role"]) << "</b><pre>" << esc(m["content"]) << "</pre></div>";
    if (!c["expected"].is_null()) h << "<div><b>Expected</b><pre>" << esc(c["expected"]) << "</pre></div>";
    if (c.contains("retrieval")) {
      const ojson& rt = c["retrieval"];
      h << "<details><summary class='small'>retrieved passages: "
        << (rt["has_key"].get<bool>() ? (rt["hit"].get<bool>() ? "hit at rank " + rt["hit_rank"].dump() : std::string("miss"))
                                      : std::string("no answer key"))
        << "</summary><ol>";
      for (auto& ps : rt["passages"])
        h << "<li><code>" << esc(ps["source"]) << "</code> <span class='small'>" << num(ps["score"]) << "</span><pre>"
          << esc(ps["text"]) << "</pre></li>";
      h << "</ol></details>";
    }
    h << "<div class='grid'>";
    for (auto& v : vars) {
      const ojson& res = c["results"][v["name"].get<std::string>()];
      bool p = res["pass"].get<bool>();
      h << "<div class='col'><b>" << esc(v["name"]) << "</b> <span class='" << (p ? "pass'>pass" : "fail'>fail")
        << "</span> <span class='small'>score " << num(res["score"]) << " &middot; " << res["new_tokens"].get<int>()
        << " tokens, " << esc(res["finish_reason"]) << "</span>";
      if (res.contains("overrule")) {
        const ojson& ov = res["overrule"];
        h << "<div class='small overrule'>overruled by " << esc(ov["reviewer"]) << " (assertions said "
          << (ov["assertions_pass"].get<bool>() ? "pass" : "fail") << "): " << esc(ov["reason"]) << "</div>";
      }
      h << "<pre>" << esc(res["output"]) << "</pre>";
      if (!c["expected"].is_null())
        h << "<div class='small'>diff against expected</div><pre>"
          << diff_html(c["expected"].get<std::string>(), res["output"].get<std::string>()) << "</pre>";
      h << "<ul class='as'>";
      for (auto& a : res["assertions"])
        h << "<li><span class='" << (a["pass"].get<bool>() ? "pass'>&#10003;" : "fail'>&#10007;") << "</span> "
          << esc(a["type"]) << " <span class='small'>" << esc(a["detail"]) << "</span></li>";
      h << "</ul><details><summary class='small'>prompt as the model saw it</summary><pre>" << esc(res["prompt_text"])
        << "</pre></details></div>";
    }
    h << "</div></div>";
  }

  h << "<h2>Run configuration</h2><pre>" << html_escape(ojson{{"suite", suite}, {"config", r["config"]}}.dump(2))
    << "</pre>";
  h << "<p class='small'>Generated by lathe eval. Format " << esc(r["format"]) << ".</p></body></html>\n";
  return h.str();
}

}  // namespace lathe::eval
