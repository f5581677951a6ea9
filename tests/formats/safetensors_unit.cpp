// safetensors reader/writer: round trips, every validation rule (a table of malformed files built
// here byte by byte), sharded directories and the stories260K fixture.
#include "lathe/formats/safetensors.h"

#include <cstring>
#include <fstream>

#include "lathe/core/error.h"
#include "test_util.h"

namespace lathe {
namespace {

using test::TempDir;

// An 8-byte little-endian length, the header text as given (no padding), then `data`.
std::string st_bytes(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

template <class T>
Tensor make(DType dt, std::vector<int64_t> shape, std::vector<T> values) {
  Tensor t = Tensor::empty(dt, std::move(shape));
  EXPECT_EQ(t.nbytes(), values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.data, values.data(), values.size() * sizeof(T));
  return t;
}

// Asserts that fn throws lathe::Error whose message contains every one of `needles`.
template <class Fn>
void expect_error(Fn fn, const std::vector<std::string>& needles, const std::string& label = "") {
  try {
    fn();
    ADD_FAILURE() << label << ": expected lathe::Error";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << label << ": '" << n << "' not in: " << msg;
  }
}

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir dir;
  std::string path = dir / "t.safetensors";
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"f32", make<float>(DType::F32, {2, 3}, {1, -2, 3.5f, 0, 1e-7f, -1e30f})},
      {"f16", make<uint16_t>(DType::F16, {3}, {f32_to_f16(1.5f), f32_to_f16(-2), 0x7c00})},
      {"bf16", make<uint16_t>(DType::BF16, {2, 1}, {f32_to_bf16(3.25f), f32_to_bf16(-0.5f)})},
      {"i32", make<int32_t>(DType::I32, {4}, {-1, 0, 7, 2147483647})},
      {"i64", make<int64_t>(DType::I64, {1, 2}, {-(int64_t(1) << 40), 9})},
      {"u8", make<uint8_t>(DType::U8, {5}, {0, 1, 2, 254, 255})},
      {"scalar", make<float>(DType::F32, {}, {42.0f})},
      {"empty", make<float>(DType::F32, {0, 4}, {})},
      {"a.empty_u8", make<uint8_t>(DType::U8, {0}, {})},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "round trip"}};
  safetensors_write(path, ts, meta);

  SafetensorsFile st = SafetensorsFile::open(path);
  EXPECT_EQ(st.metadata(), meta);
  ASSERT_EQ(st.entries().size(), ts.size());
  for (size_t i = 1; i < st.entries().size(); i++) EXPECT_LT(st.entries()[i - 1].name, st.entries()[i].name);
  for (const auto& [name, want] : ts) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(st.has(name));
    Tensor got = st.tensor(name);
    EXPECT_EQ(got.dtype, want.dtype);
    EXPECT_EQ(got.shape, want.shape);
    EXPECT_TRUE(got.is_contiguous());
    ASSERT_EQ(got.nbytes(), want.nbytes());
    if (want.nbytes()) {
      EXPECT_EQ(std::memcmp(got.data, want.data, want.nbytes()), 0);
    }
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data) % dtype_size(got.dtype), 0u);
    EXPECT_EQ(st.entry(name).dtype_name, std::string(dtype_name(want.dtype)));
  }
  EXPECT_EQ(st.tensor("scalar").numel(), 1);
  EXPECT_EQ(st.tensor("scalar").f32()[0], 42.0f);

  // Header is padded to a multiple of 8 and the data laid out in name order.
  std::string raw = read_file(path);
  uint64_t n;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  size_t prev_end = 0;
  for (const auto& e : st.entries()) {
    EXPECT_EQ(e.begin, prev_end) << e.name;
    prev_end = e.end;
  }
  EXPECT_EQ(8 + n + prev_end, raw.size());
}

TEST(Safetensors, NoMetadataKeyWhenEmptyAndViewOutlivesFile) {
  TempDir dir;
  std::string path = dir / "t.safetensors";
  safetensors_write(path, {{"w", make<float>(DType::F32, {2}, {1, 2})}});
  EXPECT_EQ(read_file(path).find("__metadata__"), std::string::npos);
  Tensor t;
  {
    SafetensorsFile st = SafetensorsFile::open(path);
    EXPECT_TRUE(st.metadata().empty());
    t = st.tensor("w");
  }
  // The view's owner keeps the mapping alive after the SafetensorsFile is gone.
  EXPECT_EQ(t.f32()[1], 2.0f);
}

