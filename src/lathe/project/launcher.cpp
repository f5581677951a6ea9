#include "lathe/project/launcher.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "lathe/core/error.h"
#include "lathe/core/options_yaml.h"
#include "lathe/dist/comm.h"

namespace fs = std::filesystem;

namespace lathe::project {

bool Launcher::launches(const std::string& stage) const {
  return enabled() && std::find(stages.begin(), stages.end(), stage) != stages.end();
}

namespace {

const OptionTable<Launcher>& table() {
  using L = Launcher;
  static const OptionTable<L> t = [] {
    OptionTable<L> t("project");
    // No flags: the section lives in project.yaml only (lathe run has no per-stage flags).
    t.add("mpirun.np", &L::np, "Ranks (processes) of each launched stage; the global batch is "
                               "gradient_accumulation_steps x per_device_train_batch_size x np")
        .min(1)
        .no_flag();
    t.add("mpirun.hostfile", &L::hostfile, "An Open MPI hostfile (one 'host slots=N' a line), relative to project.yaml")
        .no_flag();
    t.add("mpirun.args", &L::args, "Further mpirun arguments, before the program (e.g. [--mca, btl_tcp_if_include, eth0])")
        .no_flag();
    t.add("mpirun.threads_per_rank", &L::threads_per_rank,
          "Threads of each rank (--threads, OMP_NUM_THREADS); default: the machine's cores / its ranks")
        .min(1)
        .no_flag();
    t.add("mpirun.executable", &L::executable, "The launcher program: a path, or a name looked up on PATH").no_flag();
    t.add("stages", &L::stages, "The stages that run under the launcher").one_of({"base", "prepare", "train", "align"}).no_flag();
    return t;
  }();
  return t;
}

std::string at(const ProjectConfig& cfg, const YAML::Node& n) { return cfg.where(n); }

}  // namespace

const OptionTableBase& launcher_options_table() { return table(); }

void check_launcher_section(const ProjectConfig& cfg, const YAML::Node& n) {
  if (!n.IsMap()) fail("project", "{}: launcher: expected a mapping (mpirun: {{np: N, ...}})", at(cfg, n));
  const YAML::Node& m = n["mpirun"];
  // mpirun is the only launcher so far; a section without it would silently train in one process.
  if (!m || m.IsNull()) fail("project", "{}: launcher.mpirun: required (np: N, and optionally hostfile, args, "
                             "threads_per_rank, executable)", at(cfg, n));
  if (!m.IsMap()) fail("project", "{}: launcher.mpirun: expected a mapping (np: N, ...)", at(cfg, m));
  if (!m["np"]) fail("project", "{}: launcher.mpirun.np: required (the number of ranks)", at(cfg, m));
  if (m["hostfile"] && m["hostfile"].IsScalar()) {
    const std::string f = cfg.resolve(m["hostfile"].Scalar());
    if (!fs::is_regular_file(f)) fail("project", "{}: launcher.mpirun.hostfile: no such file {}", at(cfg, m["hostfile"]), f);
  }
  if (m["executable"] && m["executable"].IsScalar() && m["executable"].Scalar().empty())
    fail("project", "{}: launcher.mpirun.executable: empty", at(cfg, m["executable"]));
}

Launcher project_launcher(const ProjectConfig& cfg) {
  Launcher l;
  if (!cfg.has("launcher")) return l;
  const YAML::Node n = cfg.section("launcher");
  const OptionTable<Launcher>& t = table();
  t.apply(l, options_from_yaml(n, all_options(t), {"project", cfg.path, true, "launcher", cfg.dir, {}}));
  if (!l.hostfile.empty()) l.hostfile = cfg.resolve(l.hostfile);
  // Messages point at the `mpirun:` key, which the settings below it configure.
  l.where = cfg.where(n);
  for (auto it = n.begin(); it != n.end(); ++it)
    if (it->first.IsScalar() && it->first.Scalar() == "mpirun") l.where = cfg.where(it->first);
  return l;
}

std::string resolve_launcher(const Launcher& l) {
  if (!built_with_mpi())
    fail("project", "{}: launcher: this lathe was built without MPI, so its ranks could not work together; install "
         "libopenmpi-dev and rebuild (scripts/setup.sh), or remove the launcher section to train in one process", l.where);
  auto runnable = [](const std::string& p) { return fs::is_regular_file(p) && access(p.c_str(), X_OK) == 0; };
  if (l.executable.find('/') != std::string::npos) {
    const std::string p = fs::absolute(l.executable).string();
    if (!runnable(p))
      fail("project", "{}: launcher.mpirun.executable: {} is not an executable file", l.where, p);
    return p;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  for (size_t i = 0; i <= dirs.size();) {
    size_t j = dirs.find(':', i);
    if (j == std::string::npos) j = dirs.size();
    const std::string d = j > i ? dirs.substr(i, j - i) : ".";
    const std::string p = d + "/" + l.executable;
    if (runnable(p)) return fs::absolute(p).string();
    i = j + 1;
  }
  fail("project", "{}: launcher.mpirun: '{}' is not on PATH ({}); install Open MPI (Debian: openmpi-bin), name it with "
       "launcher.mpirun.executable, or remove the launcher section to train in one process",
       l.where, l.executable, dirs.empty() ? "PATH is empty" : "PATH=" + dirs);
}

std::vector<std::string> launcher_argv(const Launcher& l, const std::string& mpirun,
                                       const std::vector<std::string>& program) {
  std::vector<std::string> a{mpirun};
  auto has = [&](const std::string& opt) {
    for (const std::string& x : l.args)
      if (x == opt || x == "-" + opt || x.rfind(opt + "=", 0) == 0) return true;
    return false;
  };
  // Open MPI refuses to start as root unless told; containers usually run as root.
  if (geteuid() == 0 && !has("--allow-run-as-root")) a.push_back("--allow-run-as-root");
  a.insert(a.end(), {"-np", std::to_string(l.np)});
  if (!l.hostfile.empty()) a.insert(a.end(), {"--hostfile", l.hostfile});
  // Open MPI binds each rank to one core when np <= 2 (to a socket above): every thread of a rank
  // would then share that core. lathe's ranks run their own thread pools, so no binding by default.
  if (!has("--bind-to")) a.insert(a.end(), {"--bind-to", "none"});
  // -x NAME=VALUE reaches the ranks on every host, not only the local ones (which inherit the
  // environment anyway).
  if (l.threads_per_rank > 0) a.insert(a.end(), {"-x", "OMP_NUM_THREADS=" + std::to_string(l.threads_per_rank)});
  a.insert(a.end(), l.args.begin(), l.args.end());
  a.insert(a.end(), program.begin(), program.end());
  return a;
}

// Runs `args` in the project directory (so relative paths in stage configs mean what they mean in
// project.yaml), with the terminal as its output. Returns the exit status.
int run_process(const std::vector<std::string>& args, const std::string& cwd) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) fail("project", "cannot start {}: fork failed", args[0]);
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: write(2), not stdio.
    auto say = [](const std::string& what, const std::string& path) {
      const std::string m = "lathe run: cannot " + what + " " + path + "\n";
      if (write(2, m.data(), m.size()) < 0) _exit(127);
    };
    if (chdir(cwd.c_str()) != 0) {
      say("enter the project directory", cwd);
      _exit(127);
    }
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    say("run", args[0]);
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) fail("project", "waiting for {} failed: {}", args[0], std::strerror(errno));
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& x : argv) {
    if (!s.empty()) s += ' ';
    const bool plain = !x.empty() && x.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789_-+=./:,@%") == std::string::npos;
    if (plain) {
      s += x;
      continue;
    }
    s += '\'';
    for (char c : x) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
    s += '\'';
  }
  return s;
}

}  // namespace lathe::project
