// lathe workbench: one page, five views over the JSON API (src/lathe/ui/ui_server.cpp).
// Every piece of data reaches the page as text (textContent / text nodes), never as HTML.
'use strict';

const STRINGS = {
  en: {
    runs: 'Runs', data: 'Data review', eval: 'Eval review', feedback: 'Feedback', playground: 'Playground', audit: 'Audit',
    login: 'Log in', name: 'Your name', token: 'Token', logout: 'Log out',
    start_run: 'Start lathe run', stop_run: 'Stop', force: 'force (ignore unchanged)', from_stage: 'from stage',
    running: 'running', finished: 'finished with exit code', no_runs: 'No runs yet.',
    run: 'Run', started: 'Started', verdict: 'Verdict', stages: 'Stages', pass_rates: 'Pass rates', compare: 'Compare the two selected runs',
    config_diff: 'Config changes', fixed: 'fixed', broken: 'broken', data_changed: 'data changed', curves: 'Training curves', gate: 'Gate',
    not_prepared: 'No prepared data yet: run the project (at least the prepare stage).',
    records: 'Records', drops: 'Dropped by the pipeline', pii: 'Personal data', duplicates: 'Duplicates',
    approve: 'Approve', reject: 'Reject', edit: 'Edit', label: 'Label', undo: 'Undo', save: 'Save', cancel: 'Cancel',
    reason: 'Reason', labels: 'Labels (comma-separated)', search: 'Search', all_splits: 'all splits', only_pii: 'only with personal data',
    decisions: 'Decisions (applied by the next lathe run)', applied_review: 'Applied in the last prepare', rejected_gone: 'rejected (not in the prepared data any more)',
    dup_of: 'duplicate of', go: 'go to', not_evaluated: 'No evaluation yet: run the project through eval.',
    variant: 'Variant', passed: 'Passed', expected: 'Expected', overrule: 'Overrule', overrules: 'Overrules (shown in the next report)',
    verdict_pass: 'pass', verdict_fail: 'fail', overruled_by: 'overruled by', assertions_said: 'assertions said', report: 'Open the last report',
    pending: 'pending (next eval)', applied: 'applied', diff_expected: 'diff against expected',
    inbox: 'Served answers', no_feedback: 'No served answers yet (lathe serve, or the playground, records them).', question: 'Question', answer: 'Answer',
    rating: 'Rating', correction: 'Correct answer', save_correction: 'Save correction', only_rated: 'only rated',
    models: 'Models', message: 'Message', send: 'Send', sources: 'Sources', clear: 'Clear', no_model: 'No base model yet: run the project first.',
    saved: 'Saved', error: 'Error', when: 'When', reviewer: 'Reviewer', action: 'Action', target: 'Target', detail: 'Detail',
    rag: 'retrieval', blank: 'blank answer, characters', case: 'Case', split: 'split', prompt_pass: 'Mark as pass', prompt_fail: 'Mark as fail'
  },
  ko: {
    runs: '실행', data: '데이터 검토', eval: '평가 검토', feedback: '피드백', playground: '플레이그라운드', audit: '감사 기록',
    login: '로그인', name: '이름', token: '토큰', logout: '로그아웃',
    start_run: 'lathe run 시작', stop_run: '중지', force: '강제 (변경 없음 무시)', from_stage: '시작 단계',
    running: '실행 중', finished: '종료 코드', no_runs: '아직 실행 기록이 없습니다.',
    run: '실행', started: '시작', verdict: '판정', stages: '단계', pass_rates: '통과율', compare: '선택한 두 실행 비교',
    config_diff: '설정 변경', fixed: '고쳐짐', broken: '깨짐', data_changed: '데이터 변경됨', curves: '학습 곡선', gate: '게이트',
    not_prepared: '준비된 데이터가 없습니다. 프로젝트를 실행하세요 (최소 prepare 단계).',
    records: '레코드', drops: '파이프라인이 제외한 레코드', pii: '개인정보', duplicates: '중복',
    approve: '승인', reject: '거부', edit: '수정', label: '라벨', undo: '되돌리기', save: '저장', cancel: '취소',
    reason: '사유', labels: '라벨 (쉼표로 구분)', search: '검색', all_splits: '전체 분할', only_pii: '개인정보 포함만',
    decisions: '결정 (다음 lathe run에 반영)', applied_review: '마지막 prepare에 반영됨', rejected_gone: '거부됨 (준비된 데이터에서 제외)',
    dup_of: '중복 대상', go: '이동', not_evaluated: '아직 평가가 없습니다. eval 단계까지 실행하세요.',
    variant: '변형', passed: '통과', expected: '기대 답변', overrule: '판정 변경', overrules: '판정 변경 (다음 보고서에 표시)',
    verdict_pass: '통과', verdict_fail: '실패', overruled_by: '판정 변경:', assertions_said: '자동 판정', report: '마지막 보고서 열기',
    pending: '대기 (다음 평가)', applied: '반영됨', diff_expected: '기대 답변과의 차이',
    inbox: '서비스된 답변', no_feedback: '아직 답변이 없습니다 (lathe serve 또는 플레이그라운드가 기록합니다).', question: '질문', answer: '답변',
    rating: '평가', correction: '올바른 답변', save_correction: '수정 저장', only_rated: '평가된 것만',
    models: '모델', message: '메시지', send: '보내기', sources: '출처', clear: '지우기', no_model: '기본 모델이 없습니다. 먼저 프로젝트를 실행하세요.',
    saved: '저장됨', error: '오류', when: '시각', reviewer: '검토자', action: '작업', target: '대상', detail: '내용',
    rag: '검색', blank: '빈 답변, 문자 수', case: '케이스', split: '분할', prompt_pass: '통과로 변경', prompt_fail: '실패로 변경'
  }
};

