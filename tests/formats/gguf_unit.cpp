// GGUF reader + writer: round trips through the writer, hand-built malformed files (each must
// throw lathe::Error naming the file, never crash), and the real fixtures when present.
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/formats/gguf.h"
#include "lathe/formats/gguf_write.h"
#include "test_util.h"

namespace lathe {
namespace {

using test::TempDir;

Tensor make_f32(std::vector<int64_t> shape, std::function<float(int64_t)> f) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); i++) t.f32()[i] = f(i);
  return t;
}

GgufFile parse_bytes(const std::string& name, const std::string& bytes) {
  auto owner = std::make_shared<std::string>(bytes);
  return GgufFile::parse(name, owner, reinterpret_cast<const uint8_t*>(owner->data()), owner->size());
}

// Expects parsing `bytes` to throw a lathe::Error mentioning `name` and `needle`.
void expect_parse_error(const std::string& name, const std::string& bytes, const std::string& needle) {
  try {
    parse_bytes(name, bytes);
    ADD_FAILURE() << name << ": parsed, expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find("[gguf]"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  }
}

TEST(Gguf, MetadataRoundTripsEveryType) {
  TempDir dir;
  GgufWriter w;
  w.set_u8("t.u8", 200);
  w.set_i8("t.i8", -100);
  w.set_u16("t.u16", 60000);
  w.set_i16("t.i16", -30000);
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_u64("t.u64", 18000000000000000000ull);
  w.set_i64("t.i64", -9000000000000000000ll);
  w.set_f32("t.f32", 1.5f);
  w.set_f64("t.f64", 1e-300);
  w.set_bool("t.bool", true);
  w.set_string("t.str", "héllo");
  w.set_string("t.empty", "");
  w.set_string_array("t.strs", {"a", "", "ccc"});
  w.set_i32_array("t.i32s", {1, -2, 3});
  w.set_u32_array("t.u32s", {7, 8});
  w.set_i64_array("t.i64s", {-5});
  w.set_f32_array("t.f32s", {0.25f, -1.f});
  w.set_i32("t.replaced", 1);
  w.set_i32("t.replaced", 2);
  // [[1, 2], [], [3]] as u16 arrays, nested in an array of arrays.
  GgufValue nested;
  nested.type = GgufType::ARRAY;
  nested.elem_type = GgufType::ARRAY;
  for (std::vector<uint64_t> inner : {std::vector<uint64_t>{1, 2}, {}, {3}}) {
    GgufValue a;
    a.type = GgufType::ARRAY;
    a.elem_type = GgufType::U16;
    for (uint64_t x : inner) {
      GgufValue e;
      e.type = GgufType::U16;
      e.scalar = x;
      a.array.push_back(e);
    }
    nested.array.push_back(a);
  }
  w.set_value("t.nested", nested);
  w.write(dir / "m.gguf");

  GgufFile f = GgufFile::open(dir / "m.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.get_int("t.u8", 0), 200);
  EXPECT_EQ(f.get("t.u8").type, GgufType::U8);
  EXPECT_EQ(f.get_int("t.i8", 0), -100);
  EXPECT_EQ(f.get_int("t.u16", 0), 60000);
  EXPECT_EQ(f.get_int("t.i16", 0), -30000);
  EXPECT_EQ(f.get_int("t.u32", 0), 4000000000ll);
  EXPECT_EQ(f.get_int("t.i32", 0), -2000000000);
  EXPECT_EQ(std::get<uint64_t>(f.get("t.u64").scalar), 18000000000000000000ull);
  EXPECT_THROW(f.get_int("t.u64", 0), Error);  // does not fit int64
  EXPECT_EQ(f.get_int("t.i64", 0), -9000000000000000000ll);
  EXPECT_EQ(f.get_float("t.f32", 0), 1.5);
  EXPECT_EQ(f.get_float("t.f64", 0), 1e-300);
  EXPECT_EQ(f.get("t.bool").type, GgufType::BOOL);
  EXPECT_EQ(f.get_int("t.bool", 0), 1);
  EXPECT_EQ(f.get_string("t.str", ""), "héllo");
  EXPECT_EQ(f.get_string("t.empty", "x"), "");
  EXPECT_EQ(f.get_string("absent", "dflt"), "dflt");
  EXPECT_EQ(f.get_int("absent", 42), 42);
  EXPECT_EQ(f.get_string_array("t.strs"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_int_array("t.i32s"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_int_array("t.u32s"), (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(f.get_int_array("t.i64s"), (std::vector<int64_t>{-5}));
  EXPECT_EQ(f.get_float_array("t.f32s"), (std::vector<float>{0.25f, -1.f}));
  EXPECT_EQ(f.get_float_array("t.i32s"), (std::vector<float>{1.f, -2.f, 3.f}));
  EXPECT_EQ(f.get_int("t.replaced", 0), 2);
  EXPECT_EQ(f.metadata().size(), 20u);

  const GgufValue& n = f.get("t.nested");
  ASSERT_TRUE(n.is_array());
  EXPECT_EQ(n.elem_type, GgufType::ARRAY);
  ASSERT_EQ(n.array.size(), 3u);
  ASSERT_EQ(n.array[0].array.size(), 2u);
  EXPECT_EQ(n.array[0].elem_type, GgufType::U16);
  EXPECT_EQ(n.array[0].array[1].as_int(), 2);
  EXPECT_TRUE(n.array[1].array.empty());
  EXPECT_EQ(n.array[2].array[0].as_int(), 3);

  // Wrong-kind accessors name the file and the key.
  for (auto fn : std::vector<std::function<void()>>{
           [&] { f.get_string("t.i32", ""); }, [&] { f.get_int("t.str", 0); }, [&] { f.get_float("t.strs", 0); },
           [&] { f.get_string_array("t.i32s"); }, [&] { f.get_int_array("t.f32s"); },
           [&] { f.get_float_array("t.str"); }, [&] { f.get("t.missing"); }}) {
    try {
      fn();
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dir / "m.gguf"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("'t."), std::string::npos) << e.what();
    }
  }
}

TEST(Gguf, TensorsRoundTrip) {
  TempDir dir;
  Tensor a = make_f32({3, 5}, [](int64_t i) { return float(i) * 0.5f - 3.f; });
  Tensor h = make_f32({2, 2, 4}, [](int64_t i) { return float(i) - 7.25f; });  // exact in f16
  Tensor q = make_f32({4, 64}, [](int64_t i) { return std::sin(float(i) * 0.37f) * (1.f + float(i % 7)); });
  Tensor h16 = Tensor::empty(DType::F16, {8});
  for (int i = 0; i < 8; i++) h16.as<uint16_t>()[i] = f32_to_f16(float(i) / 4);
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.add_tensor("a", a, GgmlType::F32);
  w.add_tensor("h", h, GgmlType::F16);
  w.add_tensor("b", h, GgmlType::BF16);
  w.add_tensor("q", q, GgmlType::Q8_0);
  w.add_tensor("from_f16", h16, GgmlType::F32);
  EXPECT_THROW(w.add_tensor("a", a, GgmlType::F32), Error);
  EXPECT_THROW(w.add_tensor("bad_q", a, GgmlType::Q8_0), Error);  // 5 is not a multiple of 32
  w.write(dir / "t.gguf");
  EXPECT_FALSE(std::filesystem::exists(dir / "t.gguf.tmp." + std::to_string(getpid())));

  GgufFile f = GgufFile::open(dir / "t.gguf");
  ASSERT_EQ(f.tensors().size(), 5u);
  const GgufTensorInfo& ia = f.tensor_info("a");
  EXPECT_EQ(ia.dims, (std::vector<int64_t>{5, 3}));  // ggml order
  EXPECT_EQ(ia.shape(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(ia.nbytes, 60u);
  for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;

  Tensor ra = f.tensor_f32("a");
  EXPECT_EQ(ra.shape, a.shape);
  EXPECT_EQ(ra.data, f.tensor_data("a")) << "F32 must be a zero-copy view";
  for (int64_t i = 0; i < a.numel(); i++) EXPECT_EQ(ra.f32()[i], a.f32()[i]);

  Tensor rh = f.tensor_f32("h");
  EXPECT_EQ(rh.shape, h.shape);
  for (int64_t i = 0; i < h.numel(); i++) EXPECT_EQ(rh.f32()[i], h.f32()[i]);
  Tensor rb = f.tensor_f32("b");
  for (int64_t i = 0; i < h.numel(); i++) EXPECT_EQ(rb.f32()[i], h.f32()[i]);
  Tensor r16 = f.tensor_f32("from_f16");
  for (int i = 0; i < 8; i++) EXPECT_EQ(r16.f32()[i], float(i) / 4);

  // Q8_0: error per element is at most half a step (d/2) plus the f16 rounding of d.
  Tensor rq = f.tensor_f32("q");
  EXPECT_EQ(rq.shape, q.shape);
  EXPECT_EQ(f.tensor_info("q").nbytes, size_t(4 * 2 * 34));
  for (int64_t b = 0; b < q.numel() / 32; b++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(q.f32()[b * 32 + j]));
    float d = amax / 127;
    for (int j = 0; j < 32; j++) {
      int64_t i = b * 32 + j;
      EXPECT_NEAR(rq.f32()[i], q.f32()[i], d * 0.5f + amax * 1e-3f) << i;
    }
  }
  // Views keep the mapping alive after the file object is gone.
  Tensor keep;
  {
    GgufFile g = GgufFile::open(dir / "t.gguf");
    keep = g.tensor_f32("a");
  }
  EXPECT_EQ(keep.f32()[14], a.f32()[14]);
}

TEST(Gguf, Q4_0DequantMatchesHandComputedBlock) {
  // d = 0.5 (f16 0x3800); byte j = (hi << 4) | lo: element j = 0.5*(lo-8), element j+16 = 0.5*(hi-8).
  std::vector<uint8_t> block(18);
  block[0] = 0x00;
  block[1] = 0x38;
  for (int j = 0; j < 16; j++) block[2 + j] = uint8_t(((15 - j) << 4) | j);
  float expect[32];
  for (int j = 0; j < 16; j++) {
    expect[j] = 0.5f * float(j - 8);        // -4 ... 3.5
    expect[j + 16] = 0.5f * float(7 - j);   // 3.5 ... -4
  }
  float out[32];
  dequantize_q4_0(block.data(), out, 32);
  for (int j = 0; j < 32; j++) EXPECT_EQ(out[j], expect[j]) << j;

  // Q8_0 by hand: d = 2 (f16 0x4000), q = j - 16.
  std::vector<uint8_t> q8(34);
  q8[1] = 0x40;
  for (int j = 0; j < 32; j++) q8[2 + j] = uint8_t(int8_t(j - 16));
  dequantize_q8_0(q8.data(), out, 32);
  for (int j = 0; j < 32; j++) EXPECT_EQ(out[j], 2.f * float(j - 16)) << j;

  // The same blocks through a file; an unsupported type is named when asked for f32.
  TempDir dir;
  GgufWriter w;
  w.set_alignment(64);
  w.add_tensor_raw("q4", {1, 32}, uint32_t(GgmlType::Q4_0), block);
  w.add_tensor_raw("k4", {256}, uint32_t(GgmlType::Q4_K), std::vector<uint8_t>(144));  // read since Q4_K came
  w.add_tensor_raw("k5", {256}, uint32_t(GgmlType::Q5_K), std::vector<uint8_t>(176));
  w.write(dir / "q.gguf");
  GgufFile f = GgufFile::open(dir / "q.gguf");
  EXPECT_EQ(f.alignment(), 64u);
  for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % 64, 0u);
  Tensor t = f.tensor_f32("q4");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{1, 32}));
  for (int j = 0; j < 32; j++) EXPECT_EQ(t.f32()[j], expect[j]);
  EXPECT_EQ(f.tensor_f32("k4").f32()[255], 0.0f);  // zero scales: zeros
  try {
    f.tensor_f32("k5");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'k5'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Q5_K"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.tensor_f32("nope"), Error);
}

// ---- malformed files ------------------------------------------------------------------------------

// Builds GGUF bytes by hand so a test can put any value anywhere.
struct Raw {
  std::string s;
  Raw& u32(uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); return *this; }
  Raw& u64(uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); return *this; }
  Raw& u8(uint8_t v) { s += char(v); return *this; }
  Raw& str(const std::string& x) { u64(x.size()); s += x; return *this; }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    s.append("GGUF", 4);
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Raw& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Raw& pad(size_t a = 32) { s.resize((s.size() + a - 1) / a * a, '\0'); return *this; }
  Raw& zeros(size_t n) { s.append(n, '\0'); return *this; }
};

TEST(Gguf, MalformedFilesThrowNamingTheProblem) {
  struct Case {
    const char* name;
    std::string bytes;
    const char* needle;
  };
  const uint64_t kHuge = 1ull << 62;
  std::vector<Case> cases = {
      {"empty", "", "not a GGUF file"},
      {"bad_magic", Raw().header(0, 0).s.replace(0, 4, "GGML"), "not a GGUF file"},
      {"v1", Raw().header(0, 0, 1).s, "version 1"},
      {"v4", Raw().header(0, 0, 4).s, "unsupported GGUF version 4"},
      {"big_endian", Raw().header(0, 0, 0x03000000).s, "big-endian"},
      {"short_header", Raw().header(0, 0).s.substr(0, 15), "truncated"},
      {"kv_count_absurd", Raw().header(0, kHuge).s, "cannot fit"},
      {"tensor_count_absurd", Raw().header(kHuge, 0).s, "cannot fit"},
      {"key_len_absurd", Raw().header(0, 1).u64(kHuge).u32(4).u32(0).s, "runs past end of file"},
      {"string_len_absurd", Raw().header(0, 1).str("k").u32(8).u64(1000).s, "key 'k'"},
      {"bool_2", Raw().header(0, 1).str("b").u32(7).u8(2).s, "bool value 2"},
      {"bool_in_array", Raw().header(0, 1).str("ba").u32(9).u32(7).u64(2).u8(1).u8(9).s, "bool value 9"},
      {"value_type_bad", Raw().header(0, 1).str("k").u32(13).u32(0).s, "unknown value type 13"},
      {"elem_type_bad", Raw().header(0, 1).str("k").u32(9).u32(77).u64(0).s, "unknown array element type"},
      {"array_count_absurd", Raw().header(0, 1).str("arr").u32(9).u32(4).u64(kHuge).s, "key 'arr'"},
      {"array_truncated", Raw().header(0, 1).str("arr").u32(9).u32(4).u64(3).u32(1).u32(2).s, "cannot fit"},
      {"dup_key", Raw().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).s, "duplicate key"},
      {"align_not_pow2", Raw().header(0, 1).str("general.alignment").u32(4).u32(24).s, "not a power of two"},
      {"align_zero", Raw().header(0, 1).str("general.alignment").u32(4).u32(0).s, "general.alignment"},
      {"align_string", Raw().header(0, 1).str("general.alignment").u32(8).str("32").s, "expected an integer"},
      {"n_dims_5", Raw().header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad().zeros(32).s, "n_dims 5"},
      {"dims_overflow", Raw().header(1, 0).tensor("w", {1ull << 40, 1ull << 40}, 0, 0).pad().s, "overflows"},
      // Found by fuzz_gguf: a zero dim first made the product 0, so the overflow of the other dims went
      // unchecked until shape() multiplied them in reverse order.
      {"dims_overflow_after_zero", Raw().header(1, 0).tensor("w", {0, 1ull << 40, 1ull << 40}, 0, 0).pad().s, "overflows"},
      {"dim_negative", Raw().header(1, 0).tensor("w", {~0ull}, 0, 0).pad().s, "tensor 'w'"},
      {"bytes_overflow", Raw().header(1, 0).tensor("w", {1ull << 31, 1ull << 31}, 0, 0).pad().s, "overflows"},
      {"type_unknown", Raw().header(1, 0).tensor("w", {4}, 99, 0).pad().zeros(32).s, "unknown ggml type 99"},
      {"type_removed", Raw().header(1, 0).tensor("w", {4}, 4, 0).pad().zeros(32).s, "unknown ggml type 4"},
      {"q8_ragged_rows", Raw().header(1, 0).tensor("w", {33}, 8, 0).pad().zeros(64).s, "block size 32"},
      {"misaligned", Raw().header(1, 0).tensor("w", {4}, 0, 4).pad().zeros(64).s, "not a multiple of the alignment"},
      {"data_beyond", Raw().header(1, 0).tensor("w", {16}, 0, 0).pad().zeros(60).s, "runs past the end"},
      {"offset_beyond", Raw().header(1, 0).tensor("w", {1}, 0, kHuge).pad().s, "runs past the end"},
      {"dup_tensor", Raw().header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad().zeros(64).s,
       "duplicate tensor name"},
      // Review item 14: tensors sharing bytes used to be accepted (safetensors refuses them).
      {"overlap", Raw().header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(64).s,
       "tensors 'a' [0, 64) and 'b' [32, 64) overlap"},
      {"alias", Raw().header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0).pad().zeros(32).s,
       "tensors 'a' [0, 32) and 'b' [0, 32) overlap"},
      {"tensor_info_truncated", Raw().header(1, 0).str("w").u32(4).u64(4).u64(4).u64(4).s, "tensor 'w': file truncated"},
  };
  // Arrays nested past the depth cap are refused rather than recursed into.
  Raw deep;
  deep.header(0, 1).str("deep").u32(9);
  for (int i = 0; i < 20; i++) deep.u32(9).u64(1);
  cases.push_back({"deep_nesting", deep.s, "nested deeper"});

  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    expect_parse_error(std::string("/fake/") + c.name + ".gguf", c.bytes, c.needle);
  }
  // The same through open(): the message carries the real path.
  TempDir dir;
  write_file_atomic(dir / "bad.gguf", Raw().header(0, 1).str("b").u32(7).u8(3).s);
  try {
    GgufFile::open(dir / "bad.gguf");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "bad.gguf"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("key 'b'"), std::string::npos) << e.what();
  }
}

