#include "lathe/dist/comm.h"

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <thread>

#include "lathe/core/error.h"

namespace lathe {

// Defined in comm_mpi.cpp when the build has MPI.
std::unique_ptr<Communicator> make_mpi_communicator();

namespace {

// One process: every collective is the identity.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  const char* backend() const override { return "local"; }
  void allreduce_sum(float*, size_t) override {}
  void allreduce_sum(double*, size_t) override {}
  void allreduce_sum(int64_t*, size_t) override {}
  void allreduce_max(int64_t*, size_t) override {}
  void start_allreduce_sum(float*, size_t) override {}
  void progress() override {}
  void wait_all() override {}
  void broadcast(void*, size_t, int) override {}
  std::vector<std::string> gather(const std::string& mine, int) override { return {mine}; }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

const char* env_of_launcher() {
  for (const char* k : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(k)) return k;
  return nullptr;
}

}  // namespace

bool launched_by_mpi() { return env_of_launcher() != nullptr; }

bool built_with_mpi() {
#ifdef LATHE_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Communicator& world() {
  static std::unique_ptr<Communicator> comm = []() -> std::unique_ptr<Communicator> {
    if (!launched_by_mpi()) return std::make_unique<LocalCommunicator>();
    if (!built_with_mpi())
      fail("mpi", "started by an MPI launcher ({} is set) but this lathe was built without MPI; install "
           "libopenmpi-dev and rebuild (scripts/setup.sh), or run lathe without mpirun", env_of_launcher());
    return make_mpi_communicator();
  }();
  return *comm;
}

std::string rank_prefix() {
  if (!launched_by_mpi()) return "";
  Communicator& w = world();
  return w.size() > 1 ? "rank " + std::to_string(w.rank()) + "/" + std::to_string(w.size()) + ": " : "";
}

int default_threads_per_rank() {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const int local = launched_by_mpi() ? world().local_size() : 1;
  return std::max(1, cores / std::max(1, local));
}

#ifndef LATHE_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator() { return nullptr; }
#endif

}  // namespace lathe
