#include "lathe/records/record_shape.h"

#include <algorithm>
#include <functional>
#include <type_traits>
#include <unordered_set>

#include "lathe/core/json_io.h"
#include "lathe/records/token_labels.h"

using nlohmann::json;
using nlohmann::ordered_json;

namespace lathe {

namespace {

template <class... Args>
[[noreturn]] void bad(fmt::format_string<Args...> f, Args&&... args) {
  throw RecordError(fmt::format(f, std::forward<Args>(args)...));
}

bool has_string(const json& r, const char* k) {
  auto it = r.find(k);
  return it != r.end() && it->is_string();
}

template <class R>
std::string take_string(R& v) {
  if constexpr (std::is_const_v<R>) return v.template get<std::string>();
  else return std::move(v.template get_ref<std::string&>());
}

// A value of the record as the output JSON type, value for value (no dump and re-parse): copied from
// a const record, moved out of a record being consumed.
template <class J, class R>
J take(R& v) {
  if constexpr (std::is_same_v<J, json>) {
    if constexpr (std::is_const_v<R>) return v;
    else return std::move(v);
  } else {
    switch (v.type()) {
      case json::value_t::object: {
        J o = J::object();
        for (auto& [k, x] : v.items()) o[k] = take<J>(x);
        return o;
      }
      case json::value_t::array: {
        J a = J::array();
        for (auto& x : v) a.push_back(take<J>(x));
        return a;
      }
      case json::value_t::string: return take_string(v);
      case json::value_t::boolean: return v.template get<bool>();
      case json::value_t::number_integer: return v.template get<int64_t>();
      case json::value_t::number_unsigned: return v.template get<uint64_t>();
      case json::value_t::number_float: return v.template get<double>();
      case json::value_t::null:
      case json::value_t::binary:  // only built in memory, never parsed from a record
      case json::value_t::discarded: break;
    }
    return nullptr;
  }
}

template <class R>
std::string need_string(R& r, const char* k, const char* shape) {
  if (!r.contains(k)) bad("{} record has no \"{}\"", shape, k);
  if (!r[k].is_string()) bad("{} record: \"{}\" must be a string, got {}", shape, k, r[k].type_name());
  return take_string(r[k]);
}

template <class J>
J message(const char* role, std::string content) {
  J m = J::object();
  m["role"] = role;
  m["content"] = std::move(content);
  return m;
}

// A list of {role, content} objects; throws naming the field and index otherwise.
void check_messages(const json& list, const char* field) {
  if (!list.is_array()) bad("\"{}\" must be a list of messages, got {}", field, list.type_name());
  for (size_t i = 0; i < list.size(); i++) {
    const json& m = list[i];
    if (!m.is_object()) bad("\"{}\"[{}] must be an object with \"role\" and \"content\"", field, i);
    if (!has_string(m, "role")) bad("\"{}\"[{}] has no string \"role\"", field, i);
    if (!m.contains("content") || !(m["content"].is_string() || m["content"].is_null()))
      bad("\"{}\"[{}] has no string \"content\"", field, i);
  }
}

// A list of {role, content} objects, validated; other keys are kept for templates that use them.
template <class J, class R>
void append_checked_messages(R& list, const char* field, J& out) {
  check_messages(list, field);
  for (auto& m : list) out.push_back(take<J>(m));
}

const char* sharegpt_role(const std::string& from, size_t i) {
  if (from == "human" || from == "user") return "user";
  if (from == "gpt" || from == "assistant" || from == "model" || from == "chatgpt" || from == "bard") return "assistant";
  if (from == "system") return "system";
  if (from == "tool" || from == "function" || from == "observation") return "tool";
  bad("\"conversations\"[{}]: unknown speaker \"from\": \"{}\" (expected human/gpt/system)", i, from);
}

// The one conversion of every conversational shape. R is `const json` (the record is read) or
// `json` (its strings move into the messages); J is the output JSON type.
template <class J, class R>
J to_messages(R& r, RecordShape shape) {
  J out = J::array();
  // A top-level "system" string (Alpaca variants, LLaMA-Factory) becomes the first message.
  const bool top_system = has_string(r, "system") && !r["system"].template get_ref<const std::string&>().empty();
  if (top_system && shape != RecordShape::Messages) out.push_back(message<J>("system", take_string(r["system"])));
  switch (shape) {
    case RecordShape::Messages:
      append_checked_messages(r["messages"], "messages", out);
      break;
    case RecordShape::ShareGPT: {
      auto& c = r["conversations"];
      if (!c.is_array()) bad("\"conversations\" must be a list, got {}", c.type_name());
      for (size_t i = 0; i < c.size(); i++) {
        if (!c[i].is_object() || !has_string(c[i], "from") || !has_string(c[i], "value"))
          bad("\"conversations\"[{}] must be {{\"from\": string, \"value\": string}}", i);
        const char* role = sharegpt_role(c[i]["from"].template get_ref<const std::string&>(), i);
        out.push_back(message<J>(role, take_string(c[i]["value"])));
      }
      break;
    }
    case RecordShape::Alpaca: {
      std::string user = need_string(r, "instruction", "alpaca");
      if (r.contains("input") && !r["input"].is_null()) {
        std::string in = need_string(r, "input", "alpaca");
        if (!in.empty()) user += "\n\n" + in;
      }
      std::string answer = need_string(r, "output", "alpaca");
      out.push_back(message<J>("user", std::move(user)));
      out.push_back(message<J>("assistant", std::move(answer)));
      break;
    }
    case RecordShape::PromptCompletion: {
      // TRL's conversational form: prompt and completion are message lists.
      if (r["prompt"].is_array()) append_checked_messages(r["prompt"], "prompt", out);
      else out.push_back(message<J>("user", need_string(r, "prompt", "prompt/completion")));
      if (r["completion"].is_array()) append_checked_messages(r["completion"], "completion", out);
      else out.push_back(message<J>("assistant", need_string(r, "completion", "prompt/completion")));
      break;
    }
    case RecordShape::QuestionAnswer: {
      std::string q = need_string(r, "question", "question/answer");
      std::string a = need_string(r, "answer", "question/answer");
      out.push_back(message<J>("user", std::move(q)));
      out.push_back(message<J>("assistant", std::move(a)));
      break;
    }
    default:
      bad("a {} record is not a conversation", record_shape_name(shape));
  }
  if (out.empty()) bad("the conversation has no messages");
  return out;
}

template <class J>
void add_system(J& messages, const std::string& system) {
  if (system.empty()) return;
  if (!messages.empty() && messages[0].is_object() && messages[0].value("role", "") == "system") return;
  messages.insert(messages.begin(), message<J>("system", system));
}

}  // namespace

const char* record_shape_name(RecordShape s) {
  switch (s) {
    case RecordShape::Messages: return "messages";
    case RecordShape::ShareGPT: return "sharegpt";
    case RecordShape::Alpaca: return "alpaca";
    case RecordShape::PromptCompletion: return "prompt_completion";
    case RecordShape::QuestionAnswer: return "question_answer";
    case RecordShape::Text: return "text";
    case RecordShape::PreTokenized: return "pretokenized";
    case RecordShape::Preference: return "preference";
    case RecordShape::Unknown: break;
  }
  return "unknown";
}

namespace {

// The keys that decide a record's shape, found in one walk over the record's keys (a record has a
// handful) instead of a std::map lookup per name: detect_record_shape asked up to 16 of them per call,
// each a few string compares, and every stage of `data prepare` asks it (memcmp was 5 % of a run).
enum : uint32_t {
  kKeyMessages = 1u << 0, kKeyText = 1u << 1, kKeyPrompt = 1u << 2, kKeyChosen = 1u << 3,
  kKeyRejected = 1u << 4, kKeyCompletion = 1u << 5, kKeyLabel = 1u << 6, kKeyInputIds = 1u << 7,
  kKeyConversations = 1u << 8, kKeyInstruction = 1u << 9, kKeyOutput = 1u << 10, kKeyQuestion = 1u << 11,
  kKeyAnswer = 1u << 12, kKeyChosenIds = 1u << 13, kKeyRejectedIds = 1u << 14, kKeyCompletionIds = 1u << 15,
};

uint32_t shape_keys(const json& r) {
  struct Name {
    std::string_view name;
    uint32_t bit;
  };
  static constexpr Name kNames[] = {
      {"messages", kKeyMessages},         {"text", kKeyText},
      {"prompt", kKeyPrompt},             {"chosen", kKeyChosen},
      {"rejected", kKeyRejected},         {"completion", kKeyCompletion},
      {"label", kKeyLabel},               {"input_ids", kKeyInputIds},
      {"conversations", kKeyConversations}, {"instruction", kKeyInstruction},
      {"output", kKeyOutput},             {"question", kKeyQuestion},
      {"answer", kKeyAnswer},             {"chosen_input_ids", kKeyChosenIds},
      {"rejected_input_ids", kKeyRejectedIds}, {"completion_input_ids", kKeyCompletionIds},
  };
  uint32_t bits = 0;
  for (auto it = r.begin(); it != r.end(); ++it) {
    const std::string_view k = it.key();
    for (const Name& n : kNames)
      if (k == n.name) {
        bits |= n.bit;
        break;
      }
  }
  return bits;
}

// preference_shape_of on an object whose shape keys are `k`.
PreferenceShape preference_shape_from(const json& r, uint32_t k) {
  if (k & (kKeyChosenIds | kKeyRejectedIds)) return PreferenceShape::PairedTokenized;
  if (k & kKeyCompletionIds) return PreferenceShape::UnpairedTokenized;
  if (k & (kKeyChosen | kKeyRejected)) return k & kKeyPrompt ? PreferenceShape::Paired : PreferenceShape::PairedImplicit;
  if ((k & kKeyPrompt) && (k & kKeyCompletion) && (k & kKeyLabel)) {
    const auto label = r.find("label");
    if (label->is_boolean() || label->is_number()) return PreferenceShape::Unpaired;
  }
  return PreferenceShape::None;
}

}  // namespace

RecordShape detect_record_shape(const json& r) {
  if (!r.is_object()) return RecordShape::Unknown;
  const uint32_t k = shape_keys(r);
  // Before prompt/completion: a KTO record has those fields too, and must not train as SFT.
  if (preference_shape_from(r, k) != PreferenceShape::None) return RecordShape::Preference;
  if (k & kKeyInputIds) return RecordShape::PreTokenized;
  if (k & kKeyMessages) return RecordShape::Messages;
  if (k & kKeyConversations) return RecordShape::ShareGPT;
  if ((k & kKeyInstruction) && (k & kKeyOutput)) return RecordShape::Alpaca;
  if ((k & kKeyPrompt) && (k & kKeyCompletion)) return RecordShape::PromptCompletion;
  if ((k & kKeyQuestion) && (k & kKeyAnswer)) return RecordShape::QuestionAnswer;
  if (k & kKeyText) return RecordShape::Text;
  return RecordShape::Unknown;
}

bool is_conversation(RecordShape s) {
  return s != RecordShape::Text && s != RecordShape::PreTokenized && s != RecordShape::Preference &&
         s != RecordShape::Unknown;
}

ordered_json record_to_messages(const json& rec, RecordShape shape) { return to_messages<ordered_json>(rec, shape); }
ordered_json record_to_messages(json&& rec, RecordShape shape) { return to_messages<ordered_json>(rec, shape); }

json record_messages(json&& rec, RecordShape shape) { return to_messages<json>(rec, shape); }

void add_system_prompt(json& messages, const std::string& system) { add_system(messages, system); }
void add_system_prompt(ordered_json& messages, const std::string& system) { add_system(messages, system); }

std::vector<std::string> record_prompts(const json& rec) {
  std::vector<std::string> out;
  const RecordShape shape = detect_record_shape(rec);
  if (shape == RecordShape::Text) {
    out.push_back(need_string(rec, "text", "text"));
  } else if (is_conversation(shape)) {
    for (auto& m : record_to_messages(rec, shape))
      if (m["role"] == "user" && m["content"].is_string()) out.push_back(m["content"].get<std::string>());
  } else if (shape == RecordShape::Preference) {
    const PreferenceShape ps = preference_shape_of(rec);
    if (!is_tokenized(ps))
      for (auto& m : preference_messages(rec, ps).prompt)
        if (m["role"] == "user" && m["content"].is_string()) out.push_back(m["content"].get<std::string>());
  } else if (shape == RecordShape::Unknown && has_string(rec, "prompt")) {
    out.push_back(rec["prompt"].get<std::string>());
  }
  return out;
}

std::string record_text(const json& rec) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += '\n';
    out += s;
  };
  // One lookup per field (not contains() and then operator[]): this runs on every record in clean and dedup.
  auto contents = [&](const json& list) {
    for (auto& m : list) {
      if (!m.is_object()) continue;
      const auto c = m.find("content");
      if (c != m.end() && c->is_string()) add(c->get_ref<const std::string&>());
    }
  };
  if (!rec.is_object()) return out;
  if (const auto ms = rec.find("messages"); ms != rec.end() && ms->is_array()) contents(*ms);
  if (const auto t = rec.find("text"); t != rec.end() && t->is_string()) add(t->get_ref<const std::string&>());
  for (const char* k : {"prompt", "chosen", "rejected", "completion"}) {
    auto it = rec.find(k);
    if (it == rec.end()) continue;
    if (it->is_string()) add(it->get_ref<const std::string&>());
    else if (it->is_array()) contents(*it);
  }
  return out;
}

