// Communication between the processes of one job (data-parallel training, sharded data preparation).
//
// A small interface so that the layers above never see MPI: `world()` is MPI's COMM_WORLD when lathe
// was started by mpirun (and built with MPI), and a one-process communicator otherwise, on which
// every collective is the identity. A GPU backend (NCCL) would implement the same calls on device
// buffers, created next to the MPI one in comm.cpp; docs/distributed.md has the design.
//
// Every collective must be called by every rank in the same order with the same sizes (MPI's rule).
// Results are bitwise identical on every rank and between two runs with the same number of ranks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lathe {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks on this machine (they share its cores).
  virtual int local_size() const = 0;
  virtual const char* backend() const = 0;  // "local" | "mpi"

  // Element-wise sums over the ranks, in place.
  virtual void allreduce_sum(float* data, size_t n) = 0;
  virtual void allreduce_sum(double* data, size_t n) = 0;
  virtual void allreduce_sum(int64_t* data, size_t n) = 0;
  // The element-wise maximum (agreement checks: every rank passes a value, all get the largest).
  virtual void allreduce_max(int64_t* data, size_t n) = 0;

  // Non-blocking sum, so that a layer's gradients travel while the layers below run their backward.
  // The buffer must stay untouched until wait_all(); progress() lets the transfers advance (MPI
  // moves data only inside its calls).
  virtual void start_allreduce_sum(float* data, size_t n) = 0;
  virtual void progress() = 0;
  virtual void wait_all() = 0;

  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Every rank's bytes, in rank order, at `root` (the other ranks get an empty vector).
  virtual std::vector<std::string> gather(const std::string& mine, int root) = 0;
  virtual void barrier() = 0;
  // Ends the whole job (every rank) with `code`: a failing rank must never leave the others waiting.
  [[noreturn]] virtual void abort(int code) = 0;

  bool is_root() const { return rank() == 0; }
};

// The process's communicator (created on first use).
Communicator& world();

// True when the environment says an MPI launcher started this process with more than one rank
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_SIZE ...), whether or not this build has MPI.
bool launched_by_mpi();
// Whether this build can talk MPI.
bool built_with_mpi();

// "rank R/N: " under a multi-process job, "" otherwise: the prefix of every message a rank prints.
std::string rank_prefix();

// Threads for a rank when the user set none: the cores divided among the ranks on this machine.
int default_threads_per_rank();

}  // namespace lathe
