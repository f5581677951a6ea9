// What node-llama-cpp's LlamaCompletion.generateCompletion actually feeds llama.cpp and generates:
// prints the whole context (prompt + greedy output) as ids. Shows the two prompt differences that make
// its output differ from `lathe generate --prompt TEXT` (see README.md):
//   node completion_ids.mjs MODEL.gguf "Once upon a time" 60         text: BOS + the text with its leading
//                                                                      "▁" trimmed ([1,441,416,331,...])
//   node completion_ids.mjs MODEL.gguf ids:1,403,407,261,378 60      ids: BOS prepended again ([1,1,403,...])
//   optional 4th argument: repeatPenalty as JSON ('false', '{"penalty":1.1}'); omitted = the default.
import {getLlama, LlamaCompletion} from "node-llama-cpp";

const [modelPath, prompt, n, pen] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", skipDownload: true});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: 512, batchSize: 64, threads: 1, flashAttention: false});
const seq = ctx.getSequence();
const opts = {maxTokens: Number(n), temperature: 0};
if (pen !== undefined) opts.repeatPenalty = JSON.parse(pen);
const input = prompt.startsWith("ids:") ? prompt.slice(4).split(",").map(Number) : prompt;
await new LlamaCompletion({contextSequence: seq}).generateCompletion(input, opts);
console.log(Array.from(seq.contextTokens).join(" "));
process.exit(0);
