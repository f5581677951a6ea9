// Drives a running `lathe serve` with the official OpenAI Node client, as an application would:
// models list, chat and text completions (whole and streamed), per-request adapter switch, an
// unknown model, and feedback through the client's generic post(). Prints one JSON object with what
// it saw; the gtest (tests/serve/serve_openai_e2e.cpp) checks it. Exit code 1 on any failed check.
// usage: NODE_PATH=BUILD/serve-npm/node_modules node openai_client.mjs BASE_URL API_KEY BASE_MODEL ADAPTER
import { createRequire } from 'node:module';
import path from 'node:path';

const [baseURL, apiKey, baseModel, adapter] = process.argv.slice(2);
const require = createRequire(path.join(process.env.LATHE_NPM_DIR ?? '.', 'package.json'));
const mod = require('openai');
const OpenAI = mod.OpenAI ?? mod.default ?? mod;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30000 });
const out = { checks: [] };
const check = (ok, what) => {
  out.checks.push({ ok: !!ok, what });
  if (!ok) process.exitCode = 1;
};

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
out.models = models.data;
check(ids.includes(baseModel) && ids.includes(adapter), 'models list has the base and the adapter');
check(models.data.find((m) => m.id === adapter)?.parent === baseModel, 'the adapter names its parent');

const messages = [{ role: 'user', content: 'Tell me a story about a cat.' }];
const chat = await client.chat.completions.create({ model: baseModel, messages, temperature: 0, max_tokens: 12 });
out.chat = chat;
check(chat.id.startsWith('chatcmpl-') && chat.object === 'chat.completion', 'chat id and object');
check(chat.choices.length === 1 && chat.choices[0].message.role === 'assistant', 'one assistant choice');
check(['stop', 'length'].includes(chat.choices[0].finish_reason), 'chat finish_reason');
check(chat.usage.prompt_tokens > 0 && chat.usage.completion_tokens > 0 &&
      chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens, 'chat usage');

let streamed = '', finish = null, chunks = 0, streamId = null;
const stream = await client.chat.completions.create({ model: baseModel, messages, temperature: 0, max_tokens: 12, stream: true });
for await (const c of stream) {
  chunks++;
  streamId = c.id;
  streamed += c.choices[0]?.delta?.content ?? '';
  if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
}
out.chat_stream = { text: streamed, finish, chunks };
check(streamed === chat.choices[0].message.content, 'streamed chat equals the whole answer (greedy)');
check(finish === chat.choices[0].finish_reason && chunks >= 2 && streamId.startsWith('chatcmpl-'), 'chat stream chunks');

const prompt = 'Once upon a time';
const text = await client.completions.create({ model: baseModel, prompt, temperature: 0, max_tokens: 16 });
out.text = text;
check(text.id.startsWith('cmpl-') && text.object === 'text_completion', 'completion id and object');
check(text.usage.completion_tokens === 16 && text.choices[0].finish_reason === 'length', 'max_tokens honoured');

let tstream = '';
for await (const c of await client.completions.create({ model: baseModel, prompt, temperature: 0, max_tokens: 16, stream: true }))
  tstream += c.choices[0]?.text ?? '';
out.text_stream = tstream;
check(tstream === text.choices[0].text, 'streamed completion equals the whole one');

const seeded = (seed) => client.completions.create({ model: baseModel, prompt, temperature: 1, top_p: 0.9, seed, max_tokens: 16 });
const [s1, s2] = [await seeded(7), await seeded(7)];
check(s1.choices[0].text === s2.choices[0].text, 'same seed, same sample');

const viaAdapter = await client.completions.create({ model: adapter, prompt, temperature: 0, max_tokens: 16 });
out.adapter_text = viaAdapter.choices[0].text;
check(viaAdapter.model === adapter, 'the adapter answers under its own name');
const stopped = await client.completions.create({ model: baseModel, prompt, temperature: 0, max_tokens: 16, stop: ['girl'] });
out.stop_text = stopped.choices[0].text;
check(stopped.choices[0].finish_reason === 'stop' && !stopped.choices[0].text.includes('girl'), 'stop string');

try {
  await client.chat.completions.create({ model: 'no-such-model', messages });
  check(false, 'unknown model must fail');
} catch (e) {
  out.unknown_model = { status: e.status, code: e.code, type: e.type };
  check(e.status === 404 && e.code === 'model_not_found', 'unknown model: 404 model_not_found');
}

const fb = await client.post('/feedback', { body: { completion_id: chat.id, rating: 1, correction: 'A better answer.', tags: ['node'] } });
out.feedback = fb;
check(fb.stored === true && fb.completion_id === chat.id, 'feedback stored');

console.log(JSON.stringify(out));