const state = { lang: localStorage.getItem('lathe-ui-lang') || ((navigator.language || '').startsWith('ko') ? 'ko' : 'en'), csrf: '', reviewer: '', view: 'runs', events: null };
const t = (k) => (STRINGS[state.lang] && STRINGS[state.lang][k]) || STRINGS.en[k] || k;

// el('div', {class: 'x', onclick: f}, 'text', child): strings become text nodes.
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else if (k === 'class') n.className = v;
    else n.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return n;
}
const $ = (id) => document.getElementById(id);
function clear(n) { while (n.firstChild) n.removeChild(n.firstChild); return n; }
function pct(x) { return (typeof x === 'number') ? (100 * x).toFixed(1) + '%' : '-'; }

async function api(path, body) {
  const opt = { credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opt.method = 'POST';
    opt.headers['Content-Type'] = 'application/json';
    opt.headers['X-CSRF-Token'] = state.csrf;
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(path, opt);
  const j = await r.json().catch(() => ({ error: 'HTTP ' + r.status }));
  if (r.status === 401 && path !== '/api/login') { showLogin(j.token_required); throw new Error(j.error); }
  if (!r.ok) throw new Error(j.error || ('HTTP ' + r.status));
  return j;
}

function toast(msg, bad) {
  const n = el('div', { class: 'card ' + (bad ? 'error' : ''), role: 'status' }, msg);
  n.style.position = 'fixed'; n.style.right = '16px'; n.style.bottom = '16px'; n.style.zIndex = 20;
  document.body.append(n);
  setTimeout(() => n.remove(), 2500);
}
async function act(f) { try { await f(); } catch (e) { toast(t('error') + ': ' + e.message, true); } }

// ---- login, navigation, language ----
function showLogin(tokenRequired) {
  $('login').classList.remove('hidden');
  $('login-token-row').classList.toggle('hidden', !tokenRequired);
}
function labels() {
  document.documentElement.lang = state.lang;
  $('lang').textContent = state.lang === 'ko' ? 'English' : '한국어';
  $('login-title').textContent = t('login'); $('login-name-label').textContent = t('name');
  $('login-token-label').textContent = t('token'); $('login-submit').textContent = t('login');
  const nav = clear($('nav'));
  for (const v of ['runs', 'data', 'eval', 'feedback', 'playground', 'audit'])
    nav.append(el('a', { href: '#' + v, id: 'nav-' + v, class: state.view === v ? 'active' : '' }, t(v)));
  $('who').textContent = state.reviewer ? state.reviewer : '';
}
$('lang').addEventListener('click', () => { state.lang = state.lang === 'ko' ? 'en' : 'ko'; localStorage.setItem('lathe-ui-lang', state.lang); labels(); render(); });
$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const j = await api('/api/login', { reviewer: $('login-name').value, token: $('login-token').value });
    state.csrf = j.csrf; state.reviewer = j.reviewer; $('project').textContent = j.project;
    $('login').classList.add('hidden'); $('login-error').textContent = '';
    labels(); render();
  } catch (err) { $('login-error').textContent = err.message; }
});
window.addEventListener('hashchange', () => { state.view = (location.hash || '#runs').slice(1); labels(); render(); });