std::string record_answer(const json& rec) {
  if (rec.contains("text") && rec["text"].is_string()) return rec["text"];
  if (!rec.contains("messages") || !rec["messages"].is_array()) return "";
  const auto& ms = rec["messages"];
  for (size_t i = ms.size(); i-- > 0;)
    if (ms[i].is_object() && ms[i].value("role", "") == "assistant" && ms[i].contains("content") && ms[i]["content"].is_string())
      return ms[i]["content"];
  return "";
}

void record_training_texts(std::string_view line, std::vector<std::string>& out) {
  static const std::unordered_set<std::string> kFields = {"text",     "content", "value",  "instruction",
                                                          "input",    "output",  "prompt", "completion",
                                                          "question", "answer",  "chosen", "rejected"};
  json j;
  JsonError err;  // the caller reports parse errors with file:line
  if (!try_parse_json_bounded(line, j, &err)) bad("{}", err.message);  // names the depth cap
  std::function<void(const json&)> walk = [&](const json& v) {
    if (v.is_object()) {
      for (auto& [k, x] : v.items()) {
        if (x.is_string()) {
          if (kFields.count(k)) out.push_back(x.get<std::string>());
        } else {
          walk(x);
        }
      }
    } else if (v.is_array()) {
      for (auto& x : v) walk(x);
    }
  };
  walk(j);
}

