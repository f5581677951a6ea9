// Subcommands register themselves here: each cmd_<name>.cpp defines one command with
// LATHE_COMMAND(name, "help", fn) and main.cpp dispatches by name. Options are declared with CLI11,
// one declaration per option (flag, default, help), so parsing, --help and printing share it.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <string>

namespace lathe::cli {

struct Command {
  std::string help;
  // Declares options on `app`; returns the function to run after parsing (its result is the exit code).
  std::function<std::function<int()>(CLI::App& app)> setup;
};

std::map<std::string, Command>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(const std::string& name, const std::string& help,
                   std::function<std::function<int()>(CLI::App&)> setup) {
    command_registry()[name] = Command{help, std::move(setup)};
  }
};

// Adds the standard --threads option (0 = all cores) and returns a reference to its value.
int& add_threads_option(CLI::App& app);
// Applies --threads to OpenMP and BLAS.
void apply_threads(int n);

}  // namespace lathe::cli

#define LATHE_CONCAT_INNER(a, b) a##b
#define LATHE_CONCAT(a, b) LATHE_CONCAT_INNER(a, b)
#define LATHE_COMMAND(name, help, setup_fn) \
  static ::lathe::cli::CommandRegistrar LATHE_CONCAT(lathe_cmd_, __LINE__)(name, help, setup_fn)
