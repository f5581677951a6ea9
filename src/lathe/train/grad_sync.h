// Data-parallel gradient exchange: after every rank has run the backward of its share of the
// optimizer step, each trainable gradient becomes the sum over the ranks.
//
// Gradients travel in buckets (up to `bucket_bytes`, never mixing decoder layers), packed into
// contiguous buffers so that a LoRA step is a handful of messages and a full fine-tuning step a few
// dozen. During the step's last backward the trainer reports each finished decoder layer
// (layer_done), and that layer's buckets start travelling while the layers below still compute;
// finish() sends whatever has not started (embeddings, norms, the head, prefixes) and waits.
// With one rank every call is a no-op, so the single-process path pays nothing.
#pragma once
#include <cstddef>
#include <vector>

#include "lathe/dist/comm.h"
#include "lathe/train/params.h"

namespace lathe {

class GradSync {
 public:
  GradSync(Communicator& comm, const ParamList& params, size_t bucket_bytes = size_t(32) << 20);

  bool active() const { return comm_.size() > 1; }
  // Layer `layer`'s gradients are final for this step: pack and start its buckets.
  void layer_done(int layer);
  // Sums every gradient over the ranks (starting the buckets not started yet) and writes them back.
  void finish();

  size_t buckets() const { return buckets_.size(); }
  size_t bytes_per_step() const;     // gradient bytes each rank contributes per step
  double wait_seconds() const { return wait_s_; }  // time finish() spent waiting, summed over steps
  int overlapped_buckets() const { return overlapped_; }  // of the last step: buckets started before finish()

 private:
  struct Bucket {
    int layer = -1;  // decoder layer of its parameters, -1 for the rest
    std::vector<Param*> params;
    std::vector<float> buf;
    bool started = false;
  };
  void start(Bucket& b);

  Communicator& comm_;
  std::vector<Bucket> buckets_;
  double wait_s_ = 0;
  int overlapped_ = 0, started_early_ = 0;
};

// The decoder layer a parameter belongs to (from "...layers.<i>." in its name), or -1.
int param_layer(const std::string& name);

}  // namespace lathe