TEST(Gguf, ValidHandBuiltEdgeCases) {
  // No tensors and no trailing padding (vocab-only files end right after the metadata).
  GgufFile f = parse_bytes("edge", Raw().header(0, 1).str("k").u32(8).str("v").s);
  EXPECT_EQ(f.get_string("k", ""), "v");
  EXPECT_TRUE(f.tensors().empty());
  // v2 is read too; alignment 1 puts an F16 tensor at an odd address and it still converts.
  uint16_t half = f32_to_f16(1.5f);
  Raw r;
  r.header(1, 1, 2).str("general.alignment").u32(4).u32(1).tensor("h", {1}, 1, 1).u8(0xAA);
  r.s.append(reinterpret_cast<const char*>(&half), 2);
  GgufFile g = parse_bytes("edge2", r.s);
  EXPECT_EQ(g.version(), 2u);
  EXPECT_EQ(g.tensor_f32("h").f32()[0], 1.5f);
  // Adjacent tensors, listed out of offset order, do not overlap.
  GgufFile adj = parse_bytes("edge4", Raw().header(2, 0).tensor("b", {8}, 0, 32).tensor("a", {8}, 0, 0).pad().zeros(64).s);
  EXPECT_EQ(adj.tensors().size(), 2u);
  // A zero-element tensor is legal.
  GgufFile z = parse_bytes("edge3", Raw().header(1, 0).tensor("z", {0, 5}, 0, 0).s);
  EXPECT_EQ(z.tensor_f32("z").numel(), 0);
}

