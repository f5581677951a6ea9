"""Python Jinja2 renderings, configured as transformers' apply_chat_template configures it, for the
cases where @huggingface/jinja is known to render differently from Python (see gen_expected.mjs), and
a cross-check of every jinja.js rendering against Python.

    python3 tools/chat_template_ref/gen_jinja2.py          # writes tests/data/chat_templates/expected_jinja2.jsonl
    python3 tools/chat_template_ref/gen_jinja2.py --check  # also renders expected.jsonl's cases; exit 1 on a difference

Run after gen_expected.mjs (it reads the templates.json that script writes). Needs jinja2 (3.1.6
produced the committed data). The environment follows transformers: a sandboxed environment with
trim_blocks and lstrip_blocks, loop controls, {% generation %} blocks, tojson without ASCII escaping,
raise_exception and strftime_now (at the template's fixed `now`).
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "../../tests/data/chat_templates"))

# template name -> message sets rendered here rather than by jinja.js:
# - EXAONE 4.0 with a leading system message: the template writes it, then `{% continue %}`s; jinja.js
#   drops an iteration's output when it continues, Python keeps it.
# - SmolLM3 `whitespace`: `.lstrip("\n")` strips only newlines in Python; jinja.js strips all whitespace.
# - SmolLM3 with xml_tools: see below.
PYTHON_CASES = {
    "exaone4": ["system_multi", "korean", "tools"],
    "exaone4-reasoning": ["system_multi"],
    "smollm3": ["whitespace"],
    "smollm3-no-thinking": ["whitespace"],
    # `xml_tools` printed with `| string`: a dict's Python repr; jinja.js has no `string` for a dict.
    "smollm3-xml-tools": ["single_turn", "tools"],
}


class GenerationBlocks(Extension):
    """{% generation %}...{% endgeneration %}: renders its body (transformers records where)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_body", []), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def render(meta, messages, variables, add_generation_prompt):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlocks, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    now = meta.get("now")
    when = (datetime.datetime.fromtimestamp(now, datetime.timezone.utc) if now is not None
            else datetime.datetime.now())
    env.globals["strftime_now"] = lambda fmt: when.strftime(fmt)
    ctx = {"tools": None, "documents": None, **variables, "messages": messages,
           "add_generation_prompt": add_generation_prompt, "bos_token": meta["bos_token"],
           "eos_token": meta["eos_token"]}
    return env.from_string(meta["template"]).render(**ctx)


def main():
    check = "--check" in sys.argv[1:]
    with open(os.path.join(DATA, "templates.json"), encoding="utf-8") as f:
        templates = json.load(f)
    with open(os.path.join(HERE, "messages.json"), encoding="utf-8") as f:
        sets = json.load(f)

    lines = []
    for name, set_names in PYTHON_CASES.items():
        meta = templates[name]
        for set_name in set_names:
            s = sets[set_name]
            for agp in (False, True):
                variables = {**meta["vars"], **s.get("vars", {})}
                rec = {"template_name": name, "messages_name": set_name, "messages": s["messages"],
                       "vars": variables, "add_generation_prompt": agp, "bos_token": meta["bos_token"],
                       "eos_token": meta["eos_token"], "reference": f"jinja2 {jinja2.__version__}",
                       "expected": render(meta, s["messages"], variables, agp)}
                lines.append(json.dumps(rec, ensure_ascii=False))
    with open(os.path.join(DATA, "expected_jinja2.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} cases rendered with Python Jinja2 {jinja2.__version__}")

    if check:
        same = differ = 0
        with open(os.path.join(DATA, "expected.jsonl"), encoding="utf-8") as f:
            for line in f:
                c = json.loads(line)
                meta = templates[c["template_name"]]
                try:
                    got, raised = render(meta, c["messages"], c["vars"], c["add_generation_prompt"]), None
                except Exception as e:  # the template's own raise_exception, or a Jinja2 error
                    got, raised = None, e
                ok = got == c["expected"] if "expected" in c else raised is not None
                same += ok
                differ += not ok
                if not ok:
                    print(f"differs from jinja.js: {c['template_name']} / {c['messages_name']} / "
                          f"add_generation_prompt={c['add_generation_prompt']}")
        print(f"expected.jsonl: {same} cases render the same in Python Jinja2, {differ} differ")
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
