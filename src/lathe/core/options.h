// One declaration per option, for every command: an OptionTable lists a config struct's options, each
// with its YAML key, CLI flag, environment variable, default (the struct's own initialiser), help text
// and validation (type, range, allowed values). From that one list come: reading a YAML file or
// project.yaml section (unknown keys and wrong types are errors naming FILE:LINE), the environment,
// the command line (cli/cli_options.h binds a table to CLI11; this layer never sees CLI11), the
// resolved-config JSON stored with checkpoints, and the printout at start.
//
// Names: the key is the YAML / JSON key ("learning_rate"; dotted for nested sections: "clean.min_chars");
// the flag is "--" + key with '_' and '.' -> '-' ("--learning-rate"), unless declared otherwise; the
// environment variable is "LATHE_" + the key upper-cased, '.' -> '_' ("LATHE_LEARNING_RATE").
//
// Precedence (lowest first): the struct's defaults < a config file (--config, or the project.yaml
// section lathe run passes on) < environment variables < flags given on the command line. Flags win,
// as in Hugging Face / Axolotl tools; the environment sits between, so an exported LATHE_X changes a
// default for a shell session without editing files, and a flag still overrides it. Callers apply the
// layers in that order: apply_options(table, obj, file); apply_options(table, obj, env); ... flags.
//
// Integers are read exactly: 4096.0, 1e3 and values outside the field's type (or declared range) are
// errors naming the key and where the value came from ("c.yaml:3: key 'lora_r' must be an integer
// (got '1.5')", "--lora-r: ...", "LATHE_LORA_R: ...").
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/error.h"

namespace lathe {

enum class OptionKind { String, Bool, Int, Number, StringList, StringMap, NumberList };

// Where a value came from decides how an error names it.
enum class OptionSource { File, Env, Flag, Json };

// One value as read from a source, before conversion to the option's type.
struct OptionValue {
  // A plain scalar as written (YAML scalar, environment, flag): `text`, with is_text set. A quoted
  // YAML scalar is a string whatever it looks like (quoted set). Lists, maps, JSON values: `json`.
  bool is_text = false;
  bool quoted = false;
  std::string text;
  nlohmann::ordered_json json;
  OptionSource source = OptionSource::File;
  std::string where;     // "c.yaml:3" or "project.yaml:6:11" (the value), "--lora-r", "LATHE_LORA_R"
  std::string base_dir;  // a file's directory: path options read from it resolve against it
};

struct Option {
  std::string key, flag, env, help;
  OptionKind kind = OptionKind::String;
  // Range for Int and Number (and NumberList items); Int defaults to the field type's limits.
  long double lo = -std::numeric_limits<long double>::infinity();
  long double hi = std::numeric_limits<long double>::infinity();
  bool lo_open = false, hi_open = false;
  bool has_lo = false, has_hi = false;  // declared (shown in messages); else only the type's limits
  std::vector<std::string> choices;     // String, StringList items
  size_t min_items = 0, max_items = SIZE_MAX;  // lists
  bool scalar_as_list = false;  // a list option given one scalar: a list of one (paths: `inputs: raw/`)
  bool list_as_csv = false;     // String given as a YAML list: joined with ',' (lora_target_modules)
  bool is_path = false;         // relative paths from a file resolve against the file's directory
  bool in_json = true;          // part of to_json / the printout
  bool repeatable_flag = false; // list flags: --input a --input b (else one comma-separated value)
  bool required = false;        // must be non-empty once every source is applied (check_required)
  std::string default_text;     // for --help, set by the table from a default-constructed struct
  // Accessors into the table's struct (type-erased; OptionTable<C> fills them).
  std::function<nlohmann::json(const void*)> get;
  std::function<void(void*, const nlohmann::json&)> set;  // receives the converted, checked value

