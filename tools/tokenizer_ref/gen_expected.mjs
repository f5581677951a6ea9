// Writes tests/data/tokenizer/expected_<name>.jsonl: for every case in cases.jsonl, the ids that the
// reference @huggingface/tokenizers (tokenizers.js, the core of transformers.js) gives with and without
// special tokens, and its decode of the plain ids. See README.md for how to run it.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, "../..");
const fixtures = path.resolve(root, "../shared/fixtures");
// The package lives outside the repository (NODE_PATH or TOKREF_DIR, default /tmp/tokref).
const refDir = process.env.TOKREF_DIR || "/tmp/tokref";
const require = createRequire(path.join(refDir, "node_modules", "x.js"));
const mod = await import(require.resolve("@huggingface/tokenizers"));
const Tokenizer = mod.Tokenizer ?? mod.default.Tokenizer;

const targets = [
  ["tiny_bytelevel", path.join(root, "tests/data/tokenizer/tiny_bytelevel")],
  ["tiny_spm", path.join(root, "tests/data/tokenizer/tiny_spm")],
  ["gpt2", path.join(fixtures, "tokenizers/gpt2")],
  ["llama3", path.join(fixtures, "tokenizers/llama3")],
  ["qwen3", path.join(fixtures, "tokenizers/qwen3")],
  ["mistral-v0.1", path.join(fixtures, "tokenizers/mistral-v0.1")],
  ["stories260K", path.join(fixtures, "models/stories260K-hf")],
];

const cases = fs.readFileSync(path.join(root, "tests/data/tokenizer/cases.jsonl"), "utf8")
  .split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));

for (const [name, dir] of targets) {
  const tjPath = path.join(dir, "tokenizer.json");
  if (!fs.existsSync(tjPath)) { console.log(`skip ${name}: ${tjPath} absent`); continue; }
  const tj = JSON.parse(fs.readFileSync(tjPath, "utf8"));
  const cfgPath = path.join(dir, "tokenizer_config.json");
  const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
  const tok = new Tokenizer(tj, cfg);
  const lines = [];
  for (const c of cases) {
    const ids = Array.from(tok.encode(c.text, { add_special_tokens: false }).ids);
    const idsSpecial = Array.from(tok.encode(c.text, { add_special_tokens: true }).ids);
    const decoded = ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "";
    lines.push(JSON.stringify({ name: c.name, text: c.text, ids, ids_special: idsSpecial, decoded }));
  }
  const out = path.join(root, `tests/data/tokenizer/expected_${name}.jsonl`);
  fs.writeFileSync(out, lines.join("\n") + "\n");
  console.log(`${name}: ${lines.length} cases -> ${path.relative(root, out)}`);
}

// Unigram and WordPiece (tools/tokenizer_ref/make_unigram_wordpiece.py) are checked against the Rust library
// itself: npm `tokenizers` (its Node binding, a compiled copy of the Rust crate) in the same folder. For
// these models tokenizers.js is an approximation (its Precompiled normalizer ignores the charsmap and runs
// NFKC, its Unigram has no byte fallback and another unknown-piece score, its Metaspace never splits), so its
// answer is only recorded: `js_same` says whether it gave the same ids, ids_special and decoded text.
const rustTok = require("tokenizers").Tokenizer;
const retrievalCases = cases.concat(
  fs.readFileSync(path.join(root, "tests/data/tokenizer/cases_retrieval.jsonl"), "utf8")
    .split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l)));
for (const name of ["tiny_unigram", "tiny_unigram_bf", "tiny_wordpiece", "tiny_wordpiece_cased"]) {
  const tjPath = path.join(root, "tests/data/tokenizer", name, "tokenizer.json");
  const rust = rustTok.fromFile(tjPath);
  const js = new Tokenizer(JSON.parse(fs.readFileSync(tjPath, "utf8")), {});
  const lines = [];
  let same = 0;
  for (const c of retrievalCases) {
    const ids = Array.from((await rust.encode(c.text, null, { addSpecialTokens: false })).getIds());
    const idsSpecial = Array.from((await rust.encode(c.text, null, { addSpecialTokens: true })).getIds());
    const decoded = ids.length ? await rust.decode(ids, false) : "";
    let jsSame = false;
    try {
      const jIds = Array.from(js.encode(c.text, { add_special_tokens: false }).ids);
      const jSpecial = Array.from(js.encode(c.text, { add_special_tokens: true }).ids);
      const jDecoded = jIds.length ? js.decode(jIds, { skip_special_tokens: false }) : "";
      jsSame = JSON.stringify([jIds, jSpecial, jDecoded]) === JSON.stringify([ids, idsSpecial, decoded]);
    } catch (e) {
      jsSame = false;
    }
    same += jsSame;
    lines.push(JSON.stringify({ name: c.name, text: c.text, ids, ids_special: idsSpecial, decoded, js_same: jsSame }));
  }
  const out = path.join(root, `tests/data/tokenizer/expected_${name}.jsonl`);
  fs.writeFileSync(out, lines.join("\n") + "\n");
  console.log(`${name}: ${lines.length} cases (Rust tokenizers), tokenizers.js agrees on ${same} -> ${path.relative(root, out)}`);
}
