#include "lathe/serve/openai_protocol.h"

#include <algorithm>
#include <limits>
#include <random>
#include <thread>

#include "lathe/core/json_io.h"
#include "lathe/serve/limits.h"

namespace lathe::serve {
namespace {

using json = nlohmann::json;

std::string type_name(const json& v) { return v.type_name(); }

double get_number(const json& body, const char* key, double lo, double hi, double def) {
  if (!body.contains(key) || body[key].is_null()) return def;
  const json& v = body[key];
  if (!v.is_number()) bad_request(key, "'{}' must be a number, got {}", key, type_name(v));
  double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad_request(key, "'{}' must be in [{}, {}], got {}", key, lo, hi, x);
  return x;
}

std::optional<int64_t> get_int(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number_integer()) bad_request(key, "'{}' must be an integer, got {}", key, type_name(v));
  return v.get<int64_t>();
}

// OpenAI content: a string, or a list of parts of which the text parts are joined.
std::string message_content(const json& m, size_t i) {
  std::string param = fmt::format("messages[{}].content", i);
  if (!m.contains("content") || m["content"].is_null()) return "";
  const json& c = m["content"];
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad_request(param, "'{}' must be a string or a list of parts", param);
  std::string text;
  for (const json& part : c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      bad_request(param, "'{}': only text parts ({{\"type\":\"text\",\"text\":...}}) are supported", param);
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

std::string error_body(int status, const std::string& type, const std::string& code, const std::string& param,
                       const std::string& message) {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  (void)status;
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_body(const ApiError& e) { return error_body(e.status, e.type, e.code, e.param, e.what()); }

bool json_nesting_exceeds(const std::string& text, int limit) {
  return json_depth_exceeded(text, limit) != std::string_view::npos;  // core/json_io's string-aware scan
}

json parse_json_object(const std::string& text) {
  if (json_nesting_exceeds(text, kMaxRequestJsonDepth))
    throw ApiError(400, "invalid_request_error", "json_too_deep", "",
                   fmt::format("the request body nests arrays/objects more than {} levels deep", kMaxRequestJsonDepth));
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded())
    throw ApiError(400, "invalid_request_error", "invalid_json", "", "the request body is not valid JSON");
  if (!body.is_object()) bad_request("", "the request body must be a JSON object");
  return body;
}

CompletionRequest parse_completion_request(const std::string& body_text, bool chat) {
  json body = parse_json_object(body_text);
  CompletionRequest r;
  r.chat = chat;
  if (!body.contains("model") || !body["model"].is_string()) bad_request("model", "'model' (a string) is required");
  r.model = body["model"].get<std::string>();
  if (chat) {
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
      bad_request("messages", "'messages' must be a non-empty list");
    if (body["messages"].size() > kMaxMessages)
      bad_request("messages", "'messages' has {} messages; at most {} are accepted", body["messages"].size(), kMaxMessages);
    size_t i = 0;
    for (const json& m : body["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        bad_request(fmt::format("messages[{}]", i), "messages[{}] must be an object with a string 'role'", i);
      std::string role = m["role"].get<std::string>();
      if (role == "developer") role = "system";  // OpenAI's newer name for the system role
      r.messages.push_back({{"role", role}, {"content", message_content(m, i)}});
      i++;
    }
  } else {
    if (!body.contains("prompt")) bad_request("prompt", "'prompt' is required");
    const json& p = body["prompt"];
    if (p.is_string()) {
      r.prompt = p.get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
      r.prompt = p[0].get<std::string>();
    } else if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), [](const json& x) { return x.is_number_integer(); })) {
      for (const json& x : p) {
        // Checked before narrowing, so 2^32 + 1 is refused rather than read as token 1.
        if (x.is_number_unsigned() ? x.get<uint64_t>() > uint64_t(std::numeric_limits<int32_t>::max())
                                   : x.get<int64_t>() < 0 || x.get<int64_t>() > std::numeric_limits<int32_t>::max())
          bad_request("prompt", "token id {} is out of range", x.dump());
        r.prompt_ids.push_back(int32_t(x.get<int64_t>()));
      }
    } else {
      bad_request("prompt", "'prompt' must be a string, a list of one string, or a list of token ids (one prompt per request)");
    }
  }
  if (auto n = get_int(body, "n"); n && *n != 1) bad_request("n", "only n = 1 is supported, got {}", *n);
  r.sampling.temperature = float(get_number(body, "temperature", 0.0, 2.0, 1.0));
  r.sampling.top_p = float(get_number(body, "top_p", 0.0, 1.0, 1.0));
  if (r.sampling.top_p <= 0.0f) bad_request("top_p", "'top_p' must be > 0");
  r.sampling.presence_penalty = float(get_number(body, "presence_penalty", -2.0, 2.0, 0.0));
  r.sampling.frequency_penalty = float(get_number(body, "frequency_penalty", -2.0, 2.0, 0.0));
  if (auto s = get_int(body, "seed")) {
    r.sampling.seed = uint64_t(*s);
    r.seed_given = true;
  }
  auto mt = get_int(body, "max_completion_tokens");
  if (!mt) mt = get_int(body, "max_tokens");
  if (mt) {
    if (body.contains("max_completion_tokens") && !body["max_completion_tokens"].is_null())
      r.max_tokens_param = "max_completion_tokens";
    if (*mt < 1) bad_request(r.max_tokens_param, "the token limit must be at least 1, got {}", *mt);
    r.max_tokens = int(std::min<int64_t>(*mt, 1 << 30));  // checked against the context when the prompt is known
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& s = body["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= kMaxStopStrings) {
      for (const json& x : s) {
        if (!x.is_string()) bad_request("stop", "'stop' entries must be strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      bad_request("stop", "'stop' must be a string or a list of up to {} strings", kMaxStopStrings);
    }
    for (const auto& x : r.stop) {
      if (x.empty()) bad_request("stop", "'stop' strings must not be empty");
      if (x.size() > kMaxStopStringBytes)
        bad_request("stop", "a 'stop' string has {} bytes; at most {} are accepted", x.size(), kMaxStopStringBytes);
    }
  }
  if (body.contains("stream") && !body["stream"].is_null()) {
    if (!body["stream"].is_boolean()) bad_request("stream", "'stream' must be a boolean");
    r.stream = body["stream"].get<bool>();
  }
  if (body.contains("stream_options") && body["stream_options"].is_object())
    r.include_usage = body["stream_options"].value("include_usage", false);
  if (body.contains("logprobs") && body["logprobs"].is_boolean() && body["logprobs"].get<bool>())
    bad_request("logprobs", "logprobs are not supported");
  if (body.contains("user") && body["user"].is_string()) r.user = body["user"].get<std::string>();
  if (body.contains("rag") && !body["rag"].is_null()) {
    if (!body["rag"].is_boolean()) bad_request("rag", "'rag' must be a boolean, got {}", type_name(body["rag"]));
    r.rag = body["rag"].get<bool>();
  }
  return r;
}

FeedbackRecord parse_feedback_request(const std::string& body_text) {
  json body = parse_json_object(body_text);
  FeedbackRecord f;
  if (!body.contains("completion_id") || !body["completion_id"].is_string())
    bad_request("completion_id", "'completion_id' (the id a completion returned) is required");
  f.completion_id = body["completion_id"].get<std::string>();
  if (!body.contains("rating") || !body["rating"].is_number_integer())
    bad_request("rating", "'rating' must be an integer: +1/-1 or 1..5");
  // Read wide, so a huge value is refused instead of wrapping into range.
  const json& rv = body["rating"];
  int64_t rating = rv.is_number_unsigned() && rv.get<uint64_t>() > 5 ? 6 : rv.get<int64_t>();
  if (rating < -1 || rating > 5 || rating == 0) bad_request("rating", "'rating' must be +1/-1 or 1..5, got {}", rv.dump());
  f.rating = int(rating);
  for (const char* k : {"correction", "comment"}) {
    if (!body.contains(k) || body[k].is_null()) continue;
    if (!body[k].is_string()) bad_request(k, "'{}' must be a string", k);
    (std::string(k) == "correction" ? f.correction : f.comment) = body[k].get<std::string>();
  }
  if (body.contains("tags") && !body["tags"].is_null()) {
    const json& tags = body["tags"];
    if (!tags.is_array()) bad_request("tags", "'tags' must be a list of strings");
    if (tags.size() > kMaxFeedbackTags) bad_request("tags", "'tags' has {} entries; at most {} are accepted", tags.size(), kMaxFeedbackTags);
    for (const json& t : tags) {
      if (!t.is_string()) bad_request("tags", "'tags' must be a list of strings");
      if (t.get_ref<const std::string&>().size() > kMaxFeedbackTagBytes)
        bad_request("tags", "a tag has {} bytes; at most {} are accepted", t.get_ref<const std::string&>().size(), kMaxFeedbackTagBytes);
      f.tags.push_back(t.get<std::string>());
    }
  }
  return f;
}

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

std::string StopMatcher::push(const std::string& piece) {
  if (stopped_) return "";
  pending_ += piece;
  size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    stopped_ = true;
    return out;
  }
  // Hold back the longest tail that is the start of some stop string (stop strings are valid
  // UTF-8, so the cut never splits a character).
  size_t hold = 0;
  for (const auto& s : stops_)
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; k--)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

std::string new_completion_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^ uint64_t(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), uint32_t(rng()));
}

}  // namespace lathe::serve
