// Renders every (template, message set, add_generation_prompt) combination with the reference
// Jinja implementation used by Hugging Face (@huggingface/jinja) and writes the results as test data.
//
//   mkdir -p /tmp/jinjaref && (cd /tmp/jinjaref && npm install --ignore-scripts @huggingface/jinja)
//   node tools/chat_template_ref/gen_expected.mjs [/work/shared/fixtures]   # from the repo root
//
// Outputs (committed): tests/data/chat_templates/templates.json and expected.jsonl.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const refDir = process.env.JINJA_REF ?? "/tmp/jinjaref/node_modules/@huggingface/jinja";
const { Template } = await import(pathToFileURL(path.join(refDir, "dist/index.js")).href);

const here = path.dirname(new URL(import.meta.url).pathname);
const fixtures = process.argv[2] ?? path.resolve(here, "../../../shared/fixtures");
const outDir = path.resolve(here, "../../tests/data/chat_templates");

// name -> template file (or fixture), special tokens, the marker that ends an assistant turn, extra
// variables, and which message sets apply (others are skipped, not expected to fail).
const ALL = ["single_turn", "system_multi", "no_system_multi", "korean", "markers", "duplicates", "whitespace",
  "consecutive_assistant"];
const TEMPLATES = {
  "llama3.1": { file: "llama3.1.jinja", bos: "<|begin_of_text|>", eos: "<|eot_id|>", end: "<|eot_id|>",
    vars: { date_string: "26 Jul 2024" }, sets: [...ALL, "tools"] },
  "llama3.2": { file: "llama3.2.jinja", bos: "<|begin_of_text|>", eos: "<|eot_id|>", end: "<|eot_id|>",
    vars: { date_string: "02 Jan 2025" }, sets: [...ALL, "tools"] },
  "qwen2.5": { file: "qwen2.5.jinja", bos: "", eos: "<|im_end|>", end: "<|im_end|>", sets: [...ALL, "tools"] },
  "qwen3": { fixture: "tokenizers/qwen3", end: "<|im_end|>", sets: [...ALL, "think", "tools"] },
  "qwen3-no-thinking": { fixture: "tokenizers/qwen3", end: "<|im_end|>", vars: { enable_thinking: false },
    sets: ["single_turn", "think"] },
  "llama3-fixture": { fixture: "tokenizers/llama3", end: "<|eot_id|>", sets: ALL },
  "mistral-v0.1": { file: "mistral-v0.1.jinja", bos: "<s>", eos: "</s>", end: "</s>", sets: ALL },
  "mistral-v0.3": { file: "mistral-v0.3.jinja", bos: "<s>", eos: "</s>", end: "</s>", sets: ALL },
  "gemma2": { file: "gemma2.jinja", bos: "<bos>", eos: "<eos>", end: "<end_of_turn>", sets: ALL },
  "gemma3": { file: "gemma3.jinja", bos: "<bos>", eos: "<eos>", end: "<end_of_turn>", sets: ALL },
  "smollm2": { file: "smollm2.jinja", bos: "<|im_start|>", eos: "<|im_end|>", end: "<|im_end|>", sets: ALL },
  "phi3": { file: "phi3.jinja", bos: "<s>", eos: "<|endoftext|>", end: "<|end|>", sets: ALL },
  "chatml": { file: "chatml-hf.jinja", bos: "", eos: "<|im_end|>", end: "<|im_end|>", sets: ALL },
  "features": { file: "features.jinja", bos: "<s>", eos: "</s>", end: "</s>", sets: ALL },
};

function tokenText(v) {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof v.content === "string") return v.content;
  return "";
}

const sets = JSON.parse(fs.readFileSync(path.join(here, "messages.json"), "utf8"));
const templatesOut = {};
for (const [name, t] of Object.entries(TEMPLATES)) {
  let source = "", bos = t.bos ?? "", eos = t.eos ?? "";
  if (t.fixture) {
    const cfg = JSON.parse(fs.readFileSync(path.join(fixtures, t.fixture, "tokenizer_config.json"), "utf8"));
    source = cfg.chat_template;
    bos = tokenText(cfg.bos_token);
    eos = tokenText(cfg.eos_token);
  } else {
    source = fs.readFileSync(path.join(here, "templates", t.file), "utf8");
  }
  templatesOut[name] = { template: source, bos_token: bos, eos_token: eos, end_marker: t.end, vars: t.vars ?? {} };
}

const lines = [];
let ok = 0, errors = 0;
for (const [name, t] of Object.entries(TEMPLATES)) {
  const meta = templatesOut[name];
  const tpl = new Template(meta.template);
  for (const setName of t.sets) {
    const set = sets[setName];
    for (const agp of [false, true]) {
      const vars = { ...meta.vars, ...(set.vars ?? {}) };
      // transformers passes tools and documents even when absent (as None).
      const ctx = { tools: null, documents: null, ...vars, messages: set.messages, add_generation_prompt: agp,
        bos_token: meta.bos_token, eos_token: meta.eos_token };
      const rec = { template_name: name, messages_name: setName, messages: set.messages, vars,
        add_generation_prompt: agp, bos_token: meta.bos_token, eos_token: meta.eos_token };
      try {
        rec.expected = tpl.render(ctx);
        ok++;
      } catch (e) {
        rec.expected_error = String(e.message ?? e);
        errors++;
      }
      lines.push(JSON.stringify(rec));
    }
  }
}
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "templates.json"), JSON.stringify(templatesOut, null, 1) + "\n");
fs.writeFileSync(path.join(outDir, "expected.jsonl"), lines.join("\n") + "\n");
console.log(`${lines.length} cases (${ok} rendered, ${errors} raised) from ${Object.keys(TEMPLATES).length} templates`);
