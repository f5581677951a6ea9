// Drives a `lathe serve --index` with the official OpenAI Node client, as an application would:
// chat completions that retrieve (whole and streamed) carry lathe's extra "sources" field and are
// otherwise ordinary completions; a model with retrieval off, or a request that opts out, gets none.
// Prints one JSON object with what it saw; tests/serve/serve_rag_e2e.cpp checks it. Exit code 1 on
// any failed check.
// usage: LATHE_NPM_DIR=BUILD/serve-npm node openai_rag_client.mjs BASE_URL API_KEY RAG_MODEL PLAIN_MODEL
import { createRequire } from 'node:module';
import path from 'node:path';

const [baseURL, apiKey, ragModel, plainModel] = process.argv.slice(2);
const require = createRequire(path.join(process.env.LATHE_NPM_DIR ?? '.', 'package.json'));
const mod = require('openai');
const OpenAI = mod.OpenAI ?? mod.default ?? mod;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30000 });
const out = { checks: [] };
const check = (ok, what) => {
  out.checks.push({ ok: !!ok, what });
  if (!ok) process.exitCode = 1;
};
const user = (content) => [{ role: 'system', content: 'Answer briefly.' }, { role: 'user', content }];
const ko = user('환불은 구매 후 며칠 안에 요청할 수 있나요?');
const en = user('How often must passwords be rotated?');
const ordinary = (c, what) => {
  check(c.id.startsWith('chatcmpl-') && c.object === 'chat.completion', `${what}: id and object`);
  check(c.choices.length === 1 && c.choices[0].message.role === 'assistant' &&
        typeof c.choices[0].message.content === 'string', `${what}: one assistant message`);
  check(['stop', 'length'].includes(c.choices[0].finish_reason), `${what}: finish_reason`);
  check(c.usage.prompt_tokens > 0 && c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens,
        `${what}: usage`);
};

const models = await client.models.list();
out.models = models.data;
check(models.data.find((m) => m.id === ragModel)?.rag === true, 'models list: retrieval on for the RAG model');
check(models.data.find((m) => m.id === plainModel)?.rag === false, 'models list: retrieval off for the plain model');

// (1) a whole answer with its sources
const koAnswer = await client.chat.completions.create({ model: ragModel, messages: ko, temperature: 0, max_tokens: 8 });
out.ko = koAnswer;
ordinary(koAnswer, 'ko');
const koSources = koAnswer.sources ?? [];
check(koSources.length >= 1 && koSources[0].index === 1, 'ko: sources numbered from 1');
check(koSources[0]?.source?.includes('refund-ko.md') && koSources[0]?.text?.includes('14일'),
      'ko: the first source is the refund policy');
check(koSources.every((s) => typeof s.score === 'number' && typeof s.file === 'string'), 'ko: sources have score and file');

// (2) streamed: the sources arrive in the first chunk, the text is the whole answer's (greedy)
const enAnswer = await client.chat.completions.create({ model: ragModel, messages: en, temperature: 0, max_tokens: 8 });
out.en = enAnswer;
ordinary(enAnswer, 'en');
check(enAnswer.sources?.[0]?.source?.includes('security-en.md'), 'en: the first source is the password policy');
let streamed = '', finish = null, chunks = 0, sourcesAt = [], streamSources = null;
for await (const c of await client.chat.completions.create({ model: ragModel, messages: en, temperature: 0, max_tokens: 8,
                                                             stream: true })) {
  if (c.sources) {
    sourcesAt.push(chunks);
    streamSources = c.sources;
  }
  chunks++;
  streamed += c.choices[0]?.delta?.content ?? '';
  if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
}
out.en_stream = { text: streamed, finish, chunks, sourcesAt, sources: streamSources };
check(sourcesAt.length === 1 && sourcesAt[0] === 0, 'stream: sources once, in the first chunk');
check(JSON.stringify(streamSources) === JSON.stringify(enAnswer.sources), 'stream: the same sources as the whole answer');
check(streamed === enAnswer.choices[0].message.content && finish === enAnswer.choices[0].finish_reason,
      'stream: the same text as the whole answer');

// (3) retrieval off: the plain model, and a request that opts out
const plain = await client.chat.completions.create({ model: plainModel, messages: ko, temperature: 0, max_tokens: 8 });
out.plain = plain;
ordinary(plain, 'plain');
check(!('sources' in plain), 'plain model: no sources');
let plainStreamSources = 0;
for await (const c of await client.chat.completions.create({ model: plainModel, messages: ko, max_tokens: 4, stream: true }))
  if ('sources' in c) plainStreamSources++;
check(plainStreamSources === 0, 'plain model, streamed: no sources');
const optOut = await client.chat.completions.create({ model: ragModel, messages: ko, temperature: 0, max_tokens: 8, rag: false });
out.opt_out = optOut;
check(!('sources' in optOut), 'rag: false: no sources');
check(optOut.usage.prompt_tokens < koAnswer.usage.prompt_tokens, 'rag: false: a shorter prompt (no passages)');
const optIn = await client.chat.completions.create({ model: plainModel, messages: ko, temperature: 0, max_tokens: 8, rag: true });
check(optIn.sources?.[0]?.source?.includes('refund-ko.md'), 'rag: true on the plain model: sources');

try {
  await client.chat.completions.create({ model: ragModel, messages: ko, rag: 'yes' });
  check(false, 'a non-boolean rag must fail');
} catch (e) {
  check(e.status === 400 && e.param === 'rag', 'rag: "yes" is a 400 naming rag');
}

const fb = await client.post('/feedback', { body: { completion_id: koAnswer.id, rating: 5, correction: '14일 안에 요청할 수 있습니다 [1].' } });
check(fb.stored === true, 'feedback on a retrieval answer stored');
out.feedback_id = koAnswer.id;

console.log(JSON.stringify(out));
