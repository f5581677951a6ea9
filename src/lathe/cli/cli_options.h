// The one place option tables (core/options.h) meet CLI11: every option of a table that has a flag
// becomes a CLI11 flag with the table's help text, default and environment variable shown in --help;
// a bool becomes --key and --no-key. The flags only collect text: conversion, range checks and
// precedence stay with the table (core/options.h), so a value means the same from a flag, the
// environment or a file. A value of the wrong type is refused while parsing (CLI11's error, exit code
// as for any bad flag); a value out of range is refused when the table applies it, naming the flag.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "lathe/core/options.h"

namespace lathe::cli {

class CliOptions {
 public:
  // Declares the flags of `table`'s options (only those whose key is in `only`, when given). `table`
  // must outlive this object (tables are static).
  CliOptions(CLI::App& app, const OptionTableBase& table, const std::vector<std::string>& only = {});
  // After parsing: one setting per flag given on the command line, in table order.
  OptionSettings given() const;
  // The environment's settings, then the flags': what goes over a config file, in precedence order.
  OptionSettings overrides() const;
  const OptionTableBase& table() const { return table_; }

 private:
  struct Bound {
    const Option* option;
    CLI::Option* cli = nullptr;
    std::string text;
    std::vector<std::string> list;
    bool flag = false;
  };
  const OptionTableBase& table_;
  std::vector<std::unique_ptr<Bound>> bound_;  // stable addresses: CLI11 keeps references
};

}  // namespace lathe::cli
