#include "lathe/ui/ui_playground.h"

#include <condition_variable>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/ui/ui_session.h"

namespace lathe::ui {

namespace fs = std::filesystem;

Playground::~Playground() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

nlohmann::json Playground::describe() {
  nlohmann::json models = nlohmann::json::array();
  std::string base = fs::path(setup_.model).filename().string();
  if (base.empty()) base = "base";
  models.push_back(base);
  for (auto& [n, d] : setup_.adapters) models.push_back(n);
  std::lock_guard<std::mutex> lock(mu_);
  if (server_) {
    base = server_->served_model_name();
    models[0] = base;
  }
  return {{"base", base}, {"models", models}, {"rag", !setup_.index_dir.empty()}, {"started", bool(server_)},
          {"available", fs::exists(setup_.model + "/config.json") || fs::is_regular_file(setup_.model)}};
}

void Playground::ensure_started() {
  std::lock_guard<std::mutex> lock(mu_);
  if (server_) return;
  if (!(fs::exists(setup_.model + "/config.json") || fs::is_regular_file(setup_.model)))
    fail("ui", "the playground needs the base model at {}; run the project first", setup_.model);
  serve::ServerOptions o;
  o.model_path = setup_.model;
  o.host = "127.0.0.1";
  o.port = 0;
  key_ = random_hex();
  o.api_key = key_;
  o.adapters = setup_.adapters;
  o.index_dir = setup_.index_dir;
  o.data_dir = setup_.data_dir;
  o.threads = setup_.threads;
  o.max_concurrency = 4;
  auto server = std::make_unique<serve::Server>(o);
  std::mutex m;
  std::condition_variable cv;
  int port = -1;
  std::string error;
  serve::Server* s = server.get();
  thread_ = std::thread([s, &m, &cv, &port, &error] {
    try {
      s->run([&](int p) {
        std::lock_guard<std::mutex> l(m);
        port = p;
        cv.notify_all();
      });
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> l(m);
      error = e.what();
      port = 0;
      cv.notify_all();
    }
  });
  std::unique_lock<std::mutex> l(m);
  cv.wait(l, [&] { return port >= 0; });
  if (port == 0) {
    l.unlock();
    thread_.join();
    fail("ui", "the playground's server did not start: {}", error);
  }
  port_ = port;
  server_ = std::move(server);
}

void Playground::chat(nlohmann::json body, httplib::DataSink& sink) {
  ensure_started();
  body["stream"] = true;
  if (!body.contains("temperature")) body["temperature"] = 0;
  if (!body.contains("max_tokens")) body["max_tokens"] = 96;
  httplib::Client cli("127.0.0.1", port_);
  cli.set_read_timeout(300, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.headers = {{"Authorization", "Bearer " + key_}};
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) { return sink.write(data, n); };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  if (!cli.send(req, res, err) && err != httplib::Error::Canceled) {
    const std::string msg = nlohmann::json{{"error", {{"message", "the playground's server did not answer: " + httplib::to_string(err)}}}}.dump();
    sink.write(msg.data(), msg.size());
  }
}

}  // namespace lathe::ui
