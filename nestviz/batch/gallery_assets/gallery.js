/* nestviz gallery: vanilla JS, no network. Data: window.NESTVIZ_DATA from gallery-data.js.
 * items[i]: one image (grid, filters, sorts); details[i]: its records as a JSON string, parsed on open.
 * Filter state lives in the URL hash (#pred=..&true=..&sort=..&open=ID), so views can be bookmarked. */
(function () {
  'use strict';
  var D = window.NESTVIZ_DATA;
  var PATH_COLOUR = D.style.path, CAM_COLOUR = D.style.cam; // from nestviz.draw.style, as the figures
  var SETTLED = D.style.settled; // after a chosen child's score where removal decided a close call
  var LUTS = {}; // colour maps by name, 256 x RGB: the figures' (D.style, nestviz.draw.style.CMAP) and any other a record names
  function lut(name) {
    var hex = name && name !== D.style.cmap && D.cmap_luts && D.cmap_luts[name] ? D.cmap_luts[name] : D.style.cmap_lut;
    return LUTS[hex] || (LUTS[hex] = new Uint8Array(hex.match(/../g).map(function (h) { return parseInt(h, 16); })));
  }
  var BOX_REGION = D.cam_box_region; // which region above the threshold is the CAM box: 'peak' or 'largest'
  var QUAD = ['top-left', 'top-right', 'bottom-left', 'bottom-right'];
  var QUAD_SHORT = ['TL', 'TR', 'BL', 'BR'];
  var SVGNS = 'http://www.w3.org/2000/svg';

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else e.setAttribute(k, attrs[k] === true ? '' : attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k === 'cls' ? 'class' : k, attrs[k]);
    return e;
  }
  function num(v) { return typeof v === 'number' && isFinite(v); }
  function isBox(b) { return Array.isArray(b) && b.length === 4 && b.every(num); }
  function pct(p) { return num(p) ? (100 * p).toFixed(1) + '%' : '–'; }
  function fmt(v) {
    if (!num(v)) return v === null || v === undefined ? '–' : String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a < 0.001 || a >= 1e5)) return v.toExponential(2);
    return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(3) : v.toFixed(4);
  }
  function thousands(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ','); }

  if (!D || !Array.isArray(D.items)) {
    $('count').textContent = 'The gallery data (gallery-data.js) is missing or unreadable: re-run the nestviz command to rewrite it.';
    return;
  }
  var items = D.items;
  for (var i = 0; i < items.length; i++) items[i].key = (items[i].name || '').toLowerCase() + '\u0000' + (items[i].image || '').toLowerCase();

  // ---- state <-> URL hash ------------------------------------------------------------------------
  var FIELDS = ['q', 'pred', 'true', 'correct', 'agree', 'falls', 'status', 'pmin', 'pmax', 'sort', 'dir'];
  var DEFAULTS = { q: '', pred: '', true: '', correct: '', agree: '', falls: '', status: '', pmin: '', pmax: '', sort: 'name', dir: 'asc' };
  var state = readHash();
  var view = [];      // the filtered, sorted items
  var active = 0;     // position in view of the highlighted card
  var openPos = -1;   // position in view of the item in the detail view, -1 when closed

  function readHash() {
    var s = {}, p = new URLSearchParams(location.hash.replace(/^#/, ''));
    FIELDS.forEach(function (f) { s[f] = p.has(f) ? p.get(f) : DEFAULTS[f]; });
    s.open = p.has('open') ? p.get('open') : '';
    return s;
  }
  function writeHash() {
    var p = new URLSearchParams();
    FIELDS.forEach(function (f) { if (state[f] !== DEFAULTS[f] && state[f] !== '') p.set(f, state[f]); });
    if (openPos >= 0 && view[openPos]) p.set('open', String(view[openPos].id));
    var h = p.toString();
    if (h !== location.hash.replace(/^#/, '')) history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
  }

  // ---- filter + sort -----------------------------------------------------------------------------
  function applyFilters() {
    var q = state.q.trim().toLowerCase(), pmin = parseFloat(state.pmin), pmax = parseFloat(state.pmax);
    var hasMin = isFinite(pmin), hasMax = isFinite(pmax);
    view = items.filter(function (it) {
      if (q && it.key.indexOf(q) < 0) return false;
      if (state.pred && it.pred !== state.pred) return false;
      if (state.true && it.true !== state.true) return false;
      if (state.correct === 'correct' && it.correct !== true) return false;
      if (state.correct === 'wrong' && it.correct !== false) return false;
      if (state.correct === 'unknown' && (it.correct === true || it.correct === false)) return false;
      if (state.agree === 'agree' && it.agree !== true) return false;
      if (state.agree === 'disagree' && it.agree !== false) return false;
      if (state.agree === 'unknown' && (it.agree === true || it.agree === false)) return false;
      if (state.falls === 'falls' && it.falls !== true) return false;
      if (state.falls === 'stands' && it.falls !== false) return false;
      if (state.falls === 'unknown' && (it.falls === true || it.falls === false)) return false;
      if (state.status === 'ok' && it.status !== 'ok') return false;
      if (state.status === 'error' && it.status !== 'error' && !it.error) return false;
      if ((hasMin || hasMax) && !num(it.p)) return false;
      if (hasMin && it.p < pmin) return false;
      if (hasMax && it.p > pmax) return false;
      return true;
    });
    var sign = state.dir === 'desc' ? -1 : 1;
    var field = { conf: 'p', margin: 'margin', agree: 'agree', drop: 'drop' }[state.sort];
    view.sort(function (a, b) {
      if (field) {
        var x = a[field], y = b[field];
        if (field === 'agree') { x = x === true ? 1 : x === false ? 0 : null; y = y === true ? 1 : y === false ? 0 : null; }
        var xn = x === null || x === undefined, yn = y === null || y === undefined;
        if (xn !== yn) return xn ? 1 : -1; // missing values last, whatever the order
        if (!xn && x !== y) return sign * (x < y ? -1 : 1);
        return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
      }
      return sign * (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    });
    var n = view.length;
    $('count').textContent = n === items.length
      ? 'Showing all ' + thousands(n) + ' image' + (n === 1 ? '' : 's')
      : 'Showing ' + thousands(n) + ' of ' + thousands(items.length) + ' images';
    $('count').dataset.count = String(n);
    active = Math.min(active, Math.max(0, n - 1));
  }

  // ---- controls ----------------------------------------------------------------------------------
  function fillSelect(id, values, counts) {
    var s = $(id);
    values.forEach(function (v) { s.appendChild(el('option', { value: v, text: v + ' (' + counts[v] + ')' })); });
  }
  function classCounts(field) {
    var c = {};
    items.forEach(function (it) { var v = it[field]; if (v !== null && v !== undefined) c[v] = (c[v] || 0) + 1; });
    return c;
  }
  var predCounts = classCounts('pred'), trueCounts = classCounts('true');
  function byName(a, b) { return a.localeCompare(b); }
  fillSelect('f-pred', Object.keys(predCounts).sort(byName), predCounts);
  fillSelect('f-true', Object.keys(trueCounts).sort(byName), trueCounts);
  if (!Object.keys(trueCounts).length) { $('f-true').disabled = true; $('f-correct').disabled = true; }

  function ensureOption(s, v) {
    if (v && !Array.prototype.some.call(s.options, function (o) { return o.value === v; })) s.appendChild(el('option', { value: v, text: v + ' (0)' }));
  }
  function stateToControls() {
    FIELDS.forEach(function (f) { var c = $('f-' + f); if (f === 'pred' || f === 'true') ensureOption(c, state[f]); c.value = state[f]; });
  }
  var typingTimer = 0;
  function onControl(e) {
    var t = e.target;
    if (!t.name || FIELDS.indexOf(t.name) < 0) return;
    state[t.name] = t.value;
    var count = $('count');
    var run = function () { delete count.dataset.pending; active = 0; applyFilters(); writeHash(); layout(true); };
    clearTimeout(typingTimer);
    // data-pending: a typed filter waits for the typing to pause (tests and tools wait for it to go)
    if (t.type === 'search' || t.type === 'number') { count.dataset.pending = '1'; typingTimer = setTimeout(run, 120); } else run();
  }
  var form = $('filters');
  form.hidden = false;
  $('grid-help').hidden = false;
  form.addEventListener('input', onControl);
  form.addEventListener('change', onControl);
  form.addEventListener('submit', function (e) { e.preventDefault(); });
  $('f-reset').addEventListener('click', function () {
    FIELDS.forEach(function (f) { state[f] = DEFAULTS[f]; });
    stateToControls(); active = 0; applyFilters(); writeHash(); layout(true);
  });
  window.addEventListener('hashchange', function () {
    state = readHash(); stateToControls(); active = 0; applyFilters(); layout(true); openFromState();
  });

  // ---- the grid (virtualized: only the rows on screen exist) ---------------------------------------
  var grid = $('grid');
  var CARD_MIN = 190, GAP = 12, ROW_H = 262;
  var cols = 1, cardW = CARD_MIN, rendered = new Map();
  function layout(scrollTop) {
    var w = grid.clientWidth || 800;
    cols = Math.max(1, Math.floor((w + GAP) / (CARD_MIN + GAP)));
    cardW = Math.floor((w - GAP * (cols - 1)) / cols);
    var rows = Math.ceil(view.length / cols);
    grid.style.height = (rows ? rows * ROW_H - GAP : 0) + 'px';
    rendered.forEach(function (node) { node.remove(); });
    rendered.clear();
    if (!view.length) grid.appendChild(emptyNote()); else { var e = grid.querySelector('.empty'); if (e) e.remove(); }
    if (scrollTop && grid.getBoundingClientRect().top < 0) window.scrollTo(0, grid.getBoundingClientRect().top + window.scrollY - 8);
    draw();
  }
  function emptyNote() {
    var e = grid.querySelector('.empty');
    return e || el('p', { cls: 'empty', text: items.length ? 'No images match these filters.' : 'No images.' });
  }
  var drawQueued = false;
  function queueDraw() { // data-draw-queued on the grid while a draw waits for the next frame
    if (!drawQueued) { drawQueued = true; grid.dataset.drawQueued = '1'; requestAnimationFrame(function () { drawQueued = false; delete grid.dataset.drawQueued; draw(); }); }
  }
  function draw() {
    var top = -grid.getBoundingClientRect().top, h = window.innerHeight || 800;
    var first = Math.max(0, Math.floor(top / ROW_H) - 2), last = Math.floor((top + h) / ROW_H) + 2;
    var from = first * cols, to = Math.min(view.length, (last + 1) * cols);
    var keep = new Set();
    for (var pos = from; pos < to; pos++) {
      var it = view[pos];
      keep.add(it.id);
      var node = rendered.get(it.id);
      if (!node) { node = card(it); rendered.set(it.id, node); grid.appendChild(node); }
      node.style.transform = 'translate(' + (pos % cols) * (cardW + GAP) + 'px,' + Math.floor(pos / cols) * ROW_H + 'px)';
      node.style.width = cardW + 'px';
      node.dataset.pos = String(pos);
      node.classList.toggle('active', pos === active);
      node.setAttribute('aria-selected', pos === active ? 'true' : 'false');
      node.setAttribute('aria-posinset', String(pos + 1));
      node.setAttribute('aria-setsize', String(view.length));
    }
    rendered.forEach(function (node, id) { if (!keep.has(id)) { node.remove(); rendered.delete(id); } });
    var a = view[active] && rendered.get(view[active].id);
    if (a) grid.setAttribute('aria-activedescendant', a.id); else grid.removeAttribute('aria-activedescendant');
  }
  function describe(it) {
    if (it.status === 'error') return it.name + ': failed: ' + (it.error || 'error');
    var s = it.name + ': ' + (it.pred || 'no prediction') + ' ' + pct(it.p);
    if (it.true !== null && it.true !== undefined) s += ', true class ' + it.true + (it.correct ? ', correct' : ', wrong');
    if (it.agree === true) s += ', GradCAT and CAM agree'; else if (it.agree === false) s += ', GradCAT and CAM disagree';
    if (it.falls === true) s += ', the decision falls without its evidence';
    else if (it.falls === false) s += ', the decision stands without its evidence';
    return s;
  }
  function card(it) {
    var c = el('div', { cls: 'card' + (it.status === 'error' ? ' failed' : it.correct === false ? ' wrong' : ''),
      role: 'option', id: 'card-' + it.id, 'aria-label': describe(it), 'data-id': it.id, title: it.image });
    var pic;
    if (it.thumb) {
      pic = el('img', { src: it.thumb, loading: 'lazy', decoding: 'async', alt: it.thumb_is_figure
        ? 'Figure of ' + it.name : it.name + (it.pred ? ', with the GradCAT path and CAM box of ' + it.pred : '') });
    } else pic = el('span', { cls: 'noimg', text: it.status === 'error' ? 'failed' : 'no thumbnail' });
    c.appendChild(el('span', { cls: 'pic' }, pic));
    c.appendChild(el('span', { cls: 'name mono', text: it.name }));
    if (it.status === 'error') {
      c.appendChild(el('span', { cls: 'err', text: it.error || 'failed' }));
      return c;
    }
    c.appendChild(el('span', { cls: 'pred' }, el('span', { cls: 'label', text: it.pred || '–' }), ' ', el('b', { text: pct(it.p) })));
    var badges = el('span', { cls: 'badges' });
    if (it.correct === true) badges.appendChild(el('span', { cls: 'badge ok', text: '✓ correct' }));
    else if (it.correct === false) badges.appendChild(el('span', { cls: 'badge bad', text: '✗ true: ' + it.true }));
    if (it.agree === true) badges.appendChild(el('span', { cls: 'badge', text: 'agree' }));
    else if (it.agree === false) badges.appendChild(el('span', { cls: 'badge warn', text: 'disagree' }));
    if (it.falls === true) badges.appendChild(el('span', { cls: 'badge warn', text: 'evidence decides',
      title: 'removing the GradCAT leaf and the CAM peak\'s window changes the top class' }));
    if (it.error) badges.appendChild(el('span', { cls: 'badge bad', text: 'partly failed' }));
    c.appendChild(badges);
    return c;
  }
  grid.addEventListener('click', function (e) {
    var c = e.target.closest('.card');
    if (!c) return;
    active = +c.dataset.pos; draw(); grid.focus({ preventScroll: true }); openAt(active);
  });
  grid.addEventListener('keydown', function (e) {
    if (!view.length) return;
    var rowsOnScreen = Math.max(1, Math.floor((window.innerHeight || 800) / ROW_H));
    var moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols, PageDown: cols * rowsOnScreen,
      PageUp: -cols * rowsOnScreen, Home: -1e9, End: 1e9 };
    if (e.key in moves) {
      e.preventDefault();
      setActive(Math.max(0, Math.min(view.length - 1, active + moves[e.key])));
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault(); openAt(active);
    }
  });
  grid.addEventListener('focus', function () { if (view.length) setActive(active); });
  function setActive(pos) {
    active = pos;
    var row = Math.floor(pos / cols), gTop = grid.getBoundingClientRect().top + window.scrollY;
    var bar = form.getBoundingClientRect().height + 8; // the sticky filter bar covers the top of the window
    var y0 = gTop + row * ROW_H, y1 = y0 + ROW_H, sTop = window.scrollY, sBot = sTop + window.innerHeight;
    if (y0 < sTop + bar) window.scrollTo(0, y0 - bar); else if (y1 > sBot) window.scrollTo(0, y1 - window.innerHeight + 8);
    draw();
  }
  window.addEventListener('scroll', queueDraw, { passive: true });
  window.addEventListener('resize', function () { layout(false); });

  // ---- summary -----------------------------------------------------------------------------------
  function renderSummary() {
    var sec = $('summary');
    var ok = 0, failed = 0, known = 0, right = 0, both = 0, agree = 0, checked = 0, falls = 0;
    items.forEach(function (it) {
      if (it.status === 'error') failed++; else ok++;
      if (it.correct === true || it.correct === false) { known++; if (it.correct) right++; }
      if (it.agree === true || it.agree === false) { both++; if (it.agree) agree++; }
      if (it.falls === true || it.falls === false) { checked++; if (it.falls) falls++; }
    });
    var facts = el('dl', { cls: 'facts' });
    function fact(k, v, href) { facts.appendChild(el('div', null, el('dt', { text: k }), el('dd', null, href ? el('a', { href: href, text: v }) : v))); }
    fact('images', thousands(items.length));
    fact('explained', thousands(ok), '#status=ok');
    fact('failed', thousands(failed), failed ? '#status=error' : null);
    if (known) {
      fact('top-1 accuracy', pct(right / known) + ' of ' + thousands(known));
      fact('wrong', thousands(known - right), '#correct=wrong');
    }
    if (both) fact('GradCAT–CAM agreement', pct(agree / both) + ' of ' + thousands(both), null);
    if (checked) fact('falls without its evidence', pct(falls / checked) + ' of ' + thousands(checked), falls ? '#falls=falls' : null);
    sec.appendChild(facts);
    var panels = el('div', { cls: 'panels' });
    if (known) panels.appendChild(confusion());
    var m = metricsTable();
    if (m) panels.appendChild(m);
    var f = $('failures');
    if (f) { panels.appendChild(f); if (failed > 8) f.open = false; }
    if (panels.childNodes.length) sec.appendChild(panels);
    var sc = $('static-counts');
    if (sc) sc.hidden = true;
  }
  function confusion() {
    var pairs = {}, trues = {}, preds = {};
    items.forEach(function (it) {
      if (it.correct !== true && it.correct !== false) return;
      var t = it.true, p = it.pred || '–';
      trues[t] = (trues[t] || 0) + 1; preds[p] = (preds[p] || 0) + 1;
      pairs[t] = pairs[t] || {}; pairs[t][p] = (pairs[t][p] || 0) + 1;
    });
    var tl = Object.keys(trues).sort(byName), pl = Object.keys(preds).sort(byName);
    var href = function (t, p) { var u = new URLSearchParams(); if (t !== null) u.set('true', t); if (p !== null) u.set('pred', p); return '#' + u.toString(); };
    var box = el('details', { cls: 'confusion', open: tl.length <= 30 });
    var table;
    if (tl.length <= 15 && pl.length <= 15) {
      box.appendChild(el('summary', null, el('h2', { text: 'Confusion (rows: true class, columns: predicted)' })));
      table = el('table', { cls: 'matrix' });
      var head = el('tr', null, el('th', { scope: 'col', text: 'true \\ predicted' }));
      pl.forEach(function (p) { head.appendChild(el('th', { scope: 'col' }, el('a', { href: href(null, p), text: p }))); });
      head.appendChild(el('th', { scope: 'col', text: 'accuracy' }));
      table.appendChild(el('thead', null, head));
      var body = el('tbody');
      tl.forEach(function (t) {
        var tr = el('tr', null, el('th', { scope: 'row' }, el('a', { href: href(t, null), text: t })));
        var max = trues[t];
        pl.forEach(function (p) {
          var n = pairs[t][p] || 0;
          var td = el('td', { cls: (p === t ? 'diag' : n ? 'off' : 'zero') });
          if (n) {
            td.style.setProperty('--w', (n / max).toFixed(3));
            td.appendChild(el('a', { href: href(t, p), text: String(n), 'aria-label': n + ' images of ' + t + ' predicted ' + p }));
          } else td.textContent = '·';
          tr.appendChild(td);
        });
        tr.appendChild(el('td', { cls: 'num', text: pct((pairs[t][t] || 0) / max) }));
        body.appendChild(tr);
      });
      table.appendChild(body);
    } else { // many classes: one row per true class with its most frequent confusions
      box.appendChild(el('summary', null, el('h2', { text: 'Per-class accuracy and confusions' })));
      table = el('table', { cls: 'perclass' });
      table.appendChild(el('thead', null, el('tr', null, el('th', { scope: 'col', text: 'true class' }),
        el('th', { scope: 'col', text: 'images' }), el('th', { scope: 'col', text: 'accuracy' }), el('th', { scope: 'col', text: 'most often predicted instead' }))));
      var tb = el('tbody');
      tl.forEach(function (t) {
        var wrong = Object.keys(pairs[t]).filter(function (p) { return p !== t; }).sort(function (a, b) { return pairs[t][b] - pairs[t][a]; }).slice(0, 3);
        var cell = el('td');
        wrong.forEach(function (p, i) { if (i) cell.appendChild(document.createTextNode(', ')); cell.appendChild(el('a', { href: href(t, p), text: p + ' (' + pairs[t][p] + ')' })); });
        tb.appendChild(el('tr', null, el('th', { scope: 'row' }, el('a', { href: href(t, null), text: t })), el('td', { cls: 'num', text: String(trues[t]) }),
          el('td', { cls: 'num' }, el('a', { href: href(t, t), text: pct((pairs[t][t] || 0) / trues[t]) })), cell));
      });
      table.appendChild(tb);
    }
    box.appendChild(el('div', { cls: 'scroll' }, table));
    return box;
  }
  function metricsTable() {
    var m = D.metrics;
    if (!m || typeof m !== 'object') return null;
    var methods = (m.metrics && typeof m.metrics === 'object') ? m.metrics : m;
    var names = Object.keys(methods).filter(function (k) { return methods[k] && typeof methods[k] === 'object' && !Array.isArray(methods[k]); });
    if (!names.length) return null;
    var cols = [];
    names.forEach(function (n) { Object.keys(methods[n]).forEach(function (k) { if (cols.indexOf(k) < 0) cols.push(k); }); });
    var table = el('table', { cls: 'metrics' });
    var head = el('tr', null, el('th', { scope: 'col', text: 'method' }));
    cols.forEach(function (c) { head.appendChild(el('th', { scope: 'col', text: c })); });
    table.appendChild(el('thead', null, head));
    var body = el('tbody');
    names.forEach(function (n) {
      var tr = el('tr', null, el('th', { scope: 'row', text: n }));
      cols.forEach(function (c) {
        var v = methods[n][c];
        tr.appendChild(el('td', { cls: 'num', text: num(v) ? (Math.abs(v) <= 1 ? v.toFixed(4) : fmt(v)) : v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v) }));
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    var extra = Object.keys(m).filter(function (k) { return k !== 'metrics' && m.metrics; });
    var box = el('section', { cls: 'metricsbox', 'aria-labelledby': 'metrics-h' }, el('h2', { id: 'metrics-h', text: 'Metrics' }), el('div', { cls: 'scroll' }, table));
    if (extra.length) box.appendChild(el('p', { cls: 'help', text: extra.map(function (k) { var v = m[k]; return k + ': ' + (v && typeof v === 'object' ? JSON.stringify(v) : String(v)); }).join(' · ') }));
    return box;
  }

  // ---- detail view -------------------------------------------------------------------------------
  var dialog = $('detail'), body = $('d-body');
  var detailState = { cls: 0, opacity: 0.5, threshold: null };
  var detailCache = new Map();
  var detailsState = 'idle'; // idle, loading, ready, failed
  function loadDetails() { // the records (paths, CAM maps) come in a second file, after the grid shows
    if (detailsState !== 'idle') return;
    detailsState = 'loading';
    var src = ($('details-src') && $('details-src').dataset.src) || 'gallery-details.js';
    var s = document.createElement('script');
    s.src = src;
    s.onload = function () {
      var x = window.NESTVIZ_DETAILS;
      detailsState = x && Array.isArray(x.details) && x.token === D.token ? 'ready' : 'failed';
      if (openPos >= 0) renderDetail();
    };
    s.onerror = function () { detailsState = 'failed'; if (openPos >= 0) renderDetail(); };
    document.body.appendChild(s);
  }
  function details(it) {
    if (detailsState !== 'ready') return null;
    if (!detailCache.has(it.id)) {
      var d;
      try { d = JSON.parse(window.NESTVIZ_DETAILS.details[it.id]); } catch (err) { d = { outputs: [], records: [] }; }
      if (!d.predictions) d.predictions = (d.records && d.records[0] && Array.isArray(d.records[0].predictions)) ? d.records[0].predictions : [];
      detailCache.set(it.id, d);
    }
    return detailCache.get(it.id);
  }
  function openAt(pos) {
    if (pos < 0 || pos >= view.length) return;
    openPos = pos; active = pos;
    detailState.cls = 0; detailState.threshold = null;
    if (!dialog.open) dialog.showModal(); // first: the layout needs the dialog's width
    renderDetail();
    writeHash();
    draw();
  }
  function openFromState() {
    if (state.open === '') { if (dialog.open) dialog.close(); return; }
    var pos = view.findIndex(function (it) { return String(it.id) === state.open; });
    if (pos >= 0) openAt(pos); else if (dialog.open) dialog.close();
  }
  function closeDetail() { if (dialog.open) dialog.close(); }
  dialog.addEventListener('close', function () {
    openPos = -1; state.open = ''; writeHash();
    setActive(active); grid.focus({ preventScroll: true });
  });
  $('d-close').addEventListener('click', closeDetail);
  $('d-prev').addEventListener('click', function () { move(-1); });
  $('d-next').addEventListener('click', function () { move(1); });
  dialog.addEventListener('click', function (e) { if (e.target === dialog) closeDetail(); }); // the backdrop
  function move(d) {
    var pos = openPos + d;
    if (pos >= 0 && pos < view.length) { openAt(pos); setActive(pos); }
  }
  dialog.addEventListener('keydown', function (e) {
    var t = e.target, tag = t.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') return; // sliders use the arrows themselves
    if (e.key === 'ArrowRight') { e.preventDefault(); move(1); }
    else if (e.key === 'ArrowLeft') { e.preventDefault(); move(-1); }
  });

  function renderDetail() {
    var it = view[openPos], d = details(it);
    $('d-title').textContent = it.name;
    $('d-pos').textContent = (openPos + 1) + ' of ' + thousands(view.length) + (view.length < items.length ? ' (filtered)' : '');
    $('d-prev').disabled = openPos <= 0;
    $('d-next').disabled = openPos >= view.length - 1;
    body.textContent = '';
    if (!d) {
      body.appendChild(el('p', { cls: detailsState === 'failed' ? 'errbox' : 'muted', role: 'status', text: detailsState === 'failed'
        ? 'The records of this run (gallery-details.js) are missing or belong to another run: re-run the nestviz command, then reload.'
        : 'Loading the records…' }));
      loadDetails();
      return;
    }
    var meta = el('p', { cls: 'meta' }, el('span', { cls: 'mono', text: it.image }));
    if (num(it.width)) meta.appendChild(document.createTextNode(' · ' + it.width + '×' + it.height + ' px'));
    if (it.commands && it.commands.length) meta.appendChild(document.createTextNode(' · ' + it.commands.join(', ')));
    if (it.true !== null && it.true !== undefined) meta.appendChild(document.createTextNode(' · true class: ' + it.true + (it.correct ? ' (correct)' : ' (wrong)')));
    body.appendChild(meta);
    if (it.error) body.appendChild(el('p', { cls: 'errbox', role: 'alert', text: 'Error: ' + it.error }));
    var preds = d.predictions || [];
    if (preds.length) {
      var group = el('div', { cls: 'classes', role: 'radiogroup', 'aria-label': 'Explained classes' });
      preds.forEach(function (p, i) {
        var b = el('button', { type: 'button', role: 'radio', 'aria-checked': i === detailState.cls ? 'true' : 'false', cls: 'cls',
          tabindex: i === detailState.cls ? '0' : '-1', text: (p.rank !== undefined ? p.rank + '. ' : '') + (p.label || ('class ' + p.class_index)) + ' ' + pct(p.probability) });
        b.addEventListener('click', function () { detailState.cls = i; detailState.threshold = null; renderDetail(); var f = body.querySelector('.cls[aria-checked=true]'); if (f) f.focus(); });
        group.appendChild(b);
      });
      group.addEventListener('keydown', function (e) {
        if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
        e.preventDefault(); e.stopPropagation();
        detailState.cls = (detailState.cls + (e.key === 'ArrowDown' ? 1 : preds.length - 1)) % preds.length; detailState.threshold = null;
        renderDetail(); var f = body.querySelector('.cls[aria-checked=true]'); if (f) f.focus();
      });
      body.appendChild(el('h3', { text: 'Explained classes' }));
      body.appendChild(el('p', { cls: 'help', text: 'Up / down arrows pick a class; left / right arrows move to the previous / next image.' }));
      body.appendChild(group);
      var p = preds[Math.min(detailState.cls, preds.length - 1)];
      var cols2 = el('div', { cls: 'd-cols' });
      cols2.appendChild(camPanel(it, p));
      cols2.appendChild(treePanel(p));
      body.appendChild(cols2);
      body.appendChild(pathTable(p));
    } else if (!it.error) body.appendChild(el('p', { text: 'No explained classes in this record.' }));
    if (d.outputs && d.outputs.length) {
      var ul = el('ul', { cls: 'links' });
      d.outputs.forEach(function (o) { ul.appendChild(el('li', null, el('a', { href: o.href, target: '_blank', rel: 'noopener', text: o.kind }), ' ', el('span', { cls: 'muted mono', text: o.name }))); });
      body.appendChild(el('h3', { text: 'Full-size figures' }));
      body.appendChild(ul);
    }
    var pre = el('pre', { cls: 'json', tabindex: '0', 'aria-label': 'JSON record' });
    pre.textContent = JSON.stringify(d.records && d.records.length === 1 ? d.records[0] : d.records, null, 1);
    body.appendChild(el('details', { cls: 'jsonbox' }, el('summary', { text: 'JSON record' + (d.records && d.records.length > 1 ? 's (' + d.records.length + ' commands)' : '') }), pre));
  }

  // ---- CAM panel: canvas heatmap + SVG marks -------------------------------------------------------
  function camPanel(it, p) {
    var W = num(it.width) && it.width > 0 ? it.width : 256, H = num(it.height) && it.height > 0 ? it.height : 256;
    var avail = Math.max(160, Math.min(480, (body.clientWidth || 520) - 40));
    var scale = Math.min(avail / W, 400 / H), cw = Math.max(1, Math.round(W * scale)), ch = Math.max(1, Math.round(H * scale));
    var hasMap = Array.isArray(p.cam_map) && p.cam_map.length && Array.isArray(p.cam_map[0]) && p.cam_map[0].length;
    var region = isBox(p.cam_region) ? p.cam_region : [0, 0, W, H];
    var label = p.label || ('class ' + p.class_index);
    var panel = el('section', { cls: 'panel cam', 'aria-label': 'Image with CAM and GradCAT for ' + label });
    panel.appendChild(el('h3', { text: 'CAM and GradCAT leaf — ' + label }));
    var stage = el('div', { cls: 'stage', style: 'width:' + cw + 'px;height:' + ch + 'px' });
    // the photo is an <img> under the heatmap canvas: an image from disk drawn into the canvas would taint it
    if (it.thumb) stage.appendChild(el('img', { src: it.thumb, width: cw, height: ch, alt: 'Thumbnail of ' + it.name + (it.pred ? ' with the top class’s marks' : '') }));
    var canvas = el('canvas', { width: cw, height: ch, id: 'cam-canvas', role: 'img',
      'aria-label': hasMap ? 'CAM heatmap of ' + label : 'No CAM heatmap' });
    stage.appendChild(canvas);
    var o = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: cw, height: ch, cls: 'marks', 'aria-hidden': 'true' });
    o.setAttribute('class', 'marks');
    stage.appendChild(o);
    panel.appendChild(stage);
    var k = W / cw; // one screen pixel in image pixels
    var nodes = (p.path || []).filter(function (n) { return n && isBox(n.box); }).sort(function (a, b) { return (b.level || 0) - (a.level || 0); });
    nodes.forEach(function (n, i) {
      var b = n.box, leaf = i === nodes.length - 1;
      o.appendChild(svg('rect', { x: b[0], y: b[1], width: b[2] - b[0], height: b[3] - b[1], fill: 'none',
        stroke: leaf ? PATH_COLOUR : '#fff', 'stroke-width': (leaf ? 3 : 1) * k, 'stroke-opacity': leaf ? 1 : 0.8, cls: leaf ? 'leaf' : 'node' }));
    });
    if (nodes.length > 1) {
      o.appendChild(svg('polyline', { points: nodes.map(function (n) { return ((n.box[0] + n.box[2]) / 2) + ',' + ((n.box[1] + n.box[3]) / 2); }).join(' '),
        fill: 'none', stroke: PATH_COLOUR, 'stroke-width': 2.5 * k, 'stroke-linejoin': 'round' }));
      nodes.forEach(function (n) { o.appendChild(svg('circle', { cx: (n.box[0] + n.box[2]) / 2, cy: (n.box[1] + n.box[3]) / 2, r: 3.5 * k, fill: PATH_COLOUR, stroke: '#000', 'stroke-width': k })); });
    }
    var camBox = svg('rect', { id: 'cam-box', fill: 'none', stroke: CAM_COLOUR, 'stroke-width': 2.5 * k });
    var camHalo = svg('rect', { fill: 'none', stroke: '#000', 'stroke-width': 4.5 * k, 'stroke-opacity': 0.6 });
    o.appendChild(camHalo); o.appendChild(camBox);
    var peak = Array.isArray(p.peak) && p.peak.length === 2 && p.peak.every(num) ? p.peak : null;
    if (peak) {
      var r = 6 * k;
      [['#000', 4 * k], [CAM_COLOUR, 2 * k]].forEach(function (s) {
        o.appendChild(svg('path', { d: 'M' + (peak[0] - r) + ' ' + (peak[1] - r) + 'L' + (peak[0] + r) + ' ' + (peak[1] + r) + 'M' + (peak[0] - r) + ' ' + (peak[1] + r) + 'L' + (peak[0] + r) + ' ' + (peak[1] - r),
          stroke: s[0], 'stroke-width': s[1], fill: 'none', cls: 'peak' }));
      });
    }
    var readout = el('p', { cls: 'readout', id: 'cam-readout', 'aria-live': 'polite' });
    var ctx = canvas.getContext('2d');
    // the record says how to redraw its CAM: the input side the box was found at, the threshold, the colour map
    var S = num(p.cam_size) && p.cam_size > 0 ? p.cam_size : 0, recorded = num(p.threshold) ? p.threshold : null;
    var heat = hasMap ? camHeat(p.cam_map, S || cw, lut(p.cam_cmap)) : null;
    var rebox = !!heat && S > 0 && recorded !== null; // else the recorded box, as it is
    function toImage(b) { // input pixels -> original pixels, clipped to the image (as Geometry.box_to_original)
      var sx = (region[2] - region[0]) / S, sy = (region[3] - region[1]) / S;
      return [region[0] + b[0] * sx, region[1] + b[1] * sy, region[0] + b[2] * sx, region[1] + b[3] * sy]
        .map(function (v, i) { return Math.min(Math.max(0, v), i % 2 ? H : W); });
    }
    function setBox(b) {
      if (!b) { camBox.setAttribute('visibility', 'hidden'); camHalo.setAttribute('visibility', 'hidden'); return; }
      [camBox, camHalo].forEach(function (e) {
        e.removeAttribute('visibility');
        e.setAttribute('x', b[0].toFixed(2)); e.setAttribute('y', b[1].toFixed(2));
        e.setAttribute('width', (b[2] - b[0]).toFixed(2)); e.setAttribute('height', (b[3] - b[1]).toFixed(2));
      });
      camBox.dataset.box = b.map(function (v) { return v.toFixed(2); }).join(',');
    }
    function redraw() {
      ctx.clearRect(0, 0, cw, ch);
      var thr = detailState.threshold !== null ? detailState.threshold : recorded;
      if (heat) {
        ctx.globalAlpha = detailState.opacity;
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(heat.canvas, region[0] / k, region[1] / k, (region[2] - region[0]) / k, (region[3] - region[1]) / k);
        ctx.globalAlpha = 1;
      }
      if (rebox) {
        var b = heat.box(thr), box = b && toImage(b);
        setBox(box);
        readout.textContent = 'Threshold ' + thr.toFixed(2) + ': box ' + (box ? '[' + box.map(function (v) { return Math.round(v); }).join(', ') + '] px' : 'none') +
          (isBox(p.box) && detailState.threshold === null ? ' (recorded: [' + p.box.map(Math.round).join(', ') + '])' : '');
      } else {
        setBox(isBox(p.box) ? p.box : null);
        readout.textContent = isBox(p.box) ? 'CAM box [' + p.box.map(Math.round).join(', ') + '] px (' + (heat
          ? 'the record predates cam_size: run nestviz again to move the threshold)' : 'no raw map in the record: the sliders need one)')
          : 'No CAM for this class.';
      }
    }
    var controls = el('div', { cls: 'sliders' });
    var op = el('input', { type: 'range', id: 'opacity', min: 0, max: 100, step: 1, value: Math.round(detailState.opacity * 100), disabled: !heat });
    var th = el('input', { type: 'range', id: 'threshold', min: 0, max: 100, step: 1,
      value: Math.round(100 * (detailState.threshold !== null ? detailState.threshold : recorded || 0)), disabled: !rebox });
    var opOut = el('output', { for: 'opacity', text: op.value + '%' }), thOut = el('output', { for: 'threshold', text: (th.value / 100).toFixed(2) });
    op.addEventListener('input', function () { detailState.opacity = op.value / 100; opOut.textContent = op.value + '%'; redraw(); });
    th.addEventListener('input', function () { detailState.threshold = th.value / 100; thOut.textContent = (th.value / 100).toFixed(2); redraw(); });
    controls.appendChild(el('label', { for: 'opacity' }, 'Heatmap opacity ', op, ' ', opOut));
    controls.appendChild(el('label', { for: 'threshold' }, 'CAM threshold ', th, ' ', thOut));
    panel.appendChild(controls);
    panel.appendChild(readout);
    panel.appendChild(el('p', { cls: 'legend' },
      el('span', { cls: 'swatch', style: 'border-color:' + PATH_COLOUR }), ' GradCAT path and leaf  ',
      el('span', { cls: 'swatch', style: 'border-color:' + CAM_COLOUR }), ' CAM box, × peak'));
    redraw();
    return panel;
  }

  /* The CAM as nestviz.methods.cam.localize sees it, in float32 as numpy computes it (Math.fround after each
   * operation): the recorded map (cam_map: float32 values) upsampled bilinearly to the input side S (half-pixel
   * centres, edges clamped), scaled to [0, 1]. canvas: that map in the colour map lut; box(threshold): the bounding
   * box [x0, y0, x1, y1) (input pixels) of the 8-connected region >= threshold that nestviz boxes (D.cam_box_region,
   * from nestviz.defaults.CAM_BOX_REGION): the one holding the peak (its first maximum), or the largest (ties to
   * the first in raster order); the whole input for a constant map. */
  var f32 = Math.fround;
  function taps(out, n) { // per output sample: its two source indices and the second one's weight (cam._taps)
    var t = [];
    for (var i = 0; i < out; i++) {
      var s = Math.max((i + 0.5) * n / out - 0.5, 0), i0 = Math.min(Math.floor(s), n - 1);
      t.push([i0, Math.min(i0 + 1, n - 1), f32(s - i0)]);
    }
    return t;
  }
  function camHeat(map, S, CMAP) {
    var n = map.length, m = map[0].length, g = [], rawLo = Infinity, rawHi = -Infinity;
    for (var r = 0; r < n; r++) {
      g.push([]);
      for (var q0 = 0; q0 < m; q0++) { var w0 = f32(+map[r][q0] || 0); g[r].push(w0); rawLo = Math.min(rawLo, w0); rawHi = Math.max(rawHi, w0); }
    }
    var ys = taps(S, n), xs = taps(S, m), rows = [];
    for (var y = 0; y < S; y++) { // rows: (S, m), the first pass over the map's rows
      var a = ys[y], ty = a[2], uy = f32(1 - ty), row = new Float32Array(m);
      for (var j = 0; j < m; j++) row[j] = f32(f32(g[a[0]][j] * uy) + f32(g[a[1]][j] * ty));
      rows.push(row);
    }
    var up = new Float32Array(S * S), lo = Infinity, hi = -Infinity;
    for (var yy0 = 0; yy0 < S; yy0++) {
      var rw = rows[yy0];
      for (var x = 0; x < S; x++) {
        var b = xs[x], tx = b[2], v = f32(f32(rw[b[0]] * f32(1 - tx)) + f32(rw[b[1]] * tx));
        up[yy0 * S + x] = v; if (v < lo) lo = v; if (v > hi) hi = v;
      }
    }
    // the peak, as methods.cam.peak_of: the centre of the map's first largest cell (not the upsampled map's first
    // maximum, which a border cell puts on the image's edge); its pixel is always in the box's region
    var pi = 0, pj = 0;
    for (var r1 = 0; r1 < n; r1++) for (var q1 = 0; q1 < m; q1++) if (g[r1][q1] > g[pi][pj]) { pi = r1; pj = q1; }
    var peakAt = Math.min(Math.floor((pi + 0.5) * S / n), S - 1) * S + Math.min(Math.floor((pj + 0.5) * S / m), S - 1);
    var flat = !(rawHi > rawLo), span = f32(hi - lo);
    for (var j2 = 0; j2 < up.length; j2++) up[j2] = flat ? 1 : f32(f32(up[j2] - lo) / span);
    var c = document.createElement('canvas'); c.width = S; c.height = S;
    var cx = c.getContext('2d'), img = cx.createImageData(S, S);
    for (var q = 0; q < up.length; q++) {
      var c3 = 3 * Math.round(255 * up[q]);
      img.data[4 * q] = CMAP[c3]; img.data[4 * q + 1] = CMAP[c3 + 1]; img.data[4 * q + 2] = CMAP[c3 + 2]; img.data[4 * q + 3] = 255;
    }
    cx.putImageData(img, 0, 0);
    var label = new Int32Array(S * S), stack = new Int32Array(S * S);
    return {
      canvas: c, size: S,
      box: function (thr) {
        if (flat) return [0, 0, S, S];
        thr = f32(thr);
        label.fill(0);
        var best = null, bestN = 0, next = 0, onlyPeak = BOX_REGION === 'peak';
        for (var s = onlyPeak ? peakAt : 0; s < S * S; s++) {
          if (label[s] || (up[s] < thr && s !== peakAt)) continue;
          next++; var sp = 0, cnt = 0, x0 = S, y0 = S, x1 = -1, y1 = -1;
          stack[sp++] = s; label[s] = next;
          while (sp) {
            var p = stack[--sp], py = (p / S) | 0, px = p - py * S; cnt++;
            if (px < x0) x0 = px; if (px > x1) x1 = px; if (py < y0) y0 = py; if (py > y1) y1 = py;
            for (var dy = -1; dy <= 1; dy++) {
              var yy = py + dy; if (yy < 0 || yy >= S) continue;
              for (var dx = -1; dx <= 1; dx++) {
                var xx = px + dx; if (xx < 0 || xx >= S) continue;
                var qq = yy * S + xx;
                if (!label[qq] && up[qq] >= thr) { label[qq] = next; stack[sp++] = qq; }
              }
            }
          }
          if (cnt > bestN) { bestN = cnt; best = [x0, y0, x1 + 1, y1 + 1]; }
          if (onlyPeak) break;
        }
        return best;
      }
    };
  }

  // ---- GradCAT tree: root, its 4 children, the chosen child's 4 children, ... ----------------------
  function treePanel(p) {
    var path = (p.path || []).filter(function (n) { return n && typeof n === 'object'; }).slice().sort(function (a, b) { return (b.level || 0) - (a.level || 0); });
    var panel = el('section', { cls: 'panel tree', 'aria-label': 'GradCAT tree' });
    panel.appendChild(el('h3', { text: 'GradCAT tree' }));
    if (!path.length) { panel.appendChild(el('p', { cls: 'muted', text: 'No GradCAT path for this class (run explain or annotate).' })); return panel; }
    var rows = [{ nodes: [{ value: path[0].score, chosen: true, label: 'root' }], parentX: null, level: path[0].level }];
    var W = 420, PADL = 78, span = W - PADL - 20;
    var xs = [0, 1, 2, 3].map(function (q) { return PADL + span * (q + 0.5) / 4; });
    var rootX = PADL + span / 2;
    for (var i = 0; i < path.length; i++) {
      var cs = path[i].child_scores;
      if (!Array.isArray(cs) || cs.length !== 4) break;
      var chosen = num(path[i].chosen_child) ? path[i].chosen_child : cs.indexOf(Math.max.apply(null, cs));
      var settled = Array.isArray(path[i].removal_drops);  // a close call the children's removal decided
      rows.push({ level: num(path[i].level) ? path[i].level - 1 : null, chosen: chosen, parentX: i === 0 ? rootX : xs[rows[rows.length - 1].chosen],
        nodes: cs.map(function (v, q) { return { value: v, chosen: q === chosen, label: QUAD_SHORT[q], quad: QUAD[q], settled: settled && q === chosen }; }) });
    }
    var RH = 78, H = rows.length * RH + 10, R = 15;
    var s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', id: 'tree-svg',
      'aria-label': 'GradCAT tree for ' + (p.label || '') + ': ' + rows.slice(1).map(function (r) { var c = r.nodes[r.chosen]; return 'level ' + r.level + ' ' + c.quad + ' ' + fmt(c.value); }).join(', ') });
    s.setAttribute('class', 'treesvg');
    rows.forEach(function (r, ri) {
      var y = 26 + ri * RH;
      var txt = svg('text', { x: 4, y: y + 4, cls: 'lvl' }); txt.setAttribute('class', 'lvl');
      txt.textContent = 'level ' + (r.level === null ? '?' : r.level) + (ri === 0 ? ' (root)' : r.level === 1 ? ' (leaf)' : '');
      s.appendChild(txt);
      r.nodes.forEach(function (nd, q) {
        var x = ri === 0 ? rootX : xs[q];
        if (ri > 0) {
          var e = svg('line', { x1: r.parentX, y1: y - RH + R + 19, x2: x, y2: y - R, stroke: nd.chosen ? PATH_COLOUR : '#999', 'stroke-width': nd.chosen ? 4 : 1.2 });
          s.appendChild(e);
        }
      });
      r.nodes.forEach(function (nd, q) {
        var x = ri === 0 ? rootX : xs[q];
        var c = svg('circle', { cx: x, cy: y, r: R, fill: nd.chosen ? PATH_COLOUR : '#fff', stroke: nd.chosen ? '#000' : '#888', 'stroke-width': nd.chosen ? 2 : 1 });
        c.setAttribute('class', nd.chosen ? 'node chosen' : 'node');
        s.appendChild(c);
        var lab = svg('text', { x: x, y: y + 4, 'text-anchor': 'middle' }); lab.setAttribute('class', 'q' + (nd.chosen ? ' b' : ''));
        lab.textContent = nd.label; s.appendChild(lab);
        var val = svg('text', { x: x, y: y + R + 14, 'text-anchor': 'middle' }); val.setAttribute('class', 'v' + (nd.chosen ? ' b' : ''));
        val.textContent = fmt(nd.value) + (nd.settled ? SETTLED : ''); s.appendChild(val);
      });
    });
    panel.appendChild(s);
    panel.appendChild(el('p', { cls: 'help', text: 'Each row: the four children (TL, TR, BL, BR) of the block chosen above, with their scores; the chosen path is orange; ' + SETTLED + ': a close call, decided by removing each of the two best children.' }));
    return panel;
  }
  function pathTable(p) {
    var path = (p.path || []).filter(function (n) { return n && typeof n === 'object'; });
    var wrap = el('section', { cls: 'pathbox', 'aria-label': 'GradCAT path' });
    wrap.appendChild(el('h3', { text: 'GradCAT path (root to leaf)' }));
    if (!path.length) { wrap.appendChild(el('p', { cls: 'muted', text: 'No path recorded.' })); return wrap; }
    var t = el('table', { cls: 'path' });
    t.appendChild(el('thead', null, ['level', 'node', 'score', 'box [x0, y0, x1, y1]', 'child scores (TL, TR, BL, BR)'].reduce(function (tr, h) { tr.appendChild(el('th', { scope: 'col', text: h })); return tr; }, el('tr'))));
    var tb = el('tbody');
    path.forEach(function (n) {
      var cs = el('td', { cls: 'num' });
      if (Array.isArray(n.child_scores)) n.child_scores.forEach(function (v, q) {
        if (q) cs.appendChild(document.createTextNode('  '));
        var drops = Array.isArray(n.removal_drops) ? n.removal_drops : null;
        cs.appendChild(q === n.chosen_child ? el('mark', { text: fmt(v) + (drops ? SETTLED : ''), title: 'chosen: ' + QUAD[q] + (drops ? '; a close call decided by removal, the class probability falling by ' + drops.map(function (d, c) { return d === null || d === undefined ? null : QUAD_SHORT[c] + ' ' + fmt(d); }).filter(Boolean).join(', ') : '') }) : el('span', { text: fmt(v) }));
      }); else cs.textContent = 'leaf';
      tb.appendChild(el('tr', null, el('td', { cls: 'num', text: String(n.level) }), el('td', { cls: 'num', text: String(n.node) }), el('td', { cls: 'num', text: fmt(n.score) }),
        el('td', { cls: 'num', text: isBox(n.box) ? '[' + n.box.map(function (v) { return Math.round(v); }).join(', ') + ']' : '–' }), cs));
    });
    t.appendChild(tb);
    wrap.appendChild(el('div', { cls: 'scroll' }, t));
    return wrap;
  }

  // ---- start -------------------------------------------------------------------------------------
  renderSummary();
  stateToControls();
  applyFilters();
  layout(false);
  openFromState();
  document.documentElement.dataset.ready = '1';
  window.NESTVIZ_READY_MS = performance.now();
  setTimeout(loadDetails, 0);
})();
