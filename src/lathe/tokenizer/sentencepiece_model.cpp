// SentencePiece model protos (tokenizer.model of Llama 2 / TinyLlama / Mistral). No protobuf library:
// the few fields needed are read with a small bounds-checked wire-format reader.
//   ModelProto: 1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece: 1 piece (string), 2 score (float), 3 type (enum; same numbering as GGUF token types)
//   TrainerSpec: 3 model_type (1 unigram, 2 bpe), 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec: 3 add_dummy_prefix (bool, default true)
#include <cstring>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/tokenizer/loader_internal.h"

namespace lathe {

namespace {

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& path;
  bool done() const { return p >= end; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) fail("tokenizer", "{}: truncated varint in the SentencePiece model", path);
      uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("tokenizer", "{}: varint too long in the SentencePiece model", path);
  }
  Reader sub() {
    uint64_t n = varint();
    if (n > uint64_t(end - p)) fail("tokenizer", "{}: field length beyond the file", path);
    Reader r{p, p + n, path};
    p += n;
    return r;
  }
  float f32() {
    if (end - p < 4) fail("tokenizer", "{}: truncated float", path);
    float f;
    std::memcpy(&f, p, 4);
    p += 4;
    return f;
  }
  void skip(int wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: if (end - p < 8) fail("tokenizer", "{}: truncated field", path); p += 8; break;
      case 2: sub(); break;
      case 5: f32(); break;
      default: fail("tokenizer", "{}: unsupported protobuf wire type {}", path, wire);
    }
  }
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path) {
  std::string bytes = read_file(path);
  Reader r{reinterpret_cast<const uint8_t*>(bytes.data()), reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size(),
           path};
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int64_t> types;
  int64_t model_type = 1, unk = 0, bos = 1, eos = 2, pad = -1;
  bool dummy_prefix = true;
  while (!r.done()) {
    uint64_t key = r.varint();
    int field = int(key >> 3), wire = int(key & 7);
    if (field == 1 && wire == 2) {
      Reader s = r.sub();
      std::string piece;
      float score = 0;
      int64_t type = 1;
      while (!s.done()) {
        uint64_t k = s.varint();
        int f = int(k >> 3), w = int(k & 7);
        if (f == 1 && w == 2) {
          Reader str = s.sub();
          piece.assign(reinterpret_cast<const char*>(str.p), size_t(str.end - str.p));
        } else if (f == 2 && w == 5) {
          score = s.f32();
        } else if (f == 3 && w == 0) {
          type = int64_t(s.varint());
        } else {
          s.skip(w);
        }
      }
      tokens.push_back(std::move(piece));
      scores.push_back(score);
      types.push_back(type);
    } else if ((field == 2 || field == 3) && wire == 2) {
      Reader s = r.sub();
      while (!s.done()) {
        uint64_t k = s.varint();
        int f = int(k >> 3), w = int(k & 7);
        if (w != 0) {
          s.skip(w);
          continue;
        }
        int64_t v = int64_t(s.varint());
        if (field == 2 && f == 3) model_type = v;
        if (field == 2 && f == 40) unk = v;
        if (field == 2 && f == 41) bos = v;
        if (field == 2 && f == 42) eos = v;
        if (field == 2 && f == 43) pad = v;
        if (field == 3 && f == 3) dummy_prefix = v != 0;
      }
    } else {
      r.skip(wire);
    }
  }
  if (tokens.empty()) fail("tokenizer", "{}: no pieces (not a SentencePiece model?)", path);
  if (model_type != 2)
    fail("tokenizer", "{}: SentencePiece model_type {} is not supported (BPE models only)", path, model_type);
  auto t = TokenizerLoader::make();
  tok::Pipeline& p = TokenizerLoader::pipeline(*t);
  auto valid = [&](int64_t id) { return id >= 0 && id < int64_t(tokens.size()) ? int32_t(id) : -1; };
  int32_t unk32 = valid(unk);
  build_spm_model(p, tokens, std::move(scores), types, &unk32, dummy_prefix);
  add_typed_tokens(p, tokens, types);
  p.vocab_size = int(tokens.size());
  if (valid(bos) >= 0) p.prefix_ids = {valid(bos)};  // Llama 2 tokenizers add BOS
  p.has_post_processor = true;
  TokenizerLoader::set_special(*t, valid(bos), valid(eos), valid(pad), unk32);
  validate_tokenizer(*t, path);
  return t;
}

}  // namespace lathe
