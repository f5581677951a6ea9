// Greedy continuation of a list of token ids with llama.cpp (through the npm package node-llama-cpp),
// printed as ids, to compare with `lathe generate --prompt-ids ... --stop-ids 99999`.
//   node greedy_ids.mjs MODEL.gguf 1,403,407,261,378 200 [f32|f16] [probs]
// Uses the context sequence directly: the ids go in exactly as given (no BOS added, no space trimming,
// no chat wrapper, no penalty) and generation goes on past an end-of-sequence token like lathe does with
// --stop-ids 99999 (yieldEogToken; without it llama.cpp stops at EOS). KV cache F32 unless "f16" (llama.cpp's
// default). With "probs", each step also prints its top-2 tokens and probabilities, to measure how near a tie
// a differing step was.
import {getLlama} from "node-llama-cpp";

const [modelPath, ids, n, kv = "f32", probs] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", skipDownload: true});
const model = await llama.loadModel({modelPath});
const opts = {contextSize: 512, batchSize: 64, threads: 1, flashAttention: false};
if (kv === "f32") Object.assign(opts, {experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const ctx = await model.createContext(opts);
const out = [], lines = [];
for await (const r of ctx.getSequence().evaluateWithMetadata(ids.split(",").map(Number), {probabilities: probs === "probs"},
                                                             {temperature: 0, yieldEogToken: true})) {
  out.push(r.token);
  if (r.probabilities) {
    const top = [...r.probabilities.entries()].sort((a, b) => b[1] - a[1]).slice(0, 2);
    lines.push(`${out.length - 1} ${r.token} top2 ${top.map(([t, p]) => `${t}:${p.toExponential(6)}`).join(" ")}`);
  }
  if (out.length >= Number(n)) break;
}
console.log(out.join(" "));
if (lines.length) console.log(lines.join("\n"));
process.exit(0);