  // Declaration helpers, chainable: t.add(...).min(1).one_of({...}).
  Option& min(long double v) { lo = v, lo_open = false, has_lo = true; return *this; }
  Option& above(long double v) { lo = v, lo_open = true, has_lo = true; return *this; }
  Option& max(long double v) { hi = v, hi_open = false, has_hi = true; return *this; }
  Option& below(long double v) { hi = v, hi_open = true, has_hi = true; return *this; }
  Option& range(long double a, long double b) { return min(a).max(b); }
  Option& one_of(std::vector<std::string> c) { choices = std::move(c); return *this; }
  Option& with_flag(std::string f) { flag = std::move(f); return *this; }
  Option& no_flag() { flag.clear(); return *this; }
  Option& with_env(std::string e) { env = std::move(e); return *this; }
  Option& path() { is_path = true; return *this; }
  Option& one_or_list() { scalar_as_list = true; return *this; }
  Option& csv() { list_as_csv = true; return *this; }
  Option& hidden_from_json() { in_json = false; return *this; }
  Option& repeatable() { repeatable_flag = true; return *this; }
  Option& needed() { required = true; return *this; }
  Option& items(size_t lo_n, size_t hi_n) { min_items = lo_n, max_items = hi_n; return *this; }
};

// A rejected key or value. what() is "[component] WHERE: key 'k' PROBLEM" for files and JSON,
// "[component] --flag: PROBLEM" / "[component] LATHE_X: PROBLEM" otherwise; the parts stay available
// so project.yaml can word it as "project.yaml:L:C: section.key: PROBLEM".
class OptionError : public Error {
 public:
  OptionError(const std::string& component, std::string where, std::string key, std::string problem, bool unknown_key,
              OptionSource source);
  std::string where, key, problem;
  bool names_key;  // the problem names the key itself (unknown keys, misshapen sections)
  OptionSource source;
};

// The value converted to the option's type and checked; throws a plain message (the PROBLEM part)
// as OptionProblem on failure. Exposed for the CLI binding's parse-time check.
struct OptionProblem {
  std::string message;
};
nlohmann::json option_convert(const Option& o, const OptionValue& v);

// "learning_rate" -> "--learning-rate"; "clean.min_chars" -> "LATHE_CLEAN_MIN_CHARS".
std::string option_flag_of(const std::string& key);
std::string option_env_of(const std::string& key);

// The closest of `known` to `key` by edit distance (a swap of two neighbours counts 1; the flag
// spelling with '-' is no typo), or "" when none is close enough to be what was meant.
std::string closest_key(const std::string& key, const std::vector<std::string>& known);

// One key's value from some source, matched to its option.
struct OptionSetting {
  const Option* option = nullptr;
  OptionValue value;
};
using OptionSettings = std::vector<OptionSetting>;

class OptionTableBase {
 public:
  explicit OptionTableBase(std::string component) : component_(std::move(component)) {}
  const std::string& component() const { return component_; }
  const std::vector<Option>& options() const { return options_; }
  const Option* find(const std::string& key) const;
  std::vector<std::string> keys() const;

  // Converts, checks and stores every setting into `obj` (a struct of this table's type); throws
  // OptionError naming the key and the setting's source.
  void apply(void* obj, const OptionSettings& settings) const;
  // One value per option whose environment variable is set (getenv), in table order.
  OptionSettings from_env() const;
  // {"key": value} from a JSON object (a checkpoint's resolved config): unknown keys and wrong types
  // are errors naming "WHERE: key 'k'".
  OptionSettings from_json(const nlohmann::json& j, const std::string& where) const;
  // The options' current values; dotted keys become nested objects. Options marked
  // hidden_from_json are left out.
  nlohmann::json to_json(const void* obj) const;
  // "key: value" lines in table order.
  std::string to_string(const void* obj) const;
  // The current values against the declarations (type range, declared range, choices; required
  // options non-empty), for structs filled in code; values equal to the default (`defaults`, a
  // default-constructed struct) pass: -1 may mean "none" where a given value must be >= 0. Throws
  // OptionError naming the flag.
  void check(const void* obj, const void* defaults) const;

 protected:
  std::string component_;
  std::vector<Option> options_;
};

namespace options_detail {
template <class T>
constexpr OptionKind kind_of() {
  if constexpr (std::is_same_v<T, std::string>) return OptionKind::String;
  else if constexpr (std::is_same_v<T, bool>) return OptionKind::Bool;
  else if constexpr (std::is_integral_v<T>) return OptionKind::Int;
  else if constexpr (std::is_floating_point_v<T>) return OptionKind::Number;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return OptionKind::StringList;
  else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) return OptionKind::StringMap;
  else if constexpr (std::is_same_v<T, std::vector<double>>) return OptionKind::NumberList;
  else static_assert(sizeof(T) == 0, "no option kind for this field type");
}
template <class T>
void store(T& field, const nlohmann::json& v) {
  if constexpr (std::is_same_v<T, bool>) field = v.get<bool>();
  else if constexpr (std::is_integral_v<T>) field = v.is_number_unsigned() ? T(v.get<uint64_t>()) : T(v.get<int64_t>());
  else field = v.get<T>();
}
}  // namespace options_detail

