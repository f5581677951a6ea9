// project.yaml's `launcher:` section: the training stages of `lathe run` (train, align; on request
// also base and prepare) start under an MPI launcher as `mpirun -np N ... lathe train ...` instead of
// as one process, so a project trains data-parallel over N ranks (docs/distributed.md) without
// changing any other key. One function builds every launched command line (launcher_argv), whichever
// stage asks, so train, align, base and prepare start the same way; run_process starts every stage's
// process, launched or not.
//
//   launcher:
//     mpirun:
//       np: 2                       # ranks (required); part of the training stages' fingerprint
//       hostfile: hosts.txt         # Open MPI hostfile, relative to project.yaml
//       args: [--mca, btl_tcp_if_include, eth0]
//       threads_per_rank: 4         # --threads of each rank (default: the machine's cores / its ranks)
//       executable: /opt/openmpi/bin/mpirun   # default: mpirun on PATH
//     stages: [train, align]        # default
#pragma once
#include <string>
#include <vector>

#include "lathe/core/options.h"
#include "lathe/project/project_config.h"

namespace lathe::project {

struct Launcher {
  int np = 0;                     // 0: no launcher, every stage is one process
  std::string hostfile;           // absolute; "" = none
  std::vector<std::string> args;  // passed to mpirun before the program
  int threads_per_rank = 0;       // 0 = not set
  std::string executable = "mpirun";
  std::vector<std::string> stages{"train", "align"};
  std::string where;  // "project.yaml:LINE:COL" of the section, for messages

  bool enabled() const { return np > 0; }
  bool launches(const std::string& stage) const;
};

// The section's keys (mpirun.np, mpirun.hostfile, ..., stages), declared once like every command's
// options; docs/project.md lists them (a test keeps the two equal).
const OptionTableBase& launcher_options_table();

// Checks the section of a loaded project.yaml beyond types and ranges (np present, the hostfile
// exists); errors name project.yaml:LINE:COL and the key. Called by validate_project_schema.
void check_launcher_section(const ProjectConfig& cfg, const YAML::Node& section);

// The project's launcher (a disabled one without a launcher: section).
Launcher project_launcher(const ProjectConfig& cfg);

// The launcher program's absolute path: `executable` itself when it contains a '/', else the first
// match on PATH. Fails naming launcher.mpirun.executable (and how to get Open MPI) when there is none,
// and when this lathe was built without MPI (its ranks could not talk to each other).
std::string resolve_launcher(const Launcher& l);

// `program` prefixed with the launcher: MPIRUN [--allow-run-as-root when root] -np N [--hostfile F]
// [--bind-to none unless args bind] [-x OMP_NUM_THREADS=T] ARGS PROGRAM... `mpirun` is the resolved
// launcher path.
std::vector<std::string> launcher_argv(const Launcher& l, const std::string& mpirun, const std::vector<std::string>& program);

// Runs `args` (argv[0] an absolute path) in `cwd` with the terminal as its output and waits; returns
// its exit status (128 + the signal when one ended it). Every stage process starts here.
int run_process(const std::vector<std::string>& args, const std::string& cwd);

// A command line as a shell would take it back (single quotes where needed), for messages.
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace lathe::project
