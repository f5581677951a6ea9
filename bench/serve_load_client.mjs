// Load client for bench/serve_load.sh: CLIENTS concurrent clients, each sending REQUESTS streaming
// chat completions one after another through the official OpenAI client. Prints one JSON line:
// errors, latency percentiles (whole request and time to first token), aggregate tokens/s.
// usage: LATHE_NPM_DIR=BUILD/serve-npm node serve_load_client.mjs BASE_URL MODEL CLIENTS REQUESTS MAX_TOKENS
import { createRequire } from 'node:module';
import path from 'node:path';

const [baseURL, model, clients, requests, maxTokens] = process.argv.slice(2);
const require = createRequire(path.join(process.env.LATHE_NPM_DIR ?? '.', 'package.json'));
const mod = require('openai');
const OpenAI = mod.OpenAI ?? mod.default ?? mod;
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 120000 });

const topics = ['a cat', 'a dog', 'the sea', 'a red ball', 'a big tree', 'the park', 'a little girl', 'the sun'];
const latencies = [], ttfts = [];
let errors = 0, tokens = 0, firstError = null;

async function one(c, i) {
  const t0 = performance.now();
  let first = null, usage = null, finished = false;
  const stream = await client.chat.completions.create({
    model, stream: true, stream_options: { include_usage: true }, max_tokens: Number(maxTokens), temperature: 0.8,
    seed: c * 100000 + i, messages: [{ role: 'user', content: `Tell me a story about ${topics[(c + i) % topics.length]}.` }],
  });
  for await (const chunk of stream) {
    if (first === null && chunk.choices[0]?.delta?.content) first = performance.now();
    if (chunk.choices[0]?.finish_reason) finished = true;
    if (chunk.usage) usage = chunk.usage;
  }
  if (!finished || !usage) throw new Error('stream ended without finish_reason or usage');
  latencies.push(performance.now() - t0);
  if (first !== null) ttfts.push(first - t0);
  tokens += usage.completion_tokens;
}

async function worker(c) {
  for (let i = 0; i < Number(requests); i++) {
    try {
      await one(c, i);
    } catch (e) {
      errors++;
      firstError ??= String(e?.message ?? e);
    }
  }
}

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const t0 = performance.now();
await Promise.all(Array.from({ length: Number(clients) }, (_, c) => worker(c)));
const wall = (performance.now() - t0) / 1000;
console.log(JSON.stringify({
  clients: Number(clients), requests: Number(clients) * Number(requests), errors, first_error: firstError,
  wall_s: +wall.toFixed(2), completion_tokens: tokens, tokens_per_s: +(tokens / wall).toFixed(1),
  requests_per_s: +(latencies.length / wall).toFixed(1),
  latency_ms: { p50: +pct(latencies, 50)?.toFixed(1), p99: +pct(latencies, 99)?.toFixed(1), max: +pct(latencies, 100)?.toFixed(1) },
  ttft_ms: { p50: +pct(ttfts, 50)?.toFixed(1), p99: +pct(ttfts, 99)?.toFixed(1) },
}));
