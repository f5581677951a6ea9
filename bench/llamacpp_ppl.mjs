// llama.cpp's side of bench/ppl_compare.sh: the perplexity `lathe perplexity --ids-file --context-length`
// computes, with llama.cpp (node-llama-cpp) on the same GGUF and the same ids:
//   node llamacpp_ppl.mjs MODEL.gguf IDS.jsonl CONTEXT [THREADS=1] [f32|f16]
// IDS.jsonl: one {"input_ids":[...]} per line, each an independent sequence; one longer than CONTEXT is
// scored as consecutive independent windows of CONTEXT ids, each window of n ids predicting n-1 of them
// (lathe's rule, cmd_perplexity.cpp). Prints {"tokens","nll","ppl"} like `lathe perplexity --json`.
// The probability of the actual next token comes from llama.cpp's full softmax over the vocabulary
// (controlledEvaluate with probabilities at temperature 0: the greedy sampler leaves every logit in place;
// checked below: the map must cover the whole vocabulary). KV cache F32 (lathe's) unless "f16".
import {readFileSync} from "node:fs";
import {getLlama} from "node-llama-cpp";

const [modelPath, idsPath, ctxArg, threadsArg = "1", kv = "f32"] = process.argv.slice(2);
if (!modelPath || !idsPath || !ctxArg) {
  console.error("usage: node llamacpp_ppl.mjs MODEL.gguf IDS.jsonl CONTEXT [THREADS] [f32|f16]");
  process.exit(2);
}
const ctxLen = Number(ctxArg);
const seqs = readFileSync(idsPath, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l).input_ids);
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, logLevel: "error", maxThreads: 0});
const model = await llama.loadModel({modelPath});
const opts = {contextSize: ctxLen, batchSize: ctxLen, threads: Number(threadsArg), flashAttention: false};
if (kv === "f32") Object.assign(opts, {experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const ctx = await model.createContext(opts);
const seq = ctx.getSequence();
const vocab = model.tokens.count ?? null;

let nll = 0, count = 0;
for (const s of seqs)
  for (let w = 0; w < s.length; w += ctxLen) {
    const win = s.slice(w, w + ctxLen);
    if (win.length < 2) continue;
    await seq.clearHistory();
    // Every position but the last asks for the next token's distribution.
    const input = win.map((t, i) => i + 1 < win.length
      ? [t, {generateNext: {probabilities: true, options: {temperature: 0}}}] : t);
    const res = await seq.controlledEvaluate(input);
    for (let i = 0; i + 1 < win.length; i++) {
      const probs = res[i]?.next?.probabilities;
      if (!probs) throw new Error(`no probabilities at position ${w + i}`);
      if (vocab !== null && probs.size < vocab)
        throw new Error(`probabilities cover ${probs.size} of ${vocab} tokens: the sampler truncated them`);
      const p = probs.get(win[i + 1]) ?? 0;
      nll -= Math.log(p);
      count++;
    }
  }
const mean = nll / count;
console.log(JSON.stringify({tokens: count, nll: mean, ppl: Math.exp(mean), kv_cache: kv}));
process.exit(0);