TEST(Safetensors, WriterRejects) {
  TempDir dir;
  std::string path = dir / "bad.safetensors";
  Tensor a = make<float>(DType::F32, {2}, {1, 2});
  expect_error([&] { safetensors_write(path, {{"x", a}, {"x", a}}); }, {path, "duplicate", "'x'"});
  Tensor nc = make<float>(DType::F32, {2, 2}, {1, 2, 3, 4});
  nc.strides = {1, 2};  // a transposed view
  expect_error([&] { safetensors_write(path, {{"t", nc}}); }, {path, "'t'", "not contiguous"});
  Tensor q = Tensor::empty(DType::Q8_0, {32});
  expect_error([&] { safetensors_write(path, {{"q", q}}); }, {path, "'q'", "Q8_0"});
  EXPECT_FALSE(file_exists(path));  // nothing half-written left behind
}

TEST(Safetensors, MisalignedDataIsCopied) {
  TempDir dir;
  std::string path = dir / "odd.safetensors";
  // A 5-byte data start offset after an unpadded header: the F32 bytes land off 4-byte alignment.
  std::string hdr = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  hdr.append((8 - hdr.size() % 8) % 8, ' ');
  float v[2] = {3.0f, -4.0f};
  std::string data = std::string("\x07") + std::string(reinterpret_cast<const char*>(v), 8);
  write_bytes(path, st_bytes(hdr, data));
  SafetensorsFile st = SafetensorsFile::open(path);
  Tensor w = st.tensor("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data) % 4, 0u);
  EXPECT_EQ(w.f32()[0], 3.0f);
  EXPECT_EQ(w.f32()[1], -4.0f);
  EXPECT_EQ(st.tensor("a").as<uint8_t>()[0], 7);
}

TEST(Safetensors, ValidatesButRefusesForeignDtypes) {
  TempDir dir;
  std::string path = dir / "f.safetensors";
  // Every dtype of the format validates; F4 packs 2 per byte, F6 needs numel*6 to fill whole bytes.
  std::string hdr =
      R"({"b":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]},)"
      R"("c":{"dtype":"C64","shape":[1],"data_offsets":[2,10]},)"
      R"("f4":{"dtype":"F4","shape":[4],"data_offsets":[10,12]},)"
      R"("f6":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[12,15]},)"
      R"("f8":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[15,16]}})";
  write_bytes(path, st_bytes(hdr, std::string(16, '\x01')));
  SafetensorsFile st = SafetensorsFile::open(path);
  EXPECT_EQ(st.entries().size(), 5u);
  EXPECT_EQ(st.raw_data(st.entry("c"))[0], 1);
  expect_error([&] { st.tensor("f4"); }, {path, "'f4'", "F4"});
  expect_error([&] { st.tensor("c"); }, {path, "'c'", "C64"});
  expect_error([&] { st.tensor("nope"); }, {path, "'nope'"});
}

struct BadCase {
  const char* label;
  std::string bytes;
  std::vector<std::string> needles;  // besides the path
};

std::string entry(const std::string& name, const std::string& body) { return "\"" + name + "\":" + body; }
const std::string kW = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";

TEST(Safetensors, MalformedFilesThrowNamingFileAndTensor) {
  std::string four(4, '\0');
  std::string huge_len(8, '\0');
  uint64_t big = 100'000'001;
  std::memcpy(huge_len.data(), &big, 8);
  std::string beyond(8, '\0');
  uint64_t b = 64;
  std::memcpy(beyond.data(), &b, 8);
  beyond += "{}";

  std::vector<BadCase> cases = {
      {"short file", std::string(5, '\0'), {"shorter than"}},
      {"header over limit", huge_len + "{}", {"exceeds the limit"}},
      {"header beyond file", beyond, {"beyond the end of the file"}},
      {"empty header", st_bytes(""), {"does not start"}},
      {"header not starting with brace", st_bytes(" {}"), {"does not start"}},
      {"invalid json", st_bytes(R"({"w": {)"), {"not valid JSON"}},
      {"trailing garbage in header", st_bytes("{} x"), {"not valid JSON"}},
      {"invalid utf8", st_bytes("{\"w\xff\":1}"), {"not valid JSON"}},
      {"top level array", st_bytes("[1]"), {"does not start"}},
      {"entry not object", st_bytes(R"({"w":[1]})"), {"'w'", "JSON object"}},
      {"missing dtype", st_bytes(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", four), {"'w'", "dtype"}},
      {"dtype not string", st_bytes(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", four), {"'w'", "dtype"}},
      {"unknown dtype", st_bytes(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", four),
       {"'w'", "unknown dtype", "F33"}},
      {"missing shape", st_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", four), {"'w'", "shape"}},
      {"shape not array", st_bytes(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", four),
       {"'w'", "shape"}},
      {"negative dim", st_bytes(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four),
       {"'w'", "negative"}},
      {"float dim", st_bytes(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", four),
       {"'w'", "non-negative integer"}},
      {"dim beyond u64", st_bytes(R"({"w":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}})", four),
       {"'w'", "non-negative integer"}},
      {"numel overflow",
       st_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", four),
       {"'w'", "absurd"}},
      {"bytes overflow", st_bytes(R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}})", four),
       {"'w'", "absurd"}},
      {"huge dim beside zero", st_bytes(R"({"w":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})"),
       {"'w'", "absurd"}},
      {"sub-byte not whole bytes", st_bytes(R"({"w":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", "x"),
       {"'w'", "whole bytes"}},
      {"missing offsets", st_bytes(R"({"w":{"dtype":"F32","shape":[1]}})", four), {"'w'", "data_offsets"}},
      {"offsets wrong length", st_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", four),
       {"'w'", "data_offsets"}},
      {"offsets negative", st_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", four),
       {"'w'", "negative"}},
      {"begin after end", st_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four),
       {"'w'", "after end"}},
      {"end beyond buffer", st_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", four),
       {"'w'", "beyond the data buffer"}},
      {"size mismatch", st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four),
       {"'w'", "needs 8 bytes"}},
      {"overlap",
       st_bytes("{" + entry("a", R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})") + "," +
                    entry("b", R"({"dtype":"U8","shape":[2],"data_offsets":[2,4]})") + "}",
                four),
       {"'b'", "overlap", "'a'"}},
      {"hole", st_bytes("{" + entry("w", R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})") + "}", four + four),
       {"'w'", "hole"}},
      {"trailing bytes", st_bytes("{" + entry("w", kW) + "}", four + "xx"), {"trailing"}},
      {"duplicate tensor", st_bytes("{" + entry("w", kW) + "," + entry("w", kW) + "}", four),
       {"duplicate tensor name", "'w'"}},
      {"duplicate field", st_bytes(R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", four),
       {"duplicate key 'dtype'", "'w'"}},
      {"metadata not object", st_bytes(R"({"__metadata__":["a"]})"), {"__metadata__"}},
      {"metadata value not string", st_bytes(R"({"__metadata__":{"k":1}})"), {"__metadata__", "'k'"}},
      {"metadata duplicate", st_bytes(R"({"__metadata__":{"k":"a","k":"b"}})"), {"duplicate key 'k'", "__metadata__"}},
  };

  TempDir dir;
  for (size_t i = 0; i < cases.size(); i++) {
    std::string path = dir / ("bad" + std::to_string(i) + ".safetensors");
    write_bytes(path, cases[i].bytes);
    std::vector<std::string> needles = cases[i].needles;
    needles.push_back(path);
    expect_error([&] { SafetensorsFile::open(path); }, needles, cases[i].label);
    // The in-memory parser gives the same verdict.
    const auto* p = reinterpret_cast<const uint8_t*>(cases[i].bytes.data());
    expect_error([&] { SafetensorsFile::parse(path, p, cases[i].bytes.size()); }, needles, cases[i].label);
  }
}

TEST(Safetensors, EmptyFileAndEmptyTensorsAtSameOffsetAreValid) {
  TempDir dir;
  std::string path = dir / "e.safetensors";
  write_bytes(path, st_bytes("{}"));
  EXPECT_TRUE(SafetensorsFile::open(path).entries().empty());
  std::string hdr = R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                    R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                    R"("c":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]}})";
  write_bytes(path, st_bytes(hdr, std::string(4, '\0')));
  SafetensorsFile st = SafetensorsFile::open(path);
  EXPECT_EQ(st.tensor("c").numel(), 0);
  EXPECT_EQ(st.tensor("c").shape, (std::vector<int64_t>{3, 0}));
}

void write_index(const std::string& path, const std::string& weight_map) {
  write_bytes(path, R"({"metadata":{"total_size":16},"weight_map":)" + weight_map + "}");
}

TEST(Safetensors, ShardedDirectory) {
  TempDir dir;
  safetensors_write(dir / "model-00001-of-00002.safetensors",
                    {{"a", make<float>(DType::F32, {2}, {1, 2})}, {"b", make<int32_t>(DType::I32, {1}, {5})}});
  safetensors_write(dir / "model-00002-of-00002.safetensors", {{"c", make<float>(DType::F32, {1, 1}, {7})}});
  write_index(dir / "model.safetensors.index.json",
              R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
              R"("c":"model-00002-of-00002.safetensors"})");
  SafetensorsCollection c = SafetensorsCollection::open_dir(dir.path);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(c.has("c"));
  EXPECT_FALSE(c.has("d"));
  EXPECT_EQ(c.tensor("a").f32()[1], 2.0f);
  EXPECT_EQ(c.tensor("b").as<int32_t>()[0], 5);
  EXPECT_EQ(c.tensor("c").f32()[0], 7.0f);
  auto entries = c.all_entries();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[2]->name, "c");
  expect_error([&] { c.tensor("d"); }, {dir.path, "missing tensor 'd'"});

  std::string index = dir / "model.safetensors.index.json";
  write_index(index, R"({"a":"model-00001-of-00002.safetensors","z":"model-00009-of-00009.safetensors"})");
  expect_error([&] { SafetensorsCollection::open_dir(dir.path); }, {index, "model-00009-of-00009.safetensors", "'z'"});
  write_index(index, R"({"a":"model-00001-of-00002.safetensors","q":"model-00002-of-00002.safetensors"})");
  expect_error([&] { SafetensorsCollection::open_dir(dir.path); },
               {index, "'q'", "absent", "model-00002-of-00002.safetensors"});
  write_index(index, R"({"a":"../model-00001-of-00002.safetensors"})");
  expect_error([&] { SafetensorsCollection::open_dir(dir.path); }, {index, "'a'", "beside the index"});
  write_bytes(index, R"({"metadata":{}})");
  expect_error([&] { SafetensorsCollection::open_dir(dir.path); }, {index, "weight_map"});
  write_bytes(index, R"({"weight_map":)");
  expect_error([&] { SafetensorsCollection::open_dir(dir.path); }, {index, "not valid JSON"});
  write_index(index, R"({"a":3})");
  expect_error([&] { SafetensorsCollection::open_dir(dir.path); }, {index, "'a'"});
}

TEST(Safetensors, SingleFileDirectoryAndMissingFiles) {
  TempDir dir;
  expect_error([&] { SafetensorsCollection::open_dir(dir.path); }, {dir.path, "model.safetensors"});
  expect_error([&] { SafetensorsCollection::open_dir(dir / "nope"); }, {dir / "nope", "not a directory"});
  safetensors_write(dir / "model.safetensors", {{"w", make<float>(DType::F32, {1}, {3})}});
  SafetensorsCollection c = SafetensorsCollection::open_dir(dir.path);
  EXPECT_EQ(c.names(), std::vector<std::string>{"w"});
  EXPECT_EQ(c.tensor("w").f32()[0], 3.0f);
  // A shard file that is itself malformed is reported with its own path.
  write_bytes(dir / "model.safetensors", "xx");
  expect_error([&] { SafetensorsCollection::open_dir(dir.path); }, {dir / "model.safetensors", "shorter"});
}

TEST(Safetensors, Stories260KFixture) {
  LATHE_REQUIRE_FIXTURE("models/stories260K-hf/model.safetensors");
  SafetensorsFile st = SafetensorsFile::open(test::fixture_path("models/stories260K-hf/model.safetensors"));
  EXPECT_EQ(st.entries().size(), 47u);
  for (const auto& e : st.entries()) EXPECT_EQ(e.dtype_name, "F32") << e.name;
  Tensor emb = st.tensor("model.embed_tokens.weight");
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(emb.dtype, DType::F32);
  SafetensorsCollection c = SafetensorsCollection::open_dir(test::fixture_path("models/stories260K-hf"));
  EXPECT_EQ(c.names().size(), 47u);
}

}  // namespace
}  // namespace lathe
