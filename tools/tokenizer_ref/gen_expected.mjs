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
