// The MPI backend of Communicator (OpenMPI from Debian; any MPI-3 library works).
#ifdef LATHE_HAVE_MPI
// The C API only: mpi.h in C++ would otherwise declare MPI's removed C++ bindings (libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "lathe/core/error.h"
#include "lathe/dist/comm.h"

namespace lathe {

namespace {

// MPI counts are int: larger buffers go in pieces.
constexpr size_t kMaxCount = size_t(1) << 30;

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      // FUNNELED: only the main thread calls MPI; OpenMP threads run the kernels in between.
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        fail("mpi", "MPI_Init_thread failed");
      std::atexit(finalize_at_exit);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local_size_);
    MPI_Comm_free(&node);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }
  const char* backend() const override { return "mpi"; }

  void allreduce_sum(float* d, size_t n) override { reduce(d, n, MPI_FLOAT, MPI_SUM); }
  void allreduce_sum(double* d, size_t n) override { reduce(d, n, MPI_DOUBLE, MPI_SUM); }
  void allreduce_sum(int64_t* d, size_t n) override { reduce(d, n, MPI_INT64_T, MPI_SUM); }
  void allreduce_max(int64_t* d, size_t n) override { reduce(d, n, MPI_INT64_T, MPI_MAX); }

  void start_allreduce_sum(float* d, size_t n) override {
    for (size_t i = 0; i < n; i += kMaxCount) {
      MPI_Request r;
      MPI_Iallreduce(MPI_IN_PLACE, d + i, int(std::min(kMaxCount, n - i)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r);
      pending_.push_back(r);
    }
  }
  void progress() override {
    if (pending_.empty()) return;
    int done = 0;
    MPI_Testall(int(pending_.size()), pending_.data(), &done, MPI_STATUSES_IGNORE);
    if (done) pending_.clear();
  }
  void wait_all() override {
    if (pending_.empty()) return;
    MPI_Waitall(int(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE);
    pending_.clear();
  }

  void broadcast(void* data, size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (size_t i = 0; i < bytes; i += kMaxCount)
      MPI_Bcast(p + i, int(std::min(kMaxCount, bytes - i)), MPI_BYTE, root, MPI_COMM_WORLD);
  }

  std::vector<std::string> gather(const std::string& mine, int root) override {
    if (mine.size() > size_t(INT_MAX)) fail("mpi", "rank {}: {} bytes to gather; at most {} per rank", rank_, mine.size(), INT_MAX);
    int len = int(mine.size());
    std::vector<int> lens(size_t(size_), 0), offs(size_t(size_), 0);
    MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, root, MPI_COMM_WORLD);
    std::string all;
    if (rank_ == root) {
      int64_t total = 0;
      for (int r = 0; r < size_; r++) offs[size_t(r)] = int(total), total += lens[size_t(r)];
      if (total > INT_MAX) fail("mpi", "{} bytes to gather at rank {}; at most {} in all", total, root, INT_MAX);
      all.resize(size_t(total));
    }
    MPI_Gatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), offs.data(), MPI_BYTE, root, MPI_COMM_WORLD);
    std::vector<std::string> out;
    if (rank_ == root)
      for (int r = 0; r < size_; r++) out.push_back(all.substr(size_t(offs[size_t(r)]), size_t(lens[size_t(r)])));
    return out;
  }

  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  void reduce(void* d, size_t n, MPI_Datatype t, MPI_Op op) {
    int bytes = 0;
    MPI_Type_size(t, &bytes);
    auto* p = static_cast<char*>(d);
    for (size_t i = 0; i < n; i += kMaxCount)
      MPI_Allreduce(MPI_IN_PLACE, p + i * size_t(bytes), int(std::min(kMaxCount, n - i)), t, op, MPI_COMM_WORLD);
  }

  int rank_ = 0, size_ = 1, local_size_ = 1;
  std::vector<MPI_Request> pending_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace lathe
#endif  // LATHE_HAVE_MPI