TEST(Gguf, EveryTruncationThrows) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_bool("flag", false);
  w.set_f64("d", 0.5);
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a", "b"});
  w.set_f32_array("tokenizer.ggml.scores", {0, 0, -1, -2});
  w.add_tensor("x", make_f32({2, 32}, [](int64_t i) { return float(i); }), GgmlType::F32);
  w.add_tensor("y", make_f32({1, 32}, [](int64_t i) { return float(i); }), GgmlType::Q8_0);
  std::string full = w.to_bytes();
  auto owner = std::make_shared<std::string>(full);
  GgufFile f = GgufFile::parse("sample", owner, reinterpret_cast<const uint8_t*>(owner->data()), owner->size());
  const GgufTensorInfo& last = f.tensor_info("y");
  size_t data_end = size_t(f.tensor_data("y") - reinterpret_cast<const uint8_t*>(owner->data())) + last.nbytes;
  ASSERT_LE(data_end, full.size());

  for (size_t cut = 0; cut < full.size(); cut++) {
    std::string name = "/trunc/cut" + std::to_string(cut) + ".gguf";
    if (cut < data_end) {
      expect_parse_error(name, full.substr(0, cut), "");
    } else {
      EXPECT_NO_THROW(parse_bytes(name, full.substr(0, cut))) << cut;  // only padding was lost
    }
  }
}

