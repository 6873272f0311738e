// The conversational run explorer (convdr_pyserini.compare): draws the page from the embedded JSON.
// Hand-written, no dependencies. Every text from the data goes in through text nodes, never as markup.
"use strict";
(function () {
  var D = JSON.parse(document.getElementById("explorer-data").textContent);
  var TURNS = {};
  D.turns.forEach(function (t) { TURNS[t.id] = t; });
  var TOPICS = {};
  D.topics.forEach(function (t) { TOPICS[t.id] = t; });
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  var scored = D.measures.length > 0;
  var S = { unit: "turn", measure: D.measures[0] || null, focus: D.focus, sort: scored && D.baseline ? "delta" : "topic",
            filter: "", open: {} };

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = value;
        else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }
  function add(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); return; }
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key]; else node.setAttribute(key, String(attrs[key]));
    });
    return node;
  }
  function fmt(value, digits) { return value === null || value === undefined ? "–" : value.toFixed(digits === undefined ? 4 : digits); }
  function signed(value) { return value === null || value === undefined ? "–" : (value > 0 ? "+" : value < 0 ? "−" : "±") + Math.abs(value).toFixed(4); }
  function pText(p) { return p === null || p === undefined ? "n/a" : p < 0.0001 ? p.toExponential(1) : p.toFixed(4); }
  function runColor(name) { return COLORS[D.runs.indexOf(name) % COLORS.length]; }
  function deltaColor(delta) {
    if (delta === null || delta === undefined) return "#d0d0d0";
    var strength = Math.min(Math.abs(delta), 1);
    var light = Math.round(96 - 56 * Math.sqrt(strength));
    return delta === 0 ? "#ffffff" : "hsl(" + (delta > 0 ? 130 : 0) + ",60%," + light + "%)";
  }
  function valueColor(value) {
    if (value === null || value === undefined) return "#d0d0d0";
    return "hsl(210,60%," + Math.round(96 - 50 * Math.min(value, 1)) + "%)";
  }
  function gradeBadge(grade) {
    if (grade === null || grade === undefined) return el("span", { "class": "grade unjudged", title: "not in the qrels", text: D.qrels_source ? "unjudged" : "no qrels" });
    return el("span", { "class": "grade g" + Math.max(0, Math.min(grade, 4)), title: "qrels grade " + grade, text: String(grade) });
  }
  function passageText(docid, open, given) {
    var text = D.texts[docid] !== undefined ? D.texts[docid] : given;
    if (text === undefined) return null;
    var details = el("details", { "class": "text" }, el("summary", { text: text.length > 90 ? text.slice(0, 90) + "…" : text }), el("p", { text: text }));
    if (open) details.open = true;
    return details;
  }

  // ---- header and overview -------------------------------------------------------------------------------
  function header() {
    var unit = el("span", { "class": "unit" }, "unit: ",
      ["turn", "conversation"].map(function (u) {
        return el("button", { type: "button", "class": S.unit === u ? "on" : null, "data-unit": u, text: u,
          onclick: function () { S.unit = u; draw(); } });
      }));
    return el("header", null,
      el("h1", { text: D.title }),
      el("p", { "class": "sources" },
        "topics: " + D.topics_source + " · qrels: " + (D.qrels_source || "none (ranks, texts and overlaps only)") +
        " · texts: " + (D.texts_source || "none (ids only)") + " · " + D.runs.length + " runs" +
        (D.baseline ? " · baseline: " + D.baseline : "") + " · depth " + D.depth +
        (D.aggregate ? " · documents by " + D.aggregate + " of their passages" : "") +
        (D.generated ? " · generated " + D.generated : "")),
      scored ? unit : null);
  }

  function inputNotes() {
    var notes = [];
    if (D.texts_note) notes.push(D.texts_note + ".");
    Object.keys(D.input_notes).forEach(function (name) { notes.push(name + ": " + D.input_notes[name] + "."); });
    return notes;
  }

  function overview() {
    if (!scored) {
      return el("section", { id: "overview" }, ["No qrels given: no measures, only ranks, texts and overlaps."].concat(inputNotes())
        .map(function (n) { return el("p", { "class": "note", text: n }); }));
    }
    var rows = D.overview[S.unit];
    var what = S.unit === "turn" ? "turns" : "conversations";
    var head = el("tr", null, el("th", { text: "run" }), D.measures.map(function (m) { return el("th", { text: m }); }),
      D.baseline ? el("th", { text: "W / T / L vs " + D.baseline + " (" + S.measure + ", " + what + ")" }) : null,
      el("th", { text: "Judged@" + D.depth }));
    var body = D.runs.map(function (name) {
      var cells = D.measures.map(function (m) {
        var cell = rows[name][m];
        var marks = "", title = "mean over " + cell.n + " judged " + what;
        if (cell.delta !== undefined) {
          if (cell.t_p_holm !== null && cell.t_p_holm < 0.05) marks += "*";
          if (cell.rand_p_holm !== null && cell.rand_p_holm < 0.05) marks += "†";
          title += "\nagainst " + D.baseline + ": mean difference " + signed(cell.delta) + " over " + cell.paired + " paired " + what +
            "\npaired t-test p = " + pText(cell.t_p) + " (Holm-adjusted across runs: " + pText(cell.t_p_holm) + ")" +
            "\npaired randomization test p = " + pText(cell.rand_p) + " (Holm-adjusted: " + pText(cell.rand_p_holm) + ")";
        }
        return el("td", { "class": "num", title: title, "data-run": name, "data-measure": m, "data-value": cell.mean },
          fmt(cell.mean), el("span", { "class": "marks", text: marks }));
      });
      var wtl = null;
      if (D.baseline) {
        var c = rows[name][S.measure];
        wtl = el("td", { "class": "num" }, name === D.baseline ? "baseline" : c.win + " / " + c.tie + " / " + c.loss);
      }
      return el("tr", { "data-run": name }, el("th", null, el("span", { "class": "swatch", style: "background:" + runColor(name) }), name),
        cells, wtl, el("td", { "class": "num", text: fmt(D.judged_at[name], 3) }));
    });
    var notes = [];
    if (D.baseline) notes.push("* paired two-sided t-test, † paired randomization test: p < 0.05 after Holm's correction across the runs; hover a value for the p-values and the difference. " +
      (S.unit === "turn" ? "Unit: the turn (as trec_eval reports)." : "Unit: the conversation (each conversation's mean over its judged turns, so the turns of one conversation move together)."));
    notes = notes.concat(inputNotes());
    if (D.unjudged.length) notes.push(D.unjudged.length + " of " + D.turns.length + " turns have no judgements: shown grey as unjudged, never counted as 0 (" + D.unjudged.join(", ") + ").");
    return el("section", { id: "overview" },
      el("table", { "class": "scores" }, el("thead", null, head), el("tbody", null, body)),
      notes.map(function (n) { return el("p", { "class": "note", text: n }); }),
      el("details", { "class": "settings" }, el("summary", { text: "how these numbers were computed" }),
        el("ul", null, D.settings.map(function (line) { return el("li", { text: line }); }))),
      chart());
  }

  function chart() {
    var bt = D.by_turn;
    if (!bt || !bt.turns.length) return null;
    var W = 640, H = 230, L = 48, R = 12, T = 14, B = 44;
    var turns = bt.turns, max = 0;
    D.runs.forEach(function (name) { turns.forEach(function (t) { var v = bt.means[name][S.measure][t]; if (v > max) max = v; }); });
    max = max > 0 ? Math.min(1, Math.ceil(max * 10) / 10) : 1;
    var x = function (i) { return L + (turns.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (turns.length - 1)); };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img", "class": "chart" });
    root.appendChild(svg("title", { text: S.measure + " by turn depth, one line per run; n = judged turns at each depth" }));
    for (var g = 0; g <= 4; g++) {
      var v = max * g / 4;
      root.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e4e4e4" }));
      root.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "class": "axis", text: v.toFixed(2) }));
    }
    turns.forEach(function (t, i) {
      root.appendChild(svg("text", { x: x(i), y: H - B + 16, "text-anchor": "middle", "class": "axis", text: String(t) }));
      root.appendChild(svg("text", { x: x(i), y: H - B + 30, "text-anchor": "middle", "class": "axis small", text: "n=" + (bt.queries[t] || 0) }));
    });
    root.appendChild(svg("text", { x: L, y: H - 2, "class": "axis", text: S.measure + " by turn depth" }));
    D.runs.forEach(function (name) {
      var points = [];
      turns.forEach(function (t, i) { var v = bt.means[name][S.measure][t]; if (v !== undefined) points.push(x(i) + "," + y(v)); });
      var line = svg("polyline", { points: points.join(" "), fill: "none", stroke: runColor(name), "stroke-width": 2 });
      line.appendChild(svg("title", { text: name }));
      root.appendChild(line);
    });
    var legend = el("p", { "class": "legend" }, D.runs.map(function (name) {
      return el("span", null, el("span", { "class": "swatch", style: "background:" + runColor(name) }), name + " ");
    }));
    return el("figure", null, root, legend);
  }

  // ---- conversations -------------------------------------------------------------------------------------
  function topicDelta(topic) { return ((topic.delta[S.focus] || {})[S.measure]); }
  function topicOrder() {
    var list = D.topics.slice();
    var num = function (id) { var m = /^\d+/.exec(id); return m ? Number(m[0]) : Infinity; };
    var byId = function (a, b) { return num(a.id) - num(b.id) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0); };
    if (S.sort === "delta") {
      list.sort(function (a, b) {
        var da = topicDelta(a), db = topicDelta(b);
        var na = da === null || da === undefined, nb = db === null || db === undefined;
        if (na !== nb) return na ? 1 : -1;
        if (!na && da !== db) return da - db;
        return byId(a, b);
      });
    } else if (S.sort === "turns") list.sort(function (a, b) { return b.turns.length - a.turns.length || byId(a, b); });
    else list.sort(byId);
    if (S.filter) {
      var needle = S.filter.toLowerCase();
      list = list.filter(function (topic) {
        return topic.id.indexOf(needle) === 0 || topic.turns.some(function (qid) {
          var t = TURNS[qid];
          return [t.raw, t.manual, t.automatic].some(function (s) { return s && s.toLowerCase().indexOf(needle) >= 0; });
        });
      });
    }
    return list;
  }

  function select(label, name, options, value, change) {
    return el("label", null, label + " ", el("select", { name: name, onchange: function (e) { change(e.target.value); } },
      options.map(function (o) { return el("option", { value: o[0], selected: o[0] === value, text: o[1] }); })));
  }

  function conversations() {
    var controls = el("div", { "class": "controls" },
      scored ? select("measure", "measure", D.measures.map(function (m) { return [m, m]; }), S.measure, function (v) { S.measure = v; draw(); }) : null,
      scored && D.baseline ? select("run", "focus", D.runs.filter(function (r) { return r !== D.baseline; }).map(function (r) { return [r, r]; }), S.focus, function (v) { S.focus = v; draw(); }) : null,
      select("sort", "sort", (scored && D.baseline ? [["delta", "Δ vs baseline (worst first)"]] : []).concat([["topic", "topic"], ["turns", "turns"]]), S.sort, function (v) { S.sort = v; draw(); }),
      el("label", null, "filter ", el("input", { type: "search", name: "filter", value: S.filter, placeholder: "topic or words",
        oninput: function (e) { S.filter = e.target.value; drawList(); } })));
    var legend = scored ? el("p", { "class": "note", text: "One cell per turn, oldest first: " + (D.baseline ?
      "green where the run beats " + D.baseline + " on the measure, red where it loses, white for a tie" : "darker for a higher value") +
      ", hatched grey where the turn is unjudged. Click a conversation to open its timeline." }) : null;
    return el("section", { id: "conversations" }, el("h2", { text: "Conversations" }), controls, legend, el("div", { id: "topic-list" }));
  }

  function strip(topic, name) {
    return el("span", { "class": "strip" }, topic.turns.map(function (qid) {
      var t = TURNS[qid], r = t.runs[name];
      var delta = r.delta ? r.delta[S.measure] : undefined;
      var value = r.values ? r.values[S.measure] : undefined;
      var judged = t.judged && value !== null && value !== undefined;
      var color = !scored ? "#bbb" : !judged ? "#d0d0d0" : D.baseline && name !== D.baseline ? deltaColor(delta) : valueColor(value);
      var title = qid + (scored ? (judged ? ": " + S.measure + " " + fmt(value) + (D.baseline && name !== D.baseline ? " (Δ " + signed(delta) + ")" : "") : ": unjudged") : "");
      return el("a", { href: "#" + qid, "class": "cell" + (judged ? "" : " unjudged"), style: "background-color:" + color, title: title });
    }));
  }

  function drawList() {
    var box = document.getElementById("topic-list");
    box.textContent = "";
    topicOrder().forEach(function (topic) {
      var delta = topicDelta(topic);
      var row = el("div", { "class": "topic", id: topic.id, "data-topic": topic.id },
        el("div", { "class": "topic-head", onclick: function (e) { if (e.target.tagName !== "A") toggleTopic(topic.id); } },
          el("a", { href: "#" + topic.id, "class": "topic-id", text: "#" + topic.id }),
          el("span", { "class": "label", text: topic.label }),
          el("span", { "class": "count", text: topic.turns.length + " turns" }),
          scored && D.baseline ? el("span", { "class": "delta num", "data-delta": delta === undefined || delta === null ? "" : delta, text: "Δ " + signed(delta) }) : null,
          strip(topic, scored && D.baseline ? S.focus : D.runs[0])));
      if (S.open[topic.id]) row.appendChild(timeline(topic));
      box.appendChild(row);
    });
  }

  function toggleTopic(id) {
    if (S.open[id]) { delete S.open[id]; history.replaceState(null, "", "#"); }
    else S.open[id] = {};
    drawList();
  }

  // ---- a conversation as a timeline ----------------------------------------------------------------------
  function timeline(topic) {
    var strips = scored ? el("table", { "class": "strips" },
      el("tr", null, el("th", { text: S.measure }), topic.turns.map(function (qid) { return el("th", null, el("a", { href: "#" + qid, text: String(TURNS[qid].turn) })); })),
      D.runs.map(function (name) {
        return el("tr", null, el("th", null, el("span", { "class": "swatch", style: "background:" + runColor(name) }), name),
          topic.turns.map(function (qid) {
            var r = TURNS[qid].runs[name], v = r.values[S.measure], d = r.delta ? r.delta[S.measure] : undefined;
            var judged = v !== null && v !== undefined;
            var bg = !judged ? "#d0d0d0" : D.baseline && name !== D.baseline ? deltaColor(d) : valueColor(v);
            return el("td", { "class": "num" + (judged ? "" : " unjudged"), style: "background-color:" + bg, title: judged && d !== undefined && name !== D.baseline ? "Δ " + signed(d) : null,
              text: judged ? fmt(v, 2) : (TURNS[qid].judged ? "–" : "unj.") });
          }));
      })) : null;
    return el("div", { "class": "timeline" }, strips, topic.turns.map(function (qid) { return turnView(TURNS[qid], topic); }));
  }

  function rankIn(name, qid, docid) {
    var hits = TURNS[qid].runs[name].hits;
    for (var i = 0; i < hits.length; i++) if (hits[i][0] === docid || hits[i][3] === docid) return i + 1;
    return 0;
  }

  function turnView(t, topic) {
    var open = S.open[topic.id][t.id];
    var lines = [["raw", t.raw], ["manual", t.manual], ["automatic", t.automatic]].filter(function (p) { return p[1]; });
    var previous = t.previous.map(function (p) {
      var by = D.runs.map(function (name) { var r = rankIn(name, t.id, p.docid); return r ? name + " @" + r : null; }).filter(Boolean);
      return el("div", { "class": "previous" }, el("span", { "class": "key", text: "previous turn's canonical passage (" + p.kinds.join(", ") + ")" }),
        el("code", { text: p.docid }), " retrieved here by: " + (by.length ? by.join(", ") : "no run"), passageText(p.docid, false, p.text));
    });
    var inputs = D.runs.filter(function (name) { return t.runs[name].input; }).map(function (name) {
      return el("div", { "class": "input" }, el("span", { "class": "key", title: D.input_notes[name] || null, text: name + " saw" }), el("code", { text: t.runs[name].input }));
    });
    var values = scored ? el("div", { "class": "values" }, t.judged ? D.measures.map(function (m) {
      return el("div", null, el("span", { "class": "key", text: m }), D.runs.map(function (name) {
        var r = t.runs[name], v = r.values[m], d = r.delta ? r.delta[m] : null;
        return el("span", { "class": "value", "data-run": name, "data-measure": m, "data-value": v === null ? "" : v },
          name + " " + (v === null ? (r.missing ? "not in run" : "–") : fmt(v)) + (d !== null && d !== undefined && name !== D.baseline ? " (Δ " + signed(d) + ")" : ""));
      }));
    }) : el("span", { "class": "grade unjudged", text: "unjudged turn: no measures" })) : null;
    return el("div", { "class": "turn" + (open ? " open" : ""), id: t.id, "data-turn": t.id },
      el("div", { "class": "turn-head" }, el("a", { href: "#" + t.id, "class": "turn-id", text: t.id }),
        el("button", { type: "button", "class": "hits-toggle", text: open ? "hide hits" : "show hits",
          onclick: function () { if (S.open[topic.id][t.id]) delete S.open[topic.id][t.id]; else S.open[topic.id][t.id] = true; drawList(); } })),
      el("dl", { "class": "utterances" }, lines.map(function (p) { return [el("dt", { text: p[0] }), el("dd", { "class": p[0], text: p[1] })]; })),
      previous, inputs, values, open ? hitsView(t) : null);
  }

  // ---- a turn: the runs' hits side by side -----------------------------------------------------------------
  function hitsView(t) {
    var columns = D.runs.map(function (name) {
      var r = t.runs[name];
      var items = r.hits.map(function (hit, i) {
        var docid = hit[0], shown = hit[3] || docid;
        var shared = D.runs.filter(function (o) { return o !== name && rankIn(o, t.id, docid); });
        var move = null;
        if (D.baseline && name !== D.baseline) {
          var b = rankIn(D.baseline, t.id, docid);
          move = b ? el("span", { "class": "move", title: "rank in " + D.baseline, text: b === i + 1 ? "= base" : (b > i + 1 ? "↑" : "↓") + Math.abs(b - i - 1) + " (base #" + b + ")" })
                   : el("span", { "class": "move new", title: "not in " + D.baseline + "'s top " + D.depth, text: "new" });
        }
        return el("li", { "data-docid": docid, "data-grade": hit[2] === null ? "" : hit[2] },
          el("span", { "class": "rank", text: String(i + 1) }), gradeBadge(hit[2]), el("code", { text: docid }),
          hit[3] ? el("span", { "class": "passage", text: " best passage " + hit[3] }) : null,
          el("span", { "class": "score", text: " " + hit[1].toPrecision(6) }),
          shared.length ? el("span", { "class": "shared", title: shared.map(function (o) { return o + " #" + rankIn(o, t.id, docid); }).join(", "), text: "in " + (shared.length + 1) + " runs" }) : null,
          move, passageText(shown));
      });
      return el("div", { "class": "column", "data-run": name },
        el("h4", null, el("span", { "class": "swatch", style: "background:" + runColor(name) }), name),
        r.missing ? el("p", { "class": "note", text: "the run has no hits for this turn" }) : el("ol", null, items));
    });
    var k = D.depth;
    var pairs = t.overlap.pairs.length ? el("table", { "class": "overlap" },
      el("tr", null, el("th", { text: "runs" }), el("th", { text: "RBO (p = " + D.rbo_p + ")" }), el("th", { text: "overlap@" + k })),
      t.overlap.pairs.map(function (p) { return el("tr", null, el("td", { text: p[0] + " · " + p[1] }), el("td", { "class": "num", text: fmt(p[2], 3) }), el("td", { "class": "num", text: fmt(p[3], 2) })); })) : null;
    var prevNames = Object.keys(t.overlap.previous);
    var prev = prevNames.length ? el("table", { "class": "overlap" },
      el("tr", null, el("th", { text: "vs the previous turn" }), el("th", { text: "RBO" }), el("th", { text: "overlap@" + k })),
      D.runs.filter(function (n) { return t.overlap.previous[n]; }).map(function (n) {
        var p = t.overlap.previous[n];
        return el("tr", null, el("td", { text: n }), el("td", { "class": "num", text: fmt(p[0], 3) }), el("td", { "class": "num", text: fmt(p[1], 2) }));
      })) : null;
    var missed = t.missed.length ? el("div", { "class": "missed" },
      el("h4", { text: "Relevant (grade ≥ " + D.relevant_grade + "), retrieved by no run in its top " + k + ": " + t.missed.length }),
      el("ul", null, t.missed.map(function (m) { return el("li", { "data-docid": m[0] }, gradeBadge(m[1]), el("code", { text: m[0] }), passageText(m[0])); }))) : null;
    return el("div", { "class": "hits" }, el("div", { "class": "columns", style: "grid-template-columns:repeat(" + D.runs.length + ",minmax(16em,1fr))" }, columns),
      el("div", { "class": "agreement" }, pairs, prev), missed);
  }

  // ---- drawing and links -----------------------------------------------------------------------------------
  function draw() {
    var app = document.getElementById("app");
    app.textContent = "";
    app.appendChild(header());
    app.appendChild(overview());
    app.appendChild(conversations());
    drawList();
  }

  function follow() {
    var id = decodeURIComponent(location.hash.slice(1));
    var topic = TOPICS[id] ? id : TURNS[id] ? TURNS[id].topic : null;
    if (!topic) return;
    S.open[topic] = S.open[topic] || {};
    if (TURNS[id]) S.open[topic][id] = true;
    if (S.filter) S.filter = "";
    draw();
    var target = document.getElementById(id);
    if (target) target.scrollIntoView();
  }

  window.addEventListener("hashchange", follow);
  draw();
  follow();
  document.body.setAttribute("data-rendered-ms", performance.now().toFixed(1));
  document.body.setAttribute("data-ready", "true");
})();