async function boot() {
  state.view = (location.hash || '#runs').slice(1);
  labels();
  try {
    const s = await api('/api/session');
    state.csrf = s.csrf; state.reviewer = s.reviewer; $('project').textContent = s.project;
    labels(); render();
  } catch (e) { /* the login form is showing */ }
}

function render() {
  const main = clear($('main'));
  if (state.events && state.view !== 'runs') { state.events.close(); state.events = null; }
  const views = { runs: viewRuns, data: viewData, eval: viewEval, feedback: viewFeedback, playground: viewPlayground, audit: viewAudit };
  main.append(el('h2', { id: 'page-title' }, t(state.view)));
  act(() => (views[state.view] || viewRuns)(main));
}

// ---- Runs ----
function curveSvg(name, rows) {
  const pts = rows.filter((r) => typeof r.loss === 'number');
  if (!pts.length) return null;
  const W = 420, H = 160, P = 30;
  const xs = pts.map((r) => r.step), ys = pts.map((r) => r.loss);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => P + (W - 2 * P) * (x - x0) / Math.max(x1 - x0, 1e-9);
  const sy = (y) => H - P - (H - 2 * P) * (y - y0) / Math.max(y1 - y0, 1e-9);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'curve'); svg.setAttribute('width', W); svg.setAttribute('height', H);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#2455c3'); line.setAttribute('stroke-width', '2');
  line.setAttribute('points', pts.map((r) => sx(r.step).toFixed(1) + ',' + sy(r.loss).toFixed(1)).join(' '));
  svg.append(line);
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', P); label.setAttribute('y', 16); label.setAttribute('font-size', '12');
  label.textContent = name + ': loss ' + ys[0].toFixed(3) + ' → ' + ys[ys.length - 1].toFixed(3) + ' (' + pts.length + ' steps logged)';
  svg.append(label);
  return svg;
}

async function viewRuns(main) {
  const j = await api('/api/runs');
  const log = el('pre', { class: 'log', id: 'run-log' });
  const status = el('span', { id: 'run-status', class: 'muted' });
  const force = el('input', { type: 'checkbox', id: 'run-force' });
  const from = el('select', { id: 'run-from' }, el('option', { value: '' }, '-'),
    ['base', 'prepare', 'index', 'train', 'align', 'eval', 'export'].map((s) => el('option', { value: s }, s)));
  const startBtn = el('button', { class: 'primary', id: 'run-start', onclick: () => act(async () => {
    await api('/api/run/start', { force: force.checked, from: from.value });
    follow(0);
  }) }, t('start_run'));
  const stopBtn = el('button', { id: 'run-stop', onclick: () => act(() => api('/api/run/stop', {})) }, t('stop_run'));
  function follow(fromLine) {
    if (state.events) state.events.close();
    clear(log); status.textContent = t('running');
    const es = new EventSource('/api/run/events?from=' + fromLine);
    state.events = es;
    es.onmessage = (e) => { const d = JSON.parse(e.data); log.append(document.createTextNode(d.line + '\n')); log.scrollTop = log.scrollHeight; };
    es.addEventListener('end', (e) => {
      const d = JSON.parse(e.data); status.textContent = t('finished') + ' ' + d.exit_code; status.dataset.exit = d.exit_code;
      es.close(); state.events = null; if (state.view === 'runs') setTimeout(render, 300);
    });
  }
  main.append(el('div', { class: 'card' }, el('div', { class: 'row' }, startBtn, stopBtn, el('label', {}, force, ' ', t('force')),
    el('label', {}, t('from_stage'), ' ', from), status), log));
  if (j.process.running) follow(0);
  else if (j.process.lines > 0) { status.textContent = t('finished') + ' ' + j.process.exit_code; status.dataset.exit = j.process.exit_code; }

  const curves = el('div', { class: 'row' });
  for (const [name, rows] of Object.entries(j.curves)) { const s = curveSvg(name, rows); if (s) curves.append(s); }
  if (curves.childNodes.length) main.append(el('h3', {}, t('curves')), curves);

  main.append(el('h3', {}, t('runs')));
  if (!j.runs.length) { main.append(el('p', { class: 'muted' }, t('no_runs'))); return; }
  const picked = new Set();
  const tbody = el('tbody');
  for (const r of j.runs) {
    const cb = el('input', { type: 'checkbox', 'data-run': r.id, onchange: () => { cb.checked ? picked.add(r.id) : picked.delete(r.id); } });
    const gate = r.gate && r.gate.passed !== undefined ? (r.gate.passed ? '✓' : '✗') : '';
    tbody.append(el('tr', { id: 'run-' + r.id }, el('td', {}, cb, ' ', r.id), el('td', {}, r.started_at),
      el('td', { class: r.verdict === 'pass' ? 'pass' : r.verdict === 'fail' ? 'fail' : '' }, r.verdict, ' ', gate),
      el('td', { class: 'small' }, r.stages.map((s) => s.stage + ':' + s.status).join(' ')),
      el('td', { class: 'small' }, Object.entries(r.pass_rates).map(([k, v]) => k + ' ' + pct(v)).join(' · '))));
  }
  const cmpOut = el('div', { id: 'compare-out' });
  main.append(el('table', {}, el('thead', {}, el('tr', {}, ['run', 'started', 'verdict', 'stages', 'pass_rates'].map((k) => el('th', {}, t(k))))), tbody),
    el('div', { class: 'row' }, el('button', { id: 'compare', onclick: () => act(async () => {
      const ids = [...picked].sort((a, b) => a - b);
      if (ids.length !== 2) throw new Error('select two runs');
      const c = await api('/api/runs/compare?a=' + ids[0] + '&b=' + ids[1]);
      clear(cmpOut).append(...[el('h3', {}, t('config_diff') + ': ' + ids[0] + ' → ' + ids[1]),
        c.config_diff.length ? null : el('p', { class: 'muted' }, '(none)'),
        el('table', {}, el('tbody', {}, c.config_diff.map((d) => el('tr', {}, el('td', {}, d.key), el('td', {}, d.a === null ? '(unset)' : d.a), el('td', {}, d.b === null ? '(unset)' : d.b))))),
        c.data_changed ? el('p', {}, t('data_changed')) : null,
        Object.entries(c.cases).map(([v, fb]) => el('p', {}, el('b', {}, v), ': ', el('span', { class: 'pass' }, t('fixed') + ' ' + fb.fixed.length), ' ', fb.fixed.join(' '), ' · ',
          el('span', { class: 'fail' }, t('broken') + ' ' + fb.broken.length), ' ', fb.broken.join(' ')))].flat().filter(Boolean));
    }) }, t('compare'))), cmpOut);
}

