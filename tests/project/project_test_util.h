// Shared by the project tests: which stages a `lathe run` printed as running / unchanged.
#pragma once
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "lathe/core/file_io.h"
#include "test_util.h"

namespace lathe::test {

// "train,eval" for the lines "== train    running" and "== eval     running" when what = "running".
inline std::string stages_with(const std::string& out, const std::string& what) {
  std::string s;
  std::regex re("== (\\w+) +" + what);
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
    s += (s.empty() ? "" : ",") + (*it)[1].str();
  return s;
}

// The tiny project the stage tests run: a 2-layer model with stories260K's tokenizer in DIR/base and
// two QA records in DIR/chat.jsonl (callers skip without the fixture: LATHE_REQUIRE_FIXTURE).
inline void make_tiny_project_base(const std::string& dir) {
  std::string out;
  ASSERT_EQ(run_lathe("init-model --hidden-size 64 --intermediate-size 128 --num-hidden-layers 2 --seed 5 "
                      "--initializer-range 0.2 --tokenizer " + fixture_path("models/stories260K-hf") +
                      " --output " + dir + "/base", &out, true), 0) << out;
  lathe::write_file_atomic(dir + "/chat.jsonl",
                           R"({"question":"Who is Lily?","answer":"Lily is a girl."})" "\n"
                           R"({"question":"Where is the ball?","answer":"The ball is in the park."})" "\n");
}

}  // namespace lathe::test
