#include "lathe/chat/chat_template.h"

#include <algorithm>
#include <cctype>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/formats/gguf.h"
#include "lathe/chat/chat_plan.h"
#include "lathe/chat/jinja_eval.h"

namespace lathe {

namespace {

// Our fallback templates. ChatML and Llama 3 reproduce the published formats (Llama 3 without the
// date/tools system header); Alpaca is the Stanford instruction format with eos after each response.
const char* kChatml =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const char* kLlama3 =
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

const char* kAlpaca =
    "{%- set ns = namespace(system='Below is an instruction that describes a task. Write a response that "
    "appropriately completes the request.') %}"
    "{%- for message in messages if message['role'] == 'system' %}{% set ns.system = message['content'] %}"
    "{%- endfor %}"
    "{{- bos_token + ns.system + '\\n\\n' }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{- '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{- '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}"
    "{%- elif message['role'] != 'system' %}"
    "{{- raise_exception('alpaca template: unsupported role ' + message['role']) }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '### Response:\\n' }}{%- endif %}";

struct Rendered {
  jinja::RenderResult r;
  size_t n_messages = 0;
};

jinja::Dict make_globals(const nlohmann::ordered_json& messages, size_t n, bool add_generation_prompt,
                         const ChatRenderOptions& opts) {
  // Each message's content is tagged with its index so the output records where it landed.
  jinja::List msgs;
  for (size_t i = 0; i < n; ++i) {
    const auto& m = messages[i];
    if (!m.is_object()) lathe::fail("chat-template", "message {} is not an object", i);
    jinja::Dict d;
    for (auto it = m.begin(); it != m.end(); ++it)
      d.emplace_back(it.key(), jinja::Value::from_json(it.value(), it.key() == "content" ? static_cast<int>(i) : -1));
    msgs.push_back(jinja::Value::dict(std::move(d)));
  }
  jinja::Dict g;
  g.emplace_back("messages", jinja::Value::list(std::move(msgs)));
  g.emplace_back("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  g.emplace_back("bos_token", jinja::Value::string(opts.bos_token));
  g.emplace_back("eos_token", jinja::Value::string(opts.eos_token));
  g.emplace_back("tools", jinja::Value::none());
  g.emplace_back("documents", jinja::Value::none());
  if (!opts.extra.is_null() && !opts.extra.is_object())
    lathe::fail("chat-template", "extra template variables must be a JSON object");
  for (auto it = opts.extra.begin(); it != opts.extra.end() && opts.extra.is_object(); ++it) {
    auto v = jinja::Value::from_json(it.value());
    bool replaced = false;
    for (auto& [k, x] : g)
      if (k == it.key()) {
        x = v;
        replaced = true;
      }
    if (!replaced) g.emplace_back(it.key(), v);
  }
  return g;
}

// What the options contribute to a conversation's shape (RenderPlanCache::shape_key); nullopt when
// they cannot be keyed (deeply nested or invalid UTF-8 extras), and every render is interpreted.
std::optional<std::string> options_key(const ChatRenderOptions& opts) {
  if (!RenderPlanCache::shallow(opts.extra, 32)) return std::nullopt;
  std::string k = opts.bos_token;
  k += '\x1f';
  k += opts.eos_token;
  k += '\x1f';
  try {
    k += opts.extra.dump();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  k += '\x1f';
  if (opts.now) k += std::to_string(*opts.now);
  return k;
}

struct Renderer {
  const jinja::Template& tpl;
  RenderPlanCache* plans;  // null: interpret every render
  const ChatRenderOptions& opts;
  std::string opts_key;

  Renderer(const jinja::Template& t, RenderPlanCache* p, const ChatRenderOptions& o) : tpl(t), plans(p), opts(o) {
    std::optional<std::string> k;
    if (opts.plans && plans) k = options_key(opts);
    if (k) opts_key = std::move(*k);
    else plans = nullptr;
  }

  // messages[0, n) rendered, from a plan when one applies (the same result as interpreting).
  jinja::RenderResult operator()(const nlohmann::ordered_json& messages, size_t n, bool agp) const {
    jinja::RenderOptions ro;
    ro.now = opts.now;
    std::vector<const std::string*> contents;
    std::optional<std::string> key;
    if (plans) key = RenderPlanCache::shape_key(messages, n, agp, opts_key, contents);
    if (key)
      if (auto r = plans->render(*key, contents, ro)) return std::move(*r);
    jinja::Dict g = make_globals(messages, n, agp, opts);
    const jinja::List& msgs = g[0].second.items();
    for (size_t i = 0; i < msgs.size(); ++i) ro.tracked_items.emplace_back(msgs[i].identity(), static_cast<int>(i));
    jinja::Probe probe;
    if (key && plans->wants(*key)) {
      for (const std::string* c : contents) probe.content_len.push_back(c->size());
      ro.probe = &probe;
    }
    jinja::RenderResult r = jinja::jinja_render(tpl, g, ro);
    if (ro.probe) plans->add(*key, r, std::move(probe));
    return r;
  }
};

// Runs of message `source`'s content in an output, grouped into emissions: a run that does not
// continue past the previous run's source offset starts a new emission.
struct Emission {
  std::vector<ChatSpan> pieces;
  ChatSpan hull() const { return {pieces.front().begin, pieces.back().end}; }
};

std::vector<Emission> emissions_of(const jinja::Str& out, int source) {
  std::vector<Emission> ems;
  size_t last_src_end = 0;
  for (const jinja::Origin& o : out.origins) {
    if (o.source != source) continue;
    bool fresh = ems.empty() || o.src_pos < last_src_end || (o.len == 0 && o.src_pos == 0);
    if (fresh) ems.emplace_back();
    ems.back().pieces.push_back({o.pos, o.pos + o.len});
    last_src_end = o.src_pos + o.len;
  }
  return ems;
}

bool is_prefix(const std::string& p, const std::string& s) { return p.size() <= s.size() && s.compare(0, p.size(), p) == 0; }

}  // namespace

ChatTemplate ChatTemplate::parse(const std::string& source) {
  ChatTemplate t;
  t.source_ = source;
  t.tpl_ = jinja::jinja_parse(source);
  t.plans_ = std::make_shared<RenderPlanCache>();
  return t;
}

std::vector<std::string> ChatTemplate::builtin_names() { return {"chatml", "llama3", "alpaca"}; }

std::string ChatTemplate::builtin_source(const std::string& name) {
  if (name == "chatml") return kChatml;
  if (name == "llama3") return kLlama3;
  if (name == "alpaca") return kAlpaca;
  lathe::fail("chat-template", "unknown built-in template '{}' (choose chatml, llama3 or alpaca)", name);
}

ChatTemplate ChatTemplate::builtin(const std::string& name) { return parse(builtin_source(name)); }

std::string ChatTemplate::render_text(const nlohmann::ordered_json& messages, const ChatRenderOptions& opts) const {
  if (!messages.is_array()) lathe::fail("chat-template", "messages must be a JSON array");
  Renderer render_prefix(*tpl_, plans_.get(), opts);
  return render_prefix(messages, messages.size(), opts.add_generation_prompt).out.s;
}

ChatPlanStats ChatTemplate::plan_stats() const { return plans_ ? plans_->stats() : ChatPlanStats{}; }

ChatRender ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatRenderOptions& opts) const {
  if (!messages.is_array()) lathe::fail("chat-template", "messages must be a JSON array");
  const size_t n = messages.size();
  Renderer render_prefix(*tpl_, plans_.get(), opts);
  jinja::RenderResult full = render_prefix(messages, n, opts.add_generation_prompt);
  ChatRender res;
  res.text = full.out.s;
  for (auto [b, e] : full.generation_spans) res.generation.push_back({b, e});
  const std::string& text = res.text;
  res.messages.resize(n);
  for (size_t i = 0; i < n; ++i) {
    ChatMessageSpans& ms = res.messages[i];
    const auto& m = messages[i];
    if (m.contains("role") && m["role"].is_string()) ms.role = m["role"].get<std::string>();
    auto ems = emissions_of(full.out, static_cast<int>(i));
    for (const Emission& e : ems) ms.pieces.insert(ms.pieces.end(), e.pieces.begin(), e.pieces.end());
    if (!ems.empty()) {
      // Content emitted more than once: prefer the last emission written during this message's own
      // loop iteration (a template may echo messages[-1].content elsewhere), else the last one.
      ms.has_content = true;
      ms.content = ems.back().hull();
      for (const Emission& e : ems)
        for (const jinja::Origin& run : full.item_runs)
          if (run.source == static_cast<int>(i) && e.hull().begin >= run.pos && e.hull().end <= run.pos + run.len)
            ms.content = e.hull();
    }
    if (ms.role != "assistant" || !opts.turn_spans) continue;

    // End: the last byte written while the template's loop was on this message (its end-of-turn
    // marker; text written after the loop, like a generation prompt, is not the turn's). Templates
    // that do not loop over the messages fall back to the prefix render: the template text after
    // this message's content when the conversation stops here, matched against the full text.
    std::optional<size_t> end;
    for (const jinja::Origin& run : full.item_runs)
      if (run.source == static_cast<int>(i)) end = std::max(end.value_or(0), run.pos + run.len);
    if (end && ms.has_content && *end < ms.content.end) end.reset();
    if (!end) try {
      jinja::RenderResult upto = render_prefix(messages, i + 1, false);
      auto pems = emissions_of(upto.out, static_cast<int>(i));
      if (ms.has_content && !pems.empty()) {
        size_t tail_begin = pems.back().hull().end;
        size_t k = 0, at = ms.content.end;
        while (tail_begin + k < upto.out.s.size() && at + k < text.size() && upto.out.s[tail_begin + k] == text[at + k]) ++k;
        end = at + k;
      } else if (is_prefix(upto.out.s, text)) {
        end = upto.out.s.size();  // content not emitted (e.g. only tool calls): the prefix still bounds it
      }
    } catch (const Error&) {
    }
    if (!end) {
      if (!ms.has_content) continue;
      end = ms.content.end;  // unknown end marker; the content alone
    }
    size_t floor = ms.has_content ? ms.content.end : 0;
    while (*end > floor && std::isspace(static_cast<unsigned char>(text[*end - 1]))) --*end;

    // Begin: where the prompt for this turn (with the generation prompt) ends.
    std::optional<size_t> begin;
    try {
      jinja::RenderResult prompt = render_prefix(messages, i, true);
      size_t limit = ms.has_content ? ms.content.begin : *end;
      if (is_prefix(prompt.out.s, text) && prompt.out.s.size() <= limit) begin = prompt.out.s.size();
    } catch (const Error&) {
    }
    if (!begin) {
      if (!ms.has_content) continue;
      begin = ms.content.begin;
    }
    ms.has_turn = true;
    ms.turn = {*begin, std::max(*begin, *end)};
  }
  return res;
}

nlohmann::ordered_json ChatRender::to_json() const {
  auto span = [](const ChatSpan& s) { return nlohmann::ordered_json::array({s.begin, s.end}); };
  nlohmann::ordered_json j;
  j["text"] = text;
  j["messages"] = nlohmann::ordered_json::array();
  for (const ChatMessageSpans& m : messages) {
    nlohmann::ordered_json o;
    o["role"] = m.role;
    o["content"] = m.has_content ? span(m.content) : nlohmann::ordered_json();
    o["pieces"] = nlohmann::ordered_json::array();
    for (const ChatSpan& p : m.pieces) o["pieces"].push_back(span(p));
    o["turn"] = m.has_turn ? span(m.turn) : nlohmann::ordered_json();
    j["messages"].push_back(std::move(o));
  }
  j["generation"] = nlohmann::ordered_json::array();
  for (const ChatSpan& g : generation) j["generation"].push_back(span(g));
  return j;
}

namespace {

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...} (AddedToken), or null.
std::string token_text(const nlohmann::json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

std::string pick_template(const nlohmann::json& ct, const std::string& path, const std::string& name) {
  if (ct.is_null()) return "";
  if (ct.is_string()) return ct.get<std::string>();
  if (!ct.is_array()) lathe::fail("chat-template", "{}: chat_template must be a string or a list", path);
  std::string want = name.empty() ? "default" : name;
  std::vector<std::string> names;
  for (const auto& e : ct) {
    if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
        !e["template"].is_string())
      lathe::fail("chat-template", "{}: chat_template list entries need string 'name' and 'template'", path);
    names.push_back(e["name"].get<std::string>());
    if (names.back() == want) return e["template"].get<std::string>();
  }
  if (name.empty() && ct.size() == 1) return ct[0]["template"].get<std::string>();
  std::string all;
  for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
  lathe::fail("chat-template", "{}: no chat template named '{}' (available: {})", path, want, all);
}

}  // namespace

ChatTemplateConfig chat_template_config_load(const std::string& path, const std::string& name) {
  ChatTemplateConfig c;
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
    GgufFile g = GgufFile::open(path);
    c.source = g.get_string("tokenizer.chat_template", "");
    if (g.has("tokenizer.ggml.tokens")) {
      const auto& toks = g.get("tokenizer.ggml.tokens").array;
      auto tok = [&](const char* key) -> std::string {
        int64_t id = g.get_int(key, -1);
        return id >= 0 && static_cast<size_t>(id) < toks.size() ? toks[static_cast<size_t>(id)].as_string() : "";
      };
      c.bos_token = tok("tokenizer.ggml.bos_token_id");
      c.eos_token = tok("tokenizer.ggml.eos_token_id");
    }
    return c;
  }
  std::string cfg_path = path;
  if (is_directory(path)) {
    cfg_path = path + "/tokenizer_config.json";
    if (file_exists(path + "/chat_template.jinja")) c.source = read_file(path + "/chat_template.jinja");
  }
  if (!file_exists(cfg_path)) {
    if (!c.source.empty()) return c;
    lathe::fail("chat-template", "{}: no tokenizer_config.json", path);
  }
  nlohmann::json cfg;
  lathe::JsonError err;
  if (!lathe::try_parse_json_bounded(read_file(cfg_path), cfg, &err))
    lathe::fail("chat-template", "{}: invalid JSON: {}", cfg_path, err.message);
  if (!cfg.is_object()) lathe::fail("chat-template", "{}: not a JSON object", cfg_path);
  if (c.source.empty() && cfg.contains("chat_template")) c.source = pick_template(cfg["chat_template"], cfg_path, name);
  c.bos_token = token_text(cfg, "bos_token");
  c.eos_token = token_text(cfg, "eos_token");
  return c;
}

}  // namespace lathe
