// lathe serve: the OpenAI-compatible HTTP server (docs/serve.md).
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "lathe/cli/command.h"
#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/serve/limits.h"
#include "lathe/serve/server.h"

namespace {

std::string trim(std::string s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<lathe::serve::ServerOptions>();
  auto adapters = std::make_shared<std::vector<std::string>>();
  auto key_file = std::make_shared<std::string>();
  int& threads = lathe::cli::add_threads_option(app);
  app.add_option("--model", o->model_path, "HF model directory or .gguf file (with its tokenizer)")->required();
  app.add_option("--adapter", *adapters, "NAME=DIR: a PEFT adapter (LoRA or prefix) served as model NAME; repeatable");
  app.add_option("--host", o->host, "Address to listen on")->capture_default_str();
  app.add_option("--port", o->port, "Port (0 = any free port, printed at start)")->capture_default_str();
  auto* key = app.add_option("--api-key", o->api_key, "Require Authorization: Bearer KEY on /v1/*")->envname("LATHE_API_KEY");
  app.add_option("--api-key-file", *key_file, "Read the API key from this file (first line)")->excludes(key);
  app.add_option("--admin-key", o->admin_key, "Key for POST/DELETE /v1/adapters (default: the API key)")
      ->envname("LATHE_ADMIN_KEY");
  app.add_option("--served-model-name", o->served_model_name, "Name of the base model in the API (default: the directory name)");
  app.add_option("--max-concurrency", o->max_concurrency, "Requests generating at once")->capture_default_str();
  app.add_option("--queue-size", o->queue_size, "Requests waiting beyond those; more get HTTP 429")->capture_default_str();
  app.add_option("--ctx", o->ctx, "Context length in tokens (0 = the model's max_position_embeddings)")->capture_default_str();
  app.add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per scheduler turn")->capture_default_str();
  app.add_option("--data-dir", o->data_dir, "Directory of the feedback database (feedback.sqlite)")->capture_default_str();
  app.add_option("--log-prompts", o->log_prompts, "Store request messages and answers: on, off, or redact (PII replaced)")
      ->check(CLI::IsMember({"on", "off", "redact"}))
      ->capture_default_str();
  app.add_option("--chat-template", o->chat_template, "Built-in template name (chatml, llama3, alpaca) or a .jinja file")
      ->capture_default_str();
  app.add_flag("--batch-decode,!--no-batch-decode", o->batch_decode,
               "Decode all generating requests in one batched step (off: one step per request)")
      ->capture_default_str();
  app.add_option("--timeout", o->timeout_s, "Per-request timeout in seconds, queueing included")->capture_default_str();
  app.add_option("--max-body-bytes", o->max_body_bytes, "Larger request bodies (chunked included) get HTTP 413")
      ->capture_default_str();
  app.add_option("--max-connections-per-client", o->max_connections_per_client,
                 "Open connections per client address; more are refused with 429 (0 = no cap)")
      ->capture_default_str();
  app.add_option("--header-timeout", o->header_timeout_s,
                 "Seconds within which a request's line and headers must all arrive (else 408, connection closed)")
      ->capture_default_str();
  return [o, adapters, key_file, &threads] {
    lathe::cli::apply_threads(threads);
    o->threads = threads;  // the generation worker applies it to itself (OpenMP settings are per thread)
    for (const std::string& a : *adapters) {
      size_t eq = a.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == a.size())
        lathe::fail("serve", "--adapter '{}': expected NAME=DIR", a);
      o->adapters.emplace_back(a.substr(0, eq), a.substr(eq + 1));
    }
    if (!key_file->empty()) {
      std::string k = lathe::read_file(*key_file);
      o->api_key = trim(k.substr(0, k.find('\n')));
      if (o->api_key.empty()) lathe::fail("serve", "--api-key-file {}: the file is empty", *key_file);
    }
    // A client that disconnects mid-write must not kill the server.
    std::signal(SIGPIPE, SIG_IGN);
    // SIGINT/SIGTERM stop the listener from a thread of our own (httplib's stop is not
    // async-signal-safe), so in-flight requests finish their writes and the database closes cleanly.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);  // our own wake-up when the server ends for another reason
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every thread started below
    lathe::serve::Server server(*o);
    std::atomic<bool> finished{false};
    std::thread waiter([&server, &finished, set] {
      int sig = 0;
      sigwait(&set, &sig);
      if (sig == SIGUSR1) return;
      std::fprintf(stderr, "lathe serve: signal %d, stopping\n", sig);
      auto t0 = std::chrono::steady_clock::now();
      server.stop();  // in-flight generations are cancelled at their next step
      // Draining is bounded by the I/O timeouts; should something still hang, do not hang with it.
      while (!finished.load()) {
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s > lathe::serve::kDrainTimeoutS) {
          std::fprintf(stderr, "lathe serve: connections did not drain within %.0f s; exiting\n", lathe::serve::kDrainTimeoutS);
          std::fflush(stderr);
          std::_Exit(1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    struct JoinWaiter {  // wakes and joins the waiter however run() ends
      std::thread& t;
      std::atomic<bool>& finished;
      ~JoinWaiter() {
        finished = true;
        pthread_kill(t.native_handle(), SIGUSR1);  // harmless when it already returned (not yet joined)
        t.join();
      }
    } join_waiter{waiter, finished};
    server.run([&](int port) {
      std::printf("lathe serve: listening on http://%s:%d (model '%s')\n", o->host.c_str(), port,
                  server.served_model_name().c_str());
      std::fflush(stdout);
    });
    std::fprintf(stderr, "lathe serve: stopped\n");
    return 0;
  };
}
LATHE_COMMAND("serve", "OpenAI-compatible HTTP server with adapters and a feedback store", setup);

}  // namespace
