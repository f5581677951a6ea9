// Helpers for the serve tests: a real `lathe serve` child process on a loopback port, and the small
// models it serves (the stories260K fixture with a chat template added, a LoRA adapter over it).
#pragma once
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lathe/core/rng.h"
#include "lathe/model/model.h"
#include "lathe/peft/lora.h"
#include "lathe/peft/prefix.h"
#include "test_util.h"

namespace lathe::test {

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// `lathe serve ARGS --port 0` as a child process; the constructor waits for "listening on ...:PORT".
class ServeProcess {
 public:
  ServeProcess(const std::vector<std::string>& args, const std::string& log_dir) {
    out_ = log_dir + "/serve.out";
    err_ = log_dir + "/serve.err";
    std::filesystem::remove(out_);  // not a previous server's "listening on" line
    pid_ = fork();
    if (pid_ == 0) {
      FILE* o = std::freopen(out_.c_str(), "w", stdout);
      FILE* e = std::freopen(err_.c_str(), "w", stderr);
      (void)o, (void)e;
      std::vector<std::string> a = {LATHE_BINARY, "serve", "--port", "0", "--threads", "1"};
      a.insert(a.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      execv(LATHE_BINARY, argv.data());
      _exit(127);
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
      std::string s = slurp(out_);
      size_t p = s.find("listening on http://127.0.0.1:");
      if (p != std::string::npos && s.find(' ', p + 30) != std::string::npos) {
        port_ = std::stoi(s.substr(p + 30));
        return;
      }
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "lathe serve did not start; stderr:\n" << slurp(err_);
  }
  ~ServeProcess() { stop(SIGTERM); }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  // Sends `sig` and reaps the child (SIGKILL after 10 s); returns its exit status or -signal.
  int stop(int sig) {
    if (pid_ <= 0) return status_;
    kill(pid_, sig);
    int st = 0;
    for (int i = 0; i < 1000; i++) {
      if (waitpid(pid_, &st, WNOHANG) == pid_) break;
      if (i == 999) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    return status_;
  }
  bool alive() const { return pid_ > 0 && kill(pid_, 0) == 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string stderr_text() const { return slurp(err_); }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0, status_ = 0;
  std::string out_, err_;
};

// A simple Zephyr-style template: each turn ends with the EOS token, so generation stops there.
inline const char* kTestChatTemplate =
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

// Copies the stories260K HF fixture into `dir` with a chat template in its tokenizer_config.json.
inline void make_stories_chat_model(const std::string& dir) {
  namespace fs = std::filesystem;
  std::string src = fixture_path("models/stories260K-hf");
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) fs::copy_file(src + "/" + f, dir + "/" + f);
  nlohmann::json tc = nlohmann::json::parse(slurp(src + "/tokenizer_config.json"));
  tc["chat_template"] = kTestChatTemplate;
  std::ofstream(dir + "/tokenizer_config.json") << tc.dump(2);
}

// A LoRA adapter on every linear with non-zero B, so it visibly changes the model's output.
inline void make_lora_adapter(const std::string& model_dir, const std::string& out_dir, uint64_t seed) {
  Model m = Model::load(model_dir);
  LoraConfig cfg;
  cfg.r = 4;
  cfg.alpha = 8;
  cfg.target_modules = {"all-linear"};
  auto lora = LoraAdapter::create(m.config, cfg, seed);
  Rng rng(seed + 1);
  for (Param* p : lora->params())
    if (p->name.find("lora_B") != std::string::npos)
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 0.5f * float(rng.normal());
  lora->save_peft(out_dir, model_dir);
}

inline void make_prefix_adapter(const std::string& model_dir, const std::string& out_dir, uint64_t seed) {
  Model m = Model::load(model_dir);
  PrefixConfig cfg;
  cfg.num_virtual_tokens = 4;
  auto prefix = PrefixAdapter::create(m.config, cfg, seed);
  prefix->save_peft(out_dir, model_dir);
}

inline nlohmann::json post_json(httplib::Client& c, const std::string& path, const nlohmann::json& body, int* status,
                                const std::string& key = "") {
  httplib::Headers h;
  if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
  auto r = c.Post(path, h, body.dump(), "application/json");
  *status = r ? r->status : -1;
  if (!r) return nullptr;
  return nlohmann::json::parse(r->body, nullptr, false);
}

// The error object is OpenAI's: {"error":{"message","type","param","code"}}.
inline bool is_openai_error(const nlohmann::json& j) {
  return j.is_object() && j.contains("error") && j["error"].contains("message") && j["error"]["message"].is_string() &&
         j["error"].contains("type") && j["error"].contains("param") && j["error"].contains("code");
}

}  // namespace lathe::test
