// Greedy continuation of a list of token ids with llama.cpp (through the npm package node-llama-cpp),
// printed as ids, to compare with `lathe generate --prompt-ids ... --stop-ids 99999`.
// Uses the context sequence directly: no chat wrapper, no BOS added, no repetition penalty — the
// LlamaCompletion helper applies a repetition penalty by default, which makes outputs diverge once the
// text starts repeating. KV cache in F32 so the arithmetic matches lathe's f32 path.
//   node greedy_ids.mjs MODEL.gguf 1,403,407 200
import {getLlama} from "node-llama-cpp";

const [modelPath, ids, n] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", skipDownload: true});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: 512, batchSize: 64, threads: 1, flashAttention: false,
                                        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const out = [];
for await (const t of ctx.getSequence().evaluate(ids.split(",").map(Number), {temperature: 0})) {
  out.push(t);
  if (out.length >= Number(n)) break;
}
console.log(out.join(" "));
process.exit(0);