// Flips every byte of the header and metadata to a few values: each result parses or throws
// lathe::Error, and whatever parses can hand out its tensors.
TEST(Gguf, CorruptedBytesNeverCrash) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_i32_array("ids", {1, 2, 3});
  w.set_bool("b", true);
  w.add_tensor("x", make_f32({2, 32}, [](int64_t i) { return float(i); }), GgmlType::F16);
  w.add_tensor("y", make_f32({1, 32}, [](int64_t i) { return float(i); }), GgmlType::Q8_0);
  std::string full = w.to_bytes();
  size_t n_ok = 0, n_err = 0;
  for (size_t pos = 0; pos < full.size(); pos++) {
    for (uint8_t v : {0x00, 0x01, 0x07, 0x20, 0x80, 0xff}) {
      std::string bad = full;
      bad[pos] = char(v);
      std::string name = fmt::format("/corrupt/{}_{}.gguf", pos, v);
      try {
        GgufFile f = parse_bytes(name, bad);
        for (const auto& t : f.tensors()) {
          try {
            Tensor x = f.tensor_f32(t.name);
            (void)x;
          } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
          }
        }
        n_ok++;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
        n_err++;
      }
    }
  }
  EXPECT_GT(n_err, 0u);
  EXPECT_GT(n_ok, 0u);
}

