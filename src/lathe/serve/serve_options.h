// `lathe serve`'s options, declared once (core/options.h): flag, YAML key of project.yaml's `serve:`
// section, environment variable (LATHE_PORT, LATHE_API_KEY, ...), default (ServerOptions' own
// initialisers), help and validation. Every key is documented in docs/serve.md (a unit test keeps the
// two equal).
#pragma once
#include <string>
#include <vector>

#include "lathe/core/options.h"
#include "lathe/serve/server.h"

namespace lathe::serve {

// What the command line says, before the server's own shape: adapters as NAME=DIR text and the API
// key possibly in a file.
struct ServeCommandOptions {
  ServerOptions server;
  std::vector<std::string> adapters;  // NAME=DIR
  std::string api_key_file;
};

const OptionTable<ServeCommandOptions>& serve_options_table();

// Checks what involves several options and turns the command's options into the server's: adapters
// split at '=', the API key read from api_key_file. Throws "[serve] --flag: ..." naming the option.
ServerOptions finish_serve_options(const ServeCommandOptions& o);

}  // namespace lathe::serve
