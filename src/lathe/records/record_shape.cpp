#include "lathe/records/record_shape.h"

#include <functional>
#include <type_traits>
#include <unordered_set>

#include "lathe/core/json_io.h"

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

// A list of {role, content} objects, validated; other keys are kept for templates that use them.
template <class J, class R>
void append_checked_messages(R& list, const char* field, J& out) {
  if (!list.is_array()) bad("\"{}\" must be a list of messages, got {}", field, list.type_name());
  for (size_t i = 0; i < list.size(); i++) {
    const json& m = list[i];
    if (!m.is_object()) bad("\"{}\"[{}] must be an object with \"role\" and \"content\"", field, i);
    if (!has_string(m, "role")) bad("\"{}\"[{}] has no string \"role\"", field, i);
    if (!m.contains("content") || !(m["content"].is_string() || m["content"].is_null()))
      bad("\"{}\"[{}] has no string \"content\"", field, i);
  }
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
    case RecordShape::Unknown: break;
  }
  return "unknown";
}

RecordShape detect_record_shape(const json& r) {
  if (!r.is_object()) return RecordShape::Unknown;
  if (r.contains("input_ids")) return RecordShape::PreTokenized;
  if (r.contains("messages")) return RecordShape::Messages;
  if (r.contains("conversations")) return RecordShape::ShareGPT;
  if (r.contains("instruction") && r.contains("output")) return RecordShape::Alpaca;
  if (r.contains("prompt") && r.contains("completion")) return RecordShape::PromptCompletion;
  if (r.contains("question") && r.contains("answer")) return RecordShape::QuestionAnswer;
  if (r.contains("text")) return RecordShape::Text;
  return RecordShape::Unknown;
}

bool is_conversation(RecordShape s) {
  return s != RecordShape::Text && s != RecordShape::PreTokenized && s != RecordShape::Unknown;
}

ordered_json record_to_messages(const json& rec, RecordShape shape) { return to_messages<ordered_json>(rec, shape); }

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
  if (rec.contains("messages") && rec["messages"].is_array())
    for (auto& m : rec["messages"])
      if (m.is_object() && m.contains("content") && m["content"].is_string()) add(m["content"].get_ref<const std::string&>());
  if (rec.contains("text") && rec["text"].is_string()) add(rec["text"].get_ref<const std::string&>());
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
  static const std::unordered_set<std::string> kFields = {"text",   "content", "value",  "instruction",
                                                          "input",  "output",  "prompt", "completion",
                                                          "question", "answer"};
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

ordered_json chat_record(const json& request_messages, const std::string& reply) {
  ordered_json msgs = ordered_json::array();
  for (auto& m : request_messages)
    msgs.push_back({{"role", m.value("role", "user")}, {"content", m.value("content", "")}});
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

}  // namespace lathe