// ---- fixtures ---------------------------------------------------------------------------------------

TEST(GgufFixture, Stories260K) {
  LATHE_REQUIRE_FIXTURE("models/gguf/stories260K.gguf");
  GgufFile f = GgufFile::open(test::fixture_path("models/gguf/stories260K.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture", ""), "llama");
  EXPECT_EQ(f.get_int("llama.embedding_length", 0), 64);
  EXPECT_EQ(f.get_int("llama.block_count", 0), 5);
  const GgufTensorInfo& e = f.tensor_info("token_embd.weight");
  EXPECT_EQ(e.shape(), (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(e.ggml_type, uint32_t(GgmlType::F32));
  Tensor t = f.tensor_f32("token_embd.weight");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{512, 64}));
  double sum = 0;
  for (int64_t i = 0; i < t.numel(); i++) sum += std::fabs(t.f32()[i]);
  EXPECT_GT(sum, 0);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 512u);
}

TEST(GgufFixture, TinyRandomF16) {
  LATHE_REQUIRE_FIXTURE("models/gguf/llama-2-tiny-random.gguf");
  std::string path = test::fixture_path("models/gguf/llama-2-tiny-random.gguf");
  auto t0 = std::chrono::steady_clock::now();
  GgufFile f = GgufFile::open(path);
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("open_ms", std::to_string(ms));
  std::printf("open + tokens of %s: %.1f ms\n", path.c_str(), ms);
  EXPECT_LT(ms, 1000) << "opening a 32000-token vocab should take well under 100 ms";
  EXPECT_EQ(tokens.size(), 32000u);
  int n_f16 = 0;
  for (const auto& ti : f.tensors()) {
    Tensor t = f.tensor_f32(ti.name);
    EXPECT_EQ(t.shape, ti.shape());
    for (int64_t i = 0; i < t.numel(); i++) ASSERT_TRUE(std::isfinite(t.f32()[i])) << ti.name;
    if (ti.ggml_type == uint32_t(GgmlType::F16)) n_f16++;
  }
  EXPECT_GT(n_f16, 0);
}