ordered_json chat_prompt(const json& request_messages) {
  ordered_json msgs = ordered_json::array();
  for (auto& m : request_messages)
    msgs.push_back({{"role", m.value("role", "user")}, {"content", m.value("content", "")}});
  return msgs;
}

ordered_json chat_record(const json& request_messages, const std::string& reply) {
  ordered_json msgs = chat_prompt(request_messages);
  msgs.push_back({{"role", "assistant"}, {"content", reply}});
  ordered_json rec;
  rec["messages"] = std::move(msgs);
  return rec;
}

ordered_json completion_record(const std::string& prompt, const std::string& reply) {
  ordered_json rec;
  rec["prompt"] = prompt;
  rec["completion"] = reply;
  return rec;
}

// ---- Preference records ----

namespace {

// Where a text-shaped preference record's parts are, validated, with an implicit prompt split off.
// The parts keep the record's form (strings or message lists); `cut` is where an implicit prompt ends
// (messages or bytes; npos when the record names its prompt).
struct Parts {
  PreferenceShape shape = PreferenceShape::None;
  bool lists = false;
  size_t cut = std::string::npos;
  bool label = false;
};

const char* shape_title(PreferenceShape s) {
  switch (s) {
    case PreferenceShape::Paired: return "paired preference";
    case PreferenceShape::PairedImplicit: return "paired preference (implicit prompt)";
    case PreferenceShape::Unpaired: return "unpaired preference (KTO)";
    case PreferenceShape::PairedTokenized: return "pre-tokenized paired preference";
    case PreferenceShape::UnpairedTokenized: return "pre-tokenized unpaired preference (KTO)";
    case PreferenceShape::None: break;
  }
  return "preference";
}

bool read_label(const json& r, PreferenceShape s) {
  auto it = r.find("label");
  if (it == r.end()) bad("{} record has no \"label\"", shape_title(s));
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number_integer() && (*it == 0 || *it == 1)) return *it == 1;
  bad("{} record: \"label\" must be true (desirable) or false (undesirable), got {}", shape_title(s),
      it->is_string() ? "a string" : it->dump());
}

