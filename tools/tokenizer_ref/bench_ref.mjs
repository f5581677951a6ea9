// Reference encode throughput of @huggingface/tokenizers on a corpus, one text per line, single thread:
// node bench_ref.mjs TOKENIZER_DIR CORPUS. Prints "ref    single: X MB/s (N tokens, S s)".
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const refDir = process.env.TOKREF_DIR || "/tmp/tokref";
const require = createRequire(path.join(refDir, "node_modules", "x.js"));
const mod = await import(require.resolve("@huggingface/tokenizers"));
const Tokenizer = mod.Tokenizer ?? mod.default.Tokenizer;
const [dir, corpusPath] = process.argv.slice(2);
const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const cfgPath = path.join(dir, "tokenizer_config.json");
const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
const tok = new Tokenizer(tj, cfg);
const corpus = fs.readFileSync(corpusPath, "utf8");
const bytes = Buffer.byteLength(corpus, "utf8");
const lines = corpus.split(/(?<=\n)/);
let n = 0;
for (const l of lines) n += tok.encode(l, { add_special_tokens: false }).ids.length;  // warm-up
const u0 = process.cpuUsage();  // CPU time (user+system), like the C++ bench
n = 0;
for (const l of lines) n += tok.encode(l, { add_special_tokens: false }).ids.length;
const du = process.cpuUsage(u0);
const s = (du.user + du.system) / 1e6;
console.log(`ref    single: ${(bytes / 1e6 / s).toFixed(2)} MB/s (${n} tokens, ${s.toFixed(3)} s cpu)`);