TEST(GgufFixture, VocabFilesOpen) {
  LATHE_REQUIRE_FIXTURE("vocab-tests");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(test::fixture_path("vocab-tests"))) {
    if (e.path().extension() != ".gguf") continue;
    SCOPED_TRACE(e.path().string());
    GgufFile f = GgufFile::open(e.path().string());
    EXPECT_TRUE(f.has("tokenizer.ggml.tokens"));
    EXPECT_GT(f.get_string_array("tokenizer.ggml.tokens").size(), 0u);
    n++;
  }
  EXPECT_GT(n, 0);
}

// Writer output read back equals what went in, for a real model's metadata and tensors.
TEST(GgufFixture, RewriteStories) {
  LATHE_REQUIRE_FIXTURE("models/gguf/stories260K.gguf");
  GgufFile f = GgufFile::open(test::fixture_path("models/gguf/stories260K.gguf"));
  GgufWriter w;
  for (const auto& [k, v] : f.metadata()) w.set_value(k, v);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, f.tensor_f32(t.name), GgmlType::F32);
  TempDir dir;
  w.write(dir / "s.gguf");
  GgufFile g = GgufFile::open(dir / "s.gguf");
  EXPECT_EQ(g.metadata().size(), f.metadata().size());
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens"), f.get_string_array("tokenizer.ggml.tokens"));
  for (const auto& t : f.tensors()) {
    Tensor a = f.tensor_f32(t.name), b = g.tensor_f32(t.name);
    ASSERT_EQ(a.shape, b.shape);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes()), 0) << t.name;
  }
}

}  // namespace
}  // namespace lathe