// The table of config struct C. Declare entries in a function that builds it once:
//   static const OptionTable<TrainOptions> t = [] { OptionTable<TrainOptions> t("train");
//     t.add("learning_rate", &TrainOptions::learning_rate, "Peak learning rate").above(0); ...; return t; }();
template <class C>
class OptionTable : public OptionTableBase {
 public:
  using OptionTableBase::OptionTableBase;

  // A field reached by member pointer.
  template <class T>
  Option& add(const std::string& key, T C::*member, const std::string& help) {
    return add_field<T>(key, help, [member](C& c) -> T& { return c.*member; });
  }
  // A field reached by an accessor (nested structs): [](C& c) -> auto& { return c.clean.min_chars; }.
  template <class F>
  Option& add(const std::string& key, F access, const std::string& help) {
    using T = std::remove_reference_t<decltype(access(std::declval<C&>()))>;
    return add_field<T>(key, help, std::function<T&(C&)>(access));
  }
  // A value of type T kept in another shape (one number fanned out into an array).
  template <class T>
  Option& add_computed(const std::string& key, std::function<T(const C&)> getter, std::function<void(C&, const T&)> setter,
                       const std::string& help) {
    Option& o = declare(key, help, options_detail::kind_of<T>());
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) set_int_limits<T>(o);
    o.get = [getter](const void* p) { return nlohmann::json(getter(*static_cast<const C*>(p))); };
    o.set = [setter](void* p, const nlohmann::json& v) {
      T x{};
      options_detail::store(x, v);
      setter(*static_cast<C*>(p), x);
    };
    o.default_text = default_text_of(o);
    return o;
  }

  // A field with another option's help and validation under a key of its own (project.yaml's
  // goal.gates.min_pass_rate is lathe eval's min_pass_rate).
  template <class F>
  Option& add_like(const Option& like, const std::string& key, F access) {
    Option& o = add(key, access, like.help);
    o.lo = like.lo, o.hi = like.hi, o.lo_open = like.lo_open, o.hi_open = like.hi_open;
    o.has_lo = like.has_lo, o.has_hi = like.has_hi;
    o.choices = like.choices, o.min_items = like.min_items, o.max_items = like.max_items;
    o.scalar_as_list = like.scalar_as_list, o.list_as_csv = like.list_as_csv, o.is_path = like.is_path;
    o.flag = like.flag;
    return o;
  }

  void apply(C& obj, const OptionSettings& s) const { OptionTableBase::apply(&obj, s); }
  void check(const C& obj) const {
    const C defaults{};
    OptionTableBase::check(&obj, &defaults);
  }
  nlohmann::json to_json(const C& obj) const { return OptionTableBase::to_json(&obj); }
  std::string to_string(const C& obj) const { return OptionTableBase::to_string(&obj); }

 private:
  Option& declare(const std::string& key, const std::string& help, OptionKind kind) {
    Option o;
    o.key = key;
    o.flag = option_flag_of(key);
    o.env = option_env_of(key);
    o.help = help;
    o.kind = kind;
    o.repeatable_flag = kind == OptionKind::StringList;
    options_.push_back(std::move(o));
    return options_.back();
  }
  template <class T>
  static void set_int_limits(Option& o) {
    o.lo = (long double)std::numeric_limits<T>::min();
    o.hi = (long double)std::numeric_limits<T>::max();
  }
  static std::string default_text_of(const Option& o) {
    const C def{};
    const nlohmann::json j = o.get(&def);
    return j.is_string() ? j.get<std::string>() : j.dump();
  }
  template <class T>
  Option& add_field(const std::string& key, const std::string& help, std::function<T&(C&)> access) {
    Option& o = declare(key, help, options_detail::kind_of<T>());
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) set_int_limits<T>(o);
    o.get = [access](const void* p) { return nlohmann::json(access(*const_cast<C*>(static_cast<const C*>(p)))); };
    o.set = [access](void* p, const nlohmann::json& v) { options_detail::store(access(*static_cast<C*>(p)), v); };
    o.default_text = default_text_of(o);
    return o;
  }
};

}  // namespace lathe