// ---- Data review ----
const PII_RE = /\[(EMAIL|PHONE|RRN|CARD|IP|URL|ACCOUNT|PASSPORT|ADDRESS|NAME|[A-Z_]{2,20})\]/g;
// Text with personal-data placeholders ([PHONE], ...) and the given raw findings wrapped in highlighted spans.
function highlighted(text) {
  const out = [];
  let last = 0;
  for (const m of String(text).matchAll(PII_RE)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    out.push(el('mark', { class: 'pii', title: t('pii') }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}
function recordView(rec) {
  if (Array.isArray(rec.messages)) return rec.messages.map((m) => el('div', {}, el('b', {}, m.role + ': '), highlighted(typeof m.content === 'string' ? m.content : JSON.stringify(m.content))));
  if (typeof rec.text === 'string') return [el('div', {}, highlighted(rec.text))];
  if (typeof rec.prompt === 'string') return [el('div', {}, el('b', {}, 'prompt: '), highlighted(rec.prompt)), el('div', {}, el('b', {}, 'chosen: '), highlighted(String(rec.chosen || rec.completion || ''))), rec.rejected ? el('div', {}, el('b', {}, 'rejected: '), highlighted(String(rec.rejected))) : null];
  return [el('pre', {}, JSON.stringify(rec, null, 1))];
}
function anchorOf(where) { return 'rec-' + where.replace(/[^A-Za-z0-9_-]/g, '_'); }
function goTo(where) {
  const n = document.getElementById(anchorOf(where));
  if (!n) { toast(where + ' —'); return; }
  n.scrollIntoView({ block: 'center' }); n.classList.add('flash'); setTimeout(() => n.classList.remove('flash'), 1500);
}

async function viewData(main) {
  const j = await api('/api/data');
  if (!j.prepared) { main.append(el('p', { class: 'muted' }, t('not_prepared'))); }
  const rep = j.report || {};
  // Where each duplicate pointed: "file:12: duplicate of file:3" / "file:12: near file:3".
  const dupOf = {};
  const drops = el('div', { class: 'card', id: 'drops' }, el('h3', {}, t('drops')));
  for (const st of rep.drops || []) {
    for (const [reason, n] of Object.entries(st.dropped)) {
      const ex = (st.examples && st.examples[reason]) || [];
      drops.append(el('div', {}, el('b', {}, st.stage + ' · ' + reason + ': ' + n)));
      for (const e of ex) {
        const m = /^(.*?): (?:duplicate of|near) (.*)$/.exec(e);
        if (m) {
          (dupOf[m[2]] = dupOf[m[2]] || []).push(m[1]);
          drops.append(el('div', { class: 'small' }, m[1] + ' ', t('dup_of') + ' ', el('a', { href: '#data', class: 'dup-link', onclick: (ev) => { ev.preventDefault(); goTo(m[2]); } }, m[2])));
        } else drops.append(el('div', { class: 'small' }, highlighted(e)));
      }
    }
  }
  main.append(drops);
  if (rep.pii && rep.pii.hits) {
    main.append(el('div', { class: 'card', id: 'pii-summary' }, el('h3', {}, t('pii') + ' (' + rep.pii.policy + ')'),
      Object.entries(rep.pii.hits).map(([k, v]) => el('span', { class: 'badge' }, k + ' ' + v, ' ')),
      Object.entries(rep.pii.examples || {}).map(([k, v]) => el('div', { class: 'small' }, k + ': ', (Array.isArray(v) ? v : [v]).map((x) => el('mark', { class: 'pii' }, typeof x === 'string' ? x : JSON.stringify(x), ' '))))));
  }
  if (rep.review) main.append(el('p', { class: 'small', id: 'review-applied' }, t('applied_review') + ': ' + ['approved', 'edited', 'rejected', 'labelled'].map((k) => k + ' ' + rep.review[k]).join(', ')));

  const dec = j.decisions || {};
  const search = el('input', { id: 'data-search', placeholder: t('search') });
  const split = el('select', { id: 'data-split' }, el('option', { value: '' }, t('all_splits')), ['train', 'validation', 'test'].map((s) => el('option', { value: s }, s)));
  const onlyPii = el('input', { type: 'checkbox', id: 'data-pii' });
  const list = el('div', { id: 'records' });
  main.append(el('h3', {}, t('records') + ' (' + j.records.length + ')'), el('div', { class: 'row' }, search, split, el('label', {}, onlyPii, ' ', t('only_pii'))), list);

  async function decide(id, body) { await api('/api/data/decision', Object.assign({ id }, body)); toast(t('saved')); render(); }
  function card(r) {
    const d = dec[r.id];
    const body = el('div', {}, recordView(r.record));
    const actions = el('div', { class: 'row' },
      el('button', { class: 'act-approve', onclick: () => act(() => decide(r.id, { action: 'approve' })) }, t('approve')),
      el('button', { class: 'act-reject', onclick: () => act(async () => { const why = prompt(t('reason')); if (why !== null) await decide(r.id, { action: 'reject', reason: why }); }) }, t('reject')),
      el('button', { class: 'act-edit', onclick: () => {
        const ta = el('textarea', { class: 'edit-box' }); ta.value = JSON.stringify(r.record, null, 2);
        clear(body).append(ta, el('div', { class: 'row' }, el('button', { class: 'primary act-save', onclick: () => act(async () => decide(r.id, { action: 'edit', record: JSON.parse(ta.value) })) }, t('save')),
          el('button', { onclick: () => render() }, t('cancel'))));
      } }, t('edit')),
      el('button', { class: 'act-label', onclick: () => act(async () => {
        const l = prompt(t('labels'), d && d.labels ? d.labels.join(', ') : '');
        if (l !== null) await decide(r.id, { action: d ? d.action : 'label', labels: l.split(',').map((x) => x.trim()).filter(Boolean), record: d && d.record ? d.record : undefined });
      }) }, t('label')),
      d ? el('button', { class: 'act-undo', onclick: () => act(async () => { await api('/api/data/undo', { id: r.id }); render(); }) }, t('undo')) : null);
    const dups = dupOf[r.where] || [];
    return el('div', { class: 'card record', id: anchorOf(r.where), 'data-id': r.id },
      el('div', { class: 'row small' }, el('code', {}, r.where), el('span', { class: 'badge' }, r.split), el('span', { class: 'muted' }, r.id),
        d ? el('span', { class: 'badge decision ' + d.action }, t(d.action) + ' · ' + d.reviewer + (d.reason ? ' · ' + d.reason : '') + (d.labels && d.labels.length ? ' · ' + d.labels.join(', ') : '')) : null,
        dups.length ? el('span', { class: 'badge' }, t('duplicates') + ': ' + dups.join(', ')) : null),
      body, actions);
  }
  function fill() {
    clear(list);
    const q = search.value.toLowerCase();
    let n = 0;
    for (const r of j.records) {
      const s = JSON.stringify(r.record);
      if (split.value && r.split !== split.value) continue;
      if (onlyPii.checked && !PII_RE.test(s)) continue;
      PII_RE.lastIndex = 0;
      if (q && !s.toLowerCase().includes(q) && !r.where.toLowerCase().includes(q)) continue;
      if (n++ < 300) list.append(card(r));
    }
  }
  search.addEventListener('input', fill); split.addEventListener('change', fill); onlyPii.addEventListener('change', fill);
  fill();
  // Decisions whose record left the prepared data (rejected, then a run applied it).
  const present = new Set(j.records.map((r) => r.id));
  const gone = Object.entries(dec).filter(([id]) => !present.has(id));
  if (gone.length) {
    main.append(el('h3', {}, t('decisions')), ...gone.map(([id, d]) => el('div', { class: 'card gone', 'data-id': id },
      el('span', { class: 'badge decision ' + d.action }, t(d.action) + ' · ' + d.reviewer), ' ', el('span', { class: 'muted' }, t('rejected_gone') + ' ' + id),
      d.original ? el('div', {}, recordView(d.original)) : null,
      el('button', { onclick: () => act(async () => { await api('/api/data/undo', { id }); render(); }) }, t('undo')))));
  }
}

// ---- Eval review ----
// Word-level diff of b against a (LCS): spans marked ins (only in b) and del (only in a).
function diffView(a, b) {
  const A = String(a).split(/(\s+)/), B = String(b).split(/(\s+)/);
  if (A.length * B.length > 400000) return [document.createTextNode(b)];
  const L = Array.from({ length: A.length + 1 }, () => new Int32Array(B.length + 1));
  for (let i = A.length - 1; i >= 0; i--) for (let j = B.length - 1; j >= 0; j--) L[i][j] = A[i] === B[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < A.length || j < B.length) {
    if (i < A.length && j < B.length && A[i] === B[j]) { out.push(document.createTextNode(A[i])); i++; j++; }
    else if (j < B.length && (i >= A.length || L[i][j + 1] >= L[i + 1][j])) out.push(el('span', { class: 'ins' }, B[j++]));
    else out.push(el('span', { class: 'del' }, A[i++]));
  }
  return out;
}
function promptOf(c) {
  if (c.prompt) return c.prompt;
  if (Array.isArray(c.messages)) { const u = c.messages.filter((m) => m.role === 'user').pop(); return u ? u.content : ''; }
  return '';
}
async function viewEval(main) {
  const j = await api('/api/eval');
  main.append(el('p', {}, el('a', { href: '/api/eval/report.html', target: '_blank', rel: 'noopener' }, t('report'))));
  if (j.overrules.length) {
    main.append(el('div', { class: 'card', id: 'overrules' }, el('h3', {}, t('overrules')), j.overrules.map((o) => el('div', { class: 'small' },
      el('b', {}, o.case + ' @ ' + o.variant), ' → ', el('span', { class: o.pass ? 'pass' : 'fail' }, o.pass ? t('verdict_pass') : t('verdict_fail')), ' · ' + o.reviewer + ': ' + o.reason))));
  }
  if (!j.evaluated) { main.append(el('p', { class: 'muted' }, t('not_evaluated'))); return; }
  main.append(el('table', { id: 'variants' }, el('thead', {}, el('tr', {}, el('th', {}, t('variant')), el('th', {}, t('passed')))),
    el('tbody', {}, j.variants.map((v) => el('tr', {}, el('td', {}, v.name), el('td', {}, v.passed + '/' + v.cases + ' (' + pct(v.pass_rate) + ')'))))));
  const filter = el('input', { id: 'eval-search', placeholder: t('search') });
  const list = el('div', { id: 'cases' });
  main.append(el('div', { class: 'row' }, filter), list);
  function fill() {
    clear(list);
    const q = filter.value.toLowerCase();
    for (const c of j.cases) {
      const pr = promptOf(c);
      if (q && !(c.id + ' ' + pr).toLowerCase().includes(q)) continue;
      const cols = j.variants.map((v) => {
        const r = c.results[v.name];
        if (!r) return null;
        const ov = r.overrule;
        return el('div', { class: 'card variant', 'data-variant': v.name },
          el('div', { class: 'row' }, el('b', {}, v.name), el('span', { class: r.pass ? 'pass' : 'fail' }, r.pass ? t('verdict_pass') : t('verdict_fail'))),
          ov ? el('div', { class: 'small overruled' }, t('overruled_by') + ' ' + ov.reviewer + ' (' + t('assertions_said') + ' ' + (ov.assertions_pass ? t('verdict_pass') : t('verdict_fail')) + '): ' + ov.reason) : null,
          el('pre', {}, c.expected !== null && c.expected !== undefined ? diffView(c.expected, r.output) : r.output),
          el('div', { class: 'small' }, r.assertions.map((a) => el('div', {}, el('span', { class: a.pass ? 'pass' : 'fail' }, a.pass ? '✓ ' : '✗ '), a.type + ' ' + a.detail))),
          el('button', { class: 'act-overrule', onclick: () => act(async () => {
            const reason = prompt(t('reason') + ' — ' + (r.pass ? t('prompt_fail') : t('prompt_pass')));
            if (!reason) return;
            await api('/api/eval/overrule', { case: c.id, variant: v.name, pass: !r.pass, reason });
            toast(t('saved')); render();
          }) }, t('overrule') + ' → ' + (r.pass ? t('verdict_fail') : t('verdict_pass'))));
      });
      list.append(el('div', { class: 'card case', id: 'case-' + c.id }, el('h3', {}, c.id),
        el('div', {}, el('b', {}, t('question') + ': '), pr), c.expected ? el('div', {}, el('b', {}, t('expected') + ': '), c.expected) : null,
        el('div', { class: 'grid' }, cols)));
    }
  }
  filter.addEventListener('input', fill);
  fill();
}

// ---- Feedback inbox ----
function lastUser(req) {
  if (Array.isArray(req)) { const u = req.filter((m) => m.role === 'user').pop(); return u ? String(u.content) : ''; }
  return typeof req === 'string' ? req : JSON.stringify(req);
}
async function viewFeedback(main) {
  const rated = el('input', { type: 'checkbox', id: 'fb-rated' });
  rated.checked = sessionStorage.getItem('fb-rated') === '1';
  rated.addEventListener('change', () => { sessionStorage.setItem('fb-rated', rated.checked ? '1' : '0'); render(); });
  const j = await api('/api/feedback' + (rated.checked ? '?rated=1' : ''));
  main.append(el('div', { class: 'row' }, el('label', {}, rated, ' ', t('only_rated')), el('span', { class: 'muted small' }, j.data_dir)));
  if (!j.items.length) { main.append(el('p', { class: 'muted' }, t('no_feedback'))); return; }
  for (const it of j.items) {
    const f = it.feedback;
    const ta = el('textarea', { class: 'correction' });
    ta.value = f && f.correction ? f.correction : '';
    main.append(el('div', { class: 'card feedback-item', 'data-id': it.id },
      el('div', { class: 'row small' }, el('code', {}, it.id), el('span', { class: 'badge' }, it.model), it.adapter ? el('span', { class: 'badge' }, it.adapter) : null,
        el('span', {}, t('rating') + ': ' + (f ? f.rating : '-')), f && f.comment ? el('span', { class: 'muted' }, f.comment) : null),
      el('div', {}, el('b', {}, t('question') + ': '), lastUser(it.request)),
      el('div', {}, el('b', {}, t('answer') + ': '), el('pre', {}, it.answer === null ? '—' : it.answer)),
      it.retrieval && it.retrieval.sources ? el('div', { class: 'small' }, t('sources') + ': ' + it.retrieval.sources.map((s) => s.source).join(', ')) : null,
      el('label', {}, t('correction')), ta,
      el('div', { class: 'row' },
        el('button', { class: 'primary act-correct', onclick: () => act(async () => { await api('/api/feedback/correct', { completion_id: it.id, correction: ta.value }); toast(t('saved')); render(); }) }, t('save_correction')),
        el('button', { onclick: () => act(async () => { await api('/api/feedback/rate', { completion_id: it.id, rating: 1 }); render(); }) }, '+1'),
        el('button', { onclick: () => act(async () => { await api('/api/feedback/rate', { completion_id: it.id, rating: -1 }); render(); }) }, '−1'))));
  }
}

// ---- Playground ----
async function readSse(resp, onEvent) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k); buf = buf.slice(k + 2);
      for (const line of ev.split('\n')) if (line.startsWith('data: ')) onEvent(line.slice(6));
    }
  }
  if (buf.trim().startsWith('{')) onEvent(buf.trim());  // an error answered as plain JSON
}
async function viewPlayground(main) {
  const j = await api('/api/playground');
  if (!j.available) { main.append(el('p', { class: 'muted' }, t('no_model'))); return; }
  const boxes = j.models.map((m, i) => el('label', {}, el('input', { type: 'checkbox', value: m, class: 'pg-model', checked: i < 3 }), ' ' + m + ' '));
  const input = el('textarea', { id: 'pg-input', placeholder: t('message') });
  const cols = el('div', { class: 'grid', id: 'pg-cols' });
  state.chats = state.chats || {};
  function column(m) {
    let c = document.querySelector('.pg-col[data-model="' + CSS.escape(m) + '"]');
    if (!c) { c = el('div', { class: 'card pg-col chatcol', 'data-model': m }, el('b', {}, m), el('div', { class: 'pg-log' })); cols.append(c); }
    return c.querySelector('.pg-log');
  }
  async function send() {
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    const models = [...document.querySelectorAll('.pg-model:checked')].map((b) => b.value);
    await Promise.all(models.map(async (m) => {
      const hist = state.chats[m] = state.chats[m] || [];
      hist.push({ role: 'user', content: text });
      const log = column(m);
      log.append(el('div', { class: 'msg-user' }, '> ' + text));
      const out = el('div', { class: 'msg-assistant' });
      const src = el('div', { class: 'small muted pg-sources' });
      const rate = el('span', { class: 'row' });
      log.append(out, src, rate);
      const r = await fetch('/api/playground/chat', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': state.csrf }, body: JSON.stringify({ model: m, messages: hist }) });
      let id = '';
      await readSse(r, (data) => {
        if (data === '[DONE]') return;
        let d; try { d = JSON.parse(data); } catch (e) { return; }
        if (d.error) { out.append(el('span', { class: 'error' }, d.error.message || String(d.error))); return; }
        id = d.id || id;
        if (d.sources) src.textContent = t('sources') + ': ' + d.sources.map((s) => '[' + s.index + '] ' + s.source).join(' · ');
        const c = d.choices && d.choices[0] && d.choices[0].delta && d.choices[0].delta.content;
        if (c) out.append(document.createTextNode(c));
      });
      hist.push({ role: 'assistant', content: out.textContent });
      if (!out.textContent.trim()) out.append(el('span', { class: 'muted small' }, '(' + t('blank') + ': ' + out.textContent.length + ')'));
      if (id) rate.append(el('button', { onclick: () => act(() => api('/api/feedback/rate', { completion_id: id, rating: 1 }).then(() => toast(t('saved')))) }, '+1'),
        el('button', { onclick: () => act(() => api('/api/feedback/rate', { completion_id: id, rating: -1 }).then(() => toast(t('saved')))) }, '−1'));
    }));
  }
  main.append(el('div', { class: 'row' }, t('models') + ':', boxes, j.rag ? el('span', { class: 'badge' }, t('rag')) : null), input,
    el('div', { class: 'row' }, el('button', { class: 'primary', id: 'pg-send', onclick: () => act(send) }, t('send')),
      el('button', { onclick: () => { state.chats = {}; clear(cols); } }, t('clear'))), cols);
  for (const [m, hist] of Object.entries(state.chats)) for (const msg of hist) column(m).append(el('div', { class: msg.role === 'user' ? 'msg-user' : 'msg-assistant' }, (msg.role === 'user' ? '> ' : '') + msg.content));
}

// ---- Audit ----
async function viewAudit(main) {
  const j = await api('/api/audit');
  main.append(el('table', { id: 'audit' }, el('thead', {}, el('tr', {}, ['when', 'reviewer', 'action', 'target', 'detail'].map((k) => el('th', {}, t(k))))),
    el('tbody', {}, j.rows.map((r) => el('tr', {}, el('td', {}, r.at), el('td', {}, r.reviewer), el('td', {}, r.action), el('td', {}, r.target), el('td', { class: 'small' }, JSON.stringify(r.detail)))))));
}

boot();