// One part: a string, or a non-empty message list. Returns whether it is a list.
bool check_part(const json& r, const char* field, PreferenceShape s) {
  auto it = r.find(field);
  if (it == r.end()) bad("{} record has no \"{}\"", shape_title(s), field);
  if (it->is_string()) return false;
  if (!it->is_array())
    bad("{} record: \"{}\" must be a string or a list of messages, got {}", shape_title(s), field, it->type_name());
  if (it->empty()) bad("{} record: \"{}\" has no messages", shape_title(s), field);
  check_messages(*it, field);
  return true;
}

// The longest common prefix of chosen and rejected (TRL's implicit prompt): whole messages, or bytes
// cut back to a character boundary with a space just before the cut left to the answers.
size_t implicit_cut(const json& c, const json& r, bool lists) {
  size_t k = 0, n = 0, nc = 0, nr = 0;
  if (lists) {
    nc = c.size();
    nr = r.size();
    n = std::min(nc, nr);
    while (k < n && c[k] == r[k]) k++;
  } else {
    const std::string& a = c.get_ref<const std::string&>();
    const std::string& b = r.get_ref<const std::string&>();
    nc = a.size();
    nr = b.size();
    n = std::min(nc, nr);
    while (k < n && a[k] == b[k]) k++;
    auto continuation = [](const std::string& t, size_t i) { return i < t.size() && (uint8_t(t[i]) & 0xC0) == 0x80; };
    while (k > 0 && (continuation(a, k) || continuation(b, k))) k--;
    if (k > 0 && a[k - 1] == ' ') k--;
  }
  if (k == 0) bad("paired preference record without \"prompt\": \"chosen\" and \"rejected\" share no leading {} (give \"prompt\")",
                  lists ? "message" : "text");
  if (k == nc || k == nr)
    bad("paired preference record without \"prompt\": \"{}\" ends within the shared prefix, so it has no answer of its own",
        k == nc ? "chosen" : "rejected");
  return k;
}

