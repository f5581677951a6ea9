// Makes a `lathe init-model` directory a sharper test for the family check (families.sh):
//   node patch_model.mjs DIR '{"rope_scaling": {...}}' NORM_NOISE SEED
// merges the JSON object into DIR/config.json (keys llama.cpp reads that init-model has no flag for:
// longrope factors, Llama 3 scaling), and adds N(0, NORM_NOISE) to every F32 norm weight in
// DIR/model.safetensors, so norm placement and Gemma's (1 + w) storage change the outputs (init-model
// sets all norms to the identity).
import fs from "node:fs";

const [dir, patch = "{}", noise = "0", seedArg = "1"] = process.argv.slice(2);
const cfgPath = `${dir}/config.json`;
const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
Object.assign(cfg, JSON.parse(patch));
fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));

// A small deterministic generator (mulberry32) and Box-Muller normals.
let state = Number(seedArg) >>> 0;
const uniform = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());

const stPath = `${dir}/model.safetensors`;
const buf = fs.readFileSync(stPath);
const headerLen = Number(buf.readBigUInt64LE(0));
const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString("utf8"));
const base = 8 + headerLen;
let changed = 0;
for (const [name, info] of Object.entries(header)) {
  if (name === "__metadata__" || !/norm/.test(name) || info.dtype !== "F32") continue;
  const [begin, end] = info.data_offsets;
  for (let o = base + begin; o < base + end; o += 4) buf.writeFloatLE(buf.readFloatLE(o) + Number(noise) * normal(), o);
  changed++;
}
fs.writeFileSync(stPath, buf);
console.log(`patched ${dir}: ${Object.keys(JSON.parse(patch)).join(", ") || "no config keys"}; ${changed} norm tensors`);
