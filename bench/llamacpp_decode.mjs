// llama.cpp's side of bench/decode_bench.sh: loads a GGUF with node-llama-cpp (CPU, prebuilt
// binaries), evaluates the prompt ids (prefill), then greedy-decodes NEW tokens, and prints one JSON
// line with the same fields `lathe generate --stats` prints, so the two parse alike:
//   node llamacpp_decode.mjs MODEL.gguf IDS NEW THREADS [f32|f16]
// IDS: comma-separated prompt ids. KV cache F32 (lathe's precision) unless "f16" (llama.cpp's default).
// Run it with NODE_PATH or from a directory whose node_modules holds node-llama-cpp 3.21.1.
//
// Timing matches lathe generate's: prefill = from handing over the prompt to the first new token
// (the prompt's forward pass and one sampling), decode = the remaining NEW-1 tokens. The ids go in
// through the context sequence as given (no BOS, no chat wrapper, no penalty; see
// tools/llamacpp_check/README.md), generation goes on past EOS. llama.cpp's own timers for the same
// context (llama_perf_context: prompt eval, eval) are printed too: they leave out node-llama-cpp's
// per-token JavaScript hop, so the gap between the two is the binding's overhead, not llama.cpp's.
// peak_rss_bytes is the process's VmHWM as is (node's own heap included); rss_before_model_bytes is
// VmRSS before the model loaded (node + the addon), to see how much of the peak is the runtime.
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, idsArg, newArg, threadsArg, kv = "f32"] = process.argv.slice(2);
if (!modelPath || !idsArg || !newArg || !threadsArg) {
  console.error("usage: node llamacpp_decode.mjs MODEL.gguf IDS NEW THREADS [f32|f16]");
  process.exit(2);
}
const ids = idsArg.split(",").map(Number), nNew = Number(newArg), threads = Number(threadsArg);
const status = (key) => Number(readFileSync("/proc/self/status", "utf8").match(new RegExp(`${key}:\\s+(\\d+) kB`))[1]) * 1024;

const logs = [];
const llama = await getLlama({
  gpu: false, build: "never", skipDownload: true, maxThreads: 0,  // maxThreads 0: `threads` is exact
  logLevel: LlamaLogLevel.info, logger: (level, message) => logs.push(message),
});
const rssBefore = status("VmRSS");
const model = await llama.loadModel({modelPath});
// One batch for the whole prompt (lathe's prefill is one forward pass); the context as small as the
// run needs, like lathe's KV cache (prompt + new tokens; llama.cpp pads it to 256).
const opts = {contextSize: ids.length + nNew, batchSize: Math.max(ids.length, 1), threads,
              flashAttention: false, performanceTracking: true};
if (kv === "f32") Object.assign(opts, {experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
else if (kv !== "f16") throw new Error(`KV cache type '${kv}': f32 or f16`);
const ctx = await model.createContext(opts);
const seq = ctx.getSequence();

const out = [];
const t0 = performance.now();
let t1 = null;
for await (const token of seq.evaluate(ids, {temperature: 0, yieldEogToken: true})) {
  if (t1 === null) t1 = performance.now();
  out.push(token);
  if (out.length >= nNew) break;
}
const t2 = performance.now();
logs.length = 0;
await ctx.printTimings();
// "prompt eval time =  12.34 ms /  32 tokens (...)" and "eval time = ... / 63 runs (...)"
const perf = (name) => {
  const m = logs.join("\n").match(new RegExp(`\\b${name} time =\\s*([0-9.]+) ms /\\s*(\\d+)`));
  return m ? {ms: Number(m[1]), n: Number(m[2])} : null;
};
const pe = perf("prompt eval"), ev = perf("(?<!prompt )eval");
const prefillS = (t1 - t0) / 1000, decodeS = (t2 - t1) / 1000;
console.log(JSON.stringify({
  prompt_tokens: ids.length, prefill_s: +prefillS.toFixed(6), prefill_tok_s: +(ids.length / prefillS).toFixed(2),
  new_tokens: out.length, decode_s: +decodeS.toFixed(6),
  decode_tok_s: out.length > 1 ? +((out.length - 1) / decodeS).toFixed(2) : 0,
  llama_prefill_tok_s: pe && pe.ms > 0 ? +(pe.n / (pe.ms / 1000)).toFixed(2) : null,
  llama_decode_tok_s: ev && ev.ms > 0 ? +(ev.n / (ev.ms / 1000)).toFixed(2) : null,
  peak_rss_bytes: status("VmHWM"), rss_before_model_bytes: rssBefore, kv_cache: kv, threads,
  context_size: ctx.contextSize, ids: out.slice(0, 8),
}));
process.exit(0);