Parts parts_of(const json& r, PreferenceShape s) {
  Parts p;
  p.shape = s;
  switch (s) {
    case PreferenceShape::Paired:
    case PreferenceShape::Unpaired: {
      p.lists = check_part(r, "prompt", s);
      static const std::vector<const char*> kPaired{"chosen", "rejected"}, kUnpaired{"completion"};
      for (const char* f : s == PreferenceShape::Paired ? kPaired : kUnpaired)
        if (check_part(r, f, s) != p.lists)
          bad("{} record: \"{}\" is {} but \"prompt\" is {} (all strings or all message lists)", shape_title(s), f,
              p.lists ? "a string" : "a message list", p.lists ? "a message list" : "a string");
      if (s == PreferenceShape::Unpaired) p.label = read_label(r, s);
      break;
    }
    case PreferenceShape::PairedImplicit: {
      p.lists = check_part(r, "chosen", s);
      if (check_part(r, "rejected", s) != p.lists)
        bad("{} record: \"rejected\" is {} but \"chosen\" is {} (both strings or both message lists)", shape_title(s),
            p.lists ? "a string" : "a message list", p.lists ? "a message list" : "a string");
      p.cut = implicit_cut(r["chosen"], r["rejected"], p.lists);
      break;
    }
    default:
      bad("a {} record has no text parts (preference_tokens reads it)", shape_title(s));
  }
  return p;
}

// Part `field` of the record in its own form, after the implicit prompt's cut when there is one:
// which = 0 the prompt, 1 the answer.
json part(const json& r, const Parts& p, const char* field, int which) {
  if (p.cut == std::string::npos) return r[field];
  const json& whole = r[field];
  if (p.lists) {
    json out = json::array();
    const size_t a = which == 0 ? 0 : p.cut, z = which == 0 ? p.cut : whole.size();
    for (size_t i = a; i < z; i++) out.push_back(whole[i]);
    return out;
  }
  const std::string& t = whole.get_ref<const std::string&>();
  return which == 0 ? t.substr(0, p.cut) : t.substr(p.cut);
}

ordered_json as_messages(const json& v, const char* role, const char* field) {
  ordered_json out = ordered_json::array();
  if (v.is_string()) out.push_back(message<ordered_json>(role, v.get<std::string>()));
  else append_checked_messages(v, field, out);
  return out;
}

std::string joined(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  std::string out;
  if (!v.is_array()) return out;
  for (auto& m : v) {
    if (!m.is_object() || !m.contains("content") || !m["content"].is_string()) continue;
    if (!out.empty()) out += '\n';
    out += m["content"].get_ref<const std::string&>();
  }
  return out;
}

}  // namespace

