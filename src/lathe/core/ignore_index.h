// The label that carries no loss. Hugging Face and PyTorch's CrossEntropyLoss use ignore_index -100;
// datasets written for them (and ours: token shards, pre-tokenized JSONL) mark prompt tokens and
// padding with it. One definition here, in the lowest layer, because the token-shard format, the
// training graph (model) and the records layer all need the same value.
#pragma once
#include <cstdint>

namespace lathe {

inline constexpr int32_t kIgnoreIndex = -100;

}  // namespace lathe
