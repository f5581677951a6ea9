// The Playground page's models: `lathe serve`'s own server (serve/server.h), started in this process
// on a loopback port with a random key the first time the page chats, over the project's base model,
// its adapters (tuned, and the align round's) and its retrieval index. The page's chat requests are
// relayed to it as they stream, so the generation, the chat template, the stop tokens and retrieval
// are exactly what `lathe serve` does, and each answer lands in the feedback store the Feedback page
// reads (the same data directory).
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "lathe/serve/server.h"

namespace lathe::ui {

struct PlaygroundSetup {
  std::string model;                                           // the base model directory
  std::vector<std::pair<std::string, std::string>> adapters;   // NAME, DIR
  std::string index_dir;                                       // "" = no retrieval
  std::string data_dir;                                        // the feedback store's directory
  int threads = 0;
};

class Playground {
 public:
  explicit Playground(PlaygroundSetup s) : setup_(std::move(s)) {}
  ~Playground();
  // {"base": name, "models": [names], "rag": bool, "started": bool}
  nlohmann::json describe();
  // Relays one chat request (OpenAI's body; stream is forced on) to the server, writing its events
  // to `sink` as they arrive. Starts the server on first use (throws lathe::Error when it cannot).
  void chat(nlohmann::json body, httplib::DataSink& sink);

 private:
  void ensure_started();

  PlaygroundSetup setup_;
  std::mutex mu_;
  std::unique_ptr<serve::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::string key_;
};

}  // namespace lathe::ui