const char* preference_shape_name(PreferenceShape s) {
  switch (s) {
    case PreferenceShape::Paired: return "paired";
    case PreferenceShape::PairedImplicit: return "paired_implicit";
    case PreferenceShape::Unpaired: return "unpaired";
    case PreferenceShape::PairedTokenized: return "paired_tokenized";
    case PreferenceShape::UnpairedTokenized: return "unpaired_tokenized";
    case PreferenceShape::None: break;
  }
  return "none";
}

PreferenceShape preference_shape_of(const json& r) {
  if (!r.is_object()) return PreferenceShape::None;
  return preference_shape_from(r, shape_keys(r));
}

bool is_paired(PreferenceShape s) {
  return s == PreferenceShape::Paired || s == PreferenceShape::PairedImplicit || s == PreferenceShape::PairedTokenized;
}

bool is_tokenized(PreferenceShape s) {
  return s == PreferenceShape::PairedTokenized || s == PreferenceShape::UnpairedTokenized;
}

PreferenceMessages preference_messages(const json& r, PreferenceShape s) {
  const Parts p = parts_of(r, s);
  PreferenceMessages m;
  m.conversational = p.lists;
  m.label = p.label;
  if (s == PreferenceShape::Unpaired) {
    m.prompt = as_messages(r["prompt"], "user", "prompt");
    m.completion = as_messages(r["completion"], "assistant", "completion");
    return m;
  }
  const bool implicit = s == PreferenceShape::PairedImplicit;
  m.prompt = as_messages(implicit ? part(r, p, "chosen", 0) : r["prompt"], "user", implicit ? "chosen" : "prompt");
  m.chosen = as_messages(part(r, p, "chosen", 1), "assistant", "chosen");
  m.rejected = as_messages(part(r, p, "rejected", 1), "assistant", "rejected");
  return m;
}

PreferenceTokens preference_tokens(const json& r, PreferenceShape s) {
  if (!is_tokenized(s)) bad("a {} record is not pre-tokenized (preference_messages reads it)", shape_title(s));
  auto ids = [&](const char* field, bool may_be_empty) {
    auto it = r.find(field);
    if (it == r.end()) bad("{} record has no \"{}\"", shape_title(s), field);
    std::vector<int32_t> v = read_token_ids(*it, field, false);
    if (v.empty() && !may_be_empty) bad("{} record: \"{}\" is empty", shape_title(s), field);
    return v;
  };
  PreferenceTokens t;
  t.prompt = ids("prompt_input_ids", true);
  if (s == PreferenceShape::PairedTokenized) {
    t.chosen = ids("chosen_input_ids", false);
    t.rejected = ids("rejected_input_ids", false);
  } else {
    t.completion = ids("completion_input_ids", false);
    t.label = read_label(r, s);
  }
  return t;
}

json preference_record(const json& r, PreferenceShape s) {
  json out = json::object();
  if (is_tokenized(s)) {
    PreferenceTokens t = preference_tokens(r, s);
    out["prompt_input_ids"] = t.prompt;
    if (s == PreferenceShape::PairedTokenized) {
      out["chosen_input_ids"] = t.chosen;
      out["rejected_input_ids"] = t.rejected;
    } else {
      out["completion_input_ids"] = t.completion;
      out["label"] = t.label;
    }
    return out;
  }
  const Parts p = parts_of(r, s);
  if (s == PreferenceShape::Unpaired) {
    out["prompt"] = r["prompt"];
    out["completion"] = r["completion"];
    out["label"] = p.label;
  } else if (s == PreferenceShape::PairedImplicit) {
    out["prompt"] = part(r, p, "chosen", 0);
    out["chosen"] = part(r, p, "chosen", 1);
    out["rejected"] = part(r, p, "rejected", 1);
  } else {
    out["prompt"] = r["prompt"];
    out["chosen"] = r["chosen"];
    out["rejected"] = r["rejected"];
  }
  return out;
}

PreferenceTexts preference_texts(const json& r) {
  PreferenceTexts t;
  if (!r.is_object()) return t;
  if (r.contains("prompt")) t.prompt = joined(r["prompt"]);
  for (const char* k : {"chosen", "rejected", "completion"})
    if (r.contains(k)) t.answers.push_back(joined(r[k]));
  return t;
}

}  // namespace lathe
