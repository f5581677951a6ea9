// report.json → report.html: one self-contained page (inline CSS and SVG, no scripts, no CDN) that a
// domain expert reads top to bottom: totals, stage table with drop reasons and examples, personal
// data, duplicates, length histograms, script mix, sources, warnings.
#include <fmt/format.h>

#include "lathe/core/html_escape.h"
#include "lathe/data/pipeline.h"

namespace lathe::data {

namespace {

std::string str(const nlohmann::json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

// Horizontal bar chart of (label, value) pairs as inline SVG.
std::string bars(const std::vector<std::pair<std::string, double>>& rows, const std::string& title) {
  double mx = 0;
  for (auto& [l, v] : rows) mx = std::max(mx, v);
  const int h = 22, w = 640, label_w = 170;
  std::string s = fmt::format("<figure><figcaption>{}</figcaption><svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' role='img'>",
                              html_escape(title), w, h * rows.size() + 4);
  for (size_t i = 0; i < rows.size(); i++) {
    double bw = mx > 0 ? (w - label_w - 80) * rows[i].second / mx : 0;
    s += fmt::format("<text x='{}' y='{}' text-anchor='end' font-size='12'>{}</text>", label_w - 6, i * h + 15, html_escape(rows[i].first));
    s += fmt::format("<rect x='{}' y='{}' width='{:.1f}' height='{}' fill='#4a7ab5'/>", label_w, i * h + 3, bw, h - 6);
    s += fmt::format("<text x='{:.1f}' y='{}' font-size='12'>{}</text>", label_w + bw + 4, i * h + 15, rows[i].second);
  }
  return s + "</svg></figure>";
}

std::string hist(const nlohmann::json& h, const std::string& title) {
  if (!h.is_object() || !h.contains("edges")) return "";
  std::vector<std::pair<std::string, double>> rows;
  auto edges = h["edges"].get<std::vector<size_t>>();
  auto counts = h["counts"].get<std::vector<size_t>>();
  for (size_t i = 0; i < counts.size(); i++) {
    std::string label = i == 0 ? fmt::format("≤ {}", edges[0])
                        : i == edges.size() ? fmt::format("> {}", edges.back())
                                            : fmt::format("{}–{}", edges[i - 1] + 1, edges[i]);
    rows.emplace_back(label, double(counts[i]));
  }
  return bars(rows, title);
}

}  // namespace

std::string render_report_html(const nlohmann::json& r) {
  std::string o =
      "<!doctype html><html><head><meta charset='utf-8'><title>lathe data report</title><style>"
      "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}"
      "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef}"
      ".ok{color:#070}.bad{color:#a00}code,.ex{font-family:monospace;font-size:90%;color:#555}figure{margin:1em 0}"
      "</style></head><body><h1>Data report</h1>";
  const auto& t = r["totals"];
  bool ok = t.value("reconciles", false);
  o += fmt::format("<p>Records in: <b>{}</b> · kept: <b>{}</b> · dropped: <b>{}</b> · <span class='{}'>{}</span></p>",
                   str(t["records_in"]), str(t["records_kept"]), str(t["records_dropped"]), ok ? "ok" : "bad",
                   ok ? "counts reconcile (in = kept + dropped)" : "COUNTS DO NOT RECONCILE");
  // Preference data is never tokenized here: its records are the output (the trainer tokenizes pairs).
  const std::string pref = r.value("preference", "");
  o += fmt::format("<p>Splits: train {} · validation {} · test {}. {}</p>", str(r["splits"]["train"]), str(r["splits"]["validation"]),
                   str(r["splits"]["test"]),
                   !pref.empty() ? "<b>Preference data (" + html_escape(pref) + ")</b>: every count is of " +
                                       (pref == "paired" ? "chosen/rejected pairs" : "labelled completions") +
                                       "; written as records, no token shards."
                   : r.value("tokenized", false) ? "Tokenized: token shards written."
                                                 : "<b>Not tokenized</b> (no model given): no token shards.");
  if (!r["warnings"].empty()) {
    o += "<h2>Warnings</h2><ul>";
    for (auto& w : r["warnings"]) o += "<li>" + html_escape(str(w)) + "</li>";
    o += "</ul>";
  }
  o += "<h2>Stages</h2><table><tr><th>stage</th><th>in</th><th>out</th><th>dropped (reason: count, examples)</th></tr>";
  for (auto& s : r["stages"]) {
    std::string d;
    for (auto& [reason, n] : s["dropped"].items()) {
      d += fmt::format("<div><b>{}</b>: {}", html_escape(reason), str(n));
      if (s["examples"].contains(reason))
        for (auto& ex : s["examples"][reason]) d += "<div class='ex'>" + html_escape(str(ex)) + "</div>";
      d += "</div>";
    }
    o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", html_escape(str(s["stage"])), str(s["in"]), str(s["out"]), d);
  }
  o += "</table>";
  if (r.contains("shapes")) {
    std::vector<std::pair<std::string, double>> rows;
    for (auto& [k, v] : r["shapes"].items()) rows.emplace_back(k, v.get<double>());
    if (!rows.empty()) o += "<h2>Record shapes</h2>" + bars(rows, "records per input shape");
  }
  const auto& pii = r["pii"];
  o += fmt::format("<h2>Personal data (policy: {})</h2>", html_escape(str(pii["policy"])));
  if (pii["hits"].empty()) {
    o += "<p>No personal data found.</p>";
  } else {
    o += "<table><tr><th>type</th><th>hits</th><th>masked examples</th></tr>";
    for (auto& [k, v] : pii["hits"].items()) {
      std::string ex;
      for (auto& e : pii["examples"][k]) ex += "<div class='ex'>" + html_escape(str(e)) + "</div>";
      o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", html_escape(k), str(v), ex);
    }
    o += "</table>";
  }
  o += "<h2>Duplicates</h2>";
  for (const char* kind : {"exact_clusters", "near_clusters"}) {
    const auto& cl = r["dedup"][kind];
    o += fmt::format("<h3>{} ({} shown)</h3>", kind[0] == 'e' ? "Exact duplicate clusters" : "Near-duplicate clusters", cl.size());
    if (cl.empty()) continue;
    o += "<table><tr><th>kept</th><th>size</th><th>duplicates</th><th>text</th></tr>";
    for (auto& c : cl) {
      std::string dups;
      for (auto& d : c["duplicates"]) dups += html_escape(str(d)) + "<br>";
      o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td class='ex'>{}</td></tr>", html_escape(str(c["kept"])), str(c["size"]), dups,
                       html_escape(str(c["kept_text"])));
    }
    o += "</table>";
  }
  if (r["dedup"].contains("contaminated"))
    o += fmt::format("<p>Evaluation contamination: {} of the records matched one of {} evaluation prompts.</p>",
                     str(r["dedup"]["contaminated"]), str(r["dedup"]["eval_prompts"]));
  o += "<h2>Lengths</h2>" + hist(r["char_length_histogram"], "characters per kept record");
  if (r.contains("token_length_histogram")) {
    o += hist(r["token_length_histogram"]["before"], "tokens per record before truncation");
    o += hist(r["token_length_histogram"]["after"], "tokens per record after truncation");
  }
  if (r.contains("scripts") && !r["scripts"].empty()) {
    std::vector<std::pair<std::string, double>> rows;
    for (auto& [k, v] : r["scripts"].items()) rows.emplace_back(k, v.get<double>());
    o += "<h2>Script mix</h2>" + bars(rows, "letters per script");
  }
  if (r.contains("top_sources")) {
    std::vector<std::pair<std::string, double>> rows;
    for (auto& s : r["top_sources"]) {
      std::string f = str(s["file"]);
      if (f.size() > 28) f = "…" + f.substr(f.size() - 27);
      rows.emplace_back(f, s["records"].get<double>());
    }
    o += "<h2>Top sources</h2>" + bars(rows, "kept records per input file");
  }
  o += "<h2>Inputs</h2><table><tr><th>file</th><th>format</th><th>records read</th><th>xxh3</th></tr>";
  for (auto& f : r["inputs"])
    o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>", html_escape(str(f["path"])), html_escape(str(f["format"])),
                     str(f["records"]), str(f["hash"]));
  o += "</table>";
  if (r.contains("sources") && !r["sources"]["skipped"].empty()) {
    const auto& src = r["sources"];
    o += fmt::format("<h2>Skipped sources</h2><p>Seen {} · read {} · skipped {}</p>", str(src["seen"]), str(src["read"]),
                     src["skipped"].size());
    o += "<table><tr><th>path</th><th>reason</th><th>detail</th></tr>";
    for (auto& k : src["skipped"])
      o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", html_escape(str(k["path"])), html_escape(str(k["reason"])),
                       html_escape(str(k["detail"])));
    o += "</table>";
  }
  o += "<h2>Configuration</h2><pre>" + html_escape(r["config"].dump(2)) + "</pre></body></html>\n";
  return o;
}

}  // namespace lathe::data
